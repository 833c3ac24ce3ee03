//! Follow mode against a fake bitcoind serving the fixture's real recorded bytes:
//! the source must hand over exactly what bitcoind recorded, refuse a wrong node or
//! wrong credentials with a clear message, and the follower must turn tip changes
//! (extensions and the recorded reorg) into exactly the recorded events.

#[path = "../../core/tests/common/mod.rs"]
mod common;
#[path = "support/fake_bitcoind.rs"]
mod fake_bitcoind;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use common::{fixture, load_chain, unhex};
use fake_bitcoind::{FakeBitcoind, FakeConfig};
use opnet::replay::ReplayStep;
use opnet::source::{ChainSource, SourceError};
use opnet::Network;
use opnet_host::chain::{HostChain, SpentBytes, SpentFormat};
use opnet_host::follow::{FollowError, FollowSource, Follower, RpcAuth, TipStep};
use serde_json::Value;

/// Height of the tip of branch A, and the number of recorded events reaching it.
const TIP_A: u32 = 170;
/// All recorded events: the tip of branch B (172).
const ALL_STEPS: usize = 178;

fn auth() -> RpcAuth {
    RpcAuth::UserPass("user".into(), "pass".into())
}

fn fake_at(steps: usize) -> FakeBitcoind {
    let fake = FakeBitcoind::start(FakeConfig::default());
    fake.set_tip_after_steps(steps);
    fake
}

fn connect(fake: &FakeBitcoind) -> Arc<FollowSource> {
    Arc::new(FollowSource::connect(&fake.url(), auth(), Network::Regtest).unwrap())
}

/// What chain.json says, read here independently of the fake: hash → (height, raw
/// block, REST spent-output bytes).
fn recorded_bytes() -> HashMap<BlockHash, (u32, Vec<u8>, Vec<u8>)> {
    let text = std::fs::read_to_string(fixture("chain.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["hash"].as_str().unwrap().parse().unwrap(),
                (
                    b["height"].as_u64().unwrap() as u32,
                    unhex(b["raw"].as_str().unwrap()),
                    unhex(b["spent_outputs_rest_bin"].as_str().unwrap()),
                ),
            )
        })
        .collect()
}

/// The recorded events as the steps a follower must report: each with the height
/// of the block it connects, or of the tip it disconnects.
fn recorded_steps() -> Vec<TipStep> {
    let (blocks, steps) = load_chain();
    let height: HashMap<BlockHash, u32> = blocks
        .iter()
        .map(|b| (b.block.block_hash(), b.height))
        .collect();
    steps
        .iter()
        .map(|s| match *s {
            ReplayStep::Connect(hash) => TipStep::Connect {
                hash,
                height: height[&hash],
            },
            ReplayStep::Disconnect(hash) => TipStep::Disconnect {
                hash,
                height: height[&hash],
            },
        })
        .collect()
}

/// The active chain after all recorded events, by height (genesis first).
fn recorded_active_chain() -> Vec<BlockHash> {
    let (_, steps) = load_chain();
    let mut active = vec![Network::Regtest.genesis_hash()];
    for s in steps {
        match s {
            ReplayStep::Connect(h) => active.push(h),
            ReplayStep::Disconnect(h) => assert_eq!(active.pop(), Some(h)),
        }
    }
    active
}

/// Runs `f` on another thread once the fake has a long-poll waiting.
fn when_polling(fake: &Arc<FakeBitcoind>, f: impl FnOnce(&FakeBitcoind) + Send + 'static) {
    let fake = fake.clone();
    thread::spawn(move || {
        assert!(
            fake.wait_for_pollers(1, Duration::from_secs(10)),
            "no long-poll arrived"
        );
        f(&fake);
    });
}

#[test]
fn source_answers_equal_the_recorded_chain() {
    let fake = fake_at(ALL_STEPS);
    let source = connect(&fake);
    let recorded = recorded_bytes();
    let (blocks, _) = load_chain();
    assert_eq!(recorded.len(), blocks.len());

    for b in &blocks {
        let hash = b.block.block_hash();
        let (height, raw, spent) = &recorded[&hash];
        assert_eq!(&source.block_bytes(&hash).unwrap(), raw, "block {height}");
        assert_eq!(
            source.spent_bytes(&hash).unwrap(),
            SpentBytes {
                format: SpentFormat::Rest,
                bytes: spent.clone()
            }
        );
        assert_eq!(source.block(&hash).unwrap(), b.block);
        assert_eq!(source.spent_outputs(&hash).unwrap(), b.spent);
        let header = source.header(&hash).unwrap().unwrap();
        assert_eq!((header.header, header.height), (b.block.header, b.height));
    }

    let active = recorded_active_chain();
    assert_eq!(active.len(), 173);
    for (height, hash) in active.iter().enumerate() {
        assert_eq!(source.hash_at_height(height as u32).unwrap(), Some(*hash));
    }
    assert_eq!(source.hash_at_height(173).unwrap(), None);
    assert_eq!(source.hash_at_height(u32::MAX).unwrap(), None);
    let tip = source.tip().unwrap();
    assert_eq!((tip.height, tip.hash), (172, active[172]));
    assert_eq!(source.network(), Network::Regtest);

    // Genesis, which chain.json does not list, is served too.
    let genesis = Network::Regtest.genesis_hash();
    assert_eq!(source.header(&genesis).unwrap().unwrap().height, 0);
    assert_eq!(source.spent_outputs(&genesis).unwrap(), vec![Vec::new()]);

    let unknown = BlockHash::from_byte_array([0x5a; 32]);
    assert!(matches!(
        source.block(&unknown),
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        source.block_bytes(&unknown),
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        source.spent_bytes(&unknown),
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        source.spent_outputs(&unknown),
        Err(SourceError::NotFound(_))
    ));
    assert_eq!(source.header(&unknown).unwrap(), None);
}

#[test]
fn chunked_rest_bodies_are_read_whole() {
    let fake = FakeBitcoind::start(FakeConfig {
        chunked_rest: true,
        ..FakeConfig::default()
    });
    fake.set_tip_after_steps(ALL_STEPS);
    let source = connect(&fake);
    // The largest recorded block (the whale transaction) spans many chunks.
    let recorded = recorded_bytes();
    let (hash, (_, raw, spent)) = recorded
        .iter()
        .max_by_key(|(_, (_, raw, _))| raw.len())
        .unwrap();
    assert!(raw.len() > 50_000);
    assert_eq!(&source.block_bytes(hash).unwrap(), raw);
    assert_eq!(&source.spent_bytes(hash).unwrap().bytes, spent);
}

#[test]
fn transactions_need_a_txindex_and_a_block() {
    let fake = fake_at(ALL_STEPS);
    let source = connect(&fake);
    assert!(source.has_tx_index());
    let (blocks, _) = load_chain();
    let tip_block = blocks.iter().find(|b| b.height == 172).unwrap();
    let tx = &tip_block.block.txdata[1];
    let txid = tx.compute_txid();
    assert_eq!(source.transaction(&txid).unwrap().as_ref(), Some(tx));
    assert_eq!(
        source.transaction_bytes(&txid).unwrap(),
        Some(bitcoin::consensus::serialize(tx))
    );
    // A mempool transaction is not a confirmed one.
    let text = std::fs::read_to_string(fixture("chain.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mempool_tx: bitcoin::Transaction =
        bitcoin::consensus::deserialize(&unhex(v["mempool"][0].as_str().unwrap())).unwrap();
    assert_eq!(
        source.transaction(&mempool_tx.compute_txid()).unwrap(),
        None
    );
    assert_eq!(
        source.transaction(&Txid::from_byte_array([7; 32])).unwrap(),
        None
    );

    let fake = FakeBitcoind::start(FakeConfig {
        txindex: false,
        ..FakeConfig::default()
    });
    let source = connect(&fake);
    assert!(!source.has_tx_index());
    match source.transaction(&txid) {
        Err(SourceError::Unsupported(m)) => assert!(m.contains("-txindex"), "{m}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(matches!(
        source.transaction_bytes(&txid),
        Err(SourceError::Unsupported(_))
    ));
}

#[test]
fn a_node_on_another_network_is_refused() {
    let fake = FakeBitcoind::start(FakeConfig {
        chain: "main".into(),
        ..FakeConfig::default()
    });
    let err = FollowSource::connect(&fake.url(), auth(), Network::Regtest)
        .err()
        .unwrap();
    assert!(matches!(err, FollowError::WrongNetwork { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("'main'") && msg.contains("'regtest'") && msg.contains(&fake.url()),
        "{msg}"
    );
    let regtest = FakeBitcoind::start(FakeConfig::default());
    let err = FollowSource::connect(&regtest.url(), auth(), Network::Signet)
        .err()
        .unwrap();
    assert!(err.to_string().contains("'regtest'"), "{err}");
}

#[test]
fn rest_must_be_on_and_serve_spent_outputs() {
    let fake = FakeBitcoind::start(FakeConfig {
        rest: false,
        ..FakeConfig::default()
    });
    let err = FollowSource::connect(&fake.url(), auth(), Network::Regtest)
        .err()
        .unwrap();
    assert!(
        matches!(err, FollowError::RestDisabled { status: 404, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("start bitcoind with -rest"),
        "{err}"
    );

    let fake = FakeBitcoind::start(FakeConfig {
        spenttxouts: false,
        ..FakeConfig::default()
    });
    let err = FollowSource::connect(&fake.url(), auth(), Network::Regtest)
        .err()
        .unwrap();
    assert!(matches!(err, FollowError::NoSpentTxouts { .. }), "{err:?}");
    assert!(err.to_string().contains("30.0"), "{err}");
}

#[test]
fn a_wrong_password_is_an_authentication_error() {
    let fake = FakeBitcoind::start(FakeConfig::default());
    let wrong = RpcAuth::UserPass("user".into(), "not-the-password".into());
    let err = FollowSource::connect(&fake.url(), wrong, Network::Regtest)
        .err()
        .unwrap();
    assert!(matches!(err, FollowError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("RPC authentication failed"), "{msg}");
    assert!(msg.contains("user 'user'"), "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
    assert!(matches!(
        SourceError::from(err),
        SourceError::Unavailable(_)
    ));
}

#[test]
fn cookie_auth_works_and_is_reread_when_bitcoind_rewrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let cookie = dir.path().join(".cookie");
    std::fs::write(&cookie, "__cookie__:first").unwrap();
    let fake = FakeBitcoind::start(FakeConfig {
        user: "__cookie__".into(),
        password: "first".into(),
        ..FakeConfig::default()
    });
    fake.set_tip_after_steps(10);
    let source = FollowSource::connect(
        &fake.url(),
        RpcAuth::Cookie(cookie.clone()),
        Network::Regtest,
    )
    .unwrap();
    assert_eq!(source.tip().unwrap().height, 10);

    // bitcoind restarted: a new cookie, the old one rejected.
    fake.set_credentials("__cookie__", "second");
    std::fs::write(&cookie, "__cookie__:second").unwrap();
    assert_eq!(source.tip().unwrap().height, 10);

    // A cookie that does not match is an authentication error naming the file.
    std::fs::write(&cookie, "__cookie__:stale").unwrap();
    fake.set_credentials("__cookie__", "third");
    match source.tip() {
        Err(SourceError::Unavailable(m)) => {
            assert!(m.contains("RPC authentication failed"), "{m}");
            assert!(m.contains(".cookie"), "{m}");
            assert!(!m.contains("stale"), "{m}");
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }

    let missing = dir.path().join("no-such-cookie");
    let err = FollowSource::connect(&fake.url(), RpcAuth::Cookie(missing), Network::Regtest)
        .err()
        .unwrap();
    assert!(matches!(err, FollowError::Cookie { .. }), "{err:?}");
}

#[test]
fn follower_announces_new_blocks_in_order() {
    let fake = Arc::new(fake_at(100));
    let source = connect(&fake);
    let mut follower = Follower::new(source).unwrap();
    assert_eq!(follower.tip().height, 100);
    let expected = recorded_steps()[100..105].to_vec();
    assert_eq!(
        expected.iter().map(height_of).collect::<Vec<_>>(),
        vec![101, 102, 103, 104, 105]
    );

    when_polling(&fake, |fake| fake.set_tip_after_steps(105));
    let steps = follower.next_steps(Duration::from_secs(20)).unwrap();
    assert_eq!(steps, expected);
    assert_eq!(follower.tip().height, 105);
    assert!(follower.take_warnings().is_empty());
}

fn height_of(step: &TipStep) -> u32 {
    match *step {
        TipStep::Connect { height, .. } | TipStep::Disconnect { height, .. } => height,
    }
}

#[test]
fn an_idle_follower_only_long_polls() {
    let fake = fake_at(100);
    let mut follower = Follower::new(connect(&fake)).unwrap();
    fake.clear_requests();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(
            follower.next_steps(Duration::from_millis(300)).unwrap(),
            vec![]
        );
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "it did not wait"
        );
    }
    assert_eq!(fake.requests(), vec!["rpc:waitfornewblock"; 3]);
}

#[test]
fn the_reorg_from_a_to_b_is_three_disconnects_then_five_connects() {
    let fake = Arc::new(fake_at(TIP_A as usize));
    assert_eq!(fake.tip().0, TIP_A);
    let mut follower = Follower::new(connect(&fake)).unwrap();
    assert_eq!(follower.tip().height, TIP_A);

    when_polling(&fake, |fake| fake.set_tip_after_steps(ALL_STEPS));
    let steps = follower.next_steps(Duration::from_secs(20)).unwrap();
    let expected = recorded_steps()[TIP_A as usize..ALL_STEPS].to_vec();
    assert_eq!(steps, expected);
    assert_eq!(
        steps.iter().map(height_of).collect::<Vec<_>>(),
        vec![170, 169, 168, 168, 169, 170, 171, 172]
    );
    assert!(steps[..3]
        .iter()
        .all(|s| matches!(s, TipStep::Disconnect { .. })));
    assert!(steps[3..]
        .iter()
        .all(|s| matches!(s, TipStep::Connect { .. })));
    assert_eq!(follower.tip().height, 172);
}

#[test]
fn stepping_event_by_event_reproduces_the_recorded_sequence() {
    let fake = fake_at(160);
    let mut follower = Follower::new(connect(&fake)).unwrap();
    let mut seen = Vec::new();
    for n in 161..=ALL_STEPS {
        // The tip moves between two calls: the next call must still see it.
        fake.set_tip_after_steps(n);
        seen.extend(follower.next_steps(Duration::from_secs(20)).unwrap());
    }
    assert_eq!(seen, recorded_steps()[160..].to_vec());
}

#[test]
fn an_older_node_without_current_tip_still_sees_changes_between_polls() {
    let fake = FakeBitcoind::start(FakeConfig {
        current_tip_param: false,
        ..FakeConfig::default()
    });
    fake.set_tip_after_steps(100);
    let mut follower = Follower::new(connect(&fake)).unwrap();
    fake.set_tip_after_steps(102);
    let start = Instant::now();
    let steps = follower.next_steps(Duration::from_secs(20)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(steps, recorded_steps()[100..102].to_vec());
    let warnings = follower.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("current_tip"), "{warnings:?}");
    assert_eq!(
        follower.next_steps(Duration::from_millis(100)).unwrap(),
        vec![]
    );
}

#[test]
fn a_reorg_deeper_than_memory_is_announced_as_the_new_tip() {
    let fake = fake_at(TIP_A as usize);
    let mut follower = Follower::with_memory(connect(&fake), 3).unwrap();
    fake.set_tip_after_steps(ALL_STEPS);
    let steps = follower.next_steps(Duration::from_secs(20)).unwrap();
    let last = *recorded_steps().last().unwrap();
    assert_eq!(steps, vec![last]);
    assert_eq!(height_of(&last), 172);
    let warnings = follower.take_warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains("reorg deeper"),
        "{warnings:?}"
    );
}

#[test]
fn a_node_that_dies_mid_poll_is_an_error_not_a_hang() {
    let fake = Arc::new(std::sync::Mutex::new(Some(fake_at(100))));
    let source = {
        let guard = fake.lock().unwrap();
        connect(guard.as_ref().unwrap())
    };
    let mut follower = Follower::new(source.clone()).unwrap();
    let killer = fake.clone();
    thread::spawn(move || {
        let mut guard = killer.lock().unwrap();
        let f = guard.as_mut().unwrap();
        assert!(f.wait_for_pollers(1, Duration::from_secs(10)));
        f.kill();
    });
    let start = Instant::now();
    let err = follower.next_steps(Duration::from_secs(30)).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "hung for {:?}",
        start.elapsed()
    );
    assert!(err.is_connection(), "{err:?}");
    assert!(matches!(
        SourceError::from(err),
        SourceError::Unavailable(_)
    ));
    // The source's own calls fail the same way once the node is gone.
    assert!(matches!(source.tip(), Err(SourceError::Unavailable(_))));
}

#[test]
fn connections_the_node_closed_while_idle_are_reopened() {
    // Like bitcoind closing kept-alive connections after -rpcservertimeout.
    let fake = FakeBitcoind::start(FakeConfig {
        close_after_response: true,
        ..FakeConfig::default()
    });
    fake.set_tip_after_steps(ALL_STEPS);
    let source = connect(&fake);
    fake.clear_requests();
    let active = recorded_active_chain();
    for height in 0..20u32 {
        assert_eq!(
            source.hash_at_height(height).unwrap(),
            Some(active[height as usize])
        );
        let hash = active[height as usize];
        assert_eq!(source.block(&hash).unwrap().block_hash(), hash);
    }
    // Each call reached the node exactly once.
    assert_eq!(fake.requests().len(), 40);
}

#[test]
fn a_long_poll_does_not_hold_up_other_calls() {
    let fake = fake_at(100);
    let source = connect(&fake);
    let mut follower = Follower::new(source.clone()).unwrap();
    let poll = thread::spawn(move || follower.next_steps(Duration::from_secs(3)));
    assert!(fake.wait_for_pollers(1, Duration::from_secs(10)));
    let start = Instant::now();
    assert_eq!(source.tip().unwrap().height, 100);
    assert!(source
        .block(&source.hash_at_height(50).unwrap().unwrap())
        .is_ok());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(poll.join().unwrap().unwrap(), vec![]);
}

#[test]
fn after_a_node_restart_the_follower_resumes_where_it_was() {
    let mut fake = fake_at(100);
    let addr = fake.addr();
    let recorded = fake.recorded().clone();
    let mut follower = Follower::new(connect(&fake)).unwrap();
    fake.kill();
    let err = follower.next_steps(Duration::from_secs(5)).unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert_eq!(follower.tip().height, 100);

    let restarted = FakeBitcoind::start_on(addr, recorded, FakeConfig::default());
    restarted.set_tip_after_steps(103);
    let steps = follower.next_steps(Duration::from_secs(20)).unwrap();
    assert_eq!(steps, recorded_steps()[100..103].to_vec());
}
