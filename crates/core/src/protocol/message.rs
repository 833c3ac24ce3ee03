//! The vocabulary of `opnet.sock` messages (docs/PROTOCOL.md §2.1–§7): type bytes,
//! statuses, feature and flag bits, and the small values requests and responses
//! share. The requests themselves are in [`request`], the responses in [`response`];
//! events have their own module (`protocol::event`).
//!
//! Everything here is plain data plus an exact codec: `encode_body` writes the body
//! the document lays out, `decode` accepts exactly those bodies (every enum, flag bit
//! and length checked, nothing left over) and never panics on anything else.

pub mod request;
pub mod response;

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::wire::Reader;

pub use request::{Hello, Request, SubscribeFrom, UtxoQuery};
pub use response::{
    ErrorReply, HelloReply, Response, SyncMode, SyncStatusReply, UtxoEntry, UtxoPage,
};

/// The protocol version this code speaks; HELLO negotiates it (§4).
pub const PROTOCOL_VERSION: u16 = 1;

/// Message type bytes (§2.1), named so that a dispatcher never matches on magic
/// numbers.
pub mod kind {
    /// Opens a connection and negotiates version, frame size and features (§4).
    pub const HELLO: u8 = 0x10;
    /// One page of a scripthash's UTXOs (§6.1).
    pub const QUERY_UTXOS: u8 = 0x01;
    /// A scripthash's UTXOs, page by page with a cursor (§6.2).
    pub const QUERY_UTXOS_PAGINATED: u8 = 0x02;
    /// Where the index and the host are (§6.3).
    pub const GET_SYNC_STATUS: u8 = 0x03;
    /// Starts (or replaces) the event subscription (§7.1).
    pub const SUBSCRIBE: u8 = 0x04;
    /// Drops event kinds from the subscription (§7.2).
    pub const UNSUBSCRIBE: u8 = 0x05;
    /// The txids of one block (§6.4).
    pub const GET_BLOCK_TXIDS: u8 = 0x06;
    /// One raw transaction (§6.5).
    pub const GET_TX: u8 = 0x07;
    /// One block header (§6.6).
    pub const GET_BLOCK_HEADER: u8 = 0x08;
    /// Adds scripthashes to the connection's watch list (§7.3).
    pub const SUBSCRIBE_SCRIPTHASHES: u8 = 0x09;
    /// Removes scripthashes from the watch list (§7.3).
    pub const UNSUBSCRIBE_SCRIPTHASHES: u8 = 0x0A;
    /// Liveness and latency check (§6.7).
    pub const PING: u8 = 0x0B;

    /// A block joined the index (§8.1).
    pub const BLOCK_CONNECTED: u8 = 0xE1;
    /// A block left the index in a reorg (§8.2).
    pub const BLOCK_DISCONNECTED: u8 = 0xE2;
    /// A transaction entered or left the mempool view (§8.3).
    pub const MEMPOOL_TX: u8 = 0xE3;
    /// Outputs of watched scripthashes changed (§8.4).
    pub const SCRIPTHASH_ACTIVITY: u8 = 0xE4;
    /// The index was rebuilt; derived state must be re-read (§8.5).
    pub const INDEX_REBUILT: u8 = 0xE5;
    /// Events were lost; the client must catch up another way (§8.6).
    pub const GAP: u8 = 0xEE;
    /// The server is about to close the connection (§8.7).
    pub const CLOSING: u8 = 0xEF;

    /// Request types (§2.1): what a server may be asked, known or not.
    pub const REQUESTS: std::ops::RangeInclusive<u8> = 0x01..=0x5F;
    /// Response types (§2.1).
    pub const RESPONSES: std::ops::RangeInclusive<u8> = 0x81..=0xDF;
    /// Event types (§2.1).
    pub const EVENTS: std::ops::RangeInclusive<u8> = 0xE0..=0xEF;
}

/// The type byte of the answer to a request of type `request`: `0x80 | request`, or
/// `0xDF` when that is not a response type. Every request gets an answer the client
/// can match by sequence, even one of a type that has no response type of its own
/// (§2.1).
pub const fn response_kind(request: u8) -> u8 {
    match 0x80 | request {
        k @ 0x81..=0xDF => k,
        _ => 0xDF,
    }
}

/// Feature bit 0: the mempool view in queries, MEMPOOL_TX events, GET_TX from the
/// mempool (§4.1). Features are negotiated so a server can refuse what it cannot
/// serve instead of answering wrongly.
pub const FEATURE_MEMPOOL: u64 = 1;
/// Feature bit 1: SUBSCRIBE_SCRIPTHASHES and SCRIPTHASH_ACTIVITY (§4.1).
pub const FEATURE_SCRIPTHASH_SUBSCRIPTIONS: u64 = 2;
/// Feature bit 2: SUBSCRIBE from an event number or a block (§4.1, §7.1).
pub const FEATURE_EVENT_REPLAY: u64 = 4;
/// Feature bit 3: GET_TX without a block hash, which needs a transaction index at the
/// chain source (§4.1).
pub const FEATURE_TX_INDEX: u64 = 8;

/// SUBSCRIBE kind bit 0: BLOCK_CONNECTED, BLOCK_DISCONNECTED, INDEX_REBUILT (§7.1).
pub const KIND_BLOCKS: u8 = 1;
/// SUBSCRIBE kind bit 1: MEMPOOL_TX (§7.1).
pub const KIND_MEMPOOL: u8 = 2;
/// SUBSCRIBE kind bit 2: SCRIPTHASH_ACTIVITY (§7.1).
pub const KIND_SCRIPTHASHES: u8 = 4;
/// Every kind bit this version defines; any other bit makes the request malformed, so
/// a client never believes it subscribed to something the server ignored.
pub const KIND_ALL: u8 = KIND_BLOCKS | KIND_MEMPOOL | KIND_SCRIPTHASHES;

/// QUERY_UTXOS flag bit 0: add the mempool view to the answer (§6.1).
pub const QUERY_INCLUDE_MEMPOOL: u8 = 1;

/// UTXO entry flag: the output of a coinbase (needs 100 confirmations to be spent).
pub const ENTRY_COINBASE: u8 = 1;
/// UTXO entry flag: created by a mempool transaction, not confirmed yet.
pub const ENTRY_PENDING: u8 = 2;
/// UTXO entry flag: a mempool transaction spends it; the entry carries the spender.
pub const ENTRY_SPENT_IN_MEMPOOL: u8 = 4;

/// Most scripthashes one (UN)SUBSCRIBE_SCRIPTHASHES request may carry (§5.1). Above
/// it the request still decodes and the server answers LIMIT_EXCEEDED with this number
/// in `detail`, which tells the client more than a MALFORMED would.
pub const MAX_SCRIPTHASHES_PER_REQUEST: u32 = 10_000;
/// Longest HELLO `client_name` in bytes (§4): it only goes to logs.
pub const MAX_CLIENT_NAME_LEN: usize = 64;
/// Smallest `max_frame` a client may ask for in HELLO (§4).
pub const MIN_MAX_FRAME: u32 = 4096;
/// Longest cursor: its length travels in one byte (§6.2).
pub const MAX_CURSOR_LEN: usize = 255;

/// A response status (§3). Statuses tell the client what to do next (retry, wait, fix
/// the request), so they are a closed set with fixed numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The body does not parse or a field is out of range.
    Malformed = 1,
    /// No such request type; `detail` is the type.
    UnknownType = 2,
    /// A request before HELLO, or a second HELLO.
    HelloRequired = 3,
    /// No common version; `detail` is the server's highest.
    VersionUnsupported = 4,
    /// The request needs a feature HELLO did not grant; `detail` is its bit.
    FeatureNotNegotiated = 5,
    /// No such block or transaction.
    NotFound = 6,
    /// The chain source cannot answer (pruned, no transaction index, I/O).
    Unavailable = 7,
    /// The index is not serving yet (scanning, stale); retry later.
    NotReady = 8,
    /// A count is above the server's limit; `detail` is the limit.
    LimitExceeded = 9,
    /// Too many requests; `detail` is the wait in milliseconds. Not executed.
    RateLimited = 10,
    /// A cursor this server did not produce for this sort order.
    BadCursor = 11,
    /// The server failed (I/O, corruption); the message says what.
    Internal = 12,
    /// The server is stopping.
    ShuttingDown = 13,
    /// CLOSING only: the connection limit is reached; `detail` is the limit.
    TooManyConnections = 14,
    /// CLOSING only: a frame above the negotiated maximum; `detail` is the maximum.
    FrameTooLarge = 15,
}

impl Status {
    /// Every status, in numeric order (index = wire value).
    pub const ALL: [Status; 16] = [
        Status::Ok,
        Status::Malformed,
        Status::UnknownType,
        Status::HelloRequired,
        Status::VersionUnsupported,
        Status::FeatureNotNegotiated,
        Status::NotFound,
        Status::Unavailable,
        Status::NotReady,
        Status::LimitExceeded,
        Status::RateLimited,
        Status::BadCursor,
        Status::Internal,
        Status::ShuttingDown,
        Status::TooManyConnections,
        Status::FrameTooLarge,
    ];

    /// The status a wire byte names; `None` for a number this version does not define,
    /// which a client treats as a failure of the request (§3).
    pub fn from_u8(v: u8) -> Option<Status> {
        Status::ALL.get(usize::from(v)).copied()
    }

    /// The status an error response or CLOSING actually sends for `self`: OK there is
    /// a caller's bug, and sending it would make the client read the rest of the body
    /// as a success, so it goes out as INTERNAL.
    pub(crate) fn as_failure(self) -> Status {
        match self {
            Status::Ok => Status::Internal,
            s => s,
        }
    }

    /// The name the document uses, for logs and error messages people search for.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Malformed => "MALFORMED",
            Status::UnknownType => "UNKNOWN_TYPE",
            Status::HelloRequired => "HELLO_REQUIRED",
            Status::VersionUnsupported => "VERSION_UNSUPPORTED",
            Status::FeatureNotNegotiated => "FEATURE_NOT_NEGOTIATED",
            Status::NotFound => "NOT_FOUND",
            Status::Unavailable => "UNAVAILABLE",
            Status::NotReady => "NOT_READY",
            Status::LimitExceeded => "LIMIT_EXCEEDED",
            Status::RateLimited => "RATE_LIMITED",
            Status::BadCursor => "BAD_CURSOR",
            Status::Internal => "INTERNAL",
            Status::ShuttingDown => "SHUTTING_DOWN",
            Status::TooManyConnections => "TOO_MANY_CONNECTIONS",
            Status::FrameTooLarge => "FRAME_TOO_LARGE",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a body is not a message. The server turns it into an error response with
/// [`DecodeError::status`] and [`DecodeError::detail`]; the connection stays usable
/// because framing already delimited the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// No message of this type exists (for this direction).
    UnknownType(u8),
    /// The body does not have the document's layout or a field is out of range; the
    /// text says which, for logs.
    Malformed(String),
}

impl DecodeError {
    /// The status to answer with (§3).
    pub fn status(&self) -> Status {
        match self {
            DecodeError::UnknownType(_) => Status::UnknownType,
            DecodeError::Malformed(_) => Status::Malformed,
        }
    }

    /// The `detail` to answer with (§3): the type for UNKNOWN_TYPE, else 0.
    pub fn detail(&self) -> u32 {
        match self {
            DecodeError::UnknownType(kind) => u32::from(*kind),
            DecodeError::Malformed(_) => 0,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownType(kind) => write!(f, "unknown message type 0x{kind:02x}"),
            DecodeError::Malformed(why) => write!(f, "malformed body: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Shorthand for the many field checks that fail with a message.
pub(crate) fn malformed<T>(why: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Malformed(why.into()))
}

/// A block by height and hash (§ "Conventions"): both, so a client can tell a block
/// from another at the same height after a reorg. All zeros means "no block".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Height in the chain the block belongs to.
    pub height: u32,
    /// Internal byte order, as in blocks (not the reversed RPC display order).
    pub hash: [u8; 32],
}

impl BlockRef {
    /// Bytes on the wire.
    pub const LEN: usize = 4 + 32;

    /// True for the all-zero value that stands for "no block" (no index yet, a mempool
    /// transaction, an unknown host tip).
    pub fn is_none(&self) -> bool {
        self.height == 0 && self.hash == [0; 32]
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BlockRef, DecodeError> {
        Ok(BlockRef {
            height: r.u32()?,
            hash: r.hash32()?,
        })
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u32_le(self.height);
        out.put_slice(&self.hash);
    }
}

/// Which block GET_BLOCK_TXIDS and GET_BLOCK_HEADER mean (§6.4): by hash for any
/// block the source knows, by height for the active chain only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockSelector {
    /// Any block the chain source has, by hash (internal byte order).
    Hash([u8; 32]),
    /// The active chain's block at this height.
    Height(u32),
}

impl BlockSelector {
    /// Bytes on the wire: `u8 by | hash32 hash | u32 height`.
    pub const LEN: usize = 1 + 32 + 4;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BlockSelector, DecodeError> {
        let by = r.u8()?;
        let hash = r.hash32()?;
        let height = r.u32()?;
        match by {
            0 if height == 0 => Ok(BlockSelector::Hash(hash)),
            0 => malformed("block selector by hash with a non-zero height"),
            1 if hash == [0; 32] => Ok(BlockSelector::Height(height)),
            1 => malformed("block selector by height with a non-zero hash"),
            _ => malformed(format!("block selector `by` is {by}, expected 0 or 1")),
        }
    }

    pub(crate) fn put(&self, out: &mut BytesMut) {
        match *self {
            BlockSelector::Hash(hash) => {
                out.put_u8(0);
                out.put_slice(&hash);
                out.put_u32_le(0);
            }
            BlockSelector::Height(height) => {
                out.put_u8(1);
                out.put_slice(&[0; 32]);
                out.put_u32_le(height);
            }
        }
    }
}

/// The order of a UTXO answer (§6.1). Ties in the non-outpoint orders break by
/// outpoint, so every order is total and a cursor is a position in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Sort {
    /// txid bytes, then vout: the index's own order, the cheap one.
    #[default]
    Outpoint = 0,
    /// Largest first: coin selection.
    ValueDesc = 1,
    /// Oldest first (mempool outputs last).
    HeightAsc = 2,
    /// Newest first (mempool outputs first).
    HeightDesc = 3,
}

impl Sort {
    /// The order a wire byte names; `None` for an undefined one.
    pub fn from_u8(v: u8) -> Option<Sort> {
        match v {
            0 => Some(Sort::Outpoint),
            1 => Some(Sort::ValueDesc),
            2 => Some(Sort::HeightAsc),
            3 => Some(Sort::HeightDesc),
            _ => None,
        }
    }
}

/// Where the next page of a paginated query starts (§6.2). The server writes it and
/// checks it when it comes back; the codec only carries it, so its format can change
/// without touching clients. Empty means "first page" in a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cursor(pub Vec<u8>);

impl Cursor {
    /// True for the empty cursor (first page; no further page).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes on the wire: a one-byte length, then at most [`MAX_CURSOR_LEN`] bytes.
    pub fn wire_len(&self) -> usize {
        1 + self.0.len().min(MAX_CURSOR_LEN)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Cursor, DecodeError> {
        let n = r.u8()?;
        Ok(Cursor(r.bytes(usize::from(n))?.to_vec()))
    }

    /// Writes the cursor. One longer than [`MAX_CURSOR_LEN`] cannot come from a server
    /// and is cut to fit (the server will then answer BAD_CURSOR), so the body stays
    /// consistent.
    pub(crate) fn put(&self, out: &mut BytesMut) {
        let n = self.0.len().min(MAX_CURSOR_LEN);
        out.put_u8(n as u8);
        out.put_slice(&self.0[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_numbers_and_names_match_the_document() {
        for v in 0..=255u8 {
            match Status::from_u8(v) {
                Some(s) => assert_eq!(s as u8, v),
                None => assert!(v >= 16),
            }
        }
        assert_eq!(Status::from_u8(15), Some(Status::FrameTooLarge));
        assert_eq!(
            Status::FeatureNotNegotiated.name(),
            "FEATURE_NOT_NEGOTIATED"
        );
        assert_eq!(
            Status::TooManyConnections.to_string(),
            "TOO_MANY_CONNECTIONS"
        );
        assert_eq!(Status::Ok.to_string(), "OK");
    }

    #[test]
    fn response_kinds_follow_section_2_1() {
        assert_eq!(response_kind(kind::HELLO), 0x90);
        assert_eq!(response_kind(kind::QUERY_UTXOS), 0x81);
        assert_eq!(response_kind(kind::PING), 0x8B);
        assert_eq!(response_kind(0x5F), 0xDF);
        assert_eq!(response_kind(0x00), 0xDF);
        assert_eq!(response_kind(0x60), 0xDF);
        assert_eq!(response_kind(0x7F), 0xDF);
        assert_eq!(response_kind(0xE1), 0xDF);
        assert_eq!(response_kind(0xFF), 0xDF);
        for k in 0..=255u8 {
            assert!(kind::RESPONSES.contains(&response_kind(k)));
        }
    }

    #[test]
    fn decode_errors_map_to_statuses() {
        let e = DecodeError::UnknownType(0x42);
        assert_eq!((e.status(), e.detail()), (Status::UnknownType, 0x42));
        assert_eq!(e.to_string(), "unknown message type 0x42");
        let e = DecodeError::Malformed("x".into());
        assert_eq!((e.status(), e.detail()), (Status::Malformed, 0));
    }

    #[test]
    fn block_selector_layout_and_checks() {
        let mut out = BytesMut::new();
        BlockSelector::Height(0x0102_0304).put(&mut out);
        let mut want = vec![1];
        want.extend_from_slice(&[0; 32]);
        want.extend_from_slice(&[4, 3, 2, 1]);
        assert_eq!(&out[..], &want[..]);
        assert_eq!(out.len(), BlockSelector::LEN);
        // A hash alongside a height selector, a height alongside a hash selector, and
        // an unknown `by` are all refused.
        want[5] = 1;
        assert!(BlockSelector::read(&mut Reader::new(&want)).is_err());
        let mut by_hash = vec![0; BlockSelector::LEN];
        by_hash[34] = 1;
        assert!(BlockSelector::read(&mut Reader::new(&by_hash)).is_err());
        let mut unknown = vec![0; BlockSelector::LEN];
        unknown[0] = 2;
        assert!(BlockSelector::read(&mut Reader::new(&unknown)).is_err());
    }

    #[test]
    fn block_ref_none_is_all_zero() {
        assert!(BlockRef::default().is_none());
        assert!(!BlockRef {
            height: 1,
            hash: [0; 32]
        }
        .is_none());
        let mut h = [0; 32];
        h[31] = 1;
        assert!(!BlockRef { height: 0, hash: h }.is_none());
    }

    #[test]
    fn overlong_cursors_are_cut_to_stay_consistent() {
        let mut out = BytesMut::new();
        let c = Cursor(vec![7; 300]);
        c.put(&mut out);
        assert_eq!(out.len(), c.wire_len());
        assert_eq!(
            Cursor::read(&mut Reader::new(&out)).unwrap(),
            Cursor(vec![7; 255])
        );
    }
}
