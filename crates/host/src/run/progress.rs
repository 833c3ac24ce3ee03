//! The scan's progress bar on a terminal (plugins also log their progress, which
//! is what a non-terminal stderr shows).

use std::io::{IsTerminal, Write};

use opnet::abi::{self, Progress};

/// Draws a one-line bar, redrawn in place.
pub struct Bar {
    enabled: bool,
    drawn: bool,
}

impl Bar {
    /// A bar that draws only when stderr is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Bar {
        Bar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Redraws it for `p`.
    pub fn draw(&mut self, plugin: &str, p: &Progress) {
        if !self.enabled {
            return;
        }
        let (fraction, what) = match p.phase {
            abi::PHASE_SCANNING if p.total_bytes > 0 => (
                (p.scanned_bytes as f64 / p.total_bytes as f64).min(1.0),
                format!("scanning chainstate, {} UTXOs", p.scanned_utxos),
            ),
            abi::PHASE_CATCHING_UP if p.target_height > 0 => (
                (p.height as f64 / p.target_height as f64).min(1.0),
                format!("catching up, block {} of {}", p.height, p.target_height),
            ),
            abi::PHASE_LIVE => (1.0, format!("at tip {}", p.height)),
            abi::PHASE_FAILED => (0.0, format!("FAILED at block {} (see the log)", p.height)),
            _ => (0.0, "starting".to_string()),
        };
        let width = 30;
        let filled = (fraction * width as f64) as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{plugin} [{}{}] {:5.1}% {what}\x1b[K",
            "#".repeat(filled),
            "-".repeat(width - filled),
            fraction * 100.0
        );
        let _ = err.flush();
        self.drawn = true;
    }

    /// Ends the line the bar was drawn on.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
