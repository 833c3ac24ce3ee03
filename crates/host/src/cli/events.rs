//! Events as `opnet-cli watch` prints them: one JSON object per line with a
//! `"type"` first, or one line of text. Block hashes and txids in RPC order,
//! scripthashes as the wire carries them (not reversed).

use opnet::client::{display_hash, to_hex, ClientEvent};
use opnet::protocol::{
    ActivityCause, ActivityChange, BlockRef, Event, GapReason, MempoolChange, RemovalReason,
};

use super::json::Object;

fn removal(r: RemovalReason) -> &'static str {
    match r {
        RemovalReason::Unknown => "unknown",
        RemovalReason::Block => "block",
        RemovalReason::Replaced => "replaced",
        RemovalReason::Conflict => "conflict",
        RemovalReason::Expiry => "expiry",
        RemovalReason::SizeLimit => "size_limit",
        RemovalReason::Reorg => "reorg",
    }
}

fn cause(c: ActivityCause) -> &'static str {
    match c {
        ActivityCause::BlockConnected => "block_connected",
        ActivityCause::BlockDisconnected => "block_disconnected",
        ActivityCause::MempoolAdded => "mempool_added",
        ActivityCause::MempoolRemoved => "mempool_removed",
    }
}

fn change(c: ActivityChange) -> &'static str {
    match c {
        ActivityChange::Added => "added",
        ActivityChange::Removed => "removed",
        ActivityChange::SpentInMempool => "spent_in_mempool",
        ActivityChange::UnspentInMempool => "unspent_in_mempool",
    }
}

fn gap(r: GapReason) -> &'static str {
    match r {
        GapReason::HistoryUnavailable => "history_unavailable",
        GapReason::MempoolHistoryLost => "mempool_history_lost",
        GapReason::ActivityLost => "activity_lost",
    }
}

fn block(o: &mut Object, b: &BlockRef) {
    o.num("height", b.height)
        .str("hash", &display_hash(&b.hash));
}

/// The type name of an event, as `"type"` carries it.
pub fn type_name(e: &Event) -> &'static str {
    match e {
        Event::BlockConnected { .. } => "block_connected",
        Event::BlockDisconnected { .. } => "block_disconnected",
        Event::MempoolTx { .. } => "mempool_tx",
        Event::ScripthashActivity { .. } => "scripthash_activity",
        Event::IndexRebuilt { .. } => "index_rebuilt",
        Event::Gap { .. } => "gap",
        Event::Closing { .. } => "closing",
    }
}

/// One event as a JSON object.
pub fn event_json(e: &Event) -> String {
    let mut o = Object::new();
    o.str("type", type_name(e)).num("seq", e.seq());
    match e {
        Event::BlockConnected {
            block: b,
            prev_hash,
            time,
            tx_count,
            outputs_added,
            outputs_removed,
            ..
        } => {
            block(&mut o, b);
            o.str("prev_hash", &display_hash(prev_hash))
                .num("time", *time)
                .num("tx_count", *tx_count)
                .num("outputs_added", *outputs_added)
                .num("outputs_removed", *outputs_removed);
        }
        Event::BlockDisconnected {
            block: b,
            prev_hash,
            outputs_added,
            outputs_removed,
            ..
        } => {
            block(&mut o, b);
            o.str("prev_hash", &display_hash(prev_hash))
                .num("outputs_added", *outputs_added)
                .num("outputs_removed", *outputs_removed);
        }
        Event::MempoolTx { txid, change, .. } => {
            match change {
                MempoolChange::Added {
                    fee,
                    vsize,
                    inputs,
                    outputs,
                } => {
                    o.str("action", "added")
                        .str("txid", &display_hash(txid))
                        .num("fee", *fee)
                        .num("vsize", *vsize)
                        .num("inputs", *inputs)
                        .num("outputs", *outputs);
                }
                MempoolChange::Removed { reason } => {
                    o.str("action", "removed")
                        .str("txid", &display_hash(txid))
                        .str("reason", removal(*reason));
                }
            };
        }
        Event::ScripthashActivity {
            cause: c,
            block: b,
            txid,
            final_part,
            entries,
            ..
        } => {
            o.str("cause", cause(*c));
            if c.is_block() {
                block(&mut o, b);
            } else {
                o.str("txid", &display_hash(txid));
            }
            o.bool("final", *final_part);
            let list: Vec<String> = entries
                .iter()
                .map(|a| {
                    Object::new()
                        .str("scripthash", &to_hex(&a.scripthash))
                        .str("txid", &display_hash(&a.txid))
                        .num("vout", a.vout)
                        .str("change", change(a.change))
                        .num("sats", a.value)
                        .num("height", a.height)
                        .finish()
                })
                .collect();
            o.raw("entries", &format!("[{}]", list.join(",")));
        }
        Event::IndexRebuilt { tip, .. } => block(&mut o, tip),
        Event::Gap {
            last, next, reason, ..
        } => {
            o.num("last", *last)
                .num("next", *next)
                .str("reason", gap(*reason));
        }
        Event::Closing {
            status,
            detail,
            message,
            ..
        } => {
            o.str("status", status.name())
                .num("detail", *detail)
                .str("message", message);
        }
    }
    o.finish()
}

/// One event as a line of text.
pub fn event_text(e: &Event) -> String {
    let head = format!("#{} {}", e.seq(), type_name(e));
    match e {
        Event::BlockConnected {
            block,
            tx_count,
            outputs_added,
            outputs_removed,
            ..
        } => format!(
            "{head} {} {} ({tx_count} txs, +{outputs_added} -{outputs_removed} outputs)",
            block.height,
            display_hash(&block.hash)
        ),
        Event::BlockDisconnected {
            block,
            outputs_added,
            outputs_removed,
            ..
        } => format!(
            "{head} {} {} (+{outputs_added} -{outputs_removed} outputs)",
            block.height,
            display_hash(&block.hash)
        ),
        Event::MempoolTx { txid, change, .. } => match change {
            MempoolChange::Added { fee, vsize, .. } => format!(
                "{head} added {} (fee {fee} sats, {vsize} vB)",
                display_hash(txid)
            ),
            MempoolChange::Removed { reason } => format!(
                "{head} removed {} ({})",
                display_hash(txid),
                removal(*reason)
            ),
        },
        Event::ScripthashActivity {
            cause: c,
            block,
            txid,
            entries,
            ..
        } => {
            let what = if c.is_block() {
                format!("block {}", block.height)
            } else {
                format!("tx {}", display_hash(txid))
            };
            let mut line = format!("{head} {} {what}", cause(*c));
            for a in entries {
                line.push_str(&format!(
                    "\n  {} {}:{} {} {} sats",
                    to_hex(&a.scripthash),
                    display_hash(&a.txid),
                    a.vout,
                    change(a.change),
                    a.value
                ));
            }
            line
        }
        Event::IndexRebuilt { tip, .. } => format!(
            "{head} at {} {} (re-read everything)",
            tip.height,
            display_hash(&tip.hash)
        ),
        Event::Gap {
            last, next, reason, ..
        } => format!(
            "{head} {} (events after {last} and before {next} are missing)",
            gap(*reason)
        ),
        Event::Closing {
            status, message, ..
        } => format!("{head} {status}: {message}"),
    }
}

/// A stream item as a line: events as above, connection notices with the types
/// `disconnected` and `reconnected`.
pub fn item_line(item: &ClientEvent, json_out: bool) -> String {
    match (item, json_out) {
        (ClientEvent::Event(e), true) => event_json(e),
        (ClientEvent::Event(e), false) => event_text(e),
        (ClientEvent::Disconnected(error), true) => Object::new()
            .str("type", "disconnected")
            .str("error", &error.to_string())
            .finish(),
        (ClientEvent::Disconnected(error), false) => {
            format!("-- disconnected ({error}); reconnecting")
        }
        (
            ClientEvent::Reconnected {
                event_seq,
                resume_after,
                ..
            },
            true,
        ) => Object::new()
            .str("type", "reconnected")
            .num("event_seq", *event_seq)
            .num("resume_after", *resume_after)
            .finish(),
        (
            ClientEvent::Reconnected {
                event_seq,
                resume_after,
                ..
            },
            false,
        ) => format!(
            "-- reconnected; replaying events {} to {event_seq}",
            resume_after + 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opnet::protocol::ActivityEntry;

    fn h(b: u8) -> [u8; 32] {
        let mut x = [0u8; 32];
        x[0] = b;
        x
    }

    fn rpc(b: u8) -> String {
        format!("{}{b:02x}", "00".repeat(31))
    }

    #[test]
    fn block_events_in_rpc_order() {
        let e = Event::BlockConnected {
            seq: 5,
            block: BlockRef {
                height: 100,
                hash: h(1),
            },
            prev_hash: h(2),
            time: 1_700_000_000,
            tx_count: 3,
            outputs_added: 4,
            outputs_removed: 1,
        };
        assert_eq!(
            event_json(&e),
            format!(
                "{{\"type\":\"block_connected\",\"seq\":5,\"height\":100,\"hash\":\"{}\",\"prev_hash\":\"{}\",\"time\":1700000000,\"tx_count\":3,\"outputs_added\":4,\"outputs_removed\":1}}",
                rpc(1),
                rpc(2)
            )
        );
        assert_eq!(
            event_text(&e),
            format!("#5 block_connected 100 {} (3 txs, +4 -1 outputs)", rpc(1))
        );
    }

    #[test]
    fn activity_and_mempool_events() {
        let e = Event::ScripthashActivity {
            seq: 9,
            cause: ActivityCause::MempoolAdded,
            block: BlockRef::default(),
            txid: h(3),
            final_part: true,
            entries: vec![ActivityEntry {
                scripthash: h(4),
                txid: h(3),
                vout: 1,
                change: ActivityChange::Added,
                value: 700,
                height: 0,
            }],
        };
        let sh = format!("04{}", "00".repeat(31));
        assert_eq!(
            event_json(&e),
            format!(
                "{{\"type\":\"scripthash_activity\",\"seq\":9,\"cause\":\"mempool_added\",\"txid\":\"{}\",\"final\":true,\"entries\":[{{\"scripthash\":\"{sh}\",\"txid\":\"{}\",\"vout\":1,\"change\":\"added\",\"sats\":700,\"height\":0}}]}}",
                rpc(3),
                rpc(3)
            )
        );
        let e = Event::MempoolTx {
            seq: 10,
            txid: h(5),
            change: MempoolChange::Removed {
                reason: RemovalReason::Replaced,
            },
        };
        assert_eq!(
            event_json(&e),
            format!(
                "{{\"type\":\"mempool_tx\",\"seq\":10,\"action\":\"removed\",\"txid\":\"{}\",\"reason\":\"replaced\"}}",
                rpc(5)
            )
        );
        let e = Event::Gap {
            seq: 11,
            last: 2,
            next: 8,
            reason: GapReason::HistoryUnavailable,
        };
        assert_eq!(
            event_json(&e),
            "{\"type\":\"gap\",\"seq\":11,\"last\":2,\"next\":8,\"reason\":\"history_unavailable\"}"
        );
    }
}
