//! `tracing` inside the plugin, written through the host's log function: bitcoind
//! (or opnet-host) decides where lines go. The plugin has its own copy of `tracing`
//! (statically linked), so this global subscriber never meets the host's.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use opnet::abi;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::host::HostApi;

/// Where lines go: the current host, `None` between shutdown and the next init.
static TARGET: RwLock<Option<Arc<HostApi>>> = RwLock::new(None);
static DEBUG: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

/// Routes the plugin's logs to `host` from now on.
pub fn start(host: Arc<HostApi>, debug: bool) {
    DEBUG.store(debug, Ordering::Relaxed);
    *TARGET.write().unwrap_or_else(|p| p.into_inner()) = Some(host);
    INSTALLED.get_or_init(|| {
        let filter = tracing_subscriber::filter::filter_fn(|meta| {
            let max = if DEBUG.load(Ordering::Relaxed) {
                Level::DEBUG
            } else {
                Level::INFO
            };
            *meta.level() <= max
        });
        use tracing_subscriber::layer::SubscriberExt;
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(MakeHostWriter)
            .with_ansi(false)
            .with_level(false)
            .with_target(false)
            .without_time();
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
        // Fails only if something in this library set one already: keep that one.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Stops sending lines to the host (it is about to go away).
pub fn stop() {
    *TARGET.write().unwrap_or_else(|p| p.into_inner()) = None;
}

use tracing_subscriber::Layer;

struct MakeHostWriter;

/// Collects one formatted event and hands it to the host when dropped.
struct HostWriter {
    level: i32,
    line: Vec<u8>,
}

impl io::Write for HostWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for HostWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if let Some(host) = TARGET.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            host.log(self.level, text);
        }
    }
}

fn host_level(level: &Level) -> i32 {
    match *level {
        Level::ERROR => abi::LOG_ERROR,
        Level::WARN => abi::LOG_WARN,
        Level::INFO => abi::LOG_INFO,
        Level::DEBUG => abi::LOG_DEBUG,
        Level::TRACE => abi::LOG_TRACE,
    }
}

impl<'a> MakeWriter<'a> for MakeHostWriter {
    type Writer = HostWriter;

    fn make_writer(&'a self) -> HostWriter {
        HostWriter {
            level: abi::LOG_INFO,
            line: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> HostWriter {
        HostWriter {
            level: host_level(meta.level()),
            line: Vec::new(),
        }
    }
}
