//! The in-process simulated fleet: a [`Fleet`] whose instances take a provisioning lead time
//! on an injected [`Clock`], which records every call and can be told to fail the next calls
//! of an operation. Used for waiting tests, the backtest and `elasticrds demo`; deterministic.

use super::sim_model::LeadTime;
use crate::core::config::MasterSpec;
use crate::core::domain::{Endpoint, Instance, InstanceClass, InstanceId, InstanceStatus, Tags};
use crate::core::template::Settings;
use crate::ports::{Clock, ErrorKind, Fleet, PortError, ReplicaRequest};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How long a new read replica stays `creating` (unless `lead_draw` is set).
    pub create_lead: Duration,
    /// Lead times drawn per creation minute from the backtest's fleet model (`None`: always
    /// `create_lead`).
    pub lead_draw: Option<LeadTime>,
    /// How long a restored master stays `creating`.
    pub restore_lead: Duration,
    /// How long a class change keeps an instance `modifying`.
    pub modify_time: Duration,
    /// How long a deleted instance stays `deleting` (0: gone at once).
    pub delete_time: Duration,
    pub engine: String,
    pub port: u16,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            create_lead: Duration::from_secs(12 * 60),
            lead_draw: None,
            restore_lead: Duration::from_secs(15 * 60),
            modify_time: Duration::from_secs(10 * 60),
            delete_time: Duration::ZERO,
            engine: "mysql".into(),
            port: 3306,
        }
    }
}

/// One call the fleet received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub operation: &'static str,
    pub id: Option<InstanceId>,
    pub at: DateTime<Utc>,
}

/// The zones the simulated region offers every class in.
pub const SIM_ZONES: [&str; 3] = ["sim-1a", "sim-1b", "sim-1c"];

#[derive(Debug, Clone)]
struct SimInstance {
    /// Shared with the views that described it; changed copy-on-write.
    inst: Arc<Instance>,
    /// When the current transition (creating/modifying/deleting) completes.
    ready_at: Option<DateTime<Utc>>,
    pending_class: Option<InstanceClass>,
}

impl SimInstance {
    /// The instance to change (copied first when a view still shares it).
    fn inst_mut(&mut self) -> &mut Instance {
        Arc::make_mut(&mut self.inst)
    }
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<InstanceId, SimInstance>,
    snapshots: BTreeSet<String>,
    calls: Vec<Call>,
    /// No call log (a long replay that never reads it).
    no_call_log: bool,
    /// Counts changes to the instances (any call that may change one, a transition, an
    /// insert); see [`SimFleet::for_each_instance_since`].
    generation: u64,
    failures: BTreeMap<&'static str, VecDeque<PortError>>,
    /// The earliest pending transition (`None`: none); a call that may start one sets it to
    /// the earliest time, so that the next call looks at every instance again. A speed
    /// measure: most calls of a long replay find nothing due and skip the scan.
    due: Option<DateTime<Utc>>,
    /// The last describe's answer: at which generation, for which ids, what was found.
    described: Option<(u64, Vec<InstanceId>, Vec<Arc<Instance>>)>,
}

pub struct SimFleet {
    clock: Arc<dyn Clock>,
    opts: SimOptions,
    state: Mutex<State>,
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero())
}

impl SimFleet {
    pub fn new(clock: Arc<dyn Clock>, opts: SimOptions) -> Self {
        SimFleet {
            clock,
            opts,
            state: Mutex::new(State::default()),
        }
    }

    /// A fleet that keeps no call log ([`SimFleet::calls`] stays empty): for long replays
    /// (a backtest makes several calls per simulated minute and never reads them).
    pub fn without_call_log(self) -> Self {
        self.lock().no_call_log = true;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_snapshot(&self, name: &str) {
        self.lock().snapshots.insert(name.to_string());
    }

    fn new_instance(
        &self,
        id: &InstanceId,
        class: &InstanceClass,
        status: InstanceStatus,
    ) -> Instance {
        let mut inst = Instance::new(id.clone(), class.clone(), status, self.opts.engine.as_str());
        inst.endpoint = Some(Endpoint {
            address: format!("{}.sim.local", id.as_str().to_ascii_lowercase()).into(),
            port: self.opts.port,
        });
        inst.created_at = Some(self.clock.now());
        inst
    }

    /// Put an instance on the fleet as it is (for seeding tests: an existing master, a
    /// foreign replica). An instance given with a `source` is added to that source's replicas.
    pub fn insert(&self, mut inst: Instance) {
        if inst.status.is_available() && inst.available_since.is_none() {
            inst.available_since = Some(self.clock.now());
        }
        let mut st = self.lock();
        st.generation += 1;
        if let Some(src) = &inst.source {
            if let Some(s) = st.instances.get_mut(src) {
                if !s.inst.replicas.contains(&inst.id) {
                    s.inst_mut().replicas.push(inst.id.clone());
                }
            }
        }
        st.instances.insert(
            inst.id.clone(),
            SimInstance {
                inst: Arc::new(inst),
                ready_at: None,
                pending_class: None,
            },
        );
    }

    /// A plain available instance, for seeding.
    pub fn available_instance(&self, id: &str, class: &str) -> Instance {
        let mut i = self.new_instance(
            &InstanceId::from_aws(id),
            &InstanceClass::from_aws(class),
            InstanceStatus::Available,
        );
        i.available_since = Some(self.clock.now());
        i
    }

    /// Make the next call(s) of `operation` (`describe`, `restore_master`, `create_replica`,
    /// `delete_replica`, `modify_class`, `read_tags`, `write_tags`,
    /// `remove_tags`) fail with `err`, once per
    /// queued error.
    pub fn fail_next(&self, operation: &'static str, err: PortError) {
        self.lock()
            .failures
            .entry(operation)
            .or_default()
            .push_back(err);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every instance as it is now (transitions applied), sorted by id.
    pub fn instances(&self) -> Vec<Instance> {
        let now = self.clock.now();
        let mut st = self.lock();
        Self::advance(&mut st, now);
        st.instances
            .values()
            .map(|s| Instance::clone(&s.inst))
            .collect()
    }

    /// [`SimFleet::instances`] without the copies, when they may have changed since `seen` (a
    /// change count this returned before): `f` sees every instance as it is now (transitions
    /// applied), sorted by id, and the current count is returned; otherwise `f` is not called
    /// and `None` returned. Not a port call (not recorded), like `instances`. `f` must not call
    /// back into the fleet.
    pub fn for_each_instance_since(
        &self,
        seen: Option<u64>,
        mut f: impl FnMut(&Instance),
    ) -> Option<u64> {
        let now = self.clock.now();
        let mut st = self.lock();
        Self::advance(&mut st, now);
        if seen == Some(st.generation) {
            return None;
        }
        for s in st.instances.values() {
            f(&s.inst);
        }
        Some(st.generation)
    }

    fn advance(st: &mut State, now: DateTime<Utc>) {
        if st.due.is_none_or(|t| t > now) {
            return;
        }
        let mut gone = Vec::new();
        let mut changed = false;
        for (k, s) in st.instances.iter_mut() {
            match s.ready_at {
                Some(t) if t <= now => {
                    changed = true;
                    s.ready_at = None;
                    if s.inst.status == InstanceStatus::Deleting {
                        gone.push(k.clone());
                        continue;
                    }
                    if s.inst.status == InstanceStatus::Creating {
                        s.inst_mut().available_since = Some(t);
                    }
                    if let Some(c) = s.pending_class.take() {
                        s.inst_mut().class = c;
                    }
                    s.inst_mut().status = InstanceStatus::Available;
                }
                _ => {}
            }
        }
        for k in gone {
            Self::remove(st, &k);
        }
        st.due = st.instances.values().filter_map(|s| s.ready_at).min();
        if changed {
            st.generation += 1;
        }
    }

    fn remove(st: &mut State, k: &InstanceId) {
        if let Some(s) = st.instances.remove(k) {
            if let Some(src) = &s.inst.source {
                if let Some(m) = st.instances.get_mut(src) {
                    m.inst_mut().replicas.retain(|r| *r != s.inst.id);
                }
            }
        }
    }

    /// Record the call, apply due transitions, and pop an injected failure if one is queued.
    fn enter(
        &self,
        operation: &'static str,
        id: Option<&InstanceId>,
    ) -> Result<std::sync::MutexGuard<'_, State>, PortError> {
        let now = self.clock.now();
        let mut st = self.lock();
        if !st.no_call_log {
            st.calls.push(Call {
                operation,
                id: id.cloned(),
                at: now,
            });
        }
        Self::advance(&mut st, now);
        // Every call but a read may change an instance (and start a transition: the next
        // call looks at every instance).
        if !matches!(operation, "describe" | "read_tags") {
            st.generation += 1;
            st.due = Some(DateTime::<Utc>::MIN_UTC);
        }
        if let Some(e) = st.failures.get_mut(operation).and_then(|q| q.pop_front()) {
            return Err(e);
        }
        Ok(st)
    }
}

fn not_found(op: &str, id: &InstanceId) -> PortError {
    PortError::new(
        ErrorKind::NotFound,
        op,
        format!("DB instance {id} not found"),
    )
}

#[async_trait]
impl Fleet for SimFleet {
    /// The change count (transitions applied first); `None` while a describe failure is
    /// queued, so that the failure is met.
    fn generation(&self) -> Option<u64> {
        let now = self.clock.now();
        let mut st = self.lock();
        Self::advance(&mut st, now);
        let failing = st.failures.get("describe").is_some_and(|q| !q.is_empty());
        (!failing).then_some(st.generation)
    }

    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Arc<Instance>>, PortError> {
        let mut st = self.enter("describe", None)?;
        // A speed measure for long replays (the year benchmark): while nothing changed, the
        // same ids get the same answer, as kept from the last describe (most ticks of a
        // replay change nothing, and finding each id among the instances was most of a
        // describe).
        if let Some((generation, asked, found)) = &st.described {
            if *generation == st.generation && asked.as_slice() == ids {
                return Ok(found.clone());
            }
        }
        // A small fleet is scanned (a few id comparisons, cheaper than hashing each id); the
        // instance found is the one stored under the id's key either way.
        let small = st.instances.len() <= 16;
        let found: Vec<Arc<Instance>> = ids
            .iter()
            .filter_map(|id| {
                if small {
                    st.instances.values().find(|s| s.inst.id == *id)
                } else {
                    st.instances.get(id)
                }
                .map(|s| s.inst.clone())
            })
            .collect();
        st.described = Some((st.generation, ids.to_vec(), found.clone()));
        Ok(found)
    }

    async fn restore_master(&self, master: &MasterSpec, tags: &Tags) -> Result<(), PortError> {
        let op = "restore_master";
        let now = self.clock.now();
        let mut inst = self.new_instance(&master.id, &master.class, InstanceStatus::Creating);
        let mut st = self.enter(op, Some(&master.id))?;
        if st.instances.contains_key(&master.id) {
            return Err(PortError::new(
                ErrorKind::AlreadyExists,
                op,
                format!("DB instance {} already exists", master.id),
            ));
        }
        if !st.snapshots.contains(&master.snapshot) {
            return Err(PortError::new(
                ErrorKind::NotFound,
                op,
                format!("DB snapshot {} not found", master.snapshot),
            ));
        }
        inst.multi_az = master.multi_az;
        inst.tags = Arc::new(tags.clone());
        st.instances.insert(
            master.id.clone(),
            SimInstance {
                inst: Arc::new(inst),
                ready_at: Some(now + chrono_dur(self.opts.restore_lead)),
                pending_class: None,
            },
        );
        Ok(())
    }

    async fn create_replica(&self, r: &ReplicaRequest<'_>) -> Result<(), PortError> {
        let (id, source, class, tags) = (r.id, r.source, r.class, r.tags);
        let op = "create_replica";
        let now = self.clock.now();
        let mut inst = self.new_instance(id, class, InstanceStatus::Creating);
        let mut st = self.enter(op, Some(id))?;
        if st.instances.contains_key(id) {
            return Err(PortError::new(
                ErrorKind::AlreadyExists,
                op,
                format!("DB instance {id} already exists"),
            ));
        }
        let src = st
            .instances
            .get_mut(source)
            .ok_or_else(|| not_found(op, source))?;
        if !src.inst.status.is_available() {
            return Err(PortError::new(
                ErrorKind::Fatal,
                op,
                format!("source {source} is {}", src.inst.status),
            ));
        }
        src.inst_mut().replicas.push(id.clone());
        inst.source = Some(src.inst.id.clone());
        inst.tags = Arc::new(tags.clone());
        inst.zone = r.zone.map(str::to_string);
        if !r.settings.is_empty() {
            // As RDS: everything but what cannot be set at creation.
            let mut settings = r.settings.clone();
            settings.backup_retention_period = Some(0);
            inst.settings = Some(Arc::new(settings));
        }
        let lead = match &self.opts.lead_draw {
            Some(draw) => {
                Duration::from_secs(60 * u64::from(draw.minutes_at(now.timestamp().div_euclid(60))))
            }
            None => self.opts.create_lead,
        };
        let ready_at = now + chrono_dur(lead);
        if lead.is_zero() {
            inst.status = InstanceStatus::Available;
            inst.available_since = Some(now);
        }
        st.instances.insert(
            id.clone(),
            SimInstance {
                inst: Arc::new(inst),
                ready_at: (!lead.is_zero()).then_some(ready_at),
                pending_class: None,
            },
        );
        Ok(())
    }

    async fn modify_settings(&self, id: &InstanceId, settings: &Settings) -> Result<(), PortError> {
        let op = "modify_settings";
        let mut st = self.enter(op, Some(id))?;
        let s = st.instances.get_mut(id).ok_or_else(|| not_found(op, id))?;
        let now = s.inst.settings.as_deref().cloned().unwrap_or_default();
        s.inst_mut().settings = Some(Arc::new(now.merged(settings)));
        Ok(())
    }

    async fn zones(
        &self,
        _near: &InstanceId,
        _engine: &str,
        _class: &InstanceClass,
    ) -> Result<Vec<String>, PortError> {
        let _st = self.enter("zones", None)?;
        Ok(SIM_ZONES.iter().map(|z| z.to_string()).collect())
    }

    async fn delete_replica(&self, id: &InstanceId) -> Result<(), PortError> {
        let op = "delete_replica";
        let now = self.clock.now();
        let mut st = self.enter(op, Some(id))?;
        let s = st.instances.get_mut(id).ok_or_else(|| not_found(op, id))?;
        if s.inst.status == InstanceStatus::Deleting {
            return Err(PortError::new(
                ErrorKind::Fatal,
                op,
                format!("{id} is already being deleted"),
            ));
        }
        if self.opts.delete_time.is_zero() {
            Self::remove(&mut st, id);
        } else {
            s.inst_mut().status = InstanceStatus::Deleting;
            s.ready_at = Some(now + chrono_dur(self.opts.delete_time));
        }
        Ok(())
    }

    async fn modify_class(&self, id: &InstanceId, class: &InstanceClass) -> Result<(), PortError> {
        let op = "modify_class";
        let now = self.clock.now();
        let mut st = self.enter(op, Some(id))?;
        let s = st.instances.get_mut(id).ok_or_else(|| not_found(op, id))?;
        if s.inst.status.is_busy() {
            return Err(PortError::new(
                ErrorKind::Fatal,
                op,
                format!("{id} is {}", s.inst.status),
            ));
        }
        if self.opts.modify_time.is_zero() {
            s.inst_mut().class = class.clone();
        } else {
            s.inst_mut().status = InstanceStatus::Modifying;
            s.pending_class = Some(class.clone());
            s.ready_at = Some(now + chrono_dur(self.opts.modify_time));
        }
        Ok(())
    }

    async fn read_tags(&self, id: &InstanceId) -> Result<Tags, PortError> {
        let st = self.enter("read_tags", Some(id))?;
        st.instances
            .get(id)
            .map(|s| Tags::clone(&s.inst.tags))
            .ok_or_else(|| not_found("read_tags", id))
    }

    async fn write_tags(&self, id: &InstanceId, tags: &Tags) -> Result<(), PortError> {
        let mut st = self.enter("write_tags", Some(id))?;
        let s = st
            .instances
            .get_mut(id)
            .ok_or_else(|| not_found("write_tags", id))?;
        // As `extend`. Nothing to change (the state tags are rewritten often, mostly with the
        // same values): the shared map stays as it is. Otherwise reuse the buffers of the
        // values already there (copying the map first only when a described copy shares it).
        if tags.iter().all(|(k, v)| s.inst.tags.get(k) == Some(v)) {
            return Ok(());
        }
        let stored = Arc::make_mut(&mut s.inst_mut().tags);
        for (k, v) in tags {
            match stored.get_mut(k) {
                Some(old) => old.clone_from(v),
                None => {
                    stored.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(())
    }

    async fn remove_tags(&self, id: &InstanceId, keys: &[String]) -> Result<(), PortError> {
        let mut st = self.enter("remove_tags", Some(id))?;
        let s = st
            .instances
            .get_mut(id)
            .ok_or_else(|| not_found("remove_tags", id))?;
        if keys.iter().any(|k| s.inst.tags.contains_key(k)) {
            let stored = Arc::make_mut(&mut s.inst_mut().tags);
            for k in keys {
                stored.remove(k);
            }
        }
        Ok(())
    }
}
