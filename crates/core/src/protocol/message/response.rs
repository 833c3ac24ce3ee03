//! Responses, server → client (docs/PROTOCOL.md §3–§7): their types and their exact
//! body layouts, each starting with the status byte.
//!
//! A non-zero status makes any response an error (§3), so [`Response::decode`] reads
//! the status first and only then the layout of the request's response.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    kind, malformed, response_kind, BlockRef, Cursor, DecodeError, Status, ENTRY_COINBASE,
    ENTRY_PENDING, ENTRY_SPENT_IN_MEMPOOL,
};
use crate::network::Network;
use crate::protocol::wire::{self, Reader};

/// Every entry flag this version defines; other bits make an entry malformed.
const ENTRY_FLAGS: u8 = ENTRY_COINBASE | ENTRY_PENDING | ENTRY_SPENT_IN_MEMPOOL;

/// One unspent output of a UTXO answer (§6.1), with what a wallet needs to spend it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UtxoEntry {
    /// Transaction that created the output (internal byte order).
    pub txid: [u8; 32],
    /// Output index in that transaction.
    pub vout: u32,
    /// Sats.
    pub value: u64,
    /// Confirming block height; 0 for an output of a mempool transaction.
    pub height: u32,
    /// `ENTRY_*` bits. On encoding, `ENTRY_SPENT_IN_MEMPOOL` follows `spender` (the
    /// bit says whether the spender is on the wire, so the two cannot disagree).
    pub flags: u8,
    /// The mempool transaction spending this output, iff `ENTRY_SPENT_IN_MEMPOOL`.
    pub spender: Option<[u8; 32]>,
}

impl UtxoEntry {
    /// Bytes of an entry without a spender: the smallest an entry can be, which is
    /// what an entry count is checked against.
    pub const MIN_LEN: usize = 32 + 4 + 8 + 4 + 1;
    /// Bytes of an entry with a spender: the 81 of the `max_results` formula (§5.1).
    pub const MAX_LEN: usize = UtxoEntry::MIN_LEN + 32;

    /// Bytes of this entry on the wire.
    pub fn wire_len(&self) -> usize {
        if self.spender.is_some() {
            UtxoEntry::MAX_LEN
        } else {
            UtxoEntry::MIN_LEN
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<UtxoEntry, DecodeError> {
        let txid = r.hash32()?;
        let vout = r.u32()?;
        let value = r.u64()?;
        let height = r.u32()?;
        let flags = r.u8()?;
        if flags & !ENTRY_FLAGS != 0 {
            return malformed(format!("entry flags 0x{flags:02x} set undefined bits"));
        }
        let spender = if flags & ENTRY_SPENT_IN_MEMPOOL != 0 {
            Some(r.hash32()?)
        } else {
            None
        };
        Ok(UtxoEntry {
            txid,
            vout,
            value,
            height,
            flags,
            spender,
        })
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_slice(&self.txid);
        out.put_u32_le(self.vout);
        out.put_u64_le(self.value);
        out.put_u32_le(self.height);
        let spent = if self.spender.is_some() {
            ENTRY_SPENT_IN_MEMPOOL
        } else {
            0
        };
        out.put_u8(self.flags & !ENTRY_SPENT_IN_MEMPOOL | spent);
        if let Some(spender) = &self.spender {
            out.put_slice(spender);
        }
    }
}

/// A page of UTXOs (§6.1, §6.2): the answer to both UTXO queries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UtxoPage {
    /// The index tip the page was read at; pages with different tips come from
    /// different states (§6.2).
    pub tip: BlockRef,
    /// The scriptPubKey every entry pays, sent once; empty when there are no entries.
    pub script: Vec<u8>,
    /// The outputs, in the query's sort order.
    pub entries: Vec<UtxoEntry>,
    /// More entries match after the last one returned.
    pub more: bool,
    /// QUERY_UTXOS_PAGINATED only (ignored for QUERY_UTXOS): where the next page
    /// starts, present iff `more`.
    pub cursor: Option<Cursor>,
}

impl UtxoPage {
    /// Bytes after the status byte, with or without the cursor field.
    pub fn body_len(&self, paginated: bool) -> usize {
        let entries: usize = self
            .entries
            .iter()
            .take(wire::count32(self.entries.len()) as usize)
            .map(UtxoEntry::wire_len)
            .sum();
        let cursor = match (&self.cursor, paginated) {
            (Some(c), true) => c.wire_len(),
            (None, true) => 1,
            (_, false) => 0,
        };
        BlockRef::LEN + wire::bytes16_len(&self.script) + 4 + entries + 1 + cursor
    }

    fn read(r: &mut Reader<'_>, paginated: bool) -> Result<UtxoPage, DecodeError> {
        let tip = BlockRef::read(r)?;
        let script = r.bytes16()?;
        let count = r.count("entry count", UtxoEntry::MIN_LEN)?;
        if count == 0 && !script.is_empty() {
            return malformed("a script with no entries");
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(UtxoEntry::read(r)?);
        }
        let more = r.bool("more")?;
        let cursor = if paginated {
            let cursor = Cursor::read(r)?;
            match (more, cursor.is_empty()) {
                (true, true) => return malformed("more = 1 without a cursor"),
                (false, false) => return malformed("a cursor with more = 0"),
                (true, false) => Some(cursor),
                (false, true) => None,
            }
        } else {
            None
        };
        Ok(UtxoPage {
            tip,
            script: script.to_vec(),
            entries,
            more,
            cursor,
        })
    }

    fn put(&self, out: &mut BytesMut, paginated: bool) {
        self.tip.put(out);
        wire::put_bytes16(out, &self.script);
        let n = wire::count32(self.entries.len());
        out.put_u32_le(n);
        for e in self.entries.iter().take(n as usize) {
            e.put(out);
        }
        wire::put_bool(out, self.more);
        if paginated {
            match &self.cursor {
                Some(c) => c.put(out),
                None => out.put_u8(0),
            }
        }
    }
}

/// The successful HELLO answer (§4): what the connection may do from now on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloReply {
    /// The highest version in both ranges.
    pub version: u16,
    /// Granted feature bits: requested ∩ offered.
    pub features: u64,
    /// [`Network::id`]; a client checks it before trusting any answer.
    pub network: u8,
    /// Largest frame either side may send from now on.
    pub max_frame: u32,
    /// Most UTXO entries one response carries.
    pub max_results: u32,
    /// Requests executed at once for this connection.
    pub max_inflight: u32,
    /// Scripthashes this connection may watch.
    pub max_scripthashes: u32,
    /// Requests per second allowed (0 = no limit).
    pub rate_limit: u32,
    /// The latest event number: where a fresh subscription starts.
    pub event_seq: u64,
    /// The index tip (none while no index exists).
    pub tip: BlockRef,
    /// For the client's logs.
    pub server_name: String,
}

impl HelloReply {
    fn body_len(&self) -> usize {
        2 + 8 + 1 + 4 * 5 + 8 + BlockRef::LEN + wire::str16_len(&self.server_name)
    }

    fn read(r: &mut Reader<'_>) -> Result<HelloReply, DecodeError> {
        let reply = HelloReply {
            version: r.u16()?,
            features: r.u64()?,
            network: r.u8()?,
            max_frame: r.u32()?,
            max_results: r.u32()?,
            max_inflight: r.u32()?,
            max_scripthashes: r.u32()?,
            rate_limit: r.u32()?,
            event_seq: r.u64()?,
            tip: BlockRef::read(r)?,
            server_name: r.str16("server_name")?,
        };
        if reply.version == 0 {
            return malformed("HELLO reply version 0");
        }
        if Network::from_id(reply.network).is_none() {
            return malformed(format!("network {} is not defined", reply.network));
        }
        Ok(reply)
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_u16_le(self.version);
        out.put_u64_le(self.features);
        out.put_u8(self.network);
        out.put_u32_le(self.max_frame);
        out.put_u32_le(self.max_results);
        out.put_u32_le(self.max_inflight);
        out.put_u32_le(self.max_scripthashes);
        out.put_u32_le(self.rate_limit);
        out.put_u64_le(self.event_seq);
        self.tip.put(out);
        wire::put_str16(out, &self.server_name);
    }
}

/// What the index is doing (§6.3), so a client knows whether answers are current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SyncMode {
    /// Opening the index, not serving yet.
    Starting = 0,
    /// Building the index from the chainstate.
    Scanning = 1,
    /// Applying blocks to reach the host's tip.
    CatchingUp = 2,
    /// At the host's tip, following it.
    Synced = 3,
    /// Needs a rebuild: a reorg deeper than the undo log.
    Stale = 4,
    /// The index thread stopped, on an internal error (a panic) or a damaged
    /// index: the index stays at its last committed block until the plugin is
    /// restarted, or the index rebuilt.
    Failed = 5,
}

impl SyncMode {
    /// The mode a wire byte names; `None` for an undefined one.
    pub fn from_u8(v: u8) -> Option<SyncMode> {
        match v {
            0 => Some(SyncMode::Starting),
            1 => Some(SyncMode::Scanning),
            2 => Some(SyncMode::CatchingUp),
            3 => Some(SyncMode::Synced),
            4 => Some(SyncMode::Stale),
            5 => Some(SyncMode::Failed),
            _ => None,
        }
    }

    /// The document's lower-case name, for logs and CLI output.
    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Starting => "starting",
            SyncMode::Scanning => "scanning",
            SyncMode::CatchingUp => "catching_up",
            SyncMode::Synced => "synced",
            SyncMode::Stale => "stale",
            SyncMode::Failed => "failed",
        }
    }
}

/// The GET_SYNC_STATUS answer (§6.3): enough to show progress and decide whether to
/// wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncStatusReply {
    /// Whether the index serves current answers.
    pub mode: SyncMode,
    /// The index's tip (none while no index exists).
    pub index_tip: BlockRef,
    /// The chain source's tip (none if unknown).
    pub host_tip: BlockRef,
    /// UTXOs in the index.
    pub utxo_count: u64,
    /// Sats in the index.
    pub total_value: u64,
    /// The latest event number.
    pub event_seq: u64,
    /// Chainstate bytes scanned (while scanning).
    pub scan_done: u64,
    /// Chainstate bytes to scan (0 when not scanning).
    pub scan_total: u64,
    /// UTXOs read so far (while scanning).
    pub scan_utxos: u64,
    /// Transactions in the mempool view.
    pub mempool_txs: u32,
}

impl SyncStatusReply {
    const LEN: usize = 1 + 2 * BlockRef::LEN + 6 * 8 + 4;

    fn read(r: &mut Reader<'_>) -> Result<SyncStatusReply, DecodeError> {
        let mode = r.u8()?;
        let Some(mode) = SyncMode::from_u8(mode) else {
            return malformed(format!("sync mode {mode} is not defined"));
        };
        Ok(SyncStatusReply {
            mode,
            index_tip: BlockRef::read(r)?,
            host_tip: BlockRef::read(r)?,
            utxo_count: r.u64()?,
            total_value: r.u64()?,
            event_seq: r.u64()?,
            scan_done: r.u64()?,
            scan_total: r.u64()?,
            scan_utxos: r.u64()?,
            mempool_txs: r.u32()?,
        })
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_u8(self.mode as u8);
        self.index_tip.put(out);
        self.host_tip.put(out);
        out.put_u64_le(self.utxo_count);
        out.put_u64_le(self.total_value);
        out.put_u64_le(self.event_seq);
        out.put_u64_le(self.scan_done);
        out.put_u64_le(self.scan_total);
        out.put_u64_le(self.scan_utxos);
        out.put_u32_le(self.mempool_txs);
    }
}

/// A failed request (§3): the status tells the client what to do, `detail` gives the
/// number it needs (a limit, a wait), `message` is for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// Never [`Status::Ok`] (an OK here is sent as INTERNAL).
    pub status: Status,
    /// The status's number (§3), else 0.
    pub detail: u32,
    /// For logs; never parse it.
    pub message: String,
}

/// A response, server → client. One enum so the server writes answers without
/// touching bytes and a client matches on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `0x90`.
    Hello(HelloReply),
    /// `0x81`, QUERY_UTXOS: the page's `cursor` is not on the wire (always `None`).
    Utxos(UtxoPage),
    /// `0x82`, QUERY_UTXOS_PAGINATED: the page carries its cursor.
    UtxosPage(UtxoPage),
    /// `0x83`.
    SyncStatus(SyncStatusReply),
    /// `0x84`: events `resume_after + 1 ..= event_seq` are replayed next.
    Subscribed { event_seq: u64, resume_after: u64 },
    /// `0x85`.
    Unsubscribed,
    /// `0x86`: txids in block order.
    BlockTxids {
        block: BlockRef,
        txids: Vec<[u8; 32]>,
    },
    /// `0x87`: `block` is none for a mempool transaction; `raw` is the consensus
    /// serialization with witness.
    Tx { block: BlockRef, raw: Vec<u8> },
    /// `0x88`.
    BlockHeader { block: BlockRef, header: [u8; 80] },
    /// `0x89`: scripthashes added now, and watched after the request.
    ScripthashesSubscribed { changed: u32, total: u32 },
    /// `0x8A`: scripthashes removed now, and watched after the request.
    ScripthashesUnsubscribed { changed: u32, total: u32 },
    /// `0x8B`: the PING payload, echoed.
    Pong(Bytes),
    /// Any request's failure, sent as `response_kind(request_kind)`. Decoded,
    /// `request_kind` is the response type without its high bit, so it is the real
    /// request type except for answers on `0xDF` (then UNKNOWN_TYPE's `detail` has it).
    Error { request_kind: u8, error: ErrorReply },
}

impl Response {
    /// The message type byte of this response.
    pub fn kind(&self) -> u8 {
        match self {
            Response::Hello(_) => response_kind(kind::HELLO),
            Response::Utxos(_) => response_kind(kind::QUERY_UTXOS),
            Response::UtxosPage(_) => response_kind(kind::QUERY_UTXOS_PAGINATED),
            Response::SyncStatus(_) => response_kind(kind::GET_SYNC_STATUS),
            Response::Subscribed { .. } => response_kind(kind::SUBSCRIBE),
            Response::Unsubscribed => response_kind(kind::UNSUBSCRIBE),
            Response::BlockTxids { .. } => response_kind(kind::GET_BLOCK_TXIDS),
            Response::Tx { .. } => response_kind(kind::GET_TX),
            Response::BlockHeader { .. } => response_kind(kind::GET_BLOCK_HEADER),
            Response::ScripthashesSubscribed { .. } => response_kind(kind::SUBSCRIBE_SCRIPTHASHES),
            Response::ScripthashesUnsubscribed { .. } => {
                response_kind(kind::UNSUBSCRIBE_SCRIPTHASHES)
            }
            Response::Pong(_) => response_kind(kind::PING),
            Response::Error { request_kind, .. } => response_kind(*request_kind),
        }
    }

    /// Bytes [`Response::encode_body`] writes (status byte included), so a page of
    /// 10,000 entries is written with a single reservation.
    pub fn body_len(&self) -> usize {
        1 + match self {
            Response::Hello(h) => h.body_len(),
            Response::Utxos(page) => page.body_len(false),
            Response::UtxosPage(page) => page.body_len(true),
            Response::SyncStatus(_) => SyncStatusReply::LEN,
            Response::Subscribed { .. } => 16,
            Response::Unsubscribed => 0,
            Response::BlockTxids { txids, .. } => {
                BlockRef::LEN + 4 + 32 * (wire::count32(txids.len()) as usize)
            }
            Response::Tx { raw, .. } => BlockRef::LEN + 4 + wire::count32(raw.len()) as usize,
            Response::BlockHeader { .. } => BlockRef::LEN + 80,
            Response::ScripthashesSubscribed { .. } | Response::ScripthashesUnsubscribed { .. } => {
                8
            }
            Response::Pong(payload) => payload.len(),
            Response::Error { error, .. } => 4 + wire::str16_len(&error.message),
        }
    }

    /// Appends the body, status byte first (§3), to `out`.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.reserve(self.body_len());
        if let Response::Error { error, .. } = self {
            out.put_u8(error.status.as_failure() as u8);
            out.put_u32_le(error.detail);
            wire::put_str16(out, &error.message);
            return;
        }
        out.put_u8(Status::Ok as u8);
        match self {
            Response::Hello(h) => h.put(out),
            Response::Utxos(page) => page.put(out, false),
            Response::UtxosPage(page) => page.put(out, true),
            Response::SyncStatus(s) => s.put(out),
            Response::Subscribed {
                event_seq,
                resume_after,
            } => {
                out.put_u64_le(*event_seq);
                out.put_u64_le(*resume_after);
            }
            Response::Unsubscribed => {}
            Response::BlockTxids { block, txids } => {
                block.put(out);
                let n = wire::count32(txids.len());
                out.put_u32_le(n);
                for txid in txids.iter().take(n as usize) {
                    out.put_slice(txid);
                }
            }
            Response::Tx { block, raw } => {
                block.put(out);
                let n = wire::count32(raw.len());
                out.put_u32_le(n);
                out.put_slice(&raw[..n as usize]);
            }
            Response::BlockHeader { block, header } => {
                block.put(out);
                out.put_slice(header);
            }
            Response::ScripthashesSubscribed { changed, total }
            | Response::ScripthashesUnsubscribed { changed, total } => {
                out.put_u32_le(*changed);
                out.put_u32_le(*total);
            }
            Response::Pong(payload) => out.put_slice(payload),
            Response::Error { .. } => {}
        }
    }

    /// Reads a response of type `kind`. A non-zero status gives [`Response::Error`]
    /// whatever the type; a status this version does not define is
    /// [`DecodeError::Malformed`], which the client reports as the failure of the
    /// request with that sequence number (§3). A type with no response layout (or
    /// outside `0x81..=0xDF`) is [`DecodeError::UnknownType`].
    pub fn decode(kind: u8, body: &[u8]) -> Result<Response, DecodeError> {
        if !kind::RESPONSES.contains(&kind) {
            return Err(DecodeError::UnknownType(kind));
        }
        let request = kind & 0x7F;
        let mut r = Reader::new(body);
        let status = r.u8()?;
        let resp = if status != Status::Ok as u8 {
            let Some(status) = Status::from_u8(status) else {
                return malformed(format!("status {status} is not defined"));
            };
            Response::Error {
                request_kind: request,
                error: ErrorReply {
                    status,
                    detail: r.u32()?,
                    message: r.str16("message")?,
                },
            }
        } else {
            match request {
                kind::HELLO => Response::Hello(HelloReply::read(&mut r)?),
                kind::QUERY_UTXOS => Response::Utxos(UtxoPage::read(&mut r, false)?),
                kind::QUERY_UTXOS_PAGINATED => Response::UtxosPage(UtxoPage::read(&mut r, true)?),
                kind::GET_SYNC_STATUS => Response::SyncStatus(SyncStatusReply::read(&mut r)?),
                kind::SUBSCRIBE => Response::Subscribed {
                    event_seq: r.u64()?,
                    resume_after: r.u64()?,
                },
                kind::UNSUBSCRIBE => Response::Unsubscribed,
                kind::GET_BLOCK_TXIDS => {
                    let block = BlockRef::read(&mut r)?;
                    let n = r.count("txid count", 32)?;
                    let mut txids = Vec::with_capacity(n);
                    for _ in 0..n {
                        txids.push(r.hash32()?);
                    }
                    Response::BlockTxids { block, txids }
                }
                kind::GET_TX => {
                    let block = BlockRef::read(&mut r)?;
                    let n = r.count("transaction length", 1)?;
                    Response::Tx {
                        block,
                        raw: r.bytes(n)?.to_vec(),
                    }
                }
                kind::GET_BLOCK_HEADER => Response::BlockHeader {
                    block: BlockRef::read(&mut r)?,
                    header: r.array()?,
                },
                kind::SUBSCRIBE_SCRIPTHASHES => Response::ScripthashesSubscribed {
                    changed: r.u32()?,
                    total: r.u32()?,
                },
                kind::UNSUBSCRIBE_SCRIPTHASHES => Response::ScripthashesUnsubscribed {
                    changed: r.u32()?,
                    total: r.u32()?,
                },
                kind::PING => Response::Pong(Bytes::copy_from_slice(r.rest())),
                _ => return Err(DecodeError::UnknownType(kind)),
            }
        };
        r.finish()?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::{FEATURE_MEMPOOL, FEATURE_TX_INDEX};
    use crate::protocol::testkit::{self, body_of, Rng};

    fn h(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| seed.wrapping_mul(29).wrapping_add(i as u8) ^ 0x5A)
    }

    fn block(height: u32, seed: u8) -> BlockRef {
        BlockRef {
            height,
            hash: h(seed),
        }
    }

    fn entries() -> Vec<UtxoEntry> {
        vec![
            UtxoEntry {
                txid: h(1),
                vout: 0,
                value: 5_000_000_000,
                height: 100,
                flags: ENTRY_COINBASE,
                spender: None,
            },
            UtxoEntry {
                txid: h(2),
                vout: 7,
                value: 546,
                height: 840_001,
                flags: ENTRY_SPENT_IN_MEMPOOL,
                spender: Some(h(3)),
            },
            UtxoEntry {
                txid: h(4),
                vout: 1,
                value: 12_345,
                height: 0,
                flags: ENTRY_PENDING | ENTRY_SPENT_IN_MEMPOOL,
                spender: Some(h(5)),
            },
        ]
    }

    fn page(more: bool, cursor: Option<Cursor>) -> UtxoPage {
        UtxoPage {
            tip: block(840_002, 9),
            script: vec![0x00, 0x14, 0xAA, 0xBB, 0xCC],
            entries: entries(),
            more,
            cursor,
        }
    }

    /// One of every success response plus an error of every status, with non-trivial
    /// values.
    fn samples() -> Vec<Response> {
        let mut v = vec![
            Response::Hello(HelloReply {
                version: 1,
                features: FEATURE_MEMPOOL | FEATURE_TX_INDEX,
                network: 4,
                max_frame: 1 << 20,
                max_results: 10_000,
                max_inflight: 32,
                max_scripthashes: 100_000,
                rate_limit: 1_000_000,
                event_seq: 0x0102_0304_0506_0708,
                tip: block(840_000, 1),
                server_name: "opnet-core/0.1.0".into(),
            }),
            Response::Utxos(page(true, None)),
            Response::Utxos(UtxoPage {
                tip: block(1, 2),
                ..UtxoPage::default()
            }),
            Response::UtxosPage(page(true, Some(Cursor(vec![0, 1, 2, 3, 4, 5])))),
            Response::UtxosPage(page(false, None)),
            Response::SyncStatus(SyncStatusReply {
                mode: SyncMode::Scanning,
                index_tip: BlockRef::default(),
                host_tip: block(840_000, 3),
                utxo_count: 180_000_000,
                total_value: 1_968_750_000_000_000,
                event_seq: 77,
                scan_done: 5 << 30,
                scan_total: 11 << 30,
                scan_utxos: 90_000_000,
                mempool_txs: 4321,
            }),
            Response::Subscribed {
                event_seq: 1_000,
                resume_after: 990,
            },
            Response::Unsubscribed,
            Response::BlockTxids {
                block: block(800_000, 4),
                txids: vec![h(10), h(11), h(12)],
            },
            Response::BlockTxids {
                block: block(1, 5),
                txids: vec![],
            },
            Response::Tx {
                block: block(700_000, 6),
                raw: (0..=255u8).collect(),
            },
            Response::Tx {
                block: BlockRef::default(),
                raw: vec![],
            },
            Response::BlockHeader {
                block: block(123, 7),
                header: std::array::from_fn(|i| i as u8 ^ 0xC3),
            },
            Response::ScripthashesSubscribed {
                changed: 3,
                total: 99_999,
            },
            Response::ScripthashesUnsubscribed {
                changed: 1,
                total: 0,
            },
            Response::Pong(Bytes::from_static(b"\x01\x02pong")),
        ];
        let kinds = [
            kind::HELLO,
            kind::QUERY_UTXOS,
            kind::QUERY_UTXOS_PAGINATED,
            kind::SUBSCRIBE,
            kind::GET_TX,
            kind::PING,
            0x42,
        ];
        for (i, status) in Status::ALL.into_iter().skip(1).enumerate() {
            v.push(Response::Error {
                request_kind: kinds[i % kinds.len()],
                error: ErrorReply {
                    status,
                    detail: i as u32 * 1_000 + 7,
                    message: format!("{status} happened: ✗ #{i}"),
                },
            });
        }
        v
    }

    #[test]
    fn every_response_round_trips_exactly_and_strictly() {
        for resp in samples() {
            if matches!(resp, Response::Pong(_)) {
                // A PONG body is the status then any bytes: prefixes past the status
                // and extensions are pongs too.
                let body = body_of(&resp);
                assert_eq!(Response::decode(0x8B, &body).unwrap(), resp);
                assert!(Response::decode(0x8B, &[]).is_err());
            } else {
                testkit::assert_strict(&resp);
            }
        }
    }

    #[test]
    fn query_utxos_response_golden_bytes() {
        let resp = Response::Utxos(UtxoPage {
            tip: BlockRef {
                height: 0x0001_0203,
                hash: [0x11; 32],
            },
            script: vec![0x51],
            entries: vec![
                UtxoEntry {
                    txid: [0x22; 32],
                    vout: 2,
                    value: 1_000,
                    height: 0x0001_0200,
                    flags: ENTRY_COINBASE,
                    spender: None,
                },
                UtxoEntry {
                    txid: [0x33; 32],
                    vout: 0,
                    value: 0x0102_0304_0506_0708,
                    height: 0,
                    flags: ENTRY_PENDING | ENTRY_SPENT_IN_MEMPOOL,
                    spender: Some([0x44; 32]),
                },
            ],
            more: true,
            cursor: None,
        });
        let mut want = vec![0]; // status OK
        want.extend_from_slice(&[3, 2, 1, 0]); // tip height
        want.extend_from_slice(&[0x11; 32]); // tip hash
        want.extend_from_slice(&[1, 0, 0x51]); // script_len, script
        want.extend_from_slice(&[2, 0, 0, 0]); // count
        want.extend_from_slice(&[0x22; 32]); // entry 0: txid
        want.extend_from_slice(&[2, 0, 0, 0]); //   vout
        want.extend_from_slice(&[0xE8, 0x03, 0, 0, 0, 0, 0, 0]); //   value 1,000
        want.extend_from_slice(&[0, 2, 1, 0]); //   height
        want.push(1); //   flags COINBASE
        want.extend_from_slice(&[0x33; 32]); // entry 1: txid
        want.extend_from_slice(&[0, 0, 0, 0]); //   vout
        want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]); //   value
        want.extend_from_slice(&[0, 0, 0, 0]); //   height (mempool)
        want.push(6); //   flags PENDING | SPENT_IN_MEMPOOL
        want.extend_from_slice(&[0x44; 32]); //   spender
        want.push(1); // more
        assert_eq!(resp.kind(), 0x81);
        assert_eq!(&body_of(&resp)[..], &want[..]);
        assert_eq!(Response::decode(0x81, &want).unwrap(), resp);

        // The paginated answer is the same followed by `u8 cursor_len | cursor`.
        let Response::Utxos(mut page) = resp else {
            unreachable!()
        };
        page.cursor = Some(Cursor(vec![0xC0, 0xC1]));
        want.extend_from_slice(&[2, 0xC0, 0xC1]);
        let paginated = Response::UtxosPage(page);
        assert_eq!(paginated.kind(), 0x82);
        assert_eq!(&body_of(&paginated)[..], &want[..]);
        assert_eq!(Response::decode(0x82, &want).unwrap(), paginated);
    }

    #[test]
    fn error_layout_and_kinds() {
        let resp = Response::Error {
            request_kind: kind::QUERY_UTXOS,
            error: ErrorReply {
                status: Status::LimitExceeded,
                detail: 10_000,
                message: "limit".into(),
            },
        };
        assert_eq!(resp.kind(), 0x81);
        let want = [9, 0x10, 0x27, 0, 0, 5, 0, b'l', b'i', b'm', b'i', b't'];
        assert_eq!(&body_of(&resp)[..], &want);
        // Any response type carries an error, even one with no success layout.
        for k in [0x81, 0x8C, 0x90, 0xDF] {
            let Ok(Response::Error { request_kind, .. }) = Response::decode(k, &want) else {
                panic!("{k:#x}")
            };
            assert_eq!(response_kind(request_kind), k);
        }
        // An unknown request type answered on 0xDF reads back with 0x5F; the real
        // type travels in UNKNOWN_TYPE's detail.
        let unknown = Response::Error {
            request_kind: 0x60,
            error: ErrorReply {
                status: Status::UnknownType,
                detail: 0x60,
                message: String::new(),
            },
        };
        assert_eq!(unknown.kind(), 0xDF);
        let Ok(Response::Error {
            request_kind,
            error,
        }) = Response::decode(0xDF, &body_of(&unknown))
        else {
            panic!()
        };
        assert_eq!((request_kind, error.detail), (0x5F, 0x60));
        // OK is never sent as an error status.
        let ok_error = Response::Error {
            request_kind: kind::PING,
            error: ErrorReply {
                status: Status::Ok,
                detail: 0,
                message: String::new(),
            },
        };
        assert_eq!(body_of(&ok_error)[0], Status::Internal as u8);
    }

    #[test]
    fn types_without_a_response_layout_are_unknown() {
        for k in 0..=255u8 {
            let got = Response::decode(k, &[0]);
            let has_layout = matches!(k, 0x81..=0x8B | 0x90);
            if !has_layout {
                assert_eq!(got, Err(DecodeError::UnknownType(k)), "{k:#x}");
            }
        }
        assert_eq!(Response::decode(0x85, &[0]), Ok(Response::Unsubscribed));
    }

    #[test]
    fn out_of_range_fields_are_malformed() {
        let bad = |kind: u8, body: &[u8]| {
            let got = Response::decode(kind, body);
            assert!(
                matches!(got, Err(DecodeError::Malformed(_))),
                "kind {kind:#x} body {body:02x?} gave {got:?}"
            )
        };
        // Undefined statuses.
        for s in [16u8, 99, 255] {
            bad(0x81, &[s, 0, 0, 0, 0, 0, 0]);
        }
        // Undefined entry flag bits; `more` other than 0/1.
        let utxos = body_of(&Response::Utxos(page(false, None)));
        let first_flags = 1 + 36 + 2 + 5 + 4 + 48;
        assert_eq!(utxos[first_flags], ENTRY_COINBASE);
        for bit in 3..8 {
            let mut b = utxos.to_vec();
            b[first_flags] |= 1 << bit;
            bad(0x81, &b);
        }
        let mut b = utxos.to_vec();
        *b.last_mut().unwrap() = 2;
        bad(0x81, &b);
        // A script with no entries.
        let mut b = vec![0; 37];
        b.extend_from_slice(&[1, 0, 0x51, 0, 0, 0, 0, 0]);
        bad(0x81, &b);
        // Cursor and `more` must agree.
        let mut more_without_cursor = body_of(&Response::UtxosPage(page(true, None))).to_vec();
        bad(0x82, &more_without_cursor);
        more_without_cursor.pop();
        more_without_cursor.extend_from_slice(&[1, 9]);
        assert!(Response::decode(0x82, &more_without_cursor).is_ok());
        let mut cursor_without_more = body_of(&Response::UtxosPage(page(false, None))).to_vec();
        cursor_without_more.pop();
        cursor_without_more.extend_from_slice(&[1, 9]);
        bad(0x82, &cursor_without_more);
        // Undefined sync mode and network; HELLO version 0.
        let mut sync = body_of(&samples()[5]).to_vec();
        assert_eq!(sync[1], SyncMode::Scanning as u8);
        sync[1] = 6; // modes end at 5 (failed)
        bad(0x83, &sync);
        let mut hello = body_of(&samples()[0]).to_vec();
        hello[11] = 5;
        bad(0x90, &hello);
        hello[11] = 0;
        assert!(Response::decode(0x90, &hello).is_ok());
        hello[1] = 0;
        bad(0x90, &hello);
    }

    #[test]
    fn counts_beyond_the_body_fail_before_allocating() {
        let mut short = vec![0];
        short.extend_from_slice(&[0; 36]);
        let mut utxos = short.clone();
        utxos.extend_from_slice(&[0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        utxos.extend_from_slice(&[0; 60]);
        bad_count(0x81, &utxos);
        bad_count(0x82, &utxos);
        let mut txids = short.clone();
        txids.extend_from_slice(&[0xFF; 4]);
        txids.extend_from_slice(&[0; 64]);
        bad_count(0x86, &txids);
        bad_count(0x87, &txids);
        // Entries are at least 49 bytes: one byte short of two entries is refused up
        // front; with that byte and `more`, the body is fine.
        let mut two = short;
        two.extend_from_slice(&[0, 0, 2, 0, 0, 0]);
        two.extend_from_slice(&[0; 2 * UtxoEntry::MIN_LEN - 1]);
        bad_count(0x81, &two);
        two.extend_from_slice(&[0, 0]);
        assert!(Response::decode(0x81, &two).is_ok());

        fn bad_count(kind: u8, body: &[u8]) {
            assert!(matches!(
                Response::decode(kind, body),
                Err(DecodeError::Malformed(m)) if m.contains("needs more than")
            ));
        }
    }

    #[test]
    fn sync_mode_names() {
        for v in 0..=255u8 {
            match SyncMode::from_u8(v) {
                Some(m) => assert_eq!(m as u8, v),
                None => assert!(v > 4),
            }
        }
        assert_eq!(SyncMode::CatchingUp.name(), "catching_up");
    }

    #[test]
    fn fuzz_never_panics_and_accepts_only_canonical_bodies() {
        let mut rng = Rng::new(0x5eed_0002);
        testkit::fuzz(&samples(), kind::RESPONSES, &mut rng);
    }
}
