//! `opnet-cli`: the command-line client of `opnet.sock`. [`run`] is the whole
//! program; each command lives in its own module and writes to any `Write`, so
//! output is tested without a process.

pub mod args;
pub mod events;
pub mod json;
pub mod status;
pub mod utxos;
pub mod watch;

use std::fmt;
use std::io::Write;

use opnet::client::{parse_target, Client, ClientError, ClientOptions, TargetError};

use args::{Cli, Command, Parsed, UsageError, USAGE};

/// Why a command failed; each is printed as one clear line on stderr.
#[derive(Debug)]
pub enum CliError {
    /// A mistake on the command line (the usage follows it).
    Usage(UsageError),
    /// A target that is not an address, a script or a scripthash.
    Target(TargetError),
    /// Connecting, or the server's answer.
    Client(ClientError),
    /// Writing the output.
    Io(std::io::Error),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(e) => write!(f, "{e}"),
            CliError::Target(e) => write!(f, "{e}"),
            CliError::Client(e @ ClientError::WrongNetwork { .. }) => {
                write!(f, "{e} (pass --network to match the server)")
            }
            CliError::Client(e) => write!(f, "{e}"),
            CliError::Io(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        CliError::Client(e)
    }
}

impl From<TargetError> for CliError {
    fn from(e: TargetError) -> CliError {
        CliError::Target(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::Io(e)
    }
}

/// Sats as BTC with eight decimals, exactly (no float).
pub fn btc(sats: u64) -> String {
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

/// Runs a parsed command line, writing results to `out`.
pub async fn execute(cli: Cli, out: &mut impl Write) -> Result<(), CliError> {
    // Targets are checked before connecting: a typo needs no server.
    let targets: Vec<[u8; 32]> = match &cli.command {
        Command::Utxos(a) => vec![parse_target(&a.target, cli.network)?],
        Command::Watch(a) => a
            .scripthashes
            .iter()
            .map(|t| parse_target(t, cli.network))
            .collect::<Result<_, _>>()?,
        Command::Status { .. } => Vec::new(),
    };
    let options = ClientOptions {
        client_name: format!("opnet-cli/{}", env!("CARGO_PKG_VERSION")),
        network: Some(cli.network),
        // Only `watch` runs long enough for a reconnect to help.
        reconnect: matches!(cli.command, Command::Watch(_)),
        ..ClientOptions::default()
    };
    let client = Client::connect(&cli.socket, options).await?;
    match &cli.command {
        Command::Status { json } => status::run(&client, *json, out).await,
        Command::Utxos(a) => utxos::run(&client, targets[0], a, out).await,
        Command::Watch(a) => watch::run(&client, &targets, a, out).await,
    }
}

/// The program: parses `args` (without the program name), runs the command and
/// returns the exit status (0 success, 1 any error, reported on stderr).
pub fn run(args: impl IntoIterator<Item = String>) -> i32 {
    let cli = match args::parse(args) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return 0;
        }
        Ok(Parsed::Run(cli)) => cli,
        Err(e) => {
            eprintln!("opnet-cli: {e}\n\n{USAGE}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("opnet-cli: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = runtime.block_on(execute(cli, &mut out));
    let result = result.and_then(|()| out.flush().map_err(CliError::Io));
    match result {
        Ok(()) => 0,
        // The reader went away (`| head`): not an error of ours.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("opnet-cli: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btc_is_exact() {
        assert_eq!(btc(0), "0.00000000");
        assert_eq!(btc(150_000_001), "1.50000001");
        assert_eq!(btc(2_100_000_000_000_000), "21000000.00000000");
    }
}
