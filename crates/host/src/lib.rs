//! Host-side tools of the OPNet native data path: `opnet-host`, the reference
//! loader that runs plugins next to a stock bitcoind, and `opnet-cli`, the
//! command-line client of the plugin's socket ([`cli`]).

pub mod chain;
pub mod cli;
pub mod follow;
pub mod loader;
pub mod replay;
pub mod run;
