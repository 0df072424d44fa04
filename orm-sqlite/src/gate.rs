//! [`WriteGate`]: the engine's writers take turns in arrival order.
//!
//! SQLite lets one connection write at a time; the others retry on a timer
//! (the busy handler sleeps up to 100 ms between tries), so under steady
//! contention an unlucky writer can wait for seconds while others keep
//! winning, and fail at `busy_timeout`. Measured with the threads stress
//! test (8 threads, 8,000 short write transactions): with SQLite's busy
//! handler alone some transactions waited past the 5 s default. The gate
//! queues the writers of one engine and wakes the next one as soon as a
//! transaction ends; SQLite's own lock still guards against other
//! processes and other engines.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    held: bool,
    queue: VecDeque<u64>,
    next_ticket: u64,
}

/// A FIFO lock without a guard object: a connection holds it from its
/// first write to the end of its transaction, across calls.
#[derive(Default)]
pub(crate) struct WriteGate {
    state: Mutex<State>,
    turn: Condvar,
}

impl WriteGate {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a flag and a queue, valid after any panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this caller's turn; `false` when `timeout` passed first.
    pub(crate) fn acquire(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let me = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push_back(me);
        loop {
            if !state.held && state.queue.front() == Some(&me) {
                state.queue.pop_front();
                state.held = true;
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                state.queue.retain(|t| *t != me);
                drop(state);
                self.turn.notify_all();
                return false;
            }
            state = self
                .turn
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Ends the holder's turn.
    pub(crate) fn release(&self) {
        self.lock().held = false;
        self.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_a_timeout_gives_up() {
        let gate = WriteGate::default();
        assert!(gate.acquire(Duration::from_secs(1)));
        assert!(!gate.acquire(Duration::from_millis(10)), "held: times out");
        gate.release();
        assert!(gate.acquire(Duration::from_millis(10)), "free again");
        gate.release();
    }
}
