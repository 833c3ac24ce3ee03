//! `opnet-cli utxos`: every UTXO paying a target, streamed page by page and
//! printed as it arrives, so a scripthash with millions of outputs lists in
//! constant memory.

use std::io::Write;

use opnet::client::{display_hash, to_hex, Client};
use opnet::protocol::{
    BlockRef, UtxoEntry, UtxoQuery, ENTRY_COINBASE, ENTRY_PENDING, ENTRY_SPENT_IN_MEMPOOL,
};

use super::args::UtxosArgs;
use super::json::Object;
use super::{btc, CliError};

/// One entry of `--json` output; the mempool fields only when `mempool`.
pub fn entry_json(e: &UtxoEntry, script_hex: &str, mempool: bool) -> String {
    let mut o = Object::new();
    o.str("txid", &display_hash(&e.txid))
        .num("vout", e.vout)
        .num("sats", e.value)
        .num("height", e.height)
        .bool("coinbase", e.flags & ENTRY_COINBASE != 0)
        .str("script", script_hex);
    if mempool {
        o.bool("pending", e.flags & ENTRY_PENDING != 0)
            .bool("spent_in_mempool", e.flags & ENTRY_SPENT_IN_MEMPOOL != 0)
            .opt_str("spender", e.spender.as_ref().map(display_hash).as_deref());
    }
    o.finish()
}

/// One line of text output.
pub fn entry_text(e: &UtxoEntry) -> String {
    let mut line = format!(
        "{}:{}  {} sats  height {}",
        display_hash(&e.txid),
        e.vout,
        e.value,
        e.height
    );
    if e.flags & ENTRY_COINBASE != 0 {
        line.push_str("  coinbase");
    }
    if e.flags & ENTRY_PENDING != 0 {
        line.push_str("  pending");
    }
    if let Some(spender) = &e.spender {
        line.push_str(&format!("  spent in mempool by {}", display_hash(spender)));
    }
    line
}

fn tip_json(tip: &BlockRef) -> String {
    Object::new()
        .num("height", tip.height)
        .opt_str(
            "hash",
            (!tip.is_none()).then(|| display_hash(&tip.hash)).as_deref(),
        )
        .finish()
}

/// Runs `utxos` for `scripthash`.
pub async fn run(
    client: &Client,
    scripthash: [u8; 32],
    args: &UtxosArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let query = UtxoQuery {
        scripthash,
        // Pages as large as the server allows.
        limit: 0,
        min_value: args.min_value,
        max_height: args.max_height,
        min_confirmations: args.min_conf,
        sort: args.sort,
        include_mempool: args.mempool,
    };
    let mut stream = client.utxo_stream(query);
    if let Some(n) = args.limit {
        stream = stream.max_entries(n);
    }
    if args.json {
        write!(out, "{{\"utxos\":[")?;
    }
    let (mut count, mut sats) = (0u64, 0u64);
    while let Some(page) = stream.next_page().await {
        let page = page?;
        let script = to_hex(&page.script);
        for e in &page.entries {
            if args.json {
                let sep = if count == 0 { "\n" } else { ",\n" };
                write!(out, "{sep}{}", entry_json(e, &script, args.mempool))?;
            } else {
                writeln!(out, "{}", entry_text(e))?;
            }
            count += 1;
            sats = sats.saturating_add(e.value);
        }
    }
    let tip = stream.tip().unwrap_or_default();
    if args.json {
        writeln!(out, "\n],\"tip\":{}}}", tip_json(&tip))?;
    } else {
        writeln!(
            out,
            "total: {count} UTXOs, {sats} sats ({} BTC) at height {}",
            btc(sats),
            tip.height
        )?;
    }
    if stream.tip_changed() {
        eprintln!(
            "opnet-cli: warning: the index moved to height {} while paging; the list mixes both states",
            tip.height
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(flags: u8, spender: Option<[u8; 32]>) -> UtxoEntry {
        let mut txid = [0u8; 32];
        txid[0] = 0x01;
        UtxoEntry {
            txid,
            vout: 3,
            value: 5000,
            height: 0,
            flags,
            spender,
        }
    }

    #[test]
    fn entries_print_txids_in_rpc_order() {
        let e = entry(ENTRY_COINBASE, None);
        let txid = format!("{}01", "00".repeat(31));
        assert_eq!(
            entry_json(&e, "51", false),
            format!("{{\"txid\":\"{txid}\",\"vout\":3,\"sats\":5000,\"height\":0,\"coinbase\":true,\"script\":\"51\"}}")
        );
        assert_eq!(
            entry_text(&e),
            format!("{txid}:3  5000 sats  height 0  coinbase")
        );
    }

    #[test]
    fn mempool_fields_only_with_mempool() {
        let e = entry(ENTRY_PENDING | ENTRY_SPENT_IN_MEMPOOL, Some([0xee; 32]));
        let j = entry_json(&e, "51", true);
        assert!(j.ends_with(&format!(
            "\"pending\":true,\"spent_in_mempool\":true,\"spender\":\"{}\"}}",
            "ee".repeat(32)
        )));
        assert!(
            entry_text(&e).ends_with(&format!("pending  spent in mempool by {}", "ee".repeat(32)))
        );
        let j = entry_json(&entry(0, None), "51", true);
        assert!(j.ends_with("\"pending\":false,\"spent_in_mempool\":false,\"spender\":null}"));
    }
}
