//! Follow mode's access to a running stock bitcoind: its chain through JSON-RPC and
//! the REST interface ([`FollowSource`], a [`HostChain`](crate::chain::HostChain)),
//! and its new tips through the long-poll RPC `waitfornewblock` ([`Follower`]).
//! Everything speaks plain HTTP/1.1 over `std::net`, written here ([`http`]) so the
//! loader stays free of an HTTP stack.

pub mod follower;
pub mod http;
pub mod mempool;
pub mod rpc;
pub mod source;

use std::fmt;
use std::path::PathBuf;

use opnet::source::SourceError;
use opnet::Network;

pub use follower::{Follower, TipStep};
pub use http::HttpError;
pub use mempool::{BlockNews, MempoolChange, MempoolMirror};
pub use rpc::{RpcAuth, RpcError};
pub use source::FollowSource;

/// Why talking to bitcoind failed. Each message names the node and says what to do
/// where there is something to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowError {
    /// The HTTP exchange failed: bad URL, no connection, timeout, malformed or
    /// oversized response, or an unexpected status.
    Http(HttpError),
    /// bitcoind answered 401: the credentials are wrong.
    Auth {
        url: String,
        /// Which credentials were used (never the password).
        credentials: String,
    },
    /// The cookie file could not be read or is not a cookie.
    Cookie { path: PathBuf, detail: String },
    /// bitcoind answered the call with a JSON-RPC error.
    Rpc { method: String, error: RpcError },
    /// bitcoind's answer is not what its documentation says (bad JSON, a missing
    /// field, bytes that do not decode).
    Protocol(String),
    /// bitcoind runs another network than the index's.
    WrongNetwork {
        url: String,
        expected: Network,
        found: String,
    },
    /// bitcoind's REST interface is off.
    RestDisabled { url: String, status: u16 },
    /// bitcoind serves REST but not `/rest/spenttxouts` (older than Core 30.0).
    NoSpentTxouts { url: String, status: u16 },
}

impl FollowError {
    /// The JSON-RPC error code, when bitcoind answered with one.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            FollowError::Rpc { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// Whether the failure is about reaching bitcoind at all (stopped, restarting,
    /// unreachable, too slow), as opposed to what it answered.
    pub fn is_connection(&self) -> bool {
        matches!(self, FollowError::Http(e) if e.is_connection())
    }
}

impl fmt::Display for FollowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FollowError::Http(e) => e.fmt(f),
            FollowError::Auth { url, credentials } => write!(
                f,
                "RPC authentication failed: bitcoind at {url} rejected {credentials}"
            ),
            FollowError::Cookie { path, detail } => write!(
                f,
                "cannot use bitcoind's RPC cookie file {}: {detail}",
                path.display()
            ),
            FollowError::Rpc { method, error } => {
                write!(f, "bitcoind RPC {method} failed: {error}")
            }
            FollowError::Protocol(m) => write!(f, "unexpected answer from bitcoind: {m}"),
            FollowError::WrongNetwork {
                url,
                expected,
                found,
            } => write!(
                f,
                "bitcoind at {url} runs the '{found}' chain but the index is for '{expected}': \
                 follow a {expected} node or choose the matching network"
            ),
            FollowError::RestDisabled { url, status } => write!(
                f,
                "bitcoind at {url} does not serve REST (GET /rest/chaininfo.json answered \
                 HTTP {status}): start bitcoind with -rest"
            ),
            FollowError::NoSpentTxouts { url, status } => write!(
                f,
                "bitcoind at {url} does not serve /rest/spenttxouts (HTTP {status}): follow \
                 mode needs Bitcoin Core 30.0 or later"
            ),
        }
    }
}

impl std::error::Error for FollowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FollowError::Http(e) => Some(e),
            FollowError::Rpc { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<HttpError> for FollowError {
    fn from(e: HttpError) -> FollowError {
        FollowError::Http(e)
    }
}

/// What the index's engine and server make of a follow failure: bytes that do not
/// decode are `Corrupt`; everything else means the node cannot answer right now.
impl From<FollowError> for SourceError {
    fn from(e: FollowError) -> SourceError {
        match e {
            FollowError::Protocol(_) => SourceError::Corrupt(e.to_string()),
            FollowError::Http(HttpError::TooLarge { .. }) => SourceError::Corrupt(e.to_string()),
            _ => SourceError::Unavailable(e.to_string()),
        }
    }
}
