//! Schedules: a cron expression evaluated in an IANA timezone opens a window of a fixed
//! duration, inside which a policy's min/max replicas (and optionally the instance classes) are
//! overridden. Pure: time comes in as a value. Uses croner for cron and chrono-tz for zones.
//!
//! A window is active at `now` when the latest cron occurrence at or before `now` (in the
//! schedule's timezone, so daylight-saving changes are honoured) is less than `duration` ago.
//! Overlapping windows are combined by [`Bounds::combine`]: the highest min and the highest
//! max win; the first active schedule (in file order) that sets a class wins for that class.

use super::domain::InstanceClass;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Serialize, Serializer};
use std::str::FromStr;
use std::sync::Mutex;

/// One schedule as validated.
#[derive(Debug, Serialize)]
pub struct Schedule {
    pub name: String,
    /// The cron expression as written (5 fields, or 6 with seconds first).
    pub cron: String,
    #[serde(serialize_with = "ser_tz")]
    pub timezone: Tz,
    pub duration_secs: u64,
    pub min_replicas: Option<usize>,
    pub max_replicas: Option<usize>,
    pub replica_class: Option<InstanceClass>,
    pub master_class: Option<InstanceClass>,
    #[serde(skip)]
    parsed: Cron,
    /// `[prev, next)`: the occurrence at or before `now` and the one after it, for the last
    /// `now` asked about. Between two occurrences the answer only depends on `prev`, so the
    /// backtest's minute-by-minute calls cost one cron search per occurrence, not per call.
    #[serde(skip)]
    cache: Mutex<Option<Occurrences>>,
}

/// The cron occurrence at or before an instant, and the next one (if any).
type Occurrences = (DateTime<Utc>, Option<DateTime<Utc>>);

fn ser_tz<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

impl Clone for Schedule {
    fn clone(&self) -> Self {
        Schedule {
            name: self.name.clone(),
            cron: self.cron.clone(),
            timezone: self.timezone,
            duration_secs: self.duration_secs,
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            replica_class: self.replica_class.clone(),
            master_class: self.master_class.clone(),
            parsed: self.parsed.clone(),
            cache: Mutex::new(None),
        }
    }
}

impl PartialEq for Schedule {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.cron == o.cron
            && self.timezone == o.timezone
            && self.duration_secs == o.duration_secs
            && self.min_replicas == o.min_replicas
            && self.max_replicas == o.max_replicas
            && self.replica_class == o.replica_class
            && self.master_class == o.master_class
    }
}

/// Parse a cron expression; the message is meant for a located error.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let cron = Cron::from_str(expr)
        .map_err(|e| format!(
            "{expr:?} is not a valid cron expression (minute hour day-of-month month day-of-week): {e}"
        ))?;
    // A pattern such as "0 0 30 2 *" parses but never matches: refuse it.
    let probe = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| e.to_string())?;
    match cron.find_next_occurrence(&probe, true) {
        Ok(t) if t < probe + chrono::Duration::days(366 * 8) => Ok(cron),
        _ => Err(format!("{expr:?} never matches a real date")),
    }
}

/// Parse an IANA timezone name such as `Asia/Tokyo` (or `UTC`).
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name).map_err(|_| {
        format!("{name:?} is not an IANA timezone name (e.g. UTC, Europe/Paris, Asia/Tokyo)")
    })
}

impl Schedule {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        cron: &str,
        timezone: Tz,
        duration_secs: u64,
        min_replicas: Option<usize>,
        max_replicas: Option<usize>,
        replica_class: Option<InstanceClass>,
        master_class: Option<InstanceClass>,
    ) -> Result<Schedule, String> {
        let parsed = parse_cron(cron)?;
        Ok(Schedule {
            name,
            cron: cron.to_string(),
            timezone,
            duration_secs,
            min_replicas,
            max_replicas,
            replica_class,
            master_class,
            parsed,
            cache: Mutex::new(None),
        })
    }

    /// The occurrence at or before `now` and the next one after `now`.
    fn occurrences(&self, now: DateTime<Utc>) -> Option<Occurrences> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((prev, next)) = *cache {
                if prev <= now && next.is_none_or(|n| now < n) {
                    return Some((prev, next));
                }
            }
        }
        let local = now.with_timezone(&self.timezone);
        let prev = self
            .parsed
            .find_previous_occurrence(&local, true)
            .ok()?
            .with_timezone(&Utc);
        let next = self
            .parsed
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((prev, next));
        Some((prev, next))
    }

    /// The window `[start, end)` containing `now`, if the schedule is active at `now`.
    pub fn active_window(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (prev, _) = self.occurrences(now)?;
        let end = prev + chrono::Duration::seconds(self.duration_secs.min(i64::MAX as u64) as i64);
        (now < end).then_some((prev, end))
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.active_window(now).is_some()
    }
}

/// Bounds and class overrides in force at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounds {
    pub min: usize,
    pub max: usize,
    pub replica_class: Option<InstanceClass>,
    pub master_class: Option<InstanceClass>,
    /// Names of the schedules in force.
    pub schedules: Vec<String>,
}

impl Bounds {
    /// Combine the policy's own bounds with the schedules active at `now`: a schedule replaces
    /// min/max inside its window; among several active ones the highest min and the highest
    /// max win; the first one (in file order) that sets a class wins for that class. The result
    /// always has `min <= max <= cap` (`cap` = the configured replica list length).
    pub fn combine(
        min: usize,
        max: usize,
        cap: usize,
        schedules: &[Schedule],
        now: DateTime<Utc>,
    ) -> Bounds {
        let mut b = Bounds {
            min,
            max,
            replica_class: None,
            master_class: None,
            schedules: Vec::new(),
        };
        let (mut smin, mut smax): (Option<usize>, Option<usize>) = (None, None);
        for s in schedules {
            if !s.is_active(now) {
                continue;
            }
            b.schedules.push(s.name.clone());
            if let Some(m) = s.min_replicas {
                smin = Some(smin.map_or(m, |x| x.max(m)));
            }
            if let Some(m) = s.max_replicas {
                smax = Some(smax.map_or(m, |x| x.max(m)));
            }
            if b.replica_class.is_none() {
                b.replica_class = s.replica_class.clone();
            }
            if b.master_class.is_none() {
                b.master_class = s.master_class.clone();
            }
        }
        if let Some(m) = smin {
            b.min = m;
        }
        if let Some(m) = smax {
            b.max = m;
        }
        b.max = b.max.min(cap);
        if b.min > b.max {
            // A schedule's min above the policy max (or the list): the max gives way, capped.
            b.max = b.min.min(cap);
            b.min = b.min.min(b.max);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn business() -> Schedule {
        Schedule::new(
            "business-hours".into(),
            "0 8 * * MON-FRI",
            parse_timezone("Asia/Tokyo").unwrap(),
            9 * 3600,
            Some(3),
            Some(4),
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn weekday_window_in_tokyo() {
        let s = business();
        // 2026-11-25 is a Wednesday. 08:00 JST = 23:00Z the day before.
        let cases = [
            ("2026-11-24T22:59:59Z", false),
            ("2026-11-24T23:00:00Z", true),
            ("2026-11-25T07:59:59Z", true),
            ("2026-11-25T08:00:00Z", false),
            // Saturday 10:00 JST
            ("2026-11-28T01:00:00Z", false),
            // Monday 09:00 JST
            ("2026-11-30T00:00:00Z", true),
        ];
        for (at, want) in cases {
            assert_eq!(s.is_active(t(at)), want, "{at}");
        }
        // The cache gives the same answers in any order.
        for (at, want) in cases.iter().rev() {
            assert_eq!(s.is_active(t(at)), *want, "{at} (reverse)");
        }
    }

    #[test]
    fn dst_is_honoured() {
        let s = Schedule::new(
            "morning".into(),
            "0 8 * * *",
            parse_timezone("Europe/Paris").unwrap(),
            3600,
            Some(2),
            None,
            None,
            None,
        )
        .unwrap();
        // Winter: 08:00 Paris = 07:00Z; summer: 06:00Z.
        assert!(s.is_active(t("2026-01-15T07:30:00Z")));
        assert!(!s.is_active(t("2026-01-15T06:30:00Z")));
        assert!(s.is_active(t("2026-07-15T06:30:00Z")));
        assert!(!s.is_active(t("2026-07-15T07:30:00Z")));
    }

    #[test]
    fn bad_cron_and_zone_are_refused() {
        assert!(parse_cron("not a cron").is_err());
        assert!(parse_cron("0 0 30 2 *")
            .unwrap_err()
            .contains("never matches"));
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert!(parse_timezone("Asia/Tokyo").is_ok());
    }

    #[test]
    fn overlapping_windows_take_highest_min_and_max() {
        let mk = |min, max, class: Option<&str>| {
            Schedule::new(
                "x".into(),
                "* * * * *",
                Tz::UTC,
                3600,
                min,
                max,
                class.map(|c| InstanceClass::parse(c).unwrap()),
                None,
            )
            .unwrap()
        };
        let now = t("2026-01-01T00:00:30Z");
        let s = [
            mk(Some(2), Some(3), Some("db.r5.large")),
            mk(Some(1), Some(4), Some("db.r5.xlarge")),
        ];
        let b = Bounds::combine(0, 2, 5, &s, now);
        assert_eq!((b.min, b.max), (2, 4));
        assert_eq!(b.replica_class.unwrap().as_str(), "db.r5.large");
        // Outside any window the policy's bounds stand.
        let b = Bounds::combine(1, 2, 5, &[], now);
        assert_eq!((b.min, b.max, b.schedules.len()), (1, 2, 0));
        // Capped by the list; min never above max.
        let b = Bounds::combine(0, 9, 3, &[mk(Some(5), None, None)], now);
        assert_eq!((b.min, b.max), (3, 3));
    }
}
