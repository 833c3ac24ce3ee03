//! The plugin's settings, read from the host's arguments (bitcoind's `-name=value`
//! and `bitcoin.conf` lines). docs/PLUGIN.md lists them; every one has a default
//! that suits a mainnet node.

use std::path::{Path, PathBuf};

use opnet::server::{ServerConfig, DEFAULT_MEMPOOL_LOG_BYTES};
use opnet::sync::{default_readers, EngineConfig, DEFAULT_UNDO_RETENTION};
use opnet::Network;

/// Every argument the plugin reads, with its default (for docs and `--help`).
pub const ARGUMENTS: &[(&str, &str, &str)] = &[
    (
        "opnetdir",
        "<datadir>/opnet",
        "where the index, the socket and scan snapshots live",
    ),
    (
        "opnetsocket",
        "<opnetdir>/opnet.sock",
        "the Unix socket clients connect to",
    ),
    (
        "opnetserver",
        "1",
        "serve the socket (0: keep the index only)",
    ),
    (
        "opnetundodepth",
        "200",
        "blocks of undo data kept for reorgs",
    ),
    ("opnetdbcache", "256", "index block cache, MiB"),
    (
        "opnetreaders",
        "cores, at most 8",
        "parallel chainstate readers during a scan",
    ),
    ("opnetmaxclients", "64", "simultaneous socket connections"),
    ("opnetmaxresults", "10000", "UTXOs per response page"),
    (
        "opnetmaxscripthashes",
        "100000",
        "scripthashes one connection may watch (~95 bytes each)",
    ),
    (
        "opnetratelimit",
        "1000000",
        "requests per second per connection (0: none)",
    ),
    (
        "opneteventretention",
        "10000",
        "block events kept for replay to clients",
    ),
    (
        "opnetmempoolmb",
        "64",
        "memory for the mempool event history, MiB",
    ),
    (
        "opnetblockqueue",
        "64",
        "block notifications buffered while the index is busy",
    ),
    (
        "opnetmempoolqueue",
        "16384",
        "mempool notifications buffered",
    ),
    ("opnetdebug", "0", "log at debug level"),
    (
        "opnetreindex",
        "0",
        "delete the index at start and build it again (after a damaged index)",
    ),
    (
        "opnettestpanic",
        "none",
        "regtest only: panic at a site (init, block_connected, sync, query), for tests",
    ),
];

/// The plugin's settings.
#[derive(Clone, Debug)]
pub struct PluginConfig {
    pub engine: EngineConfig,
    pub server: Option<ServerConfig>,
    pub mempool_log_bytes: usize,
    pub block_queue: usize,
    pub mempool_queue: usize,
    pub debug: bool,
    /// `-opnetreindex`: start from an empty index.
    pub reindex: bool,
    /// `-opnettestpanic`: where a deliberate panic is armed (regtest only).
    pub test_panic: Option<String>,
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("-{name}={value} is not a valid number"))
}

fn boolean(name: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "" | "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => Err(format!("-{name}={other} is not 0 or 1")),
    }
}

fn resolve(base: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

impl PluginConfig {
    /// Reads the settings; `arg(name)` is the host's value for `-name`. Relative
    /// paths are taken from the datadir (`-opnetdir`) or the opnet dir (`-opnetsocket`).
    pub fn from_args(
        datadir: &Path,
        network: Network,
        arg: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PluginConfig, String> {
        let opnet_dir = arg("opnetdir")
            .filter(|v| !v.is_empty())
            .map(|v| resolve(datadir, &v))
            .unwrap_or_else(|| datadir.join("opnet"));
        let mut engine = EngineConfig::new(&opnet_dir, network);
        let get = |name: &str| arg(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("opnetundodepth") {
            engine.undo_retention = number("opnetundodepth", &v)?;
        }
        if let Some(v) = get("opnetdbcache") {
            let mib: usize = number("opnetdbcache", &v)?;
            engine.store.block_cache_bytes = mib.max(1) << 20;
        }
        engine.readers = match get("opnetreaders") {
            Some(v) => number::<usize>("opnetreaders", &v)?.max(1),
            None => default_readers(),
        };
        if let Some(v) = get("opneteventretention") {
            engine.event_retention = number("opneteventretention", &v)?;
        }
        if engine.undo_retention == 0 {
            return Err(format!(
                "-opnetundodepth=0 would make every reorg a full rebuild; use at least 1 (default {DEFAULT_UNDO_RETENTION})"
            ));
        }
        let serve = match arg("opnetserver") {
            Some(v) => boolean("opnetserver", &v)?,
            None => true,
        };
        let server = if serve {
            let socket = get("opnetsocket")
                .map(|v| resolve(&opnet_dir, &v))
                .unwrap_or_else(|| opnet_dir.join("opnet.sock"));
            let mut s = ServerConfig::new(&socket);
            if let Some(v) = get("opnetmaxclients") {
                s.max_connections = number::<usize>("opnetmaxclients", &v)?.max(1);
            }
            if let Some(v) = get("opnetmaxresults") {
                s.max_results = number::<u32>("opnetmaxresults", &v)?.max(1);
            }
            if let Some(v) = get("opnetmaxscripthashes") {
                // The HELLO reply announces it as a u32.
                s.max_scripthashes = number::<u32>("opnetmaxscripthashes", &v)? as usize;
            }
            if let Some(v) = get("opnetratelimit") {
                s.rate_limit = number("opnetratelimit", &v)?;
            }
            Some(s)
        } else {
            None
        };
        let mempool_log_bytes = match get("opnetmempoolmb") {
            Some(v) => number::<usize>("opnetmempoolmb", &v)?.max(1) << 20,
            None => DEFAULT_MEMPOOL_LOG_BYTES,
        };
        let block_queue = match get("opnetblockqueue") {
            Some(v) => number::<usize>("opnetblockqueue", &v)?.max(1),
            None => 64,
        };
        let mempool_queue = match get("opnetmempoolqueue") {
            Some(v) => number::<usize>("opnetmempoolqueue", &v)?.max(1),
            None => 16_384,
        };
        let debug = match arg("opnetdebug") {
            Some(v) => boolean("opnetdebug", &v)?,
            None => false,
        };
        let reindex = match arg("opnetreindex") {
            Some(v) => boolean("opnetreindex", &v)?,
            None => false,
        };
        let test_panic = get("opnettestpanic").map(|v| v.trim().to_string());
        if let Some(site) = &test_panic {
            if network != Network::Regtest {
                return Err(format!(
                    "-opnettestpanic={site} is a test setting, accepted on regtest only"
                ));
            }
            opnet::failpoint::known(site).map_err(|e| format!("-opnettestpanic={site}: {e}"))?;
        }
        Ok(PluginConfig {
            engine,
            server,
            mempool_log_bytes,
            block_queue,
            mempool_queue,
            debug,
            reindex,
            test_panic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(args: &[(&str, &str)]) -> Result<PluginConfig, String> {
        let map: HashMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PluginConfig::from_args(Path::new("/data/regtest"), Network::Regtest, &|n| {
            map.get(n).cloned()
        })
    }

    #[test]
    fn defaults_put_everything_under_the_datadirs_opnet_directory() {
        let c = config(&[]).unwrap();
        assert_eq!(c.engine.opnet_dir, PathBuf::from("/data/regtest/opnet"));
        assert_eq!(c.engine.undo_retention, 200);
        assert_eq!(c.engine.store.block_cache_bytes, 256 << 20);
        assert_eq!(c.engine.event_retention, 10_000);
        let s = c.server.unwrap();
        assert_eq!(
            s.socket_path,
            PathBuf::from("/data/regtest/opnet/opnet.sock")
        );
        assert_eq!(s.max_connections, 64);
        assert_eq!(s.max_results, 10_000);
        assert_eq!(s.max_scripthashes, 100_000);
        assert_eq!(c.mempool_log_bytes, 64 << 20);
        assert_eq!(
            (c.block_queue, c.mempool_queue, c.debug),
            (64, 16_384, false)
        );
    }

    #[test]
    fn arguments_override_and_relative_paths_resolve() {
        let c = config(&[
            ("opnetdir", "idx"),
            ("opnetsocket", "s.sock"),
            ("opnetundodepth", "12"),
            ("opnetdbcache", "32"),
            ("opnetreaders", "3"),
            ("opnetmaxclients", "5"),
            ("opnetmaxresults", "100"),
            ("opnetmaxscripthashes", "500"),
            ("opnetratelimit", "0"),
            ("opneteventretention", "50"),
            ("opnetmempoolmb", "8"),
            ("opnetdebug", "1"),
        ])
        .unwrap();
        assert_eq!(c.engine.opnet_dir, PathBuf::from("/data/regtest/idx"));
        assert_eq!(c.engine.undo_retention, 12);
        assert_eq!(c.engine.store.block_cache_bytes, 32 << 20);
        assert_eq!(c.engine.readers, 3);
        assert_eq!(c.engine.event_retention, 50);
        let s = c.server.unwrap();
        assert_eq!(s.socket_path, PathBuf::from("/data/regtest/idx/s.sock"));
        assert_eq!(
            (
                s.max_connections,
                s.max_results,
                s.rate_limit,
                s.max_scripthashes
            ),
            (5, 100, 0, 500)
        );
        assert_eq!(c.mempool_log_bytes, 8 << 20);
        assert!(c.debug);
        assert!(!c.reindex);
        assert!(config(&[("opnetreindex", "1")]).unwrap().reindex);
        let c = config(&[("opnetdir", "/abs"), ("opnetserver", "0")]).unwrap();
        assert_eq!(c.engine.opnet_dir, PathBuf::from("/abs"));
        assert!(c.server.is_none());
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        assert_eq!(
            config(&[("opnetundodepth", "lots")]).unwrap_err(),
            "-opnetundodepth=lots is not a valid number"
        );
        assert_eq!(
            config(&[("opnetserver", "maybe")]).unwrap_err(),
            "-opnetserver=maybe is not 0 or 1"
        );
    }

    #[test]
    fn the_test_panic_is_regtest_only_and_names_a_known_site() {
        assert_eq!(config(&[]).unwrap().test_panic, None);
        let c = config(&[("opnettestpanic", "sync")]).unwrap();
        assert_eq!(c.test_panic.as_deref(), Some("sync"));
        assert_eq!(
            config(&[("opnettestpanic", "everywhere")]).unwrap_err(),
            "-opnettestpanic=everywhere: not a panic site (one of: init, block_connected, sync, query)"
        );
        let main = PluginConfig::from_args(Path::new("/data"), Network::Main, &|n| {
            (n == "opnettestpanic").then(|| "query".to_string())
        });
        assert_eq!(
            main.unwrap_err(),
            "-opnettestpanic=query is a test setting, accepted on regtest only"
        );
    }
}
