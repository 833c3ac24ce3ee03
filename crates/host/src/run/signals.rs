//! SIGINT and SIGTERM as a channel message, so the main loop can wait for a
//! signal, a command or its own work with one `select!`.

use crossbeam_channel::{bounded, Receiver};

/// A receiver that gets the name of the first SIGINT/SIGTERM.
pub fn watch() -> Result<Receiver<&'static str>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    let (tx, rx) = bounded(1);
    // Install the handlers before returning, so a signal right after start counts.
    let (mut term, mut int) = runtime
        .block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("opnet-signals".into())
        .spawn(move || {
            let name = runtime.block_on(async {
                tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                }
            });
            let _ = tx.send(name);
        })
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    Ok(rx)
}
