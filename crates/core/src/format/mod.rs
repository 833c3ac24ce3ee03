//! Bitcoin Core's on-disk encodings, decoded strictly and without panics.
//!
//! Everything the index reads from a Bitcoin Core datadir goes through here: the
//! chainstate coins (`C` records), the block index (`b` records), the undo data in
//! `rev*.dat`, the blocks in `blk*.dat`, and the REST `spenttxouts` serialization.
//! The bytes come from files another program writes, so every decoder returns a
//! [`FormatError`] naming what it was decoding and where, instead of panicking.

use std::fmt;

pub mod amount;
pub mod block_index;
pub mod blockfile;
pub mod coin;
pub mod script;
pub mod undo;
pub mod varint;

pub use amount::{compress_amount, decompress_amount, MAX_MONEY};
pub use block_index::{decode_block_index, DiskBlockIndex};
pub use blockfile::{undo_checksum, BlockFiles};
pub use coin::{decode_coin, decode_coin_key, deobfuscate, encode_coin, encode_coin_key, Coin};
pub use script::{read_compressed_script, write_compressed_script, MAX_SCRIPT_SIZE};
pub use undo::{
    check_spent_matches, decode_block_undo, decode_rest_spent_txouts, encode_block_undo,
    BlockSpent, SpentOutput,
};
pub use varint::{
    read_compact_size, read_varint, read_varint_max, write_compact_size, write_varint, MAX_SIZE,
};

/// Why some bytes could not be decoded. Offsets count from the start of the input
/// handed to the decoder (or from the start of the file for block-file errors), so a
/// corrupt record can be located with a hex dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The input ended inside `what`: `needed` bytes were required at `offset`.
    Truncated {
        /// The field or structure being decoded.
        what: &'static str,
        /// Where the missing bytes should have started.
        offset: u64,
        /// How many bytes were required there.
        needed: u64,
    },
    /// The bytes of `what` at `offset` are present but not a valid encoding.
    Invalid {
        /// The field or structure being decoded.
        what: &'static str,
        /// Where the field starts.
        offset: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// `what` decoded completely but `extra` unexpected bytes follow it at `offset`.
    TrailingBytes {
        /// The structure that ended early.
        what: &'static str,
        /// Where the unexpected bytes start.
        offset: u64,
        /// How many there are.
        extra: u64,
    },
    /// Well-formed data that does not fit what it was paired with (for example
    /// spent outputs whose shape differs from their block's inputs).
    Mismatch {
        /// What was compared.
        what: &'static str,
        /// How they differ.
        detail: String,
    },
    /// A record of a `blk*.dat`/`rev*.dat` file (or its `xor.dat`) is malformed.
    BadRecord {
        /// The file.
        path: String,
        /// Offset of the record (or of the payload a caller asked for) in the file.
        offset: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// The operating system failed to open or read `path`.
    Io {
        /// The file.
        path: String,
        /// The operating system's error, with the read that failed.
        detail: String,
    },
}

impl FormatError {
    /// The same error with its offset moved by `base`: used when a decoder working on
    /// a sub-slice reports into the coordinates of the whole input.
    pub(crate) fn shifted(self, base: u64) -> FormatError {
        match self {
            FormatError::Truncated {
                what,
                offset,
                needed,
            } => FormatError::Truncated {
                what,
                offset: offset.saturating_add(base),
                needed,
            },
            FormatError::Invalid {
                what,
                offset,
                detail,
            } => FormatError::Invalid {
                what,
                offset: offset.saturating_add(base),
                detail,
            },
            FormatError::TrailingBytes {
                what,
                offset,
                extra,
            } => FormatError::TrailingBytes {
                what,
                offset: offset.saturating_add(base),
                extra,
            },
            other => other,
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Truncated {
                what,
                offset,
                needed,
            } => write!(
                f,
                "truncated {what}: {needed} more byte(s) needed at offset {offset}"
            ),
            FormatError::Invalid {
                what,
                offset,
                detail,
            } => write!(f, "invalid {what} at offset {offset}: {detail}"),
            FormatError::TrailingBytes {
                what,
                offset,
                extra,
            } => write!(
                f,
                "{extra} unexpected trailing byte(s) after {what} at offset {offset}"
            ),
            FormatError::Mismatch { what, detail } => write!(f, "{what} mismatch: {detail}"),
            FormatError::BadRecord {
                path,
                offset,
                detail,
            } => write!(f, "{path} at offset {offset}: {detail}"),
            FormatError::Io { path, detail } => write!(f, "{path}: {detail}"),
        }
    }
}

impl std::error::Error for FormatError {}

/// Result of every decoder in this module.
pub type Result<T> = std::result::Result<T, FormatError>;

/// A cursor over an input slice that knows its position, so the decoders built on it
/// report offsets relative to the whole input and never index out of bounds.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Current offset from the start of the input.
    pub(crate) fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes not consumed yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The next `n` bytes of `what`.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(FormatError::Truncated {
                what,
                offset: self.offset(),
                needed: n as u64,
            }),
        }
    }

    /// Skips `n` bytes of `what`, failing if fewer remain.
    pub(crate) fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        if n > self.remaining() as u64 {
            return Err(FormatError::Truncated {
                what,
                offset: self.offset(),
                needed: n,
            });
        }
        // n <= remaining, which fits in usize.
        self.pos += n as usize;
        Ok(())
    }

    /// The next `N` bytes of `what` as an array.
    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A little-endian `i64`.
    pub(crate) fn i64_le(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array::<8>(what)?))
    }

    /// A Bitcoin Core VARINT no larger than `max` (the C++ type's maximum).
    pub(crate) fn varint(&mut self, what: &'static str, max: u64) -> Result<u64> {
        let start = self.offset();
        let mut rest = self.rest();
        let before = rest.len();
        let value = varint::read_varint_max(&mut rest, max).map_err(|e| relabel(e, what, start))?;
        self.pos += before - rest.len();
        Ok(value)
    }

    /// A canonical CompactSize no larger than [`MAX_SIZE`].
    pub(crate) fn compact_size(&mut self, what: &'static str) -> Result<u64> {
        let start = self.offset();
        let mut rest = self.rest();
        let before = rest.len();
        let value = varint::read_compact_size(&mut rest).map_err(|e| relabel(e, what, start))?;
        self.pos += before - rest.len();
        Ok(value)
    }

    /// A compressed script (Core's `ScriptCompression`).
    pub(crate) fn compressed_script(&mut self) -> Result<Vec<u8>> {
        let start = self.offset();
        let mut rest = self.rest();
        let before = rest.len();
        let script = script::read_compressed_script(&mut rest).map_err(|e| e.shifted(start))?;
        self.pos += before - rest.len();
        Ok(script)
    }

    /// Fails unless the whole input was consumed.
    pub(crate) fn finish(&self, what: &'static str) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(FormatError::TrailingBytes {
                what,
                offset: self.offset(),
                extra: self.remaining() as u64,
            })
        }
    }
}

/// Rewrites an error of a primitive decoder (VARINT, CompactSize) so that it names
/// the field being decoded and sits at the right offset.
fn relabel(e: FormatError, what: &'static str, base: u64) -> FormatError {
    match e {
        FormatError::Truncated { offset, needed, .. } => FormatError::Truncated {
            what,
            offset: offset.saturating_add(base),
            needed,
        },
        FormatError::Invalid { offset, detail, .. } => FormatError::Invalid {
            what,
            offset: offset.saturating_add(base),
            detail,
        },
        other => other.shifted(base),
    }
}

/// Shared helpers for the decoders' robustness tests.
#[cfg(test)]
pub(crate) mod testutil {
    /// A deterministic xorshift64 generator: garbage inputs without a new dependency.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// `len` pseudo-random bytes.
        pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next_u64() as u8).collect()
        }
    }

    /// Bytes of a hex literal (test vectors).
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Decodes every strict prefix of `full` and checks each is an error.
    pub(crate) fn all_prefixes_fail<T: std::fmt::Debug>(
        full: &[u8],
        decode: impl Fn(&[u8]) -> super::Result<T>,
    ) {
        for len in 0..full.len() {
            let prefix = &full[..len];
            assert!(
                decode(prefix).is_err(),
                "prefix of length {len} of {} decoded",
                full.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_offsets_of_the_whole_input() {
        let input = [0x01, 0x02, 0x80];
        let mut r = Reader::new(&input);
        assert_eq!(r.take(2, "head").map(|b| b.to_vec()), Ok(vec![1, 2]));
        assert_eq!(
            r.varint("some field", u64::MAX),
            Err(FormatError::Truncated {
                what: "some field",
                offset: 3,
                needed: 1
            })
        );
        let r = Reader::new(&input);
        assert_eq!(
            r.finish("nothing"),
            Err(FormatError::TrailingBytes {
                what: "nothing",
                offset: 0,
                extra: 3
            })
        );
    }

    #[test]
    fn display_names_field_and_offset() {
        let e = FormatError::Invalid {
            what: "coin amount",
            offset: 7,
            detail: "too large".into(),
        };
        assert_eq!(e.to_string(), "invalid coin amount at offset 7: too large");
        let e = FormatError::Truncated {
            what: "VARINT",
            offset: 2,
            needed: 1,
        };
        assert_eq!(
            e.to_string(),
            "truncated VARINT: 1 more byte(s) needed at offset 2"
        );
    }
}
