//! The leases of this copy (`run --lease-table`): a task renews them every renewal period —
//! reading the table, writing this copy's heartbeat, then the round `core::lease::plan_round`
//! says (renew, release over the fair share, take free ones) — and the daemon asks
//! [`LeaseKeeper::holds`] before it observes or acts on a cluster. When the table cannot be
//! reached the leases held are not renewed, so this copy stops acting on them before any
//! other copy may take them over (`expires - skew` against `expires + skew`). On SIGTERM the
//! leases are released at once so that the other copies take them over on their next round.

use super::metrics::Metrics;
use crate::core::lease::{plan_round, LeaseRecord, LeaseTimes};
use crate::ports::{Clock, ErrorKind, LeaseStore, PortError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct LeaseKeeper {
    store: Arc<dyn LeaseStore>,
    /// This copy's id (host name and process id by default).
    pub me: String,
    pub times: LeaseTimes,
    clusters: Mutex<Vec<String>>,
    held: Mutex<BTreeMap<String, LeaseRecord>>,
    reachable: AtomicBool,
    metrics: Metrics,
}

impl LeaseKeeper {
    pub fn new(
        store: Arc<dyn LeaseStore>,
        me: String,
        times: LeaseTimes,
        clusters: Vec<String>,
        metrics: Metrics,
    ) -> LeaseKeeper {
        LeaseKeeper {
            store,
            me,
            times,
            clusters: Mutex::new(clusters),
            held: Mutex::default(),
            reachable: AtomicBool::new(false),
            metrics,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LeaseRecord>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clusters after a reload (leases of removed ones are released at the next round).
    pub fn set_clusters(&self, clusters: Vec<String>) {
        *self.clusters.lock().unwrap_or_else(|e| e.into_inner()) = clusters;
    }

    /// The fencing counter of `cluster`'s lease when this copy may act on it at `now`.
    pub fn holds(&self, cluster: &str, now: DateTime<Utc>) -> Option<u64> {
        let held = self.held();
        let r = held.get(cluster)?;
        self.times.holds(r, &self.me, now).then_some(r.counter)
    }

    /// The lease of `cluster` was taken over (a higher counter on the master): dropped.
    pub fn lost(&self, cluster: &str) {
        if self.held().remove(cluster).is_some() {
            self.metrics.lease_losses_total.inc();
        }
    }

    /// Whether the last round reached the table (for `/readyz`).
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// The leases held.
    pub fn owned(&self) -> Vec<LeaseRecord> {
        self.held().values().cloned().collect()
    }

    /// One round at `now`.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<(), PortError> {
        let r = self.round_inner(now).await;
        self.reachable.store(r.is_ok(), Ordering::Relaxed);
        if r.is_err() {
            self.metrics.lease_renew_failures_total.inc();
        }
        self.metrics.leases_owned.set(self.held().len() as i64);
        r
    }

    async fn round_inner(&self, now: DateTime<Utc>) -> Result<(), PortError> {
        let (leases, copies) = self.store.read_all().await?;
        let until = now + self.times.duration;
        self.store.heartbeat(&self.me, until).await?;
        let clusters = self
            .clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let plan = plan_round(&clusters, &leases, &copies, &self.me, self.times, now);
        // Held leases of clusters no longer configured: given up.
        let gone: Vec<LeaseRecord> = (leases.iter())
            .filter(|l| l.owner == self.me && !clusters.contains(&l.key))
            .cloned()
            .collect();
        for l in plan.release.iter().chain(&gone) {
            self.held().remove(&l.key);
            let _ = self.store.release(l).await;
        }
        for l in &plan.renew {
            match self.store.renew(l, until).await {
                Ok(r) => {
                    self.held().insert(r.key.clone(), r);
                }
                Err(e) if e.kind == ErrorKind::AlreadyExists => self.lost(&l.key),
                Err(e) => return Err(e),
            }
        }
        for (cluster, seen) in &plan.acquire {
            match self
                .store
                .acquire(cluster, seen.as_ref(), &self.me, until)
                .await
            {
                Ok(r) => {
                    self.metrics.lease_acquisitions_total.inc();
                    tracing::info!(cluster = %cluster, counter = r.counter, "lease acquired");
                    self.held().insert(cluster.clone(), r);
                }
                Err(e) if e.kind == ErrorKind::AlreadyExists => {} // another copy was first
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Give every lease up (SIGTERM), so that the other copies take them over at once.
    pub async fn release_all(&self) {
        let held: Vec<LeaseRecord> = std::mem::take(&mut *self.held()).into_values().collect();
        for l in &held {
            if let Err(e) = self.store.release(l).await {
                tracing::warn!(cluster = %l.key, error = %e, "lease not released");
            }
        }
        // Gone from the live copies at once: the others' fair share grows at their next round.
        let _ = self
            .store
            .heartbeat(&self.me, DateTime::<Utc>::UNIX_EPOCH)
            .await;
        self.metrics.leases_owned.set(0);
    }
}

/// Run rounds every `period` until `stop` turns true, then release every lease.
pub async fn keep(
    keeper: Arc<LeaseKeeper>,
    clock: Arc<dyn Clock>,
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = iv.tick() => {
                if let Err(e) = keeper.round(clock.now()).await {
                    tracing::warn!(error = %e, "lease round failed: leases not renewed");
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    keeper.release_all().await;
}
