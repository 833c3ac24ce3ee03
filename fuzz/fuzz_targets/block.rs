//! A block and its spent outputs as a host hands them over: the first two bytes
//! give the block's length. Decoding, the shape check and the index delta never
//! panic, whatever the pairing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opnet::format::undo::{check_spent_matches, decode_rest_spent_txouts};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (block, spent) = data[2..].split_at(len);
    let Ok(block) = bitcoin::consensus::deserialize::<bitcoin::Block>(block) else {
        return;
    };
    if let Ok(spent) = decode_rest_spent_txouts(spent) {
        let _ = check_spent_matches(&block, &spent);
    }
});
