//! Mapping keys as netlab's loader compares them, to find duplicates.
//!
//! netlab (networklab 26.10, `netsim/utils/read.py`, `UniqueKeyLoader`)
//! refuses a mapping whose keys are equal once PyYAML's `SafeLoader` has
//! constructed them (Python `==`). A plain scalar's type comes from PyYAML's
//! YAML 1.1 resolvers (`yaml/resolver.py`), chosen by the scalar's first
//! character. [`Key::of`] resolves only what it can tell for sure: null,
//! booleans (equal to 1 and 0 in Python), decimal integers and strings. Any
//! other plain scalar (`0x1`, `1.0`, `2024-01-01`) only equals the same
//! text, so a duplicate may go unnoticed (netlab then refuses it) but two
//! different keys are never taken for one.

use saphyr_parser::{ScalarStyle, Tag};

/// A key's identity: equal identities are keys netlab calls duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Null,
    /// Integers and booleans (Python: `True == 1`).
    Int(i128),
    Str(String),
    /// A plain scalar of a type not resolved here.
    Unresolved(String),
    /// A scalar with an explicit tag other than `!!str`.
    Tagged(String, String),
}

/// The first characters for which PyYAML tries a resolver other than
/// null and bool (int, float, timestamp, merge `<<`, value `=`).
const OTHER_RESOLVERS: &str = "-+0123456789.<=";

impl Key {
    /// The identity of a scalar key with this text, style and tag.
    pub(super) fn of(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Key {
        match tag {
            Some(tag) if tag.is_yaml_core_schema() && tag.suffix == "str" => {
                return Key::Str(text.to_string());
            }
            Some(tag) => return Key::Tagged(tag.to_string(), text.to_string()),
            None => {}
        }
        if style != ScalarStyle::Plain {
            return Key::Str(text.to_string());
        }
        match text {
            "" | "~" | "null" | "Null" | "NULL" => return Key::Null,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                return Key::Int(1);
            }
            "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
                return Key::Int(0);
            }
            _ => {}
        }
        if let Some(number) = decimal(text) {
            return Key::Int(number);
        }
        match text.chars().next() {
            Some(first) if OTHER_RESOLVERS.contains(first) => Key::Unresolved(text.to_string()),
            _ => Key::Str(text.to_string()),
        }
    }
}

/// PyYAML's decimal integers: `[-+]?(0|[1-9][0-9_]*)`.
fn decimal(text: &str) -> Option<i128> {
    let digits = text.trim_start_matches(['-', '+']);
    if text.len() - digits.len() > 1 || digits.is_empty() {
        return None;
    }
    let well_formed = digits == "0"
        || (digits.starts_with(|c: char| ('1'..='9').contains(&c))
            && digits.chars().all(|c| c.is_ascii_digit() || c == '_'));
    if !well_formed {
        return None;
    }
    let number: i128 = digits.replace('_', "").parse().ok()?;
    Some(if text.starts_with('-') {
        -number
    } else {
        number
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Key {
        Key::of(text, ScalarStyle::Plain, None)
    }

    #[test]
    fn keys_python_calls_equal_are_equal() {
        assert_eq!(plain("true"), plain("1"));
        assert_eq!(plain("Off"), plain("0"));
        assert_eq!(plain("1_000"), plain("+1000"));
        assert_eq!(plain("~"), plain("null"));
        assert_eq!(
            plain("nodes"),
            Key::of("nodes", ScalarStyle::DoubleQuoted, None)
        );
    }

    #[test]
    fn keys_of_different_types_differ() {
        // A quoted "1" is a string, a plain 1 an integer.
        assert_ne!(plain("1"), Key::of("1", ScalarStyle::SingleQuoted, None));
        assert_ne!(
            plain("1.0"),
            Key::of("1.0", ScalarStyle::SingleQuoted, None)
        );
        // Octal in YAML 1.1: not resolved, so not equal to decimal 10.
        assert_ne!(plain("010"), plain("10"));
        assert_ne!(plain("-"), plain("0"));
    }
}
