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

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chrono::TimeZone;

    /// The table in memory, with DynamoDB's conditional semantics; `down` makes every call fail.
    #[derive(Default)]
    struct MemStore {
        leases: Mutex<BTreeMap<String, LeaseRecord>>,
        copies: Mutex<BTreeMap<String, LeaseRecord>>,
        down: AtomicBool,
    }

    impl MemStore {
        fn check(&self) -> Result<(), PortError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(PortError::new(ErrorKind::Transient, "Scan", "cut off"));
            }
            Ok(())
        }
        fn put_if(&self, r: LeaseRecord, seen: Option<&LeaseRecord>) -> Result<(), PortError> {
            self.check()?;
            let mut l = self.leases.lock().unwrap();
            if l.get(&r.key) != seen {
                return Err(PortError::new(
                    ErrorKind::AlreadyExists,
                    "PutItem",
                    "changed",
                ));
            }
            l.insert(r.key.clone(), r);
            Ok(())
        }
    }

    #[async_trait]
    impl LeaseStore for MemStore {
        async fn read_all(&self) -> Result<(Vec<LeaseRecord>, Vec<LeaseRecord>), PortError> {
            self.check()?;
            let l = self.leases.lock().unwrap().values().cloned().collect();
            let c = self.copies.lock().unwrap().values().cloned().collect();
            Ok((l, c))
        }
        async fn acquire(
            &self,
            cluster: &str,
            seen: Option<&LeaseRecord>,
            owner: &str,
            expires: DateTime<Utc>,
        ) -> Result<LeaseRecord, PortError> {
            let r = LeaseRecord {
                key: cluster.into(),
                owner: owner.into(),
                expires,
                counter: seen.map_or(0, |s| s.counter) + 1,
            };
            self.put_if(r.clone(), seen)?;
            Ok(r)
        }
        async fn renew(
            &self,
            held: &LeaseRecord,
            expires: DateTime<Utc>,
        ) -> Result<LeaseRecord, PortError> {
            let r = LeaseRecord {
                expires,
                ..held.clone()
            };
            self.put_if(r.clone(), Some(held))?;
            Ok(r)
        }
        async fn release(&self, held: &LeaseRecord) -> Result<(), PortError> {
            let r = LeaseRecord {
                owner: String::new(),
                expires: DateTime::<Utc>::UNIX_EPOCH,
                ..held.clone()
            };
            self.put_if(r, Some(held))
        }
        async fn heartbeat(&self, copy: &str, expires: DateTime<Utc>) -> Result<(), PortError> {
            self.check()?;
            let r = LeaseRecord {
                key: copy.into(),
                owner: copy.into(),
                expires,
                counter: 0,
            };
            self.copies.lock().unwrap().insert(copy.into(), r);
            Ok(())
        }
    }

    fn keeper(store: &Arc<MemStore>, me: &str, clusters: &[String]) -> LeaseKeeper {
        let times = LeaseTimes {
            duration: chrono::Duration::seconds(30),
            skew: chrono::Duration::seconds(2),
        };
        LeaseKeeper::new(
            store.clone(),
            me.into(),
            times,
            clusters.to_vec(),
            Metrics::new(),
        )
    }

    /// Two copies whose clocks differ by up to (almost) the skew, one of them cut off from the
    /// table at times, every second for ten minutes: no cluster is ever held by both at once
    /// (each judged by its own clock at the same real instant), and a cut-off copy stops
    /// acting before the other may take its leases.
    #[tokio::test]
    async fn skewed_clocks_and_a_cut_off_copy_never_make_two_holders() {
        let clusters: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
        let store = Arc::new(MemStore::default());
        let a = keeper(&store, "a", &clusters);
        let b = keeper(&store, "b", &clusters);
        let t0 = Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap();
        let skew_b = chrono::Duration::milliseconds(1900); // b's clock runs ahead
        let mut cut_off_rounds = 0;
        for s in 0..600i64 {
            let now = t0 + chrono::Duration::seconds(s);
            // a is cut off from the table for a minute every five.
            let cut = (s / 60) % 5 == 2;
            store.down.store(cut, Ordering::Relaxed);
            if s % 10 == 0 && a.round(now).await.is_err() {
                cut_off_rounds += 1;
            }
            store.down.store(false, Ordering::Relaxed);
            if s % 10 == 5 {
                b.round(now + skew_b).await.unwrap();
            }
            for c in &clusters {
                let both = a.holds(c, now).is_some() && b.holds(c, now + skew_b).is_some();
                assert!(!both, "{c} held by both at {s}s");
            }
        }
        assert!(cut_off_rounds >= 12, "a was cut off: {cut_off_rounds}");
        let taken = b.metrics.lease_acquisitions_total.get();
        assert!(
            taken >= 6,
            "b took a's leases over while a was cut off: {taken}"
        );
        assert!(
            !a.owned().is_empty() && !b.owned().is_empty(),
            "both hold some at the end"
        );
    }
}
