//! The host's side of the context, wrapped: logging, arguments and chain access as
//! safe Rust, and the host's chain as the engine's [`ChainSource`]. Every `unsafe`
//! call into the host lives here.

use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard};

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use opnet::abi::{self, Buffer, PluginContext, Status};
use opnet::format::undo::{decode_block_undo, decode_rest_spent_txouts, BlockSpent};
use opnet::source::{ChainSource, ChainTip, HeaderInfo, SourceError};
use opnet::Network;

/// Why the context cannot be used.
#[derive(Debug)]
pub struct ContextError(pub String);

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host's functions and facts, copied out of the context at init.
pub struct HostApi {
    ctx: PluginContext,
    pub network: Network,
    pub datadir: PathBuf,
    /// False once the plugin is shut down. Chain calls hold it read-locked, so
    /// [`HostApi::close`] waits for calls in flight, and a thread that outlives
    /// shutdown (a server job the runtime's timeout left behind) gets an error
    /// instead of calling into a host that has freed the context.
    open: RwLock<bool>,
}

// SAFETY: the header's threading contract: the host's functions may be called from
// any thread, concurrently, until plugin_shutdown returns, and the plugin stops
// every thread that holds a HostApi before it returns from plugin_shutdown.
unsafe impl Send for HostApi {}
// SAFETY: as above; HostApi has no interior mutability of its own.
unsafe impl Sync for HostApi {}

/// Copies a host string; `None` for NULL or invalid UTF-8.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn host_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// Copies the host's context: the fields its `size` covers, the later ones
/// (added after API 1's first context) left absent. `None` when the context is
/// smaller than API 1's first one.
///
/// # Safety
/// `ctx` is non-NULL and points to a context of at least `(*ctx).size` bytes.
pub unsafe fn copy_context(ctx: *const PluginContext) -> Option<PluginContext> {
    // SAFETY: `size` is the first field, readable in any context.
    let size = unsafe { (*ctx).size } as usize;
    if size < PluginContext::MIN_SIZE {
        return None;
    }
    let mut out = std::mem::MaybeUninit::<PluginContext>::zeroed();
    let len = size.min(std::mem::size_of::<PluginContext>());
    // SAFETY: the host's context holds `size` readable bytes (we read at most
    // that, and at most our struct's size); all-zero bytes are a valid
    // PluginContext (NULL pointers, `None` functions), so the fields beyond a
    // smaller context read as absent.
    unsafe {
        std::ptr::copy_nonoverlapping(ctx.cast::<u8>(), out.as_mut_ptr().cast::<u8>(), len);
        Some(out.assume_init())
    }
}

/// Takes the bytes out of a buffer the host filled, then releases it.
fn take(buf: &mut Buffer) -> Vec<u8> {
    if buf.data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host filled `data`/`len` with a readable allocation that stays
    // valid until `release` is called, which happens right below, exactly once.
    let bytes = unsafe { std::slice::from_raw_parts(buf.data, buf.len) }.to_vec();
    if let Some(release) = buf.release {
        // SAFETY: the header requires `release` for a non-NULL `data`; we call it once.
        unsafe { release(buf) };
    }
    *buf = Buffer::empty();
    bytes
}

impl HostApi {
    /// Checks and copies the context: its size and version, the functions the
    /// plugin calls, the network and the datadir.
    ///
    /// # Safety
    /// `ctx` is NULL or points to a context the host keeps valid until shutdown.
    pub unsafe fn from_ctx(ctx: *const PluginContext) -> Result<HostApi, ContextError> {
        if ctx.is_null() {
            return Err(ContextError("the host passed no context".into()));
        }
        // SAFETY: non-NULL and valid per the caller; `size` is the first field, so
        // reading it is sound even for a smaller (older) context.
        let size = unsafe { (*ctx).size } as usize;
        // SAFETY: non-NULL and valid per the caller.
        let c = unsafe { copy_context(ctx) }.ok_or_else(|| {
            ContextError(format!(
                "the host's context is {size} bytes, this plugin needs at least {} (API {})",
                PluginContext::MIN_SIZE,
                abi::API_VERSION
            ))
        })?;
        if c.api_version != abi::API_VERSION {
            return Err(ContextError(format!(
                "the host implements plugin API {}, this plugin API {}",
                c.api_version,
                abi::API_VERSION
            )));
        }
        let missing = [
            ("log", c.log.is_none()),
            ("get_arg", c.get_arg.is_none()),
            (
                "register_validation_interface",
                c.register_validation_interface.is_none(),
            ),
            (
                "unregister_validation_interface",
                c.unregister_validation_interface.is_none(),
            ),
            ("get_tip", c.get_tip.is_none()),
            ("get_block_hash", c.get_block_hash.is_none()),
            ("get_block", c.get_block.is_none()),
            ("get_block_spent", c.get_block_spent.is_none()),
            ("get_block_header", c.get_block_header.is_none()),
            ("get_transaction", c.get_transaction.is_none()),
        ];
        if let Some((name, _)) = missing.iter().find(|(_, m)| *m) {
            return Err(ContextError(format!(
                "the host's context has no {name} function"
            )));
        }
        // SAFETY: strings valid until shutdown per the header.
        let network = unsafe { host_str(c.network) }
            .ok_or_else(|| ContextError("the host's context names no network".into()))?;
        let network: Network = network
            .parse()
            .map_err(|e| ContextError(format!("the host's network: {e}")))?;
        // SAFETY: as above.
        let datadir = unsafe { host_str(c.datadir) }
            .filter(|d| !d.is_empty())
            .ok_or_else(|| ContextError("the host's context names no datadir".into()))?;
        Ok(HostApi {
            ctx: c,
            network,
            datadir: PathBuf::from(datadir),
            open: RwLock::new(true),
        })
    }

    /// Refuses every later chain call; returns once calls in flight are done.
    pub fn close(&self) {
        *self.open.write().unwrap_or_else(|p| p.into_inner()) = false;
    }

    fn enter(&self) -> Result<RwLockReadGuard<'_, bool>, SourceError> {
        let open = self.open.read().unwrap_or_else(|p| p.into_inner());
        if !*open {
            return Err(SourceError::Unavailable(
                "the plugin is shut down; the host's chain is gone".into(),
            ));
        }
        Ok(open)
    }

    /// The capabilities the host offers.
    pub fn capabilities(&self) -> u32 {
        self.ctx.capabilities
    }

    /// The raw context fields needed to register callbacks.
    pub fn context(&self) -> &PluginContext {
        &self.ctx
    }

    /// Sends one log line to the host.
    pub fn log(&self, level: i32, message: &str) {
        let Some(log) = self.ctx.log else { return };
        let Ok(_open) = self.enter() else { return };
        // Interior NULs cannot cross as C strings.
        let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: valid host pointer and function; NUL-terminated strings that live
        // for the call.
        unsafe { log(self.ctx.host, level, c"opnet".as_ptr(), message.as_ptr()) };
    }

    /// The value of `-name`, `None` when unset.
    pub fn arg(&self, name: &str) -> Option<String> {
        let get = self.ctx.get_arg?;
        let _open = self.enter().ok()?;
        let name = CString::new(name).ok()?;
        // SAFETY: valid host function; NULL default means "unset"; the returned
        // string is host-owned and valid until shutdown, copied at once.
        unsafe { host_str(get(self.ctx.host, name.as_ptr(), std::ptr::null())) }
    }

    /// Whether the host can have its node write the chainstate now.
    pub fn can_flush_chainstate(&self) -> bool {
        self.ctx.flush_chainstate.is_some()
    }

    /// Asks the host to have its node write its chainstate to disk (see the
    /// header's `flush_chainstate`); returns once written.
    pub fn flush_chainstate(&self) -> Result<(), SourceError> {
        let _open = self.enter()?;
        let f = self.ctx.flush_chainstate.ok_or_else(no_fn)?;
        let mut err = Buffer::empty();
        // SAFETY: valid host function; an error buffer that lives for the call.
        let st = unsafe { f(self.ctx.host, &mut err) };
        if st != abi::OK {
            return Err(self.status_error(st, &mut err, "writing the node's chainstate"));
        }
        take(&mut err);
        Ok(())
    }

    fn status_error(&self, status: Status, error: &mut Buffer, what: &str) -> SourceError {
        let message = String::from_utf8_lossy(&take(error)).into_owned();
        let message = if message.is_empty() {
            format!("{what}: the host returned status {status}")
        } else {
            format!("{what}: {message}")
        };
        match status {
            abi::ERR_NOT_FOUND => SourceError::NotFound(message),
            abi::ERR_UNSUPPORTED => SourceError::Unsupported(message),
            abi::ERR_CORRUPT => SourceError::Corrupt(message),
            _ => SourceError::Unavailable(message),
        }
    }

    fn tip_raw(&self) -> Result<ChainTip, SourceError> {
        let _open = self.enter()?;
        let f = self.ctx.get_tip.ok_or_else(no_fn)?;
        let (mut height, mut hash, mut err) = (0u32, [0u8; 32], Buffer::empty());
        // SAFETY: valid host function; out-pointers to live locals of the right size.
        let st = unsafe { f(self.ctx.host, &mut height, hash.as_mut_ptr(), &mut err) };
        if st != abi::OK {
            return Err(self.status_error(st, &mut err, "the host's tip"));
        }
        Ok(ChainTip {
            height,
            hash: BlockHash::from_byte_array(hash),
        })
    }

    fn fetch(
        &self,
        what: &str,
        call: impl FnOnce(&mut Buffer, &mut Buffer) -> Status,
    ) -> Result<Vec<u8>, SourceError> {
        let (mut out, mut err) = (Buffer::empty(), Buffer::empty());
        let st = call(&mut out, &mut err);
        if st != abi::OK {
            take(&mut out);
            return Err(self.status_error(st, &mut err, what));
        }
        take(&mut err);
        Ok(take(&mut out))
    }
}

fn no_fn() -> SourceError {
    SourceError::Unsupported("the host's context lacks this function".into())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Corrupt(format!("{what} from the host: {e}"))
}

impl ChainSource for HostApi {
    fn network(&self) -> Network {
        self.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.tip_raw()
    }

    fn hash_at_height(&self, height: u32) -> Result<Option<BlockHash>, SourceError> {
        let _open = self.enter()?;
        let f = self.ctx.get_block_hash.ok_or_else(no_fn)?;
        let (mut hash, mut err) = ([0u8; 32], Buffer::empty());
        // SAFETY: valid host function; out-pointers to live locals.
        let st = unsafe { f(self.ctx.host, height, hash.as_mut_ptr(), &mut err) };
        match st {
            abi::OK => Ok(Some(BlockHash::from_byte_array(hash))),
            abi::ERR_NOT_FOUND => {
                take(&mut err);
                Ok(None)
            }
            _ => Err(self.status_error(st, &mut err, &format!("the hash at height {height}"))),
        }
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let _open = self.enter()?;
        let f = self.ctx.get_block.ok_or_else(no_fn)?;
        let key = hash.to_byte_array();
        let bytes = self.fetch(&format!("block {hash}"), |out, err| {
            // SAFETY: valid host function; a 32-byte hash and buffers that live for the call.
            unsafe { f(self.ctx.host, key.as_ptr(), out, err) }
        })?;
        deserialize(&bytes).map_err(|e| corrupt(&format!("block {hash}"), e))
    }

    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError> {
        let _open = self.enter()?;
        let f = self.ctx.get_block_spent.ok_or_else(no_fn)?;
        let key = hash.to_byte_array();
        let mut format = 0u32;
        let bytes = self.fetch(&format!("spent outputs of {hash}"), |out, err| {
            // SAFETY: valid host function; live out-pointers.
            unsafe { f(self.ctx.host, key.as_ptr(), &mut format, out, err) }
        })?;
        decode_spent(format, &bytes).map_err(|e| corrupt(&format!("spent outputs of {hash}"), e))
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        let _open = self.enter()?;
        let f = self.ctx.get_block_header.ok_or_else(no_fn)?;
        let key = hash.to_byte_array();
        let (mut raw, mut height, mut err) = ([0u8; 80], 0u32, Buffer::empty());
        // SAFETY: valid host function; an 80-byte out buffer and live out-pointers.
        let st = unsafe {
            f(
                self.ctx.host,
                key.as_ptr(),
                raw.as_mut_ptr(),
                &mut height,
                &mut err,
            )
        };
        match st {
            abi::OK => {
                let header: Header =
                    deserialize(&raw).map_err(|e| corrupt(&format!("header {hash}"), e))?;
                Ok(Some(HeaderInfo { header, height }))
            }
            abi::ERR_NOT_FOUND => {
                take(&mut err);
                Ok(None)
            }
            _ => Err(self.status_error(st, &mut err, &format!("header {hash}"))),
        }
    }

    fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, SourceError> {
        let _open = self.enter()?;
        let f = self.ctx.get_transaction.ok_or_else(no_fn)?;
        let key = txid.to_byte_array();
        match self.fetch(&format!("transaction {txid}"), |out, err| {
            // SAFETY: valid host function; live buffers.
            unsafe { f(self.ctx.host, key.as_ptr(), out, err) }
        }) {
            Ok(bytes) => deserialize(&bytes)
                .map(Some)
                .map_err(|e| corrupt(&format!("transaction {txid}"), e)),
            Err(SourceError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn has_tx_index(&self) -> bool {
        self.ctx.chain_flags & abi::CHAIN_TXINDEX != 0
    }
}

/// Decodes a block's spent outputs in one of the ABI's formats.
pub fn decode_spent(format: u32, bytes: &[u8]) -> Result<BlockSpent, String> {
    match format {
        abi::SPENT_UNDO => decode_block_undo(bytes).map_err(|e| e.to_string()),
        abi::SPENT_REST => decode_rest_spent_txouts(bytes).map_err(|e| e.to_string()),
        other => Err(format!("unknown spent-output format {other}")),
    }
}
