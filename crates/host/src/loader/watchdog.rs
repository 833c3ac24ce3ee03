//! Reports a plugin stuck in a callback. A plugin cannot be unloaded safely while
//! one of its functions runs, so the watchdog says so loudly (which plugin, which
//! callback, for how long) and says again when it returns.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

struct Call {
    plugin: String,
    callback: &'static str,
    since: Instant,
    reported: bool,
}

/// The callback in progress, if any (the host calls one at a time).
pub struct Watchdog {
    current: Mutex<Option<Call>>,
    threshold: Duration,
}

impl Watchdog {
    /// A watchdog that complains after `threshold`, and the thread that checks it.
    pub fn start(threshold: Duration) -> std::io::Result<(Arc<Watchdog>, WatchdogThread)> {
        let dog = Arc::new(Watchdog {
            current: Mutex::new(None),
            threshold,
        });
        let (stop, stopped) = bounded::<()>(0);
        let d = dog.clone();
        let check_every = (threshold / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let handle = std::thread::Builder::new()
            .name("opnet-watchdog".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(check_every) {
                    d.check();
                }
            })?;
        Ok((
            dog,
            WatchdogThread {
                stop: Some(stop),
                handle: Some(handle),
            },
        ))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Call>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) {
        if let Some(call) = self.slot().as_mut() {
            let held = call.since.elapsed();
            if !call.reported && held >= self.threshold {
                call.reported = true;
                tracing::warn!(
                    plugin = %call.plugin,
                    callback = call.callback,
                    seconds = held.as_secs_f64(),
                    "a plugin is stuck in a callback; the host's notifications wait for it"
                );
            }
        }
    }

    /// Marks the start of a callback.
    pub fn enter(&self, plugin: &str, callback: &'static str) {
        *self.slot() = Some(Call {
            plugin: plugin.to_string(),
            callback,
            since: Instant::now(),
            reported: false,
        });
    }

    /// Marks its end.
    pub fn leave(&self) {
        if let Some(call) = self.slot().take() {
            if call.reported {
                tracing::warn!(
                    plugin = %call.plugin,
                    callback = call.callback,
                    seconds = call.since.elapsed().as_secs_f64(),
                    "the stuck plugin returned"
                );
            }
        }
    }
}

/// Stops the checking thread when dropped.
pub struct WatchdogThread {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for WatchdogThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
