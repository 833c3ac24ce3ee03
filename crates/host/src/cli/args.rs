//! The command line of `opnet-cli`: global options, one command, its options.
//! Hand-written (three commands do not justify a parser dependency); every
//! mistake is a [`UsageError`] naming what was wrong, shown above the usage text.

use std::fmt;
use std::path::PathBuf;

use opnet::protocol::Sort;
use opnet::Network;

/// The usage text shown by `--help` and after a usage error.
pub const USAGE: &str = "\
opnet-cli: query the OPNet index through its socket (opnet.sock)

Usage:
  opnet-cli --socket PATH [--network NET] status [--json]
  opnet-cli --socket PATH [--network NET] utxos TARGET [--json] [--limit N]
            [--min-value SATS] [--max-height H] [--min-conf N]
            [--sort outpoint|value|height|height-desc] [--mempool]
  opnet-cli --socket PATH [--network NET] watch [--json] [--from SEQ]
            [--kinds blocks,mempool,scripthashes] [--scripthash TARGET]...

Global options (before or after the command):
  --socket PATH    the plugin's socket, <datadir>/opnet/opnet.sock unless bitcoind
                   was started with -opnetsocket
  --network NET    regtest (default), testnet4, signet, test or main: how addresses
                   are read; the server must serve the same network
  -h, --help       this text

status   where the index is: tip, mode, UTXO count, events, mempool, scan progress.
         --json prints one object with height, hash, synced, mode, host tip, ...

utxos    the unspent outputs paying TARGET, every page of them unless --limit.
         TARGET is an address, a scriptPubKey in hex or a 64-hex scripthash; a
         64-hex string is read as a scripthash, so write script:HEX for a 32-byte
         script (sh:, script: and addr: force a reading).
         --limit N        at most N outputs
         --min-value SATS only outputs worth at least SATS
         --max-height H   only outputs confirmed at or below height H
         --min-conf N     only outputs with at least N confirmations
         --sort ORDER     outpoint (default), value (largest first), height
                          (oldest first) or height-desc (newest first)
         --mempool        add the mempool view: pending outputs, and outputs a
                          mempool transaction spends (with the spender)
         --json           {\"utxos\": [{\"txid\", \"vout\", \"sats\", \"height\",
                          \"coinbase\", \"script\"}, ...], \"tip\": {...}}

watch    prints events as they happen, one per line, until interrupted.
         --kinds LIST     any of blocks, mempool, scripthashes (default: blocks and,
                          when the server offers it, mempool)
         --scripthash T   watch T (a TARGET as above) for scripthash activity;
                          repeatable; implies the scripthashes kind
         --from SEQ       replay the events after event number SEQ first
         --json           one JSON object per line with a \"type\" field

Hashes and txids are printed in RPC byte order (as bitcoin-cli shows them).
Exit status: 0 on success, 1 on any error (message on stderr).
";

/// A mistake on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// `--help`: print the usage and succeed.
    Help,
    /// Run a command.
    Run(Cli),
}

/// What to run, against which socket and network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cli {
    /// The server's socket.
    pub socket: PathBuf,
    /// The network addresses are read for and the server must serve.
    pub network: Network,
    /// The command.
    pub command: Command,
}

/// One command and its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `status`.
    Status {
        /// `--json`.
        json: bool,
    },
    /// `utxos`.
    Utxos(UtxosArgs),
    /// `watch`.
    Watch(WatchArgs),
}

/// Options of `utxos`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UtxosArgs {
    /// The address, script or scripthash, as typed.
    pub target: String,
    pub json: bool,
    /// Most outputs to print; `None` = all.
    pub limit: Option<u64>,
    pub min_value: u64,
    pub max_height: Option<u32>,
    pub min_conf: u32,
    pub sort: Sort,
    pub mempool: bool,
}

/// Options of `watch`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchArgs {
    pub json: bool,
    /// Replay after this event number first.
    pub from: Option<u64>,
    /// `KIND_*` bits asked for with `--kinds`; `None` = the default.
    pub kinds: Option<u8>,
    /// Targets to watch, as typed.
    pub scripthashes: Vec<String>,
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Takes the value of option `name`.
fn value(it: &mut impl Iterator<Item = String>, name: &str) -> Result<String, UsageError> {
    it.next()
        .ok_or_else(|| usage(format!("{name} needs a value")))
}

fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, UsageError> {
    text.parse()
        .map_err(|_| usage(format!("{name} takes a number, not '{text}'")))
}

fn sort(text: &str) -> Result<Sort, UsageError> {
    match text {
        "outpoint" => Ok(Sort::Outpoint),
        "value" => Ok(Sort::ValueDesc),
        "height" => Ok(Sort::HeightAsc),
        "height-desc" => Ok(Sort::HeightDesc),
        other => Err(usage(format!(
            "--sort takes outpoint, value, height or height-desc, not '{other}'"
        ))),
    }
}

fn kinds(text: &str) -> Result<u8, UsageError> {
    use opnet::protocol::{KIND_BLOCKS, KIND_MEMPOOL, KIND_SCRIPTHASHES};
    let mut bits = 0;
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        bits |= match name {
            "blocks" => KIND_BLOCKS,
            "mempool" => KIND_MEMPOOL,
            "scripthashes" => KIND_SCRIPTHASHES,
            other => {
                return Err(usage(format!(
                    "--kinds takes blocks, mempool and scripthashes, not '{other}'"
                )))
            }
        };
    }
    if bits == 0 {
        return Err(usage("--kinds needs at least one kind"));
    }
    Ok(bits)
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, UsageError> {
    let args: Vec<String> = args.into_iter().collect();
    // Asking for help is never a mistake, whatever else is on the line.
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Parsed::Help);
    }
    let mut it = args.into_iter();
    let mut socket = None;
    let mut network = Network::Regtest;
    let mut command: Option<String> = None;
    let mut positional = Vec::new();
    let mut json = false;
    let mut utxos = UtxosArgs::default();
    let mut watch = WatchArgs::default();
    // Options belong to one command; remember which, to refuse the others.
    let mut used: Vec<(&'static str, String)> = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--socket" => socket = Some(PathBuf::from(value(&mut it, "--socket")?)),
            "--network" => {
                let v = value(&mut it, "--network")?;
                network = v.parse().map_err(|e| usage(format!("--network: {e}")))?;
            }
            "--json" => json = true,
            "--limit" => {
                utxos.limit = Some(number(&value(&mut it, "--limit")?, "--limit")?);
                used.push(("utxos", arg));
            }
            "--min-value" => {
                utxos.min_value = number(&value(&mut it, "--min-value")?, "--min-value")?;
                used.push(("utxos", arg));
            }
            "--max-height" => {
                utxos.max_height = Some(number(&value(&mut it, "--max-height")?, "--max-height")?);
                used.push(("utxos", arg));
            }
            "--min-conf" => {
                utxos.min_conf = number(&value(&mut it, "--min-conf")?, "--min-conf")?;
                used.push(("utxos", arg));
            }
            "--sort" => {
                utxos.sort = sort(&value(&mut it, "--sort")?)?;
                used.push(("utxos", arg));
            }
            "--mempool" => {
                utxos.mempool = true;
                used.push(("utxos", arg));
            }
            "--from" => {
                watch.from = Some(number(&value(&mut it, "--from")?, "--from")?);
                used.push(("watch", arg));
            }
            "--kinds" => {
                watch.kinds = Some(kinds(&value(&mut it, "--kinds")?)?);
                used.push(("watch", arg));
            }
            "--scripthash" => {
                watch.scripthashes.push(value(&mut it, "--scripthash")?);
                used.push(("watch", arg));
            }
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(usage(format!("unknown option {flag}")))
            }
            _ if command.is_none() => command = Some(arg),
            _ => positional.push(arg),
        }
    }
    let Some(command) = command else {
        return Err(usage("no command given"));
    };
    if let Some((_, flag)) = used.iter().find(|(owner, _)| *owner != command) {
        return Err(usage(format!("{flag} is not an option of {command}")));
    }
    let command = match command.as_str() {
        "status" | "utxos" | "watch" => {
            let wanted = usize::from(command == "utxos");
            if positional.len() != wanted {
                return Err(usage(match (command.as_str(), positional.first()) {
                    ("utxos", None) => {
                        "utxos needs a TARGET (address, script hex or scripthash)".to_string()
                    }
                    (_, Some(extra)) => format!("unexpected argument '{extra}' for {command}"),
                    _ => format!("unexpected arguments for {command}"),
                }));
            }
            match command.as_str() {
                "status" => Command::Status { json },
                "utxos" => Command::Utxos(UtxosArgs {
                    target: positional.remove(0),
                    json,
                    ..utxos
                }),
                _ => Command::Watch(WatchArgs { json, ..watch }),
            }
        }
        other => return Err(usage(format!("unknown command '{other}'"))),
    };
    let Some(socket) = socket else {
        return Err(usage("--socket PATH is required"));
    };
    Ok(Parsed::Run(Cli {
        socket,
        network,
        command,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opnet::protocol::{KIND_BLOCKS, KIND_SCRIPTHASHES};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn run(s: &str) -> Cli {
        match parse(args(s)).unwrap() {
            Parsed::Run(cli) => cli,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn status_with_defaults_and_options_anywhere() {
        let cli = run("--socket /s status --json");
        assert_eq!(cli.socket, PathBuf::from("/s"));
        assert_eq!(cli.network, Network::Regtest);
        assert_eq!(cli.command, Command::Status { json: true });
        let cli = run("status --network main --socket /x");
        assert_eq!(cli.network, Network::Main);
        assert_eq!(cli.command, Command::Status { json: false });
    }

    #[test]
    fn utxos_options() {
        let cli = run(
            "--socket /s utxos 0014ab --limit 5 --min-value 1000 --max-height 150 --min-conf 6 --sort height-desc --mempool --json",
        );
        assert_eq!(
            cli.command,
            Command::Utxos(UtxosArgs {
                target: "0014ab".into(),
                json: true,
                limit: Some(5),
                min_value: 1000,
                max_height: Some(150),
                min_conf: 6,
                sort: Sort::HeightDesc,
                mempool: true,
            })
        );
    }

    #[test]
    fn watch_options() {
        let cli =
            run("--socket /s watch --kinds blocks --scripthash sh:00 --scripthash x --from 7");
        assert_eq!(
            cli.command,
            Command::Watch(WatchArgs {
                json: false,
                from: Some(7),
                kinds: Some(KIND_BLOCKS),
                scripthashes: vec!["sh:00".into(), "x".into()],
            })
        );
        let cli = run("--socket /s watch --kinds scripthashes,blocks");
        assert!(matches!(
            cli.command,
            Command::Watch(WatchArgs { kinds: Some(k), .. }) if k == KIND_BLOCKS | KIND_SCRIPTHASHES
        ));
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(args("status --bogus -h")), Ok(Parsed::Help));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |s: &str| parse(args(s)).unwrap_err().0;
        assert_eq!(err("--socket /s"), "no command given");
        assert_eq!(err("status"), "--socket PATH is required");
        assert_eq!(
            err("--socket /s frobnicate"),
            "unknown command 'frobnicate'"
        );
        assert!(err("--socket /s utxos").contains("needs a TARGET"));
        assert_eq!(
            err("--socket /s status extra"),
            "unexpected argument 'extra' for status"
        );
        assert_eq!(
            err("--socket /s status --limit 3"),
            "--limit is not an option of status"
        );
        assert_eq!(
            err("--socket /s utxos x --from 3"),
            "--from is not an option of utxos"
        );
        assert_eq!(
            err("--socket /s utxos x --limit many"),
            "--limit takes a number, not 'many'"
        );
        assert!(err("--socket /s utxos x --sort size").contains("--sort takes"));
        assert!(err("--socket /s watch --kinds blocks,tx").contains("not 'tx'"));
        assert!(err("--socket /s status --network moon").contains("unknown network"));
        assert_eq!(err("--socket"), "--socket needs a value");
        assert_eq!(
            err("--socket /s status --verbose"),
            "unknown option --verbose"
        );
    }
}
