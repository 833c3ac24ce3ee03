//! `opnet-host` with the real `libopnet_core.so` (dlopen), in each mode, on the
//! fixture chain, checked against Bitcoin Core's oracles through `opnet-cli`:
//! datadir A then datadir B on the same index (an offline reorg), replay of the
//! recorded chain with its reorg, and follow mode against a fake bitcoind that
//! serves the recorded bytes. Also: the datadir is never written outside
//! `opnet/` (and not at all with `--opnet-dir`), plugins that must be refused are
//! refused while the host carries on, and the header compiles as C and C++.
//!
//! The plugin must be built next to the binaries (`scripts/test.sh` does it:
//! `cargo build --release -p opnet-plugin`).

#[path = "../../core/tests/common/mod.rs"]
mod common;
#[path = "support/fake_bitcoind.rs"]
mod fake_bitcoind;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{fingerprint, fixture, load_oracle, Oracle, Utxo};
use serde_json::Value;

fn host_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_opnet-host"))
}

/// The plugin built alongside the binaries.
fn plugin() -> PathBuf {
    let p = host_bin().parent().unwrap().join("libopnet_core.so");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --release -p opnet-plugin` (scripts/test.sh does)",
        p.display()
    );
    p
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin/include")
}

/// A writable copy of a fixture directory.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}

/// Every file of `dir` except those under `dir/opnet`.
fn outside_opnet(dir: &Path) -> BTreeMap<PathBuf, (u64, [u8; 32])> {
    let mut f = fingerprint(dir);
    f.retain(|p, _| !p.starts_with(dir.join("opnet")));
    f
}

/// A running `opnet-host`: stdin/stdout for replay commands, stderr in a file.
struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Host {
    fn start(args: &[&str], log: &Path) -> Host {
        let mut child = Command::new(host_bin())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Host {
            child,
            stdin,
            stdout,
            log: log.to_path_buf(),
        }
    }

    /// Sends a replay command; returns the lines up to and including `ok`.
    fn command(&mut self, line: &str) -> Vec<String> {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            assert!(
                self.stdout.read_line(&mut l).unwrap() > 0,
                "host exited; log:\n{}",
                self.log()
            );
            let l = l.trim_end().to_string();
            let done = l == "ok" || l == "ok quit" || l.starts_with("error");
            out.push(l);
            if done {
                return out;
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status and the log.
    fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        let log = self.log();
        (status, log)
    }
}

fn cli_json(socket: &Path, args: &[&str]) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_opnet-cli"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until the plugin reports `synced` at the oracle's tip.
fn wait_for_tip(socket: &Path, oracle: &Oracle, host: &Host) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = cli_json(socket, &["status", "--json"]) {
            if v["synced"] == true
                && v["height"] == oracle.tip_height
                && v["hash"] == oracle.tip_hash.as_str()
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the plugin never reached {} {}; log:\n{}",
            oracle.tip_height,
            oracle.tip_hash,
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every script either oracle lists.
fn all_scripts() -> BTreeSet<String> {
    let a = load_oracle("oracle-A.json");
    let b = load_oracle("oracle-B.json");
    a.utxos
        .iter()
        .chain(b.utxos.iter())
        .map(|u| u.0.clone())
        .collect()
}

/// What the plugin serves for every script, through `opnet-cli utxos --json`.
fn served(socket: &Path) -> BTreeSet<Utxo> {
    let mut out = BTreeSet::new();
    for script in all_scripts() {
        let v = cli_json(socket, &["utxos", &script, "--json"]).expect("opnet-cli utxos");
        for u in v["utxos"].as_array().unwrap() {
            assert_eq!(u["script"], script.as_str());
            out.insert((
                script.clone(),
                u["txid"].as_str().unwrap().to_string(),
                u["vout"].as_u64().unwrap() as u32,
                u["sats"].as_u64().unwrap(),
                u["height"].as_u64().unwrap() as u32,
                u["coinbase"].as_bool().unwrap(),
            ));
        }
    }
    out
}

fn assert_serves(socket: &Path, oracle: &Oracle) {
    let got = served(socket);
    assert_eq!(got.len(), oracle.utxos.len());
    assert_eq!(got, oracle.utxos);
    assert_eq!(got.iter().map(|u| u.3).sum::<u64>(), oracle.total_amount);
}

#[test]
fn datadir_a_then_datadir_b_on_the_same_index_serves_each_oracle_and_writes_nothing_in_the_datadir()
{
    let (a, b) = (load_oracle("oracle-A.json"), load_oracle("oracle-B.json"));
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("A"), tmp.path().join("B"));
    copy_dir(&fixture("datadir-A"), &dir_a);
    copy_dir(&fixture("datadir-B"), &dir_b);

    // Default opnet dir: --once syncs and exits 0; only <datadir>/opnet/ is new.
    let before = fingerprint(&dir_a);
    let out = Command::new(host_bin())
        .args(["--datadir", dir_a.to_str().unwrap(), "--once", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        outside_opnet(&dir_a),
        before,
        "opnet-host wrote outside <datadir>/opnet"
    );
    assert!(dir_a.join("opnet/index").is_dir());
    assert!(
        !dir_a.join("opnet/chainstate-snapshot").exists(),
        "the scan snapshot is removed"
    );
    assert!(
        !dir_a.join("opnet/opnet.sock").exists(),
        "the socket is removed on exit"
    );

    // --opnet-dir: nothing at all is written in the datadir.
    let idx = tmp.path().join("idx");
    let socket = idx.join("opnet.sock");
    let before_a = fingerprint(&dir_a);
    let host = Host::start(
        &[
            "--datadir",
            dir_a.to_str().unwrap(),
            "--opnet-dir",
            idx.to_str().unwrap(),
        ],
        &tmp.path().join("a.log"),
    );
    wait_for_tip(&socket, &a, &host);
    assert_serves(&socket, &a);
    let (status, log) = host.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("shutting down signal=\"SIGTERM\""), "{log}");
    assert!(!socket.exists());
    assert_eq!(fingerprint(&dir_a), before_a);

    // The same index, now over datadir B: the reorg happened while it was off.
    let before_b = fingerprint(&dir_b);
    let host = Host::start(
        &[
            "--datadir",
            dir_b.to_str().unwrap(),
            "--network",
            "regtest",
            "--opnet-dir",
            idx.to_str().unwrap(),
        ],
        &tmp.path().join("b.log"),
    );
    wait_for_tip(&socket, &b, &host);
    assert_serves(&socket, &b);
    let (status, log) = host.stop();
    assert!(status.success(), "{log}");
    assert_eq!(fingerprint(&dir_b), before_b);
}

#[test]
fn replay_steps_through_the_recorded_chain_and_its_reorg_on_command() {
    let (a, b) = (load_oracle("oracle-A.json"), load_oracle("oracle-B.json"));
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    let socket = idx.join("opnet.sock");
    let chain = fixture("chain.json");
    let mut host = start_replay(
        &chain,
        &idx,
        &["-opnetundodepth=10"],
        &tmp.path().join("replay.log"),
    );
    // The recorded events: 170 connects of branch A, 3 disconnects, 5 connects.
    let steps = common::load_chain().1;
    assert_eq!(steps.len(), 178);
    let lines = host.command("step 170");
    assert_eq!(lines.len(), 171, "{lines:?}");
    assert_eq!(lines[169], format!("connect 170 {}", a.tip_hash));
    let lines = host.command("sync");
    assert_eq!(
        lines[0],
        format!("synced tip 170 {} step 170/178", a.tip_hash)
    );
    wait_for_tip(&socket, &a, &host);
    assert_serves(&socket, &a);

    // A subscriber sees the reorg as it is replayed.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_opnet-cli"))
        .arg("--socket")
        .arg(&socket)
        .args(["watch", "--json", "--kinds", "blocks"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut watched = BufReader::new(watch.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let lines = host.command("run");
    assert_eq!(lines.len(), 9, "{lines:?}");
    assert!(lines[0].starts_with("disconnect 170 "), "{lines:?}");
    assert!(lines[2].starts_with("disconnect 168 "), "{lines:?}");
    assert_eq!(lines[7], format!("connect 172 {}", b.tip_hash));
    host.command("sync");
    wait_for_tip(&socket, &b, &host);
    assert_serves(&socket, &b);
    let mut kinds = Vec::new();
    for _ in 0..8 {
        let mut l = String::new();
        watched.read_line(&mut l).unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        kinds.push((
            v["type"].as_str().unwrap().to_string(),
            v["height"].as_u64().unwrap(),
        ));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let expected: Vec<(String, u64)> = [
        ("block_disconnected", 170),
        ("block_disconnected", 169),
        ("block_disconnected", 168),
    ]
    .into_iter()
    .chain((168..=172).map(|h| ("block_connected", h)))
    .map(|(k, h)| (k.to_string(), h))
    .collect();
    assert_eq!(kinds, expected);

    // Mempool transactions reach the plugin's mempool view.
    let lines = host.command("mempool all");
    assert_eq!(lines.last().unwrap(), "ok");
    let txs = lines.len() - 1;
    assert!(txs > 0);
    host.command("sync");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = cli_json(&socket, &["status", "--json"]).unwrap();
        if v["mempool_txs"] == txs as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mempool view has {} of {txs}; log:\n{}",
            v["mempool_txs"],
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(host.command("quit"), vec!["ok quit".to_string()]);
    let status = host.child.wait().unwrap();
    assert!(status.success());
    assert!(!socket.exists());
    let log = std::fs::read_to_string(tmp.path().join("replay.log")).unwrap();
    assert!(log.contains("shutting down plugin"), "{log}");
}

#[test]
fn follow_mode_tracks_a_node_through_the_reorg() {
    use fake_bitcoind::{FakeBitcoind, FakeConfig};
    let (a, b) = (load_oracle("oracle-A.json"), load_oracle("oracle-B.json"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("A");
    copy_dir(&fixture("datadir-A"), &dir);
    let fake = FakeBitcoind::start(FakeConfig::default());
    let tip_a: bitcoin::BlockHash = a.tip_hash.parse().unwrap();
    fake.set_tip_after_steps(fake.steps_to(&tip_a));
    let idx = tmp.path().join("idx");
    let socket = idx.join("opnet.sock");
    let before = fingerprint(&dir);
    let host = Host::start(
        &[
            "--datadir",
            dir.to_str().unwrap(),
            "--network",
            "regtest",
            "--opnet-dir",
            idx.to_str().unwrap(),
            "--follow",
            &fake.url(),
            "--rpc-user",
            "user",
            "--rpc-password",
            "pass",
        ],
        &tmp.path().join("follow.log"),
    );
    wait_for_tip(&socket, &a, &host);
    assert_serves(&socket, &a);
    // The node reorganizes to branch B in one jump, as after invalidateblock.
    fake.set_tip_after_steps(common::load_chain().1.len());
    wait_for_tip(&socket, &b, &host);
    assert_serves(&socket, &b);
    let (status, log) = host.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("block disconnected height=170"), "{log}");
    assert_eq!(
        fingerprint(&dir),
        before,
        "follow mode wrote into the datadir"
    );
}

/// Builds the C test plugin with `defines` into `dir/name.so`.
fn c_plugin(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.so"));
    let status = Command::new("cc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-shared",
            "-fPIC",
            "-o",
        ])
        .arg(&out)
        .arg("-I")
        .arg(include_dir())
        .arg(format!("-DTEST_NAME=\"{name}\""))
        .args(defines)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/test_plugin.c"))
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "compiling {name}");
    out
}

#[test]
fn the_header_compiles_as_c_and_cpp() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("use.c");
    std::fs::write(
        &src,
        "#include \"opnet_plugin.h\"\n#include <stdio.h>\n#include <stddef.h>\n\
         int main(void) {\n\
           printf(\"%zu %zu %zu %zu %zu %zu %zu %zu %zu\", sizeof(opnet_buffer), sizeof(struct PluginInfo),\n\
             sizeof(opnet_validation_callbacks), sizeof(PluginContext), sizeof(opnet_progress),\n\
             offsetof(PluginContext, get_transaction), offsetof(opnet_progress, target_height),\n\
             offsetof(PluginContext, flush_chainstate), (size_t)OPNET_PLUGIN_CONTEXT_MIN_SIZE);\n\
           return 0;\n\
         }\n",
    )
    .unwrap();
    // What the Rust side (opnet::abi) lays out must be what C lays out.
    use opnet::abi;
    use std::mem::{offset_of, size_of};
    let rust = format!(
        "{} {} {} {} {} {} {} {} {}",
        size_of::<abi::Buffer>(),
        size_of::<abi::PluginInfo>(),
        size_of::<abi::ValidationCallbacks>(),
        size_of::<abi::PluginContext>(),
        size_of::<abi::Progress>(),
        offset_of!(abi::PluginContext, get_transaction),
        offset_of!(abi::Progress, target_height),
        offset_of!(abi::PluginContext, flush_chainstate),
        abi::PluginContext::MIN_SIZE,
    );
    for (compiler, extra) in [
        ("cc", vec!["-std=c99", "-pedantic"]),
        ("c++", vec!["-x", "c++", "-std=c++11"]),
    ] {
        let status = Command::new(compiler)
            .args(&extra)
            .args(["-Wall", "-Wextra", "-Werror", "-o"])
            .arg(tmp.path().join("use"))
            .arg("-I")
            .arg(include_dir())
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
        assert!(status.success(), "{compiler} rejects the header");
        let out = Command::new(tmp.path().join("use")).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            rust,
            "{compiler}'s layout differs from opnet::abi"
        );
    }
}

#[test]
fn plugins_that_must_be_refused_are_and_the_host_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wrong_api = c_plugin(dir, "wrong_api", &["-DTEST_API_VERSION=99"]);
    let unknown_cap = c_plugin(dir, "unknown_cap", &["-DTEST_CAPS=(1u<<9)"]);
    let not_offered = c_plugin(dir, "net_events", &["-DTEST_CAPS=PLUGIN_CAP_NET_EVENTS"]);
    let init_fails = c_plugin(dir, "init_fails", &["-DTEST_INIT_OK=0"]);
    let first = c_plugin(dir, "first", &[]);
    let last = c_plugin(dir, "last", &[]);
    let not_a_plugin = dir.join("not_a_plugin.so");
    std::fs::write(&not_a_plugin, b"not an ELF file").unwrap();
    let idx = dir.join("idx");
    let chain = fixture("chain.json");
    let mut args = vec![
        "--replay".to_string(),
        chain.display().to_string(),
        "--opnet-dir".into(),
        idx.display().to_string(),
        "--once".into(),
        "-opnetundodepth=7".into(),
    ];
    for p in [
        &first,
        &wrong_api,
        &unknown_cap,
        &not_offered,
        &init_fails,
        &not_a_plugin,
        &plugin(),
        &last,
    ] {
        args.push("--plugin".into());
        args.push(p.display().to_string());
    }
    let out = Command::new(host_bin())
        .args(&args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for expected in [
        format!("refusing plugin {}: it was built for plugin API version 99, this host implements version 1", wrong_api.display()),
        format!("refusing plugin {}: it asks for unknown capabilities (bit 9, mask 0x200); is it newer than this host?", unknown_cap.display()),
        format!("refusing plugin {}: it needs PLUGIN_CAP_NET_EVENTS, which this host does not offer in this mode", not_offered.display()),
        format!("plugin init_fails ({}) failed to initialise; skipped", init_fails.display()),
        format!("cannot load plugin {}", not_a_plugin.display()),
        // The context works from C: tip, network and arguments.
        "init_fails: init on regtest at height 0, undodepth 7".to_string(),
        "init_fails: refusing to start".to_string(),
        "replayed 178 steps; plugins are at the tip".to_string(),
    ] {
        assert!(log.contains(&expected), "missing «{expected}» in:\n{log}");
    }
    // Loaded: first, opnet-core, last; shut down in reverse order.
    assert!(
        log.contains("plugins loaded plugins=[\"first\", \"opnet-core\", \"last\"]"),
        "{log}"
    );
    let at = |s: &str| {
        log.find(s)
            .unwrap_or_else(|| panic!("missing {s} in:\n{log}"))
    };
    assert!(at("last: shutdown") < at("shutting down plugin plugin=opnet-core"));
    assert!(at("plugin stopped") < at("first: shutdown"));
    assert!(
        !log.contains("init_fails: shutdown"),
        "a plugin whose init failed is not shut down"
    );
}

#[test]
fn the_watchdog_reports_a_plugin_stuck_in_a_callback() {
    let tmp = tempfile::tempdir().unwrap();
    let stall = c_plugin(
        tmp.path(),
        "stall",
        &[
            "-DTEST_STALL_MS=2500",
            "-DTEST_CAPS=PLUGIN_CAP_VALIDATION_INTERFACE",
        ],
    );
    let chain = fixture("chain.json");
    let out = Command::new(host_bin())
        .args([
            "--replay",
            chain.to_str().unwrap(),
            "--opnet-dir",
            tmp.path().join("idx").to_str().unwrap(),
            "--once",
            "--watchdog-secs",
            "1",
            "--plugin",
            stall.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let stuck = log
        .lines()
        .find(|l| l.contains("a plugin is stuck in a callback"))
        .unwrap_or_else(|| panic!("no watchdog report in:\n{log}"));
    assert!(
        stuck.contains("plugin=stall") && stuck.contains("callback=\"block_connected\""),
        "{stuck}"
    );
    let back = log
        .lines()
        .find(|l| l.contains("the stuck plugin returned"))
        .unwrap_or_else(|| panic!("no return report in:\n{log}"));
    assert!(back.contains("plugin=stall"), "{back}");
    assert!(log.find("stuck in a callback") < log.find("stuck plugin returned"));
    assert!(log.contains("stall: shutdown"), "{log}");
}

#[test]
fn plugins_come_from_the_plugins_directory_and_bitcoin_conf_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    let in_dir = c_plugin(&data.join("plugins"), "from_dir", &[]);
    let listed = c_plugin(tmp.path(), "from_conf", &[]);
    let other_net = c_plugin(tmp.path(), "mainnet_only", &[]);
    std::fs::write(
        data.join("bitcoin.conf"),
        format!(
            "plugin={}\nopnetundodepth=3\n[main]\nplugin={}\n[regtest]\nopnetundodepth=9\n",
            listed.display(),
            other_net.display()
        ),
    )
    .unwrap();
    let chain = fixture("chain.json");
    let out = Command::new(host_bin())
        .args([
            "--replay",
            chain.to_str().unwrap(),
            "--datadir",
            data.to_str().unwrap(),
            "--opnet-dir",
            tmp.path().join("idx").to_str().unwrap(),
            "--once",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // The directory's plugins first, then plugin= lines of the network's scope;
    // a plugin= line means the default plugin is not added.
    assert!(
        log.contains("plugins loaded plugins=[\"from_dir\", \"from_conf\"]"),
        "{log}"
    );
    assert!(
        log.contains("from_dir: init on regtest at height 0, undodepth 9"),
        "{log}"
    );
    assert!(!log.contains("mainnet_only"), "{log}");
    assert!(in_dir.exists());
}

/// Sends `quit`; returns the exit status and the log.
fn quit(mut host: Host) -> (ExitStatus, String) {
    assert_eq!(host.command("quit").last().unwrap(), "ok quit");
    let status = host.child.wait().unwrap();
    (status, host.log())
}

/// Arguments of a replay host running our plugin on `idx`, then `extra`.
fn replay_args(chain: &Path, idx: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--replay".to_string(),
        chain.display().to_string(),
        "--opnet-dir".into(),
        idx.display().to_string(),
        "--plugin".into(),
        plugin().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A replay host (stdin commands) running our plugin with `extra` arguments.
fn start_replay(chain: &Path, idx: &Path, extra: &[&str], log: &Path) -> Host {
    let args = replay_args(chain, idx, extra);
    Host::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), log)
}

/// A replay host on `idx` with `extra` arguments, stepped to block 170 and
/// waited for until its plugin serves that tip (oracle-A); and its socket.
fn start_at_a(chain: &Path, idx: &Path, extra: &[&str], log: &Path) -> (Host, PathBuf) {
    let socket = idx.join("opnet.sock");
    let mut host = start_replay(chain, idx, extra, log);
    assert_eq!(host.command("step 170").len(), 171);
    host.command("sync");
    wait_for_tip(&socket, &load_oracle("oracle-A.json"), &host);
    (host, socket)
}

/// A deliberate panic (`-opnettestpanic`, regtest only) at each place the plugin
/// runs code: the host survives every one, and the plugin recovers where it can
/// or says it stopped.
#[test]
fn a_panic_inside_the_plugin_stays_inside_it() {
    let a = load_oracle("oracle-A.json");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let chain = fixture("chain.json");

    // In plugin_init: the host skips the plugin and goes on with the others.
    let first = c_plugin(dir, "first", &[]);
    let mut args = replay_args(&chain, &dir.join("i1"), &["-opnettestpanic=init"]);
    args.extend([
        "--once".into(),
        "--plugin".into(),
        first.display().to_string(),
    ]);
    let out = Command::new(host_bin())
        .args(&args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for expected in [
        "panic in plugin_init; contained",
        "msg=deliberate panic at init (-opnettestpanic)",
        "plugin opnet-core (",
        "failed to initialise; skipped",
        "replayed 178 steps; plugins are at the tip",
        "first: shutdown",
    ] {
        assert!(log.contains(expected), "missing «{expected}» in:\n{log}");
    }

    // In every block_connected callback: each notification is lost, and the index
    // catches up from the host's chain instead.
    let (host, socket) = start_at_a(
        &chain,
        &dir.join("i2"),
        &["-opnettestpanic=block_connected"],
        &dir.join("h2.log"),
    );
    assert_serves(&socket, &a);
    let (status, log) = quit(host);
    assert!(status.success(), "{log}");
    assert!(log.contains("panic in block_connected; contained"), "{log}");

    // In the index thread: it stops, the status says so, the host and the server
    // go on.
    let idx = dir.join("i3");
    let socket = idx.join("opnet.sock");
    let mut host = start_replay(&chain, &idx, &["-opnettestpanic=sync"], &dir.join("h3.log"));
    assert_eq!(host.command("step 3").len(), 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(v) = cli_json(&socket, &["status", "--json"]) {
            if v["mode"] == "failed" {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no failed status; log:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["synced"], false);
    // Where it stopped depends on whether the first blocks came through the
    // catch-up (no panic site) or the callback path (the site).
    let height = status["height"].as_u64().unwrap();
    assert!(height <= 3, "{status}");
    assert_eq!(host.command("step 3").len(), 4, "the host carries on");
    std::thread::sleep(Duration::from_millis(300));
    let later = cli_json(&socket, &["status", "--json"]).unwrap();
    assert_eq!(later["mode"], "failed", "{later}");
    assert_eq!(later["host_height"], 6, "{later}");
    assert_eq!(
        later["height"], height,
        "the index stays at its last block: {later}"
    );
    let (exit, log) = quit(host);
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("the index thread panicked")
            && log.contains("deliberate panic at sync (-opnettestpanic)"),
        "{log}"
    );

    // In a query handler: that request is answered INTERNAL; the connection's
    // other requests and the server go on.
    let (host, socket) = start_at_a(
        &chain,
        &dir.join("i4"),
        &["-opnettestpanic=query"],
        &dir.join("h4.log"),
    );
    let script = a.utxos.iter().next().unwrap().0.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_opnet-cli"))
        .arg("--socket")
        .arg(&socket)
        .args(["utxos", &script, "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("the request handler panicked"), "{err}");
    wait_for_tip(&socket, &a, &host);
    let (exit, log) = quit(host);
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("a request handler panicked; answered INTERNAL"),
        "{log}"
    );
}

/// The way back from a damaged index: the plugin refuses it and says how to
/// rebuild it; `-opnetreindex=1` deletes it and builds it again, numbering its
/// events after the old ones.
#[test]
fn a_damaged_index_is_refused_and_opnetreindex_builds_it_again() {
    let a = load_oracle("oracle-A.json");
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    let chain = fixture("chain.json");
    let once = |extra: &[&str]| {
        let mut args = replay_args(&chain, &idx, &["--once"]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(host_bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    };
    let out = once(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the index's file layer writes when a table read fails.
    let what = format!(
        "LevelDB: corruption in {}/000005.ldb at offset 4096: block checksum mismatch",
        idx.join("index").display()
    );
    std::fs::write(idx.join("index/DAMAGED"), format!("{what}\n")).unwrap();

    let out = once(&[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    for expected in [
        format!(
            "index corrupt: {} was found damaged earlier ({what})",
            idx.join("index").display()
        ),
        "delete the index directory to rebuild it); -opnetreindex=1 does that".to_string(),
        "no plugin was loaded".to_string(),
    ] {
        assert!(log.contains(&expected), "missing «{expected}» in:\n{log}");
    }

    let (host, socket) = start_at_a(
        &chain,
        &idx,
        &["-opnetreindex=1"],
        &tmp.path().join("reindex.log"),
    );
    assert_serves(&socket, &a);
    // The first index numbered 178 events; the new one goes on after its floor.
    let status = cli_json(&socket, &["status", "--json"]).unwrap();
    assert_eq!(status["event_seq"], 1_000_001 + 170, "{status}");
    let (exit, log) = quit(host);
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("-opnetreindex: deleting the index; it is built again"),
        "{log}"
    );
    assert!(!idx.join("index/DAMAGED").exists());
}
