//! The load model of the simulated fleet: a demand series (in replica-capacity units, 1.0 = one
//! replica at 100 % CPU) drives per-instance CPU, connections and replica lag of a
//! [`SimFleet`], served through the [`MetricsSource`] port so that the decision core reads it
//! exactly as it reads CloudWatch. Used by the backtest and `elasticrds demo`; deterministic.
//!
//! Rules, per simulated minute (the fleet model's effects, [`FleetModel`], in brackets; the
//! simple model turns them off):
//! - the serving replicas are the configured replicas that are `available` (since before the
//!   minute started); they share the demand in proportion to their capacity (1.0 each; [a
//!   replica warming up has less]): mean CPU = demand / capacity (capped at 100 %; demand
//!   above the capacity is unserved); [with two or more serving, the first in the configured
//!   order carries `1 + skew` times the mean and the others the rest evenly]; connections
//!   split the same way; a minute breaches when the hottest replica is above 80 %;
//! - configured replicas are paid from creation until gone ([a deleting one included]);
//! - [a minute's datapoints are visible `metric_delay_minutes` after the minute ends];
//! - the master serves reads only when no replica is available (the old HAProxy `backup`
//!   line); its write load is not modelled;
//! - replica lag grows by 60 s per minute for every 10 % of load above 90 % CPU and drains at
//!   the same rate below it; a replica that (re)joins starts at 0;
//! - a minute without demand data (a trace gap) yields no samples at all, never zeros;
//! - instances that are creating, deleting or absent report no samples.
//!
//! Minutes are recorded lazily from the fleet's state (every `fetch` catches up to the current
//! minute; drivers can call [`SimLoad::settle`] after acting) and kept for
//! [`LoadOptions::history_minutes`].

use crate::adapters::sim::SimFleet;
use crate::adapters::sim_model::FleetModel;
use crate::core::config::ClusterSpec;
use crate::core::domain::{
    InstanceId, InstanceStatus, MetricKind, MetricQuery, MetricSeries, Sample, Statistic,
};
use crate::core::forecast::{LoadHistory, HISTORY_STEP_SECS};
use crate::ports::{Clock, ErrorKind, HistoryQuery, MetricsSource, PortError};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Per-replica CPU above this fraction is a breach (also used by the oracle's sizing).
pub const BREACH_UTILIZATION: f64 = 0.80;
/// Replica lag grows while a replica runs above this fraction of its capacity.
pub const LAG_UTILIZATION: f64 = 0.90;
/// Most replicas one load model tracks (a bit mask per minute).
pub const MAX_REPLICAS: usize = 64;

/// Demand per minute in replica-capacity units; `None` is a minute without data.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// Start of the first minute, in minutes since the Unix epoch.
    pub start_minute: i64,
    pub units: Vec<Option<f64>>,
}

impl Demand {
    pub fn new(start: DateTime<Utc>, units: Vec<Option<f64>>) -> Demand {
        Demand {
            start_minute: start.timestamp().div_euclid(60),
            units,
        }
    }
    pub fn start(&self) -> DateTime<Utc> {
        minute_time(self.start_minute)
    }
    /// End of the last minute (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        minute_time(self.start_minute + self.units.len() as i64)
    }
    pub fn len(&self) -> usize {
        self.units.len()
    }
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }
    /// Demand in the minute starting at epoch minute `m`.
    pub fn at_minute(&self, m: i64) -> Option<f64> {
        let i = m - self.start_minute;
        if i < 0 {
            return None;
        }
        self.units.get(i as usize).copied().flatten()
    }
    pub fn peak(&self) -> Option<f64> {
        self.units.iter().flatten().copied().reduce(f64::max)
    }
}

/// The minute starting at epoch minute `m`.
pub fn minute_time(m: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(m.saturating_mul(60), 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// [`minute_time`] for many minutes, mostly of one day: the date is worked out once per day
/// (the calendar arithmetic was a good part of answering a fetch).
#[derive(Debug, Default)]
struct MinuteTimes {
    /// Epoch day and its date, from the last [`minute_time`] computed in full.
    day: Option<(i64, chrono::NaiveDate)>,
}

impl MinuteTimes {
    fn at(&mut self, m: i64) -> DateTime<Utc> {
        let (day, in_day) = (m.div_euclid(1440), m.rem_euclid(1440));
        if let Some((d, date)) = self.day {
            if d == day {
                if let Some(t) =
                    chrono::NaiveTime::from_num_seconds_from_midnight_opt(in_day as u32 * 60, 0)
                {
                    return chrono::NaiveDateTime::new(date, t).and_utc();
                }
            }
        }
        let t = minute_time(m);
        // Only an exact answer (not the out-of-range fallback) names the day.
        self.day = (t.timestamp() == m.saturating_mul(60)).then(|| (day, t.date_naive()));
        t
    }
}

/// Epoch minute containing `t`.
pub fn epoch_minute(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

/// How the load of one minute lands on the fleet: the pure rule shared by the simulated fleet,
/// the oracle and the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Served {
    /// Mean load of the serving instances as a fraction of their capacity (uncapped).
    pub utilization: f64,
    /// Load of the hottest serving instance as a fraction of its capacity (uncapped): the
    /// mean times the fleet model's skew when two or more replicas serve.
    pub hottest: f64,
    /// Mean CPU of the serving instances, percent (capped at 100): what a reader-average
    /// CloudWatch metric shows.
    pub cpu_percent: f64,
    /// Demand no instance could take (capacity units).
    pub unserved: f64,
    /// The hottest instance's CPU above 80 %, or demand unserved.
    pub breach: bool,
    /// The master took the reads (no replica available).
    pub master_serves: bool,
}

/// The serving side of a minute: how many replicas serve, their capacity together (1.0 per
/// warm replica; less while one warms up) and how much more than the mean the hottest carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Serving {
    pub replicas: u32,
    pub capacity: f64,
    pub hottest_factor: f64,
}

impl Serving {
    /// `n` warm replicas sharing the load evenly.
    pub fn even(n: u32) -> Serving {
        Serving {
            replicas: n,
            capacity: f64::from(n),
            hottest_factor: 1.0,
        }
    }
}

/// Apply the load rule: `demand` over `serving` warm replicas sharing evenly, the master as
/// the fallback ([`serve_on`] with [`Serving::even`]).
pub fn serve(demand: f64, serving: u32, master_available: bool) -> Served {
    serve_on(demand, Serving::even(serving), master_available)
}

/// Apply the load rule: `demand` over the serving replicas in proportion to their capacity
/// (the hottest carrying more), the master (one warm instance) as the fallback.
pub fn serve_on(demand: f64, serving: Serving, master_available: bool) -> Served {
    let master_serves = serving.replicas == 0 && master_available;
    let (capacity, hot) = if serving.replicas > 0 {
        (serving.capacity, serving.hottest_factor)
    } else if master_serves {
        (1.0, 1.0)
    } else {
        (0.0, 1.0)
    };
    if capacity <= 0.0 {
        return Served {
            unserved: demand,
            breach: demand > 0.0,
            ..Served::default()
        };
    }
    let per = demand / capacity;
    let unserved = (demand - capacity).max(0.0);
    Served {
        utilization: per,
        hottest: per * hot,
        cpu_percent: per.min(1.0) * 100.0,
        unserved,
        breach: per * hot > BREACH_UTILIZATION + 1e-12 || unserved > 1e-12,
        master_serves,
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Client connections one replica holds at 100 % of its capacity.
    pub connections_per_unit: f64,
    /// Minutes of per-instance history kept for `fetch` (older periods report no samples).
    pub history_minutes: usize,
    /// Metric delay, skew and warm-up (the lead and delete times are the fleet's).
    pub model: FleetModel,
}

impl Default for LoadOptions {
    /// The simple model (no metric delay, an even split, no warm-up); the backtest sets its
    /// own.
    fn default() -> Self {
        LoadOptions {
            connections_per_unit: 100.0,
            history_minutes: 24 * 60,
            model: FleetModel::simple(12),
        }
    }
}

/// The state of one simulated minute, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct MinuteState {
    /// Epoch minute.
    pub minute: i64,
    pub demand: Option<f64>,
    /// Configured replicas that exist: creating, available or being deleted (what is paid
    /// for).
    pub replicas: u32,
    /// Of those, the ones being deleted (paid, never serving).
    pub deleting: u32,
    /// Of those, the ones serving reads during the whole minute.
    pub serving: u32,
    /// Whether the load landed (`None` for a minute without demand data).
    pub served: Option<Served>,
}

#[derive(Debug, Clone)]
struct Rec {
    state: MinuteState,
    /// Bit i: configured replica i served in this minute.
    mask: u64,
    master_available: bool,
    /// Lag (s) per configured replica, when any is non-zero.
    lags: Option<Box<[f32]>>,
}

#[derive(Debug)]
struct Inner {
    /// First epoch minute not recorded yet.
    next: Option<i64>,
    history: VecDeque<Rec>,
    lag: Vec<f64>,
    /// Bit mask of the previous minute's serving replicas (for lag reset on re-join); `None`
    /// before the first recorded minute.
    prev_mask: Option<u64>,
    /// What `record_until` last read of the fleet: per configured replica (exists since
    /// minute, available since minute, being deleted) or `None`, and whether the master is available; as of
    /// `fleet_seen` (the fleet's change count then).
    slots: Vec<Slot>,
    master_available: bool,
    fleet_seen: Option<u64>,
    /// Where `record_until` reads the fleet into (kept between calls).
    scratch: Vec<Slot>,
    /// The replicas' summed CPU and connections per 5-minute bucket since the demand's start,
    /// as sums over the bucket's minutes and the minutes with data: what `load_history`
    /// answers (kept for the whole run, 24 bytes per 5 minutes).
    totals: Vec<Total>,
    /// The samples' times, kept between fetches (one day's date worked out once per day, not
    /// once per fetch: the calendar arithmetic was a good part of a fetch's cost).
    times: MinuteTimes,
    /// Recent buckets' samples, as `fetch` last worked them out.
    buckets: Buckets,
}

/// One 5-minute bucket of the replicas' summed load.
#[derive(Debug, Clone, Copy, Default)]
struct Total {
    cpu: f64,
    connections: f64,
    minutes: u32,
}

/// The samples of recent complete buckets per (instance, metric, statistic, period), as a
/// fetch worked them out. A speed measure for long replays (the year benchmark,
/// benches/backtest.rs: a tick's fetch window overlaps the last one's but for its newest
/// minute, and working each bucket out again was most of a fetch). A bucket is kept only
/// once final: all its minutes recorded, visible (past the metric delay) and still in the
/// history; a recorded minute never changes, so a kept bucket is what working it out again
/// would give.
#[derive(Debug, Default)]
struct Buckets {
    runs: Vec<BucketRun>,
}

/// Consecutive buckets of one series: `samples[k]` is the bucket starting at epoch minute
/// `first + k × period` (`None`: no data in it).
#[derive(Debug)]
struct BucketRun {
    key: (Who, MetricKind, Statistic, i64),
    first: i64,
    samples: VecDeque<Option<Sample>>,
}

/// Buckets kept per series (a fetch window is a few periods).
const BUCKETS_KEPT: usize = 64;

impl Buckets {
    fn run(&mut self, key: (Who, MetricKind, Statistic, i64)) -> &mut BucketRun {
        match self.runs.iter().position(|r| r.key == key) {
            Some(i) => &mut self.runs[i],
            None => {
                self.runs.push(BucketRun {
                    key,
                    first: 0,
                    samples: VecDeque::new(),
                });
                self.runs.last_mut().expect("just pushed")
            }
        }
    }
}

impl BucketRun {
    /// The kept bucket starting at `b`, if any.
    fn get(&self, b: i64) -> Option<Option<Sample>> {
        let period = self.key.3;
        let k = usize::try_from((b - self.first) / period).ok()?;
        (b >= self.first)
            .then(|| self.samples.get(k).copied())
            .flatten()
    }

    /// Keep bucket `b` (final): appended when it follows the last one, else a new run.
    fn keep(&mut self, b: i64, sample: Option<Sample>) {
        let period = self.key.3;
        if self.samples.is_empty() || b != self.first + self.samples.len() as i64 * period {
            self.samples.clear();
            self.first = b;
        }
        self.samples.push_back(sample);
        if self.samples.len() > BUCKETS_KEPT {
            self.samples.pop_front();
            self.first += period;
        }
    }
}

/// The load model over one cluster of a [`SimFleet`].
pub struct SimLoad {
    fleet: Arc<SimFleet>,
    clock: Arc<dyn Clock>,
    demand: Arc<Demand>,
    master: InstanceId,
    replicas: Vec<InstanceId>,
    opts: LoadOptions,
    inner: Mutex<Inner>,
}

impl SimLoad {
    /// A load model for `spec`'s master and replicas. Refuses more than [`MAX_REPLICAS`].
    pub fn new(
        fleet: Arc<SimFleet>,
        clock: Arc<dyn Clock>,
        spec: &ClusterSpec,
        demand: Arc<Demand>,
        opts: LoadOptions,
    ) -> Result<SimLoad, String> {
        if spec.replicas.len() > MAX_REPLICAS {
            return Err(format!(
                "cluster {} lists {} replicas; the simulated load model handles at most {MAX_REPLICAS}",
                spec.name,
                spec.replicas.len()
            ));
        }
        Ok(SimLoad {
            fleet,
            clock,
            demand,
            master: spec.master.id.clone(),
            replicas: spec.replicas.iter().map(|r| r.id.clone()).collect(),
            inner: Mutex::new(Inner {
                next: None,
                history: VecDeque::with_capacity(opts.history_minutes.min(1 << 16) + 1),
                lag: vec![0.0; spec.replicas.len()],
                prev_mask: None,
                slots: vec![None; spec.replicas.len()],
                master_available: false,
                fleet_seen: None,
                scratch: Vec::with_capacity(spec.replicas.len()),
                totals: Vec::new(),
                times: MinuteTimes::default(),
                buckets: Buckets::default(),
            }),
            opts,
        })
    }

    pub fn demand(&self) -> &Arc<Demand> {
        &self.demand
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record every minute up to and including the one containing `now`, from the fleet's
    /// current state, and return that minute. Call it after acting in a minute, so that the
    /// minute is recorded with the fleet as it then is.
    pub fn settle(&self, now: DateTime<Utc>) -> MinuteState {
        let m = epoch_minute(now);
        let mut inner = self.lock();
        self.record_until(&mut inner, m + 1);
        inner
            .history
            .back()
            .filter(|r| r.state.minute == m)
            .map(|r| r.state)
            .unwrap_or(MinuteState {
                minute: m,
                ..Default::default()
            })
    }

    /// The recorded state of epoch minute `m`, while it is in the history.
    pub fn minute(&self, m: i64) -> Option<MinuteState> {
        let inner = self.lock();
        find(&inner.history, m).map(|r| r.state)
    }

    /// Record minutes `[inner.next, end)`.
    fn record_until(&self, inner: &mut Inner, end: i64) {
        let start = match inner.next {
            Some(n) => n,
            // Nothing recorded yet: start at the demand's start (or as far back as the history
            // keeps, when the first call comes much later).
            None => self
                .demand
                .start_minute
                .max(end.saturating_sub(self.opts.history_minutes.max(1) as i64)),
        };
        if start >= end {
            return;
        }
        self.read_fleet(inner);
        let slots = std::mem::take(&mut inner.slots);
        for m in start..end {
            self.record_minute(inner, &slots, m);
        }
        inner.next = Some(end);
        inner.slots = slots;
    }

    /// Read the fleet into `inner.slots` and `inner.master_available`, only when it may have
    /// changed since the last read.
    fn read_fleet(&self, inner: &mut Inner) {
        let mut read = std::mem::take(&mut inner.scratch);
        read.clear();
        read.resize(self.replicas.len(), None);
        let mut master_available = false;
        let changed = self
            .fleet
            .for_each_instance_since(inner.fleet_seen, |inst| {
                if inst.id == self.master && inst.status.is_available() {
                    master_available = true;
                }
                if let Some(i) = self.replicas.iter().position(|r| *r == inst.id) {
                    read[i] = Some(slot_of(inst));
                }
            });
        if let Some(seen) = changed {
            std::mem::swap(&mut inner.slots, &mut read);
            inner.master_available = master_available;
            inner.fleet_seen = Some(seen);
        }
        inner.scratch = read;
    }

    /// Record epoch minute `m` with the fleet as `slots` (and `inner.master_available`) say.
    fn record_minute(&self, inner: &mut Inner, slots: &[Slot], m: i64) {
        let model = &self.opts.model;
        let mut replicas = 0u32;
        let mut mask = 0u64;
        let mut capacity = 0.0;
        let mut deleting = 0u32;
        for (i, s) in slots.iter().enumerate() {
            if let Some((created, avail, gone)) = s {
                if *created <= m {
                    replicas += 1;
                    deleting += u32::from(*gone);
                }
                if let Some(a) = avail.filter(|a| *a <= m) {
                    mask |= 1 << i;
                    capacity += model.capacity(m.saturating_sub(a));
                }
            }
        }
        let serving = mask.count_ones();
        let on = Serving {
            replicas: serving,
            capacity,
            hottest_factor: model.hottest_factor(serving),
        };
        let demand = self.demand.at_minute(m);
        let master_available = inner.master_available;
        let served = demand.map(|d| serve_on(d, on, master_available));
        let any_lag = drift_lags(inner, mask, served, on.hottest_factor);
        inner.prev_mask = Some(mask);
        self.add_total(inner, m, demand, mask, on.hottest_factor, served);
        let lags = any_lag.then(|| inner.lag.iter().map(|&l| l as f32).collect());
        inner.history.push_back(Rec {
            state: MinuteState {
                minute: m,
                demand,
                replicas,
                deleting,
                serving,
                served,
            },
            mask,
            master_available,
            lags,
        });
        while inner.history.len() > self.opts.history_minutes.max(1) {
            inner.history.pop_front();
        }
    }

    /// Add minute `m`'s summed replica CPU and connections (what CloudWatch would show summed
    /// over the replicas: each replica's connections are its share of the demand, so they sum
    /// to the demand's) to its 5-minute bucket; nothing when no replica served or no demand.
    fn add_total(
        &self,
        inner: &mut Inner,
        m: i64,
        demand: Option<f64>,
        mask: u64,
        hf: f64,
        served: Option<Served>,
    ) {
        let (Some(s), Some(d)) = (served.filter(|_| mask != 0), demand) else {
            return;
        };
        let cpu: f64 = (0..self.replicas.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| (s.utilization * share(mask, i, hf)).min(1.0) * 100.0)
            .sum();
        let Ok(b) = usize::try_from((m - self.total_base()) / HISTORY_STEP_MINUTES) else {
            return;
        };
        if b >= inner.totals.len() {
            inner.totals.resize(b + 1, Total::default());
        }
        let t = &mut inner.totals[b];
        t.cpu += cpu;
        t.connections += d * self.opts.connections_per_unit;
        t.minutes += 1;
    }

    /// The epoch minute of the first history bucket: the demand's start, aligned down.
    fn total_base(&self) -> i64 {
        self.demand.start_minute.div_euclid(HISTORY_STEP_MINUTES) * HISTORY_STEP_MINUTES
    }

    /// The load history of `q` (this cluster's replicas) from the recorded totals: buckets
    /// whose minutes are all visible (the metric delay) and inside `[q.start, q.end)`.
    fn history_of(&self, inner: &Inner, q: &HistoryQuery, now_m: i64) -> LoadHistory {
        let mut h = LoadHistory::empty(q.metric, HISTORY_STEP_SECS, q.start);
        let first = epoch_minute(h.start);
        let end_m = epoch_minute(q.end).min(now_m);
        let base = self.total_base();
        let mut b = first;
        while b + HISTORY_STEP_MINUTES <= end_m {
            let v = usize::try_from((b - base) / HISTORY_STEP_MINUTES)
                .ok()
                .filter(|_| b >= base)
                .and_then(|i| inner.totals.get(i))
                .filter(|t| t.minutes > 0)
                .map(|t| {
                    let sum = match q.metric {
                        MetricKind::Connections => t.connections,
                        _ => t.cpu,
                    };
                    sum / f64::from(t.minutes)
                });
            h.values.push(v);
            b += HISTORY_STEP_MINUTES;
        }
        h
    }

    /// One instance's value of `metric` in a recorded minute; `None` when it reported nothing.
    fn value(&self, rec: &Rec, who: Who, metric: MetricKind) -> Option<f64> {
        let s = rec.state.served?;
        let d = rec.state.demand?;
        match who {
            Who::Replica(i) => {
                if rec.mask & (1 << i) == 0 {
                    return None;
                }
                let f = share(
                    rec.mask,
                    i,
                    self.opts.model.hottest_factor(rec.state.serving),
                );
                let per = d / rec.state.serving as f64 * f;
                match metric {
                    MetricKind::Cpu => Some((s.utilization * f).min(1.0) * 100.0),
                    MetricKind::Connections => Some(per * self.opts.connections_per_unit),
                    MetricKind::ReplicaLag => Some(
                        rec.lags
                            .as_ref()
                            .and_then(|l| l.get(i))
                            .map_or(0.0, |&l| l as f64),
                    ),
                }
            }
            Who::Master => {
                if !rec.master_available {
                    return None;
                }
                let reads = if s.master_serves { d } else { 0.0 };
                match metric {
                    MetricKind::Cpu => Some(reads.min(1.0) * 100.0),
                    MetricKind::Connections => Some(reads * self.opts.connections_per_unit),
                    MetricKind::ReplicaLag => None,
                }
            }
        }
    }

    fn who(&self, id: &InstanceId) -> Option<Who> {
        if *id == self.master {
            return Some(Who::Master);
        }
        self.replicas.iter().position(|r| r == id).map(Who::Replica)
    }
}

/// Replica `i`'s load relative to the mean of the replicas serving in `mask`: the hottest
/// (the first serving one in the configured order, which holds the oldest connections)
/// carries `hottest_factor` times the mean, the others share the rest evenly.
fn share(mask: u64, i: usize, hottest_factor: f64) -> f64 {
    let n = f64::from(mask.count_ones());
    if n < 2.0 {
        1.0
    } else if mask.trailing_zeros() as usize == i {
        hottest_factor
    } else {
        (n - hottest_factor) / (n - 1.0)
    }
}

/// A configured replica as the load model reads it from the fleet: paid since (epoch minute),
/// serving since (the first whole minute it was available; `None` while not available), being
/// deleted.
type Slot = Option<(i64, Option<i64>, bool)>;

/// What [`Slot`] the load model reads off `inst`: paid from creation until gone (a deleting
/// replica too), serving only while available.
fn slot_of(inst: &crate::core::domain::Instance) -> (i64, Option<i64>, bool) {
    let created = inst.created_at.map(epoch_minute).unwrap_or(i64::MIN);
    let avail = inst.status.is_available().then(|| {
        inst.available_since
            .map(|t| {
                let m = epoch_minute(t);
                if t.timestamp().rem_euclid(60) == 0 {
                    m
                } else {
                    m + 1
                }
            })
            .unwrap_or(i64::MIN)
    });
    (created, avail, inst.status == InstanceStatus::Deleting)
}

/// One minute of replica lag for the replicas serving in `mask`: joiners start at 0, the rest
/// drift with their load. Whether any replica has lag now.
fn drift_lags(inner: &mut Inner, mask: u64, served: Option<Served>, hottest_factor: f64) -> bool {
    let joined = inner.prev_mask.map_or(0, |p| mask & !p);
    let mut any_lag = false;
    for (i, lag) in inner.lag.iter_mut().enumerate() {
        let bit = 1u64 << i;
        if mask & bit == 0 || joined & bit != 0 {
            *lag = 0.0;
            continue;
        }
        if let Some(s) = served {
            let load = s.utilization * share(mask, i, hottest_factor);
            *lag = (*lag + 600.0 * (load - LAG_UTILIZATION)).max(0.0);
        }
        any_lag |= *lag > 0.0;
    }
    any_lag
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Master,
    Replica(usize),
}

fn find(history: &VecDeque<Rec>, m: i64) -> Option<&Rec> {
    let first = history.front()?.state.minute;
    let i = m.checked_sub(first)?;
    if i < 0 {
        return None;
    }
    history.get(i as usize)
}

/// The load history resolution in minutes.
const HISTORY_STEP_MINUTES: i64 = HISTORY_STEP_SECS as i64 / 60;

#[async_trait]
impl MetricsSource for SimLoad {
    /// CPU or connections history from what the simulation recorded (the replicas' summed
    /// CPU, capped at 100 % each as CloudWatch would show it, or their summed connections,
    /// from the run's start: the trace's past), at 5-minute resolution and with the model's
    /// metric delay. A query for other instances, replica lag or another resolution is
    /// refused.
    async fn load_history(&self, queries: &[HistoryQuery]) -> Result<Vec<LoadHistory>, PortError> {
        let clock_m = epoch_minute(self.clock.now());
        let mut inner = self.lock();
        self.record_until(&mut inner, clock_m);
        let now_m = clock_m - i64::from(self.opts.model.metric_delay_minutes);
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            let ours = q.instances.iter().all(|i| self.replicas.contains(i));
            let kept = matches!(q.metric, MetricKind::Cpu | MetricKind::Connections);
            if !ours || !kept || q.step_secs != HISTORY_STEP_SECS {
                return Err(PortError::new(
                    ErrorKind::Fatal,
                    "GetMetricData",
                    format!(
                        "the simulated load keeps 5-minute CPU and connections history of {}'s replicas only",
                        q.cluster
                    ),
                ));
            }
            out.push(self.history_of(&inner, q, now_m));
        }
        Ok(out)
    }

    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError> {
        if end < start {
            return Err(PortError::new(
                ErrorKind::Fatal,
                "GetMetricData",
                format!("end {end} is before start {start}"),
            ));
        }
        let clock_m = epoch_minute(self.clock.now());
        let mut inner = self.lock();
        // Complete minutes only: the minute in progress is not final.
        self.record_until(&mut inner, clock_m);
        // A minute's datapoint is visible the model's metric delay after the minute ends.
        let now_m = clock_m - i64::from(self.opts.model.metric_delay_minutes);
        let mut out = Vec::with_capacity(queries.len());
        let first = epoch_minute(start);
        let end_m = epoch_minute(end) + i64::from(end.timestamp().rem_euclid(60) != 0);
        for q in queries {
            let samples = match self.who(&q.instance) {
                Some(who) => self.samples(&mut inner, q, who, first, end_m.min(now_m), now_m),
                None => Vec::new(),
            };
            out.push(MetricSeries {
                query: q.clone(),
                samples,
            });
        }
        Ok(out)
    }
}

impl SimLoad {
    /// `q`'s samples (of `who`) for the buckets starting in `[first, end)`, each from the
    /// minutes before `now_m` (the visible ones); kept buckets are not worked out again.
    fn samples(
        &self,
        inner: &mut Inner,
        q: &MetricQuery,
        who: Who,
        first: i64,
        end: i64,
        now_m: i64,
    ) -> Vec<Sample> {
        // The period in minutes; buckets aligned to its multiples since the epoch.
        let period = (q.period_secs.max(60) as i64 + 59) / 60;
        let mut b = first.div_euclid(period) * period;
        if b < first {
            b += period;
        }
        let buckets = ((end - b).max(0) + period - 1) / period;
        let mut samples = Vec::with_capacity(buckets.min(1 << 12) as usize);
        let Inner {
            history,
            times,
            buckets,
            ..
        } = inner;
        let oldest = history.front().map_or(i64::MAX, |r| r.state.minute);
        let run = buckets.run((who, q.metric, q.statistic, period));
        while b < end {
            let last = (b + period).min(now_m);
            let kept = run.get(b);
            let sample = kept.unwrap_or_else(|| {
                self.bucket(history, who, q, b..last).map(|value| Sample {
                    at: times.at(b),
                    value,
                })
            });
            if kept.is_none() && b >= oldest && b + period <= now_m {
                run.keep(b, sample);
            }
            samples.extend(sample);
            b += period;
        }
        samples
    }

    /// The `q.statistic` of `who`'s `q.metric` over the recorded `minutes`; `None` without data.
    fn bucket(
        &self,
        history: &VecDeque<Rec>,
        who: Who,
        q: &MetricQuery,
        minutes: std::ops::Range<i64>,
    ) -> Option<f64> {
        let mut n = 0u32;
        let mut acc = 0.0f64;
        for m in minutes {
            if let Some(v) = find(history, m).and_then(|r| self.value(r, who, q.metric)) {
                n += 1;
                acc = match q.statistic {
                    Statistic::Average => acc + v,
                    Statistic::Maximum if n == 1 => v,
                    Statistic::Maximum => acc.max(v),
                };
            }
        }
        (n > 0).then(|| match q.statistic {
            Statistic::Average => acc / n as f64,
            Statistic::Maximum => acc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_times_are_minute_time() {
        let mut times = MinuteTimes::default();
        // Across days, backwards, far apart, before 1970 and out of range.
        let mut ms: Vec<i64> = (28_399_000..28_403_000).step_by(7).collect();
        ms.extend([
            28_401_439,
            28_401_440,
            28_401_439,
            -1,
            0,
            -1441,
            i64::MAX,
            i64::MIN,
            5,
        ]);
        for m in ms {
            assert_eq!(times.at(m), minute_time(m), "minute {m}");
        }
    }

    #[test]
    fn serve_splits_and_falls_back_to_master() {
        let s = serve(1.5, 2, true);
        assert!((s.cpu_percent - 75.0).abs() < 1e-9);
        assert!(!s.breach && !s.master_serves);
        let s = serve(0.5, 0, true);
        assert!(s.master_serves && (s.cpu_percent - 50.0).abs() < 1e-9 && !s.breach);
        let s = serve(0.5, 0, false);
        assert!(s.breach && (s.unserved - 0.5).abs() < 1e-9);
        let s = serve(3.0, 2, true);
        assert!(s.breach && (s.cpu_percent - 100.0).abs() < 1e-9);
        assert!((s.unserved - 1.0).abs() < 1e-9);
        assert!(serve(1.62, 2, true).breach && !serve(1.6, 2, true).breach);
    }
}
