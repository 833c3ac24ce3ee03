//! Undo data in both serializations the plugin accepts: rev*.dat's CBlockUndo and
//! REST's spenttxouts. What decodes re-encodes and decodes to the same outputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opnet::format::undo::{
    decode_block_undo, decode_rest_spent_txouts, encode_block_undo, encode_rest_spent_txouts,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(spent) = decode_block_undo(data) {
        let mut out = Vec::new();
        encode_block_undo(&spent, &mut out);
        assert_eq!(decode_block_undo(&out).ok(), Some(spent));
    }
    if let Ok(spent) = decode_rest_spent_txouts(data) {
        let mut out = Vec::new();
        encode_rest_spent_txouts(&spent, &mut out);
        assert_eq!(out, data);
    }
});
