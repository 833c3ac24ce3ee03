//! One counter numbers every event, block or mempool (docs/PROTOCOL.md §7.1), so a
//! client can resume from a single number and see any loss.
//!
//! Block events persist their number in the block's own atomic commit. Mempool
//! events are not written one by one; instead numbers are reserved ahead in blocks
//! of [`RESERVATION_BLOCK`] with one small durable write, and a restart starts past
//! the reservation. Numbers therefore never go backwards and are never reused, at
//! the cost of a hole after a crash.
//!
//! Whoever publishes an event holds the clock's lock from taking the number until
//! the event is handed to subscribers, so subscribers receive events in number order.

use std::sync::{Mutex, MutexGuard};

use crate::index::{IndexError, IndexStore};

/// How many mempool event numbers one durable reservation covers.
pub const RESERVATION_BLOCK: u64 = 4096;

/// The shared event counter.
#[derive(Debug)]
pub struct EventClock {
    state: Mutex<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    last: u64,
    reserved: u64,
}

/// Exclusive access to the counter while an event is numbered and published.
pub struct ClockGuard<'a> {
    state: MutexGuard<'a, ClockState>,
}

impl EventClock {
    /// A clock whose next number follows both the index's last block event and the
    /// last mempool reservation.
    pub fn new(last_block_event: u64, reservation: u64) -> EventClock {
        let last = last_block_event.max(reservation);
        EventClock {
            state: Mutex::new(ClockState {
                last,
                reserved: last,
            }),
        }
    }

    /// Takes the lock. A poisoned lock (a publisher panicked) still holds a valid
    /// counter, so it is recovered rather than propagated.
    pub fn lock(&self) -> ClockGuard<'_> {
        ClockGuard {
            state: self.state.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// The number of the latest event handed out.
    pub fn last(&self) -> u64 {
        self.lock().last()
    }
}

impl ClockGuard<'_> {
    /// The latest number handed out.
    pub fn last(&self) -> u64 {
        self.state.last
    }

    /// The number the next event will take.
    pub fn peek_next(&self) -> u64 {
        self.state.last + 1
    }

    /// Marks `seq` (from [`ClockGuard::peek_next`]) as used, once the commit that
    /// persisted it succeeded.
    pub fn commit(&mut self, seq: u64) {
        debug_assert!(seq > self.state.last);
        self.state.last = self.state.last.max(seq);
        self.state.reserved = self.state.reserved.max(seq);
    }

    /// Takes the next number for an event that is not itself persisted (mempool),
    /// first extending the durable reservation in `store` when it runs out.
    pub fn next_volatile(&mut self, store: &IndexStore) -> Result<u64, IndexError> {
        let seq = self.state.last + 1;
        if seq > self.state.reserved {
            let through = seq + RESERVATION_BLOCK - 1;
            store.reserve_seq(through)?;
            self.state.reserved = through;
        }
        self.state.last = seq;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::StoreOptions;
    use crate::network::Network;

    #[test]
    fn restart_never_reuses_a_volatile_number() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            IndexStore::open(dir.path(), Network::Regtest, &StoreOptions::default()).unwrap();
        let clock = EventClock::new(10, store.seq_reservation().unwrap());
        let mut handed = Vec::new();
        {
            let mut g = clock.lock();
            for _ in 0..3 {
                handed.push(g.next_volatile(&store).unwrap());
            }
        }
        assert_eq!(handed, vec![11, 12, 13]);
        assert_eq!(store.seq_reservation().unwrap(), 11 + RESERVATION_BLOCK - 1);
        // A restart sees only the persisted block event (10) and the reservation.
        let clock = EventClock::new(10, store.seq_reservation().unwrap());
        assert!(clock.lock().peek_next() > 13);
        // A block event numbered past the reservation moves both forward.
        let mut g = clock.lock();
        let seq = g.peek_next();
        g.commit(seq);
        assert_eq!(g.last(), seq);
        let next = g.next_volatile(&store).unwrap();
        assert_eq!(next, seq + 1);
        assert!(store.seq_reservation().unwrap() >= next);
    }
}
