//! The plugin loader of OIP-0004 §6.1: discovery, the `api_version` and
//! capability checks, init (a failure skips that plugin), shutdown in reverse load
//! order, and the host's side of the ABI ([`context`]).

pub mod context;
pub mod dl;
pub mod watchdog;

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opnet::abi::{self, PluginContext, PluginInfo, Progress, Status};

use context::{Context, HostShared};
use dl::Library;

/// Why a plugin was not loaded. Each is logged and the host carries on.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError {
    /// dlopen failed (missing file, wrong architecture, missing dependency).
    Open { path: PathBuf, error: String },
    /// A symbol every plugin exports is missing: not a plugin.
    NotAPlugin { path: PathBuf, symbol: &'static str },
    /// Built for another plugin API.
    ApiVersion { path: PathBuf, found: u32 },
    /// Asks for capability bits this host does not know.
    UnknownCapability { path: PathBuf, bits: u32 },
    /// Asks for capabilities this host does not offer (in this mode).
    NotOffered { path: PathBuf, bits: u32 },
    /// plugin_init returned false (its log says why).
    InitFailed { name: String, path: PathBuf },
}

fn capability_names(bits: u32) -> String {
    const NAMES: [&str; 6] = [
        "PLUGIN_CAP_VALIDATION_INTERFACE",
        "PLUGIN_CAP_CHAINSTATE_READ",
        "PLUGIN_CAP_MEMPOOL_READ",
        "PLUGIN_CAP_BLOCK_READ",
        "PLUGIN_CAP_NET_EVENTS",
        "PLUGIN_CAP_RPC_REGISTER",
    ];
    (0..32)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| {
            NAMES
                .get(i)
                .map(|n| n.to_string())
                .unwrap_or_else(|| format!("bit {i}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Open { path, error } => {
                write!(f, "cannot load plugin {}: {error}", path.display())
            }
            LoadError::NotAPlugin { path, symbol } => write!(
                f,
                "refusing {}: it does not export `{symbol}`, so it is not a plugin",
                path.display()
            ),
            LoadError::ApiVersion { path, found } => write!(
                f,
                "refusing plugin {}: it was built for plugin API version {found}, this host implements version {}",
                path.display(),
                abi::API_VERSION
            ),
            LoadError::UnknownCapability { path, bits } => write!(
                f,
                "refusing plugin {}: it asks for unknown capabilities ({}, mask {bits:#x}); is it newer than this host?",
                path.display(),
                capability_names(*bits)
            ),
            LoadError::NotOffered { path, bits } => write!(
                f,
                "refusing plugin {}: it needs {}, which this host does not offer in this mode",
                path.display(),
                capability_names(*bits)
            ),
            LoadError::InitFailed { name, path } => write!(
                f,
                "plugin {name} ({}) failed to initialise; skipped (its log above says why)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Why [`Loader::wait_synced`] returned without every plugin at the tip.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The named plugin is still working (a scan may take hours).
    TimedOut(String),
    /// A plugin failed to reach the tip.
    Failed(String),
}

type InitFn = unsafe extern "C" fn(*mut PluginContext) -> bool;
type ShutdownFn = unsafe extern "C" fn(*mut PluginContext);
type WaitSyncedFn = unsafe extern "C" fn(*mut PluginContext, u32) -> Status;
type ProgressFn = unsafe extern "C" fn(*mut PluginContext, *mut Progress) -> Status;

/// A plugin that initialised.
struct Loaded {
    name: String,
    path: PathBuf,
    context: Context,
    shutdown: ShutdownFn,
    wait_synced: Option<WaitSyncedFn>,
    progress: Option<ProgressFn>,
    // Last: closed after everything above is dropped.
    _library: Library,
}

/// The active plugins, in load order. Shared with the thread that waits for them
/// to sync (the header allows the optional exports from any thread);
/// [`Loader::shutdown`] takes it back by value, so it cannot overlap them.
pub struct Loader {
    shared: Arc<HostShared>,
    datadir: PathBuf,
    plugins: Vec<Loaded>,
}

/// Plugin files in `dir` (`*.so`), sorted by name; none when it does not exist.
pub fn discover(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "so"))
        .collect();
    found.sort();
    found
}

/// `paths` without repeats (by canonical path), first occurrence kept.
pub fn dedup(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    paths
        .into_iter()
        .filter(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())))
        .collect()
}

impl Loader {
    /// A loader whose plugins see `shared`'s chain and the network datadir `datadir`.
    pub fn new(shared: Arc<HostShared>, datadir: &Path) -> Loader {
        Loader {
            shared,
            datadir: datadir.to_path_buf(),
            plugins: Vec::new(),
        }
    }

    /// The shared state (the driver dispatches callbacks through it).
    pub fn shared(&self) -> &Arc<HostShared> {
        &self.shared
    }

    /// Names of the active plugins, in load order.
    pub fn names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.name.clone()).collect()
    }

    /// Loads, checks and initialises the plugin at `path`.
    pub fn load(&mut self, path: &Path) -> Result<(), LoadError> {
        let p = path.to_path_buf();
        let library = Library::open(path).map_err(|error| LoadError::Open {
            path: p.clone(),
            error,
        })?;
        let sym = |symbol: &'static str| {
            library.symbol(symbol).map_err(|_| LoadError::NotAPlugin {
                path: p.clone(),
                symbol,
            })
        };
        let info = sym("plugin_info")?.cast::<PluginInfo>();
        // SAFETY: `plugin_info` is the plugin's static PluginInfo; api_version is
        // its first field in every version of the ABI.
        let api_version = unsafe { (*info).api_version };
        if api_version != abi::API_VERSION {
            return Err(LoadError::ApiVersion {
                path: p,
                found: api_version,
            });
        }
        // SAFETY: the API version matches, so the layout is ours; the strings are
        // static NUL-terminated (or NULL, handled).
        let name = unsafe {
            let n = (*info).name;
            if n.is_null() {
                p.display().to_string()
            } else {
                CStr::from_ptr(n).to_string_lossy().into_owned()
            }
        };
        // SAFETY: as above.
        let version = unsafe {
            let v = (*info).version;
            if v.is_null() {
                String::new()
            } else {
                CStr::from_ptr(v).to_string_lossy().into_owned()
            }
        };
        // SAFETY: `plugin_capabilities` is a static uint32_t.
        let wanted = unsafe { *sym("plugin_capabilities")?.cast::<u32>() };
        let unknown = wanted & !abi::CAP_KNOWN_MASK;
        if unknown != 0 {
            return Err(LoadError::UnknownCapability {
                path: p,
                bits: unknown,
            });
        }
        let missing = wanted & !self.shared.capabilities;
        if missing != 0 {
            return Err(LoadError::NotOffered {
                path: p,
                bits: missing,
            });
        }
        // SAFETY: the symbols have the header's signatures (the API version matches).
        let init: InitFn = unsafe { std::mem::transmute(sym("plugin_init")?) };
        // SAFETY: as above.
        let shutdown: ShutdownFn = unsafe { std::mem::transmute(sym("plugin_shutdown")?) };
        let wait_synced = library
            .symbol("plugin_wait_synced")
            .ok()
            // SAFETY: as above (optional export).
            .map(|s| unsafe { std::mem::transmute::<*mut std::ffi::c_void, WaitSyncedFn>(s) });
        let progress = library
            .symbol("plugin_get_progress")
            .ok()
            // SAFETY: as above (optional export).
            .map(|s| unsafe { std::mem::transmute::<*mut std::ffi::c_void, ProgressFn>(s) });
        let context = self.shared.context(&name, &self.datadir);
        tracing::info!(plugin = %name, version = %version, path = %p.display(), "initialising plugin");
        // SAFETY: a checked plugin's init with a context that outlives it.
        if !unsafe { init(context.as_ptr()) } {
            self.purge_left_behind(&name, &context);
            return Err(LoadError::InitFailed { name, path: p });
        }
        self.plugins.push(Loaded {
            name,
            path: p,
            context,
            shutdown,
            wait_synced,
            progress,
            _library: library,
        });
        Ok(())
    }

    /// Waits until every plugin that can say so is at the host's tip.
    pub fn wait_synced(&self, timeout: Duration) -> Result<(), WaitError> {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        for p in &self.plugins {
            let Some(wait) = p.wait_synced else { continue };
            // SAFETY: a loaded plugin's export with its live context.
            match unsafe { wait(p.context.as_ptr(), ms) } {
                abi::OK => {}
                abi::ERR_TIMEOUT => return Err(WaitError::TimedOut(p.name.clone())),
                st => {
                    return Err(WaitError::Failed(format!(
                        "plugin {} could not reach the host's tip (status {st}); its log says why",
                        p.name
                    )))
                }
            }
        }
        Ok(())
    }

    /// Progress of the first plugin that reports it.
    pub fn progress(&self) -> Option<(String, Progress)> {
        for p in &self.plugins {
            let Some(get) = p.progress else { continue };
            let mut out = Progress {
                size: std::mem::size_of::<Progress>() as u32,
                ..Progress::default()
            };
            // SAFETY: a loaded plugin's export, its live context, a sized out struct.
            if unsafe { get(p.context.as_ptr(), &mut out) } == abi::OK {
                return Some((p.name.clone(), out));
            }
        }
        None
    }

    fn purge_left_behind(&self, name: &str, context: &context::Context) {
        let n = self.shared.purge(context);
        if n > 0 {
            tracing::error!(plugin = %name, registrations = n, "the plugin left callbacks registered; removed before unloading it");
        }
    }

    fn shutdown_all(&mut self) {
        while let Some(p) = self.plugins.pop() {
            tracing::info!(plugin = %p.name, path = %p.path.display(), "shutting down plugin");
            // SAFETY: a loaded plugin's shutdown, once, with its live context.
            unsafe { (p.shutdown)(p.context.as_ptr()) };
            self.purge_left_behind(&p.name, &p.context);
        }
    }

    /// Shuts every plugin down in reverse load order and closes its library.
    pub fn shutdown(mut self) {
        self.shutdown_all();
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Reached with plugins only when shutdown was not called (an error path).
        self.shutdown_all();
    }
}
