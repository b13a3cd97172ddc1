//! The simulated world a backtest run replays in: a manual clock, a [`SimFleet`] and the load
//! model over it, both following the run's [`FleetModel`], and the initial fleet (the master and the
//! replicas the first lead time needs, available since the day before). Every run — policies
//! and the target-tracking baseline — starts from the same world.

use crate::adapters::sim::{SimFleet, SimOptions};
use crate::adapters::sim_load::{minute_time, Demand, LoadOptions, SimLoad, MAX_REPLICAS};
use crate::adapters::sim_model::FleetModel;
use crate::core::config::{ClusterSpec, MasterSpec, ReplicaSpec};
use crate::core::domain::{InstanceClass, InstanceId, InstanceStatus};
use crate::ports::{Clock, ManualClock};
use crate::reconcile::managed_tags;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Everything a run needs to build its world.
#[derive(Debug, Clone)]
pub struct WorldSetup {
    pub spec: ClusterSpec,
    pub demand: Arc<Demand>,
    /// Lead times, metric delay, skew, warm-up and delete time.
    pub model: FleetModel,
    /// Replicas available at the start (the first of the configured list).
    pub initial_replicas: usize,
    pub load: LoadOptions,
    /// Failures the simulated fleet returns for its next calls of an operation (tests: a
    /// replay whose ticks fail is an error, not a different score). Empty by default.
    pub faults: Vec<(&'static str, crate::ports::ErrorKind)>,
}

impl WorldSetup {
    pub fn new(
        spec: ClusterSpec,
        demand: Arc<Demand>,
        model: &FleetModel,
        initial_replicas: usize,
    ) -> Result<WorldSetup, String> {
        if spec.replicas.len() > MAX_REPLICAS {
            return Err(format!(
                "cluster {} lists {} replicas; the backtest handles at most {MAX_REPLICAS}",
                spec.name,
                spec.replicas.len()
            ));
        }
        Ok(WorldSetup {
            initial_replicas: initial_replicas.min(spec.replicas.len()),
            spec,
            demand,
            model: model.clone(),
            load: LoadOptions {
                model: model.clone(),
                ..LoadOptions::default()
            },
            faults: Vec::new(),
        })
    }
}

/// A cluster spec for a backtest: master `sim-master`, replicas `sim-replica-01`… (`replicas`
/// of them), all of one class.
pub fn synthetic_spec(cluster: &str, replicas: usize) -> ClusterSpec {
    let class = InstanceClass::from_aws("db.r6g.large");
    ClusterSpec {
        name: cluster.into(),
        master: MasterSpec {
            snapshot: "sim-snapshot".into(),
            id: InstanceId::from_aws("sim-master"),
            class: class.clone(),
            multi_az: false,
            subnet_group: None,
        },
        replicas: (1..=replicas)
            .map(|i| ReplicaSpec {
                id: InstanceId::from_aws(&format!("sim-replica-{i:02}")),
                class: class.clone(),
                template: Default::default(),
            })
            .collect(),
        haproxy: None,
        template: Default::default(),
        rules: Default::default(),
        target: Default::default(),
    }
}

/// Put the master and the first `initial` configured replicas on `fleet`, available (and
/// created) since `since`, the replicas tagged as elasticrds-managed.
pub fn seed_fleet(fleet: &SimFleet, spec: &ClusterSpec, initial: usize, since: DateTime<Utc>) {
    // The spec's own identifiers and classes (shared text: comparisons with the spec are
    // then pointer checks).
    let mut master = fleet.available_instance(spec.master.id.as_str(), spec.master.class.as_str());
    master.id = spec.master.id.clone();
    master.class = spec.master.class.clone();
    master.available_since = Some(since);
    master.created_at = Some(since);
    fleet.insert(master);
    for r in spec.replicas.iter().take(initial) {
        let mut i = fleet.available_instance(r.id.as_str(), r.class.as_str());
        i.id = r.id.clone();
        i.class = r.class.clone();
        i.status = InstanceStatus::Available;
        i.available_since = Some(since);
        i.created_at = Some(since);
        i.source = Some(spec.master.id.clone());
        i.tags = managed_tags(&spec.name).into();
        fleet.insert(i);
    }
}

/// One run's simulated world.
pub struct World {
    pub clock: Arc<ManualClock>,
    pub fleet: Arc<SimFleet>,
    pub load: Arc<SimLoad>,
    start_minute: i64,
}

impl World {
    pub fn new(setup: &WorldSetup) -> Result<World, String> {
        let start = setup.demand.start();
        let clock = Arc::new(ManualClock::new(start));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let m = &setup.model;
        let fleet = Arc::new(
            SimFleet::new(
                dyn_clock.clone(),
                SimOptions {
                    create_lead: Duration::from_secs(60 * u64::from(m.lead.median_minutes)),
                    lead_draw: (m.lead.spread > 0.0).then(|| m.lead.clone()),
                    delete_time: Duration::from_secs(60 * u64::from(m.delete_minutes)),
                    ..Default::default()
                },
            )
            .without_call_log(),
        );
        for (op, kind) in &setup.faults {
            fleet.fail_next(op, crate::ports::PortError::new(*kind, *op, "injected"));
        }
        seed_fleet(
            &fleet,
            &setup.spec,
            setup.initial_replicas,
            start - chrono::Duration::days(1),
        );
        let spec = &setup.spec;
        let load = SimLoad::new(
            fleet.clone(),
            dyn_clock,
            spec,
            setup.demand.clone(),
            setup.load.clone(),
        )?;
        Ok(World {
            clock,
            fleet,
            load: Arc::new(load),
            start_minute: setup.demand.start_minute,
        })
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Move the clock to the start of minute `i` of the demand and return that time.
    pub fn minute(&self, i: usize) -> DateTime<Utc> {
        let t = minute_time(self.start_minute + i as i64);
        self.clock.set(t);
        t
    }
}
