//! `opnet-host`'s command line (the black-box contract in README.md) and the
//! bitcoind-style arguments it passes to plugins.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use opnet::Network;

/// The usage text.
pub const USAGE: &str =
    "usage: opnet-host --datadir DIR [--network main|test|testnet4|signet|regtest]
                  [--opnet-dir DIR2] [--plugin PATH]... [--once]
                  [--follow URL (--rpc-cookie FILE | --rpc-user U --rpc-password P)
                   [--mempool-poll-ms N]]
                  [--replay CHAIN_JSON [--replay-steps N|all]]
                  [--watchdog-secs N] [--quiet] [-NAME=VALUE]...

Loads plugins (DIR/plugins/*.so, plugin= lines of bitcoin.conf, --plugin; with
none of those, the libopnet_core.so built alongside opnet-host) and feeds them a
chain, strictly read-only:
  datadir mode (default)  the blocks, undo data and chainstate in DIR;
  --follow URL            a running bitcoind (-rest): new tips by RPC
                          waitfornewblock, blocks and spent outputs by REST,
                          its mempool compared every --mempool-poll-ms (1000;
                          0: no mempool);
  --replay CHAIN_JSON     a recorded chain stepped on command (stdin: step [N],
                          run, mempool [I|all], remove TXID [REASON], sync, tip,
                          quit); --datadir is optional, --opnet-dir then required.
DIR holds blocks/ and chainstate/ (bitcoind's network subdirectory); given
bitcoind's top directory and --network it finds the subdirectory. --network
defaults to the datadir's own chain. --opnet-dir keeps every file plugins write
there (default DIR/opnet). --once syncs to the tip and exits 0. -NAME=VALUE are
passed to plugins as bitcoind arguments (e.g. -opnetundodepth=50).";

/// How often follow mode compares bitcoind's mempool with what was announced,
/// by default: at most a second behind, and a round in which nothing moved
/// costs one `getmempoolinfo`.
pub const DEFAULT_MEMPOOL_POLL: Duration = Duration::from_secs(1);

/// Where the chain comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Datadir,
    Follow {
        url: String,
        auth: Auth,
    },
    Replay {
        script: PathBuf,
        initial_steps: Steps,
    },
}

/// RPC credentials for follow mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `--rpc-cookie`, or the datadir's `.cookie` when nothing is given.
    Cookie(PathBuf),
    UserPass(String, String),
}

/// How many recorded steps replay applies before taking commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steps {
    Count(usize),
    All,
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostArgs {
    pub datadir: Option<PathBuf>,
    pub network: Option<Network>,
    pub opnet_dir: Option<PathBuf>,
    pub plugins: Vec<PathBuf>,
    pub mode: Mode,
    pub once: bool,
    pub watchdog: Duration,
    pub quiet: bool,
    /// Follow mode: how often bitcoind's mempool is compared with what was
    /// announced; `None` follows no mempool.
    pub mempool_poll: Option<Duration>,
    /// `-NAME=VALUE` arguments, without the dash.
    pub plugin_args: HashMap<String, String>,
}

/// Parses the command line (without the program name). `Err("")` asks for help.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<HostArgs, String> {
    let mut it = args.into_iter();
    let mut out = HostArgs {
        datadir: None,
        network: None,
        opnet_dir: None,
        plugins: Vec::new(),
        mode: Mode::Datadir,
        once: false,
        watchdog: Duration::from_secs(10),
        quiet: false,
        mempool_poll: Some(DEFAULT_MEMPOOL_POLL),
        plugin_args: HashMap::new(),
    };
    let mut mempool_poll_given = false;
    let (mut follow, mut replay, mut steps) = (None, None, None);
    let (mut cookie, mut user, mut password) = (None, None, None);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--datadir" => out.datadir = Some(PathBuf::from(value("--datadir")?)),
            "--network" => {
                out.network = Some(
                    value("--network")?
                        .parse()
                        .map_err(|e| format!("--network: {e}"))?,
                )
            }
            "--opnet-dir" => out.opnet_dir = Some(PathBuf::from(value("--opnet-dir")?)),
            "--plugin" => out.plugins.push(PathBuf::from(value("--plugin")?)),
            "--follow" => follow = Some(value("--follow")?),
            "--rpc-cookie" => cookie = Some(PathBuf::from(value("--rpc-cookie")?)),
            "--rpc-user" => user = Some(value("--rpc-user")?),
            "--rpc-password" => password = Some(value("--rpc-password")?),
            "--replay" => replay = Some(PathBuf::from(value("--replay")?)),
            "--replay-steps" => {
                let v = value("--replay-steps")?;
                steps = Some(if v == "all" {
                    Steps::All
                } else {
                    Steps::Count(
                        v.parse()
                            .map_err(|_| format!("--replay-steps {v}: not a number or 'all'"))?,
                    )
                });
            }
            "--mempool-poll-ms" => {
                let v = value("--mempool-poll-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--mempool-poll-ms {v}: not a number of milliseconds"))?;
                if ms > 3_600_000 {
                    return Err(format!("--mempool-poll-ms {v}: at most 3600000 (an hour)"));
                }
                out.mempool_poll = (ms > 0).then(|| Duration::from_millis(ms));
                mempool_poll_given = true;
            }
            "--once" => out.once = true,
            "--quiet" => out.quiet = true,
            "--watchdog-secs" => {
                let v = value("--watchdog-secs")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--watchdog-secs {v}: not a number"))?;
                out.watchdog = Duration::from_secs(secs.max(1));
            }
            other if other.starts_with('-') && !other.starts_with("--") && other.len() > 1 => {
                let body = &other[1..];
                let (k, v) = body.split_once('=').unwrap_or((body, "1"));
                out.plugin_args.insert(k.to_string(), v.to_string());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if follow.is_some() && replay.is_some() {
        return Err("--follow and --replay are different modes; give one".into());
    }
    if steps.is_some() && replay.is_none() {
        return Err("--replay-steps needs --replay".into());
    }
    if mempool_poll_given && follow.is_none() {
        return Err("--mempool-poll-ms needs --follow".into());
    }
    if (user.is_some() || password.is_some() || cookie.is_some()) && follow.is_none() {
        return Err("RPC credentials need --follow".into());
    }
    if let Some(url) = follow {
        let auth = match (cookie, user, password) {
            (Some(c), None, None) => Auth::Cookie(c),
            (None, Some(u), Some(p)) => Auth::UserPass(u, p),
            (None, None, None) => Auth::Cookie(PathBuf::new()),
            (Some(_), _, _) => {
                return Err("give --rpc-cookie or --rpc-user/--rpc-password, not both".into())
            }
            _ => return Err("--rpc-user and --rpc-password go together".into()),
        };
        out.mode = Mode::Follow { url, auth };
    }
    if let Some(script) = replay {
        let initial_steps = steps.unwrap_or(if out.once {
            Steps::All
        } else {
            Steps::Count(0)
        });
        out.mode = Mode::Replay {
            script,
            initial_steps,
        };
        if out.datadir.is_none() && out.opnet_dir.is_none() {
            return Err("--replay needs --opnet-dir (or --datadir)".into());
        }
    } else if out.datadir.is_none() {
        return Err("--datadir is required".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<HostArgs, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_contracts_forms_parse() {
        let a = p(&[
            "--datadir",
            "/d",
            "--network",
            "regtest",
            "--opnet-dir",
            "/o",
            "--plugin",
            "/a.so",
            "--plugin",
            "/b.so",
            "--once",
            "-opnetundodepth=5",
            "-opnetdebug",
        ])
        .unwrap();
        assert_eq!(a.datadir, Some(PathBuf::from("/d")));
        assert_eq!(a.network, Some(Network::Regtest));
        assert_eq!(a.opnet_dir, Some(PathBuf::from("/o")));
        assert_eq!(
            a.plugins,
            vec![PathBuf::from("/a.so"), PathBuf::from("/b.so")]
        );
        assert!(a.once);
        assert_eq!(a.mode, Mode::Datadir);
        assert_eq!(
            a.plugin_args.get("opnetundodepth").map(String::as_str),
            Some("5")
        );
        assert_eq!(
            a.plugin_args.get("opnetdebug").map(String::as_str),
            Some("1")
        );
        let f = p(&[
            "--datadir",
            "/d",
            "--follow",
            "http://127.0.0.1:18443",
            "--rpc-user",
            "u",
            "--rpc-password",
            "pw",
        ])
        .unwrap();
        assert_eq!(
            f.mode,
            Mode::Follow {
                url: "http://127.0.0.1:18443".into(),
                auth: Auth::UserPass("u".into(), "pw".into())
            }
        );
        let f = p(&[
            "--datadir",
            "/d",
            "--follow",
            "http://h:1",
            "--rpc-cookie",
            "/c",
        ])
        .unwrap();
        assert_eq!(
            f.mode,
            Mode::Follow {
                url: "http://h:1".into(),
                auth: Auth::Cookie("/c".into())
            }
        );
        let r = p(&["--replay", "chain.json", "--opnet-dir", "/o", "--once"]).unwrap();
        assert_eq!(
            r.mode,
            Mode::Replay {
                script: "chain.json".into(),
                initial_steps: Steps::All
            }
        );
        let r = p(&[
            "--replay",
            "c.json",
            "--opnet-dir",
            "/o",
            "--replay-steps",
            "7",
        ])
        .unwrap();
        assert_eq!(
            r.mode,
            Mode::Replay {
                script: "c.json".into(),
                initial_steps: Steps::Count(7)
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(p(&[]).unwrap_err(), "--datadir is required");
        assert_eq!(p(&["--datadir"]).unwrap_err(), "--datadir needs a value");
        assert_eq!(
            p(&["--datadir", "/d", "--bogus"]).unwrap_err(),
            "unknown argument --bogus"
        );
        assert_eq!(
            p(&["--datadir", "/d", "--rpc-user", "u"]).unwrap_err(),
            "RPC credentials need --follow"
        );
        assert_eq!(
            p(&[
                "--datadir",
                "/d",
                "--follow",
                "http://h:1",
                "--rpc-user",
                "u"
            ])
            .unwrap_err(),
            "--rpc-user and --rpc-password go together"
        );
        assert_eq!(
            p(&["--replay", "c.json"]).unwrap_err(),
            "--replay needs --opnet-dir (or --datadir)"
        );
        assert!(p(&["--datadir", "/d", "--network", "mars"])
            .unwrap_err()
            .starts_with("--network: "));
        assert_eq!(p(&["--help"]).unwrap_err(), "");
    }
}
