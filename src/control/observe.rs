//! The one observation step: what the control loop remembers of a cluster between ticks
//! ([`ClusterMemory`]) and how it completes each observed view with it, the same for the
//! daemon, `plan`, the backtest and the demo.
//!
//! - **Available since** (for the warm-up): RDS does not say when an instance became
//!   available. A fleet that knows reports it (the simulated fleet does); otherwise it is the
//!   time this memory first saw the replica available, and on a memory's first observation
//!   (a fresh `run`, or `plan`) a replica already available counts from its creation time, so
//!   that a restart does not put every replica back into warm-up.
//! - **Scale state**: read from the master's tags on the first observation, completed with
//!   what the fleet shows and the tags may have missed ([`ScaleState::recover_from_fleet`]);
//!   then carried in memory, tick to tick.
//! - **Drains** under way ([`Drains`]): see `reconcile::drain`.
//!
//! `plan` starts from a fresh memory: it shows what `run` does on its first tick.

use super::predict::TAG_LEAD_TIMES;
use crate::core::decide::{PersistedState, ScaleState, StateKeys, STATE_TAG_KEYS};
use crate::core::domain::{InstanceId, Tags};
use crate::core::plan::ClusterView;
use crate::reconcile::Drains;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// What the control loop carries from one tick of a cluster to the next.
#[derive(Debug, Clone, Default)]
pub struct ClusterMemory {
    /// Whether a view was observed before (the first observation reads creation times).
    observed_once: bool,
    /// When each replica was first seen available (`None`: it was available at the first
    /// observation and RDS gave no creation time).
    first_available: HashMap<InstanceId, Option<DateTime<Utc>>>,
    /// The scale state (read from the master's tags at the first observation, unless given).
    state: ScaleState,
    /// Whether `state` was read or given.
    state_known: bool,
    /// HAProxy drains under way.
    pub drains: Drains,
    /// The master's state tags as last read, and what they hold.
    persisted: Option<([Option<String>; 5], PersistedState)>,
    /// The tag map `persisted` was last checked against. A speed measure (outside the core;
    /// benches/backtest.rs measures it): a fleet that hands back its stored map unchanged (the
    /// simulated one, tick after tick) needs no tag lookup at all. A map behind an `Arc` never
    /// changes while this `Weak` keeps its allocation, so the same pointer means the same tags.
    /// RDS describes a new map every tick and always takes the lookup.
    checked: Option<Weak<Tags>>,
    /// The forecast step's history, accuracy and lead times (policies with `predictive`).
    pub forecast: super::predict::ForecastMemory,
    /// Replicas in a failed state: since when, replaced, parked (`control::broken`).
    pub broken: super::broken::Broken,
    /// What RDS could not give lately (no capacity for a class in a zone, a quota reached).
    pub offerings: std::sync::Arc<std::sync::Mutex<crate::core::template::Offerings>>,
}

impl ClusterMemory {
    /// A memory that starts from `state` instead of the master's tags (a backtest's or a
    /// test's own starting point).
    pub fn with_state(state: ScaleState) -> ClusterMemory {
        ClusterMemory {
            state,
            state_known: true,
            ..ClusterMemory::default()
        }
    }

    /// The observation step: complete `view` (observed at `now`) with this memory, and read
    /// the scale state on the first observation.
    pub fn observe(&mut self, view: &mut ClusterView, now: DateTime<Utc>) {
        let mut shared = Cow::Borrowed(&*view);
        self.observe_shared(&mut shared, now);
        if let Cow::Owned(v) = shared {
            *view = v;
        }
    }

    /// [`ClusterMemory::observe`] of a view kept elsewhere (the backtest's replay keeps its
    /// last view): copied only when the step changes it (a replica's "available since" filled
    /// in, a slot marked for replacement), which a tick of the simulated fleet seldom does.
    pub fn observe_shared(&mut self, view: &mut Cow<'_, ClusterView>, now: DateTime<Utc>) {
        self.fill_available_since(view, now);
        let learned = self.forecast.leads.learned();
        self.broken.observe(view, now, learned);
        if !self.observed_once {
            let tag = view
                .master
                .as_ref()
                .and_then(|m| m.tags.get(TAG_LEAD_TIMES));
            if let Some(tag) = tag {
                self.forecast.leads.seed(tag);
            }
        }
        self.forecast.leads.observe(view, now);
        self.forecast.conflicted = (view.conflicts.iter())
            .map(|c| c.instance.id.clone())
            .collect();
        if !self.state_known {
            let mut state = view
                .master
                .as_ref()
                .map(|m| ScaleState::from_tags(&m.tags))
                .unwrap_or_default();
            state.recover_from_fleet(view, now);
            self.state = state;
            self.state_known = true;
        }
        self.observed_once = true;
    }

    /// The scale state (the default until the first observation).
    pub fn state(&self) -> &ScaleState {
        &self.state
    }

    /// The scale state once read (or given); `None` before the first observation.
    pub fn known_state(&self) -> Option<&ScaleState> {
        self.state_known.then_some(&self.state)
    }

    /// The scale state, to update after a decision.
    pub fn state_mut(&mut self) -> &mut ScaleState {
        &mut self.state
    }

    /// Whether the scale state must be written on the master whose tags are `tags`: it
    /// differs materially from what they hold ([`PersistedState::differs_from`]). The tags are
    /// read again only when their state values changed since the last read (another copy
    /// wrote them, or this one did).
    pub fn persist_needed(&mut self, tags: &Arc<Tags>) -> bool {
        self.to_write(tags).is_some()
    }

    /// [`ClusterMemory::persist_needed`], with the keys to write when it is
    /// ([`PersistedState::to_write`]).
    pub fn to_write(&mut self, tags: &Arc<Tags>) -> Option<StateKeys> {
        let unchanged = (self.checked.as_ref()).is_some_and(|w| w.as_ptr() == Arc::as_ptr(tags));
        if !unchanged {
            self.check(tags);
            self.checked = Some(Arc::downgrade(tags));
        }
        (self.persisted.as_ref()).and_then(|(_, read)| read.to_write(&self.state))
    }

    /// Read `tags` again where their state values changed since the last read.
    fn check(&mut self, tags: &Tags) {
        self.reread(STATE_TAG_KEYS.map(|k| tags.get(k)));
    }

    /// The state tags this tick wrote on the master (`tags`, all or some of the current
    /// state's): what the next observation will see, so that it is not read again then. What
    /// they hold is the state's ([`PersistedState::wrote`]): nothing is decoded.
    pub fn wrote(&mut self, tags: Tags) {
        let (seen, read) = self.persisted.get_or_insert_with(unread);
        let mut written = [false; 5];
        for (key, v) in tags {
            if let Some(i) = STATE_TAG_KEYS.iter().position(|k| *k == key) {
                seen[i] = Some(v);
                written[i] = true;
            }
        }
        read.wrote(&self.state, written);
        self.checked = None;
    }

    /// Take `values` (of [`STATE_TAG_KEYS`], in order; borrowed or owned) as the master's state
    /// tags: only those that differ from the values last read are read again and kept (a write
    /// mostly changes the recommendation histories, seldom the scale times).
    fn reread<T: AsRef<str> + Into<String>>(&mut self, values: [Option<T>; 5]) {
        let (seen, read) = self.persisted.get_or_insert_with(unread);
        for ((key, value), old) in STATE_TAG_KEYS.iter().zip(values).zip(seen.iter_mut()) {
            if old.as_deref() != value.as_ref().map(AsRef::as_ref) {
                let value = value.map(Into::into);
                read.read_tag(key, value.as_ref());
                *old = value;
            }
        }
    }

    fn fill_available_since(&mut self, view: &mut Cow<'_, ClusterView>, now: DateTime<Utc>) {
        let first = !self.observed_once;
        for i in 0..view.replicas.len() {
            let Some(inst) = &view.replicas[i] else {
                continue;
            };
            if !inst.status.is_available() {
                self.first_available.remove(&inst.id);
                continue;
            }
            if inst.available_since.is_some() {
                continue;
            }
            let created = inst.created_at.filter(|t| *t <= now);
            let seen = *self
                .first_available
                .entry(inst.id.clone())
                .or_insert(if first { created } else { Some(now) });
            // Copied only here: a fleet that knows the time (the simulated one) is not.
            if let Some(inst) = &mut view.to_mut().replicas[i] {
                Arc::make_mut(inst).available_since = seen;
            }
        }
    }
}

/// The state tags before any read: none seen, all absent.
fn unread() -> ([Option<String>; 5], PersistedState) {
    (Default::default(), PersistedState::read(&Tags::new()))
}
