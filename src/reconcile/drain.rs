//! The HAProxy drain before a delete, as state carried across ticks (level-triggered, like the
//! rest of the reconciler): a tick that plans a replica's delete starts its drain and holds
//! the delete; later ticks that still plan it check the replica's sessions and let the delete
//! go ahead once they reach 0 or the drain timeout has passed. No tick waits. A drain whose
//! delete is no longer planned (the load came back) is undone by the router step
//! ([`super::sync_router`] puts the replica back into service).
//!
//! [`gate_deletes`] is the one entry: it splits a plan into the actions to execute now and the
//! deletes still draining or held, with the drain's notes for the report. The memory of drains
//! under way ([`Drains`]) belongs to the caller (the control loop's per-cluster memory, or a
//! CLI command's converge loop); after a restart a drain found under way starts its timeout
//! again, which only waits longer.

use super::{check_ownership, ActionResult, Outcome};
use crate::core::config::{ClusterSpec, HaproxySpec, OnUnreachable};
use crate::core::domain::InstanceId;
use crate::core::plan::{Action, ClusterView, Plan, PlannedAction};
use crate::ports::{ErrorKind, Fleet, PortError, TrafficRouter};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// Drains under way: replica → when its drain started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drains(BTreeMap<InstanceId, DateTime<Utc>>);

impl Drains {
    /// When the drain of `id` started, if one is under way.
    pub fn started(&self, id: &InstanceId) -> Option<DateTime<Utc>> {
        self.0.get(id).copied()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The replicas being drained.
    pub fn ids(&self) -> impl Iterator<Item = &InstanceId> {
        self.0.keys()
    }
    pub(crate) fn forget(&mut self, id: &InstanceId) {
        self.0.remove(id);
    }
    /// Forget the drains of replicas that no longer exist (deleted, by us or by someone).
    pub fn keep_existing(&mut self, view: &ClusterView) {
        self.0
            .retain(|id, _| view.existing_replicas().any(|i| i.id == *id));
    }
}

/// Where one delete stands after a drain step.
#[derive(Debug)]
pub enum DrainStep {
    /// Out of the router (or never in it; or the router unreachable with
    /// `on_unreachable: proceed`): delete now. What happened, for the report.
    Ready(Vec<String>),
    /// Sessions still open, within the drain timeout: the delete waits for a later tick.
    Draining(String),
    /// The router could not be asked or could not act (`on_unreachable: wait`).
    Held(String, Option<PortError>),
}

/// The router in front of one cluster, with its `haproxy` section.
#[derive(Clone, Copy)]
pub struct Route<'a> {
    pub router: &'a dyn TrafficRouter,
    pub spec: &'a HaproxySpec,
}

impl<'a> Route<'a> {
    /// The router in front of `spec`'s replicas with its `haproxy` section, when it has both.
    pub fn of(routers: &'a crate::ports::Routers, spec: &'a ClusterSpec) -> Option<Route<'a>> {
        let h = spec.haproxy.as_ref()?;
        let router = routers.get(&spec.name)?;
        Some(Route { router, spec: h })
    }

    /// A router and the `haproxy` section it serves.
    pub fn of_parts(router: &'a dyn TrafficRouter, spec: &'a HaproxySpec) -> Route<'a> {
        Route { router, spec }
    }

    /// The router could not drain `id`: hold the delete or, with `on_unreachable: proceed`,
    /// let it go ahead with a note.
    fn unreachable(&self, id: &InstanceId, e: PortError, mut notes: Vec<String>) -> DrainStep {
        let backend = &self.spec.backend;
        match self.spec.on_unreachable {
            OnUnreachable::Wait => DrainStep::Held(
                format!(
                    "HAProxy backend {backend} could not drain {id} ({e}); delete held until it can (on_unreachable: wait)"
                ),
                Some(e),
            ),
            OnUnreachable::Proceed => {
                notes.push(format!(
                    "HAProxy backend {backend} could not drain {id} ({e}); deleting anyway (on_unreachable: proceed)"
                ));
                tracing::warn!(replica = %id, error = %e, "HAProxy unreachable: deleting without drain");
                DrainStep::Ready(notes)
            }
        }
    }

    /// Take `id` out of the router for good (maint, end what is left, del server).
    async fn remove(&self, id: &InstanceId, mut notes: Vec<String>) -> DrainStep {
        match self.router.remove(id).await {
            Ok(()) => {
                notes.push(format!(
                    "removed from HAProxy backend {}",
                    self.spec.backend
                ));
                DrainStep::Ready(notes)
            }
            Err(e) => self.unreachable(id, e, notes),
        }
    }
}

/// One step of the drain of replica `id` at `now`: start it, or check on it, or finish it.
pub async fn drain_step(
    route: Route<'_>,
    drains: &mut Drains,
    id: &InstanceId,
    now: DateTime<Utc>,
) -> DrainStep {
    let backend = &route.spec.backend;
    let mut notes = Vec::new();
    let known = match route.router.state(id).await {
        Err(e) => return route.unreachable(id, e, notes),
        Ok(known) => known,
    };
    let Some(st) = known else {
        let note = match drains.started(id) {
            Some(_) => format!("{id} left HAProxy backend {backend} meanwhile"),
            None => format!("{id} is not a server of HAProxy backend {backend}: nothing to drain"),
        };
        notes.push(note);
        drains.forget(id);
        // A line left in the config file (an older render) would bring the deleted replica
        // back at the next reload: drop it too.
        if let Err(e) = route.router.remove(id).await {
            notes.push(format!("{id}: config file not updated: {e}"));
        }
        return DrainStep::Ready(notes);
    };
    let fresh = drains.started(id).is_none();
    let started = *drains.0.entry(id.clone()).or_insert(now);
    // A new drain, or one undone meanwhile (a reload, an operator): (re)start it.
    if fresh || st.accepting {
        match route.router.drain(id).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {
                drains.forget(id);
                notes.push(format!("{id} left HAProxy backend {backend} meanwhile"));
                return DrainStep::Ready(notes);
            }
            Err(e) => return route.unreachable(id, e, notes),
        }
    }
    check_sessions(route, drains, id, started, now).await
}

/// The drain of `id` (started at `started`) is on: delete when its sessions reached 0 or the
/// timeout passed, else wait.
async fn check_sessions(
    route: Route<'_>,
    drains: &mut Drains,
    id: &InstanceId,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DrainStep {
    let backend = &route.spec.backend;
    let mut notes = Vec::new();
    let sessions = match route.router.state(id).await {
        Err(e) => return route.unreachable(id, e, notes),
        Ok(None) => 0,
        Ok(Some(st)) => st.current_sessions,
    };
    let elapsed = (now - started).to_std().unwrap_or(Duration::ZERO);
    if sessions == 0 {
        notes.push(format!(
            "drained from HAProxy backend {backend} in {}s",
            elapsed.as_secs()
        ));
    } else if elapsed >= route.spec.drain_timeout {
        notes.push(format!(
            "drain timeout {} reached with {sessions} session(s) still open on {id}: ending them",
            humantime::format_duration(route.spec.drain_timeout),
        ));
    } else {
        let left = route.spec.drain_timeout - elapsed;
        return DrainStep::Draining(format!(
            "draining {id} from HAProxy backend {backend}: {sessions} session(s) open after {}s, delete when 0 or in {}s at the latest",
            elapsed.as_secs(),
            left.as_secs()
        ));
    }
    drains.forget(id);
    route.remove(id, notes).await
}

/// A plan split by the drain: which of its actions to execute now, the deletes not done this
/// time, and the drain notes of the deletes that go ahead.
#[derive(Debug)]
pub struct Gated {
    /// Per action of the plan: whether it goes ahead now.
    go: Vec<bool>,
    /// The deletes left out, as results (`Draining` or `Held`).
    pub waiting: Vec<ActionResult>,
    /// Drain notes per replica whose delete goes ahead.
    notes: BTreeMap<InstanceId, Vec<String>>,
}

impl Gated {
    /// The actions of `plan` (the one gated) to execute now.
    pub fn ready<'p>(&'p self, plan: &'p Plan) -> impl Iterator<Item = &'p PlannedAction> + 'p {
        plan.actions
            .iter()
            .zip(&self.go)
            .filter(|(_, go)| **go)
            .map(|(a, _)| a)
    }

    /// Whether a delete of `plan` goes ahead now.
    pub fn deletes(&self, plan: &Plan) -> bool {
        self.ready(plan)
            .any(|a| matches!(a.action, Action::DeleteReplica { .. }))
    }

    /// The executed results with the drain notes attached, followed by the deletes left out.
    pub fn finish(mut self, mut results: Vec<ActionResult>) -> Vec<ActionResult> {
        for r in &mut results {
            if let Action::DeleteReplica { id } = &r.planned.action {
                if let Some(n) = self.notes.remove(id) {
                    let mut notes = n;
                    notes.append(&mut r.notes);
                    r.notes = notes;
                }
            }
        }
        results.append(&mut self.waiting);
        results
    }
}

/// Run the drain step of every delete in `plan` for a cluster behind `route` (none: no
/// `haproxy` section). A delete whose replica is not ours is left in the plan untouched (the
/// executor refuses it: never drained). In a dry run nothing is drained; a note says what
/// would be.
pub async fn gate_deletes(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    route: Option<Route<'_>>,
    plan: &Plan,
    drains: &mut Drains,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Gated {
    let mut gated = Gated {
        go: vec![true; plan.actions.len()],
        waiting: Vec::new(),
        notes: BTreeMap::new(),
    };
    for (i, a) in plan.actions.iter().enumerate() {
        let Action::DeleteReplica { id } = &a.action else {
            continue;
        };
        let step = gate_one(fleet, spec, route, a, id, drains, now, dry_run).await;
        let (outcome, error) = match step {
            DrainStep::Ready(notes) => {
                gated.notes.insert(id.clone(), notes);
                continue;
            }
            DrainStep::Draining(why) => (Outcome::Draining(why), None),
            DrainStep::Held(why, e) => (Outcome::Held(why), e),
        };
        gated.go[i] = false;
        gated.waiting.push(left_out(a.clone(), outcome, error));
    }
    gated
}

#[allow(clippy::too_many_arguments)]
async fn gate_one(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    route: Option<Route<'_>>,
    a: &PlannedAction,
    id: &InstanceId,
    drains: &mut Drains,
    now: DateTime<Utc>,
    dry_run: bool,
) -> DrainStep {
    let Some(h) = &spec.haproxy else {
        return DrainStep::Ready(Vec::new());
    };
    let Some(route) = route else {
        return DrainStep::Held(
            format!(
                "no traffic router was set up for HAProxy backend {}: delete held",
                h.backend
            ),
            None,
        );
    };
    if dry_run {
        return DrainStep::Ready(vec![format!(
            "would drain {id} from HAProxy backend {} first (up to {})",
            h.backend,
            humantime::format_duration(h.drain_timeout)
        )]);
    }
    // Never drain what is not ours: the executor reports the refusal.
    if check_ownership(fleet, spec, &a.action).await.is_err() {
        return DrainStep::Ready(Vec::new());
    }
    drain_step(route, drains, id, now).await
}

fn left_out(planned: PlannedAction, outcome: Outcome, error: Option<PortError>) -> ActionResult {
    ActionResult {
        planned,
        outcome,
        error,
        notes: Vec::new(),
    }
}
