//! Waiters for proposals: a request registers its id before proposing and
//! the apply stage answers it by id once the entry is applied (etcd's
//! `pkg/wait`). An id nobody waits for (a restarted member replaying its
//! log, a caller that timed out) is simply dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Registry of pending proposals by request id.
pub struct Wait<T> {
    pending: Mutex<HashMap<u64, oneshot::Sender<T>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait {
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Wait<T> {
    /// Registers `id`; the receiver gets the value passed to `trigger`.
    pub fn register(&self, id: u64) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("wait lock").insert(id, tx);
        rx
    }

    /// Answers the waiter of `id`, if any.
    pub fn trigger(&self, id: u64, value: T) {
        let tx = self.pending.lock().expect("wait lock").remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(value);
        }
    }

    /// How many ids wait.
    pub fn waiting(&self) -> usize {
        self.pending.lock().expect("wait lock").len()
    }

    /// Forgets `id` (its caller gave up).
    pub fn cancel(&self, id: u64) {
        self.pending.lock().expect("wait lock").remove(&id);
    }
}
