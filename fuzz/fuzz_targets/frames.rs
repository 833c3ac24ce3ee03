//! Arbitrary bytes as a stream of frames: every frame the decoder accepts is
//! decoded as a request, a response or an event, and whatever decodes re-encodes
//! to exactly the bytes it came from (bodies are canonical). Nothing may panic or
//! allocate beyond the input.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use opnet::protocol::{self, Event, FrameDecoder, Request, Response};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(1 << 20);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        if let Ok(req) = Request::decode(frame.kind, &frame.body) {
            assert_eq!(protocol::request_frame(frame.seq, &req).body, frame.body);
        }
        if let Ok(resp) = Response::decode(frame.kind, &frame.body) {
            assert_eq!(protocol::response_frame(frame.seq, &resp).body, frame.body);
        }
        if let Ok(ev) = Event::decode(frame.kind, &frame.body) {
            assert_eq!(protocol::event_frame(&ev).body, frame.body);
        }
    }
});
