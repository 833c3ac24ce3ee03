//! The host's side of the ABI: the `PluginContext` each plugin gets (arguments,
//! logging, chain access over a [`HostChain`]) and the registry of validation
//! callbacks the host's driver dispatches to. Buffers the host hands out are
//! `Vec`s released by [`release_vec`].

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use opnet::abi::{self, Buffer, PluginContext, Status, ValidationCallbacks};
use opnet::source::SourceError;

use super::watchdog::Watchdog;
use crate::chain::{HostChain, SpentBytes, SpentFormat};

/// Host version reported to plugins, Bitcoin Core style (major*10000+minor*100).
pub const HOST_VERSION: u32 = 100;

/// One plugin's registered callbacks.
struct Registration {
    plugin: String,
    /// The registering context's handle address: who may unregister it.
    owner: usize,
    callbacks: ValidationCallbacks,
}

// SAFETY: the header lets the host call callbacks from any thread (one at a time);
// `user_data` is the plugin's to interpret.
unsafe impl Send for Registration {}
// SAFETY: as above; the registry serialises dispatch.
unsafe impl Sync for Registration {}

/// What every plugin's context shares: the chain, the arguments, the callbacks.
pub struct HostShared {
    pub chain: Arc<dyn HostChain>,
    pub capabilities: u32,
    args: HashMap<String, CString>,
    registry: RwLock<Vec<Registration>>,
    /// Held while callbacks run: the host calls them one at a time.
    dispatching: Mutex<()>,
    watchdog: Arc<Watchdog>,
}

/// What a context's `host` pointer points at: the shared state and the plugin's name.
struct Handle {
    shared: Arc<HostShared>,
    plugin: String,
}

/// A plugin's context and everything its pointers point into. All are raw
/// allocations, freed on drop: the plugin holds pointers into them (and writes
/// the context's `user_data`) while the host moves this struct around.
pub struct Context {
    ctx: *mut PluginContext,
    handle: *mut Handle,
    network: *mut c_char,
    datadir: *mut c_char,
}

// SAFETY: the pointed-to data is plain data the plugin may use from any thread;
// the host never writes it after building it.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// The pointer passed to the plugin's functions.
    pub fn as_ptr(&self) -> *mut PluginContext {
        self.ctx
    }

    /// The `host` pointer of this context (identifies its registrations).
    fn owner(&self) -> usize {
        self.handle as usize
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: each was made by Box::into_raw / CString::into_raw in
        // HostShared::context and is freed once, after the plugin was shut down
        // or its init failed (Loaded and Loader::load drop contexts only then).
        unsafe {
            drop(Box::from_raw(self.ctx));
            drop(Box::from_raw(self.handle));
            drop(CString::from_raw(self.network));
            drop(CString::from_raw(self.datadir));
        }
    }
}

impl HostShared {
    /// The shared state for `chain`; `args` are bitcoind-style names without the dash.
    pub fn new(
        chain: Arc<dyn HostChain>,
        capabilities: u32,
        args: &HashMap<String, String>,
        watchdog: Arc<Watchdog>,
    ) -> HostShared {
        let args = args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), CString::new(v.as_str()).ok()?)))
            .collect();
        HostShared {
            chain,
            capabilities,
            args,
            registry: RwLock::new(Vec::new()),
            dispatching: Mutex::new(()),
            watchdog,
        }
    }

    /// Builds the context for `plugin`.
    pub fn context(self: &Arc<Self>, plugin: &str, datadir: &Path) -> Context {
        let network = CString::new(self.chain.network().name())
            .unwrap_or_default()
            .into_raw();
        let datadir = CString::new(datadir.as_os_str().as_encoded_bytes())
            .unwrap_or_default()
            .into_raw();
        let handle = Box::into_raw(Box::new(Handle {
            shared: self.clone(),
            plugin: plugin.to_string(),
        }));
        let chain_flags = if self.chain.has_tx_index() {
            abi::CHAIN_TXINDEX
        } else {
            0
        };
        let ctx = Box::into_raw(Box::new(PluginContext {
            size: std::mem::size_of::<PluginContext>() as u32,
            api_version: abi::API_VERSION,
            core_version: HOST_VERSION,
            capabilities: self.capabilities,
            chain_flags,
            network,
            datadir,
            host: handle.cast(),
            user_data: std::ptr::null_mut(),
            log: Some(host_log),
            get_arg: Some(host_get_arg),
            get_int_arg: Some(host_get_int_arg),
            get_bool_arg: Some(host_get_bool_arg),
            register_validation_interface: Some(host_register),
            unregister_validation_interface: Some(host_unregister),
            get_tip: Some(host_get_tip),
            get_block_hash: Some(host_get_block_hash),
            get_block: Some(host_get_block),
            get_block_spent: Some(host_get_block_spent),
            get_block_header: Some(host_get_block_header),
            get_transaction: Some(host_get_transaction),
            flush_chainstate: self
                .chain
                .can_flush_chainstate()
                .then_some(host_flush_chainstate as _),
        }));
        Context {
            ctx,
            handle,
            network,
            datadir,
        }
    }

    /// Drops every registration `context`'s plugin left behind (after a failed
    /// init or a shutdown that did not unregister): its code is about to be
    /// unloaded. Returns how many there were.
    pub fn purge(&self, context: &Context) -> usize {
        let mut registry = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let before = registry.len();
        registry.retain(|r| r.owner != context.owner());
        before - registry.len()
    }

    fn dispatch(&self, callback: &'static str, call: impl Fn(&ValidationCallbacks)) {
        let _one_at_a_time = self.dispatching.lock().unwrap_or_else(|p| p.into_inner());
        let registry = self.registry.read().unwrap_or_else(|p| p.into_inner());
        for r in registry.iter() {
            self.watchdog.enter(&r.plugin, callback);
            call(&r.callbacks);
            self.watchdog.leave();
        }
    }

    /// Tells every plugin a block was connected.
    pub fn block_connected(&self, block: &[u8], height: u32, spent: &SpentBytes) {
        let format = spent_format(spent.format);
        self.dispatch("block_connected", |cb| {
            if let Some(f) = cb.block_connected {
                // SAFETY: a registered plugin function; the slices live for the call.
                unsafe {
                    f(
                        cb.user_data,
                        block.as_ptr(),
                        block.len(),
                        height,
                        spent.bytes.as_ptr(),
                        spent.bytes.len(),
                        format,
                    )
                }
            }
        });
    }

    /// Tells every plugin its tip `hash` at `height` was disconnected.
    pub fn block_disconnected(&self, hash: &BlockHash, height: u32) {
        let h = hash.to_byte_array();
        self.dispatch("block_disconnected", |cb| {
            if let Some(f) = cb.block_disconnected {
                // SAFETY: a registered plugin function; 32 bytes live for the call.
                unsafe { f(cb.user_data, h.as_ptr(), height) }
            }
        });
    }

    /// Tells every plugin a transaction entered the mempool (only when the host
    /// offers PLUGIN_CAP_MEMPOOL_READ).
    pub fn transaction_added(&self, tx: &[u8], spent: &[u8]) {
        if self.capabilities & abi::CAP_MEMPOOL_READ == 0 {
            return;
        }
        self.dispatch("transaction_added", |cb| {
            if let Some(f) = cb.transaction_added {
                // SAFETY: a registered plugin function; the slices live for the call.
                unsafe {
                    f(
                        cb.user_data,
                        tx.as_ptr(),
                        tx.len(),
                        spent.as_ptr(),
                        spent.len(),
                    )
                }
            }
        });
    }

    /// Tells every plugin a transaction left the mempool.
    pub fn transaction_removed(&self, txid: &Txid, reason: u32) {
        if self.capabilities & abi::CAP_MEMPOOL_READ == 0 {
            return;
        }
        let t = txid.to_byte_array();
        self.dispatch("transaction_removed", |cb| {
            if let Some(f) = cb.transaction_removed {
                // SAFETY: a registered plugin function; 32 bytes live for the call.
                unsafe { f(cb.user_data, t.as_ptr(), reason) }
            }
        });
    }
}

fn spent_format(f: SpentFormat) -> u32 {
    match f {
        SpentFormat::Undo => abi::SPENT_UNDO,
        SpentFormat::Rest => abi::SPENT_REST,
    }
}

/// Runs a host function called by a plugin; a panic here must not unwind into it.
fn guarded<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let _ = catch_unwind(AssertUnwindSafe(move || {
            tracing::error!("panic in a host function called by a plugin; contained");
            drop(payload);
        }));
        on_panic
    })
}

/// # Safety
/// `host` is a context's `host` pointer, alive while the plugin is loaded.
unsafe fn handle<'a>(host: *mut c_void) -> Option<&'a Handle> {
    // SAFETY: per the caller: NULL or a live Box<Handle>.
    unsafe { (host as *const Handle).as_ref() }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the caller.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Frees a buffer the host filled.
///
/// # Safety
/// `buf` is NULL or a buffer filled by [`fill`], released once.
pub unsafe extern "C" fn release_vec(buf: *mut Buffer) {
    if buf.is_null() {
        return;
    }
    // SAFETY: per the caller; `owner` is the Box<Vec<u8>> made by `fill`.
    unsafe {
        let owner = (*buf).owner as *mut Vec<u8>;
        if !owner.is_null() {
            drop(Box::from_raw(owner));
        }
        *buf = Buffer::empty();
    }
}

/// Hands `bytes` to the plugin through `buf` (ignored when `buf` is NULL).
///
/// # Safety
/// `buf` is NULL or writable.
unsafe fn fill(buf: *mut Buffer, bytes: Vec<u8>) {
    if buf.is_null() {
        return;
    }
    let owner = Box::into_raw(Box::new(bytes));
    // SAFETY: `owner` is a live Box we just leaked; `buf` is writable per the caller.
    unsafe {
        *buf = Buffer {
            data: (*owner).as_ptr(),
            len: (*owner).len(),
            release: Some(release_vec),
            owner: owner.cast(),
        };
    }
}

/// # Safety
/// `error` is NULL or writable.
unsafe fn fail(error: *mut Buffer, e: SourceError) -> Status {
    let status = match &e {
        SourceError::NotFound(_) => abi::ERR_NOT_FOUND,
        SourceError::Unsupported(_) => abi::ERR_UNSUPPORTED,
        SourceError::Corrupt(_) => abi::ERR_CORRUPT,
        SourceError::Unavailable(_) => abi::ERR_UNAVAILABLE,
    };
    // SAFETY: per the caller.
    unsafe { fill(error, e.to_string().into_bytes()) };
    status
}

/// # Safety
/// `p` is NULL or 32 readable bytes.
unsafe fn hash_arg(p: *const u8) -> Option<[u8; 32]> {
    if p.is_null() {
        return None;
    }
    let mut out = [0u8; 32];
    // SAFETY: per the caller.
    out.copy_from_slice(unsafe { std::slice::from_raw_parts(p, 32) });
    Some(out)
}

unsafe extern "C" fn host_log(
    host: *mut c_void,
    level: i32,
    category: *const c_char,
    message: *const c_char,
) {
    guarded((), || {
        // SAFETY: pointers from the plugin per the header.
        let (Some(h), Some(msg)) = (unsafe { handle(host) }, unsafe { text(message) }) else {
            return;
        };
        // SAFETY: as above.
        let category = unsafe { text(category) }.unwrap_or_default();
        let plugin = h.plugin.as_str();
        match level {
            abi::LOG_ERROR => tracing::error!(plugin, category, "{msg}"),
            abi::LOG_WARN => tracing::warn!(plugin, category, "{msg}"),
            abi::LOG_INFO => tracing::info!(plugin, category, "{msg}"),
            abi::LOG_DEBUG => tracing::debug!(plugin, category, "{msg}"),
            _ => tracing::trace!(plugin, category, "{msg}"),
        }
    })
}

unsafe extern "C" fn host_get_arg(
    host: *mut c_void,
    name: *const c_char,
    default: *const c_char,
) -> *const c_char {
    guarded(default, || {
        // SAFETY: pointers from the plugin per the header.
        let (Some(h), Some(name)) = (unsafe { handle(host) }, unsafe { text(name) }) else {
            return default;
        };
        // The CString lives in the shared state until every plugin is unloaded.
        h.shared
            .args
            .get(name.trim_start_matches('-'))
            .map_or(default, |v| v.as_ptr())
    })
}

fn arg_value(host: *mut c_void, name: *const c_char) -> Option<String> {
    // SAFETY: pointers from the plugin per the header.
    let (h, name) = unsafe { (handle(host)?, text(name)?) };
    h.shared
        .args
        .get(name.trim_start_matches('-'))
        .map(|v| v.to_string_lossy().into_owned())
}

unsafe extern "C" fn host_get_int_arg(host: *mut c_void, name: *const c_char, default: i64) -> i64 {
    guarded(default, || {
        arg_value(host, name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    })
}

unsafe extern "C" fn host_get_bool_arg(
    host: *mut c_void,
    name: *const c_char,
    default: bool,
) -> bool {
    guarded(default, || {
        match arg_value(host, name).as_deref().map(str::trim) {
            Some("" | "1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            _ => default,
        }
    })
}

unsafe extern "C" fn host_register(
    host: *mut c_void,
    callbacks: *const ValidationCallbacks,
) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        // SAFETY: the context's host pointer.
        let Some(h) = (unsafe { handle(host) }) else {
            return abi::ERR_INVALID;
        };
        if callbacks.is_null() {
            return abi::ERR_INVALID;
        }
        // SAFETY: non-NULL; `size` is the first field.
        let size = unsafe { (*callbacks).size } as usize;
        if size < std::mem::size_of::<ValidationCallbacks>() {
            return abi::ERR_INVALID;
        }
        // SAFETY: at least as large as our definition; copied.
        let cb = unsafe { std::ptr::read(callbacks) };
        h.shared
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Registration {
                plugin: h.plugin.clone(),
                owner: host as usize,
                callbacks: cb,
            });
        abi::OK
    })
}

unsafe extern "C" fn host_unregister(host: *mut c_void, user_data: *mut c_void) {
    guarded((), || {
        // SAFETY: the context's host pointer.
        if let Some(h) = unsafe { handle(host) } {
            // The write lock waits for a dispatch in progress: after this returns,
            // no callback of that registration runs.
            h.shared
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|r| !(r.owner == host as usize && r.callbacks.user_data == user_data));
        }
    })
}

unsafe extern "C" fn host_get_tip(
    host: *mut c_void,
    height: *mut u32,
    hash: *mut u8,
    error: *mut Buffer,
) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        // SAFETY: the context's host pointer.
        let Some(h) = (unsafe { handle(host) }) else {
            return abi::ERR_INVALID;
        };
        if height.is_null() || hash.is_null() {
            return abi::ERR_INVALID;
        }
        match h.shared.chain.tip() {
            // SAFETY: non-NULL out-pointers; `hash` has room for 32 bytes per the header.
            Ok(t) => unsafe {
                *height = t.height;
                std::ptr::copy_nonoverlapping(t.hash.to_byte_array().as_ptr(), hash, 32);
                abi::OK
            },
            // SAFETY: `error` is NULL or writable.
            Err(e) => unsafe { fail(error, e) },
        }
    })
}

unsafe extern "C" fn host_get_block_hash(
    host: *mut c_void,
    height: u32,
    hash: *mut u8,
    error: *mut Buffer,
) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        // SAFETY: the context's host pointer.
        let Some(h) = (unsafe { handle(host) }) else {
            return abi::ERR_INVALID;
        };
        if hash.is_null() {
            return abi::ERR_INVALID;
        }
        match h.shared.chain.hash_at_height(height) {
            // SAFETY: 32 writable bytes per the header.
            Ok(Some(found)) => unsafe {
                std::ptr::copy_nonoverlapping(found.to_byte_array().as_ptr(), hash, 32);
                abi::OK
            },
            // SAFETY: `error` is NULL or writable.
            Ok(None) => unsafe {
                fail(
                    error,
                    SourceError::NotFound(format!("no block at height {height}")),
                )
            },
            // SAFETY: as above.
            Err(e) => unsafe { fail(error, e) },
        }
    })
}

/// Runs a byte-returning chain query for a 32-byte key.
fn bytes_query(
    host: *mut c_void,
    key: *const u8,
    out: *mut Buffer,
    error: *mut Buffer,
    query: impl FnOnce(&HostShared, [u8; 32]) -> Result<Vec<u8>, SourceError>,
) -> Status {
    // SAFETY: the context's host pointer and a 32-byte key per the header.
    let (Some(h), Some(key)) = (unsafe { handle(host) }, unsafe { hash_arg(key) }) else {
        return abi::ERR_INVALID;
    };
    if out.is_null() {
        return abi::ERR_INVALID;
    }
    match query(&h.shared, key) {
        // SAFETY: `out` is writable (checked non-NULL).
        Ok(bytes) => unsafe {
            fill(out, bytes);
            abi::OK
        },
        // SAFETY: `error` is NULL or writable.
        Err(e) => unsafe { fail(error, e) },
    }
}

unsafe extern "C" fn host_get_block(
    host: *mut c_void,
    hash: *const u8,
    out: *mut Buffer,
    error: *mut Buffer,
) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        bytes_query(host, hash, out, error, |s, h| {
            s.chain.block_bytes(&BlockHash::from_byte_array(h))
        })
    })
}

unsafe extern "C" fn host_get_block_spent(
    host: *mut c_void,
    hash: *const u8,
    format: *mut u32,
    out: *mut Buffer,
    error: *mut Buffer,
) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        if format.is_null() {
            return abi::ERR_INVALID;
        }
        let mut got = None;
        let st = bytes_query(host, hash, out, error, |s, h| {
            let spent = s.chain.spent_bytes(&BlockHash::from_byte_array(h))?;
            got = Some(spent_format(spent.format));
            Ok(spent.bytes)
        });
        if let Some(f) = got {
            // SAFETY: checked non-NULL above.
            unsafe { *format = f };
        }
        st
    })
}

unsafe extern "C" fn host_get_block_header(
    host: *mut c_void,
    hash: *const u8,
    header: *mut u8,
    height: *mut u32,
    error: *mut Buffer,
) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        // SAFETY: the context's host pointer and a 32-byte key.
        let (Some(h), Some(key)) = (unsafe { handle(host) }, unsafe { hash_arg(hash) }) else {
            return abi::ERR_INVALID;
        };
        if header.is_null() || height.is_null() {
            return abi::ERR_INVALID;
        }
        let hash = BlockHash::from_byte_array(key);
        match h.shared.chain.header(&hash) {
            Ok(Some(info)) => {
                let raw = serialize(&info.header);
                // SAFETY: 80 writable bytes and a writable height per the header.
                unsafe {
                    std::ptr::copy_nonoverlapping(raw.as_ptr(), header, raw.len().min(80));
                    *height = info.height;
                }
                abi::OK
            }
            // SAFETY: `error` is NULL or writable.
            Ok(None) => unsafe { fail(error, SourceError::NotFound(format!("block {hash}"))) },
            // SAFETY: as above.
            Err(e) => unsafe { fail(error, e) },
        }
    })
}

unsafe extern "C" fn host_get_transaction(
    host: *mut c_void,
    txid: *const u8,
    out: *mut Buffer,
    error: *mut Buffer,
) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        bytes_query(host, txid, out, error, |s, t| {
            let txid = Txid::from_byte_array(t);
            s.chain
                .transaction_bytes(&txid)?
                .ok_or_else(|| SourceError::NotFound(format!("transaction {txid}")))
        })
    })
}

unsafe extern "C" fn host_flush_chainstate(host: *mut c_void, error: *mut Buffer) -> Status {
    guarded(abi::ERR_INTERNAL, || {
        // SAFETY: the context's host pointer per the header.
        let Some(h) = (unsafe { handle(host) }) else {
            return abi::ERR_INVALID;
        };
        match h.shared.chain.flush_chainstate() {
            Ok(()) => abi::OK,
            // SAFETY: `error` is NULL or writable.
            Err(e) => unsafe { fail(error, e) },
        }
    })
}
