//! Operator pauses: `elasticrds pause CLUSTER` holds a cluster's scale-in, scale-out or both,
//! written as tags on the cluster's master so that every running copy (and a restarted one)
//! reads them on its next observation. This module owns the tag encoding and the rule for
//! when a pause is in force; the decision reads it (`decide::holds`), the CLI writes it.
//!
//! Tag `elasticrds:pause-in` / `elasticrds:pause-out`, value
//! `until=<RFC 3339 time|never> by=<who> reason=<text>` (RDS tag values allow letters,
//! digits, spaces and `_ . : / = + - @`, at most 256 characters). A pause whose `until` has
//! passed ends by itself; a value that cannot be read still pauses (a hold is the safe
//! reading of a tag an operator meant as one), and says so in its reason.

use crate::core::decide::Direction;
use crate::core::domain::Tags;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

pub const TAG_PAUSE_OUT: &str = "elasticrds:pause-out";
pub const TAG_PAUSE_IN: &str = "elasticrds:pause-in";
/// RDS tag values are at most 256 characters.
pub const MAX_VALUE_LEN: usize = 256;

/// One direction held by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    pub direction: Direction,
    /// When the pause ends by itself; `None`: until `resume`.
    pub until: Option<DateTime<Utc>>,
    /// Who paused (as given to `pause --by`, default the user name).
    pub by: String,
    pub reason: String,
    /// False when the tag value could not be read (the pause then holds, without expiry).
    pub readable: bool,
}

/// Why a pause cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseTextError {
    /// A character RDS does not allow in a tag value.
    Character { field: &'static str, ch: char },
    /// The whole value is longer than [`MAX_VALUE_LEN`].
    TooLong { len: usize },
}

impl Pause {
    /// The tag key for `direction` (`Out` or `In`).
    pub fn tag_key(direction: Direction) -> &'static str {
        match direction {
            Direction::In => TAG_PAUSE_IN,
            _ => TAG_PAUSE_OUT,
        }
    }

    /// True while the pause holds at `now`.
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| now < u)
    }

    /// The tag value, checked against what RDS accepts.
    pub fn tag_value(&self) -> Result<String, PauseTextError> {
        check_chars("by", &self.by)?;
        check_chars("reason", &self.reason)?;
        let until = self.until.map_or("never".to_string(), |u| {
            u.to_rfc3339_opts(SecondsFormat::Secs, true)
        });
        let v = format!("until={until} by={} reason={}", self.by, self.reason);
        if v.chars().count() > MAX_VALUE_LEN {
            return Err(PauseTextError::TooLong {
                len: v.chars().count(),
            });
        }
        Ok(v)
    }

    /// Read the tag value of `direction`; see the module doc for unreadable values.
    pub fn from_value(direction: Direction, value: &str) -> Pause {
        let parsed = (|| {
            let rest = value.strip_prefix("until=")?;
            let (until, rest) = rest.split_once(" by=")?;
            let (by, reason) = rest.split_once(" reason=")?;
            let until = match until {
                "never" => None,
                t => Some(DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc)),
            };
            Some((until, by.to_string(), reason.to_string()))
        })();
        match parsed {
            Some((until, by, reason)) => Pause {
                direction,
                until,
                by,
                reason,
                readable: true,
            },
            None => Pause {
                direction,
                until: None,
                by: String::new(),
                reason: value.to_string(),
                readable: false,
            },
        }
    }
}

/// The pauses written on a master: at most one per direction (in force or expired).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pauses {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_out: Option<Pause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_in: Option<Pause>,
}

impl Pauses {
    /// Read the pause tags among `tags`.
    pub fn from_tags(tags: &Tags) -> Pauses {
        let read = |d| tags.get(Pause::tag_key(d)).map(|v| Pause::from_value(d, v));
        Pauses {
            scale_out: read(Direction::Out),
            scale_in: read(Direction::In),
        }
    }

    /// The pause of `direction` in force at `now`.
    pub fn in_force(&self, direction: Direction, now: DateTime<Utc>) -> Option<&Pause> {
        let p = match direction {
            Direction::Out => self.scale_out.as_ref(),
            Direction::In => self.scale_in.as_ref(),
            Direction::None => None,
        };
        p.filter(|p| p.in_force(now))
    }

    pub fn is_empty(&self) -> bool {
        self.scale_out.is_none() && self.scale_in.is_none()
    }

    /// Every pause written, in force or not.
    pub fn all(&self) -> impl Iterator<Item = &Pause> {
        self.scale_out.iter().chain(self.scale_in.iter())
    }
}

/// RDS tag values: Unicode letters, digits, white space and `_ . : / = + - @`.
fn check_chars(field: &'static str, s: &str) -> Result<(), PauseTextError> {
    let ok = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
    match s.chars().find(|c| !ok(*c)) {
        Some(ch) => Err(PauseTextError::Character { field, ch }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_pause_round_trips_through_its_tag() {
        let p = Pause {
            direction: Direction::In,
            until: Some(t("2026-12-04T10:00:00Z")),
            by: "alice".into(),
            reason: "schema migration: ticket OPS-12".into(),
            readable: true,
        };
        let v = p.tag_value().unwrap();
        assert_eq!(
            v,
            "until=2026-12-04T10:00:00Z by=alice reason=schema migration: ticket OPS-12"
        );
        assert_eq!(Pause::from_value(Direction::In, &v), p);
        let forever = Pause { until: None, ..p };
        let back = Pause::from_value(Direction::In, &forever.tag_value().unwrap());
        assert_eq!(back.until, None);
        assert!(back.in_force(t("2100-01-01T00:00:00Z")));
    }

    #[test]
    fn an_expired_pause_is_not_in_force() {
        let mut tags = Tags::new();
        tags.insert(
            TAG_PAUSE_OUT.into(),
            "until=2026-12-04T10:00:00Z by=bob reason=load test".into(),
        );
        let p = Pauses::from_tags(&tags);
        assert!(p
            .in_force(Direction::Out, t("2026-12-04T09:59:59Z"))
            .is_some());
        assert!(p
            .in_force(Direction::Out, t("2026-12-04T10:00:00Z"))
            .is_none());
        assert!(p
            .in_force(Direction::In, t("2026-12-04T09:00:00Z"))
            .is_none());
    }

    #[test]
    fn an_unreadable_value_still_pauses_and_says_so() {
        let p = Pause::from_value(Direction::Out, "hold please");
        assert!(!p.readable);
        assert_eq!(p.reason, "hold please");
        assert!(p.in_force(t("2100-01-01T00:00:00Z")));
        let bad_time = Pause::from_value(Direction::Out, "until=tomorrow by=x reason=y");
        assert!(!bad_time.readable);
    }

    #[test]
    fn values_rds_would_refuse_are_refused_here() {
        let mut p = Pause {
            direction: Direction::Out,
            until: None,
            by: "ops".into(),
            reason: "no, commas".into(),
            readable: true,
        };
        assert_eq!(
            p.tag_value(),
            Err(PauseTextError::Character {
                field: "reason",
                ch: ','
            })
        );
        p.reason = "x".repeat(300);
        assert!(matches!(p.tag_value(), Err(PauseTextError::TooLong { .. })));
    }
}
