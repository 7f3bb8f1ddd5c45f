//! Who may run an app now. The end-to-end tests share one test binary, so one process and one
//! metrics recorder: a test that counts a process-wide metric (one replica query for a thousand
//! misses, Redis hits coming back) would count the traffic of every test running beside it.
//! Such a test spawns its app *alone*: it waits until no other test has an app running, and
//! while it runs, no other test starts one.
//!
//! Every other app holds a shared slot. A test waiting to run alone holds back new tests, so it
//! is not starved, but never a test that already holds a slot (two replicas in one test, a
//! restart on the same data dir): that test finishes, and frees its slots, instead of waiting
//! for the lone test that waits for it. The slots are counted per test thread (the thread whose
//! runtime runs the test body), whichever thread drops the app.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

#[derive(Default)]
struct Slots {
    /// Shared slots held, per test thread.
    shared: HashMap<ThreadId, usize>,
    alone: bool,
    waiting_alone: usize,
}

static SLOTS: Mutex<Option<Slots>> = Mutex::new(None);

fn with_slots<T>(change: impl FnOnce(&mut Slots) -> T) -> T {
    let mut slots = SLOTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    change(slots.get_or_insert_with(Slots::default))
}

/// The right to run one app: shared, or alone. Released when dropped (with its [`TestApp`]).
///
/// [`TestApp`]: crate::TestApp
pub(crate) struct AppSlot {
    /// The thread that holds the shared slot; `None` for the lone one.
    shared_by: Option<ThreadId>,
}

const POLL: Duration = Duration::from_millis(20);

impl AppSlot {
    /// Waits until no app runs alone and, unless this thread already holds a slot, none waits to.
    pub(crate) async fn shared() -> AppSlot {
        let thread = std::thread::current().id();
        loop {
            let taken = with_slots(|slots| {
                let held_here = slots.shared.get(&thread).is_some_and(|count| *count > 0);
                if slots.alone || (slots.waiting_alone > 0 && !held_here) {
                    return false;
                }
                *slots.shared.entry(thread).or_default() += 1;
                true
            });
            if taken {
                return AppSlot {
                    shared_by: Some(thread),
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no other app runs, then keeps every other test from starting one.
    pub(crate) async fn alone() -> AppSlot {
        with_slots(|slots| slots.waiting_alone += 1);
        loop {
            let taken = with_slots(|slots| {
                let any_shared = slots.shared.values().any(|count| *count > 0);
                if slots.alone || any_shared {
                    return false;
                }
                slots.waiting_alone -= 1;
                slots.alone = true;
                true
            });
            if taken {
                return AppSlot { shared_by: None };
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for AppSlot {
    fn drop(&mut self) {
        with_slots(|slots| match self.shared_by {
            Some(thread) => {
                if let Some(count) = slots.shared.get_mut(&thread) {
                    *count = count.saturating_sub(1);
                }
            }
            None => slots.alone = false,
        });
    }
}
