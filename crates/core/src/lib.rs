//! Shared core of the OPNet native data path.
//!
//! It reads Bitcoin Core's on-disk formats strictly read-only, keeps the
//! scripthash → UTXO index and keeps it equal to Bitcoin Core's UTXO set through
//! blocks and reorgs. The plugin (`crates/plugin`) and the loader (`crates/host`)
//! build on it; the napi addon uses only its client side.

pub mod abi;
#[cfg(feature = "client")]
pub mod client;
pub mod format;
pub mod network;
pub mod protocol;
#[cfg(feature = "engine")]
pub mod synth;

#[cfg(feature = "engine")]
pub mod chainstate;
#[cfg(feature = "engine")]
pub mod datadir;
#[cfg(feature = "engine")]
pub mod failpoint;
#[cfg(feature = "engine")]
pub mod index;
#[cfg(feature = "engine")]
pub mod leveldb;
#[cfg(feature = "engine")]
pub mod mempool;
#[cfg(feature = "engine")]
pub mod replay;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "engine")]
pub mod snapshot;
#[cfg(feature = "engine")]
pub mod source;
#[cfg(feature = "engine")]
pub mod sync;

pub use network::Network;
