//! The event hub: every event, numbered, in two bounded in-memory logs that all
//! subscribers read from at their own position (docs/PROTOCOL.md §7–§8).
//!
//! Nothing is queued per subscriber. A connection's writer reads the events after
//! its position when the socket has room, so fan-out costs one shared copy of each
//! event, a slow subscriber costs no memory at all, and replay after a reconnect is
//! the same code path as live delivery. A subscriber that falls behind what the
//! logs hold is told so with a GAP.
//!
//! Block events: the last `block_retention` (loaded from the index's persisted log
//! at start). Mempool events: since the process started, up to a byte budget.
//! Scripthash activity: with every mempool event, and for the most recent
//! [`ACTIVITY_BLOCKS`] block events (a mainnet block's activity is about 1 MB).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::protocol::{
    self, ActivityCause, ActivityEntry, BlockRef, Event, GapReason, KIND_BLOCKS, KIND_MEMPOOL,
    KIND_SCRIPTHASHES,
};

/// Block events whose scripthash activity is kept.
pub const ACTIVITY_BLOCKS: usize = 32;

/// The UTXO changes an event caused, for scripthash subscribers.
#[derive(Debug)]
pub struct Activity {
    pub cause: ActivityCause,
    pub block: BlockRef,
    pub txid: [u8; 32],
    pub entries: Vec<ActivityEntry>,
}

/// One published event, encoded once for every subscriber.
#[derive(Debug)]
pub struct HubEvent {
    pub seq: u64,
    /// `KIND_BLOCKS` or `KIND_MEMPOOL`.
    pub class: u8,
    /// The complete frame (length prefix included), ready to write.
    pub frame: Bytes,
    /// For a BLOCK_CONNECTED: the block, so a client can resume after it.
    pub connected: Option<BlockRef>,
    /// Mempool events carry their activity inline (block events' is kept aside).
    pub activity: Option<Arc<Activity>>,
}

/// What a subscriber is given next.
#[derive(Debug)]
pub enum Delivery {
    Event(Arc<HubEvent>),
    Activity {
        seq: u64,
        activity: Arc<Activity>,
    },
    Gap {
        last: u64,
        next: u64,
        reason: GapReason,
    },
}

/// Where a subscriber stands.
#[derive(Clone, Debug, Default)]
pub struct Position {
    /// Events up to this number are behind it.
    pub after: u64,
    /// Mempool events up to this number are known lost and skipped.
    pub mempool_skip: u64,
    /// Block activity up to this number is known lost (already reported).
    pub activity_skip: u64,
    /// A GAP decided at subscription time, delivered first.
    pub pending_gap: Option<(u64, u64, GapReason)>,
}

struct Logs {
    last_seq: u64,
    blocks: VecDeque<Arc<HubEvent>>,
    /// Every block event numbered above this is in `blocks`.
    blocks_complete_after: u64,
    block_activity: VecDeque<(u64, Arc<Activity>)>,
    /// Every block event above this has its activity in `block_activity`.
    activity_complete_after: u64,
    mempool: VecDeque<Arc<HubEvent>>,
    mempool_bytes: usize,
    /// Every mempool event numbered above this is in `mempool`.
    mempool_complete_after: u64,
}

/// The hub (see the module doc).
pub struct Hub {
    logs: Mutex<Logs>,
    latest: watch::Sender<u64>,
    block_retention: usize,
    mempool_budget: usize,
}

/// Approximate memory of a mempool event with its activity.
fn mempool_cost(e: &HubEvent) -> usize {
    e.frame.len()
        + 128
        + e.activity.as_ref().map_or(0, |a| {
            a.entries.len() * std::mem::size_of::<ActivityEntry>()
        })
}

impl Hub {
    /// A hub continuing after event `last_seq`, holding the persisted block events
    /// `logged` (ascending). Mempool events before `last_seq` are gone with the
    /// process that numbered them.
    pub fn new(
        last_seq: u64,
        logged: Vec<Arc<HubEvent>>,
        block_retention: usize,
        mempool_budget: usize,
    ) -> Hub {
        let blocks_complete_after = logged.first().map_or(last_seq, |e| e.seq - 1);
        let (latest, _) = watch::channel(last_seq);
        Hub {
            logs: Mutex::new(Logs {
                last_seq,
                blocks: logged.into(),
                blocks_complete_after,
                block_activity: VecDeque::new(),
                activity_complete_after: last_seq,
                mempool: VecDeque::new(),
                mempool_bytes: 0,
                mempool_complete_after: last_seq,
            }),
            latest,
            block_retention: block_retention.max(1),
            mempool_budget,
        }
    }

    fn logs(&self) -> MutexGuard<'_, Logs> {
        // The logs stay consistent even if a holder panicked: every update is a
        // push or pop that completes before anything else can observe it.
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Memory the mempool event log holds now (never above its budget for long:
    /// the oldest events are dropped as new ones arrive).
    pub fn mempool_log_bytes(&self) -> usize {
        self.logs().mempool_bytes
    }

    /// Number of the latest event published.
    pub fn last_seq(&self) -> u64 {
        self.logs().last_seq
    }

    /// A receiver woken whenever an event is published.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Publishes a block event. Callers hold the event clock, so numbers arrive in
    /// order.
    pub fn publish_block(&self, event: HubEvent, activity: Option<Arc<Activity>>) {
        let seq = event.seq;
        {
            let mut logs = self.logs();
            logs.last_seq = logs.last_seq.max(seq);
            logs.blocks.push_back(Arc::new(event));
            while logs.blocks.len() > self.block_retention {
                if let Some(old) = logs.blocks.pop_front() {
                    logs.blocks_complete_after = old.seq;
                }
            }
            // An event without activity (a rebuild) has none to lose.
            if let Some(a) = activity {
                logs.block_activity.push_back((seq, a));
            }
            while logs.block_activity.len() > ACTIVITY_BLOCKS {
                if let Some((old, _)) = logs.block_activity.pop_front() {
                    logs.activity_complete_after = old;
                }
            }
        }
        self.latest.send_replace(seq);
    }

    /// Publishes a mempool event (its activity inline).
    pub fn publish_mempool(&self, event: HubEvent) {
        let seq = event.seq;
        {
            let mut logs = self.logs();
            logs.last_seq = logs.last_seq.max(seq);
            logs.mempool_bytes += mempool_cost(&event);
            logs.mempool.push_back(Arc::new(event));
            while logs.mempool_bytes > self.mempool_budget {
                let Some(old) = logs.mempool.pop_front() else {
                    break;
                };
                logs.mempool_bytes -= mempool_cost(&old);
                logs.mempool_complete_after = old.seq;
            }
        }
        self.latest.send_replace(seq);
    }

    /// Resolves a SUBSCRIBE's starting point; `None` for a number in the future.
    pub fn resume_point(&self, from: &protocol::SubscribeFrom) -> Option<Position> {
        let logs = self.logs();
        match from {
            protocol::SubscribeFrom::Now => Some(Position {
                after: logs.last_seq,
                ..Position::default()
            }),
            protocol::SubscribeFrom::AfterSeq(s) => {
                if *s > logs.last_seq {
                    return None;
                }
                Some(Position {
                    after: *s,
                    ..Position::default()
                })
            }
            protocol::SubscribeFrom::AfterBlock(b) => {
                let found = logs
                    .blocks
                    .iter()
                    .rev()
                    .find(|e| e.connected.as_ref() == Some(b))
                    .map(|e| e.seq);
                Some(match found {
                    Some(seq) => Position {
                        after: seq,
                        ..Position::default()
                    },
                    None => Position {
                        after: logs.last_seq,
                        pending_gap: Some((0, logs.last_seq + 1, GapReason::HistoryUnavailable)),
                        ..Position::default()
                    },
                })
            }
        }
    }

    /// Up to `max` deliveries for a subscriber of `kinds` at `pos`, advancing it.
    pub fn read(&self, pos: &mut Position, kinds: u8, max: usize) -> Vec<Delivery> {
        let mut out = Vec::new();
        if let Some((last, next, reason)) = pos.pending_gap.take() {
            out.push(Delivery::Gap { last, next, reason });
        }
        let logs = self.logs();
        let wants_blocks = kinds & KIND_BLOCKS != 0;
        let wants_mempool = kinds & KIND_MEMPOOL != 0;
        let wants_activity = kinds & KIND_SCRIPTHASHES != 0;
        let needs_blocks = wants_blocks || wants_activity;
        let needs_mempool = wants_mempool || wants_activity;
        if needs_blocks && pos.after < logs.blocks_complete_after {
            out.push(Delivery::Gap {
                last: pos.after,
                next: logs.last_seq + 1,
                reason: GapReason::HistoryUnavailable,
            });
            pos.after = logs.last_seq;
            return out;
        }
        if needs_mempool && pos.after.max(pos.mempool_skip) < logs.mempool_complete_after {
            out.push(Delivery::Gap {
                last: pos.after,
                next: logs.mempool_complete_after + 1,
                reason: GapReason::MempoolHistoryLost,
            });
            pos.mempool_skip = logs.mempool_complete_after;
        }
        if wants_activity && pos.after.max(pos.activity_skip) < logs.activity_complete_after {
            out.push(Delivery::Gap {
                last: pos.after,
                next: logs.activity_complete_after + 1,
                reason: GapReason::ActivityLost,
            });
            pos.activity_skip = logs.activity_complete_after;
        }
        let mut bi = if needs_blocks {
            logs.blocks.partition_point(|e| e.seq <= pos.after)
        } else {
            logs.blocks.len()
        };
        let mut mi = if needs_mempool {
            let from = pos.after.max(pos.mempool_skip);
            logs.mempool.partition_point(|e| e.seq <= from)
        } else {
            logs.mempool.len()
        };
        while out.len() < max {
            let b = logs.blocks.get(bi);
            let m = logs.mempool.get(mi);
            let next = match (b, m) {
                (None, None) => break,
                (Some(b), None) => {
                    bi += 1;
                    b
                }
                (None, Some(m)) => {
                    mi += 1;
                    m
                }
                (Some(b), Some(m)) => {
                    if b.seq < m.seq {
                        bi += 1;
                        b
                    } else {
                        mi += 1;
                        m
                    }
                }
            };
            pos.after = next.seq;
            let wanted = if next.class == KIND_BLOCKS {
                wants_blocks
            } else {
                wants_mempool
            };
            if wanted {
                out.push(Delivery::Event(next.clone()));
            }
            if wants_activity {
                let activity = if next.class == KIND_BLOCKS {
                    let i = logs.block_activity.partition_point(|(s, _)| *s < next.seq);
                    logs.block_activity
                        .get(i)
                        .filter(|(s, _)| *s == next.seq)
                        .map(|(_, a)| a.clone())
                } else {
                    next.activity.clone()
                };
                if let Some(activity) = activity {
                    out.push(Delivery::Activity {
                        seq: next.seq,
                        activity,
                    });
                }
            }
        }
        out
    }
}

/// Encodes an event as a complete frame for the logs.
pub fn encode_event(event: &Event) -> Bytes {
    let frame = protocol::event_frame(event);
    let mut out = BytesMut::with_capacity(frame.body.len() + protocol::frame::HEADER_LEN);
    // Events the server builds are far below the protocol's smallest maximum.
    if protocol::encode(&frame, protocol::DEFAULT_MAX_FRAME, &mut out).is_err() {
        tracing::error!(
            kind = frame.kind,
            "event larger than a frame; not published"
        );
        return Bytes::new();
    }
    out.freeze()
}
