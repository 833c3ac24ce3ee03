//! `dlopen`/`dlsym`/`dlclose`, declared by hand (glibc's libdl; on glibc ≥ 2.34
//! part of libc). The only other place with `unsafe` in the loader is the context.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

const RTLD_NOW: c_int = 2;
const RTLD_LOCAL: c_int = 0;

#[link(name = "dl")]
extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlclose(handle: *mut c_void) -> c_int;
    fn dlerror() -> *mut c_char;
}

/// The last dl error as text.
fn last_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next
    // dl call on this thread; it is copied at once.
    let p = unsafe { dlerror() };
    if p.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-NULL NUL-terminated string per dlerror's contract.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// An open shared library; closed on drop.
pub struct Library {
    handle: *mut c_void,
}

// SAFETY: a dlopen handle may be used and closed from any thread.
unsafe impl Send for Library {}
// SAFETY: dlsym is thread-safe; the handle is never mutated.
unsafe impl Sync for Library {}

impl Library {
    /// Opens `path` with every symbol resolved now, kept local to the library.
    pub fn open(path: &Path) -> Result<Library, String> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
        // SAFETY: a valid NUL-terminated path; dlopen runs the library's
        // constructors, which is what loading a plugin means.
        let handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_LOCAL) };
        if handle.is_null() {
            return Err(last_error());
        }
        Ok(Library { handle })
    }

    /// The address of `name`, or why it is missing.
    pub fn symbol(&self, name: &str) -> Result<*mut c_void, String> {
        let c = CString::new(name).map_err(|_| "symbol name with a NUL byte".to_string())?;
        // SAFETY: clears any stale error so a NULL below is attributed correctly.
        unsafe { dlerror() };
        // SAFETY: a live handle and a valid NUL-terminated name.
        let p = unsafe { dlsym(self.handle, c.as_ptr()) };
        if p.is_null() {
            return Err(last_error());
        }
        Ok(p)
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen and is closed once. glibc keeps a
        // library mapped while thread-local destructors it registered are pending.
        unsafe { dlclose(self.handle) };
    }
}
