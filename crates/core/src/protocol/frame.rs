//! Framing of `opnet.sock` (docs/PROTOCOL.md §2): `length (u32 LE) | type (u8) |
//! sequence (u32 LE) | body`, where `length` counts everything after itself.
//!
//! The decoder is the first thing hostile bytes meet, so it never panics, checks the
//! declared length against the negotiated maximum *before* reserving memory for it,
//! and reserves at most what the current frame still needs.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of `type` and `sequence`: the smallest legal `length`.
pub const MIN_LENGTH: u32 = 5;
/// Bytes before the body: length, type, sequence.
pub const HEADER_LEN: usize = 4 + 1 + 4;
/// Largest frame either side accepts before HELLO lowers it (16 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 16 << 20;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Message type: request, response (`0x80 | request`) or event.
    pub kind: u8,
    /// Request sequence chosen by the client and echoed in its response; 0 on events.
    pub seq: u32,
    pub body: Bytes,
}

/// Why bytes are not a frame. Both end the connection: a peer that sends either
/// cannot be resynchronised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// `length` is below [`MIN_LENGTH`].
    TooShort { length: u32 },
    /// `length` is above the maximum frame size in force.
    TooLarge { length: u32, max: u32 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooShort { length } => {
                write!(f, "frame length {length} is shorter than a frame header")
            }
            FrameError::TooLarge { length, max } => {
                write!(
                    f,
                    "frame length {length} exceeds the maximum of {max} bytes"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Incremental decoder: feed it whatever the socket returned.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame: u32,
}

impl FrameDecoder {
    /// A decoder accepting frames whose `length` is at most `max_frame`.
    pub fn new(max_frame: u32) -> FrameDecoder {
        FrameDecoder {
            max_frame: max_frame.max(MIN_LENGTH),
        }
    }

    /// The maximum in force.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Lowers (or raises) the maximum, e.g. after HELLO.
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame.max(MIN_LENGTH);
    }

    /// Takes one complete frame off the front of `buf`. `Ok(None)` means more bytes
    /// are needed; `buf` then has room reserved for the rest of this frame only.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if length < MIN_LENGTH {
            return Err(FrameError::TooShort { length });
        }
        if length > self.max_frame {
            return Err(FrameError::TooLarge {
                length,
                max: self.max_frame,
            });
        }
        let total = 4 + length as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        frame.advance(4);
        let kind = frame.get_u8();
        let seq = frame.get_u32_le();
        Ok(Some(Frame {
            kind,
            seq,
            body: frame.freeze(),
        }))
    }
}

/// Appends `frame` to `out`. Fails if the frame would exceed `max_frame`, so a
/// sender never emits what the peer must refuse.
pub fn encode(frame: &Frame, max_frame: u32, out: &mut BytesMut) -> Result<(), FrameError> {
    let length = u32::try_from(frame.body.len())
        .ok()
        .and_then(|b| b.checked_add(MIN_LENGTH))
        .unwrap_or(u32::MAX);
    if length > max_frame {
        return Err(FrameError::TooLarge {
            length,
            max: max_frame,
        });
    }
    out.reserve(HEADER_LEN + frame.body.len());
    out.put_u32_le(length);
    out.put_u8(frame.kind);
    out.put_u32_le(frame.seq);
    out.put_slice(&frame.body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, seq: u32, body: &[u8]) -> Frame {
        Frame {
            kind,
            seq,
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn layout_is_the_documented_one() {
        let mut out = BytesMut::new();
        encode(
            &frame(0x04, 0x0102_0304, b"ab"),
            DEFAULT_MAX_FRAME,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &[7, 0, 0, 0, 0x04, 4, 3, 2, 1, b'a', b'b']);
    }

    #[test]
    fn frames_split_at_every_byte_reassemble() {
        let frames = [
            frame(1, 1, b""),
            frame(0x82, 7, &[9; 300]),
            frame(0xE1, 0, b"x"),
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            encode(f, DEFAULT_MAX_FRAME, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_lengths_are_refused_before_any_allocation() {
        let mut dec = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        let cap = buf.capacity();
        assert_eq!(
            dec.decode(&mut buf),
            Err(FrameError::TooLarge {
                length: u32::MAX,
                max: 1024
            })
        );
        assert_eq!(buf.capacity(), cap, "nothing reserved for a refused frame");
        let mut buf = BytesMut::from(&4u32.to_le_bytes()[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(FrameError::TooShort { length: 4 })
        );
        // A frame at the limit passes; one byte more is refused by the encoder too.
        let mut out = BytesMut::new();
        encode(&frame(1, 0, &[0; 1019]), 1024, &mut out).unwrap();
        assert!(dec.decode(&mut out).unwrap().is_some());
        assert_eq!(
            encode(&frame(1, 0, &[0; 1020]), 1024, &mut BytesMut::new()),
            Err(FrameError::TooLarge {
                length: 1025,
                max: 1024
            })
        );
    }

    #[test]
    fn a_partial_frame_reserves_only_what_it_still_needs() {
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::with_capacity(16);
        buf.put_u32_le(1000);
        buf.put_u8(1);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(buf.capacity() >= 1004 && buf.capacity() < 4096);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut dec = FrameDecoder::new(4096);
        for _ in 0..20_000 {
            let mut buf = BytesMut::new();
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.put_u8(x as u8);
            }
            while let Ok(Some(f)) = dec.decode(&mut buf) {
                assert!(f.body.len() + 5 <= 4096);
            }
        }
    }
}
