//! Deliberate panics at named places, for the reliability suite to show that a
//! panic inside the plugin stays inside it (docs/RELIABILITY.md §6). Armed only by
//! the plugin's `-opnettestpanic=<site>`, which it accepts on regtest only; when
//! disarmed a check is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// The places a panic can be armed at.
pub const SITES: &[&str] = &["init", "block_connected", "sync", "query"];

static ARMED: AtomicBool = AtomicBool::new(false);
static SITE: Mutex<Option<String>> = Mutex::new(None);

/// Refuses a site that is not in [`SITES`], naming them.
pub fn known(site: &str) -> Result<(), String> {
    if SITES.contains(&site) {
        Ok(())
    } else {
        Err(format!("not a panic site (one of: {})", SITES.join(", ")))
    }
}

/// Makes every later [`check`] of `site` panic (`None` disarms). Refuses a site
/// that is not in [`SITES`].
pub fn arm(site: Option<&str>) -> Result<(), String> {
    if let Some(s) = site {
        known(s)?;
    }
    *SITE.lock().unwrap_or_else(PoisonError::into_inner) = site.map(str::to_string);
    ARMED.store(site.is_some(), Ordering::Relaxed);
    Ok(())
}

/// Panics if `site` is armed.
pub fn check(site: &str) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    let armed = SITE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_deref()
        == Some(site);
    if armed {
        panic!("deliberate panic at {site} (-opnettestpanic)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_armed_site_panics_and_unknown_sites_are_refused() {
        // "init" is checked by the plugin only: no other test in this process meets it.
        assert!(arm(Some("nowhere")).is_err());
        arm(Some("init")).unwrap();
        check("block_connected");
        assert!(std::panic::catch_unwind(|| check("init")).is_err());
        arm(None).unwrap();
        check("init");
    }
}
