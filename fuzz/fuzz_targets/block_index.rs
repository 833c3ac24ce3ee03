//! A block-index record (`blocks/index`): the first byte splits key from value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opnet::format::block_index::decode_block_index;

fuzz_target!(|data: &[u8]| {
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (key, value) = data.split_at(split);
    let _ = decode_block_index(key, value);
});
