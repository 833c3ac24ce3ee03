//! Host-side tools of the OPNet native data path. Today: `opnet-cli`, the
//! command-line client of the plugin's socket ([`cli`]), built on `opnet`'s client
//! side only (no LevelDB, no chain readers).

pub mod cli;
