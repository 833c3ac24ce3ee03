//! Requests, client → server (docs/PROTOCOL.md §4, §6, §7): their types and their
//! exact body layouts.
//!
//! Decoding checks what the document defines (layout, enums, flag bits, reserved
//! fields being zero) so the server can answer MALFORMED at once; it leaves to the
//! server what depends on its state or configuration (negotiated features, limits such
//! as [`MAX_SCRIPTHASHES_PER_REQUEST`](super::MAX_SCRIPTHASHES_PER_REQUEST), a `seq`
//! above the latest event).

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    kind, malformed, BlockRef, BlockSelector, Cursor, DecodeError, Sort, KIND_ALL,
    MAX_CLIENT_NAME_LEN, MIN_MAX_FRAME, QUERY_INCLUDE_MEMPOOL,
};
use crate::protocol::frame::DEFAULT_MAX_FRAME;
use crate::protocol::wire::{self, Reader};

/// The HELLO request (§4): what the client speaks and accepts, so both sides settle
/// on one version, one frame size and a feature set before anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the client speaks (≥ 1).
    pub min_version: u16,
    /// Highest protocol version the client speaks (≥ `min_version`).
    pub max_version: u16,
    /// Largest frame the client accepts, 4,096 … 16 MiB.
    pub max_frame: u32,
    /// Feature bits wanted (§4.1); unknown bits are ignored by the server.
    pub features: u64,
    /// For the server's logs, at most [`MAX_CLIENT_NAME_LEN`] bytes.
    pub client_name: String,
}

impl Hello {
    fn read(r: &mut Reader<'_>) -> Result<Hello, DecodeError> {
        let hello = Hello {
            min_version: r.u16()?,
            max_version: r.u16()?,
            max_frame: r.u32()?,
            features: r.u64()?,
            client_name: r.str16("client_name")?,
        };
        if hello.min_version == 0 {
            return malformed("HELLO min_version is 0");
        }
        if hello.min_version > hello.max_version {
            return malformed(format!(
                "HELLO min_version {} is above max_version {}",
                hello.min_version, hello.max_version
            ));
        }
        if !(MIN_MAX_FRAME..=DEFAULT_MAX_FRAME).contains(&hello.max_frame) {
            return malformed(format!(
                "HELLO max_frame {} is outside {MIN_MAX_FRAME}..={DEFAULT_MAX_FRAME}",
                hello.max_frame
            ));
        }
        if hello.client_name.len() > MAX_CLIENT_NAME_LEN {
            return malformed(format!(
                "HELLO client_name is {} bytes, at most {MAX_CLIENT_NAME_LEN} allowed",
                hello.client_name.len()
            ));
        }
        Ok(hello)
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_u16_le(self.min_version);
        out.put_u16_le(self.max_version);
        out.put_u32_le(self.max_frame);
        out.put_u64_le(self.features);
        wire::put_str16(out, &self.client_name);
    }
}

/// The filters and order of a UTXO query (§6.1), shared by QUERY_UTXOS and
/// QUERY_UTXOS_PAGINATED. `Default` is "everything, outpoint order, confirmed only".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UtxoQuery {
    /// SHA-256 of the scriptPubKey, not reversed.
    pub scripthash: [u8; 32],
    /// Most entries to return; 0 means the server's `max_results`.
    pub limit: u32,
    /// Only outputs worth at least this many sats.
    pub min_value: u64,
    /// Only outputs confirmed at or below this height; `None` is 0xFFFFFFFF on the
    /// wire (so `Some(u32::MAX)` reads back as `None`, which means the same).
    pub max_height: Option<u32>,
    /// Only outputs with at least this many confirmations (0 = any).
    pub min_confirmations: u32,
    /// Order of the answer (and of the cursor's positions).
    pub sort: Sort,
    /// Add the mempool view (needs the MEMPOOL feature).
    pub include_mempool: bool,
}

impl UtxoQuery {
    /// Bytes on the wire.
    pub const LEN: usize = 32 + 4 + 8 + 4 + 4 + 1 + 1;

    fn read(r: &mut Reader<'_>) -> Result<UtxoQuery, DecodeError> {
        let scripthash = r.hash32()?;
        let limit = r.u32()?;
        let min_value = r.u64()?;
        let max_height = r.u32()?;
        let min_confirmations = r.u32()?;
        let sort = r.u8()?;
        let Some(sort) = Sort::from_u8(sort) else {
            return malformed(format!("sort {sort} is not defined"));
        };
        let flags = r.u8()?;
        if flags & !QUERY_INCLUDE_MEMPOOL != 0 {
            return malformed(format!("query flags 0x{flags:02x} set undefined bits"));
        }
        Ok(UtxoQuery {
            scripthash,
            limit,
            min_value,
            max_height: (max_height != u32::MAX).then_some(max_height),
            min_confirmations,
            sort,
            include_mempool: flags & QUERY_INCLUDE_MEMPOOL != 0,
        })
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_slice(&self.scripthash);
        out.put_u32_le(self.limit);
        out.put_u64_le(self.min_value);
        out.put_u32_le(self.max_height.unwrap_or(u32::MAX));
        out.put_u32_le(self.min_confirmations);
        out.put_u8(self.sort as u8);
        out.put_u8(if self.include_mempool {
            QUERY_INCLUDE_MEMPOOL
        } else {
            0
        });
    }
}

/// Where a subscription starts (§7.1). Resuming is what lets a client survive a
/// restart or a GAP without missing or repeating an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscribeFrom {
    /// Live events only.
    Now,
    /// After the event with this number (needs EVENT_REPLAY).
    AfterSeq(u64),
    /// After the BLOCK_CONNECTED of this block, unwinding it first if it was since
    /// disconnected (needs EVENT_REPLAY).
    AfterBlock(BlockRef),
}

impl SubscribeFrom {
    /// Reads `u8 from | u64 seq | BlockRef block`; the fields `from` does not use must
    /// be zero, and a block to resume after cannot be "none".
    fn read(r: &mut Reader<'_>) -> Result<SubscribeFrom, DecodeError> {
        let from = r.u8()?;
        let seq = r.u64()?;
        let block = BlockRef::read(r)?;
        match from {
            0 if seq == 0 && block.is_none() => Ok(SubscribeFrom::Now),
            0 => malformed("SUBSCRIBE from now with a non-zero seq or block"),
            1 if block.is_none() => Ok(SubscribeFrom::AfterSeq(seq)),
            1 => malformed("SUBSCRIBE after a seq with a non-zero block"),
            2 if seq == 0 && !block.is_none() => Ok(SubscribeFrom::AfterBlock(block)),
            2 if seq != 0 => malformed("SUBSCRIBE after a block with a non-zero seq"),
            2 => malformed("SUBSCRIBE after a block with an all-zero block"),
            _ => malformed(format!("SUBSCRIBE from {from} is not defined")),
        }
    }

    fn put(&self, out: &mut BytesMut) {
        let (from, seq, block) = match *self {
            SubscribeFrom::Now => (0, 0, BlockRef::default()),
            SubscribeFrom::AfterSeq(seq) => (1, seq, BlockRef::default()),
            SubscribeFrom::AfterBlock(block) => (2, 0, block),
        };
        out.put_u8(from);
        out.put_u64_le(seq);
        block.put(out);
    }
}

/// A request, client → server. One enum so that a server dispatches on it and a
/// client builds it without touching bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// §4; must be the first request on a connection.
    Hello(Hello),
    /// §6.1.
    QueryUtxos(UtxoQuery),
    /// §6.2; an empty cursor asks for the first page.
    QueryUtxosPaginated(UtxoQuery, Cursor),
    /// §6.3.
    GetSyncStatus,
    /// §7.1; `kinds` is a non-empty set of `KIND_*` bits.
    Subscribe { kinds: u8, from: SubscribeFrom },
    /// §7.2; `kinds` is a non-empty set of `KIND_*` bits.
    Unsubscribe { kinds: u8 },
    /// §6.4.
    GetBlockTxids(BlockSelector),
    /// §6.5; without a block hash the server needs a transaction index.
    GetTx {
        txid: [u8; 32],
        block_hash: Option<[u8; 32]>,
    },
    /// §6.6.
    GetBlockHeader(BlockSelector),
    /// §7.3.
    SubscribeScripthashes(Vec<[u8; 32]>),
    /// §7.3.
    UnsubscribeScripthashes(Vec<[u8; 32]>),
    /// §6.7; any payload, echoed back.
    Ping(Bytes),
}

impl Request {
    /// The message type byte of this request.
    pub fn kind(&self) -> u8 {
        match self {
            Request::Hello(_) => kind::HELLO,
            Request::QueryUtxos(_) => kind::QUERY_UTXOS,
            Request::QueryUtxosPaginated(..) => kind::QUERY_UTXOS_PAGINATED,
            Request::GetSyncStatus => kind::GET_SYNC_STATUS,
            Request::Subscribe { .. } => kind::SUBSCRIBE,
            Request::Unsubscribe { .. } => kind::UNSUBSCRIBE,
            Request::GetBlockTxids(_) => kind::GET_BLOCK_TXIDS,
            Request::GetTx { .. } => kind::GET_TX,
            Request::GetBlockHeader(_) => kind::GET_BLOCK_HEADER,
            Request::SubscribeScripthashes(_) => kind::SUBSCRIBE_SCRIPTHASHES,
            Request::UnsubscribeScripthashes(_) => kind::UNSUBSCRIBE_SCRIPTHASHES,
            Request::Ping(_) => kind::PING,
        }
    }

    /// Bytes [`Request::encode_body`] writes, so it reserves once.
    pub fn body_len(&self) -> usize {
        match self {
            Request::Hello(h) => 2 + 2 + 4 + 8 + wire::str16_len(&h.client_name),
            Request::QueryUtxos(_) => UtxoQuery::LEN,
            Request::QueryUtxosPaginated(_, cursor) => UtxoQuery::LEN + cursor.wire_len(),
            Request::GetSyncStatus => 0,
            Request::Subscribe { .. } => 1 + 1 + 8 + BlockRef::LEN,
            Request::Unsubscribe { .. } => 1,
            Request::GetBlockTxids(_) | Request::GetBlockHeader(_) => BlockSelector::LEN,
            Request::GetTx { .. } => 64,
            Request::SubscribeScripthashes(list) | Request::UnsubscribeScripthashes(list) => {
                4 + 32 * (wire::count32(list.len()) as usize)
            }
            Request::Ping(payload) => payload.len(),
        }
    }

    /// Appends the body (§4–§7 layouts) to `out`.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.reserve(self.body_len());
        match self {
            Request::Hello(hello) => hello.put(out),
            Request::QueryUtxos(query) => query.put(out),
            Request::QueryUtxosPaginated(query, cursor) => {
                query.put(out);
                cursor.put(out);
            }
            Request::GetSyncStatus => {}
            Request::Subscribe { kinds, from } => {
                out.put_u8(*kinds);
                from.put(out);
            }
            Request::Unsubscribe { kinds } => out.put_u8(*kinds),
            Request::GetBlockTxids(sel) | Request::GetBlockHeader(sel) => sel.put(out),
            Request::GetTx { txid, block_hash } => {
                out.put_slice(txid);
                out.put_slice(&block_hash.unwrap_or_default());
            }
            Request::SubscribeScripthashes(list) | Request::UnsubscribeScripthashes(list) => {
                let n = wire::count32(list.len());
                out.put_u32_le(n);
                for h in list.iter().take(n as usize) {
                    out.put_slice(h);
                }
            }
            Request::Ping(payload) => out.put_slice(payload),
        }
    }

    /// Reads a request of type `kind`. A type that is not a request this version
    /// defines is [`DecodeError::UnknownType`]; anything else wrong with the body is
    /// [`DecodeError::Malformed`].
    pub fn decode(kind: u8, body: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(body);
        let req = match kind {
            kind::HELLO => Request::Hello(Hello::read(&mut r)?),
            kind::QUERY_UTXOS => Request::QueryUtxos(UtxoQuery::read(&mut r)?),
            kind::QUERY_UTXOS_PAGINATED => {
                let query = UtxoQuery::read(&mut r)?;
                Request::QueryUtxosPaginated(query, Cursor::read(&mut r)?)
            }
            kind::GET_SYNC_STATUS => Request::GetSyncStatus,
            kind::SUBSCRIBE => Request::Subscribe {
                kinds: read_kinds(&mut r, "SUBSCRIBE")?,
                from: SubscribeFrom::read(&mut r)?,
            },
            kind::UNSUBSCRIBE => Request::Unsubscribe {
                kinds: read_kinds(&mut r, "UNSUBSCRIBE")?,
            },
            kind::GET_BLOCK_TXIDS => Request::GetBlockTxids(BlockSelector::read(&mut r)?),
            kind::GET_TX => {
                let txid = r.hash32()?;
                let block_hash = r.hash32()?;
                Request::GetTx {
                    txid,
                    block_hash: (block_hash != [0; 32]).then_some(block_hash),
                }
            }
            kind::GET_BLOCK_HEADER => Request::GetBlockHeader(BlockSelector::read(&mut r)?),
            kind::SUBSCRIBE_SCRIPTHASHES => {
                Request::SubscribeScripthashes(read_scripthashes(&mut r)?)
            }
            kind::UNSUBSCRIBE_SCRIPTHASHES => {
                Request::UnsubscribeScripthashes(read_scripthashes(&mut r)?)
            }
            kind::PING => Request::Ping(Bytes::copy_from_slice(r.rest())),
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(req)
    }
}

/// Reads a SUBSCRIBE/UNSUBSCRIBE kinds byte: at least one kind, none undefined, so
/// the server never silently ignores part of what was asked.
fn read_kinds(r: &mut Reader<'_>, what: &str) -> Result<u8, DecodeError> {
    let kinds = r.u8()?;
    if kinds == 0 {
        return malformed(format!("{what} with no kinds"));
    }
    if kinds & !KIND_ALL != 0 {
        return malformed(format!("{what} kinds 0x{kinds:02x} set undefined bits"));
    }
    Ok(kinds)
}

/// Reads `u32 count | count × hash32`. The count is checked against the body before
/// the list is reserved; the per-request limit is the server's to enforce.
fn read_scripthashes(r: &mut Reader<'_>) -> Result<Vec<[u8; 32]>, DecodeError> {
    let n = r.count("scripthash count", 32)?;
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        list.push(r.hash32()?);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::{
        FEATURE_EVENT_REPLAY, FEATURE_MEMPOOL, KIND_BLOCKS, KIND_MEMPOOL, KIND_SCRIPTHASHES,
        MAX_SCRIPTHASHES_PER_REQUEST, PROTOCOL_VERSION,
    };
    use crate::protocol::testkit::{self, body_of, Rng};

    fn h(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
    }

    fn query() -> UtxoQuery {
        UtxoQuery {
            scripthash: h(1),
            limit: 500,
            min_value: 546,
            max_height: Some(840_000),
            min_confirmations: 6,
            sort: Sort::ValueDesc,
            include_mempool: true,
        }
    }

    /// One of every request, with non-trivial values.
    fn samples() -> Vec<Request> {
        vec![
            Request::Hello(Hello {
                min_version: 1,
                max_version: 3,
                max_frame: 1 << 20,
                features: FEATURE_MEMPOOL | FEATURE_EVENT_REPLAY | (1 << 40),
                client_name: "opnet-cli/0.1 ✓".into(),
            }),
            Request::QueryUtxos(query()),
            Request::QueryUtxos(UtxoQuery::default()),
            Request::QueryUtxosPaginated(
                UtxoQuery {
                    sort: Sort::HeightDesc,
                    max_height: None,
                    include_mempool: false,
                    ..query()
                },
                Cursor(vec![3, 0, 0, 1, 2, 9, 9, 9]),
            ),
            Request::QueryUtxosPaginated(query(), Cursor::default()),
            Request::GetSyncStatus,
            Request::Subscribe {
                kinds: KIND_BLOCKS | KIND_SCRIPTHASHES,
                from: SubscribeFrom::Now,
            },
            Request::Subscribe {
                kinds: KIND_MEMPOOL,
                from: SubscribeFrom::AfterSeq(0x0102_0304_0506_0708),
            },
            Request::Subscribe {
                kinds: KIND_ALL,
                from: SubscribeFrom::AfterBlock(BlockRef {
                    height: 840_000,
                    hash: h(2),
                }),
            },
            Request::Unsubscribe {
                kinds: KIND_MEMPOOL | KIND_BLOCKS,
            },
            Request::GetBlockTxids(BlockSelector::Hash(h(3))),
            Request::GetBlockTxids(BlockSelector::Height(123_456)),
            Request::GetTx {
                txid: h(4),
                block_hash: Some(h(5)),
            },
            Request::GetTx {
                txid: h(6),
                block_hash: None,
            },
            Request::GetBlockHeader(BlockSelector::Height(0)),
            Request::GetBlockHeader(BlockSelector::Hash(h(7))),
            Request::SubscribeScripthashes(vec![h(8), h(9), h(10)]),
            Request::SubscribeScripthashes(vec![]),
            Request::UnsubscribeScripthashes(vec![h(11)]),
            Request::Ping(Bytes::from_static(b"\x00latency probe\xff")),
            Request::Ping(Bytes::new()),
        ]
    }

    #[test]
    fn every_request_round_trips_exactly_and_strictly() {
        for req in samples() {
            if matches!(req, Request::Ping(_)) {
                // A PING body is any bytes, so its prefixes and extensions are pings too.
                let body = body_of(&req);
                assert_eq!(Request::decode(kind::PING, &body).unwrap(), req);
            } else {
                testkit::assert_strict(&req);
            }
        }
    }

    #[test]
    fn hello_golden_bytes() {
        let req = Request::Hello(Hello {
            min_version: 1,
            max_version: PROTOCOL_VERSION,
            max_frame: 65_536,
            features: FEATURE_MEMPOOL | FEATURE_EVENT_REPLAY,
            client_name: "cli".into(),
        });
        let want: &[u8] = &[
            0x01, 0x00, // min_version
            0x01, 0x00, // max_version
            0x00, 0x00, 0x01, 0x00, // max_frame 65,536
            0x05, 0, 0, 0, 0, 0, 0, 0, // features MEMPOOL | EVENT_REPLAY
            0x03, 0x00, b'c', b'l', b'i', // client_name
        ];
        assert_eq!(req.kind(), 0x10);
        assert_eq!(&body_of(&req)[..], want);
        assert_eq!(Request::decode(0x10, want).unwrap(), req);
    }

    #[test]
    fn query_utxos_golden_bytes() {
        let req = Request::QueryUtxos(UtxoQuery {
            scripthash: [0xAB; 32],
            limit: 100,
            min_value: 0x0102_0304_0506_0708,
            max_height: None,
            min_confirmations: 3,
            sort: Sort::HeightAsc,
            include_mempool: true,
        });
        let mut want = vec![0xAB; 32];
        want.extend_from_slice(&[100, 0, 0, 0]); // limit
        want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]); // min_value
        want.extend_from_slice(&[0xFF; 4]); // max_height: any
        want.extend_from_slice(&[3, 0, 0, 0]); // min_confirmations
        want.extend_from_slice(&[2, 1]); // sort height ascending, INCLUDE_MEMPOOL
        assert_eq!(req.kind(), 0x01);
        assert_eq!(&body_of(&req)[..], &want[..]);
        assert_eq!(Request::decode(0x01, &want).unwrap(), req);
    }

    #[test]
    fn out_of_range_fields_are_malformed() {
        let bad = |kind: u8, body: &[u8]| {
            assert!(
                matches!(Request::decode(kind, body), Err(DecodeError::Malformed(_))),
                "kind {kind:#x} body {body:02x?} should be malformed"
            )
        };
        let hello = |min: u16, max: u16, frame: u32, name: &str| {
            body_of(&Request::Hello(Hello {
                min_version: min,
                max_version: max,
                max_frame: frame,
                features: 0,
                client_name: name.into(),
            }))
        };
        assert!(Request::decode(kind::HELLO, &hello(1, 1, 4096, &"n".repeat(64))).is_ok());
        assert!(Request::decode(kind::HELLO, &hello(1, 1, 16 << 20, "")).is_ok());
        bad(kind::HELLO, &hello(0, 1, 4096, "x"));
        bad(kind::HELLO, &hello(2, 1, 4096, "x"));
        bad(kind::HELLO, &hello(1, 1, 4095, "x"));
        bad(kind::HELLO, &hello(1, 1, (16 << 20) + 1, "x"));
        bad(kind::HELLO, &hello(1, 1, 4096, &"n".repeat(65)));
        let mut not_utf8 = hello(1, 1, 4096, "ab");
        not_utf8[18] = 0xFF;
        bad(kind::HELLO, &not_utf8);

        let q = body_of(&Request::QueryUtxos(query()));
        let mut bad_sort = q.to_vec();
        bad_sort[52] = 4;
        bad(kind::QUERY_UTXOS, &bad_sort);
        for bit in 1..8 {
            let mut bad_flags = q.to_vec();
            bad_flags[53] |= 1 << bit;
            bad(kind::QUERY_UTXOS, &bad_flags);
        }
        let mut long_cursor = q.to_vec();
        long_cursor.extend_from_slice(&[5, 1, 2, 3, 4]);
        bad(kind::QUERY_UTXOS_PAGINATED, &long_cursor);

        let sub = |kinds: u8, from: u8, seq: u64, height: u32, hash: u8| {
            let mut b = vec![kinds, from];
            b.extend_from_slice(&seq.to_le_bytes());
            b.extend_from_slice(&height.to_le_bytes());
            b.extend_from_slice(&[hash; 32]);
            b
        };
        assert!(Request::decode(kind::SUBSCRIBE, &sub(7, 0, 0, 0, 0)).is_ok());
        assert!(Request::decode(kind::SUBSCRIBE, &sub(1, 1, 0, 0, 0)).is_ok());
        assert!(Request::decode(kind::SUBSCRIBE, &sub(1, 2, 0, 0, 1)).is_ok());
        bad(kind::SUBSCRIBE, &sub(0, 0, 0, 0, 0)); // no kinds
        bad(kind::SUBSCRIBE, &sub(8, 0, 0, 0, 0)); // undefined kind
        bad(kind::SUBSCRIBE, &sub(0x81, 0, 0, 0, 0));
        bad(kind::SUBSCRIBE, &sub(1, 0, 5, 0, 0)); // from now with a seq
        bad(kind::SUBSCRIBE, &sub(1, 0, 0, 1, 0)); // from now with a block
        bad(kind::SUBSCRIBE, &sub(1, 1, 5, 0, 9)); // after seq with a block
        bad(kind::SUBSCRIBE, &sub(1, 2, 5, 1, 9)); // after block with a seq
        bad(kind::SUBSCRIBE, &sub(1, 2, 0, 0, 0)); // after no block
        bad(kind::SUBSCRIBE, &sub(1, 3, 0, 0, 0)); // undefined from
        bad(kind::UNSUBSCRIBE, &[0]);
        bad(kind::UNSUBSCRIBE, &[0x08]);
        assert!(Request::decode(kind::UNSUBSCRIBE, &[4]).is_ok());
    }

    #[test]
    fn request_types_outside_the_table_are_unknown() {
        for k in 0..=255u8 {
            let known = matches!(k, 0x01..=0x0B | 0x10);
            match Request::decode(k, &[]) {
                Err(DecodeError::UnknownType(t)) => assert!(!known && t == k),
                _ => assert!(known, "{k:#x}"),
            }
        }
    }

    #[test]
    fn scripthash_counts_are_checked_against_the_body_not_the_limit() {
        // Over the per-request limit still decodes: the server answers LIMIT_EXCEEDED.
        let n = MAX_SCRIPTHASHES_PER_REQUEST as usize + 1;
        let req = Request::SubscribeScripthashes(vec![[7; 32]; n]);
        let body = body_of(&req);
        assert_eq!(body.len(), 4 + 32 * n);
        assert_eq!(
            Request::decode(kind::SUBSCRIBE_SCRIPTHASHES, &body).unwrap(),
            req
        );
        // A count claiming more than the body holds fails before any list is reserved.
        for count in [u32::MAX, 0x1000_0000, 3] {
            let mut b = count.to_le_bytes().to_vec();
            b.extend_from_slice(&[1; 64]);
            for k in [kind::SUBSCRIBE_SCRIPTHASHES, kind::UNSUBSCRIBE_SCRIPTHASHES] {
                assert!(matches!(
                    Request::decode(k, &b),
                    Err(DecodeError::Malformed(_))
                ));
            }
        }
        // ... and one claiming fewer leaves bytes over.
        let mut b = 1u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[1; 64]);
        assert!(Request::decode(kind::SUBSCRIBE_SCRIPTHASHES, &b).is_err());
    }

    #[test]
    fn fuzz_never_panics_and_accepts_only_canonical_bodies() {
        let mut rng = Rng::new(0x5eed_0001);
        testkit::fuzz(&samples(), kind::REQUESTS, &mut rng);
    }
}
