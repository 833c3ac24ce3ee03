//! `opnet-cli status`: where the index is (GET_SYNC_STATUS), for people and for
//! scripts that wait until it is synced.

use std::io::Write;

use opnet::client::{display_hash, Client};
use opnet::protocol::{BlockRef, SyncMode, SyncStatusReply};

use super::json::Object;
use super::{btc, CliError};

fn hash_or_none(b: &BlockRef) -> Option<String> {
    (!b.is_none()).then(|| display_hash(&b.hash))
}

/// The JSON object `status --json` prints.
pub fn to_json(s: &SyncStatusReply, network: &str, server: &str) -> String {
    let progress = if s.scan_total > 0 {
        format!("{:.4}", s.scan_done as f64 / s.scan_total as f64)
    } else {
        "null".to_string()
    };
    Object::new()
        .num("height", s.index_tip.height)
        .opt_str("hash", hash_or_none(&s.index_tip).as_deref())
        .bool("synced", s.mode == SyncMode::Synced)
        .str("mode", s.mode.name())
        .num("host_height", s.host_tip.height)
        .opt_str("host_hash", hash_or_none(&s.host_tip).as_deref())
        .num("utxo_count", s.utxo_count)
        .num("total_sats", s.total_value)
        .num("event_seq", s.event_seq)
        .num("scan_done", s.scan_done)
        .num("scan_total", s.scan_total)
        .num("scan_utxos", s.scan_utxos)
        .raw("scan_progress", &progress)
        .num("mempool_txs", s.mempool_txs)
        .str("network", network)
        .str("server", server)
        .finish()
}

/// The lines `status` prints without `--json`.
pub fn to_text(s: &SyncStatusReply, network: &str, server: &str) -> String {
    let tip = |b: &BlockRef| match hash_or_none(b) {
        Some(h) => format!("{} {h}", b.height),
        None => "none".to_string(),
    };
    let mut out = format!(
        "mode:       {}\nindex tip:  {}\nhost tip:   {}\nutxos:      {} ({} BTC)\nevents:     {}\nmempool:    {} transactions\n",
        s.mode.name(),
        tip(&s.index_tip),
        tip(&s.host_tip),
        s.utxo_count,
        btc(s.total_value),
        s.event_seq,
        s.mempool_txs,
    );
    if s.scan_total > 0 {
        out.push_str(&format!(
            "scan:       {:.1}% ({} of {} bytes, {} UTXOs read)\n",
            100.0 * s.scan_done as f64 / s.scan_total as f64,
            s.scan_done,
            s.scan_total,
            s.scan_utxos
        ));
    }
    out.push_str(&format!("server:     {server} on {network}\n"));
    out
}

/// Runs `status`.
pub async fn run(client: &Client, json: bool, out: &mut impl Write) -> Result<(), CliError> {
    let status = client.sync_status().await?;
    let network = client.network().map_or("unknown", |n| n.name());
    let server = client.hello().server_name.as_str();
    if json {
        writeln!(out, "{}", to_json(&status, network, server))?;
    } else {
        write!(out, "{}", to_text(&status, network, server))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mode: SyncMode, scan_total: u64) -> SyncStatusReply {
        let mut hash = [0u8; 32];
        hash[31] = 0xab;
        SyncStatusReply {
            mode,
            index_tip: BlockRef { height: 7, hash },
            host_tip: BlockRef::default(),
            utxo_count: 3,
            total_value: 150_000_000,
            event_seq: 9,
            scan_done: 25,
            scan_total,
            scan_utxos: 4,
            mempool_txs: 2,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let s = to_json(&sample(SyncMode::Synced, 0), "regtest", "x");
        assert_eq!(
            s,
            format!(
                "{{\"height\":7,\"hash\":\"ab{}\",\"synced\":true,\"mode\":\"synced\",\"host_height\":0,\"host_hash\":null,\"utxo_count\":3,\"total_sats\":150000000,\"event_seq\":9,\"scan_done\":25,\"scan_total\":0,\"scan_utxos\":4,\"scan_progress\":null,\"mempool_txs\":2,\"network\":\"regtest\",\"server\":\"x\"}}",
                "00".repeat(31)
            )
        );
        let s = to_json(&sample(SyncMode::Scanning, 100), "regtest", "x");
        assert!(s.contains("\"synced\":false") && s.contains("\"scan_progress\":0.2500"));
    }

    #[test]
    fn text_shows_scan_progress_only_while_scanning() {
        let t = to_text(&sample(SyncMode::Synced, 0), "regtest", "x");
        assert!(t.contains("utxos:      3 (1.50000000 BTC)"), "{t}");
        assert!(t.contains("host tip:   none"));
        assert!(!t.contains("scan:"));
        let t = to_text(&sample(SyncMode::Scanning, 100), "regtest", "x");
        assert!(
            t.contains("scan:       25.0% (25 of 100 bytes, 4 UTXOs read)"),
            "{t}"
        );
    }
}
