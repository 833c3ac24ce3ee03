//! Test helpers shared by the codec's modules: one strictness check and one fuzz loop
//! applied to requests, responses and events alike, so every message type is held to
//! the same standard.

use std::fmt::Debug;
use std::ops::RangeInclusive;

use bytes::BytesMut;

use super::event::Event;
use super::message::{DecodeError, Request, Response};

/// A message type with a body codec.
pub(crate) trait Codec: Sized + PartialEq + Debug {
    fn kind(&self) -> u8;
    fn body_len(&self) -> usize;
    fn encode_body(&self, out: &mut BytesMut);
    fn decode(kind: u8, body: &[u8]) -> Result<Self, DecodeError>;
}

macro_rules! codec {
    ($t:ty) => {
        impl Codec for $t {
            fn kind(&self) -> u8 {
                <$t>::kind(self)
            }
            fn body_len(&self) -> usize {
                <$t>::body_len(self)
            }
            fn encode_body(&self, out: &mut BytesMut) {
                <$t>::encode_body(self, out)
            }
            fn decode(kind: u8, body: &[u8]) -> Result<Self, DecodeError> {
                <$t>::decode(kind, body)
            }
        }
    };
}
codec!(Request);
codec!(Response);
codec!(Event);

/// The encoded body of `msg`.
pub(crate) fn body_of<T: Codec>(msg: &T) -> BytesMut {
    let mut out = BytesMut::new();
    msg.encode_body(&mut out);
    out
}

/// `msg` survives encoding exactly, its size is predicted exactly, and its body is
/// strict: every strict prefix and any extra trailing byte are refused as malformed.
pub(crate) fn assert_strict<T: Codec>(msg: &T) {
    let body = body_of(msg);
    assert_eq!(body.len(), msg.body_len(), "body_len of {msg:?}");
    assert_eq!(T::decode(msg.kind(), &body).as_ref(), Ok(msg));
    for end in 0..body.len() {
        let got = T::decode(msg.kind(), &body[..end]);
        assert!(
            matches!(got, Err(DecodeError::Malformed(_))),
            "prefix of {end} bytes of {msg:?} decoded as {got:?}"
        );
    }
    for extra in [0u8, 1, 0xFF] {
        let mut longer = body.to_vec();
        longer.push(extra);
        let got = T::decode(msg.kind(), &longer);
        assert!(
            matches!(got, Err(DecodeError::Malformed(_))),
            "{msg:?} with a trailing byte decoded as {got:?}"
        );
    }
}

/// A seeded xorshift64: the same inputs on every run, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Throws random and mutated bodies at `T::decode`: it must never panic, and whatever
/// it accepts must encode back to the very same kind and bytes (one body, one meaning).
pub(crate) fn fuzz<T: Codec>(seeds: &[T], kinds: RangeInclusive<u8>, rng: &mut Rng) {
    let seed_bodies: Vec<(u8, Vec<u8>)> = seeds
        .iter()
        .map(|m| (m.kind(), body_of(m).to_vec()))
        .collect();
    let span = usize::from(kinds.end() - kinds.start()) + 1;
    let mut accepted = 0usize;
    for _ in 0..30_000 {
        let (kind, body) = match rng.below(4) {
            // Pure noise, any type byte.
            0 => {
                let len = rng.below(96);
                (
                    rng.byte(),
                    (0..len).map(|_| rng.byte()).collect::<Vec<u8>>(),
                )
            }
            // A valid body, mutated a little (possibly under another type of the range).
            _ => {
                let (mut kind, mut body) = seed_bodies[rng.below(seed_bodies.len())].clone();
                for _ in 0..=rng.below(3) {
                    match rng.below(6) {
                        0 if !body.is_empty() => {
                            let i = rng.below(body.len());
                            body[i] ^= 1 << rng.below(8);
                        }
                        1 if !body.is_empty() => {
                            let i = rng.below(body.len());
                            body[i] = rng.byte();
                        }
                        2 => body.truncate(rng.below(body.len() + 1)),
                        3 => {
                            let i = rng.below(body.len() + 1);
                            body.insert(i, rng.byte());
                        }
                        4 => kind = kinds.start() + rng.below(span) as u8,
                        _ => {
                            // A length or count field pushed to an extreme.
                            if body.len() >= 4 {
                                let i = rng.below(body.len() - 3);
                                body[i..i + 4].copy_from_slice(&[0xFF; 4]);
                            }
                        }
                    }
                }
                (kind, body)
            }
        };
        if let Ok(msg) = T::decode(kind, &body) {
            accepted += 1;
            assert_eq!(msg.kind(), kind, "{msg:?}");
            assert_eq!(&body_of(&msg)[..], &body[..], "{msg:?} is not canonical");
        }
    }
    // The mutations must also reach the success paths, or the re-encoding check above
    // checks nothing.
    assert!(accepted > 100, "only {accepted} fuzz inputs decoded");
}
