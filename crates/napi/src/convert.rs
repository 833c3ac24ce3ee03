//! Rust answers as the plain objects index.d.ts describes: hashes as hex in RPC
//! byte order, amounts and sequence numbers as BigInt.

use napi::bindgen_prelude::BigInt;
use napi_derive::napi;
use opnet::client::{display_hash, to_hex};
use opnet::protocol::{
    ActivityCause, ActivityChange, BlockRef, Event, GapReason, MempoolChange, RemovalReason,
    SyncMode, SyncStatusReply, UtxoEntry, UtxoPage, ENTRY_COINBASE, ENTRY_PENDING,
};

/// A block.
#[napi(object, use_nullable = true)]
#[derive(Clone)]
pub struct JsBlockRef {
    pub height: u32,
    pub hash: String,
}

/// A block reference, `None` for the protocol's "no block" (all zeros).
pub fn block(b: &BlockRef) -> Option<JsBlockRef> {
    (b.hash != [0; 32]).then(|| JsBlockRef {
        height: b.height,
        hash: display_hash(&b.hash),
    })
}

/// A block reference that is always present.
pub fn block_always(b: &BlockRef) -> JsBlockRef {
    JsBlockRef {
        height: b.height,
        hash: display_hash(&b.hash),
    }
}

/// A running scan's progress.
#[napi(object, use_nullable = true)]
pub struct JsScan {
    pub bytes_done: BigInt,
    pub bytes_total: BigInt,
    pub utxos: BigInt,
}

/// GET_SYNC_STATUS.
#[napi(object, use_nullable = true)]
pub struct JsSyncStatus {
    pub mode: String,
    pub synced: bool,
    pub index_tip: Option<JsBlockRef>,
    pub host_tip: Option<JsBlockRef>,
    pub utxo_count: BigInt,
    pub total_sats: BigInt,
    pub event_seq: BigInt,
    pub scan: Option<JsScan>,
    pub mempool_txs: u32,
}

pub fn sync_status(s: &SyncStatusReply) -> JsSyncStatus {
    let mode = match s.mode {
        SyncMode::Starting => "starting",
        SyncMode::Scanning => "scanning",
        SyncMode::CatchingUp => "catchingUp",
        SyncMode::Synced => "synced",
        SyncMode::Stale => "stale",
        SyncMode::Failed => "failed",
    };
    JsSyncStatus {
        mode: mode.into(),
        synced: s.mode == SyncMode::Synced,
        index_tip: block(&s.index_tip),
        host_tip: block(&s.host_tip),
        utxo_count: s.utxo_count.into(),
        total_sats: s.total_value.into(),
        event_seq: s.event_seq.into(),
        scan: (s.scan_total > 0).then(|| JsScan {
            bytes_done: s.scan_done.into(),
            bytes_total: s.scan_total.into(),
            utxos: s.scan_utxos.into(),
        }),
        mempool_txs: s.mempool_txs,
    }
}

/// One UTXO.
#[napi(object, use_nullable = true)]
pub struct JsUtxo {
    pub txid: String,
    pub vout: u32,
    pub value: BigInt,
    pub height: u32,
    pub coinbase: bool,
    pub script: String,
    pub pending: bool,
    pub spent_by: Option<String>,
}

/// One page of UTXOs.
#[napi(object, use_nullable = true)]
pub struct JsUtxoPage {
    pub utxos: Vec<JsUtxo>,
    pub tip: JsBlockRef,
    pub cursor: Option<String>,
}

fn utxo(e: &UtxoEntry, script: &str) -> JsUtxo {
    JsUtxo {
        txid: display_hash(&e.txid),
        vout: e.vout,
        value: e.value.into(),
        height: e.height,
        coinbase: e.flags & ENTRY_COINBASE != 0,
        script: script.to_string(),
        pending: e.flags & ENTRY_PENDING != 0,
        spent_by: e.spender.as_ref().map(display_hash),
    }
}

pub fn page(p: &UtxoPage) -> JsUtxoPage {
    let script = to_hex(&p.script);
    JsUtxoPage {
        utxos: p.entries.iter().map(|e| utxo(e, &script)).collect(),
        tip: block_always(&p.tip),
        cursor: p
            .cursor
            .as_ref()
            .filter(|c| p.more && !c.is_empty())
            .map(|c| to_hex(&c.0)),
    }
}

/// One entry of a SCRIPTHASH_ACTIVITY.
#[napi(object, use_nullable = true)]
pub struct JsActivityEntry {
    pub scripthash: String,
    pub txid: String,
    pub vout: u32,
    pub change: String,
    pub value: BigInt,
    pub height: u32,
}

/// Any event; `kind` says which fields are set (index.js shapes them).
#[napi(object, use_nullable = true)]
#[derive(Default)]
pub struct JsEvent {
    pub kind: String,
    pub seq: Option<BigInt>,
    pub block: Option<JsBlockRef>,
    pub prev_hash: Option<String>,
    pub time: Option<u32>,
    pub tx_count: Option<u32>,
    pub outputs_added: Option<u32>,
    pub outputs_removed: Option<u32>,
    pub txid: Option<String>,
    pub change: Option<String>,
    pub fee: Option<BigInt>,
    pub vsize: Option<u32>,
    pub inputs: Option<u32>,
    pub outputs: Option<u32>,
    pub reason: Option<String>,
    pub cause: Option<String>,
    #[napi(js_name = "final")]
    pub is_final: Option<bool>,
    pub entries: Option<Vec<JsActivityEntry>>,
    pub last: Option<BigInt>,
    pub next: Option<BigInt>,
    pub event_seq: Option<BigInt>,
    pub resume_after: Option<BigInt>,
    pub message: Option<String>,
}

fn removal(r: RemovalReason) -> &'static str {
    match r {
        RemovalReason::Unknown => "unknown",
        RemovalReason::Block => "block",
        RemovalReason::Replaced => "replaced",
        RemovalReason::Conflict => "conflict",
        RemovalReason::Expiry => "expiry",
        RemovalReason::SizeLimit => "sizeLimit",
        RemovalReason::Reorg => "reorg",
    }
}

fn change(c: ActivityChange) -> &'static str {
    match c {
        ActivityChange::Added => "added",
        ActivityChange::Removed => "removed",
        ActivityChange::SpentInMempool => "spentInMempool",
        ActivityChange::UnspentInMempool => "unspentInMempool",
    }
}

pub fn event(e: &Event) -> JsEvent {
    match e {
        Event::BlockConnected {
            seq,
            block: b,
            prev_hash,
            time,
            tx_count,
            outputs_added,
            outputs_removed,
        } => JsEvent {
            kind: "blockConnected".into(),
            seq: Some((*seq).into()),
            block: Some(block_always(b)),
            prev_hash: Some(display_hash(prev_hash)),
            time: Some(*time),
            tx_count: Some(*tx_count),
            outputs_added: Some(*outputs_added),
            outputs_removed: Some(*outputs_removed),
            ..JsEvent::default()
        },
        Event::BlockDisconnected {
            seq,
            block: b,
            prev_hash,
            outputs_added,
            outputs_removed,
        } => JsEvent {
            kind: "blockDisconnected".into(),
            seq: Some((*seq).into()),
            block: Some(block_always(b)),
            prev_hash: Some(display_hash(prev_hash)),
            outputs_added: Some(*outputs_added),
            outputs_removed: Some(*outputs_removed),
            ..JsEvent::default()
        },
        Event::MempoolTx { seq, txid, change } => {
            let mut ev = JsEvent {
                kind: "mempoolTx".into(),
                seq: Some((*seq).into()),
                txid: Some(display_hash(txid)),
                ..JsEvent::default()
            };
            match change {
                MempoolChange::Added {
                    fee,
                    vsize,
                    inputs,
                    outputs,
                } => {
                    ev.change = Some("added".into());
                    ev.fee = Some((*fee).into());
                    ev.vsize = Some(*vsize);
                    ev.inputs = Some(*inputs);
                    ev.outputs = Some(*outputs);
                }
                MempoolChange::Removed { reason } => {
                    ev.change = Some("removed".into());
                    ev.reason = Some(removal(*reason).into());
                }
            }
            ev
        }
        Event::ScripthashActivity {
            seq,
            cause,
            block: b,
            txid,
            final_part,
            entries,
        } => {
            let (cause, is_block) = match cause {
                ActivityCause::BlockConnected => ("blockConnected", true),
                ActivityCause::BlockDisconnected => ("blockDisconnected", true),
                ActivityCause::MempoolAdded => ("mempoolAdded", false),
                ActivityCause::MempoolRemoved => ("mempoolRemoved", false),
            };
            JsEvent {
                kind: "scripthashActivity".into(),
                seq: Some((*seq).into()),
                cause: Some(cause.into()),
                block: if is_block {
                    Some(block_always(b))
                } else {
                    None
                },
                txid: (!is_block).then(|| display_hash(txid)),
                is_final: Some(*final_part),
                entries: Some(
                    entries
                        .iter()
                        .map(|a| JsActivityEntry {
                            scripthash: to_hex(&a.scripthash),
                            txid: display_hash(&a.txid),
                            vout: a.vout,
                            change: change(a.change).into(),
                            value: a.value.into(),
                            height: a.height,
                        })
                        .collect(),
                ),
                ..JsEvent::default()
            }
        }
        Event::IndexRebuilt { seq, tip } => JsEvent {
            kind: "indexRebuilt".into(),
            seq: Some((*seq).into()),
            block: Some(block_always(tip)),
            ..JsEvent::default()
        },
        Event::Gap {
            seq,
            last,
            next,
            reason,
        } => JsEvent {
            kind: "gap".into(),
            seq: Some((*seq).into()),
            last: Some((*last).into()),
            next: Some((*next).into()),
            reason: Some(
                match reason {
                    GapReason::HistoryUnavailable => "historyUnavailable",
                    GapReason::MempoolHistoryLost => "mempoolHistoryLost",
                    GapReason::ActivityLost => "activityLost",
                }
                .into(),
            ),
            ..JsEvent::default()
        },
        Event::Closing { seq, message, .. } => JsEvent {
            kind: "closing".into(),
            seq: Some((*seq).into()),
            message: Some(message.clone()),
            ..JsEvent::default()
        },
    }
}
