//! Replicas RDS left in a state they do not recover from by themselves (`failed`,
//! `incompatible-parameters`, `storage-full`... see `InstanceStatus::is_broken`), as the
//! observation step sees them tick to tick: broken since when, replaced once that lasts past
//! the grace period (the plan creates another slot first, then deletes it), and a slot whose
//! replica broke [`PARK_AFTER`] times is parked — left alone, its instance included, until an
//! operator runs `elasticrds unpark` — so that a cause that stays (a bad parameter group, a
//! full disk) never makes a create-fail-replace loop. The count is kept in memory (a restart
//! starts it again); parking is a tag on the master that every copy reads.

use crate::core::domain::{InstanceId, InstanceStatus};
use crate::core::plan::ClusterView;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

/// How long a replica may stay broken before it is replaced.
pub const GRACE_SECS: i64 = 10 * 60;
/// Replacements of one slot after which it is parked.
pub const PARK_AFTER: u32 = 2;
/// A replica creating or modifying this many times the learned lead time is stuck.
pub const STUCK_FACTOR: u64 = 3;
/// The stuck threshold while no lead time is learned yet.
pub const STUCK_DEFAULT_SECS: u64 = 2 * 3600;

/// A replica creating or modifying far beyond the learned lead time: reported, not waited on
/// silently.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stuck {
    pub id: InstanceId,
    pub status: String,
    /// How long it has been so, and the threshold it passed.
    pub secs: u64,
    pub threshold_secs: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Broken {
    /// Since when each broken replica has been seen broken.
    since: HashMap<InstanceId, DateTime<Utc>>,
    /// Times each slot's replica went past the grace period (a new episode each time).
    failures: HashMap<InstanceId, u32>,
    /// Ids to add to the master's parked tag.
    pub to_park: BTreeSet<InstanceId>,
    /// Since when each replica has been creating or modifying.
    busy_since: HashMap<InstanceId, DateTime<Utc>>,
    /// The stuck ones at the last observation.
    pub stuck: Vec<Stuck>,
}

impl Broken {
    /// Mark in `view` the slots to replace, note the slots to park and the replicas stuck
    /// (`learned`: the learned lead time, seconds).
    pub fn observe(
        &mut self,
        view: &mut Cow<'_, ClusterView>,
        now: DateTime<Utc>,
        learned: Option<u64>,
    ) {
        self.observe_stuck(view, now, learned);
        let grace = chrono::Duration::seconds(GRACE_SECS);
        let broken: Vec<&InstanceId> = (view.replicas.iter().flatten())
            .filter(|r| r.status.is_broken())
            .map(|r| &r.id)
            .collect();
        // An episode ends when its replica is gone or recovered.
        self.since.retain(|id, _| broken.contains(&id));
        let mut replacing = Vec::new();
        for (i, slot) in view.replicas.iter().enumerate() {
            let Some(inst) = slot.as_ref().filter(|r| r.status.is_broken()) else {
                continue;
            };
            if view.parked.contains(&i) {
                continue;
            }
            let new_episode = !self.since.contains_key(&inst.id);
            let since = *self.since.entry(inst.id.clone()).or_insert(now);
            if new_episode {
                let n = self.failures.entry(inst.id.clone()).or_insert(0);
                *n += 1;
                if *n >= PARK_AFTER {
                    self.to_park.insert(inst.id.clone());
                }
            }
            if now - since >= grace && !self.to_park.contains(&inst.id) {
                replacing.push(i);
            }
        }
        if !replacing.is_empty() {
            view.to_mut().replacing.extend(replacing);
        }
    }

    fn observe_stuck(&mut self, view: &ClusterView, now: DateTime<Utc>, learned: Option<u64>) {
        let threshold = learned.map_or(STUCK_DEFAULT_SECS, |l| (l * STUCK_FACTOR).max(600));
        let busy =
            |s: &InstanceStatus| matches!(s, InstanceStatus::Creating | InstanceStatus::Modifying);
        self.stuck.clear();
        // Nothing busy now or before: nothing to carry (no map made every tick).
        if self.busy_since.is_empty() && !view.replicas.iter().flatten().any(|r| busy(&r.status)) {
            return;
        }
        let mut now_busy = HashMap::new();
        for r in view.replicas.iter().flatten().filter(|r| busy(&r.status)) {
            let first = r
                .created_at
                .filter(|_| r.status == InstanceStatus::Creating);
            let since = (self.busy_since.get(&r.id).copied())
                .or(first.filter(|t| *t <= now))
                .unwrap_or(now);
            now_busy.insert(r.id.clone(), since);
            let secs = (now - since).num_seconds().max(0) as u64;
            if secs > threshold {
                self.stuck.push(Stuck {
                    id: r.id.clone(),
                    status: r.status.to_string(),
                    secs,
                    threshold_secs: threshold,
                });
            }
        }
        self.busy_since = now_busy;
    }

    /// The parked tag now holds `to_park`: those slots start again from zero once unparked.
    pub fn parked_written(&mut self) {
        for id in std::mem::take(&mut self.to_park) {
            self.failures.remove(&id);
        }
    }

    /// Broken since when (for `status` and the report).
    pub fn since(&self, id: &InstanceId) -> Option<DateTime<Utc>> {
        self.since.get(id).copied()
    }
}
