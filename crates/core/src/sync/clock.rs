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
//!
//! A clock may also keep an [`EventFloor`] beside the index covering every number
//! it hands out, so that an index built again from nothing continues after them.

use std::sync::{Mutex, MutexGuard};

use super::event_floor::EventFloor;
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
    floor: Option<EventFloor>,
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
                floor: None,
            }),
        }
    }

    /// As [`EventClock::new`], keeping `floor` ahead of every number handed out.
    pub fn with_floor(last_block_event: u64, reservation: u64, floor: EventFloor) -> EventClock {
        let clock = EventClock::new(last_block_event, reservation);
        clock.lock().state.floor = Some(floor);
        clock
    }

    /// Starts over from an opened index's last block event and reservation,
    /// keeping the floor.
    pub fn reset(&self, last_block_event: u64, reservation: u64) {
        let mut g = self.lock();
        let last = last_block_event.max(reservation);
        g.state.last = last;
        g.state.reserved = last;
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

    /// The number the next persisted (block) event takes, once the floor covers
    /// it: call before the commit that persists it, then [`ClockGuard::commit`].
    pub fn reserve_next(&mut self) -> Result<u64, IndexError> {
        let seq = self.state.last + 1;
        self.cover(seq)?;
        Ok(seq)
    }

    fn cover(&mut self, seq: u64) -> Result<(), IndexError> {
        match self.state.floor.as_mut() {
            Some(floor) => floor.cover(seq).map_err(IndexError::Io),
            None => Ok(()),
        }
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
            self.cover(through)?;
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
