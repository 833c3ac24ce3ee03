//! The `format` decoders against real Bitcoin Core data: the regtest fixture's block
//! and undo files (XORed with `xor.dat`, zero-padded like bitcoind leaves them) and
//! what bitcoind itself reported over REST (`chain.json`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use opnet::format::block_index::{
    BLOCK_FAILED_MASK, BLOCK_HAVE_DATA, BLOCK_HAVE_UNDO, BLOCK_OPT_WITNESS, BLOCK_VALID_SCRIPTS,
};
use opnet::format::{
    check_spent_matches, decode_block_index, decode_block_undo, decode_rest_spent_txouts,
    encode_block_undo, undo_checksum, write_varint, BlockFiles, BlockSpent, FormatError,
};
use opnet::Network;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/regtest-small");

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURE).join(rel)
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// One block of chain.json.
struct ChainBlock {
    hash: BlockHash,
    height: u32,
    prev: BlockHash,
    raw: Vec<u8>,
    block: Block,
    rest: BlockSpent,
}

struct Chain {
    blocks: Vec<ChainBlock>,
    /// Connect/disconnect events in bitcoind's order.
    events: Vec<(bool, BlockHash)>,
}

impl Chain {
    fn load() -> Chain {
        let text = std::fs::read_to_string(fixture("chain.json")).expect("read chain.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("parse chain.json");
        assert_eq!(json["network"], "regtest");
        let blocks = json["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .map(|b| {
                let raw = unhex(b["raw"].as_str().expect("raw"));
                let block: Block = bitcoin::consensus::deserialize(&raw).expect("block decodes");
                let hash: BlockHash = b["hash"].as_str().expect("hash").parse().expect("hash");
                assert_eq!(block.block_hash(), hash);
                let rest = decode_rest_spent_txouts(&unhex(
                    b["spent_outputs_rest_bin"].as_str().expect("rest"),
                ))
                .unwrap_or_else(|e| panic!("REST data of {hash}: {e}"));
                ChainBlock {
                    hash,
                    height: b["height"].as_u64().expect("height") as u32,
                    prev: b["prev"].as_str().expect("prev").parse().expect("prev"),
                    raw,
                    block,
                    rest,
                }
            })
            .collect();
        let events = json["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                let kind = e[0].as_str().expect("event kind");
                assert!(kind == "connect" || kind == "disconnect", "{kind}");
                let hash: BlockHash = e[1].as_str().expect("event hash").parse().expect("hash");
                (kind == "connect", hash)
            })
            .collect();
        Chain { blocks, events }
    }

    fn by_hash(&self) -> HashMap<BlockHash, &ChainBlock> {
        self.blocks.iter().map(|b| (b.hash, b)).collect()
    }

    /// The active chain after replaying the first `n` events (height → hash).
    fn active_after(&self, n: usize) -> BTreeMap<u32, BlockHash> {
        let by_hash = self.by_hash();
        let mut active = BTreeMap::new();
        for (connect, hash) in &self.events[..n] {
            let height = by_hash[hash].height;
            if *connect {
                assert!(active.insert(height, *hash).is_none(), "connect over a tip");
            } else {
                assert_eq!(active.remove(&height), Some(*hash), "disconnect of non-tip");
            }
        }
        active
    }

    /// Datadir A was saved at the tip of branch A, before the first disconnect.
    fn active_a(&self) -> BTreeMap<u32, BlockHash> {
        let first_disconnect = self
            .events
            .iter()
            .position(|(connect, _)| !connect)
            .expect("the fixture has a reorg");
        self.active_after(first_disconnect)
    }

    /// Datadir B is at the end of all events.
    fn active_b(&self) -> BTreeMap<u32, BlockHash> {
        self.active_after(self.events.len())
    }
}

fn open(datadir: &str) -> BlockFiles {
    BlockFiles::open(
        &fixture(&format!("{datadir}/blocks")),
        Network::Regtest.magic(),
    )
    .expect("open blocks dir")
}

/// Snapshot of every file under a directory, to prove the tests changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
    out
}

#[test]
fn xor_key_is_read_from_the_datadir() {
    let files = open("datadir-A");
    assert_eq!(
        files.xor_key(),
        [0x42, 0x6e, 0xbd, 0x86, 0xce, 0xde, 0x04, 0x4c]
    );
}

/// Every record of both datadirs' blk00000.dat is a block bitcoind reported (or the
/// regtest genesis), byte for byte, and every reported block is found.
#[test]
fn scan_blocks_finds_every_block() {
    let chain = Chain::load();
    let by_hash = chain.by_hash();
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    for (datadir, expected_blocks) in [
        ("datadir-A", chain.active_a()),
        ("datadir-B", BTreeMap::new()),
    ] {
        let before = snapshot(&fixture(datadir));
        let files = open(datadir);
        let records = files.scan_blocks(0).expect("scan blk00000.dat");
        let mut found = BTreeSet::new();
        for (pos, size) in &records {
            let raw = files.read_block(0, *pos).expect("read block");
            assert_eq!(raw.len(), *size as usize);
            let block: Block = bitcoin::consensus::deserialize(&raw).expect("block decodes");
            let hash = block.block_hash();
            if hash == Network::Regtest.genesis_hash() {
                assert_eq!(raw, bitcoin::consensus::serialize(&genesis));
                assert_eq!(*pos, 8, "genesis is the first record");
            } else {
                let known = by_hash
                    .get(&hash)
                    .unwrap_or_else(|| panic!("{datadir}: block {hash} not in chain.json"));
                assert_eq!(raw, known.raw, "{datadir}: bytes of {hash}");
            }
            assert!(found.insert(hash), "{datadir}: {hash} stored twice");
        }
        if datadir == "datadir-A" {
            // Genesis plus exactly branch A: the B blocks did not exist yet.
            assert_eq!(records.len(), 1 + expected_blocks.len());
            for hash in expected_blocks.values() {
                assert!(found.contains(hash), "A block {hash} missing");
            }
        } else {
            // Genesis plus every block ever connected, stale ones included.
            assert_eq!(records.len(), 1 + chain.blocks.len());
            for b in &chain.blocks {
                assert!(found.contains(&b.hash), "block {} missing", b.hash);
            }
        }
        assert_eq!(
            snapshot(&fixture(datadir)),
            before,
            "{datadir} was modified"
        );
    }
}

/// The REST serialization decodes for every block and has its shape.
#[test]
fn rest_spent_outputs_match_their_blocks() {
    let chain = Chain::load();
    let mut p2pk_uncompressed = 0;
    for b in &chain.blocks {
        check_spent_matches(&b.block, &b.rest)
            .unwrap_or_else(|e| panic!("block {} at {}: {e}", b.hash, b.height));
        for entry in b.rest.iter().flatten() {
            assert_eq!((entry.height, entry.coinbase), (None, None));
            if entry.script.len() == 67 && entry.script[..2] == [0x41, 0x04] {
                p2pk_uncompressed += 1;
            }
        }
    }
    assert!(
        p2pk_uncompressed > 0,
        "the fixture spends uncompressed P2PK outputs"
    );

    // A mismatched pairing is caught: the REST data of a block with spends against
    // a block of another shape.
    let spender = chain
        .blocks
        .iter()
        .find(|b| b.rest.iter().flatten().count() > 0)
        .expect("a block with spends");
    let coinbase_only = chain
        .blocks
        .iter()
        .find(|b| b.block.txdata.len() == 1)
        .expect("a coinbase-only block");
    assert!(matches!(
        check_spent_matches(&coinbase_only.block, &spender.rest),
        Err(FormatError::Mismatch { .. })
    ));
    let mut short = spender.rest.clone();
    let last = short
        .iter_mut()
        .rev()
        .find(|l| !l.is_empty())
        .expect("non-empty list");
    last.pop();
    match check_spent_matches(&spender.block, &short) {
        Err(FormatError::Mismatch { detail, .. }) => {
            assert!(detail.contains("inputs to undo"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

/// One undo record of a rev file, paired with the block it belongs to.
struct UndoRecord {
    pos: u32,
    block: BlockHash,
    spent: BlockSpent,
}

/// Pairs every record of `rev00000.dat` with the one block whose parent hash makes
/// the stored checksum verify and whose REST data has the same amounts and scripts.
fn pair_undo_records(datadir: &str, chain: &Chain) -> Vec<UndoRecord> {
    let files = open(datadir);
    let records = files.scan_undo(0).expect("scan rev00000.dat");
    let mut out = Vec::new();
    for (pos, size) in records {
        let (payload, stored) = files.read_undo_unverified(0, pos).expect("read undo");
        assert_eq!(payload.len(), size as usize);
        let spent = decode_block_undo(&payload)
            .unwrap_or_else(|e| panic!("{datadir}: undo record at {pos}: {e}"));
        let matches: Vec<&ChainBlock> = chain
            .blocks
            .iter()
            .filter(|b| undo_checksum(&b.prev, &payload) == stored)
            .filter(|b| same_outputs(&spent, &b.rest))
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "{datadir}: undo record at {pos} matches {} blocks",
            matches.len()
        );
        let block = matches[0];
        // The verified read agrees, and fails for any other parent.
        assert_eq!(
            files.read_undo(0, pos, &block.prev).expect("verified read"),
            payload
        );
        assert!(matches!(
            files.read_undo(0, pos, &block.hash),
            Err(FormatError::BadRecord { .. })
        ));
        out.push(UndoRecord {
            pos,
            block: block.hash,
            spent,
        });
    }
    out
}

/// Same amounts and scripts in the same places (rev data has heights, REST has not).
fn same_outputs(undo: &BlockSpent, rest: &BlockSpent) -> bool {
    undo.len() == rest.len()
        && undo.iter().zip(rest).all(|(u, r)| {
            u.len() == r.len()
                && u.iter()
                    .zip(r)
                    .all(|(u, r)| u.amount == r.amount && u.script == r.script)
        })
}

#[test]
fn rev_records_equal_rest_data_for_the_active_chain() {
    let chain = Chain::load();
    let by_hash = chain.by_hash();
    for (datadir, active) in [
        ("datadir-A", chain.active_a()),
        ("datadir-B", chain.active_b()),
    ] {
        let before = snapshot(&fixture(datadir));
        let records = pair_undo_records(datadir, &chain);
        let paired: BTreeSet<BlockHash> = records.iter().map(|r| r.block).collect();
        assert_eq!(
            paired.len(),
            records.len(),
            "{datadir}: a block has two undo records"
        );
        for hash in active.values() {
            assert!(
                paired.contains(hash),
                "{datadir}: no undo record for active {hash}"
            );
        }
        if datadir == "datadir-A" {
            assert_eq!(records.len(), active.len());
        } else {
            // The disconnected A blocks keep their undo records.
            assert_eq!(records.len(), chain.blocks.len());
        }

        let mut p2pk_uncompressed = 0;
        let mut coinbase_spends = 0;
        for record in &records {
            let block = by_hash[&record.block];
            check_spent_matches(&block.block, &record.spent).expect("undo shape");
            for entry in record.spent.iter().flatten() {
                let height = entry.height.expect("rev data has heights");
                // Created at or below the spending block (same-block spends are
                // undone with the block's own height).
                assert!(height <= block.height, "spent output from the future");
                if entry.coinbase == Some(true) {
                    coinbase_spends += 1;
                    assert!(height + 100 <= block.height, "immature coinbase spend");
                }
                if entry.script.len() == 67 && entry.script[..2] == [0x41, 0x04] {
                    p2pk_uncompressed += 1;
                }
            }
            // Re-encoding gives Core's bytes back.
            let (payload, _) = open(datadir)
                .read_undo_unverified(0, record.pos)
                .expect("read undo");
            let mut again = Vec::new();
            encode_block_undo(&record.spent, &mut again);
            assert_eq!(
                again, payload,
                "{datadir}: re-encoding record at {}",
                record.pos
            );
        }
        assert!(
            p2pk_uncompressed > 0,
            "{datadir}: no uncompressed P2PK spend decoded"
        );
        assert!(coinbase_spends > 0, "{datadir}: no coinbase spend decoded");
        assert_eq!(
            snapshot(&fixture(datadir)),
            before,
            "{datadir} was modified"
        );
    }
}

/// Test-only encoder of a `CDiskBlockIndex` value, as Core writes it.
#[allow(clippy::too_many_arguments)]
fn encode_index_value(
    height: u32,
    status: u32,
    n_tx: u32,
    file: u32,
    data_pos: u32,
    undo_pos: u32,
    header: &bitcoin::block::Header,
) -> Vec<u8> {
    let mut value = Vec::new();
    write_varint(&mut value, 259_900); // DUMMY_VERSION
    write_varint(&mut value, u64::from(height));
    write_varint(&mut value, u64::from(status));
    write_varint(&mut value, u64::from(n_tx));
    write_varint(&mut value, u64::from(file));
    write_varint(&mut value, u64::from(data_pos));
    write_varint(&mut value, u64::from(undo_pos));
    value.extend_from_slice(&bitcoin::consensus::serialize(header));
    value
}

/// A block index record built around a real header, pointing at the block's real
/// positions, leads back to its block and undo data.
#[test]
fn block_index_record_of_a_real_block() {
    let chain = Chain::load();
    let files = open("datadir-A");
    let active = chain.active_a();
    let hash = active[&100];
    let block = chain.by_hash()[&hash];
    let data_pos = files
        .scan_blocks(0)
        .expect("scan")
        .into_iter()
        .map(|(pos, _)| pos)
        .find(|&pos| files.read_block(0, pos).expect("read") == block.raw)
        .expect("block 100 in blk00000.dat");
    let undo_pos = pair_undo_records("datadir-A", &chain)
        .into_iter()
        .find(|r| r.block == hash)
        .expect("undo of block 100")
        .pos;

    let status = BLOCK_VALID_SCRIPTS | BLOCK_HAVE_DATA | BLOCK_HAVE_UNDO | BLOCK_OPT_WITNESS;
    let n_tx = block.block.txdata.len() as u32;
    let mut key = vec![b'b'];
    key.extend_from_slice(hash.as_byte_array());
    let value = encode_index_value(
        100,
        status,
        n_tx,
        0,
        data_pos,
        undo_pos,
        &block.block.header,
    );

    let index = decode_block_index(&key, &value).expect("decode");
    assert_eq!(index.hash, hash);
    assert_eq!(index.height, 100);
    assert_eq!(index.status, status);
    assert_eq!(index.n_tx, n_tx);
    assert_eq!(index.file, Some(0));
    assert_eq!(index.data_pos, Some(data_pos));
    assert_eq!(index.undo_pos, Some(undo_pos));
    assert_eq!(index.header, block.block.header);
    assert!(index.have_data() && index.have_undo() && !index.failed());
    assert_eq!(index.valid_level(), BLOCK_VALID_SCRIPTS);

    // Follow the record to the data.
    assert_eq!(files.read_block(0, data_pos).expect("block"), block.raw);
    let undo = files
        .read_undo(0, undo_pos, &index.header.prev_blockhash)
        .expect("undo");
    let spent = decode_block_undo(&undo).expect("decode undo");
    assert!(same_outputs(&spent, &block.rest));

    // A failed block, and a header that does not belong to the key.
    let failed = encode_index_value(
        100,
        status | BLOCK_FAILED_MASK,
        n_tx,
        0,
        data_pos,
        undo_pos,
        &block.block.header,
    );
    assert!(decode_block_index(&key, &failed).expect("decode").failed());
    let other = &chain.by_hash()[&active[&101]].block.header;
    let wrong = encode_index_value(100, status, n_tx, 0, data_pos, undo_pos, other);
    assert!(decode_block_index(&key, &wrong).is_err());
}

/// Real records cut at every length, and real records with random bytes changed,
/// never panic; every strict prefix is an error.
#[test]
fn real_records_truncated_and_mutated() {
    let chain = Chain::load();
    let files = open("datadir-A");
    let records = files.scan_undo(0).expect("scan");
    // The largest undo payload under 4 KiB and the largest REST body under 4 KiB.
    let undo = records
        .iter()
        .filter(|(_, size)| *size < 4096)
        .max_by_key(|(_, size)| *size)
        .map(|(pos, _)| files.read_undo_unverified(0, *pos).expect("read").0)
        .expect("an undo record");
    let rest = chain
        .blocks
        .iter()
        .map(|b| {
            let mut out = Vec::new();
            opnet::format::write_compact_size(&mut out, b.rest.len() as u64);
            for list in &b.rest {
                opnet::format::write_compact_size(&mut out, list.len() as u64);
                for e in list {
                    out.extend_from_slice(&(e.amount as i64).to_le_bytes());
                    opnet::format::write_compact_size(&mut out, e.script.len() as u64);
                    out.extend_from_slice(&e.script);
                }
            }
            out
        })
        .filter(|bytes| bytes.len() < 4096)
        .max_by_key(|bytes| bytes.len())
        .expect("a REST body");
    assert!(undo.len() > 500 && rest.len() > 500, "non-trivial samples");
    assert!(decode_block_undo(&undo).is_ok());
    assert!(decode_rest_spent_txouts(&rest).is_ok());
    for len in 0..undo.len() {
        assert!(
            decode_block_undo(&undo[..len]).is_err(),
            "undo prefix {len}"
        );
    }
    for len in 0..rest.len() {
        assert!(
            decode_rest_spent_txouts(&rest[..len]).is_err(),
            "REST prefix {len}"
        );
    }
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5_000 {
        for sample in [&undo, &rest] {
            let mut bytes = sample.clone();
            for _ in 0..1 + next() % 3 {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = next() as u8;
            }
            let _ = decode_block_undo(&bytes);
            let _ = decode_rest_spent_txouts(&bytes);
        }
    }
}
