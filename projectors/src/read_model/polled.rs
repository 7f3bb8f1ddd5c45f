//! The position of a view that another process writes (the PostgreSQL tables through a
//! replica, the Redis views), learnt by reading its checkpoint from the server.
//!
//! The checkpoint is read every 100 ms while nobody waits, and every 5 ms while someone
//! waits for a position (a read-your-writes request): a waiter also wakes the poller at once,
//! so a request whose position is already applied does not sit out the idle pause.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use events::Watermark;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often the checkpoint is read while nobody waits for a position, and while someone does.
const IDLE_REFRESH: Duration = Duration::from_millis(100);
const WAITING_REFRESH: Duration = Duration::from_millis(5);

/// A [`Watermark`] moved by a task that polls the view's checkpoint; the task ends with it.
pub struct PolledWatermark {
    watermark: Arc<Watermark>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    poller: JoinHandle<()>,
}

impl Drop for PolledWatermark {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl PolledWatermark {
    /// Starts polling: `read_checkpoint` returns the checkpoint, or `None` when it cannot be
    /// read right now (the last position is kept and the next poll tries again).
    pub fn spawn<F, Fut>(read_checkpoint: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Option<u64>> + Send + 'static,
    {
        let watermark = Arc::new(Watermark::new(0));
        let waiters = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let poller = tokio::spawn(poll(
            read_checkpoint,
            watermark.clone(),
            waiters.clone(),
            wake.clone(),
        ));
        PolledWatermark {
            watermark,
            waiters,
            wake,
            poller,
        }
    }

    /// The checkpoint as last read.
    pub fn current(&self) -> u64 {
        self.watermark.current()
    }

    /// Waits until the checkpoint read is at least `position`, polling fast meanwhile.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        if self.current() >= position {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        let reached = self.watermark.wait_for(position, timeout).await;
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        reached
    }
}

async fn poll<F, Fut>(
    read_checkpoint: F,
    watermark: Arc<Watermark>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<Notify>,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<u64>>,
{
    loop {
        if let Some(read) = read_checkpoint().await {
            watermark.advance(read);
        }
        let pause = if waiters.load(Ordering::Relaxed) > 0 {
            WAITING_REFRESH
        } else {
            IDLE_REFRESH
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
        }
    }
}
