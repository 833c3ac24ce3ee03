//! The `opnet.sock` protocol (docs/PROTOCOL.md): framing ([`frame`]), the field
//! encodings bodies are built from ([`wire`]), and the message codec: requests and
//! responses ([`message`]) and events ([`event`]). The server and the client build on
//! it. Compiled without the `engine` feature so the napi addon's client can use it.
//!
//! The layering keeps each job in one place: framing delimits bodies (so a bad body
//! never desynchronises the stream), the codec turns one body into one typed value
//! and back, and nothing here does I/O.

pub mod event;
pub mod frame;
pub mod message;
pub mod wire;

#[cfg(test)]
mod testkit;

use bytes::BytesMut;

pub use event::{
    ActivityCause, ActivityChange, ActivityEntry, Event, GapReason, MempoolChange, RemovalReason,
    ACTIVITY_ENTRY_LEN,
};
pub use frame::{encode, Frame, FrameDecoder, FrameError, DEFAULT_MAX_FRAME};
pub use message::{
    kind, response_kind, BlockRef, BlockSelector, Cursor, DecodeError, ErrorReply, Hello,
    HelloReply, Request, Response, Sort, Status, SubscribeFrom, SyncMode, SyncStatusReply,
    UtxoEntry, UtxoPage, UtxoQuery, ENTRY_COINBASE, ENTRY_PENDING, ENTRY_SPENT_IN_MEMPOOL,
    FEATURE_EVENT_REPLAY, FEATURE_MEMPOOL, FEATURE_SCRIPTHASH_SUBSCRIPTIONS, FEATURE_TX_INDEX,
    KIND_ALL, KIND_BLOCKS, KIND_MEMPOOL, KIND_SCRIPTHASHES, MAX_CLIENT_NAME_LEN, MAX_CURSOR_LEN,
    MAX_SCRIPTHASHES_PER_REQUEST, MIN_MAX_FRAME, PROTOCOL_VERSION, QUERY_INCLUDE_MEMPOOL,
};

/// The frame carrying request `req` under sequence `seq`, which the client picks to
/// match the response (§1).
pub fn request_frame(seq: u32, req: &Request) -> Frame {
    let mut body = BytesMut::new();
    req.encode_body(&mut body);
    Frame {
        kind: req.kind(),
        seq,
        body: body.freeze(),
    }
}

/// The frame carrying `resp` as the answer to the request sent under `seq`.
pub fn response_frame(seq: u32, resp: &Response) -> Frame {
    let mut body = BytesMut::new();
    resp.encode_body(&mut body);
    Frame {
        kind: resp.kind(),
        seq,
        body: body.freeze(),
    }
}

/// The frame carrying `ev`; events use sequence 0 and number themselves (§8).
pub fn event_frame(ev: &Event) -> Frame {
    let mut body = BytesMut::new();
    ev.encode_body(&mut body);
    Frame {
        kind: ev.kind(),
        seq: 0,
        body: body.freeze(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_travel_through_frames() {
        let req = Request::GetBlockHeader(BlockSelector::Height(7));
        let resp = Response::Subscribed {
            event_seq: 9,
            resume_after: 3,
        };
        let ev = Event::IndexRebuilt {
            seq: 10,
            tip: BlockRef {
                height: 5,
                hash: [1; 32],
            },
        };
        let mut wire = BytesMut::new();
        for f in [
            request_frame(41, &req),
            response_frame(41, &resp),
            event_frame(&ev),
        ] {
            encode(&f, DEFAULT_MAX_FRAME, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let f = dec.decode(&mut wire).unwrap().unwrap();
        assert_eq!((f.kind, f.seq), (kind::GET_BLOCK_HEADER, 41));
        assert_eq!(Request::decode(f.kind, &f.body).unwrap(), req);
        let f = dec.decode(&mut wire).unwrap().unwrap();
        assert_eq!((f.kind, f.seq), (0x84, 41));
        assert_eq!(Response::decode(f.kind, &f.body).unwrap(), resp);
        let f = dec.decode(&mut wire).unwrap().unwrap();
        assert_eq!((f.kind, f.seq), (kind::INDEX_REBUILT, 0));
        assert_eq!(Event::decode(f.kind, &f.body).unwrap(), ev);
        assert!(wire.is_empty());
    }
}
