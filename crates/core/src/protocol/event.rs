//! Events, server → subscribed client (docs/PROTOCOL.md §8): their types and their
//! exact body layouts. Every body starts with the 64-bit event number that a client
//! remembers and resumes from; event frames carry sequence 0.

use bytes::{BufMut, BytesMut};

use super::message::{kind, malformed, BlockRef, DecodeError, Status};
use super::wire::{self, Reader};

/// Bytes of one SCRIPTHASH_ACTIVITY entry: scripthash 32, txid 32, vout 4, change 1,
/// value 8, height 4. The server splits large changes into parts by it.
pub const ACTIVITY_ENTRY_LEN: usize = 32 + 32 + 4 + 1 + 8 + 4;

/// What happened to a mempool transaction (§8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MempoolChange {
    /// Accepted into the mempool view, with what a fee estimator or wallet shows.
    Added {
        /// Sats.
        fee: u64,
        /// Virtual size (weight / 4, rounded up).
        vsize: u32,
        /// Number of inputs.
        inputs: u32,
        /// Number of outputs.
        outputs: u32,
    },
    /// Left the mempool view.
    Removed {
        /// Why it left.
        reason: RemovalReason,
    },
}

/// Why a transaction left the mempool (§8.3): "in a block" needs no action from a
/// wallet, the others mean its outputs are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RemovalReason {
    /// The host did not say.
    Unknown = 0,
    /// Included in a block.
    Block = 1,
    /// Replaced by fee (RBF).
    Replaced = 2,
    /// Conflicted with a transaction in a block.
    Conflict = 3,
    /// Too long in the mempool.
    Expiry = 4,
    /// Evicted because the mempool was full.
    SizeLimit = 5,
    /// No longer valid after a reorg.
    Reorg = 6,
}

impl RemovalReason {
    /// The reason a wire byte names; `None` for an undefined one.
    pub fn from_u8(v: u8) -> Option<RemovalReason> {
        match v {
            0 => Some(RemovalReason::Unknown),
            1 => Some(RemovalReason::Block),
            2 => Some(RemovalReason::Replaced),
            3 => Some(RemovalReason::Conflict),
            4 => Some(RemovalReason::Expiry),
            5 => Some(RemovalReason::SizeLimit),
            6 => Some(RemovalReason::Reorg),
            _ => None,
        }
    }
}

/// What caused a SCRIPTHASH_ACTIVITY (§8.4), i.e. which of `block` and `txid` it
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ActivityCause {
    /// A BLOCK_CONNECTED.
    BlockConnected = 1,
    /// A BLOCK_DISCONNECTED.
    BlockDisconnected = 2,
    /// A MEMPOOL_TX added.
    MempoolAdded = 3,
    /// A MEMPOOL_TX removed.
    MempoolRemoved = 4,
}

impl ActivityCause {
    /// The cause a wire byte names; `None` for an undefined one.
    pub fn from_u8(v: u8) -> Option<ActivityCause> {
        match v {
            1 => Some(ActivityCause::BlockConnected),
            2 => Some(ActivityCause::BlockDisconnected),
            3 => Some(ActivityCause::MempoolAdded),
            4 => Some(ActivityCause::MempoolRemoved),
            _ => None,
        }
    }

    /// True for the block causes, which carry a block and no txid.
    pub fn is_block(self) -> bool {
        matches!(
            self,
            ActivityCause::BlockConnected | ActivityCause::BlockDisconnected
        )
    }
}

/// How one output of a watched scripthash changed (§8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ActivityChange {
    /// Became unspent.
    Added = 1,
    /// Spent, or its block was disconnected.
    Removed = 2,
    /// A mempool transaction spends it.
    SpentInMempool = 3,
    /// The mempool spender went away.
    UnspentInMempool = 4,
}

impl ActivityChange {
    /// The change a wire byte names; `None` for an undefined one.
    pub fn from_u8(v: u8) -> Option<ActivityChange> {
        match v {
            1 => Some(ActivityChange::Added),
            2 => Some(ActivityChange::Removed),
            3 => Some(ActivityChange::SpentInMempool),
            4 => Some(ActivityChange::UnspentInMempool),
            _ => None,
        }
    }
}

/// One changed output in a SCRIPTHASH_ACTIVITY: enough for a wallet to update its
/// balance without a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActivityEntry {
    /// The watched scripthash the output pays.
    pub scripthash: [u8; 32],
    /// Transaction that created the output.
    pub txid: [u8; 32],
    /// Output index in that transaction.
    pub vout: u32,
    /// What happened to it.
    pub change: ActivityChange,
    /// Sats.
    pub value: u64,
    /// 0 for mempool outputs.
    pub height: u32,
}

impl ActivityEntry {
    fn read(r: &mut Reader<'_>) -> Result<ActivityEntry, DecodeError> {
        let scripthash = r.hash32()?;
        let txid = r.hash32()?;
        let vout = r.u32()?;
        let change = r.u8()?;
        let Some(change) = ActivityChange::from_u8(change) else {
            return malformed(format!("activity change {change} is not defined"));
        };
        Ok(ActivityEntry {
            scripthash,
            txid,
            vout,
            change,
            value: r.u64()?,
            height: r.u32()?,
        })
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_slice(&self.scripthash);
        out.put_slice(&self.txid);
        out.put_u32_le(self.vout);
        out.put_u8(self.change as u8);
        out.put_u64_le(self.value);
        out.put_u32_le(self.height);
    }
}

/// Why events were lost (§8.6); each asks the client for a different recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GapReason {
    /// The block events asked for (or not read in time) are no longer kept; re-query.
    HistoryUnavailable = 2,
    /// Mempool events were lost; re-query with the mempool.
    MempoolHistoryLost = 3,
    /// Scripthash activity of some blocks is no longer kept; re-query watched
    /// scripthashes.
    ActivityLost = 4,
}

impl GapReason {
    /// The reason a wire byte names; `None` for an undefined one.
    pub fn from_u8(v: u8) -> Option<GapReason> {
        match v {
            2 => Some(GapReason::HistoryUnavailable),
            3 => Some(GapReason::MempoolHistoryLost),
            4 => Some(GapReason::ActivityLost),
            _ => None,
        }
    }
}

/// An event (§8). One enum so the server queues events without touching bytes and a
/// client matches on them; `seq` is the event number in every variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// §8.1: the index includes the block when this is sent.
    BlockConnected {
        seq: u64,
        block: BlockRef,
        prev_hash: [u8; 32],
        /// Header timestamp.
        time: u32,
        tx_count: u32,
        outputs_added: u32,
        outputs_removed: u32,
    },
    /// §8.2: `block` was removed and `prev_hash` is the new tip.
    BlockDisconnected {
        seq: u64,
        block: BlockRef,
        prev_hash: [u8; 32],
        outputs_added: u32,
        outputs_removed: u32,
    },
    /// §8.3.
    MempoolTx {
        seq: u64,
        txid: [u8; 32],
        change: MempoolChange,
    },
    /// §8.4: one part of the watched outputs a block or mempool event changed; `seq`
    /// is that event's number, shared by all parts; `final_part` marks the last.
    /// `block` is none for mempool causes and `txid` zero for block causes.
    ScripthashActivity {
        seq: u64,
        cause: ActivityCause,
        block: BlockRef,
        txid: [u8; 32],
        final_part: bool,
        entries: Vec<ActivityEntry>,
    },
    /// §8.5: everything derived from earlier events must be re-read.
    IndexRebuilt { seq: u64, tip: BlockRef },
    /// §8.6: events after `last` and before `next` will not be delivered.
    Gap {
        seq: u64,
        last: u64,
        next: u64,
        reason: GapReason,
    },
    /// §8.7: the server closes the connection after this; `status` is never OK (an
    /// OK here is sent as INTERNAL).
    Closing {
        seq: u64,
        status: Status,
        detail: u32,
        message: String,
    },
}

impl Event {
    /// The message type byte of this event.
    pub fn kind(&self) -> u8 {
        match self {
            Event::BlockConnected { .. } => kind::BLOCK_CONNECTED,
            Event::BlockDisconnected { .. } => kind::BLOCK_DISCONNECTED,
            Event::MempoolTx { .. } => kind::MEMPOOL_TX,
            Event::ScripthashActivity { .. } => kind::SCRIPTHASH_ACTIVITY,
            Event::IndexRebuilt { .. } => kind::INDEX_REBUILT,
            Event::Gap { .. } => kind::GAP,
            Event::Closing { .. } => kind::CLOSING,
        }
    }

    /// The event number: what a client stores after processing the event and
    /// resumes from.
    pub fn seq(&self) -> u64 {
        match self {
            Event::BlockConnected { seq, .. }
            | Event::BlockDisconnected { seq, .. }
            | Event::MempoolTx { seq, .. }
            | Event::ScripthashActivity { seq, .. }
            | Event::IndexRebuilt { seq, .. }
            | Event::Gap { seq, .. }
            | Event::Closing { seq, .. } => *seq,
        }
    }

    /// Bytes [`Event::encode_body`] writes, so it reserves once (and so the server
    /// can account for queued events in bytes).
    pub fn body_len(&self) -> usize {
        8 + match self {
            Event::BlockConnected { .. } => BlockRef::LEN + 32 + 4 * 4,
            Event::BlockDisconnected { .. } => BlockRef::LEN + 32 + 4 * 2,
            Event::MempoolTx { change, .. } => {
                1 + 32
                    + match change {
                        MempoolChange::Added { .. } => 8 + 4 * 3,
                        MempoolChange::Removed { .. } => 1,
                    }
            }
            Event::ScripthashActivity { entries, .. } => {
                1 + BlockRef::LEN
                    + 32
                    + 1
                    + 4
                    + ACTIVITY_ENTRY_LEN * (wire::count32(entries.len()) as usize)
            }
            Event::IndexRebuilt { .. } => BlockRef::LEN,
            Event::Gap { .. } => 8 + 8 + 1,
            Event::Closing { message, .. } => 1 + 4 + wire::str16_len(message),
        }
    }

    /// Appends the body (§8 layouts) to `out`.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.reserve(self.body_len());
        out.put_u64_le(self.seq());
        match self {
            Event::BlockConnected {
                block,
                prev_hash,
                time,
                tx_count,
                outputs_added,
                outputs_removed,
                ..
            } => {
                block.put(out);
                out.put_slice(prev_hash);
                out.put_u32_le(*time);
                out.put_u32_le(*tx_count);
                out.put_u32_le(*outputs_added);
                out.put_u32_le(*outputs_removed);
            }
            Event::BlockDisconnected {
                block,
                prev_hash,
                outputs_added,
                outputs_removed,
                ..
            } => {
                block.put(out);
                out.put_slice(prev_hash);
                out.put_u32_le(*outputs_added);
                out.put_u32_le(*outputs_removed);
            }
            Event::MempoolTx { txid, change, .. } => match change {
                MempoolChange::Added {
                    fee,
                    vsize,
                    inputs,
                    outputs,
                } => {
                    out.put_u8(1);
                    out.put_slice(txid);
                    out.put_u64_le(*fee);
                    out.put_u32_le(*vsize);
                    out.put_u32_le(*inputs);
                    out.put_u32_le(*outputs);
                }
                MempoolChange::Removed { reason } => {
                    out.put_u8(2);
                    out.put_slice(txid);
                    out.put_u8(*reason as u8);
                }
            },
            Event::ScripthashActivity {
                cause,
                block,
                txid,
                final_part,
                entries,
                ..
            } => {
                out.put_u8(*cause as u8);
                block.put(out);
                out.put_slice(txid);
                wire::put_bool(out, *final_part);
                let n = wire::count32(entries.len());
                out.put_u32_le(n);
                for e in entries.iter().take(n as usize) {
                    e.put(out);
                }
            }
            Event::IndexRebuilt { tip, .. } => tip.put(out),
            Event::Gap {
                last, next, reason, ..
            } => {
                out.put_u64_le(*last);
                out.put_u64_le(*next);
                out.put_u8(*reason as u8);
            }
            Event::Closing {
                status,
                detail,
                message,
                ..
            } => {
                out.put_u8(status.as_failure() as u8);
                out.put_u32_le(*detail);
                wire::put_str16(out, message);
            }
        }
    }

    /// Reads an event of type `kind`. A type that is not an event this version
    /// defines is [`DecodeError::UnknownType`] (a client may skip it); anything else
    /// wrong with the body is [`DecodeError::Malformed`].
    pub fn decode(kind: u8, body: &[u8]) -> Result<Event, DecodeError> {
        let mut r = Reader::new(body);
        let ev = match kind {
            kind::BLOCK_CONNECTED => Event::BlockConnected {
                seq: r.u64()?,
                block: BlockRef::read(&mut r)?,
                prev_hash: r.hash32()?,
                time: r.u32()?,
                tx_count: r.u32()?,
                outputs_added: r.u32()?,
                outputs_removed: r.u32()?,
            },
            kind::BLOCK_DISCONNECTED => Event::BlockDisconnected {
                seq: r.u64()?,
                block: BlockRef::read(&mut r)?,
                prev_hash: r.hash32()?,
                outputs_added: r.u32()?,
                outputs_removed: r.u32()?,
            },
            kind::MEMPOOL_TX => read_mempool_tx(&mut r)?,
            kind::SCRIPTHASH_ACTIVITY => read_activity(&mut r)?,
            kind::INDEX_REBUILT => Event::IndexRebuilt {
                seq: r.u64()?,
                tip: BlockRef::read(&mut r)?,
            },
            kind::GAP => {
                let seq = r.u64()?;
                let last = r.u64()?;
                let next = r.u64()?;
                let reason = r.u8()?;
                let Some(reason) = GapReason::from_u8(reason) else {
                    return malformed(format!("GAP reason {reason} is not defined"));
                };
                Event::Gap {
                    seq,
                    last,
                    next,
                    reason,
                }
            }
            kind::CLOSING => {
                let seq = r.u64()?;
                let status = r.u8()?;
                let status = match Status::from_u8(status) {
                    Some(Status::Ok) | None => {
                        return malformed(format!("CLOSING status {status} is not a failure"))
                    }
                    Some(s) => s,
                };
                Event::Closing {
                    seq,
                    status,
                    detail: r.u32()?,
                    message: r.str16("message")?,
                }
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(ev)
    }
}

/// Reads the rest of a MEMPOOL_TX body: `u8 action | hash32 txid | ...`, where the
/// action decides what follows.
fn read_mempool_tx(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
    let seq = r.u64()?;
    let action = r.u8()?;
    let txid = r.hash32()?;
    let change = match action {
        1 => MempoolChange::Added {
            fee: r.u64()?,
            vsize: r.u32()?,
            inputs: r.u32()?,
            outputs: r.u32()?,
        },
        2 => {
            let reason = r.u8()?;
            let Some(reason) = RemovalReason::from_u8(reason) else {
                return malformed(format!("mempool removal reason {reason} is not defined"));
            };
            MempoolChange::Removed { reason }
        }
        _ => return malformed(format!("mempool action {action} is not defined")),
    };
    Ok(Event::MempoolTx { seq, txid, change })
}

/// Reads a SCRIPTHASH_ACTIVITY body. The field the cause does not use must be zero,
/// so a client can rely on "block causes carry a block, mempool causes a txid".
fn read_activity(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
    let seq = r.u64()?;
    let cause = r.u8()?;
    let Some(cause) = ActivityCause::from_u8(cause) else {
        return malformed(format!("activity cause {cause} is not defined"));
    };
    let block = BlockRef::read(r)?;
    let txid = r.hash32()?;
    if cause.is_block() && txid != [0; 32] {
        return malformed("block activity with a non-zero txid");
    }
    if !cause.is_block() && !block.is_none() {
        return malformed("mempool activity with a non-zero block");
    }
    let final_part = r.bool("final")?;
    let n = r.count("activity entry count", ACTIVITY_ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(ActivityEntry::read(r)?);
    }
    Ok(Event::ScripthashActivity {
        seq,
        cause,
        block,
        txid,
        final_part,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testkit::{self, body_of, Rng};

    fn h(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| seed.wrapping_mul(37).wrapping_add(i as u8) ^ 0xA5)
    }

    fn entry(seed: u8, change: ActivityChange) -> ActivityEntry {
        ActivityEntry {
            scripthash: h(seed),
            txid: h(seed.wrapping_add(100)),
            vout: u32::from(seed) * 3,
            change,
            value: 1_000 * u64::from(seed) + 1,
            height: 800_000 + u32::from(seed),
        }
    }

    /// One of every event and variant, with non-trivial values.
    fn samples() -> Vec<Event> {
        let mut v = vec![
            Event::BlockConnected {
                seq: 0x0102_0304_0506_0708,
                block: BlockRef {
                    height: 840_000,
                    hash: h(1),
                },
                prev_hash: h(2),
                time: 1_713_571_767,
                tx_count: 3_050,
                outputs_added: 7_000,
                outputs_removed: 6_500,
            },
            Event::BlockDisconnected {
                seq: 42,
                block: BlockRef {
                    height: 840_001,
                    hash: h(3),
                },
                prev_hash: h(4),
                outputs_added: 12,
                outputs_removed: 34,
            },
            Event::MempoolTx {
                seq: 43,
                txid: h(5),
                change: MempoolChange::Added {
                    fee: 12_345,
                    vsize: 141,
                    inputs: 2,
                    outputs: 3,
                },
            },
            Event::ScripthashActivity {
                seq: 44,
                cause: ActivityCause::BlockConnected,
                block: BlockRef {
                    height: 840_002,
                    hash: h(6),
                },
                txid: [0; 32],
                final_part: false,
                entries: vec![
                    entry(1, ActivityChange::Added),
                    entry(2, ActivityChange::Removed),
                ],
            },
            Event::ScripthashActivity {
                seq: 44,
                cause: ActivityCause::BlockDisconnected,
                block: BlockRef {
                    height: 840_002,
                    hash: h(6),
                },
                txid: [0; 32],
                final_part: true,
                entries: vec![],
            },
            Event::ScripthashActivity {
                seq: 45,
                cause: ActivityCause::MempoolAdded,
                block: BlockRef::default(),
                txid: h(7),
                final_part: true,
                entries: vec![
                    entry(3, ActivityChange::SpentInMempool),
                    entry(4, ActivityChange::UnspentInMempool),
                    entry(5, ActivityChange::Added),
                ],
            },
            Event::ScripthashActivity {
                seq: 46,
                cause: ActivityCause::MempoolRemoved,
                block: BlockRef::default(),
                txid: h(8),
                final_part: true,
                entries: vec![entry(6, ActivityChange::Removed)],
            },
            Event::IndexRebuilt {
                seq: 47,
                tip: BlockRef {
                    height: 850_000,
                    hash: h(9),
                },
            },
            Event::Closing {
                seq: 99,
                status: Status::ShuttingDown,
                detail: 0,
                message: "bye ✓".into(),
            },
            Event::Closing {
                seq: 0,
                status: Status::TooManyConnections,
                detail: 64,
                message: String::new(),
            },
        ];
        for (i, reason) in [
            RemovalReason::Unknown,
            RemovalReason::Block,
            RemovalReason::Replaced,
            RemovalReason::Conflict,
            RemovalReason::Expiry,
            RemovalReason::SizeLimit,
            RemovalReason::Reorg,
        ]
        .into_iter()
        .enumerate()
        {
            v.push(Event::MempoolTx {
                seq: 100 + i as u64,
                txid: h(20 + i as u8),
                change: MempoolChange::Removed { reason },
            });
        }
        for (i, reason) in [
            GapReason::ActivityLost,
            GapReason::HistoryUnavailable,
            GapReason::MempoolHistoryLost,
        ]
        .into_iter()
        .enumerate()
        {
            v.push(Event::Gap {
                seq: 5_000 + i as u64,
                last: 4_000,
                next: 5_001,
                reason,
            });
        }
        v
    }

    #[test]
    fn every_event_round_trips_exactly_and_strictly() {
        for ev in samples() {
            testkit::assert_strict(&ev);
        }
    }

    #[test]
    fn block_connected_golden_bytes() {
        let ev = Event::BlockConnected {
            seq: 0x0102_0304_0506_0708,
            block: BlockRef {
                height: 0x000C_D140, // 840,000
                hash: [0xAA; 32],
            },
            prev_hash: [0xBB; 32],
            time: 0x6623_B7B7,
            tx_count: 3_050,
            outputs_added: 0x0102_0304,
            outputs_removed: 0x1122_3344,
        };
        let mut want = vec![8, 7, 6, 5, 4, 3, 2, 1]; // event_seq
        want.extend_from_slice(&[0x40, 0xD1, 0x0C, 0x00]); // block height
        want.extend_from_slice(&[0xAA; 32]); // block hash
        want.extend_from_slice(&[0xBB; 32]); // prev_hash
        want.extend_from_slice(&[0xB7, 0xB7, 0x23, 0x66]); // time
        want.extend_from_slice(&[0xEA, 0x0B, 0, 0]); // tx_count 3,050
        want.extend_from_slice(&[4, 3, 2, 1]); // outputs_added
        want.extend_from_slice(&[0x44, 0x33, 0x22, 0x11]); // outputs_removed
        assert_eq!(want.len(), 92);
        assert_eq!(ev.kind(), 0xE1);
        assert_eq!(&body_of(&ev)[..], &want[..]);
        assert_eq!(Event::decode(0xE1, &want).unwrap(), ev);
    }

    #[test]
    fn activity_entry_layout() {
        let ev = Event::ScripthashActivity {
            seq: 1,
            cause: ActivityCause::MempoolAdded,
            block: BlockRef::default(),
            txid: [0x77; 32],
            final_part: true,
            entries: vec![ActivityEntry {
                scripthash: [0x11; 32],
                txid: [0x22; 32],
                vout: 5,
                change: ActivityChange::SpentInMempool,
                value: 600,
                height: 0,
            }],
        };
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 3]; // seq, cause
        want.extend_from_slice(&[0; 36]); // no block
        want.extend_from_slice(&[0x77; 32]); // txid
        want.extend_from_slice(&[1, 1, 0, 0, 0]); // final, count
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&[0x22; 32]);
        want.extend_from_slice(&[5, 0, 0, 0, 3, 0x58, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&body_of(&ev)[..], &want[..]);
        assert_eq!(want.len() - 82, ACTIVITY_ENTRY_LEN);
    }

    #[test]
    fn out_of_range_fields_are_malformed() {
        let bad = |kind: u8, body: &[u8]| {
            let got = Event::decode(kind, body);
            assert!(
                matches!(got, Err(DecodeError::Malformed(_))),
                "kind {kind:#x} body {body:02x?} gave {got:?}"
            )
        };
        let all = samples();
        let body = |i: usize| body_of(&all[i]).to_vec();
        // MEMPOOL_TX: action 0 and 3; reason 7.
        for action in [0, 3] {
            let mut b = body(2);
            b[8] = action;
            bad(kind::MEMPOOL_TX, &b);
        }
        let mut removed = body(10);
        assert_eq!(removed[8], 2);
        *removed.last_mut().unwrap() = 7;
        bad(kind::MEMPOOL_TX, &removed);
        // SCRIPTHASH_ACTIVITY: cause 0/5, final 2, change 0/5, mismatched block/txid.
        let act = body(3);
        for (at, v) in [
            (8, 0),
            (8, 5),
            (8 + 1 + 36 + 32, 2),
            (82 + 64 + 4, 0),
            (82 + 64 + 4, 5),
        ] {
            let mut b = act.clone();
            b[at] = v;
            bad(kind::SCRIPTHASH_ACTIVITY, &b);
        }
        let mut b = act.clone();
        b[8 + 1 + 36] = 1; // a txid on a block cause
        bad(kind::SCRIPTHASH_ACTIVITY, &b);
        let mut b = body(5);
        b[9] = 1; // a block on a mempool cause
        bad(kind::SCRIPTHASH_ACTIVITY, &b);
        // GAP reasons 0, 1 (unassigned) and 5.
        for reason in [0, 1, 5] {
            let mut b = body(all.len() - 1);
            *b.last_mut().unwrap() = reason;
            bad(kind::GAP, &b);
        }
        // CLOSING with OK or an undefined status.
        for status in [0, 16, 255] {
            let mut b = body(8);
            b[8] = status;
            bad(kind::CLOSING, &b);
        }
        let ok_closing = Event::Closing {
            seq: 1,
            status: Status::Ok,
            detail: 0,
            message: String::new(),
        };
        assert_eq!(body_of(&ok_closing)[8], Status::Internal as u8);
    }

    #[test]
    fn activity_counts_beyond_the_body_fail_before_allocating() {
        let mut b = body_of(&samples()[5]).to_vec();
        let count_at = 8 + 1 + 36 + 32 + 1;
        for count in [u32::MAX, 4, 0x0100_0000] {
            b[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
            assert!(matches!(
                Event::decode(kind::SCRIPTHASH_ACTIVITY, &b),
                Err(DecodeError::Malformed(m)) if m.contains("needs more than")
            ));
        }
    }

    #[test]
    fn event_types_outside_the_table_are_unknown() {
        for k in 0..=255u8 {
            let known = matches!(k, 0xE1..=0xE5 | 0xEE | 0xEF);
            match Event::decode(k, &[]) {
                Err(DecodeError::UnknownType(t)) => assert!(!known && t == k),
                _ => assert!(known, "{k:#x}"),
            }
        }
    }

    #[test]
    fn seq_is_every_variants_event_number() {
        for ev in samples() {
            assert_eq!(body_of(&ev)[..8], ev.seq().to_le_bytes());
        }
    }

    #[test]
    fn fuzz_never_panics_and_accepts_only_canonical_bodies() {
        let mut rng = Rng::new(0x5eed_0003);
        testkit::fuzz(&samples(), kind::EVENTS, &mut rng);
    }
}
