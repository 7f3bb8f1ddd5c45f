//! How far a view has got through the event log, and a way to wait until it gets somewhere.
//!
//! Every view (the read models, the Redis view's reader, the layered read path, both search
//! indexes) answers `X-Min-Position` with the same two questions: where are you, and tell me
//! when you have reached `p` (or give up after a timeout). A [`Watermark`] is that, once: a
//! position that only moves forward, with waiters woken as it passes them.

use std::time::Duration;

use tokio::sync::watch;

/// A view's applied position: starts where the view starts, only ever moves forward, and can be
/// waited on.
#[derive(Debug)]
pub struct Watermark {
    position: watch::Sender<u64>,
}

impl Watermark {
    /// A watermark at `position` (0 for an empty view, a checkpoint for a reopened one).
    pub fn new(position: u64) -> Self {
        Watermark {
            position: watch::Sender::new(position),
        }
    }

    /// The position reached so far.
    pub fn current(&self) -> u64 {
        *self.position.borrow()
    }

    /// Moves to `position` if that is further; an older or equal position changes nothing and
    /// wakes nobody. Returns whether it moved.
    pub fn advance(&self, position: u64) -> bool {
        self.position.send_if_modified(|current| {
            if position > *current {
                *current = position;
                true
            } else {
                false
            }
        })
    }

    /// Waits until the position is at least `position`: `true` as soon as it is (at once when
    /// it already is), `false` once `timeout` has passed without it.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        if self.current() >= position {
            return true;
        }
        let mut receiver = self.position.subscribe();
        let reached =
            tokio::time::timeout(timeout, receiver.wait_for(|current| *current >= position)).await;
        matches!(reached, Ok(Ok(_)))
    }
}

impl Default for Watermark {
    fn default() -> Self {
        Watermark::new(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_reached_position_answers_at_once() {
        let watermark = Watermark::new(5);
        assert!(watermark.wait_for(5, Duration::ZERO).await);
        assert!(watermark.wait_for(3, Duration::ZERO).await);
    }

    #[tokio::test]
    async fn a_waiter_is_woken_when_the_position_passes_it() {
        let watermark = Arc::new(Watermark::new(0));
        let waiter = {
            let watermark = watermark.clone();
            tokio::spawn(async move { watermark.wait_for(3, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(watermark.advance(2));
        assert!(watermark.advance(4));
        assert!(waiter.await.expect("waiter"));
    }

    #[tokio::test]
    async fn a_waiter_gives_up_after_its_timeout() {
        let watermark = Watermark::new(1);
        assert!(!watermark.wait_for(2, Duration::from_millis(30)).await);
    }

    #[test]
    fn the_position_never_moves_back_by_advancing() {
        let watermark = Watermark::new(7);
        assert!(!watermark.advance(6));
        assert!(!watermark.advance(7));
        assert_eq!(watermark.current(), 7);
    }
}
