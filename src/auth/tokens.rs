//! Named bearer tokens: parsing and constant-time lookup.
//!
//! Only SHA-256 digests of the tokens are kept. A lookup compares the
//! presented token's digest with every entry, in constant time and without
//! stopping at a match, so the answer's timing tells nothing about which
//! entry (or how much of one) matched. Errors name lines and token names,
//! never a token's value.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Longest token name: it shows up in `/sessions`, events and the log.
const MAX_NAME: usize = 64;

/// Shortest accepted token, in characters: a short token can be guessed.
pub const MIN_TOKEN: usize = 16;

/// The name of the token a request presented.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller(Arc<str>);

impl Caller {
    /// The owner of a session a previous run stored. Its token may be gone
    /// since: then nobody can act for the session, as for a revoked token.
    pub fn restored(name: &str) -> Caller {
        Caller(name.into())
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A token set that could not be read, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(pub String);

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 digest of a presented token: what is kept of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> TokenDigest {
        TokenDigest(digest(token))
    }
}

/// Never printed: a digest of a short token can be reversed by trying.
impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

struct Entry {
    caller: Caller,
    digest: [u8; 32],
}

/// A non-empty set of named tokens, with unique names and unique tokens.
pub struct TokenSet {
    entries: Vec<Entry>,
}

/// Names only: a token set is never printed with its tokens.
impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|entry| entry.caller.name()))
            .finish()
    }
}

impl TokenSet {
    /// A tokens file: one `name:token` per line; blank lines and lines
    /// starting with `#` are ignored.
    pub fn from_file_text(text: &str) -> Result<TokenSet, TokenError> {
        let lines = text.lines().enumerate().filter_map(|(index, line)| {
            let line = line.trim();
            (!line.is_empty() && !line.starts_with('#'))
                .then(|| (format!("line {}", index + 1), line))
        });
        TokenSet::from_entries(lines)
    }

    /// `NEOPS_REMOTE_LAB_TOKENS`: `name:token` entries separated by commas.
    pub fn from_list(text: &str) -> Result<TokenSet, TokenError> {
        let entries = text.split(',').enumerate().filter_map(|(index, entry)| {
            let entry = entry.trim();
            (!entry.is_empty()).then(|| (format!("entry {}", index + 1), entry))
        });
        TokenSet::from_entries(entries)
    }

    fn from_entries<'a>(
        entries: impl Iterator<Item = (String, &'a str)>,
    ) -> Result<TokenSet, TokenError> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut digests: HashMap<[u8; 32], String> = HashMap::new();
        let mut set = Vec::new();
        for (place, entry) in entries {
            let fail = |why: String| Err(TokenError(format!("{place}: {why}")));
            let Some((name, token)) = entry.split_once(':') else {
                return fail("expected `name:token`".to_string());
            };
            let (name, token) = (name.trim(), token.trim());
            // Until the token passed too, the name may be a token (a
            // swapped line, a short token first): it is printed only after.
            if let Err(why) = check_name(name) {
                return fail(why);
            }
            if token.is_empty() {
                return fail("the token (after the `:`) is empty".to_string());
            }
            if !is_b64token(token) {
                return fail(
                    "the token (after the `:`) has characters a bearer token may not have \
                     (letters, digits and -._~+/ followed by any number of =)"
                        .to_string(),
                );
            }
            if token.chars().count() < MIN_TOKEN {
                return fail(format!(
                    "the token (after the `:`) is shorter than {MIN_TOKEN} characters; \
                     make one with `openssl rand -hex 32` (is the line `token:name`? it must \
                     be `name:token`)"
                ));
            }
            if let Some(first) = names.insert(name.to_string(), place.clone()) {
                return fail(format!("the name {name} is already used ({first})"));
            }
            let digest = digest(token);
            if let Some(first) = digests.insert(digest, place.clone()) {
                return fail(format!("the token of {name} is already used ({first})"));
            }
            set.push(Entry {
                caller: Caller(name.into()),
                digest,
            });
        }
        if set.is_empty() {
            return Err(TokenError("no tokens defined".to_string()));
        }
        Ok(TokenSet { entries: set })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller whose token this is. Every entry is compared, in
    /// constant time, whether or not an earlier one matched.
    pub fn find(&self, presented: &str) -> Option<Caller> {
        self.find_digest(&TokenDigest::of(presented))
    }

    /// [`TokenSet::find`] for a token already digested.
    pub fn find_digest(&self, presented: &TokenDigest) -> Option<Caller> {
        let presented = presented.0;
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (position, entry) in self.entries.iter().enumerate() {
            let equal = entry.digest.ct_eq(&presented);
            index.conditional_assign(&(position as u32), equal);
            found |= equal;
        }
        bool::from(found).then(|| self.entries[index as usize].caller.clone())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Names are shown to everyone who may look at the queue: short and plain,
/// and never something that could be a token, so that a swapped
/// `token:name` line is refused instead of showing its token as an owner.
/// A refused name is not printed: it may be that token.
fn check_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if name.is_empty() {
        Err("the name is empty".to_string())
    } else if name.len() > MAX_NAME || !name.chars().all(plain) {
        Err(format!(
            "the name must be 1 to {MAX_NAME} letters, digits or ._@- \
             (is the line `token:name`? it must be `name:token`)"
        ))
    } else if name.len() >= MIN_TOKEN && is_b64token(name) {
        Err(format!(
            "the name could be a token: a name of {MIN_TOKEN} characters or more must contain \
             `@` (is the line `token:name`? it must be `name:token`)"
        ))
    } else {
        Ok(())
    }
}

/// RFC 6750's `b64token`: what fits in `Authorization: Bearer <token>`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(result: Result<TokenSet, TokenError>) -> String {
        result.expect_err("should be refused").0
    }

    #[test]
    fn a_file_names_its_tokens_and_skips_comments_and_blank_lines() {
        let set = TokenSet::from_file_text(
            "# CI runners\n\nci: s3cret-1-0123456789\n  ada : Zm9vYmFyYmF6+/bar==  \n",
        )
        .unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.find("s3cret-1-0123456789").unwrap().name(), "ci");
        assert_eq!(set.find("Zm9vYmFyYmF6+/bar==").unwrap().name(), "ada");
        assert_eq!(set.find("s3cret-2-0123456789"), None);
        assert_eq!(set.find(""), None);
    }

    #[test]
    fn a_list_is_comma_separated() {
        let set = TokenSet::from_list("ci:one-0123456789abc, ada:two-0123456789abc,").unwrap();
        assert_eq!(set.find("two-0123456789abc").unwrap().name(), "ada");
        assert_eq!(set.find("one-0123456789abc").unwrap().name(), "ci");
    }

    #[test]
    fn malformed_entries_are_refused_without_showing_tokens() {
        let cases = [
            (
                "ci:one-0123456789abc\nnocolon\n",
                "line 2: expected `name:token`",
            ),
            ("ci:", "line 1: the token (after the `:`) is empty"),
            (":secret-0123456789abc", "line 1: the name is empty"),
            (
                "ci:one-0123456789abc\nci:two-0123456789abc",
                "line 2: the name ci is already used (line 1)",
            ),
            (
                "ci:same-0123456789abc\nada:same-0123456789abc",
                "line 2: the token of ada is already used (line 1)",
            ),
            (
                "ci:has space",
                "line 1: the token (after the `:`) has characters",
            ),
            (
                "ci:short-secret",
                "line 1: the token (after the `:`) is shorter than 16",
            ),
            // Swapped, with a short token: the name check passes, and the
            // token's refusal must not name it.
            (
                "secret-0123:ci",
                "line 1: the token (after the `:`) is shorter than 16",
            ),
            ("c i:secret-0123456789abc", "line 1: the name must be"),
            // Swapped lines: the token stands where the name belongs.
            (
                "secret-0123456789abc:ci",
                "line 1: the name could be a token",
            ),
            ("Zm9vYmFy+/secret==:ci", "line 1: the name must be"),
            ("# nothing\n", "no tokens defined"),
        ];
        for (text, expected) in cases {
            let message = error(TokenSet::from_file_text(text));
            assert!(message.starts_with(expected), "{text:?}: {message}");
            for secret in ["one-", "two-", "same-", "secret", "has space"] {
                assert!(!message.contains(secret), "{message} shows a token");
            }
        }
        assert_eq!(
            error(TokenSet::from_list("ci:one-0123456789abc,broken")),
            "entry 2: expected `name:token`"
        );
        // A long name is fine with an `@`; no accepted token can have one.
        let set = TokenSet::from_list("ada.lovelace@example.com:secret-0123456789abc").unwrap();
        assert_eq!(
            set.find("secret-0123456789abc").unwrap().name(),
            "ada.lovelace@example.com"
        );
    }

    #[test]
    fn debug_output_names_only() {
        let set = TokenSet::from_list("ci:topsecret-0123456789").unwrap();
        assert_eq!(format!("{set:?}"), r#"["ci"]"#);
    }
}
