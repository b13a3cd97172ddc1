//! The HTTP server's connection slots: at most N connections at once, and when all slots are
//! taken a new connection still gets one — the connection idle the longest (no request being
//! answered: never sent one, between keep-alive requests, or still sending its headers) is
//! closed to make room, else the oldest one. So a liveness probe is answered however many idle
//! connections are held open, and the number of open connections stays bounded.

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use tokio::time::Instant;

struct Slot {
    accepted: Instant,
    /// Since when no request is being answered; `None` while one is.
    idle_since: Option<Instant>,
    close: oneshot::Sender<()>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    slots: HashMap<u64, Slot>,
}

/// The open connections, shared by the accept loop and the connection tasks.
#[derive(Clone)]
pub struct Slots {
    cap: usize,
    inner: Arc<Mutex<Inner>>,
}

/// One connection's slot: freed on drop. `closed` fires when the slot was taken back to make
/// room for a newer connection.
pub struct SlotGuard {
    slots: Slots,
    id: u64,
    pub closed: oneshot::Receiver<()>,
}

impl Slots {
    pub fn new(cap: usize) -> Slots {
        Slots {
            cap: cap.max(1),
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent: keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections holding a slot now.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A slot for a new connection; when all are taken, the connection idle the longest (else
    /// the oldest) is told to close and its slot is given to this one.
    pub fn admit(&self) -> SlotGuard {
        let now = Instant::now();
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        while inner.slots.len() >= self.cap {
            let victim = inner
                .slots
                .iter()
                .min_by_key(|(_, s)| (s.idle_since.is_none(), s.idle_since, s.accepted))
                .map(|(id, _)| *id);
            if let Some(slot) = victim.and_then(|id| inner.slots.remove(&id)) {
                let _ = slot.close.send(());
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.slots.insert(
            id,
            Slot {
                accepted: now,
                idle_since: Some(now),
                close: tx,
            },
        );
        SlotGuard {
            slots: self.clone(),
            id,
            closed: rx,
        }
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(s) = self.lock().slots.get_mut(&id) {
            s.idle_since = idle.then(Instant::now);
        }
    }
}

impl SlotGuard {
    /// A handle that marks this connection busy per request (for the service function).
    pub fn tracker(&self) -> Tracker {
        Tracker {
            slots: self.slots.clone(),
            id: self.id,
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.lock().slots.remove(&self.id);
    }
}

/// Marks one connection busy while a response body lives: a request arrived, and hyper drops
/// the body once the response is written.
#[derive(Clone)]
pub struct Tracker {
    slots: Slots,
    id: u64,
}

impl Tracker {
    pub fn busy(&self, body: Full<Bytes>) -> TrackedBody {
        self.slots.set_idle(self.id, false);
        TrackedBody {
            inner: body,
            _idle_on_drop: IdleOnDrop {
                slots: self.slots.clone(),
                id: self.id,
            },
        }
    }
}

struct IdleOnDrop {
    slots: Slots,
    id: u64,
}

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.slots.set_idle(self.id, true);
    }
}

/// A response body that marks its connection idle again when dropped.
pub struct TrackedBody {
    inner: Full<Bytes>,
    _idle_on_drop: IdleOnDrop,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_house_sheds_the_longest_idle_then_the_oldest() {
        let slots = Slots::new(2);
        let mut a = slots.admit();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let mut b = slots.admit();
        let body = b.tracker().busy(Full::new(Bytes::new()));
        let mut c = slots.admit(); // a is idle the longest; b is busy
        assert_eq!(slots.len(), 2);
        assert!(a.closed.try_recv().is_ok());
        assert!(b.closed.try_recv().is_err());
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        drop(body); // b idle again, since later than c
        let mut d = slots.admit();
        assert!(c.closed.try_recv().is_ok(), "c was idle the longest");
        assert!(b.closed.try_recv().is_err());
        assert_eq!(slots.len(), 2);
        // Nobody idle: the oldest goes.
        let _busy_b = b.tracker().busy(Full::new(Bytes::new()));
        let _busy_d = d.tracker().busy(Full::new(Bytes::new()));
        let _e = slots.admit();
        assert!(b.closed.try_recv().is_ok(), "b is the oldest");
        assert!(d.closed.try_recv().is_err());
        drop(a);
        assert_eq!(slots.len(), 2, "dropping a shed guard frees nothing twice");
    }
}
