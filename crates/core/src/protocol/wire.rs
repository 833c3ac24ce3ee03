//! The field encodings every message body is built from (docs/PROTOCOL.md,
//! "Conventions"): little-endian integers, `hash32`, `str16` and length-prefixed
//! byte strings.
//!
//! Bodies come from peers that may be hostile or broken, so [`Reader`] checks every
//! length against what is left before it touches or allocates anything and reports a
//! short or over-long body as [`DecodeError::Malformed`] instead of panicking. The
//! writers are the mirror image; a length too large for its prefix is clamped (with
//! the data cut to match) so that an encoder can never produce a body whose lengths
//! disagree with its bytes.

use bytes::{BufMut, BytesMut};

use super::message::DecodeError;

/// A cursor over one message body that refuses to read past its end.
///
/// Every decoder reads through one, so "the body is too short" is checked in a single
/// place, and [`Reader::finish`] makes "the body is too long" just as hard to forget.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `body`.
    pub fn new(body: &'a [u8]) -> Reader<'a> {
        Reader { buf: body }
    }

    /// Bytes not read yet: what a count must be checked against before it is trusted.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes, borrowed from the body (no copy).
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Malformed(format!(
                "body ends early: {n} more bytes needed, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Everything not read yet, for a trailing field that runs to the end of the body
    /// (PING's payload).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// The next `N` bytes as an array: fixed-size fields without a length prefix.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A `hash32`, kept in the wire's (internal) byte order.
    pub fn hash32(&mut self) -> Result<[u8; 32], DecodeError> {
        self.array()
    }

    /// A one-byte boolean. Only 0 and 1 are accepted, so every body has exactly one
    /// meaning and re-encoding a decoded message gives back the same bytes.
    pub fn bool(&mut self, field: &str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::Malformed(format!(
                "{field} is {v}, expected 0 or 1"
            ))),
        }
    }

    /// Bytes preceded by a `u16` length (a script).
    pub fn bytes16(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// A `str16`: text must be valid UTF-8, or a peer could make us log or return
    /// garbage that later code assumes is a string.
    pub fn str16(&mut self, field: &str) -> Result<String, DecodeError> {
        let raw = self.bytes16()?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Malformed(format!("{field} is not valid UTF-8")))
    }

    /// A `u32` entry count, accepted only if `count` entries of at least `min_entry_len`
    /// bytes each (taken as 1 if 0) fit in what is left. This is the check that lets a
    /// decoder reserve room for `count` entries: a count of 0xFFFFFFFF on a short body
    /// is refused here, before anything is allocated for it.
    pub fn count(&mut self, field: &str, min_entry_len: usize) -> Result<usize, DecodeError> {
        let count = self.u32()?;
        let fits = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(min_entry_len.max(1)))
            .is_some_and(|need| need <= self.buf.len());
        if !fits {
            return Err(DecodeError::Malformed(format!(
                "{field} {count} needs more than the {} bytes left",
                self.buf.len()
            )));
        }
        // `fits` implies the conversion succeeded.
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Ends the read: bytes left over mean the peer and we disagree on the layout, so
    /// the body is malformed rather than silently half-understood.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(format!(
                "{} unexpected bytes after the last field",
                self.buf.len()
            )))
        }
    }
}

/// Writes a one-byte boolean (0 or 1), the only values [`Reader::bool`] accepts.
pub fn put_bool(out: &mut BytesMut, v: bool) {
    out.put_u8(u8::from(v));
}

/// The largest prefix of `s` that fits a `str16` and ends on a character boundary, so
/// a clamped string is still valid UTF-8.
fn str16_prefix(s: &str) -> &str {
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes a `str16`. Text longer than 65,535 bytes is cut at the last character that
/// fits: messages are for logs, and a consistent body matters more than its tail.
pub fn put_str16(out: &mut BytesMut, s: &str) {
    put_bytes16(out, str16_prefix(s).as_bytes());
}

/// Bytes a `str16` of `s` takes on the wire, for sizing a reservation exactly.
pub fn str16_len(s: &str) -> usize {
    2 + str16_prefix(s).len()
}

/// Writes bytes behind a `u16` length, clamped to 65,535 bytes so that the length
/// always matches what follows (no standard script comes near the limit).
pub fn put_bytes16(out: &mut BytesMut, b: &[u8]) {
    let n = b.len().min(usize::from(u16::MAX));
    out.put_u16_le(n as u16);
    out.put_slice(&b[..n]);
}

/// Bytes [`put_bytes16`] writes for `b`.
pub fn bytes16_len(b: &[u8]) -> usize {
    2 + b.len().min(usize::from(u16::MAX))
}

/// A `u32` count for `len` entries, clamped to `u32::MAX`. Callers write only that
/// many entries, so the count always matches the body.
pub fn count32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_little_endian_and_bounded() {
        let body = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut r = Reader::new(&body);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 0x0302);
        assert_eq!(r.u32().unwrap(), 0x0706_0504);
        assert_eq!(r.u64().unwrap(), 0x0f0e_0d0c_0b0a_0908);
        assert_eq!(r.remaining(), 0);
        assert!(r.u8().is_err());
        r.finish().unwrap();
    }

    #[test]
    fn short_reads_fail_and_consume_nothing() {
        let body = [1, 2, 3];
        let mut r = Reader::new(&body);
        assert!(matches!(r.u32(), Err(DecodeError::Malformed(_))));
        assert!(r.hash32().is_err());
        assert!(r.bytes(4).is_err());
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.bytes(3).unwrap(), &body);
    }

    #[test]
    fn finish_refuses_trailing_bytes() {
        let mut r = Reader::new(&[0, 0]);
        r.u8().unwrap();
        assert!(r.clone().finish().is_err());
        r.u8().unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn str16_round_trips_and_checks_utf8() {
        let mut out = BytesMut::new();
        put_str16(&mut out, "héllo");
        assert_eq!(out.len(), str16_len("héllo"));
        assert_eq!(&out[..2], &[6, 0]);
        assert_eq!(Reader::new(&out).str16("name").unwrap(), "héllo");
        assert!(Reader::new(&[2, 0, 0xc3, 0x28]).str16("name").is_err());
        assert!(Reader::new(&[3, 0, b'a']).str16("name").is_err());
    }

    #[test]
    fn overlong_strings_are_cut_on_a_char_boundary() {
        let s = "é".repeat(40_000); // 80,000 bytes
        let mut out = BytesMut::new();
        put_str16(&mut out, &s);
        assert_eq!(out.len(), str16_len(&s));
        let back = Reader::new(&out).str16("msg").unwrap();
        assert_eq!(back.len(), 65_534);
        assert!(s.starts_with(&back));
    }

    #[test]
    fn bools_accept_only_zero_and_one() {
        assert!(!Reader::new(&[0]).bool("b").unwrap());
        assert!(Reader::new(&[1]).bool("b").unwrap());
        assert!(Reader::new(&[2]).bool("b").is_err());
    }

    #[test]
    fn counts_are_checked_against_the_bytes_left() {
        let mut body = u32::MAX.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 64]);
        assert!(Reader::new(&body).count("count", 32).is_err());
        let mut body = 2u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 64]);
        assert_eq!(Reader::new(&body).count("count", 32).unwrap(), 2);
        assert!(Reader::new(&body[..67]).count("count", 32).is_err());
        // Even entries claimed to be empty are bounded by the bytes left.
        assert!(Reader::new(&body[..5]).count("count", 0).is_err());
    }
}
