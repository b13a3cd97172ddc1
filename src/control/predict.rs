//! The forecast step of a tick (policy `predictive`), the same for `run`, `plan`, the backtest
//! and the demo. Per cluster, carried in its [`ClusterMemory`] ([`ForecastMemory`]):
//! - the **load history**, read through [`MetricsSource::load_history`] on the first tick and
//!   again every `refresh` (one call for every due cluster: [`refresh_histories`]; after the
//!   first read only the last part is read again and spliced on, [`REREAD_SECS`]), and kept
//!   current between reads with the tick's own observation of the total ([`observe_total`]);
//! - the forecaster's **accuracy**, scored on the history at each read;
//! - the **lead times** replicas took from creating to available, as the observation step saw
//!   them ([`LeadTimes`]); a high percentile of them makes the horizon once three are known.
//!
//! [`forecast_step`] turns that into the [`Forecast`] the decision takes in, or says why it
//! abstains.

use super::ClusterMemory;
use crate::core::config::ClusterSpec;
use crate::core::domain::{InstanceId, InstanceStatus, MetricSeries, Statistic};
use crate::core::forecast::{
    accuracy, align_down, daily_correlation, forecaster_for, Abstain, Accuracy, Forecast,
    LoadHistory, HISTORY_STEP_SECS,
};
use crate::core::plan::ClusterView;
use crate::core::policy::{Policy, Predictive};
use crate::ports::{HistoryQuery, MetricsSource, PortError};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, VecDeque};

/// How many lead times are kept, and how many make a learned lead time.
pub const LEAD_SAMPLES: usize = 20;
pub const LEAD_MIN_SAMPLES: usize = 3;
/// After a failed history read, try again this much later (not at every tick).
pub const RETRY_SECS: i64 = 300;
/// A refresh reads again from this long before the previous read's end (datapoints that came
/// late, and the buckets the ticks filled with their own observations since), and keeps the
/// older buckets: an hourly refresh reads about 2 hours per series, not the whole `history`
/// (14 days: 4,032 datapoints per series, so a GetMetricData page of at most 100,800
/// datapoints holds 25 series; 24 five-minute datapoints per series, 500 series per call).
pub const REREAD_SECS: i64 = 3600;
/// Origins scored for the forecaster's accuracy: the last 48 hours, hourly.
const ACCURACY_ORIGINS: usize = 48;
const ACCURACY_SPACING_SECS: u64 = 3600;

/// What the forecast step carries between ticks.
#[derive(Debug, Clone, Default)]
pub struct ForecastMemory {
    pub history: Option<LoadHistory>,
    /// When the history was last read, or a read last failed.
    pub read_at: Option<DateTime<Utc>>,
    /// The end of the last successful read: the next read starts [`REREAD_SECS`] before it.
    pub read_through: Option<DateTime<Utc>>,
    /// The policy's `predictive` section the history was read and scored for: a reload that
    /// changes it makes a read due at once (the whole window when the metric changed).
    pub read_for: Option<Predictive>,
    pub read_failed: bool,
    pub accuracy: Option<Accuracy>,
    /// The history's daily correlation, measured at each read.
    pub daily_correlation: Option<f64>,
    /// Configured ids held, at the last observation, by an instance that is not a read
    /// replica of the master: left out of the history (never counted).
    pub conflicted: Vec<InstanceId>,
    pub leads: LeadTimes,
}

impl ForecastMemory {
    /// Drop the history and what was measured on it (the next read is a whole one); the
    /// read times, lead times and conflicts stay.
    fn forget_history(&mut self) {
        self.history = None;
        self.accuracy = None;
        self.daily_correlation = None;
        self.read_through = None;
    }
}

/// The master's tag holding the measured lead times (seconds, oldest first, space-separated),
/// so that a restart or another copy starts from them.
pub const TAG_LEAD_TIMES: &str = "elasticrds:lead-times";

/// Replica lead times (create → available) as the observation step saw them.
#[derive(Debug, Clone, Default)]
pub struct LeadTimes {
    creating_since: HashMap<InstanceId, DateTime<Utc>>,
    measured: VecDeque<u64>,
    /// The learned lead time of `measured` ([`LeadTimes::learned`]), kept with it: the
    /// observation step asks every tick, the measurements change a few times a day.
    learned: Option<u64>,
    /// A lead time was measured since the tag was last written.
    unsaved: bool,
}

impl LeadTimes {
    /// Note replicas being created, and the lead time of each one that became available.
    pub fn observe(&mut self, view: &ClusterView, now: DateTime<Utc>) {
        for inst in view.replicas.iter().flatten() {
            if inst.status.is_available() {
                // (Nothing to look up, and no id to hash, while no replica is being created.)
                if self.creating_since.is_empty() {
                    continue;
                }
                if let Some(since) = self.creating_since.remove(&inst.id) {
                    let at = inst.available_since.unwrap_or(now);
                    self.push((at - since).num_seconds().max(0) as u64);
                }
            } else if inst.status == InstanceStatus::Creating {
                let since = inst.created_at.filter(|t| *t <= now).unwrap_or(now);
                self.creating_since.entry(inst.id.clone()).or_insert(since);
            }
        }
        // Forget replicas that went away (or are being deleted) before they were available.
        self.creating_since.retain(|id, _| {
            view.replicas
                .iter()
                .flatten()
                .any(|i| &i.id == id && i.status != InstanceStatus::Deleting)
        });
    }

    pub fn push(&mut self, secs: u64) {
        self.measured.push_back(secs);
        while self.measured.len() > LEAD_SAMPLES {
            self.measured.pop_front();
        }
        self.learned = p90(&self.measured);
        self.unsaved = true;
    }

    /// Start from the master's [`TAG_LEAD_TIMES`] value (when nothing was measured yet);
    /// anything unreadable in it is skipped.
    pub fn seed(&mut self, tag: &str) {
        if !self.measured.is_empty() {
            return;
        }
        let read = tag.split_whitespace().filter_map(|v| v.parse::<u64>().ok());
        self.measured = read.filter(|v| *v <= 7 * 86_400).collect();
        while self.measured.len() > LEAD_SAMPLES {
            self.measured.pop_front();
        }
        self.learned = p90(&self.measured);
    }

    /// The tag value to write when a lead time was measured since the last write.
    pub fn take_unsaved(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.unsaved) {
            return None;
        }
        let v: Vec<String> = self.measured.iter().map(u64::to_string).collect();
        Some(v.join(" "))
    }

    /// The lead times measured, oldest first.
    pub fn measured(&self) -> impl Iterator<Item = u64> + '_ {
        self.measured.iter().copied()
    }

    /// The 90th percentile of the measured lead times, once [`LEAD_MIN_SAMPLES`] are known.
    pub fn learned(&self) -> Option<u64> {
        self.learned
    }
}

/// The 90th percentile of `measured`, once [`LEAD_MIN_SAMPLES`] are known.
fn p90(measured: &VecDeque<u64>) -> Option<u64> {
    if measured.len() < LEAD_MIN_SAMPLES {
        return None;
    }
    let mut v: Vec<u64> = measured.iter().copied().collect();
    v.sort_unstable();
    let i = ((v.len() as f64 * 0.9).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

/// The history query of a cluster whose history is due for a read at `now`: every configured
/// replica id (CloudWatch keeps the data of instances that no longer exist) but those held by
/// an instance that is not ours.
pub fn history_due(
    policy: &Policy,
    spec: &ClusterSpec,
    memory: &ForecastMemory,
    now: DateTime<Utc>,
) -> Option<HistoryQuery> {
    let p = policy.predictive.as_ref()?;
    let wait = if memory.read_failed {
        RETRY_SECS
    } else {
        p.refresh_secs as i64
    };
    let changed = memory.read_for.as_ref().is_some_and(|r| r != p);
    if !changed
        && memory
            .read_at
            .is_some_and(|t| now < t + Duration::seconds(wait))
    {
        return None;
    }
    let end = align_down(now, HISTORY_STEP_SECS);
    let full = window_start(p, end);
    Some(HistoryQuery {
        cluster: spec.name.to_string(),
        instances: (spec.replicas.iter())
            .map(|r| r.id.clone())
            .filter(|id| !memory.conflicted.contains(id))
            .collect(),
        metric: p.metric,
        statistic: Statistic::Average,
        step_secs: HISTORY_STEP_SECS,
        start: reread_from(p, memory, full).unwrap_or(full),
        end,
    })
}

/// How many buckets the ticks' own observations may grow the history to: the whole window and
/// [`REREAD_SECS`] more. The newest bucket a tick files can lie past the end of the next read
/// (which stops at the last whole bucket), so a history trimmed to the window alone would start
/// after that read's window and the refresh would read all of it again ([`reread_from`]).
pub fn kept_buckets(p: &Predictive) -> usize {
    ((p.history_secs + REREAD_SECS as u64) / u64::from(HISTORY_STEP_SECS)) as usize
}

/// The start of the whole `history` window of a read ending at `end`.
fn window_start(p: &Predictive, end: DateTime<Utc>) -> DateTime<Utc> {
    align_down(
        end - Duration::seconds(p.history_secs as i64),
        HISTORY_STEP_SECS,
    )
}

/// Where a refresh starts reading when the history it has can be kept: after a successful
/// read of the same metric reaching back to `full` (the start of the whole window),
/// [`REREAD_SECS`] before that read's end. `None`: read the whole window.
fn reread_from(
    p: &Predictive,
    memory: &ForecastMemory,
    full: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let h = memory.history.as_ref()?;
    let same = h.metric == p.metric && h.step_secs == HISTORY_STEP_SECS && h.start <= full;
    let from = align_down(
        memory.read_through? - Duration::seconds(REREAD_SECS),
        HISTORY_STEP_SECS,
    );
    (same && from > full).then_some(from)
}

/// Read the history of every due cluster of `items` with ONE `load_history` call and keep
/// each in its memory (with the forecaster's accuracy on it). On failure every due memory
/// keeps what it had and tries again [`RETRY_SECS`] later; the error is returned for the
/// caller to log (a tick goes on reactively).
pub async fn refresh_histories(
    source: &dyn MetricsSource,
    items: &mut [(&Policy, &ClusterSpec, &mut ClusterMemory)],
    now: DateTime<Utc>,
) -> Result<usize, PortError> {
    let mut due = Vec::new();
    let mut queries = Vec::new();
    for (i, (policy, spec, memory)) in items.iter().enumerate() {
        if let Some(q) = history_due(policy, spec, &memory.forecast, now) {
            due.push(i);
            queries.push(q);
        }
    }
    if queries.is_empty() {
        return Ok(0);
    }
    let answer = source.load_history(&queries).await;
    for (k, &i) in due.iter().enumerate() {
        let (policy, _, memory) = &mut items[i];
        let f = &mut memory.forecast;
        f.read_at = Some(now);
        f.read_failed = answer.is_err();
        if let Ok(histories) = &answer {
            if let (Some(h), Some(p)) = (histories.get(k), policy.predictive.as_ref()) {
                let q = &queries[k];
                let full = window_start(p, q.end);
                let h = match &f.history {
                    Some(old) if q.start > full => old.spliced(h, full),
                    _ => h.clone(),
                };
                f.accuracy = score(p, &h, f.leads.learned().filter(|_| p.learn_lead_time));
                f.daily_correlation = daily_correlation(&h);
                f.history = Some(h);
                f.read_through = Some(q.end);
                f.read_for = Some(p.clone());
            }
        }
    }
    answer.map(|_| due.len())
}

/// Why the forecast abstains before forecasting: too little history, a poor or not yet known
/// recent error, or (with `min_daily_correlation` above -1) no daily rhythm in the history.
fn abstain_before(p: &Predictive, memory: &ForecastMemory) -> Option<Abstain> {
    let have = memory.history.as_ref().map_or(0, LoadHistory::span_secs);
    if have < p.min_history_secs || have == 0 {
        return Some(Abstain::NoHistory {
            have_secs: have,
            need_secs: p.min_history_secs.max(1),
        });
    }
    match memory.accuracy {
        None => return Some(Abstain::Unscored),
        Some(a) if a.error > p.max_error => {
            return Some(Abstain::PoorAccuracy {
                error: a.error,
                limit: p.max_error,
            })
        }
        Some(_) => {}
    }
    let checked = p.min_daily_correlation > -1.0;
    let weak = memory
        .daily_correlation
        .is_none_or(|c| c < p.min_daily_correlation);
    (checked && weak).then_some(Abstain::NoRhythm {
        correlation: memory.daily_correlation,
        min: p.min_daily_correlation,
    })
}

/// The forecaster's accuracy on `history` at the horizon.
fn score(p: &Predictive, history: &LoadHistory, learned: Option<u64>) -> Option<Accuracy> {
    let f = forecaster_for(p);
    let horizon = p.horizon_secs(learned.unwrap_or(p.lead_time_secs));
    accuracy(
        f.as_ref(),
        history,
        horizon,
        ACCURACY_ORIGINS,
        ACCURACY_SPACING_SECS,
    )
}

/// The tick's own observation of the total load: for the 5-minute bucket of the newest
/// sample, each replica's mean over its samples in that bucket, summed. `None` when no
/// replica had a sample of the metric.
pub fn observe_total(
    p: &Predictive,
    spec: &ClusterSpec,
    series: &[MetricSeries],
) -> Option<(DateTime<Utc>, f64)> {
    let ours = |s: &&MetricSeries| {
        s.query.metric == p.metric
            && s.query.statistic == Statistic::Average
            && spec.replicas.iter().any(|r| r.id == s.query.instance)
    };
    let newest = series
        .iter()
        .filter(ours)
        .flat_map(|s| s.samples.iter().map(|x| x.at))
        .max()?;
    let bucket = align_down(newest, HISTORY_STEP_SECS);
    let mut total = 0.0;
    for s in series.iter().filter(ours) {
        let inside: Vec<f64> = s
            .samples
            .iter()
            .filter(|x| align_down(x.at, HISTORY_STEP_SECS) == bucket && x.value.is_finite())
            .map(|x| x.value)
            .collect();
        if !inside.is_empty() {
            total += inside.iter().sum::<f64>() / inside.len() as f64;
        }
    }
    Some((bucket, total))
}

/// The forecast for this tick: keep the history current with the tick's observation, then
/// predict the peak over the horizon and size for it, or abstain.
pub fn forecast_step(
    policy: &Policy,
    spec: &ClusterSpec,
    memory: &mut ForecastMemory,
    series: &[MetricSeries],
    now: DateTime<Utc>,
) -> Option<Forecast> {
    let p = policy.predictive.as_ref()?;
    if memory
        .history
        .as_ref()
        .is_some_and(|h| h.metric != p.metric)
    {
        // Read for another metric (a reload changed it) and not read again yet: none.
        memory.forget_history();
    }
    if let (Some(h), Some((at, v))) = (memory.history.as_mut(), observe_total(p, spec, series)) {
        h.record(at, v, kept_buckets(p));
    }
    let learned = memory.leads.learned().filter(|_| p.learn_lead_time);
    let horizon = p.horizon_secs(learned.unwrap_or(p.lead_time_secs));
    let forecaster = forecaster_for(p);
    let mut out = Forecast {
        forecaster: forecaster.name(),
        metric: p.metric,
        active: p.is_active(),
        horizon_secs: horizon,
        lead_learned: learned.is_some(),
        peak_load: None,
        replicas: None,
        accuracy: memory.accuracy,
        daily_correlation: memory.daily_correlation,
        abstain: None,
    };
    out.abstain = if let Some(why) = abstain_before(p, memory) {
        Some(why)
    } else {
        let h = memory.history.as_ref()?;
        let to = now + Duration::seconds(horizon as i64);
        match forecaster.peak(h, now, to) {
            Some(peak) if peak.is_finite() => {
                out.peak_load = Some(peak.max(0.0));
                out.replicas = Some((peak.max(0.0) / p.target).ceil() as usize);
                None
            }
            _ => Some(Abstain::NoPrediction),
        }
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::domain::{Instance, InstanceClass, MetricKind, MetricQuery, Sample};
    use chrono::TimeZone;

    const CONFIG: &str = "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n    - {id: c1s2, instance_class: db.t3.micro}\n    - {id: c1s3, instance_class: db.t3.micro}\n";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 30).unwrap()
    }
    fn setup(extra: &str) -> (Policy, ClusterSpec) {
        let config = Config::parse("c.yaml", CONFIG).unwrap();
        let p = Policy::parse("p.yaml", &format!("cluster: c1\n{extra}"), &config).unwrap();
        (p, config.clusters["c1"].clone())
    }
    fn replica(id: &str, status: &str, created: Option<DateTime<Utc>>) -> Instance {
        let mut i = Instance::new(
            InstanceId::from_aws(id),
            InstanceClass::from_aws("db.t3.micro"),
            InstanceStatus::parse(status),
            "mysql",
        );
        i.created_at = created;
        i
    }
    fn view(replicas: Vec<Option<Instance>>) -> ClusterView {
        ClusterView {
            master: Some(replica("c1m", "available", None).into()),
            replicas: replicas.into_iter().map(|r| r.map(Into::into)).collect(),
            conflicts: Vec::new(),
            foreign: Vec::new(),
            parked: Vec::new(),
            replacing: Vec::new(),
            ..ClusterView::default()
        }
    }
    fn cpu(id: &str, samples: &[(i64, f64)]) -> MetricSeries {
        let base = Utc.with_ymd_and_hms(2026, 11, 25, 11, 50, 0).unwrap();
        MetricSeries {
            query: MetricQuery {
                instance: InstanceId::from_aws(id),
                metric: MetricKind::Cpu,
                statistic: Statistic::Average,
                period_secs: 60,
            },
            samples: samples
                .iter()
                .map(|(m, v)| Sample {
                    at: base + Duration::minutes(*m),
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn lead_times_are_measured_from_creating_to_available_and_learned_at_the_90th_percentile() {
        let mut leads = LeadTimes::default();
        let minute = |m: i64| t0() + Duration::minutes(m);
        for (k, lead) in [10i64, 14, 30].iter().enumerate() {
            let id = ["c1s1", "c1s2", "c1s3"][k];
            let start = minute(100 * k as i64);
            leads.observe(
                &view(vec![Some(replica(id, "creating", Some(start)))]),
                start,
            );
            assert_eq!(leads.learned(), None, "fewer than three measured");
            let mut up = replica(id, "available", Some(start));
            up.available_since = Some(start + Duration::minutes(*lead));
            leads.observe(&view(vec![Some(up)]), start + Duration::minutes(lead + 1));
        }
        assert_eq!(leads.measured().collect::<Vec<_>>(), [600, 840, 1800]);
        assert_eq!(leads.learned(), Some(1800));
        // A replica deleted while being created leaves no measurement.
        leads.observe(
            &view(vec![Some(replica("c1s1", "creating", None))]),
            minute(500),
        );
        leads.observe(&view(vec![None]), minute(510));
        leads.observe(
            &view(vec![Some(replica("c1s1", "available", None))]),
            minute(520),
        );
        assert_eq!(leads.measured().count(), 3);
    }

    #[test]
    fn lead_times_survive_a_restart_through_the_masters_tag() {
        let mut leads = LeadTimes::default();
        assert_eq!(leads.take_unsaved(), None);
        for v in [600, 840, 1800] {
            leads.push(v);
        }
        let tag = leads.take_unsaved().unwrap();
        assert_eq!(tag, "600 840 1800");
        assert_eq!(leads.take_unsaved(), None, "written once");
        let mut restarted = LeadTimes::default();
        restarted.seed(&format!("{tag} junk 99999999999"));
        assert_eq!(restarted.learned(), Some(1800));
        assert_eq!(
            restarted.take_unsaved(),
            None,
            "a seed is not a new measurement"
        );
        let mut full = LeadTimes::default();
        full.seed(&(0..30).map(|v| v.to_string()).collect::<Vec<_>>().join(" "));
        assert_eq!(full.measured().count(), LEAD_SAMPLES);
        assert_eq!(full.measured().next(), Some(10));
    }

    #[test]
    fn the_tick_observes_the_total_of_the_newest_bucket() {
        let (p, spec) = setup("predictive:\n  mode: active\n");
        let p = p.predictive.unwrap();
        // 11:50-11:54 is one bucket, 11:55-11:59 the next: s1 at 40 and 50 in it, s2 at 30.
        let series = [
            cpu("c1s1", &[(3, 99.0), (5, 40.0), (6, 50.0)]),
            cpu("c1s2", &[(6, 30.0)]),
            cpu("c1m", &[(6, 90.0)]), // the master is not a replica: not counted
        ];
        let (at, total) = observe_total(&p, &spec, &series).unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 25, 11, 55, 0).unwrap());
        assert!((total - 75.0).abs() < 1e-9, "{total}");
        assert_eq!(observe_total(&p, &spec, &[]), None);
    }

    #[test]
    fn history_is_due_first_then_every_refresh_and_sooner_after_a_failure() {
        let (p, spec) = setup("predictive:\n  mode: active\n  refresh: 1h\n  history: 2d\n");
        let mut m = ForecastMemory::default();
        let q = history_due(&p, &spec, &m, t0()).unwrap();
        assert_eq!(q.instances.len(), 3);
        assert_eq!((q.end - q.start).num_days(), 2);
        assert_eq!(q.end, Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap());
        m.read_at = Some(t0());
        assert!(history_due(&p, &spec, &m, t0() + Duration::minutes(59)).is_none());
        assert!(history_due(&p, &spec, &m, t0() + Duration::minutes(60)).is_some());
        m.read_failed = true;
        assert!(history_due(&p, &spec, &m, t0() + Duration::minutes(4)).is_none());
        assert!(history_due(&p, &spec, &m, t0() + Duration::minutes(5)).is_some());
        let (reactive, _) = setup("");
        assert!(history_due(&reactive, &spec, &ForecastMemory::default(), t0()).is_none());
        // An id held by an instance that is not ours is left out: its load is not counted.
        m.conflicted = vec![spec.replicas[1].id.clone()];
        let q = history_due(&p, &spec, &m, t0() + Duration::hours(2)).unwrap();
        let ids: Vec<_> = spec.replicas.iter().map(|r| r.id.clone()).collect();
        assert_eq!(q.instances, [ids[0].clone(), ids[2].clone()]);
    }

    #[test]
    fn the_forecast_abstains_without_history_and_sizes_for_the_expected_peak_with_it() {
        let (p, spec) = setup("predictive:\n  mode: active\n  target: 50\n  min_history: 1d\n");
        let mut m = ForecastMemory::default();
        let f = forecast_step(&p, &spec, &mut m, &[], t0()).unwrap();
        assert_eq!(f.replicas, None);
        assert!(matches!(
            f.abstain,
            Some(Abstain::NoHistory {
                have_secs: 0,
                need_secs: 86_400
            })
        ));
        // Two days of a daily rise: 60 all day, 150 from 12:00 to 13:00.
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let mut h = LoadHistory::empty(MetricKind::Cpu, HISTORY_STEP_SECS, start);
        for i in 0..(2 * 288) {
            let at = h.at(i);
            let v = if (12..13).contains(&chrono::Timelike::hour(&at)) {
                150.0
            } else {
                60.0
            };
            h.values.push(Some(v));
        }
        m.daily_correlation = daily_correlation(&h);
        assert!(m.daily_correlation.unwrap() > 0.99);
        m.history = Some(h);
        let before_rise = Utc.with_ymd_and_hms(2026, 11, 25, 11, 45, 0).unwrap();
        // Not scored yet: it does not guess.
        let f = forecast_step(&p, &spec, &mut m, &[], before_rise).unwrap();
        assert_eq!((f.abstain, f.replicas), (Some(Abstain::Unscored), None));
        let good = Accuracy {
            origins: 10,
            error: 0.1,
            under: 0.0,
        };
        m.accuracy = Some(good);
        let f = forecast_step(&p, &spec, &mut m, &[], before_rise).unwrap();
        assert_eq!(f.abstain, None);
        assert!(f.peak_load.unwrap() >= 150.0, "{f:?}");
        assert!(f.replicas.unwrap() >= 3, "{f:?}");
        // A poor recent accuracy makes it abstain.
        m.accuracy = Some(Accuracy {
            origins: 10,
            error: 0.9,
            under: 0.5,
        });
        let f = forecast_step(&p, &spec, &mut m, &[], before_rise).unwrap();
        assert!(matches!(f.abstain, Some(Abstain::PoorAccuracy { .. })));
        // So does an accurate one on a history without a daily rhythm.
        m.accuracy = Some(good);
        m.daily_correlation = Some(-0.1);
        let f = forecast_step(&p, &spec, &mut m, &[], before_rise).unwrap();
        let want = Abstain::NoRhythm {
            correlation: Some(-0.1),
            min: 0.0,
        };
        assert_eq!(f.abstain, Some(want), "{f:?}");
        // Unless the policy says `min_daily_correlation: -1`.
        let mut lenient = p.clone();
        lenient.predictive.as_mut().unwrap().min_daily_correlation = -1.0;
        let f = forecast_step(&lenient, &spec, &mut m, &[], before_rise).unwrap();
        assert_eq!(f.abstain, None, "{f:?}");
    }

    /// A CloudWatch stand-in: each replica reports, at every 5-minute step, its number plus
    /// the step's index in the day; reads are recorded.
    #[derive(Default)]
    struct Clocked {
        reads: std::sync::Mutex<Vec<(DateTime<Utc>, DateTime<Utc>)>>,
    }

    #[async_trait::async_trait]
    impl MetricsSource for Clocked {
        async fn fetch(
            &self,
            queries: &[MetricQuery],
            start: DateTime<Utc>,
            end: DateTime<Utc>,
        ) -> Result<Vec<MetricSeries>, PortError> {
            self.reads.lock().unwrap().push((start, end));
            let steps = (end - start).num_minutes() / 5;
            Ok((queries.iter().enumerate())
                .map(|(i, q)| {
                    let samples = (0..steps)
                        .map(|k| start + Duration::minutes(5 * k))
                        .map(|at| Sample {
                            at,
                            value: i as f64
                                + f64::from(chrono::Timelike::num_seconds_from_midnight(&at) / 300),
                        })
                        .collect();
                    MetricSeries {
                        query: q.clone(),
                        samples,
                    }
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn a_refresh_reads_the_last_part_again_and_keeps_the_rest() {
        let (p, spec) = setup("predictive:\n  mode: active\n  refresh: 1h\n  history: 2d\n");
        let source = Clocked::default();
        let mut memory = ClusterMemory::default();
        let read = refresh_histories(&source, &mut [(&p, &spec, &mut memory)], t0()).await;
        assert_eq!(read.unwrap(), 1);
        // A tick's own observations, filed between reads as forecast_step files them (the
        // last in the bucket after the next read's end); replaced by the next read.
        let h = memory.forecast.history.as_mut().unwrap();
        for m in [20, 62] {
            h.record(
                t0() + Duration::minutes(m),
                1e6,
                kept_buckets(p.predictive.as_ref().unwrap()),
            );
        }
        let later = t0() + Duration::minutes(64);
        let read = refresh_histories(&source, &mut [(&p, &spec, &mut memory)], later).await;
        assert_eq!(read.unwrap(), 1);
        let reads = source.reads.lock().unwrap().clone();
        let end = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert_eq!(reads[0], (end - Duration::days(2), end));
        // The second read: from an hour before the first one's end, to its own end.
        let end2 = end + Duration::hours(1);
        assert_eq!(reads[1], (end - Duration::hours(1), end2));
        // What it keeps equals a whole read at the same time.
        let mut whole = ClusterMemory::default();
        let read = refresh_histories(&source, &mut [(&p, &spec, &mut whole)], later).await;
        assert_eq!(read.unwrap(), 1);
        let kept = memory.forecast.history.as_ref().unwrap();
        assert_eq!(kept, whole.forecast.history.as_ref().unwrap());
        assert_eq!((kept.start, kept.end()), (end2 - Duration::days(2), end2));
        assert_eq!(memory.forecast.accuracy, whole.forecast.accuracy);
        assert_eq!(memory.forecast.read_through, Some(end2));
        assert!(kept.values.iter().all(|v| v.is_some_and(|v| v < 1e6)));
        // Another metric than the history holds: the whole window again.
        let (q, _) = setup(
            "predictive:\n  mode: active\n  metric: connections\n  target: 100\n  history: 2d\n",
        );
        let due = history_due(&q, &spec, &memory.forecast, later + Duration::hours(1)).unwrap();
        assert_eq!(due.start, due.end - Duration::days(2));
    }

    #[tokio::test]
    async fn a_reload_that_changes_the_section_reads_again_at_once() {
        let (p, spec) = setup("predictive:\n  mode: active\n  refresh: 1h\n  history: 2d\n");
        let source = Clocked::default();
        let mut memory = ClusterMemory::default();
        let read = refresh_histories(&source, &mut [(&p, &spec, &mut memory)], t0()).await;
        assert_eq!(read.unwrap(), 1);
        let soon = t0() + Duration::minutes(5);
        assert!(history_due(&p, &spec, &memory.forecast, soon).is_none());
        // Another target: read (and scored) again now, the last part only.
        let (sized, _) =
            setup("predictive:\n  mode: active\n  refresh: 1h\n  history: 2d\n  target: 50\n");
        let due = history_due(&sized, &spec, &memory.forecast, soon).unwrap();
        assert_eq!(
            due.start,
            memory.forecast.read_through.unwrap() - Duration::hours(1)
        );
        // Another metric: the whole window now; until it is read, the CPU history is not used.
        let (conns, _) = setup(
            "predictive:\n  mode: active\n  metric: connections\n  target: 100\n  history: 2d\n",
        );
        let due = history_due(&conns, &spec, &memory.forecast, soon).unwrap();
        assert_eq!(due.start, due.end - Duration::days(2));
        let f = forecast_step(&conns, &spec, &mut memory.forecast, &[], soon).unwrap();
        assert!(
            matches!(f.abstain, Some(Abstain::NoHistory { have_secs: 0, .. })),
            "{f:?}"
        );
        assert!(memory.forecast.history.is_none() && memory.forecast.accuracy.is_none());
    }
}
