//! `libopnet_core.so`: the OPNet plugin. A loader (a plugin-capable bitcoind, or
//! `opnet-host` next to a stock one) opens it through the C ABI of
//! `include/opnet_plugin.h`; it keeps the scripthash UTXO index under
//! `<datadir>/opnet/` in step with the host's chain and serves `opnet.sock`.
//!
//! The callbacks only copy and hand over: blocks go to the index thread through a
//! bounded queue (on overflow it catches up from the host's chain access), mempool
//! transactions to their own thread. docs/PLUGIN.md describes the ABI and the
//! arguments.

pub mod config;
mod exports;
mod host;
mod logging;
pub mod mempool_feed;
mod runtime;
mod scan_snapshot;

pub use exports::{plugin_capabilities, plugin_info};
