//! A chainstate record: the first byte splits key from value. Decoding never
//! panics; a decoded coin's amount is within MAX_MONEY.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opnet::format::coin::{decode_coin, decode_coin_key};

fuzz_target!(|data: &[u8]| {
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (key, value) = data.split_at(split);
    let _ = decode_coin_key(key);
    if let Ok(coin) = decode_coin(value) {
        assert!(coin.amount <= 21_000_000 * 100_000_000);
    }
});
