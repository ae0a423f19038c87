//! Users: created on first sight from the identity provider's subject, with their own settings
//! (a time zone, and the daily agenda's time).

use std::str::FromStr as _;

use chrono::{DateTime, NaiveTime, Utc};
use serde::Serialize;

use super::error::{DomainResult, FieldErrors};
use super::values::UserId;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[schema(value_type = String)]
    pub id: UserId,
    pub created_at: DateTime<Utc>,
    /// The user's IANA time zone; `null`: the server's (`ai.timezone`).
    #[serde(serialize_with = "zone_name")]
    #[schema(value_type = Option<String>, example = "Europe/Paris")]
    pub timezone: Option<chrono_tz::Tz>,
    /// The daily agenda's local time (`HH:MM`); `null`: no agenda.
    #[serde(serialize_with = "hh_mm")]
    #[schema(value_type = Option<String>, example = "07:30")]
    pub agenda_at: Option<NaiveTime>,
}

fn zone_name<S: serde::Serializer>(tz: &Option<chrono_tz::Tz>, s: S) -> Result<S::Ok, S::Error> {
    match tz {
        Some(tz) => s.serialize_str(tz.name()),
        None => s.serialize_none(),
    }
}

fn hh_mm<S: serde::Serializer>(at: &Option<NaiveTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(t) => s.serialize_str(&t.format("%H:%M").to_string()),
        None => s.serialize_none(),
    }
}

/// `PATCH /v1/me`: each field absent (unchanged), `null` (cleared) or a value.
#[derive(Debug, Clone, Default)]
pub struct MePatch {
    pub timezone: Option<Option<String>>,
    pub agenda_at: Option<Option<String>>,
}

/// The settings a patch leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserSettings {
    pub timezone: Option<chrono_tz::Tz>,
    pub agenda_at: Option<NaiveTime>,
}

impl MePatch {
    pub(crate) fn apply(self, user: &User) -> DomainResult<UserSettings> {
        let mut errors = FieldErrors::new();
        let mut settings = UserSettings {
            timezone: user.timezone,
            agenda_at: user.agenda_at,
        };
        if let Some(timezone) = self.timezone {
            settings.timezone = match timezone {
                None => None,
                Some(name) => match chrono_tz::Tz::from_str(name.trim()) {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        errors.add("timezone", "must be an IANA time zone such as Europe/Paris");
                        None
                    }
                },
            };
        }
        if let Some(agenda_at) = self.agenda_at {
            settings.agenda_at = match agenda_at {
                None => None,
                Some(text) => match NaiveTime::parse_from_str(text.trim(), "%H:%M") {
                    Ok(at) => Some(at),
                    Err(_) => {
                        errors.add("agendaAt", "must be a local time HH:MM, such as 07:30");
                        None
                    }
                },
            };
        }
        errors.into_result()?;
        Ok(settings)
    }
}
