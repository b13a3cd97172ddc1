//! The pure decision core: (policy, cluster spec, observed fleet, metric samples, remembered
//! scale state, now) → a [`Decision`]: desired replica count, direction, the bounds in force,
//! and machine-readable reasons, including what held it back. No I/O; time only as `now`.
//! The daemon, `elasticrds plan` and the backtest all call [`decide`]; [`ScaleState`] is the
//! state they carry between ticks (persisted as tags on the master by the daemon).
//!
//! Order of evaluation (documented in docs/policies.md):
//! 1. bounds in force (policy min/max, overridden by active schedules, capped by the list);
//! 2. serving set: available replicas; warm ones (available ≥ warm-up, lag ≤ bound) feed the
//!    averages; when no replica is available the master's metrics stand in (it serves reads);
//! 3. each rule proposes a replica count; the largest proposal wins (scale out if any rule
//!    says so, scale in only if all agree);
//! 4. bounds corrections (below min / above max) bypass cooldown, stabilization and max step;
//! 5. otherwise holds: paused direction, action in flight, missing/stale/warming data,
//!    stabilization window, cooldown; then the max step per action.

use super::config::ClusterSpec;
use super::domain::{
    Instance, InstanceId, InstanceStatus, MetricKind, MetricSeries, Sample, Statistic, Tags,
    TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE,
};
use super::plan::{ClusterView, Target};
use super::policy::{Aggregation, MissingScaleOut, Policy, RuleKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt::{self, Write as _};
use std::time::Duration;

// ---------------------------------------------------------------- decision types

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Out,
    In,
    None,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::None => "none",
        }
    }
}

/// One reason: a stable machine-readable `code` and a human `text`.
///
/// Codes: `target_tracking`, `threshold`, `within_tolerance`, `steady`, `clamped_max`,
/// `clamped_min`, `schedule`, `max_step`, `master_serving`, `warmup`, and the holds
/// `cooldown`, `stabilization`, `no_data`, `stale`, `in_flight`, `paused`; plus
/// `observe_only`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: &'static str,
    pub text: String,
}

impl Reason {
    fn new(code: &'static str, text: impl Into<String>) -> Self {
        Reason {
            code,
            text: text.into(),
        }
    }
}

/// What one rule saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observed {
    pub metric: MetricKind,
    pub statistic: Statistic,
    pub aggregation: Aggregation,
    /// Aggregated value over the instances that had fresh data; `None` when none had.
    pub value: Option<f64>,
    /// Target-tracking target, or the threshold rule's `above` (else `below`).
    pub target: Option<f64>,
    /// How many instances the value was aggregated over.
    pub instances: usize,
    /// The count this rule proposed, when it had a value.
    pub proposal: Option<usize>,
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub cluster: String,
    pub at: DateTime<Utc>,
    /// Configured replicas that exist and are not being deleted.
    pub current: usize,
    pub desired: usize,
    pub direction: Direction,
    /// Bounds in force at `at` (schedules applied, capped by the replica list).
    pub min: usize,
    pub max: usize,
    /// Schedules in force at `at`.
    pub schedules: Vec<String>,
    /// The primary reason code (also the metrics `reason` label).
    #[serde(rename = "reason")]
    pub primary: &'static str,
    pub reasons: Vec<Reason>,
    pub observed: Vec<Observed>,
    /// The rules' combined recommendation clamped to the bounds, before holds, stabilization
    /// and max step; `None` when data was incomplete. Fed back through [`ScaleState::record`].
    pub recommendation: Option<usize>,
    #[serde(rename = "cooldown_remaining_out_secs", serialize_with = "ser_secs")]
    pub cooldown_remaining_out: Duration,
    #[serde(rename = "cooldown_remaining_in_secs", serialize_with = "ser_secs")]
    pub cooldown_remaining_in: Duration,
    /// When true, nothing may be changed: callers log and export, and never execute.
    pub observe_only: bool,
    /// What to hand to the reconciler: replicas = desired, class overrides from schedules.
    pub target: Target,
    /// How long recommendations are kept for stabilization (from the policy).
    #[serde(skip)]
    pub history_secs: u64,
}

impl Decision {
    /// The code used as the metrics `reason` label.
    pub fn primary_reason(&self) -> &str {
        self.primary
    }
    /// True when the decision asks for a different replica count and is not observe-only.
    pub fn should_scale(&self) -> bool {
        !self.observe_only && self.direction != Direction::None
    }
    /// The reasons as one line (`code: text; ...`), for logs.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {} → {} ({})",
            self.cluster,
            self.current,
            self.desired,
            self.direction.as_str()
        );
        for r in &self.reasons {
            s.push_str("; ");
            s.push_str(&r.text);
        }
        s
    }
}

// ---------------------------------------------------------------- remembered state

/// State carried between ticks (and across restarts, as tags on the master).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScaleState {
    pub last_scale_out: Option<DateTime<Utc>>,
    pub last_scale_in: Option<DateTime<Utc>>,
    /// Recent recommendations for scale-in stabilization: values strictly decreasing, oldest
    /// first, so the first one inside the window is the highest there. At most `max + 1` long.
    pub recent_high: Vec<(DateTime<Utc>, usize)>,
    /// Likewise for scale-out stabilization: values strictly increasing (lowest first).
    pub recent_low: Vec<(DateTime<Utc>, usize)>,
    /// `direction desired reason` of the last decision, for operators.
    pub last_decision: Option<String>,
    /// A memo of the master's tags as last read for [`ScaleState::persisted_differs`]; not
    /// part of the state's value (never serialized, always compares equal).
    #[serde(skip)]
    pub persisted: PersistedMemo,
}

/// What a set of tags holds of a [`ScaleState`], read as [`PersistedState::differs_from`]
/// compares it: the scale times (Unix seconds), the last-decision tag as written, and each
/// recommendation history's values and newest time (a malformed history reads as empty, as
/// [`ScaleState::from_tags`] reads it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistedState {
    last_scale_out: Option<i64>,
    last_scale_in: Option<i64>,
    last_decision: Option<String>,
    high: (Vec<usize>, Option<i64>),
    low: (Vec<usize>, Option<i64>),
}

/// How long a persisted history may lag behind the state's newest recommendation before it
/// is refreshed even when nothing else changed (bounds what a restart can forget of a
/// stabilization window).
pub const STATE_REFRESH_SECS: i64 = 300;

impl PersistedState {
    /// Read `tags` once.
    pub fn read(tags: &Tags) -> PersistedState {
        let secs = |key| ScaleState::time_from_tags(tags, key).map(|t| t.timestamp());
        let history = |key| {
            ScaleState::fold_recent_tag(tags, key, (Vec::new(), None), |(mut v, newest), t, n| {
                v.push(n);
                (v, newest.max(Some(t)))
            })
            .unwrap_or_default()
        };
        PersistedState {
            last_scale_out: secs(TAG_LAST_SCALE_OUT),
            last_scale_in: secs(TAG_LAST_SCALE_IN),
            last_decision: tags.get(TAG_LAST_DECISION).cloned(),
            high: history(TAG_RECENT_HIGH),
            low: history(TAG_RECENT_LOW),
        }
    }

    /// Whether `state` differs materially from this: scale times, the last decision, the
    /// recommendation values, or a recommendation history more than [`STATE_REFRESH_SECS`]
    /// newer than the persisted one. (Refreshing timestamps alone every tick would cost two
    /// RDS calls per cluster per tick.)
    pub fn differs_from(&self, state: &ScaleState) -> bool {
        let secs = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp());
        if self.last_scale_out != secs(state.last_scale_out)
            || self.last_scale_in != secs(state.last_scale_in)
            || !state.last_decision_tag_is(self.last_decision.as_deref())
        {
            return true;
        }
        let same = |old: &[usize], now: &[(DateTime<Utc>, usize)]| {
            old.len() == now.len() && old.iter().zip(now).all(|(o, (_, n))| o == n)
        };
        if !same(&self.high.0, &state.recent_high) || !same(&self.low.0, &state.recent_low) {
            return true;
        }
        // The newest time, converted once (seconds are monotonic in the time).
        let newest = state
            .recent_high
            .iter()
            .chain(&state.recent_low)
            .map(|(t, _)| *t)
            .max()
            .map(|t| t.timestamp());
        match (self.high.1.max(self.low.1), newest) {
            (Some(o), Some(n)) => n - o > STATE_REFRESH_SECS,
            (None, None) => false,
            _ => true,
        }
    }
}

/// The master's tags a [`ScaleState`] last compared itself with, read: while a tick observes
/// the very same tag map (one shared copy, as the simulated fleet hands out until the next
/// write), they are not read again. Holding the map keeps its address from being reused.
#[derive(Clone, Default)]
pub struct PersistedMemo(Option<(std::sync::Arc<Tags>, PersistedState)>);

impl PartialEq for PersistedMemo {
    /// A memo is not part of a state's value.
    fn eq(&self, _: &PersistedMemo) -> bool {
        true
    }
}

impl fmt::Debug for PersistedMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersistedMemo")
    }
}

pub const TAG_LAST_SCALE_OUT: &str = "elasticrds:last-scale-out";
pub const TAG_LAST_SCALE_IN: &str = "elasticrds:last-scale-in";
pub const TAG_RECENT_HIGH: &str = "elasticrds:recent-high";
pub const TAG_RECENT_LOW: &str = "elasticrds:recent-low";
pub const TAG_LAST_DECISION: &str = "elasticrds:last-decision";
/// Every tag key [`ScaleState::to_tags`] writes.
pub const STATE_TAG_KEYS: [&str; 5] = [
    TAG_LAST_SCALE_OUT,
    TAG_LAST_SCALE_IN,
    TAG_RECENT_HIGH,
    TAG_RECENT_LOW,
    TAG_LAST_DECISION,
];
/// RDS tag values are at most 256 characters.
const TAG_VALUE_MAX: usize = 256;

fn encode_recent(v: &[(DateTime<Utc>, usize)]) -> String {
    // `t=n` parts joined by spaces, written into one string; the newest entries are kept
    // when the value would be too long: whole parts are dropped from the front while the
    // parts left take more than TAG_VALUE_MAX characters counting one separator each.
    let mut all = String::with_capacity(v.len() * 14);
    for (i, (t, n)) in v.iter().enumerate() {
        if i > 0 {
            all.push(' ');
        }
        let _ = write!(all, "{}={n}", t.timestamp());
    }
    let mut from = 0;
    while !v.is_empty() && all.len() - from + 1 > TAG_VALUE_MAX {
        match all[from..].find(' ') {
            Some(sp) => from += sp + 1,
            None => return String::new(),
        }
    }
    if from == 0 {
        all
    } else {
        all[from..].to_string()
    }
}

fn decode_recent(s: &str) -> Vec<(DateTime<Utc>, usize)> {
    fold_recent(s, Vec::new(), |mut v, t, n| {
        // Always a time: `fold_recent` checked the range.
        if let Some(t) = DateTime::from_timestamp(t, 0) {
            v.push((t, n));
        }
        v
    })
    .unwrap_or_default()
}

/// One `t=n` part of a recommendation-history tag.
fn recent_part(part: &str) -> Option<(i64, usize)> {
    let (t, n) = part.split_once('=')?;
    Some((t.parse().ok()?, n.parse().ok()?))
}

/// Fold `f` over the entries of a recommendation-history tag as (Unix seconds, value), oldest
/// first, in one pass; `None` when the tag is malformed (a part not `t=n`, a time out of
/// range, a value over 10,000, times decreasing): such a history reads as empty.
fn fold_recent<B>(s: &str, init: B, mut f: impl FnMut(B, i64, usize) -> B) -> Option<B> {
    let mut acc = init;
    let mut last: Option<i64> = None;
    for part in s.split_whitespace() {
        let (t, n) = recent_part(part)?;
        // Well inside chrono's range (±262,000 years) without working out the date.
        let in_range = (-8_000_000_000_000..=8_000_000_000_000).contains(&t)
            || DateTime::from_timestamp(t, 0).is_some();
        if !in_range || n > 10_000 || last.is_some_and(|l| l > t) {
            return None;
        }
        last = Some(t);
        acc = f(acc, t, n);
    }
    Some(acc)
}

fn parse_time(s: Option<&String>) -> Option<DateTime<Utc>> {
    let s = s?.trim();
    // What `to_tags` writes (`2026-03-02T10:00:00Z`), read without the general parser (the
    // persisted state is compared every tick); anything else, or a field out of range, goes
    // through it.
    parse_time_utc_secs(s).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    })
}

/// Whether a byte of the last decision is kept in its tag (RDS's tag character set).
fn tag_byte_allowed(b: u8) -> bool {
    TAG_BYTES[usize::from(b)]
}

/// [`tag_byte_allowed`] as a table (the last decision is checked every tick).
const TAG_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b' ' | b'_' | b'.' | b':' | b'/' | b'=' | b'+' | b'-' | b'@'
            );
        b += 1;
    }
    t
};

/// `t` as RFC 3339 in UTC to the second (`2026-03-02T10:00:00Z`), as
/// `to_rfc3339_opts(SecondsFormat::Secs, true)` writes it, without its general formatter
/// for the four-digit years (the state tags are written every few minutes).
fn utc_secs_text(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let y = t.year();
    if !(0..=9999).contains(&y) || t.nanosecond() >= 1_000_000_000 {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    }
    let mut b = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    // ASCII digits and separators only.
    String::from_utf8_lossy(&b).into_owned()
}

/// `YYYY-MM-DDTHH:MM:SSZ` exactly, when every field is in range.
fn parse_time_utc_secs(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(chrono::NaiveDateTime::new(date, time).and_utc())
}

impl ScaleState {
    /// The state as tags for the master (keys prefixed `elasticrds:`; values within RDS's tag
    /// character set and 256-character limit). Absent times are written as empty values, so
    /// writing them overwrites older ones.
    pub fn to_tags(&self) -> Tags {
        let time = |t: &Option<DateTime<Utc>>| t.map(utc_secs_text).unwrap_or_default();
        let mut tags = Tags::new();
        tags.insert(TAG_LAST_SCALE_OUT.into(), time(&self.last_scale_out));
        tags.insert(TAG_LAST_SCALE_IN.into(), time(&self.last_scale_in));
        tags.insert(TAG_RECENT_HIGH.into(), encode_recent(&self.recent_high));
        tags.insert(TAG_RECENT_LOW.into(), encode_recent(&self.recent_low));
        tags.insert(
            TAG_LAST_DECISION.into(),
            self.last_decision_tag_text().into_owned(),
        );
        tags
    }

    /// The value [`ScaleState::to_tags`] writes for the last decision, within RDS's tag
    /// character set and length, byte by byte: every character kept is ASCII, and no byte
    /// of any other character is.
    fn last_decision_tag_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.last_decision
            .as_deref()
            .unwrap_or_default()
            .bytes()
            .filter(|&b| tag_byte_allowed(b))
            .take(TAG_VALUE_MAX)
    }

    /// The value [`ScaleState::to_tags`] writes for the last decision, borrowed when the
    /// decision is written as it is (short enough, every byte allowed: the usual case).
    fn last_decision_tag_text(&self) -> std::borrow::Cow<'_, str> {
        let d = self.last_decision.as_deref().unwrap_or_default();
        if d.len() <= TAG_VALUE_MAX && d.bytes().all(tag_byte_allowed) {
            std::borrow::Cow::Borrowed(d)
        } else {
            // Only ASCII bytes are kept: always valid UTF-8.
            std::borrow::Cow::Owned(self.last_decision_tag_bytes().map(char::from).collect())
        }
    }

    /// Whether `value` is what [`ScaleState::to_tags`] would write for the last decision
    /// (without building the tags).
    pub fn last_decision_tag_is(&self, value: Option<&str>) -> bool {
        value.is_some_and(|v| *v == *self.last_decision_tag_text())
    }

    /// After a restart, fill in what the master's tags may have missed: a process killed after
    /// an AWS call but before its state write leaves the action visible only in the fleet. A
    /// configured replica elasticrds created (tagged `elasticrds:managed-by`) counts as a
    /// scale-out at its creation time (now, while RDS still reports it creating without a
    /// time); a configured replica being deleted counts as a scale-in now. Times only move
    /// forward, so the cooldowns hold at least as long as the tags alone say.
    pub fn recover_from_fleet(&mut self, view: &ClusterView, now: DateTime<Utc>) {
        for r in view.existing_replicas() {
            if r.status == InstanceStatus::Deleting {
                self.last_scale_in = self.last_scale_in.max(Some(now));
                continue;
            }
            let ours = r.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(TAG_MANAGED_BY_VALUE);
            let created = match (r.created_at, &r.status) {
                (Some(t), _) => Some(t.min(now)),
                (None, InstanceStatus::Creating) => Some(now),
                (None, _) => None,
            };
            if ours {
                self.last_scale_out = self.last_scale_out.max(created);
            }
        }
    }

    /// A scale time (`key` [`TAG_LAST_SCALE_OUT`] or [`TAG_LAST_SCALE_IN`]) as
    /// [`ScaleState::from_tags`] reads it.
    pub fn time_from_tags(tags: &Tags, key: &str) -> Option<DateTime<Utc>> {
        parse_time(tags.get(key))
    }

    /// Fold `f` over a recommendation history (`key` [`TAG_RECENT_HIGH`] or
    /// [`TAG_RECENT_LOW`]) as [`ScaleState::from_tags`] reads it, as (Unix seconds, value)
    /// pairs oldest first, without building the list (for comparisons every tick). `None`
    /// when the tag is malformed, which `from_tags` reads as an empty history; an absent tag
    /// is an empty one.
    pub fn fold_recent_tag<B>(
        tags: &Tags,
        key: &str,
        init: B,
        f: impl FnMut(B, i64, usize) -> B,
    ) -> Option<B> {
        fold_recent(tags.get(key).map_or("", String::as_str), init, f)
    }

    /// Read the state back; tolerant: a missing or malformed tag gives that field's default.
    pub fn from_tags(tags: &Tags) -> ScaleState {
        ScaleState {
            last_scale_out: parse_time(tags.get(TAG_LAST_SCALE_OUT)),
            last_scale_in: parse_time(tags.get(TAG_LAST_SCALE_IN)),
            recent_high: tags
                .get(TAG_RECENT_HIGH)
                .map(|s| decode_recent(s))
                .unwrap_or_default(),
            recent_low: tags
                .get(TAG_RECENT_LOW)
                .map(|s| decode_recent(s))
                .unwrap_or_default(),
            last_decision: tags
                .get(TAG_LAST_DECISION)
                .filter(|s| !s.is_empty())
                .cloned(),
            persisted: PersistedMemo::default(),
        }
    }

    /// Whether this state differs materially from what `tags` (the master's) hold
    /// ([`PersistedState::differs_from`]); the tags are read once per distinct tag map.
    pub fn persisted_differs(&mut self, tags: &std::sync::Arc<Tags>) -> bool {
        let seen =
            matches!(&self.persisted.0, Some((seen, _)) if std::sync::Arc::ptr_eq(seen, tags));
        if !seen {
            self.persisted.0 = Some((tags.clone(), PersistedState::read(tags)));
        }
        match &self.persisted.0 {
            Some((_, read)) => read.differs_from(self),
            None => PersistedState::read(tags).differs_from(self),
        }
    }

    /// Update after a tick: remember the recommendation for stabilization and, when the
    /// reconciler executed the scale action (`acted`), the time of the scale in its direction.
    pub fn record(&mut self, d: &Decision, acted: bool, now: DateTime<Utc>) {
        let keep = chrono::Duration::seconds(d.history_secs.min(86_400 * 7) as i64);
        let horizon = now - keep;
        if let Some(r) = d.recommendation {
            while self.recent_high.last().is_some_and(|(_, v)| *v <= r) {
                self.recent_high.pop();
            }
            self.recent_high.push((now, r));
            while self.recent_low.last().is_some_and(|(_, v)| *v >= r) {
                self.recent_low.pop();
            }
            self.recent_low.push((now, r));
        }
        // Entries at or before the horizon can no longer matter (a window is (now − W, now]).
        let drop_old = |v: &mut Vec<(DateTime<Utc>, usize)>| {
            let n = v.iter().take_while(|(t, _)| *t <= horizon).count();
            if n > 0 {
                v.drain(..n);
            }
        };
        drop_old(&mut self.recent_high);
        drop_old(&mut self.recent_low);
        if acted {
            match d.direction {
                Direction::Out => self.last_scale_out = Some(now),
                Direction::In => self.last_scale_in = Some(now),
                Direction::None => {}
            }
        }
        // Written into the previous string's buffer (one allocation less per tick).
        // "{direction} {desired} {primary}", without the formatting machinery.
        let text = self.last_decision.get_or_insert_with(String::new);
        text.clear();
        text.push_str(d.direction.as_str());
        text.push(' ');
        push_uint(text, d.desired as u64);
        text.push(' ');
        text.push_str(d.primary);
    }

    /// Highest recommendation inside `(now − window, now]`.
    fn highest_since(&self, now: DateTime<Utc>, window: u64) -> Option<usize> {
        if window == 0 {
            return None;
        }
        let from = now - chrono::Duration::seconds(window as i64);
        self.recent_high
            .iter()
            .find(|(t, _)| *t > from)
            .map(|(_, v)| *v)
    }

    /// Lowest recommendation inside `(now − window, now]`.
    fn lowest_since(&self, now: DateTime<Utc>, window: u64) -> Option<usize> {
        if window == 0 {
            return None;
        }
        let from = now - chrono::Duration::seconds(window as i64);
        self.recent_low
            .iter()
            .find(|(t, _)| *t > from)
            .map(|(_, v)| *v)
    }
}

// ---------------------------------------------------------------- helpers

/// `7m12s`, `45s`, `1h0m5s`.
pub fn fmt_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `format!` into a string sized for a rule's reason (no regrowth while it is written; the
/// rule reasons are built every tick).
macro_rules! text {
    ($($arg:tt)*) => {{
        let mut s = String::with_capacity(64);
        let _ = write!(s, $($arg)*);
        s
    }};
}

/// `v` with `decimals` (0 or 1) fractional digits, exactly as `{v:.0}` / `{v:.1}` print it
/// (the exact binary value rounded half to even), from integer arithmetic for the usual
/// values: a non-negative finite value below 10^15. Anything else is printed by `{:.N}`.
/// (The reasons format a value or two every tick; float formatting was most of that.)
fn write_fixed(f: &mut fmt::Formatter<'_>, v: f64, decimals: u32) -> fmt::Result {
    let decimals = decimals.min(1);
    match fixed_digits(v, decimals) {
        Some(q) if decimals == 1 => write!(f, "{}.{}", q / 10, q % 10),
        Some(q) => write!(f, "{q}"),
        None => write!(f, "{v:.*}", decimals as usize),
    }
}

/// [`write_fixed`] appended to `s` without the formatting machinery.
fn push_fixed(s: &mut String, v: f64, decimals: u32) {
    let decimals = decimals.min(1);
    match fixed_digits(v, decimals) {
        Some(q) if decimals == 1 => {
            push_uint(s, q / 10);
            s.push('.');
            push_uint(s, q % 10);
        }
        Some(q) => push_uint(s, q),
        None => {
            let _ = write!(s, "{v:.*}", decimals as usize);
        }
    }
}

/// `n` in decimal, as `{n}` prints it (64-bit: 128-bit division is a library call).
fn push_uint(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// `v · 10^decimals` rounded half to even, when `v` is one of the usual values
/// [`write_fixed`] prints without float formatting.
fn fixed_digits(v: f64, decimals: u32) -> Option<u64> {
    if !(v.is_finite() && v < 1e15) || v < 0.0 || v.is_sign_negative() {
        return None;
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    // v = m · 2^e exactly.
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let scale: u128 = if decimals == 1 { 10 } else { 1 };
    // q = v · 10^decimals rounded half to even.
    let q: u128 = if e >= 0 {
        // A whole number below 10^15: no rounding.
        (u128::from(m) << e) * scale
    } else {
        let s = e.unsigned_abs();
        let num = u128::from(m) * scale;
        if s >= 120 {
            // Below 2^-60: rounds to 0 (num < 2^57, far below half of 2^s).
            0
        } else {
            let q = num >> s;
            let r = num & ((1u128 << s) - 1);
            let half = 1u128 << (s - 1);
            if r > half || (r == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    // Below 10^16: always 64 bits.
    u64::try_from(q).ok()
}

/// [`write_fixed`] as a `Display`.
#[cfg(test)]
fn fixed(v: f64, decimals: u32) -> impl fmt::Display {
    fmt::from_fn(move |f| write_fixed(f, v, decimals))
}

/// An observed value as reasons show it (`63.2%`, `180`, `4.0s`); formatted where it is
/// written, without a string of its own.
fn fmt_value(metric: MetricKind, v: f64) -> impl fmt::Display {
    fmt::from_fn(move |f| match metric {
        MetricKind::Cpu => {
            write_fixed(f, v, 1)?;
            f.write_str("%")
        }
        MetricKind::Connections => write_fixed(f, v, 0),
        MetricKind::ReplicaLag => {
            write_fixed(f, v, 1)?;
            f.write_str("s")
        }
    })
}

/// [`fmt_value`] appended to `s`.
fn push_value(s: &mut String, metric: MetricKind, v: f64) {
    match metric {
        MetricKind::Cpu => {
            push_fixed(s, v, 1);
            s.push('%');
        }
        MetricKind::Connections => push_fixed(s, v, 0),
        MetricKind::ReplicaLag => {
            push_fixed(s, v, 1);
            s.push('s');
        }
    }
}

/// [`fmt_limit`] appended to `s`.
fn push_limit(s: &mut String, metric: MetricKind, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        let n = v as i64;
        if n < 0 {
            s.push('-');
        }
        push_uint(s, n.unsigned_abs());
        match metric {
            MetricKind::Cpu => s.push('%'),
            MetricKind::Connections => {}
            MetricKind::ReplicaLag => s.push('s'),
        }
    } else {
        let _ = write!(s, "{}", fmt_limit(metric, v));
    }
}

/// A target or threshold as reasons show it (`60%`, `62.5%`, `200`, `30s`).
fn fmt_limit(metric: MetricKind, v: f64) -> impl fmt::Display {
    fmt::from_fn(move |f| {
        if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
            // What `{v:.0}` prints for a whole number, without float formatting.
            write!(f, "{}", v as i64)?;
        } else if v.fract() == 0.0 {
            write!(f, "{v:.0}")?;
        } else {
            write!(f, "{v}")?;
        }
        match metric {
            MetricKind::Cpu => f.write_str("%"),
            MetricKind::Connections => Ok(()),
            MetricKind::ReplicaLag => f.write_str("s"),
        }
    })
}

/// Remaining cooldown: `cooldown − (now − last)`, never more than the cooldown itself (a
/// last-scale time in the future, e.g. a skewed clock, cannot block forever).
fn remaining(last: Option<DateTime<Utc>>, cooldown: u64, now: DateTime<Utc>) -> Duration {
    let Some(last) = last else {
        return Duration::ZERO;
    };
    let elapsed = (now - last).num_seconds();
    let cd = cooldown.min(i64::MAX as u64) as i64;
    Duration::from_secs((cd - elapsed.max(0)).clamp(0, cd) as u64)
}

/// Newest sample of `instance`'s series with a period start before `end`.
fn newest<'a>(
    metrics: &'a [MetricSeries],
    instance: &InstanceId,
    metric: MetricKind,
    statistic: Option<Statistic>,
    end: DateTime<Utc>,
) -> Option<&'a Sample> {
    let mut best: Option<&Sample> = None;
    for s in metrics {
        let q = &s.query;
        if q.metric != metric
            || statistic.is_some_and(|st| st != q.statistic)
            || q.instance != *instance
        {
            continue;
        }
        let n = s.samples.partition_point(|x| x.at < end);
        if let Some(x) = n.checked_sub(1).and_then(|i| s.samples.get(i)) {
            if best.is_none_or(|b| x.at > b.at) {
                best = Some(x);
            }
        }
    }
    best
}

struct Source<'a> {
    id: &'a InstanceId,
    /// Excluded from cpu/connections because its lag is above the warm-up bound.
    lagging: bool,
}

#[derive(Default)]
struct Gaps<'a> {
    missing: Vec<&'a InstanceId>,
    stale: Vec<(&'a InstanceId, DateTime<Utc>)>,
}

// ---------------------------------------------------------------- decide

/// Decide the replica count for one cluster. Pure and deterministic.
pub fn decide(
    policy: &Policy,
    spec: &ClusterSpec,
    view: &ClusterView,
    metrics: &[MetricSeries],
    state: &ScaleState,
    now: DateTime<Utc>,
) -> Decision {
    let bounds = policy.bounds_in(spec, view, now);
    let (min, max) = (bounds.min, bounds.max);
    let current = view.replica_count();
    let mut reasons: Vec<Reason> = Vec::new();
    let mut holds: Vec<Reason> = Vec::new();

    if !view.conflicts.is_empty() {
        let ids: Vec<&str> = view
            .conflicts
            .iter()
            .map(|c| c.instance.id.as_str())
            .collect();
        reasons.push(Reason::new(
            "blocked_slots",
            format!(
                "{} configured replica id(s) held by instances that are not replicas of the master ({}): at most {} of {} usable",
                ids.len(),
                ids.join(", "),
                spec.replicas.len().saturating_sub(view.conflicts.len()),
                spec.replicas.len()
            ),
        ));
    }

    if !bounds.schedules.is_empty() {
        reasons.push(Reason::new(
            "schedule",
            format!(
                "schedule {} in force: min {min} max {max}",
                bounds.schedules.join(", ")
            ),
        ));
    }

    let cd_out = remaining(state.last_scale_out, policy.scale_out.cooldown_secs, now);
    let last_any = state.last_scale_out.max(state.last_scale_in);
    let cd_in = remaining(last_any, policy.scale_in.cooldown_secs, now);

    // ---- serving set and sources
    let period = i64::from(policy.period_secs.max(1));
    let (_, end) = policy.fetch_window(now);
    let stale_before =
        end - chrono::Duration::seconds(period * i64::from(policy.missing_data.stale_periods));
    let warm_secs = policy.warmup.duration_secs.min(i64::MAX as u64) as i64;
    let available: Vec<&Instance> = view
        .existing_replicas()
        .filter(|i| i.status.is_available())
        .collect();
    let mut sources: Vec<Source> = Vec::with_capacity(available.len().max(1));
    let mut warming: Vec<String> = Vec::new();
    let basis: usize;
    if available.is_empty() {
        basis = 1;
        if let Some(m) = view.master.as_ref().filter(|m| m.status.is_available()) {
            sources.push(Source {
                id: &m.id,
                lagging: false,
            });
            if !policy.rules.is_empty() {
                reasons.push(Reason::new(
                    "master_serving",
                    format!(
                        "no replica available: the master {} serves reads, its metrics are used",
                        m.id
                    ),
                ));
            }
        }
    } else {
        basis = available.len();
        for i in &available {
            if let Some(since) = i.available_since {
                let age = (now - since).num_seconds();
                if age < warm_secs {
                    warming.push(format!(
                        "{} available for {} of {}",
                        i.id,
                        fmt_secs(age.max(0) as u64),
                        fmt_secs(warm_secs as u64)
                    ));
                    continue;
                }
            }
            let lagging = policy.warmup.max_lag_secs.is_some_and(|bound| {
                newest(metrics, &i.id, MetricKind::ReplicaLag, None, end)
                    .is_some_and(|s| s.value > bound && s.at >= stale_before)
            });
            if lagging {
                warming.push(format!(
                    "{} lagging above {}",
                    i.id,
                    fmt_limit(
                        MetricKind::ReplicaLag,
                        policy.warmup.max_lag_secs.unwrap_or(0.0)
                    )
                ));
            }
            sources.push(Source { id: &i.id, lagging });
        }
    }
    if !warming.is_empty() {
        reasons.push(Reason::new(
            "warmup",
            format!(
                "warming up, left out of averages but counted as capacity: {}",
                warming.join(", ")
            ),
        ));
    }

    // ---- rules
    let mut observed: Vec<Observed> = Vec::with_capacity(policy.rules.len());
    let mut complete = true;
    let mut gaps = Gaps::default();
    let mut warmup_only = false;
    let mut best: Option<(usize, &'static str)> = None; // usable proposal and its code
    let mut partial_best: Option<(usize, &'static str)> = None;
    // Each rule's text follows the reasons so far (nothing else is added during the rules).
    reasons.reserve(policy.rules.len() + 2);
    let rule_texts = &mut reasons;
    for rule in &policy.rules {
        let (mut sum, mut hi, mut n) = (0.0f64, f64::NEG_INFINITY, 0usize);
        let mut considered = 0usize;
        let mut rule_complete = true;
        for src in &sources {
            if src.lagging && rule.metric != MetricKind::ReplicaLag {
                continue;
            }
            considered += 1;
            match newest(metrics, src.id, rule.metric, Some(rule.statistic), end) {
                None => {
                    rule_complete = false;
                    if !gaps.missing.contains(&src.id) {
                        gaps.missing.push(src.id);
                    }
                }
                Some(s) if s.at < stale_before || !s.value.is_finite() => {
                    rule_complete = false;
                    if !gaps.stale.iter().any(|(i, _)| *i == src.id) {
                        gaps.stale.push((src.id, s.at));
                    }
                }
                Some(s) => {
                    sum += s.value;
                    hi = hi.max(s.value);
                    n += 1;
                }
            }
        }
        if considered == 0 {
            rule_complete = false;
            warmup_only = true;
        }
        complete &= rule_complete;
        let value = (n > 0).then(|| match rule.aggregation {
            Aggregation::Average => sum / n as f64,
            Aggregation::Max => hi,
        });
        let (target, proposal) = match (&rule.kind, value) {
            (RuleKind::TargetTracking { target, .. }, None) => (Some(*target), None),
            (RuleKind::TargetTracking { target, tolerance }, Some(v)) => {
                let ratio = v / target;
                if (ratio - 1.0).abs() <= *tolerance {
                    // "{metric} {value} within {tolerance:.0}% of target {target}"
                    let mut s = String::with_capacity(64);
                    s.push_str(rule.metric.as_str());
                    s.push(' ');
                    push_value(&mut s, rule.metric, v);
                    s.push_str(" within ");
                    push_fixed(&mut s, tolerance * 100.0, 0);
                    s.push_str("% of target ");
                    push_limit(&mut s, rule.metric, *target);
                    rule_texts.push(Reason::new("within_tolerance", s));
                    (Some(*target), Some((current, "within_tolerance")))
                } else {
                    let want = (basis as f64 * ratio - 1e-9).ceil().max(0.0);
                    let want = if want >= 10_000.0 {
                        10_000
                    } else {
                        want as usize
                    };
                    // "{metric} {value} {>|<} target {target} → {want}"
                    let mut s = String::with_capacity(64);
                    s.push_str(rule.metric.as_str());
                    s.push(' ');
                    push_value(&mut s, rule.metric, v);
                    s.push_str(if ratio > 1.0 {
                        " > target "
                    } else {
                        " < target "
                    });
                    push_limit(&mut s, rule.metric, *target);
                    s.push_str(" → ");
                    push_uint(&mut s, want as u64);
                    rule_texts.push(Reason::new("target_tracking", s));
                    (Some(*target), Some((want, "target_tracking")))
                }
            }
            (RuleKind::Threshold { above, below, .. }, None) => ((*above).or(*below), None),
            (
                RuleKind::Threshold {
                    above,
                    add,
                    below,
                    remove,
                },
                Some(v),
            ) => {
                let shown = (*above).or(*below);
                if let Some(a) = above.filter(|a| v > *a) {
                    // Added to the serving replicas: replicas still being created already
                    // count, so a breach that persists while they come does not stack more.
                    let want = (basis + add).max(current);
                    let note = if basis + add <= current && basis < current {
                        " (replicas in flight counted)"
                    } else {
                        ""
                    };
                    rule_texts.push(Reason::new(
                        "threshold",
                        text!(
                            "{} {} > {} → +{add} → {want}{note}",
                            rule.metric,
                            fmt_value(rule.metric, v),
                            fmt_limit(rule.metric, a)
                        ),
                    ));
                    (shown, Some((want, "threshold")))
                } else if let Some(b) = below.filter(|b| v < *b) {
                    let want = current.saturating_sub(*remove);
                    rule_texts.push(Reason::new(
                        "threshold",
                        text!(
                            "{} {} < {} → -{remove} → {want}",
                            rule.metric,
                            fmt_value(rule.metric, v),
                            fmt_limit(rule.metric, b)
                        ),
                    ));
                    (shown, Some((want, "threshold")))
                } else {
                    let range = match (above, below) {
                        (Some(a), Some(b)) => text!(
                            "between {} and {}",
                            fmt_limit(rule.metric, *b),
                            fmt_limit(rule.metric, *a)
                        ),
                        (Some(a), None) => text!("≤ {}", fmt_limit(rule.metric, *a)),
                        (None, Some(b)) => text!("≥ {}", fmt_limit(rule.metric, *b)),
                        (None, None) => String::new(),
                    };
                    rule_texts.push(Reason::new(
                        "steady",
                        text!("{} {} {range}", rule.metric, fmt_value(rule.metric, v)),
                    ));
                    (shown, Some((current, "steady")))
                }
            }
        };
        if let Some(p) = proposal {
            if partial_best.is_none_or(|(b, _)| p.0 > b) {
                partial_best = Some(p);
            }
        }
        observed.push(Observed {
            metric: rule.metric,
            statistic: rule.statistic,
            aggregation: rule.aggregation,
            value,
            target,
            instances: n,
            proposal: proposal.map(|p| p.0),
        });
    }
    if complete {
        best = partial_best;
    } else if policy.missing_data.scale_out == MissingScaleOut::Act {
        // Only ever used for a scale-out (scale-in needs complete data).
        best = partial_best.filter(|(p, _)| *p > current);
    }

    // Data holds: what is missing, stale or still warming.
    let mut data_holds: Vec<Reason> = Vec::new();
    for id in &gaps.missing {
        data_holds.push(Reason::new("no_data", format!("held: no data for {id}")));
    }
    for (id, at) in &gaps.stale {
        let age = (end - *at).num_seconds().max(0) / period;
        data_holds.push(Reason::new(
            "stale",
            format!(
                "held: stale data for {id} (newest sample {} is {age} periods old)",
                at.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }
    if warmup_only && !policy.rules.is_empty() {
        let text = if sources.is_empty() && available.is_empty() {
            "held: no replica and no available master to read metrics from".to_string()
        } else {
            "held: every serving replica is warming up".to_string()
        };
        data_holds.push(Reason::new(
            if sources.is_empty() && available.is_empty() {
                "no_data"
            } else {
                "warmup"
            },
            text,
        ));
    }

    // ---- in flight
    let master_ok = view
        .master
        .as_ref()
        .is_some_and(|m| m.status.is_available());
    let mut flight: Vec<Reason> = Vec::new();
    match &view.master {
        None => flight.push(Reason::new(
            "in_flight",
            format!("held: master {} does not exist", spec.master.id),
        )),
        Some(m) if !m.status.is_available() => flight.push(Reason::new(
            "in_flight",
            format!("held: master {} is {}", m.id, m.status),
        )),
        _ => {}
    }
    for i in view.existing_replicas() {
        if i.status.is_busy() {
            flight.push(Reason::new(
                "in_flight",
                format!("held: {} is {}", i.id, i.status),
            ));
        }
    }
    let replicas_busy = view.existing_replicas().any(|i| i.status.is_busy());

    // ---- decide
    let recommendation = best.map(|(r, _)| r.clamp(min, max));
    let mut desired = current;
    let mut driver: &'static str = best.map_or("steady", |(_, c)| c);
    if current < min {
        driver = "clamped_min";
        reasons.push(Reason::new(
            "clamped_min",
            format!("{current} below min {min}: raise to min {min}"),
        ));
        if !policy.scale_out.enabled {
            holds.push(Reason::new("paused", "held: scale-out paused"));
        } else if !master_ok {
            holds.extend(flight.iter().take(1).cloned());
        } else {
            desired = min;
            // The load may need more than the min: go further when a scale-out would be
            // allowed anyway (no cooldown), within the step counted from the min.
            if let Some(r) = recommendation.filter(|r| *r > min && cd_out.is_zero()) {
                desired = r.min(min + policy.scale_out.max_step);
                reasons.push(Reason::new(
                    best.map_or("target_tracking", |(_, c)| c),
                    format!("the load needs {r}: → {desired}"),
                ));
            }
        }
    } else if current > max {
        driver = "clamped_max";
        reasons.push(Reason::new(
            "clamped_max",
            format!("{current} above max {max}: lower to max {max}"),
        ));
        if !policy.scale_in.enabled {
            holds.push(Reason::new("paused", "held: scale-in paused"));
        } else if !flight.is_empty() {
            holds.extend(flight.iter().cloned());
        } else {
            desired = max;
        }
    } else if let Some((raw, code)) = best {
        let r = raw.clamp(min, max);
        if raw > max {
            reasons.push(Reason::new("clamped_max", format!("clamped to max {max}")));
            driver = "clamped_max";
        } else if raw < min {
            reasons.push(Reason::new("clamped_min", format!("clamped to min {min}")));
            driver = "clamped_min";
        } else {
            driver = code;
        }
        if r > current {
            let d = &policy.scale_out;
            if !d.enabled {
                holds.push(Reason::new("paused", "held: scale-out paused"));
            }
            if !master_ok || (replicas_busy && !d.while_in_flight) {
                holds.extend(flight.iter().cloned());
            }
            if !complete {
                // Acting on partial data (missing_data.scale_out: act): say so, no hold.
                for h in &data_holds {
                    reasons.push(Reason::new(
                        h.code,
                        h.text.replacen("held: ", "acting despite: ", 1),
                    ));
                }
            }
            let stab = state
                .lowest_since(now, d.stabilization_secs)
                .map_or(r, |low| low.min(r));
            if stab <= current {
                holds.push(Reason::new(
                    "stabilization",
                    format!(
                        "held: scale-out stabilization: lowest recommendation in the last {} is {stab}",
                        fmt_secs(d.stabilization_secs)
                    ),
                ));
            }
            if !cd_out.is_zero() {
                holds.push(Reason::new(
                    "cooldown",
                    format!(
                        "held: scale-out cooldown {} left",
                        fmt_secs(cd_out.as_secs())
                    ),
                ));
            }
            let want = stab.min(current + d.max_step);
            if want < stab {
                reasons.push(Reason::new(
                    "max_step",
                    format!("limited to +{} per action → {want}", d.max_step),
                ));
            }
            if holds.is_empty() {
                desired = want;
            }
        } else if r < current {
            let d = &policy.scale_in;
            if !d.enabled {
                holds.push(Reason::new("paused", "held: scale-in paused"));
            }
            if !flight.is_empty() {
                holds.extend(flight.iter().cloned());
            }
            let stab = state
                .highest_since(now, d.stabilization_secs)
                .map_or(r, |high| high.max(r));
            if stab >= current {
                holds.push(Reason::new(
                    "stabilization",
                    format!(
                        "held: scale-in stabilization: highest recommendation in the last {} is {stab}",
                        fmt_secs(d.stabilization_secs)
                    ),
                ));
            }
            if !cd_in.is_zero() {
                holds.push(Reason::new(
                    "cooldown",
                    format!("held: scale-in cooldown {} left", fmt_secs(cd_in.as_secs())),
                ));
            }
            let want = stab.max(current.saturating_sub(d.max_step));
            if want > stab {
                reasons.push(Reason::new(
                    "max_step",
                    format!("limited to -{} per action → {want}", d.max_step),
                ));
            }
            if holds.is_empty() {
                desired = want;
            }
        }
    }
    // Incomplete data holds whatever it prevented (and is always reported).
    if !complete {
        let in_bounds = current >= min && current <= max;
        if in_bounds && best.is_none() {
            holds.extend(data_holds);
        } else if !in_bounds {
            reasons.extend(data_holds);
        }
    }

    let primary = holds.first().map_or(driver, |h| h.code);
    reasons.extend(holds);
    if policy.observe_only {
        reasons.push(Reason::new(
            "observe_only",
            "observe-only: decided and reported, nothing will be changed",
        ));
    }
    if policy.rules.is_empty() && reasons.is_empty() {
        reasons.push(Reason::new("steady", "no rules"));
    }
    let direction = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::Out,
        std::cmp::Ordering::Less => Direction::In,
        std::cmp::Ordering::Equal => Direction::None,
    };
    Decision {
        cluster: spec.name.clone(),
        at: now,
        current,
        desired,
        direction,
        min,
        max,
        schedules: bounds.schedules,
        primary,
        reasons,
        observed,
        recommendation: if complete { recommendation } else { None },
        cooldown_remaining_out: cd_out,
        cooldown_remaining_in: cd_in,
        observe_only: policy.observe_only,
        target: Target {
            replicas: desired,
            replica_class: bounds.replica_class,
            master_class: bounds.master_class,
        },
        history_secs: policy.history_secs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::domain::{Instance, InstanceClass, InstanceStatus, MetricQuery};

    const CONFIG: &str = "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n    - {id: c1s2, instance_class: db.t3.micro}\n    - {id: c1s3, instance_class: db.t3.micro}\n    - {id: c1s4, instance_class: db.t3.micro}\n";

    #[test]
    fn state_times_read_as_the_rfc3339_parser_reads_them() {
        let full = |s: &str| {
            DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|d| d.with_timezone(&Utc))
        };
        for s in [
            "2026-03-02T10:00:00Z",
            " 2026-03-02T10:02:00Z ",
            "2024-02-29T23:59:59Z",
            "2023-02-29T00:00:00Z",
            "2026-13-02T10:00:00Z",
            "2026-03-02T24:00:00Z",
            "2026-03-02T23:59:60Z",
            "2026-03-02t10:00:00z",
            "2026-03-02T10:00:00+00:00",
            "2026-03-02T10:00:00.5Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-0a-02T10:00:00Z",
            "+026-03-02T10:00:00Z",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_time(Some(&s.to_string())), full(s), "{s:?}");
        }
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 2, 10, 0, 0).unwrap();
        let written = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(parse_time_utc_secs(&written), Some(t));
    }

    #[test]
    fn fixed_prints_what_std_prints() {
        // Exact ties (x.x5, x.5 in binary), near ties, tiny, subnormal, large, whole,
        // negative, signed zero, non-finite, and a pseudo-random spread.
        let mut vals = vec![
            0.0,
            -0.0,
            0.05,
            0.25,
            0.75,
            0.5,
            1.5,
            2.5,
            3.5,
            1.25,
            1.35,
            2.45,
            0.95,
            9.95,
            99.95,
            15.000000000000002,
            14.999999999999998,
            63.25,
            79.75,
            1e-300,
            5e-324,
            1e-20,
            0.049999999999999996,
            999_999_999_999_999.9,
            1e15,
            1e16,
            123_456_789.05,
            -1.25,
            -0.01,
            -3.0,
            -1e14,
            -2.5e15,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for k in 0..200_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
            vals.push(match k % 4 {
                0 => unit * 100.0,
                1 => unit * 1e6,
                2 => (unit * 2000.0).round() / 20.0, // many exact and near ties
                _ => f64::from_bits(seed >> 2),
            });
        }
        for v in vals {
            assert_eq!(fixed(v, 1).to_string(), format!("{v:.1}"), "{v:e}");
            assert_eq!(fixed(v, 0).to_string(), format!("{v:.0}"), "{v:e}");
            for m in MetricKind::ALL {
                let (mut value, mut limit) = (String::new(), String::new());
                push_value(&mut value, m, v);
                push_limit(&mut limit, m, v);
                assert_eq!(value, fmt_value(m, v).to_string(), "{v:e}");
                assert_eq!(limit, fmt_limit(m, v).to_string(), "{v:e}");
            }
        }
        for n in [0u64, 7, 10, 99, 1000, 10_000, u64::MAX - 1, u64::MAX] {
            let mut s = String::new();
            push_uint(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    /// 12:00:30Z: the fetch window ends at 11:59, the newest final sample starts at 11:58.
    fn now() -> DateTime<Utc> {
        t("2026-11-25T12:00:30Z")
    }
    fn mins(m: i64) -> chrono::Duration {
        chrono::Duration::minutes(m)
    }

    fn config() -> Config {
        Config::parse("c.yaml", CONFIG).unwrap()
    }
    fn policy(extra: &str) -> Policy {
        Policy::parse("p.yaml", &format!("cluster: c1\n{extra}"), &config()).unwrap()
    }

    fn inst(id: &str, status: &str, warm_mins: Option<i64>) -> Instance {
        Instance {
            id: InstanceId::parse(id).unwrap(),
            class: InstanceClass::parse("db.t3.micro").unwrap(),
            status: InstanceStatus::parse(status),
            engine: "mysql".into(),
            multi_az: false,
            source: None,
            replicas: vec![],
            endpoint: None,
            created_at: None,
            source_arn: None,
            arn: None,
            available_since: warm_mins.map(|m| now() - mins(m)),
            tags: Tags::new().into(),
        }
    }

    /// Replicas 1..: each `(status, available for minutes)`; master available.
    fn view(replicas: &[(&str, Option<i64>)]) -> ClusterView {
        let mut v = ClusterView {
            master: Some(inst("c1m", "available", None)),
            replicas: vec![None; 4],
            conflicts: Vec::new(),
            foreign: vec![],
        };
        for (i, (st, w)) in replicas.iter().enumerate() {
            v.replicas[i] = Some(inst(&format!("c1s{}", i + 1), st, *w));
        }
        v
    }
    fn avail(n: usize) -> ClusterView {
        view(&vec![("available", None); n])
    }

    fn series(id: &str, metric: MetricKind, stat: Statistic, vals: &[(i64, f64)]) -> MetricSeries {
        // (minutes before 11:58, value)
        let base = t("2026-11-25T11:58:00Z");
        MetricSeries {
            query: MetricQuery {
                instance: InstanceId::parse(id).unwrap(),
                metric,
                statistic: stat,
                period_secs: 60,
            },
            samples: vals
                .iter()
                .rev()
                .map(|(m, v)| Sample {
                    at: base - mins(*m),
                    value: *v,
                })
                .collect(),
        }
    }
    fn cpu(ids: &[&str], v: f64) -> Vec<MetricSeries> {
        ids.iter()
            .map(|id| series(id, MetricKind::Cpu, Statistic::Average, &[(0, v), (1, v)]))
            .collect()
    }
    const IDS: [&str; 4] = ["c1s1", "c1s2", "c1s3", "c1s4"];

    fn run(p: &Policy, v: &ClusterView, m: &[MetricSeries], s: &ScaleState) -> Decision {
        decide(p, config().cluster("c1").unwrap(), v, m, s, now())
    }
    fn has(d: &Decision, code: &str, text: &str) -> bool {
        d.reasons
            .iter()
            .any(|r| r.code == code && r.text.contains(text))
    }

    struct Case {
        name: &'static str,
        policy: &'static str,
        view: ClusterView,
        metrics: Vec<MetricSeries>,
        state: ScaleState,
        desired: usize,
        primary: &'static str,
        reason: (&'static str, &'static str),
    }

    fn cases() -> Vec<Case> {
        let st = ScaleState::default;
        vec![
            Case {
                name: "target tracking scales out",
                policy: "",
                view: avail(2),
                metrics: cpu(&IDS[..2], 82.1),
                state: st(),
                desired: 3,
                primary: "target_tracking",
                reason: ("target_tracking", "cpu 82.1% > target 66% → 3"),
            },
            Case {
                name: "within tolerance",
                policy: "",
                view: avail(2),
                metrics: cpu(&IDS[..2], 64.0),
                state: st(),
                desired: 2,
                primary: "within_tolerance",
                reason: ("within_tolerance", "cpu 64.0% within 15% of target 66%"),
            },
            Case {
                name: "scale-in limited to one step",
                policy: "",
                view: avail(3),
                metrics: cpu(&IDS[..3], 10.0),
                state: st(),
                desired: 2,
                primary: "target_tracking",
                reason: ("max_step", "limited to -1 per action → 2"),
            },
            Case {
                name: "scale-out limited to two steps",
                policy: "",
                view: avail(1),
                metrics: cpu(&IDS[..1], 100.0 * 4.0),
                state: st(),
                desired: 3,
                primary: "clamped_max",
                reason: ("max_step", "limited to +2 per action → 3"),
            },
            Case {
                name: "clamped to max",
                policy: "",
                view: avail(3),
                metrics: cpu(&IDS[..3], 95.0),
                state: st(),
                desired: 4,
                primary: "clamped_max",
                reason: ("clamped_max", "clamped to max 4"),
            },
            Case {
                name: "raised to min without data",
                policy: "min_replicas: 2\n",
                view: avail(0),
                metrics: vec![],
                state: st(),
                desired: 2,
                primary: "clamped_min",
                reason: ("clamped_min", "raise to min 2"),
            },
            Case {
                name: "above max lowered without data",
                policy: "max_replicas: 2\n",
                view: avail(4),
                metrics: vec![],
                state: st(),
                desired: 2,
                primary: "clamped_max",
                reason: ("clamped_max", "lower to max 2"),
            },
            Case {
                name: "scale-in cooldown",
                policy: "",
                view: avail(3),
                metrics: cpu(&IDS[..3], 10.0),
                state: ScaleState {
                    last_scale_in: Some(now() - mins(7) - chrono::Duration::seconds(48)),
                    ..st()
                },
                desired: 3,
                primary: "cooldown",
                reason: ("cooldown", "held: scale-in cooldown 7m12s left"),
            },
            Case {
                name: "scale-in cooldown counts from a scale-out too",
                policy: "",
                view: avail(3),
                metrics: cpu(&IDS[..3], 10.0),
                state: ScaleState {
                    last_scale_out: Some(now() - mins(10)),
                    ..st()
                },
                desired: 3,
                primary: "cooldown",
                reason: ("cooldown", "held: scale-in cooldown 5m0s left"),
            },
            Case {
                name: "scale-out cooldown",
                policy: "",
                view: avail(2),
                metrics: cpu(&IDS[..2], 90.0),
                state: ScaleState {
                    last_scale_out: Some(now() - mins(2)),
                    ..st()
                },
                desired: 2,
                primary: "cooldown",
                reason: ("cooldown", "held: scale-out cooldown 3m0s left"),
            },
            Case {
                name: "scale-out ignores an old scale-in",
                policy: "",
                view: avail(2),
                metrics: cpu(&IDS[..2], 90.0),
                state: ScaleState {
                    last_scale_in: Some(now() - mins(1)),
                    ..st()
                },
                desired: 3,
                primary: "target_tracking",
                reason: ("target_tracking", "→ 3"),
            },
            Case {
                name: "scale-in stabilization",
                policy: "",
                view: avail(3),
                metrics: cpu(&IDS[..3], 10.0),
                state: ScaleState {
                    recent_high: vec![(now() - mins(9), 3), (now() - mins(1), 1)],
                    ..st()
                },
                desired: 3,
                primary: "stabilization",
                reason: (
                    "stabilization",
                    "highest recommendation in the last 10m0s is 3",
                ),
            },
            Case {
                name: "stabilization window has passed",
                policy: "",
                view: avail(3),
                metrics: cpu(&IDS[..3], 10.0),
                state: ScaleState {
                    recent_high: vec![(now() - mins(11), 3), (now() - mins(1), 1)],
                    ..st()
                },
                desired: 2,
                primary: "target_tracking",
                reason: ("target_tracking", "cpu 10.0% < target 66% → 1"),
            },
            Case {
                name: "scale-out stabilization (configured)",
                policy: "scale_out: {stabilization: 3m}\n",
                view: avail(2),
                metrics: cpu(&IDS[..2], 90.0),
                state: ScaleState {
                    recent_low: vec![(now() - mins(2), 2)],
                    ..st()
                },
                desired: 2,
                primary: "stabilization",
                reason: ("stabilization", "lowest recommendation in the last 3m0s is 2"),
            },
            Case {
                name: "no data for a replica",
                policy: "",
                view: avail(2),
                metrics: cpu(&IDS[..1], 90.0),
                state: st(),
                desired: 2,
                primary: "no_data",
                reason: ("no_data", "held: no data for c1s2"),
            },
            Case {
                name: "no data never scales in, even with act",
                policy: "missing_data: {scale_out: act}\n",
                view: avail(3),
                metrics: cpu(&IDS[..2], 5.0),
                state: st(),
                desired: 3,
                primary: "no_data",
                reason: ("no_data", "held: no data for c1s3"),
            },
            Case {
                name: "act on present metrics for a scale-out",
                policy: "missing_data: {scale_out: act}\n",
                view: avail(2),
                metrics: cpu(&IDS[..1], 90.0),
                state: st(),
                desired: 3,
                primary: "target_tracking",
                reason: ("no_data", "acting despite: no data for c1s2"),
            },
            Case {
                name: "stale data",
                policy: "",
                view: avail(1),
                metrics: vec![series("c1s1", MetricKind::Cpu, Statistic::Average, &[(4, 90.0)])],
                state: st(),
                desired: 1,
                primary: "stale",
                reason: ("stale", "held: stale data for c1s1"),
            },
            Case {
                name: "two missed periods are not stale yet",
                policy: "",
                view: avail(1),
                metrics: vec![series("c1s1", MetricKind::Cpu, Statistic::Average, &[(2, 90.0)])],
                state: st(),
                desired: 2,
                primary: "target_tracking",
                reason: ("target_tracking", "→ 2"),
            },
            Case {
                name: "warming replica left out of the average, counted as capacity",
                policy: "",
                view: view(&[("available", None), ("available", Some(4))]),
                // c1s2 is at 0 % (no traffic yet): left out, the average stays at 45.
                metrics: {
                    let mut m = cpu(&IDS[..1], 45.0);
                    m.extend(cpu(&IDS[1..2], 0.0));
                    m
                },
                state: st(),
                desired: 2,
                primary: "target_tracking",
                reason: ("warmup", "c1s2 available for 4m0s of 10m0s"),
            },
            Case {
                name: "all replicas warming",
                policy: "",
                view: view(&[("available", Some(1)), ("available", Some(2))]),
                metrics: cpu(&IDS[..2], 5.0),
                state: st(),
                desired: 2,
                primary: "warmup",
                reason: ("warmup", "held: every serving replica is warming up"),
            },
            Case {
                name: "scale-in held while a replica is in flight",
                policy: "",
                view: view(&[("available", None), ("available", None), ("creating", None)]),
                metrics: cpu(&IDS[..2], 5.0),
                state: st(),
                desired: 3,
                primary: "in_flight",
                reason: ("in_flight", "held: c1s3 is creating"),
            },
            Case {
                name: "scale-out continues while creating, counting it as capacity",
                policy: "",
                view: view(&[("available", None), ("available", None), ("creating", None)]),
                // load 2 × 120 % = 240 → 4 replicas; 3 exist or are coming → +1.
                metrics: cpu(&IDS[..2], 120.0),
                state: st(),
                desired: 4,
                primary: "target_tracking",
                reason: ("target_tracking", "→ 4"),
            },
            Case {
                name: "scale-out held while in flight when configured",
                policy: "scale_out: {while_in_flight: false}\n",
                view: view(&[("available", None), ("creating", None)]),
                metrics: cpu(&IDS[..1], 150.0),
                state: st(),
                desired: 2,
                primary: "in_flight",
                reason: ("in_flight", "held: c1s2 is creating"),
            },
            Case {
                name: "scale-out paused",
                policy: "scale_out: {enabled: false}\n",
                view: avail(2),
                metrics: cpu(&IDS[..2], 90.0),
                state: st(),
                desired: 2,
                primary: "paused",
                reason: ("paused", "held: scale-out paused"),
            },
            Case {
                name: "scale-in paused",
                policy: "scale_in: {enabled: false}\n",
                view: avail(3),
                metrics: cpu(&IDS[..3], 5.0),
                state: st(),
                desired: 3,
                primary: "paused",
                reason: ("paused", "held: scale-in paused"),
            },
            Case {
                name: "master serves when no replica is available",
                policy: "min_replicas: 0\n",
                view: avail(0),
                metrics: cpu(&["c1m"], 90.0),
                state: st(),
                desired: 2,
                primary: "target_tracking",
                reason: ("master_serving", "the master c1m serves reads"),
            },
            Case {
                name: "threshold rule adds",
                policy: "rules:\n  - {metric: replica_lag, statistic: Maximum, aggregation: max, above: 30, add: 1, below: 5}\n",
                view: avail(2),
                metrics: vec![
                    series("c1s1", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 45.0)]),
                    series("c1s2", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 2.0)]),
                ],
                state: st(),
                desired: 3,
                primary: "threshold",
                reason: ("threshold", "replica_lag 45.0s > 30s → +1 → 3"),
            },
            Case {
                name: "threshold counts replicas in flight",
                policy: "rules:\n  - {metric: replica_lag, statistic: Maximum, aggregation: max, above: 30}\n",
                view: view(&[("available", None), ("available", None), ("creating", None)]),
                metrics: vec![
                    series("c1s1", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 45.0)]),
                    series("c1s2", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 2.0)]),
                ],
                state: st(),
                desired: 3,
                primary: "threshold",
                reason: ("threshold", "→ +1 → 3 (replicas in flight counted)"),
            },
            Case {
                name: "raised beyond min when the load needs it",
                policy: "min_replicas: 2\n",
                view: avail(0),
                metrics: cpu(&["c1m"], 150.0),
                state: st(),
                desired: 3,
                primary: "clamped_min",
                reason: ("target_tracking", "the load needs 3: → 3"),
            },
            Case {
                name: "several rules: scale in only if all agree",
                policy: "rules:\n  - {metric: cpu, target: 60}\n  - {metric: connections, above: 500, below: 100}\n",
                view: avail(3),
                metrics: {
                    let mut m = cpu(&IDS[..3], 5.0);
                    for id in &IDS[..3] {
                        m.push(series(id, MetricKind::Connections, Statistic::Average, &[(0, 300.0)]));
                    }
                    m
                },
                state: st(),
                desired: 3,
                primary: "steady",
                reason: ("steady", "connections 300 between 100 and 500"),
            },
            Case {
                name: "several rules: the largest proposal wins",
                policy: "rules:\n  - {metric: cpu, target: 60}\n  - {metric: connections, above: 500, add: 1, below: 100}\n",
                view: avail(2),
                metrics: {
                    let mut m = cpu(&IDS[..2], 5.0);
                    for id in &IDS[..2] {
                        m.push(series(id, MetricKind::Connections, Statistic::Average, &[(0, 900.0)]));
                    }
                    m
                },
                state: st(),
                desired: 3,
                primary: "threshold",
                reason: ("threshold", "connections 900 > 500 → +1 → 3"),
            },
            Case {
                name: "lagging replica left out of cpu",
                policy: "warmup: {max_lag: 60s}\n",
                view: avail(2),
                metrics: {
                    let mut m = cpu(&IDS[..1], 62.0);
                    m.extend(cpu(&IDS[1..2], 5.0));
                    m.push(series("c1s2", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 300.0)]));
                    m.push(series("c1s1", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 1.0)]));
                    m
                },
                state: st(),
                desired: 2,
                primary: "within_tolerance",
                reason: ("warmup", "c1s2 lagging above 60s"),
            },
            Case {
                name: "schedule raises min",
                policy: "schedules:\n  - {name: all-day, cron: '0 0 * * *', timezone: UTC, duration: 24h, min_replicas: 3}\n",
                view: avail(1),
                metrics: cpu(&IDS[..1], 10.0),
                state: st(),
                desired: 3,
                primary: "clamped_min",
                reason: ("schedule", "schedule all-day in force: min 3 max 4"),
            },
        ]
    }

    #[test]
    fn table_of_rules_and_holds() {
        let mut failures = Vec::new();
        for c in cases() {
            let p = policy(c.policy);
            let d = run(&p, &c.view, &c.metrics, &c.state);
            let ok = d.desired == c.desired
                && d.primary_reason() == c.primary
                && has(&d, c.reason.0, c.reason.1)
                && d.target.replicas == d.desired;
            if !ok {
                failures.push(format!(
                    "{}: desired {} (want {}), primary {} (want {}), reasons {:?}",
                    c.name, d.desired, c.desired, d.primary, c.primary, d.reasons
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn observe_only_decides_but_does_not_scale() {
        let p = policy("observe_only: true\n");
        let d = run(&p, &avail(2), &cpu(&IDS[..2], 90.0), &ScaleState::default());
        assert_eq!(d.desired, 3);
        assert!(d.observe_only);
        assert!(!d.should_scale());
        assert!(has(&d, "observe_only", "nothing will be changed"));
    }

    #[test]
    fn schedule_class_override_reaches_the_target() {
        let p = policy(
            "schedules:\n  - {cron: '0 0 * * *', duration: 24h, replica_class: db.r5.large}\n",
        );
        let d = run(&p, &avail(1), &cpu(&IDS[..1], 60.0), &ScaleState::default());
        assert_eq!(
            d.target.replica_class.as_ref().unwrap().as_str(),
            "db.r5.large"
        );
        assert_eq!(d.target.replicas, 1);
    }

    #[test]
    fn master_absent_holds() {
        let p = policy("");
        let mut v = avail(2);
        v.master = None;
        let d = run(&p, &v, &cpu(&IDS[..2], 5.0), &ScaleState::default());
        assert_eq!(d.desired, 2);
        assert_eq!(d.primary, "in_flight");
        assert!(has(&d, "in_flight", "master c1m does not exist"));
    }

    #[test]
    fn record_keeps_cooldown_times_and_a_monotone_history() {
        let p = policy("");
        let mut s = ScaleState::default();
        let d = run(&p, &avail(2), &cpu(&IDS[..2], 90.0), &s);
        assert_eq!(d.direction, Direction::Out);
        s.record(&d, true, now());
        assert_eq!(s.last_scale_out, Some(now()));
        assert_eq!(s.last_scale_in, None);
        assert_eq!(s.recent_high, vec![(now(), 3)]);
        // Not acted: no time recorded.
        let mut s2 = ScaleState::default();
        s2.record(&d, false, now());
        assert_eq!(s2.last_scale_out, None);
        // History keeps strictly decreasing values and forgets what is out of every window.
        let mut s3 = ScaleState {
            recent_high: vec![
                (now() - mins(30), 4),
                (now() - mins(5), 3),
                (now() - mins(2), 2),
            ],
            ..Default::default()
        };
        let mut d2 = d.clone();
        d2.recommendation = Some(2);
        s3.record(&d2, false, now());
        assert_eq!(s3.recent_high, vec![(now() - mins(5), 3), (now(), 2)]);
    }

    #[test]
    fn the_tag_byte_table_is_the_tag_character_set() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b" _.:/=+-@".contains(&b);
            assert_eq!(tag_byte_allowed(b), want, "{b}");
        }
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        let mut times: Vec<DateTime<Utc>> =
            vec![DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC];
        for base in [
            -62_167_219_200i64, // 0000-01-01
            -62_167_219_201,
            0,
            951_782_400, // 2000-02-29
            1_772_445_600,
            253_402_300_799, // 9999-12-31T23:59:59
            253_402_300_800,
        ] {
            for off in (-200_000..200_000).step_by(7_919) {
                for nanos in [0, 1, 999_999_999, 1_000_000_000, 1_999_999_999] {
                    if let Some(t) = DateTime::from_timestamp(base + off, nanos) {
                        times.push(t);
                    }
                }
            }
        }
        for t in times {
            assert_eq!(
                utc_secs_text(t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "{t:?}"
            );
        }
    }

    #[test]
    fn state_round_trips_through_tags_and_tolerates_junk() {
        let s = ScaleState {
            last_scale_out: Some(t("2026-11-25T11:00:00Z")),
            last_scale_in: None,
            recent_high: vec![
                (t("2026-11-25T11:50:00Z"), 3),
                (t("2026-11-25T11:55:00Z"), 2),
            ],
            recent_low: vec![(t("2026-11-25T11:55:00Z"), 2)],
            last_decision: Some("out 3 target_tracking".into()),
            ..Default::default()
        };
        let tags = s.to_tags();
        assert!(tags.keys().all(|k| k.starts_with("elasticrds:")));
        assert!(tags.values().all(|v| v.len() <= 256));
        assert_eq!(ScaleState::from_tags(&tags), s);
        let mut junk = tags.clone();
        junk.insert(TAG_LAST_SCALE_OUT.into(), "yesterday".into());
        junk.insert(TAG_RECENT_HIGH.into(), "1=2 x=y".into());
        let back = ScaleState::from_tags(&junk);
        assert_eq!(back.last_scale_out, None);
        assert!(back.recent_high.is_empty());
        assert_eq!(back.recent_low, s.recent_low);
        assert_eq!(ScaleState::from_tags(&Tags::new()), ScaleState::default());
    }

    #[test]
    fn a_future_last_scale_time_cannot_block_forever() {
        let p = policy("");
        let s = ScaleState {
            last_scale_out: Some(now() + chrono::Duration::days(365)),
            ..Default::default()
        };
        let d = run(&p, &avail(2), &cpu(&IDS[..2], 90.0), &s);
        assert_eq!(d.cooldown_remaining_out, Duration::from_secs(300));
    }

    #[test]
    fn queries_cover_existing_replicas_or_the_master() {
        let cfg = config();
        let spec = cfg.cluster("c1").unwrap();
        let p = policy("warmup: {max_lag: 30s}\n");
        let q = p.queries(
            spec,
            &view(&[("available", None), ("creating", None), ("deleting", None)]),
        );
        let got: Vec<(String, &str, &str)> = q
            .iter()
            .map(|q| {
                (
                    q.instance.to_string(),
                    q.metric.as_str(),
                    q.statistic.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("c1s1".into(), "cpu", "Average"),
                ("c1s1".into(), "replica_lag", "Maximum"),
                ("c1s2".into(), "cpu", "Average"),
                ("c1s2".into(), "replica_lag", "Maximum"),
            ]
        );
        let q = p.queries(spec, &view(&[("creating", None)]));
        assert!(q.iter().any(|q| q.instance.as_str() == "c1m"));
        let (start, end) = p.fetch_window(now());
        assert_eq!(end, t("2026-11-25T11:59:00Z"));
        assert_eq!(start, t("2026-11-25T11:53:00Z"));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_secs(432), "7m12s");
        assert_eq!(fmt_secs(3605), "1h0m5s");
        assert_eq!(fmt_secs(5), "5s");
    }

    #[test]
    fn limits_print_as_whole_or_shortest_numbers() {
        // As `{v:.0}` for whole numbers and `{v}` otherwise, with the metric's unit.
        for v in [
            0.0f64,
            -0.0,
            1.0,
            60.0,
            66.0,
            -5.0,
            62.5,
            0.1,
            1e15,
            1e20,
            123456789.0,
        ] {
            let plain = if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            };
            assert_eq!(
                fmt_limit(MetricKind::Cpu, v).to_string(),
                format!("{plain}%")
            );
            assert_eq!(fmt_limit(MetricKind::Connections, v).to_string(), plain);
            assert_eq!(
                fmt_limit(MetricKind::ReplicaLag, v).to_string(),
                format!("{plain}s")
            );
        }
        assert_eq!(fmt_limit(MetricKind::Cpu, -0.0).to_string(), "-0%");
        assert_eq!(fmt_limit(MetricKind::Cpu, f64::NAN).to_string(), "NaN%");
        assert_eq!(fmt_value(MetricKind::Cpu, 63.25).to_string(), "63.2%");
        assert_eq!(fmt_value(MetricKind::ReplicaLag, 4.0).to_string(), "4.0s");
    }

    #[test]
    fn the_last_decision_tag_check_agrees_with_the_tags_written() {
        let long = "out 3 target_tracking ".repeat(20);
        for d in [
            None,
            Some(""),
            Some("out 3 target_tracking"),
            Some("in 1 ✓ Ünïcode;%"),
            Some(long.as_str()),
        ] {
            let state = ScaleState {
                last_decision: d.map(str::to_string),
                ..Default::default()
            };
            let written = state.to_tags();
            let value = written.get(TAG_LAST_DECISION).map(String::as_str);
            assert!(state.last_decision_tag_is(value), "{d:?}");
            assert!(!state.last_decision_tag_is(None));
            let other = format!("{}x", value.unwrap_or_default());
            assert!(!state.last_decision_tag_is(Some(&other)), "{d:?}");
        }
        assert!(written_len_is_bounded(&long));
    }

    #[test]
    fn recent_lists_keep_their_newest_entries_within_the_tag_limit() {
        // The rule as first written: parts dropped from the front while Σ(len + 1) > limit.
        let reference = |v: &[(DateTime<Utc>, usize)]| {
            let mut parts: Vec<String> = v
                .iter()
                .map(|(t, n)| format!("{}={n}", t.timestamp()))
                .collect();
            while parts.iter().map(|p| p.len() + 1).sum::<usize>() > TAG_VALUE_MAX {
                parts.remove(0);
            }
            parts.join(" ")
        };
        for len in 0..40 {
            for first in [-5_000_000_000i64, 0, 1_700_000_000] {
                let v: Vec<(DateTime<Utc>, usize)> = (0..len)
                    .map(|i| {
                        let t = DateTime::from_timestamp(first + 60 * i as i64, 0).unwrap();
                        (t, (i * 37) % 1000)
                    })
                    .collect();
                let got = encode_recent(&v);
                assert_eq!(got, reference(&v), "{len} entries from {first}");
                assert!(got.len() < TAG_VALUE_MAX);
            }
        }
    }

    fn written_len_is_bounded(d: &str) -> bool {
        let state = ScaleState {
            last_decision: Some(d.to_string()),
            ..Default::default()
        };
        state.to_tags()[TAG_LAST_DECISION].len() == TAG_VALUE_MAX
    }
}
