//! The socket's boundaries (issue 6, suite 6): created 0600, a path another server
//! answers on is refused, a file that is not a socket is never replaced, a stale
//! socket an earlier run left behind is replaced, and one another user left is not.
#![cfg(all(feature = "server", feature = "client"))]

mod common;
mod served;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use opnet::server::{self, ServerConfig, ServerError};
use served::Served;

#[test]
fn the_socket_is_private_and_never_steals_or_clobbers_a_path() {
    let s = Served::new();
    // Created 0600: only the node's user may connect.
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // A second server on a live socket is refused, naming the path.
    let err = server::start(ServerConfig::new(&s.socket), s.node.clone())
        .err()
        .expect("refused");
    assert!(
        matches!(err, ServerError::InUse(ref p) if *p == s.socket),
        "{err}"
    );
    assert!(
        err.to_string().contains("in use by another running server"),
        "{err}"
    );
    // ... and the first one still serves.
    assert!(std::os::unix::net::UnixStream::connect(&s.socket).is_ok());

    // A regular file at the path is not replaced.
    let file = s.dir.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let err = server::start(ServerConfig::new(&file), s.node.clone())
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("is not a socket; refusing to replace it"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // A stale socket (its server died without removing it) is replaced and served.
    let stale = s.dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(std::fs::symlink_metadata(&stale)
        .unwrap()
        .file_type()
        .is_socket());
    assert!(
        std::os::unix::net::UnixStream::connect(&stale).is_err(),
        "nobody answers it"
    );
    let handle = server::start(ServerConfig::new(&stale), s.node.clone())
        .expect("a stale socket is replaced");
    assert!(std::os::unix::net::UnixStream::connect(&stale).is_ok());
    handle.shutdown();
    assert!(!stale.exists(), "shutdown removes the socket");

    // A dead socket that belongs to another user is not taken over (the test
    // runs as root, as CI does, to hand it to uid 65534).
    let foreign = s.dir.path().join("foreign.sock");
    drop(std::os::unix::net::UnixListener::bind(&foreign).unwrap());
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown needs root");
    let err = server::start(ServerConfig::new(&foreign), s.node.clone())
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("is a socket left by another user (uid 65534)"),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(&foreign).is_ok(), "left in place");
}
