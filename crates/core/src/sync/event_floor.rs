//! A number that no event number handed out so far exceeds, kept beside the index
//! (`<opnet dir>/event-floor`) rather than in it.
//!
//! Event numbers live in the index, so an index deleted to rebuild it (after damage,
//! or `-opnetreindex`) would take its counter with it, and the new index would hand
//! the same numbers out again: a client resuming after number N would then skip
//! events or take new ones for old. A new index numbers its events after the floor
//! instead. The floor moves ahead in steps of [`FLOOR_STEP`], one durable write per
//! step, always before a number past it is handed out.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How far one write moves the floor ahead of the number that needed it.
pub const FLOOR_STEP: u64 = 1_000_000;

/// File name of the floor in the opnet directory.
pub const FLOOR_FILE: &str = "event-floor";

/// The floor and its file.
#[derive(Debug)]
pub struct EventFloor {
    path: PathBuf,
    value: u64,
}

impl EventFloor {
    /// Reads the floor of `opnet_dir` (0 when there is none yet).
    pub fn open(opnet_dir: &Path) -> Result<EventFloor, String> {
        let path = opnet_dir.join(FLOOR_FILE);
        let value = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                format!(
                    "{} does not hold an event number ({:?}); it is written only by this program",
                    path.display(),
                    text.chars().take(40).collect::<String>()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        Ok(EventFloor { path, value })
    }

    /// The current floor.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Makes the floor cover `seq`, writing it [`FLOOR_STEP`] past `seq` (synced,
    /// then renamed into place) when it does not already.
    pub fn cover(&mut self, seq: u64) -> Result<(), String> {
        if seq <= self.value {
            return Ok(());
        }
        let value = seq.saturating_add(FLOOR_STEP);
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{value}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        self.value = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_moves_ahead_in_steps_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = EventFloor::open(dir.path()).unwrap();
        assert_eq!(f.value(), 0);
        f.cover(0).unwrap();
        assert!(
            !dir.path().join(FLOOR_FILE).exists(),
            "nothing to cover, nothing written"
        );
        f.cover(7).unwrap();
        assert_eq!(f.value(), 7 + FLOOR_STEP);
        f.cover(FLOOR_STEP).unwrap();
        assert_eq!(f.value(), 7 + FLOOR_STEP, "already covered");
        assert_eq!(
            EventFloor::open(dir.path()).unwrap().value(),
            7 + FLOOR_STEP
        );
        std::fs::write(dir.path().join(FLOOR_FILE), "lots\n").unwrap();
        let err = EventFloor::open(dir.path()).unwrap_err();
        assert!(err.contains("does not hold an event number"), "{err}");
    }
}
