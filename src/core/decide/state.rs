//! The scale state carried between ticks ([`ScaleState`]: the last scale times, the
//! recommendation histories for stabilization, the last decision) and its encoding as tags on
//! the master (`elasticrds:*`), which is how it survives restarts and is shared by copies.
//! [`PersistedState`] is what a set of tags holds, read once, to tell whether the state must be
//! written again.

use super::{Decision, Direction};
use crate::core::domain::{InstanceStatus, Tags, TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE};
use crate::core::view::ClusterView;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

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
/// How long a persisted history may lag behind the state's newest recommendation before it
/// is refreshed even when nothing else changed (bounds what a restart can forget of a
/// stabilization window).
pub const STATE_REFRESH_SECS: i64 = 300;

/// The last decision, for operators reading the master's tags: `direction desired primary`
/// (e.g. `out 3 target_tracking`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDecision {
    pub direction: Direction,
    pub desired: usize,
    /// The primary reason code.
    pub primary: Cow<'static, str>,
}

impl LastDecision {
    /// The tag value.
    pub fn tag_text(&self) -> String {
        format!(
            "{} {} {}",
            self.direction.as_str(),
            self.desired,
            self.primary
        )
    }

    /// Read a tag value; `None` unless it is `direction count code` (a code of lower-case
    /// letters and underscores).
    pub fn parse(s: &str) -> Option<LastDecision> {
        let mut parts = s.split_whitespace();
        let direction = match parts.next()? {
            "out" => Direction::Out,
            "in" => Direction::In,
            "none" => Direction::None,
            _ => return None,
        };
        let desired = parts.next()?.parse().ok()?;
        let code = parts.next()?;
        (is_code(code) && parts.next().is_none()).then(|| LastDecision {
            direction,
            desired,
            primary: Cow::Owned(code.to_string()),
        })
    }
}

/// Whether `code` reads back as a reason code: lower-case letters and underscores.
fn is_code(code: &str) -> bool {
    !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

impl Serialize for LastDecision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.tag_text())
    }
}

impl<'de> Deserialize<'de> for LastDecision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LastDecision::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a last decision: {s:?}")))
    }
}

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
    /// The last decision, for operators.
    pub last_decision: Option<LastDecision>,
}

/// What a set of tags holds of a [`ScaleState`], read as [`PersistedState::differs_from`]
/// compares it: the scale times (Unix seconds), the last decision, and each recommendation
/// history's values and newest time (a malformed history reads as empty, as
/// [`ScaleState::from_tags`] reads it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistedState {
    last_scale_out: Option<i64>,
    last_scale_in: Option<i64>,
    /// The last decision as the tag holds it: `Some(None)` for an empty tag; `None` when the
    /// tag is absent or unreadable (then it is always written again).
    last_decision: Option<Option<LastDecision>>,
    high: (Vec<usize>, Option<i64>),
    low: (Vec<usize>, Option<i64>),
    /// Which of [`STATE_TAG_KEYS`] were absent (always written with the others).
    absent: [bool; 5],
}

/// Which of [`STATE_TAG_KEYS`] (in that order) a write includes.
pub type StateKeys = [bool; 5];

impl PersistedState {
    /// Read `tags` once.
    pub fn read(tags: &Tags) -> PersistedState {
        let mut read = PersistedState::default();
        for key in STATE_TAG_KEYS {
            read.read_tag(key, tags.get(key));
        }
        read
    }

    /// Read one state tag's `value` (`None`: the tag is absent) in place of what this held
    /// for `key`, as [`PersistedState::read`] reads it; a key not in [`STATE_TAG_KEYS`] is
    /// ignored. (A caller that saw the other values unchanged reads only the changed ones.)
    pub fn read_tag(&mut self, key: &str, value: Option<&String>) {
        if let Some(i) = STATE_TAG_KEYS.iter().position(|k| *k == key) {
            self.absent[i] = value.is_none();
        }
        let secs = || parse_time(value).map(|t| t.timestamp());
        let history = || {
            let recent = decode_recent(value.map_or("", String::as_str));
            let newest = recent.last().map(|(t, _)| t.timestamp());
            (recent.into_iter().map(|(_, n)| n).collect(), newest)
        };
        match key {
            TAG_LAST_SCALE_OUT => self.last_scale_out = secs(),
            TAG_LAST_SCALE_IN => self.last_scale_in = secs(),
            TAG_LAST_DECISION => {
                self.last_decision = value.and_then(|s| match s.as_str() {
                    "" => Some(None),
                    s => LastDecision::parse(s).map(Some),
                })
            }
            TAG_RECENT_HIGH => self.high = history(),
            TAG_RECENT_LOW => self.low = history(),
            _ => {}
        }
    }

    /// What [`PersistedState::read`] gives for the tags [`ScaleState::to_tags`] makes of
    /// `state` (what a tick that wrote them knows the master holds), taken from the state
    /// itself where reading the text back could not change it, from that text otherwise.
    pub fn of(state: &ScaleState) -> PersistedState {
        let mut all = PersistedState::default();
        all.wrote(state, [true; 5]);
        all
    }

    /// What the master holds after a write of `written` made of `state`: those parts as they
    /// read back (see [`PersistedState::of`], all of them), the others as before.
    pub fn wrote(&mut self, state: &ScaleState, written: StateKeys) {
        let [out, inn, high, low, decision] = written;
        if out {
            self.last_scale_out = time_read_back(state.last_scale_out);
        }
        if inn {
            self.last_scale_in = time_read_back(state.last_scale_in);
        }
        if high {
            self.high = history_of(&state.recent_high);
        }
        if low {
            self.low = history_of(&state.recent_low);
        }
        if decision {
            self.last_decision = decision_read_back(&state.last_decision);
        }
        for (absent, w) in self.absent.iter_mut().zip(written) {
            *absent &= !w;
        }
    }

    /// The keys to write when `state` differs materially from this
    /// ([`PersistedState::differs_from`]; `None` when it does not): each time and the last
    /// decision when it differs, both histories when either differs or is due for a refresh,
    /// and any key the tags lacked. (A write sends only what changed.)
    pub fn to_write(&self, state: &ScaleState) -> Option<StateKeys> {
        let secs = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp());
        let histories = self.histories_differ(state);
        let keys = [
            self.last_scale_out != secs(state.last_scale_out),
            self.last_scale_in != secs(state.last_scale_in),
            histories,
            histories,
            self.last_decision.as_ref() != Some(&state.last_decision),
        ];
        // Differing materially is differing in one of these.
        (keys.iter().any(|k| *k)).then(|| std::array::from_fn(|i| keys[i] || self.absent[i]))
    }

    /// Whether `state` differs materially from this: scale times, the last decision, the
    /// recommendation values, or a recommendation history more than [`STATE_REFRESH_SECS`]
    /// newer than the persisted one. (Refreshing timestamps alone every tick would cost two
    /// RDS calls per cluster per tick.)
    pub fn differs_from(&self, state: &ScaleState) -> bool {
        self.to_write(state).is_some()
    }

    /// The recommendation values differ, or the state's histories are more than
    /// [`STATE_REFRESH_SECS`] newer than these.
    fn histories_differ(&self, state: &ScaleState) -> bool {
        let same = |old: &[usize], now: &[(DateTime<Utc>, usize)]| {
            old.len() == now.len() && old.iter().zip(now).all(|(o, (_, n))| o == n)
        };
        if !same(&self.high.0, &state.recent_high) || !same(&self.low.0, &state.recent_low) {
            return true;
        }
        let newest = (state.recent_high.iter().chain(&state.recent_low))
            .map(|(t, _)| t)
            .max()
            .map(DateTime::timestamp);
        match (self.high.1.max(self.low.1), newest) {
            (Some(o), Some(n)) => n - o > STATE_REFRESH_SECS,
            (None, None) => false,
            _ => true,
        }
    }
}

/// A scale time as its tag reads back: RFC 3339 writes and reads years 0–9999.
fn time_read_back(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.filter(|t| (0..=9999).contains(&t.year()))
        .map(|t| t.timestamp())
}

/// The last decision as its tag reads back (`None`: a tag that would not parse).
fn decision_read_back(d: &Option<LastDecision>) -> Option<Option<LastDecision>> {
    match d {
        None => Some(None),
        Some(d) => is_code(&d.primary).then(|| Some(d.clone())),
    }
}

/// A recommendation history's values and newest time as its tag reads back
/// ([`PersistedState::read`]). A history short enough that its tag is never cut (at most 13
/// parts of a value ≤ 10,000 and a time of at most 12 characters: 13 × 19 < 256) reads back
/// whole, or empty when its times decrease; any other goes through its text.
fn history_of(v: &[(DateTime<Utc>, usize)]) -> (Vec<usize>, Option<i64>) {
    let plain = v.len() <= 13
        && (v.iter()).all(|(t, n)| *n <= 10_000 && t.timestamp().abs() < 100_000_000_000);
    let read = if plain {
        let ordered = v
            .windows(2)
            .all(|w| w[0].0.timestamp() <= w[1].0.timestamp());
        if ordered {
            Cow::Borrowed(v)
        } else {
            Cow::Owned(Vec::new())
        }
    } else {
        Cow::Owned(decode_recent(&encode_recent(v)))
    };
    let newest = read.last().map(|(t, _)| t.timestamp());
    (read.iter().map(|(_, n)| *n).collect(), newest)
}

/// `t=n` parts joined by spaces; the newest entries are kept when the value would be longer
/// than a tag value may be.
fn encode_recent(v: &[(DateTime<Utc>, usize)]) -> String {
    use std::fmt::Write as _;
    // A part is a time of ten digits, `=`, a value and a space: sized once, not grown.
    let mut text = String::with_capacity((v.len() * 16).min(TAG_VALUE_MAX * 2));
    for (t, n) in v {
        let sep = if text.is_empty() { "" } else { " " };
        let _ = write!(text, "{sep}{}={n}", t.timestamp());
    }
    // The oldest parts go first: each takes its length plus one separator.
    while text.len() + 1 > TAG_VALUE_MAX {
        match text.find(' ') {
            Some(i) => drop(text.drain(..=i)),
            None => text.clear(),
        }
    }
    text
}

/// A recommendation-history tag as (time, value) pairs, oldest first; empty when it is
/// malformed (a part not `t=n`, a time out of range, a value over 10,000, times decreasing).
fn decode_recent(s: &str) -> Vec<(DateTime<Utc>, usize)> {
    let mut out: Vec<(DateTime<Utc>, usize)> = Vec::new();
    for part in s.split_whitespace() {
        let parsed = part.split_once('=').and_then(|(t, n)| {
            let t = DateTime::from_timestamp(t.parse().ok()?, 0)?;
            Some((t, n.parse::<usize>().ok()?))
        });
        match parsed {
            Some((t, n)) if n <= 10_000 && out.last().is_none_or(|(l, _)| *l <= t) => {
                out.push((t, n))
            }
            _ => return Vec::new(),
        }
    }
    out
}

fn parse_time(s: Option<&String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

impl ScaleState {
    /// The state as tags for the master (keys prefixed `elasticrds:`; values within RDS's tag
    /// character set and 256-character limit). Absent times are written as empty values, so
    /// writing them overwrites older ones.
    pub fn to_tags(&self) -> Tags {
        self.tags_of([true; 5])
    }

    /// [`ScaleState::to_tags`] of the `keys` only.
    pub fn tags_of(&self, keys: StateKeys) -> Tags {
        let time = |t: &Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        let value = |i: usize| match i {
            0 => time(&self.last_scale_out),
            1 => time(&self.last_scale_in),
            2 => encode_recent(&self.recent_high),
            3 => encode_recent(&self.recent_low),
            _ => (self.last_decision.as_ref())
                .map(LastDecision::tag_text)
                .unwrap_or_default(),
        };
        let mut tags = Tags::new();
        for (i, k) in STATE_TAG_KEYS.iter().enumerate().filter(|(i, _)| keys[*i]) {
            tags.insert(k.to_string(), value(i));
        }
        tags
    }

    /// Read the state back; tolerant: a missing or malformed tag gives that field's default.
    pub fn from_tags(tags: &Tags) -> ScaleState {
        let recent = |key| decode_recent(tags.get(key).map_or("", String::as_str));
        ScaleState {
            last_scale_out: parse_time(tags.get(TAG_LAST_SCALE_OUT)),
            last_scale_in: parse_time(tags.get(TAG_LAST_SCALE_IN)),
            recent_high: recent(TAG_RECENT_HIGH),
            recent_low: recent(TAG_RECENT_LOW),
            last_decision: tags
                .get(TAG_LAST_DECISION)
                .and_then(|s| LastDecision::parse(s)),
        }
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
        self.recent_high.retain(|(t, _)| *t > horizon);
        self.recent_low.retain(|(t, _)| *t > horizon);
        if acted {
            match d.direction {
                Direction::Out => self.last_scale_out = Some(now),
                Direction::In => self.last_scale_in = Some(now),
                Direction::None => {}
            }
        }
        self.last_decision = Some(LastDecision {
            direction: d.direction,
            desired: d.desired,
            primary: Cow::Borrowed(d.primary),
        });
    }

    /// The lowest (scale-out) or highest (scale-in) recommendation inside
    /// `(now − window, now]`: what stabilization compares a new recommendation with.
    pub(super) fn stabilizing(
        &self,
        direction: Direction,
        now: DateTime<Utc>,
        window: u64,
    ) -> Option<usize> {
        let history = match direction {
            Direction::Out => &self.recent_low,
            Direction::In => &self.recent_high,
            Direction::None => return None,
        };
        if window == 0 {
            return None;
        }
        // A window reaching before the start of time takes the whole history.
        let from = i64::try_from(window)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|w| now.checked_sub_signed(w));
        history
            .iter()
            .find(|(t, _)| from.is_none_or(|f| *t > f))
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Times from year −5000 to 12000 (RFC 3339 reads back years 0–9999), some with
    /// sub-second parts.
    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        (-220_000_000_000i64..316_000_000_000, prop::bool::ANY).prop_map(|(s, nanos)| {
            DateTime::from_timestamp(s, if nanos { 500_000_000 } else { 0 }).unwrap()
        })
    }

    /// Histories short and long, ordered or not, with values within and beyond 10,000.
    fn history() -> impl Strategy<Value = Vec<(DateTime<Utc>, usize)>> {
        let value = prop_oneof![0usize..20, 0usize..12_000, Just(usize::MAX)];
        let recent =
            (1_700_000_000i64..1_800_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap());
        prop_oneof![
            prop::collection::vec((recent, value.clone()), 0..30).prop_map(|mut v| {
                v.sort_by_key(|(t, _)| *t);
                v
            }),
            prop::collection::vec((time(), value), 0..20),
        ]
    }

    fn state() -> impl Strategy<Value = ScaleState> {
        let code = prop_oneof![
            Just("target_tracking"),
            Just("hold"),
            Just("Bad Code"),
            Just("x9"),
            Just("")
        ];
        let decision = prop::option::of((0usize..3, 0usize..50, code)).prop_map(|d| {
            d.map(|(dir, desired, code)| LastDecision {
                direction: [Direction::Out, Direction::In, Direction::None][dir],
                desired,
                primary: Cow::Borrowed(code),
            })
        });
        (
            prop::option::of(time()),
            prop::option::of(time()),
            history(),
            history(),
            decision,
        )
            .prop_map(|(out, inn, high, low, last)| ScaleState {
                last_scale_out: out,
                last_scale_in: inn,
                recent_high: high,
                recent_low: low,
                last_decision: last,
            })
    }

    proptest! {
        /// What a tick that wrote the tags knows they hold is what reading them gives.
        #[test]
        fn of_a_state_is_reading_its_tags(s in state()) {
            prop_assert_eq!(PersistedState::of(&s), PersistedState::read(&s.to_tags()));
        }
    }
}
