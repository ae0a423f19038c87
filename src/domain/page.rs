//! Cursor pagination shared by every listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::error::DomainError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// What [`Cursor::decode`] reads: microseconds since the epoch, a dot, a hyphenated UUID.
/// Every match decodes to a time PostgreSQL can compare (about 1200 BC to 33658 AD: up to 17
/// digits before the epoch, 18 after), and every cursor issued matches (the API's times are
/// years 0 to 9999).
pub const CURSOR_PATTERN: &str = "^(?:-[0-9]{1,17}|[0-9]{1,18})\\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A position in a listing ordered by `(at, id)`: the last item a page returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// `<microseconds since the epoch>.<uuid>`: a form the OpenAPI document can state as a
    /// pattern ([`CURSOR_PATTERN`]), so that every cursor it allows is one this reads.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_micros(), self.id.hyphenated())
    }

    pub fn decode(text: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::invalid("cursor", "is not a cursor this server issued");
        // Cursors issued before the plain form were the same text in unpadded base64url.
        let legacy = (!text.contains('.'))
            .then(|| URL_SAFE_NO_PAD.decode(text).ok())
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let text = legacy.as_deref().unwrap_or(text);
        let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
        let (negative, digits) = match micros.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, micros),
        };
        let most = if negative { 17 } else { 18 };
        if !(1..=most).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || id.len() != 36
        {
            return Err(invalid());
        }
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(Self {
            at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: Uuid::try_parse(id).map_err(|_| invalid())?,
        })
    }
}

/// Which page of a listing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Validates a client's `limit` (1..=`max`) and `cursor`.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>, max: u32) -> Result<Self, DomainError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT.min(max));
        if limit == 0 || limit > max {
            return Err(DomainError::invalid(
                "limit",
                format!("must be between 1 and {max}"),
            ));
        }
        // `cursor=` (empty) is the first page, like no cursor.
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(Cursor::decode)
            .transpose()?;
        Ok(Self { limit, after })
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows in listing order.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> Cursor) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| cursor_of(last).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn cursors_round_trip_at_the_ends_of_time_and_old_ones_still_read() {
        for at in [
            "9999-12-31T23:59:59.999999Z",
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
        ] {
            let cursor = Cursor {
                at: at.parse().unwrap(),
                id: Uuid::now_v7(),
            };
            let text = cursor.encode();
            let (micros, id) = text.split_once('.').unwrap();
            assert!(micros.trim_start_matches('-').len() <= 18, "{text}");
            assert_eq!(id.len(), 36);
            assert_eq!(Cursor::decode(&text).unwrap(), cursor);
        }
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        let legacy = URL_SAFE_NO_PAD.encode(format!("{}.{}", 1_780_000_000_123_456_i64, cursor.id));
        assert_eq!(Cursor::decode(&legacy).unwrap(), cursor);
    }

    #[test]
    fn garbage_cursor_is_a_validation_error() {
        for text in [
            "",
            "!!",
            "bm90IGEgY3Vyc29y",
            "MTIzLm5vdC1hLXV1aWQ",
            "-.01a232e2-044e-7675-bc90-4f5f0e991bf5",
            "1.01a232e2044e7675bc904f5f0e991bf5",
            "99999999999999999999.01a232e2-044e-7675-bc90-4f5f0e991bf5",
            // Before PostgreSQL's first timestamp.
            "-716327346450411235.01a232e2-044e-7675-bc90-4f5f0e991bf5",
            "1e5.01a232e2-044e-7675-bc90-4f5f0e991bf5",
        ] {
            assert!(matches!(
                Cursor::decode(text),
                Err(DomainError::Validation(_))
            ));
        }
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(PageRequest::parse(None, None, 200).unwrap().limit, 50);
        assert!(PageRequest::parse(Some(0), None, 200).is_err());
        assert!(PageRequest::parse(Some(201), None, 200).is_err());
        assert_eq!(PageRequest::parse(Some(200), None, 200).unwrap().limit, 200);
    }

    #[test]
    fn page_sets_cursor_only_when_more_rows_exist() {
        let at = DateTime::from_timestamp_micros(0).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_rows(ids.clone(), 2, |id| Cursor { at, id: *id });
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            Cursor::decode(page.next_cursor.as_deref().unwrap())
                .unwrap()
                .id,
            ids[1]
        );
        let page = Page::from_rows(ids, 3, |id| Cursor { at, id: *id });
        assert!(page.next_cursor.is_none());
    }
}
