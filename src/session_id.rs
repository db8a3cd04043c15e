//! The id a session is known by: a random UUID (version 4), as the original
//! service hands out, with a short form for logs.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A session's id. `Display` prints the first eight hex digits, enough to
/// follow one session through the log; [`SessionId::full`] is the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A fresh random id.
    pub fn new() -> Self {
        SessionId(Uuid::new_v4())
    }

    /// The hyphenated UUID clients send back in `X-Session-ID` and paths.
    pub fn full(&self) -> String {
        self.0.to_string()
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let simple = self.0.simple().to_string();
        f.write_str(&simple[..8])
    }
}

impl FromStr for SessionId {
    type Err = uuid::Error;

    /// Any form `uuid` accepts (hyphenated, simple, braced, URN).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(text).map(SessionId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_short_and_full_round_trips() {
        let id = SessionId::new();
        assert_eq!(id.to_string().len(), 8);
        assert!(id.full().starts_with(&id.to_string()));
        assert_eq!(id.full().parse::<SessionId>().unwrap(), id);
        assert!("not-a-uuid".parse::<SessionId>().is_err());
    }
}
