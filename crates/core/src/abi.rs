//! The C ABI of `crates/plugin/include/opnet_plugin.h`, mirrored as `#[repr(C)]`
//! types shared by the plugin and the loader. The header is the contract; these
//! declarations match it field for field (the host tests compile C against the
//! header and load the plugin through it).

use std::ffi::{c_char, c_void};

/// `OPNET_PLUGIN_API_VERSION`.
pub const API_VERSION: u32 = 1;

pub const CAP_VALIDATION_INTERFACE: u32 = 1 << 0;
pub const CAP_CHAINSTATE_READ: u32 = 1 << 1;
pub const CAP_MEMPOOL_READ: u32 = 1 << 2;
pub const CAP_BLOCK_READ: u32 = 1 << 3;
pub const CAP_NET_EVENTS: u32 = 1 << 4;
pub const CAP_RPC_REGISTER: u32 = 1 << 5;
/// `PLUGIN_CAP_KNOWN_MASK`.
pub const CAP_KNOWN_MASK: u32 = 0x3f;

/// `opnet_status`.
pub type Status = i32;
pub const OK: Status = 0;
pub const ERR_NOT_FOUND: Status = 1;
pub const ERR_UNSUPPORTED: Status = 2;
pub const ERR_UNAVAILABLE: Status = 3;
pub const ERR_CORRUPT: Status = 4;
pub const ERR_INVALID: Status = 5;
pub const ERR_TIMEOUT: Status = 6;
pub const ERR_NOT_SYNCED: Status = 7;
pub const ERR_INTERNAL: Status = 8;

pub const LOG_ERROR: i32 = 1;
pub const LOG_WARN: i32 = 2;
pub const LOG_INFO: i32 = 3;
pub const LOG_DEBUG: i32 = 4;
pub const LOG_TRACE: i32 = 5;

pub const SPENT_UNDO: u32 = 1;
pub const SPENT_REST: u32 = 2;

/// `OPNET_REMOVED_*`: why a transaction left the mempool (Bitcoin Core's
/// MemPoolRemovalReason).
pub const REMOVED_UNKNOWN: u32 = 0;
pub const REMOVED_BLOCK: u32 = 1;
pub const REMOVED_REPLACED: u32 = 2;
pub const REMOVED_CONFLICT: u32 = 3;
pub const REMOVED_EXPIRY: u32 = 4;
pub const REMOVED_SIZELIMIT: u32 = 5;
pub const REMOVED_REORG: u32 = 6;

pub const CHAIN_TXINDEX: u32 = 1 << 0;

pub const PHASE_STARTING: u32 = 0;
pub const PHASE_SCANNING: u32 = 1;
pub const PHASE_CATCHING_UP: u32 = 2;
pub const PHASE_LIVE: u32 = 3;
/// The index thread stopped, on an internal error or a damaged index.
pub const PHASE_FAILED: u32 = 4;

/// `opnet_buffer`: bytes owned by the receiver until it calls `release`.
#[repr(C)]
pub struct Buffer {
    pub data: *const u8,
    pub len: usize,
    pub release: Option<unsafe extern "C" fn(*mut Buffer)>,
    pub owner: *mut c_void,
}

impl Buffer {
    /// An empty buffer for the other side to fill.
    pub const fn empty() -> Buffer {
        Buffer {
            data: std::ptr::null(),
            len: 0,
            release: None,
            owner: std::ptr::null_mut(),
        }
    }
}

/// `struct PluginInfo`.
#[repr(C)]
pub struct PluginInfo {
    pub api_version: u32,
    pub name: *const c_char,
    pub version: *const c_char,
    pub description: *const c_char,
}

// SAFETY: the pointers refer to static, immutable NUL-terminated strings.
unsafe impl Sync for PluginInfo {}

pub type BlockConnectedFn = unsafe extern "C" fn(
    user: *mut c_void,
    block: *const u8,
    block_len: usize,
    height: u32,
    spent: *const u8,
    spent_len: usize,
    spent_format: u32,
);
pub type BlockDisconnectedFn =
    unsafe extern "C" fn(user: *mut c_void, hash: *const u8, height: u32);
pub type TransactionAddedFn = unsafe extern "C" fn(
    user: *mut c_void,
    tx: *const u8,
    tx_len: usize,
    spent: *const u8,
    spent_len: usize,
);
pub type TransactionRemovedFn =
    unsafe extern "C" fn(user: *mut c_void, txid: *const u8, reason: u32);

/// `opnet_validation_callbacks`.
#[repr(C)]
pub struct ValidationCallbacks {
    pub size: u32,
    pub user_data: *mut c_void,
    pub block_connected: Option<BlockConnectedFn>,
    pub block_disconnected: Option<BlockDisconnectedFn>,
    pub transaction_added: Option<TransactionAddedFn>,
    pub transaction_removed: Option<TransactionRemovedFn>,
}

/// `PluginContext`. Copyable: every field is a pointer the host keeps valid until
/// `plugin_shutdown` returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginContext {
    pub size: u32,
    pub api_version: u32,
    pub core_version: u32,
    pub capabilities: u32,
    pub chain_flags: u32,
    pub network: *const c_char,
    pub datadir: *const c_char,
    pub host: *mut c_void,
    pub user_data: *mut c_void,
    pub log: Option<unsafe extern "C" fn(*mut c_void, i32, *const c_char, *const c_char)>,
    pub get_arg:
        Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *const c_char>,
    pub get_int_arg: Option<unsafe extern "C" fn(*mut c_void, *const c_char, i64) -> i64>,
    pub get_bool_arg: Option<unsafe extern "C" fn(*mut c_void, *const c_char, bool) -> bool>,
    pub register_validation_interface:
        Option<unsafe extern "C" fn(*mut c_void, *const ValidationCallbacks) -> Status>,
    pub unregister_validation_interface: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    pub get_tip:
        Option<unsafe extern "C" fn(*mut c_void, *mut u32, *mut u8, *mut Buffer) -> Status>,
    pub get_block_hash:
        Option<unsafe extern "C" fn(*mut c_void, u32, *mut u8, *mut Buffer) -> Status>,
    pub get_block:
        Option<unsafe extern "C" fn(*mut c_void, *const u8, *mut Buffer, *mut Buffer) -> Status>,
    pub get_block_spent: Option<
        unsafe extern "C" fn(*mut c_void, *const u8, *mut u32, *mut Buffer, *mut Buffer) -> Status,
    >,
    pub get_block_header: Option<
        unsafe extern "C" fn(*mut c_void, *const u8, *mut u8, *mut u32, *mut Buffer) -> Status,
    >,
    pub get_transaction:
        Option<unsafe extern "C" fn(*mut c_void, *const u8, *mut Buffer, *mut Buffer) -> Status>,
    /// Added after API 1's first fields: read only when `size` covers it
    /// ([`PluginContext::MIN_SIZE`] is the size without it).
    pub flush_chainstate: Option<unsafe extern "C" fn(*mut c_void, *mut Buffer) -> Status>,
}

impl PluginContext {
    /// `OPNET_PLUGIN_CONTEXT_MIN_SIZE`: API 1's first context, up to
    /// `get_transaction`. A host built against it is still served; the fields
    /// after it then read as absent.
    pub const MIN_SIZE: usize = std::mem::offset_of!(PluginContext, flush_chainstate);
}

/// `opnet_progress`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub size: u32,
    pub phase: u32,
    pub scanned_utxos: u64,
    pub written_utxos: u64,
    pub scanned_bytes: u64,
    pub total_bytes: u64,
    pub height: u32,
    pub target_height: u32,
}

// The header's layouts on 64-bit targets (checked against a C compiler's
// sizeof/offsetof): a field added or reordered here fails the build.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<Buffer>() == 32);
    assert!(std::mem::size_of::<PluginInfo>() == 32);
    assert!(std::mem::size_of::<ValidationCallbacks>() == 48);
    assert!(std::mem::size_of::<PluginContext>() == 160);
    assert!(PluginContext::MIN_SIZE == 152);
    assert!(std::mem::size_of::<Progress>() == 48);
};
