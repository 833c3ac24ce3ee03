//! QUERY_UTXOS / QUERY_UTXOS_PAGINATED (docs/PROTOCOL.md §6.1–6.2): filters, the
//! four sort orders, the mempool view and cursors.
//!
//! Every order is expressed as one ascending key `(primary, txid, vout)` so a cursor
//! is simply "strictly after this key". Outpoint order is the index's own key order:
//! a page reads only itself. The other orders read every output of the scripthash
//! and keep the best `limit + 1` in a bounded heap, so memory stays O(limit) even
//! for a scripthash with millions of outputs.

use std::collections::{BinaryHeap, HashMap};

use crate::index::{IndexError, IndexStore, UtxoKey};
use crate::mempool::{MempoolView, Outpoint, PendingOutput};
use crate::protocol::{
    BlockRef, Cursor, Sort, UtxoEntry, UtxoPage, UtxoQuery, ENTRY_COINBASE, ENTRY_PENDING,
    ENTRY_SPENT_IN_MEMPOOL,
};

/// Height a mempool output sorts at: after every confirmed one.
const PENDING_SORT_HEIGHT: u32 = u32::MAX;

/// Why a query failed.
#[derive(Debug)]
pub enum QueryError {
    BadCursor(String),
    Index(IndexError),
}

impl From<IndexError> for QueryError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::BadCursor => {
                QueryError::BadCursor("cursor is for another scripthash".into())
            }
            other => QueryError::Index(other),
        }
    }
}

/// What the mempool contributes to one scripthash's answer, copied out of the
/// view so the index is read without holding the mempool lock.
#[derive(Default)]
pub struct MempoolSlice {
    pub pending: Vec<(Outpoint, PendingOutput)>,
    pub spent: HashMap<Outpoint, [u8; 32]>,
}

impl MempoolSlice {
    /// The view's part for `query.scripthash` (empty unless the query asks for it).
    pub fn of(view: &MempoolView, query: &UtxoQuery) -> MempoolSlice {
        if !query.include_mempool {
            return MempoolSlice::default();
        }
        MempoolSlice {
            pending: view.pending_for(&query.scripthash),
            spent: view.spent_for(&query.scripthash),
        }
    }
}

/// Ascending sort key of an entry under `sort`.
type SortKey = (u64, [u8; 32], u32);

fn sort_key(sort: Sort, e: &UtxoEntry) -> SortKey {
    let height = if e.flags & ENTRY_PENDING != 0 {
        PENDING_SORT_HEIGHT
    } else {
        e.height
    };
    let primary = match sort {
        Sort::Outpoint => 0,
        Sort::ValueDesc => !e.value,
        Sort::HeightAsc => height as u64,
        Sort::HeightDesc => !(height as u64) & 0xFFFF_FFFF,
    };
    (primary, e.txid, e.vout)
}

/// Encodes the cursor after `key` (layout in docs/PROTOCOL.md §6.2).
fn encode_cursor(sort: Sort, key: &SortKey) -> Cursor {
    let mut c = vec![sort as u8];
    match sort {
        Sort::Outpoint => {}
        Sort::ValueDesc => c.extend_from_slice(&(!key.0).to_be_bytes()),
        Sort::HeightAsc => c.extend_from_slice(&(key.0 as u32).to_be_bytes()),
        Sort::HeightDesc => c.extend_from_slice(&(!(key.0 as u32)).to_be_bytes()),
    }
    c.extend_from_slice(&key.1);
    c.extend_from_slice(&key.2.to_be_bytes());
    Cursor(c)
}

fn decode_cursor(sort: Sort, cursor: &Cursor) -> Result<SortKey, QueryError> {
    let bad = |why: &str| QueryError::BadCursor(why.to_string());
    let bytes = &cursor.0;
    let (&tag, rest) = bytes.split_first().ok_or_else(|| bad("empty cursor"))?;
    if tag != sort as u8 {
        return Err(bad("cursor is for another sort order"));
    }
    let primary_len = match sort {
        Sort::Outpoint => 0,
        Sort::ValueDesc => 8,
        Sort::HeightAsc | Sort::HeightDesc => 4,
    };
    if rest.len() != primary_len + 36 {
        return Err(bad("cursor has the wrong length"));
    }
    let (p, outpoint) = rest.split_at(primary_len);
    let primary = match sort {
        Sort::Outpoint => 0,
        Sort::ValueDesc => !u64::from_be_bytes(p.try_into().map_err(|_| bad("cursor"))?),
        Sort::HeightAsc => u32::from_be_bytes(p.try_into().map_err(|_| bad("cursor"))?) as u64,
        Sort::HeightDesc => {
            !(u32::from_be_bytes(p.try_into().map_err(|_| bad("cursor"))?) as u64) & 0xFFFF_FFFF
        }
    };
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&outpoint[..32]);
    let vout = u32::from_be_bytes(outpoint[32..36].try_into().map_err(|_| bad("cursor"))?);
    Ok((primary, txid, vout))
}

/// The filters of a query against the tip the page is read at.
struct Filter {
    min_value: u64,
    /// Highest creation height accepted (max_height and min_confirmations combined).
    max_height: Option<u32>,
    /// More confirmations asked for than the chain has blocks: nothing qualifies.
    nothing: bool,
}

impl Filter {
    fn new(query: &UtxoQuery, tip_height: u32) -> Filter {
        let mut max_height = query.max_height;
        let mut nothing = false;
        if query.min_confirmations > 0 {
            // confirmations = tip − height + 1 ≥ min  ⇔  height ≤ tip + 1 − min.
            match (tip_height as u64 + 1).checked_sub(query.min_confirmations as u64) {
                Some(h) => {
                    let h = h as u32;
                    max_height = Some(max_height.map_or(h, |m| m.min(h)));
                }
                None => nothing = true,
            }
        }
        Filter {
            min_value: query.min_value,
            max_height,
            nothing,
        }
    }

    fn accepts(&self, e: &UtxoEntry) -> bool {
        if self.nothing || e.value < self.min_value {
            return false;
        }
        match self.max_height {
            None => true,
            Some(_) if e.flags & ENTRY_PENDING != 0 => false,
            Some(max) => e.height <= max,
        }
    }
}

/// Runs a query against `store` at `tip`, merging `mempool`. `limit` is already
/// resolved (1 ≤ limit ≤ max_results).
pub fn run(
    store: &IndexStore,
    tip: BlockRef,
    query: &UtxoQuery,
    cursor: Option<&Cursor>,
    limit: usize,
    mempool: &MempoolSlice,
) -> Result<UtxoPage, QueryError> {
    let after = cursor.map(|c| decode_cursor(query.sort, c)).transpose()?;
    let filter = Filter::new(query, tip.height);
    let mut script: Option<Vec<u8>> = None;
    let confirmed_entry = |key: UtxoKey, v: &crate::index::UtxoValue| {
        let spender = mempool.spent.get(&(key.txid, key.vout)).copied();
        UtxoEntry {
            txid: key.txid,
            vout: key.vout,
            value: v.amount,
            height: v.height,
            flags: (if v.coinbase { ENTRY_COINBASE } else { 0 })
                | (if spender.is_some() {
                    ENTRY_SPENT_IN_MEMPOOL
                } else {
                    0
                }),
            spender,
        }
    };
    let pending = mempool.pending.iter().map(|((txid, vout), p)| {
        let spender = mempool.spent.get(&(*txid, *vout)).copied();
        (
            UtxoEntry {
                txid: *txid,
                vout: *vout,
                value: p.amount,
                height: 0,
                flags: ENTRY_PENDING
                    | if spender.is_some() {
                        ENTRY_SPENT_IN_MEMPOOL
                    } else {
                        0
                    },
                spender,
            },
            p,
        )
    });

    let mut chosen: Vec<(SortKey, UtxoEntry)>;
    if query.sort == Sort::Outpoint {
        // Key order: read the index from the cursor on, merging pending outputs.
        let after_key = after.map(|(_, txid, vout)| UtxoKey {
            script_hash: query.scripthash,
            txid,
            vout,
        });
        chosen = Vec::with_capacity(limit.min(4096) + 1);
        store.visit_script(&query.scripthash, after_key.as_ref(), |key, v| {
            let e = confirmed_entry(key, &v);
            if filter.accepts(&e) {
                if script.is_none() {
                    script = Some(v.script);
                }
                chosen.push((sort_key(Sort::Outpoint, &e), e));
            }
            Ok(chosen.len() <= limit)
        })?;
        let mut extra: Vec<(SortKey, UtxoEntry)> = Vec::new();
        for (e, p) in pending {
            let k = sort_key(Sort::Outpoint, &e);
            if after.is_some_and(|a| k <= a) || !filter.accepts(&e) {
                continue;
            }
            if script.is_none() {
                script = Some(p.script.to_vec());
            }
            extra.push((k, e));
        }
        if !extra.is_empty() {
            chosen.extend(extra);
            chosen.sort_by_key(|(k, _)| *k);
        }
    } else {
        // Any other order: examine everything, keep the best limit + 1.
        let mut heap: BinaryHeap<(SortKey, HeapEntry)> = BinaryHeap::new();
        let mut offer = |k: SortKey, e: UtxoEntry| {
            if after.is_some_and(|a| k <= a) {
                return;
            }
            if heap.len() <= limit {
                heap.push((k, HeapEntry(e)));
            } else if heap.peek().is_some_and(|(top, _)| k < *top) {
                heap.pop();
                heap.push((k, HeapEntry(e)));
            }
        };
        store.visit_script(&query.scripthash, None, |key, v| {
            let e = confirmed_entry(key, &v);
            if script.is_none() {
                script = Some(v.script);
            }
            if filter.accepts(&e) {
                offer(sort_key(query.sort, &e), e);
            }
            Ok(true)
        })?;
        for (e, p) in pending {
            if script.is_none() {
                script = Some(p.script.to_vec());
            }
            if filter.accepts(&e) {
                offer(sort_key(query.sort, &e), e);
            }
        }
        chosen = heap.into_iter().map(|(k, HeapEntry(e))| (k, e)).collect();
        chosen.sort_by_key(|(k, _)| *k);
    }

    let more = chosen.len() > limit;
    chosen.truncate(limit);
    let cursor = if more {
        chosen.last().map(|(k, _)| encode_cursor(query.sort, k))
    } else {
        None
    };
    let entries: Vec<UtxoEntry> = chosen.into_iter().map(|(_, e)| e).collect();
    Ok(UtxoPage {
        tip,
        script: if entries.is_empty() {
            Vec::new()
        } else {
            script.unwrap_or_default()
        },
        entries,
        more,
        cursor,
    })
}

/// Heap payload ordered by nothing: the sort key alone decides.
struct HeapEntry(UtxoEntry);

impl PartialEq for HeapEntry {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HeapEntry {}
impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapEntry {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}
