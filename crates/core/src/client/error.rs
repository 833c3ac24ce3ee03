//! What can go wrong talking to `opnet.sock`, split by what the caller should do
//! about it: fix the request, retry later, reconnect, or report a broken server.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::protocol::{ErrorReply, Status};

/// A failed client call. `Clone` so that one connection failure can be handed to
/// every request that was waiting on it.
#[derive(Clone, Debug)]
pub enum ClientError {
    /// The socket could not be opened: missing file, connection refused, permission
    /// denied. Names the path, which is what a user gets wrong.
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The operating system's reason.
        error: Arc<std::io::Error>,
    },
    /// The server answered with an error status (docs/PROTOCOL.md §3).
    Server {
        /// What went wrong; decides whether to retry (NOT_READY, RATE_LIMITED).
        status: Status,
        /// The status's number (a limit, a wait in ms), else 0.
        detail: u32,
        /// For people; never parse it.
        message: String,
    },
    /// The server answered with a status this client does not know; §3 says to
    /// treat it as a failure of that request.
    UnknownStatus {
        /// The raw status byte.
        code: u8,
        /// The `detail` field, if the body had one.
        detail: u32,
        /// The `message` field, if the body had one.
        message: String,
    },
    /// The server sent something that breaks the protocol (a malformed frame or
    /// body, an answer to no request). The connection is closed: the stream cannot
    /// be trusted after it.
    Protocol(String),
    /// The connection ended before the answer came. `closing` is the server's
    /// reason when it said goodbye with CLOSING (e.g. SHUTTING_DOWN).
    Closed {
        /// The CLOSING frame's status, detail and message, if one was received.
        closing: Option<ErrorReply>,
    },
    /// The server serves another network than the one asked for in
    /// [`ClientOptions::network`](super::ClientOptions::network).
    WrongNetwork {
        /// The network the caller expected.
        expected: crate::Network,
        /// The network id the server announced.
        got: u8,
    },
    /// The request cannot be sent as asked (a frame above the negotiated maximum,
    /// an option out of range). Nothing was sent.
    Invalid(String),
    /// Connecting or HELLO took longer than
    /// [`ClientOptions::connect_timeout`](super::ClientOptions::connect_timeout).
    Timeout,
}

impl ClientError {
    /// The server's status for [`ClientError::Server`] (and the CLOSING status of a
    /// [`ClientError::Closed`]), so callers can match on it without destructuring.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            ClientError::Closed {
                closing: Some(reply),
            } => Some(reply.status),
            _ => None,
        }
    }

    /// True when the connection itself is gone (as opposed to one request failing):
    /// the caller reconnects, or waits for the client's own reconnect.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, ClientError::Closed { .. } | ClientError::Protocol(_))
    }

    pub(crate) fn closed() -> ClientError {
        ClientError::Closed { closing: None }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { path, error } => {
                let hint = match error.kind() {
                    std::io::ErrorKind::NotFound => {
                        " (no socket there: is bitcoind running with the OPNet plugin, and is this its -opnetsocket path?)"
                    }
                    std::io::ErrorKind::ConnectionRefused => {
                        " (nothing is listening: the server is not running)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        " (the socket is mode 0600: run as the user that runs bitcoind)"
                    }
                    _ => "",
                };
                write!(f, "cannot connect to {}: {error}{hint}", path.display())
            }
            ClientError::Server {
                status,
                detail,
                message,
            } => {
                write!(f, "server error {status}: {message}")?;
                if *detail != 0 {
                    write!(f, " (detail {detail})")?;
                }
                Ok(())
            }
            ClientError::UnknownStatus {
                code,
                detail,
                message,
            } => write!(
                f,
                "server error with unknown status {code} (detail {detail}): {message}"
            ),
            ClientError::Protocol(m) => write!(f, "protocol violation by the server: {m}"),
            ClientError::Closed { closing: None } => f.write_str("the connection was closed"),
            ClientError::Closed {
                closing: Some(reply),
            } => write!(
                f,
                "the server closed the connection: {} ({})",
                reply.status, reply.message
            ),
            ClientError::WrongNetwork { expected, got } => {
                let got = crate::Network::from_id(*got)
                    .map_or_else(|| format!("network id {got}"), |n| n.name().to_string());
                write!(f, "the server serves {got}, not {expected}")
            }
            ClientError::Invalid(m) => write!(f, "invalid request: {m}"),
            ClientError::Timeout => f.write_str("timed out connecting to the server"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}
