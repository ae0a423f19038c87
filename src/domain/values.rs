//! Validated value types: a value of these types has passed the rules of the API contract.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The signed-in user's id: the identity provider's subject. Read back (from another
/// instance) only through [`UserId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct UserId(String);

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl UserId {
    pub const MAX_LEN: usize = 255;

    /// Accepts a subject of 1..=255 visible ASCII characters.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(format!("must be 1 to {} characters", Self::MAX_LEN));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII characters".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A required, trimmed text of `1..=max` characters.
pub fn required_text(value: &str, max: usize) -> Result<String, String> {
    // The limit is on what the client sent, padding included.
    bounded(value, max)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(trimmed.to_owned())
}

/// An optional text of at most `max` characters; an empty or blank value reads as absent.
pub fn optional_text(value: Option<&str>, max: usize) -> Result<Option<String>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    bounded(value, max)?;
    match value.trim() {
        "" => Ok(None),
        text => Ok(Some(text.to_owned())),
    }
}

fn bounded(text: &str, max: usize) -> Result<String, String> {
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if text.chars().any(|c| c == '\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rules() {
        assert!(UserId::parse("user_2abc").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("é").is_err());
        assert!(UserId::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn text_rules() {
        assert_eq!(required_text("  hi ", 5).as_deref(), Ok("hi"));
        assert!(required_text("   ", 5).is_err());
        assert!(required_text("ééééé", 5).is_ok());
        assert!(required_text("éééééé", 5).is_err());
        assert_eq!(optional_text(Some("  "), 5), Ok(None));
        assert_eq!(optional_text(None, 5), Ok(None));
        assert!(optional_text(Some("a\0b"), 5).is_err());
    }
}
