//! A secret string (token, password) that cannot leak through formatting.
//!
//! `Debug` and `Display` print `***`, so a secret can sit inside any struct that derives
//! `Debug` or any error message without ending up in logs. The only way to the text is
//! the explicit, greppable [`Secret::expose`].

use std::fmt;

/// What a set secret shows as, printed or serialized.
pub const MASK: &str = "***";

/// A token or password. Prints as `***`, and serializes as `"***"` (the effective config of
/// `check-config` is derived by serde, so a secret must not serialize as itself).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret text. Call it only where the value must go on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compare with a credential a client presented, in time that does not depend on
    /// where the first differing byte is, so the gateway does not leak a token prefix
    /// through response timing. (The length may leak; tokens have public formats anyway.)
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn matches_exactly() {
        let s = Secret::new("abc".to_string());
        assert!(s.matches("abc"));
        assert!(!s.matches("abd"));
        assert!(!s.matches("ab"));
        assert!(!s.matches("abcd"));
        assert_eq!(s, Secret::new("abc".to_string()));
        assert_ne!(s, Secret::new("xyz".to_string()));
    }
}
