//! Telling people: the notifier delivers [`Notification`]s to the configured sinks without
//! ever holding up a tick. Each sink has a bounded queue and one worker task: `send` only
//! tries to enqueue (a full queue drops the event and counts it), the worker delivers with
//! retries and a capped backoff, and on shutdown the queues get a bounded time to drain.
//! Counted per sink: sent, dropped (queue full, failed after its retries, left at shutdown),
//! retries, and the delivery latency from the event to its delivery. What an event says is
//! made by `service::events`; the sinks are adapters (`adapters::eventbridge`,
//! `adapters::webhook`) handed in by the edge.

use super::metrics::Metrics;
use crate::core::notify::{Notifications, Sink};
use crate::ports::{EventSink, Notification};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a delivery is tried, and how long to wait between tries.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first: Duration,
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl Retry {
    /// The wait after failed attempt `n` (from 1): `first`, doubling, capped.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first.saturating_mul(factor).min(self.cap)
    }
}

struct Queued {
    n: Arc<Notification>,
    at: Instant,
}

struct Lane {
    filter: Sink,
    tx: mpsc::Sender<Queued>,
    task: JoinHandle<()>,
    /// Events queued or being delivered (what a shutdown that runs out of time drops).
    pending: Arc<AtomicU64>,
}

/// The sinks and their queues.
pub struct Notifier {
    lanes: Vec<Lane>,
    metrics: Metrics,
}

impl Notifier {
    /// Start one worker per sink. `sinks` pairs each configured sink with its adapter.
    pub fn start(
        config: &Notifications,
        sinks: Vec<(Sink, Arc<dyn EventSink>)>,
        metrics: Metrics,
        retry: Retry,
    ) -> Notifier {
        let lanes = sinks
            .into_iter()
            .map(|(filter, sink)| {
                let (tx, rx) = mpsc::channel(config.queue.max(1));
                metrics.init_sink(&filter.name);
                let pending = Arc::new(AtomicU64::new(0));
                let w = Worker {
                    name: filter.name.clone(),
                    sink,
                    metrics: metrics.clone(),
                    retry,
                    pending: pending.clone(),
                };
                let task = tokio::spawn(w.run(rx));
                Lane {
                    filter,
                    tx,
                    task,
                    pending,
                }
            })
            .collect();
        Notifier { lanes, metrics }
    }

    /// Enqueue `n` for every sink that wants it; never waits.
    pub fn send(&self, n: Notification) {
        let n = Arc::new(n);
        for lane in &self.lanes {
            if !lane.filter.wants(n.kind, n.cluster.as_deref()) {
                continue;
            }
            let q = Queued {
                n: n.clone(),
                at: Instant::now(),
            };
            lane.pending.fetch_add(1, Ordering::SeqCst);
            if lane.tx.try_send(q).is_err() {
                lane.pending.fetch_sub(1, Ordering::SeqCst);
                self.metrics
                    .notification_dropped(&lane.filter.name, "queue_full", 1);
                tracing::warn!(sink = %lane.filter.name, kind = n.kind.code(), "notification dropped: the sink's queue is full");
            }
        }
    }

    pub fn sinks(&self) -> usize {
        self.lanes.len()
    }

    /// Stop taking events and give the queues `timeout` to drain; what is left is dropped
    /// (counted as `shutdown`).
    pub async fn shutdown(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for lane in self.lanes {
            let name = lane.filter.name.clone();
            drop(lane.tx);
            let mut task = lane.task;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let left = lane.pending.load(Ordering::SeqCst);
                tracing::warn!(sink = %name, left, "notification queue not drained in time: the rest is dropped");
                self.metrics.notification_dropped(&name, "shutdown", left);
            }
        }
    }
}

/// One sink's delivery loop.
struct Worker {
    name: String,
    sink: Arc<dyn EventSink>,
    metrics: Metrics,
    retry: Retry,
    pending: Arc<AtomicU64>,
}

impl Worker {
    /// Deliver each queued event, retrying retryable failures, until the queue is closed.
    async fn run(self, mut rx: mpsc::Receiver<Queued>) {
        while let Some(q) = rx.recv().await {
            self.deliver(&q).await;
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn deliver(&self, q: &Queued) {
        let mut attempt = 1;
        loop {
            match self.sink.deliver(&q.n).await {
                Ok(()) => {
                    self.metrics.notification_sent(&self.name, q.at.elapsed());
                    return;
                }
                Err(e) if e.is_retryable() && attempt < self.retry.attempts => {
                    self.metrics.notification_retry(&self.name);
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    self.metrics.notification_dropped(&self.name, "failed", 1);
                    tracing::warn!(sink = %self.name, kind = q.n.kind.code(), error = %e, attempts = attempt, "notification not delivered");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::notify::{EventKind, SinkKind};
    use crate::ports::{ErrorKind, PortError};
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A sink that answers from a script (then Ok), optionally after a delay, recording what
    /// it was given.
    struct Scripted {
        answers: Mutex<Vec<Result<(), PortError>>>,
        delay: Duration,
        got: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<(), PortError>>, delay: Duration) -> Arc<Scripted> {
            Arc::new(Scripted {
                answers: Mutex::new(answers),
                delay,
                got: Mutex::new(Vec::new()),
            })
        }
    }

    #[async_trait]
    impl EventSink for Scripted {
        async fn deliver(&self, n: &Notification) -> Result<(), PortError> {
            tokio::time::sleep(self.delay).await;
            self.got.lock().unwrap().push(n.text.clone());
            let mut a = self.answers.lock().unwrap();
            if a.is_empty() {
                Ok(())
            } else {
                a.remove(0)
            }
        }
    }

    fn sink(name: &str, events: &[EventKind], clusters: &[&str]) -> Sink {
        Sink {
            name: name.into(),
            kind: SinkKind::EventBridge {
                bus: "b".into(),
                region: None,
            },
            events: events.to_vec(),
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn note(kind: EventKind, cluster: &str, text: &str) -> Notification {
        Notification {
            kind,
            cluster: Some(cluster.into()),
            at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            text: text.into(),
            detail: serde_json::json!({}),
        }
    }

    fn count(m: &Metrics, v: &prometheus::IntCounterVec, labels: &[&str]) -> u64 {
        let _ = m;
        Metrics::counter_value(v, labels)
    }

    const FAST: Retry = Retry {
        attempts: 3,
        first: Duration::from_millis(100),
        cap: Duration::from_millis(400),
    };

    #[tokio::test(start_paused = true)]
    async fn filters_choose_the_sinks_and_retries_end_in_delivery_or_a_counted_drop() {
        let m = Metrics::new();
        let transient = || Err(PortError::new(ErrorKind::Transient, "t", "503"));
        let flaky = Scripted::new(vec![transient(), transient()], Duration::ZERO);
        let broken = Scripted::new(
            vec![Err(PortError::new(ErrorKind::Fatal, "t", "403"))],
            Duration::ZERO,
        );
        let config = Notifications::default();
        let n = Notifier::start(
            &config,
            vec![
                (sink("flaky", &[EventKind::ScaleOut], &[]), flaky.clone()),
                (sink("broken", &EventKind::ALL, &["c2"]), broken.clone()),
            ],
            m.clone(),
            FAST,
        );
        n.send(note(EventKind::ScaleOut, "c1", "out c1"));
        n.send(note(EventKind::ScaleIn, "c1", "in c1"));
        n.send(note(EventKind::ScaleIn, "c2", "in c2"));
        n.shutdown(Duration::from_secs(10)).await;
        // flaky takes scale-outs of every cluster: delivered on the third try.
        assert_eq!(*flaky.got.lock().unwrap(), vec!["out c1"; 3]);
        assert_eq!(count(&m, &m.notifications_sent_total, &["flaky"]), 1);
        assert_eq!(count(&m, &m.notification_retries_total, &["flaky"]), 2);
        // broken takes c2 only; a fatal answer is not retried.
        assert_eq!(*broken.got.lock().unwrap(), vec!["in c2"]);
        assert_eq!(
            count(&m, &m.notifications_dropped_total, &["broken", "failed"]),
            1
        );
        assert_eq!(count(&m, &m.notification_retries_total, &["broken"]), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_sink_never_holds_the_sender_and_its_overflow_is_counted() {
        let m = Metrics::new();
        let stuck = Scripted::new(vec![], Duration::from_secs(3600));
        let config = Notifications {
            queue: 2,
            ..Notifications::default()
        };
        let n = Notifier::start(
            &config,
            vec![(sink("stuck", &EventKind::ALL, &[]), stuck.clone())],
            m.clone(),
            FAST,
        );
        let started = tokio::time::Instant::now();
        for i in 0..6 {
            n.send(note(EventKind::ScaleOut, "c1", &format!("e{i}")));
            tokio::task::yield_now().await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO, "send never waits");
        // One in delivery, two queued, three dropped.
        assert_eq!(
            count(&m, &m.notifications_dropped_total, &["stuck", "queue_full"]),
            3
        );
        n.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            count(&m, &m.notifications_dropped_total, &["stuck", "shutdown"]),
            3
        );
        assert_eq!(count(&m, &m.notifications_sent_total, &["stuck"]), 0);
    }

    #[test]
    fn the_retry_delay_doubles_and_is_capped() {
        let r = Retry::default();
        let d: Vec<u64> = (1..=7).map(|n| r.delay(n).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 30, 30]);
    }
}
