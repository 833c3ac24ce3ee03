//! The symbols a loader looks up (include/opnet_plugin.h), and the callbacks the
//! plugin registers. Every entry point catches panics: a panic never unwinds into
//! the host, it is logged and turned into a failure status.

#![allow(non_upper_case_globals)]

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use opnet::abi::{self, PluginContext, PluginInfo, ValidationCallbacks};

use crate::config::PluginConfig;
use crate::host::HostApi;
use crate::logging;
use crate::mempool_feed::Notification;
use crate::runtime::Runtime;

/// `plugin_info`: checked by the loader before anything else.
#[no_mangle]
pub static plugin_info: PluginInfo = PluginInfo {
    api_version: abi::API_VERSION,
    name: c"opnet-core".as_ptr(),
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
    description: c"OPNet address-indexed UTXO set and block/mempool events over a Unix socket"
        .as_ptr(),
};

/// `plugin_capabilities`: callbacks and chain access. Chainstate reading and
/// mempool callbacks are used when the host offers them.
#[no_mangle]
pub static plugin_capabilities: u32 = abi::CAP_VALIDATION_INTERFACE | abi::CAP_BLOCK_READ;

/// Runs `f`, turning a panic into `on_panic` (after logging it).
fn guarded<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(panic) => {
            let msg = opnet::sync::live::panic_message(panic.as_ref());
            // Logging, and dropping the payload, must not unwind either.
            let _ = catch_unwind(AssertUnwindSafe(move || {
                tracing::error!(%msg, "panic in {what}; contained");
                drop(panic);
            }));
            on_panic
        }
    }
}

/// The runtime a context or callback registration points at.
///
/// # Safety
/// `p` is NULL or a pointer made by `plugin_init` that `plugin_shutdown` has not
/// yet reclaimed.
unsafe fn runtime<'a>(p: *mut c_void) -> Option<&'a Runtime> {
    // SAFETY: per the caller, a live Box<Runtime> or NULL.
    unsafe { (p as *const Runtime).as_ref() }
}

/// # Safety
/// `p` points to `len` readable bytes, or `len` is 0.
unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: per the caller; borrowed for the callback's duration only.
    unsafe { std::slice::from_raw_parts(p, len) }
}

/// # Safety
/// `p` is NULL or points to 32 readable bytes.
unsafe fn hash32(p: *const u8) -> Option<[u8; 32]> {
    if p.is_null() {
        return None;
    }
    let mut out = [0u8; 32];
    // SAFETY: 32 readable bytes per the caller.
    out.copy_from_slice(unsafe { std::slice::from_raw_parts(p, 32) });
    Some(out)
}

/// `plugin_init`: reads the context and arguments, opens the index, starts the
/// threads and registers the callbacks. False (with the reason logged) on failure.
///
/// # Safety
/// `ctx` is NULL or a context the host keeps valid until `plugin_shutdown` returns.
#[no_mangle]
pub unsafe extern "C" fn plugin_init(ctx: *mut PluginContext) -> bool {
    guarded("plugin_init", false, || {
        // SAFETY: per this function's contract.
        let host = match unsafe { HostApi::from_ctx(ctx) } {
            Ok(h) => Arc::new(h),
            Err(e) => {
                report_early(ctx, &e.to_string());
                return false;
            }
        };
        let config = match PluginConfig::from_args(&host.datadir, host.network, &|n| host.arg(n)) {
            Ok(c) => c,
            Err(e) => {
                host.log(abi::LOG_ERROR, &format!("opnet: {e}"));
                return false;
            }
        };
        logging::start(host.clone(), config.debug);
        if let Some(site) = &config.test_panic {
            tracing::warn!(
                site,
                "-opnettestpanic: a deliberate panic is armed (a test setting)"
            );
        }
        // Validated by the config: a known site, on regtest.
        let _ = opnet::failpoint::arm(config.test_panic.as_deref());
        opnet::failpoint::check("init");
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            network = %host.network,
            index = %config.engine.opnet_dir.display(),
            "starting"
        );
        let rt = match Runtime::start(host.clone(), config) {
            Ok(rt) => Box::new(rt),
            Err(e) => {
                tracing::error!("{e}");
                logging::stop();
                host.close();
                return false;
            }
        };
        let user = Box::into_raw(rt);
        let callbacks = ValidationCallbacks {
            size: std::mem::size_of::<ValidationCallbacks>() as u32,
            user_data: user.cast(),
            block_connected: Some(on_block_connected),
            block_disconnected: Some(on_block_disconnected),
            transaction_added: Some(on_transaction_added),
            transaction_removed: Some(on_transaction_removed),
        };
        let ctx_fns = host.context();
        let registered = match ctx_fns.register_validation_interface {
            // SAFETY: valid host function; the struct lives for the call (the host copies it).
            Some(register) => unsafe { register(ctx_fns.host, &callbacks) },
            None => abi::ERR_UNSUPPORTED,
        };
        if registered != abi::OK {
            tracing::error!(
                status = registered,
                "the host refused the validation callbacks"
            );
            // SAFETY: made by Box::into_raw above and never shared.
            let rt = unsafe { Box::from_raw(user) };
            rt.shutdown();
            host.close();
            logging::stop();
            return false;
        }
        // SAFETY: ctx is valid (HostApi::from_ctx checked it is not NULL).
        unsafe { (*ctx).user_data = user.cast() };
        true
    })
}

/// Logs through the context before a HostApi exists (it may be unusable).
fn report_early(ctx: *mut PluginContext, message: &str) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: non-NULL context from the host, `size` bytes long.
    let Some(c) = (unsafe { crate::host::copy_context(ctx) }) else {
        return;
    };
    if let Some(log) = c.log {
        let msg = std::ffi::CString::new(format!("opnet: {message}").replace('\0', " "))
            .unwrap_or_default();
        // SAFETY: valid host function and NUL-terminated strings for the call.
        unsafe { log(c.host, abi::LOG_ERROR, c"opnet".as_ptr(), msg.as_ptr()) };
    }
}

/// `plugin_shutdown`: unregisters, stops every thread, closes the index.
///
/// # Safety
/// `ctx` is the context given to a successful `plugin_init`.
#[no_mangle]
pub unsafe extern "C" fn plugin_shutdown(ctx: *mut PluginContext) {
    guarded("plugin_shutdown", (), || {
        if ctx.is_null() {
            return;
        }
        // SAFETY: valid context per the contract.
        let user = unsafe { (*ctx).user_data };
        if user.is_null() {
            return;
        }
        // Whatever happens below, the plugin stops logging into this host.
        struct StopLogging;
        impl Drop for StopLogging {
            fn drop(&mut self) {
                logging::stop();
            }
        }
        let _stop_logging = StopLogging;
        // Unregister first: after that no callback holds a reference to the runtime.
        {
            // SAFETY: user_data is our live runtime until reclaimed below.
            let Some(rt) = (unsafe { runtime(user) }) else {
                return;
            };
            let c = rt.host.context();
            if let Some(unregister) = c.unregister_validation_interface {
                // SAFETY: valid host function; after it returns no callback runs.
                unsafe { unregister(c.host, user) };
            }
        }
        // SAFETY: made by plugin_init's Box::into_raw; no callback can use it any
        // more; reclaimed once (user_data is cleared right after).
        let rt = unsafe { Box::from_raw(user as *mut Runtime) };
        // SAFETY: valid context.
        unsafe { (*ctx).user_data = std::ptr::null_mut() };
        let host = rt.host.clone();
        rt.shutdown();
        // Threads the server could not stop in time get errors from now on.
        host.close();
    })
}

/// `plugin_wait_synced` (optional export).
///
/// # Safety
/// `ctx` is a context given to a successful `plugin_init`.
#[no_mangle]
pub unsafe extern "C" fn plugin_wait_synced(
    ctx: *mut PluginContext,
    timeout_ms: u32,
) -> abi::Status {
    guarded("plugin_wait_synced", abi::ERR_INTERNAL, || {
        if ctx.is_null() {
            return abi::ERR_INVALID;
        }
        // SAFETY: valid context; user_data is our runtime or NULL.
        match unsafe { runtime((*ctx).user_data) } {
            Some(rt) => rt.wait_synced(Duration::from_millis(u64::from(timeout_ms))),
            None => abi::ERR_INVALID,
        }
    })
}

/// `plugin_get_progress` (optional export).
///
/// # Safety
/// `ctx` as above; `out` NULL or a progress structure whose `size` is set.
#[no_mangle]
pub unsafe extern "C" fn plugin_get_progress(
    ctx: *mut PluginContext,
    out: *mut abi::Progress,
) -> abi::Status {
    guarded("plugin_get_progress", abi::ERR_INTERNAL, || {
        if ctx.is_null() || out.is_null() {
            return abi::ERR_INVALID;
        }
        // SAFETY: valid context.
        let Some(rt) = (unsafe { runtime((*ctx).user_data) }) else {
            return abi::ERR_INVALID;
        };
        let p = rt.progress();
        // SAFETY: `out` is writable for the size the caller declared.
        let room = unsafe { (*out).size } as usize;
        let n = room.min(std::mem::size_of::<abi::Progress>());
        // SAFETY: copy at most `room` bytes into the caller's structure; keep its size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&p as *const abi::Progress).cast::<u8>(),
                out.cast::<u8>(),
                n,
            );
            if n >= 4 {
                (*out).size = room as u32;
            }
        }
        abi::OK
    })
}

unsafe extern "C" fn on_block_connected(
    user: *mut c_void,
    block: *const u8,
    block_len: usize,
    height: u32,
    spent: *const u8,
    spent_len: usize,
    spent_format: u32,
) {
    guarded("block_connected", (), || {
        // SAFETY: the registration's user_data, live until unregister returns; the
        // byte ranges are borrowed for this call.
        if let Some(rt) = unsafe { runtime(user) } {
            let (b, s) = unsafe { (bytes(block, block_len), bytes(spent, spent_len)) };
            let handled = guarded("block_connected", false, || {
                opnet::failpoint::check("block_connected");
                rt.block_connected(b, height, s, spent_format);
                true
            });
            if !handled {
                // The notification is lost: catch up from the host's chain instead.
                rt.resync();
            }
        }
    })
}

unsafe extern "C" fn on_block_disconnected(user: *mut c_void, hash: *const u8, height: u32) {
    guarded("block_disconnected", (), || {
        // SAFETY: as in on_block_connected; `hash` is 32 bytes.
        if let (Some(rt), Some(h)) = unsafe { (runtime(user), hash32(hash)) } {
            rt.block_disconnected(h, height);
        }
    })
}

unsafe extern "C" fn on_transaction_added(
    user: *mut c_void,
    tx: *const u8,
    tx_len: usize,
    spent: *const u8,
    spent_len: usize,
) {
    guarded("transaction_added", (), || {
        // SAFETY: as in on_block_connected.
        if let Some(rt) = unsafe { runtime(user) } {
            let (t, s) = unsafe { (bytes(tx, tx_len), bytes(spent, spent_len)) };
            rt.mempool(Notification::Added {
                tx: t.to_vec(),
                spent: s.to_vec(),
            });
        }
    })
}

unsafe extern "C" fn on_transaction_removed(user: *mut c_void, txid: *const u8, reason: u32) {
    guarded("transaction_removed", (), || {
        // SAFETY: as in on_block_connected; `txid` is 32 bytes.
        if let (Some(rt), Some(t)) = unsafe { (runtime(user), hash32(txid)) } {
            rt.mempool(Notification::Removed { txid: t, reason });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_an_entry_point_becomes_its_failure_value() {
        // What every exported function and callback runs its body in.
        assert_eq!(
            guarded("test", abi::ERR_INTERNAL, || panic!("boom")),
            abi::ERR_INTERNAL
        );
        assert!(!guarded("test", false, || -> bool {
            panic!("{}", String::from("owned"))
        }));
        assert_eq!(guarded("test", 0, || 7), 7);
    }

    #[test]
    fn entry_points_refuse_null_contexts_without_crashing() {
        // SAFETY: NULL is part of each function's contract.
        unsafe {
            assert!(!plugin_init(std::ptr::null_mut()));
            plugin_shutdown(std::ptr::null_mut());
            assert_eq!(
                plugin_wait_synced(std::ptr::null_mut(), 0),
                abi::ERR_INVALID
            );
            assert_eq!(
                plugin_get_progress(std::ptr::null_mut(), std::ptr::null_mut()),
                abi::ERR_INVALID
            );
        }
    }
}
