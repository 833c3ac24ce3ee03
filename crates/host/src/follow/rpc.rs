//! JSON-RPC 1.0 calls to bitcoind, with its two ways of authenticating, and plain
//! GETs for its REST interface. One [`RpcClient`] is shared by every thread that
//! reads the chain: each call borrows an idle keep-alive connection (or opens one),
//! so a slow call on one thread never holds up another's.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};

use super::http::{
    base64, excerpt, HttpConnection, HttpError, HttpLimits, HttpRequest, HttpResponse, HttpTarget,
};
use super::FollowError;

/// `RPC_MISC_ERROR`: also what bitcoind answers when a method gets more parameters
/// than it knows (the message is then the method's help text).
pub const RPC_MISC_ERROR: i64 = -1;
/// `RPC_INVALID_ADDRESS_OR_KEY`: unknown block or transaction.
pub const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;
/// `RPC_INVALID_PARAMETER`: e.g. `getblockhash` above the tip.
pub const RPC_INVALID_PARAMETER: i64 = -8;
/// `RPC_IN_WARMUP`: bitcoind is still starting.
pub const RPC_IN_WARMUP: i64 = -28;

/// The most idle connections kept for reuse; more are closed after their call.
const MAX_IDLE: usize = 8;

/// How to authenticate to bitcoind's RPC.
#[derive(Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// The `.cookie` file bitcoind writes at startup (`__cookie__:<password>`).
    /// Re-read when bitcoind rejects it, since a restarted bitcoind writes a new one.
    Cookie(PathBuf),
    /// `-rpcuser`/`-rpcpassword` or an `-rpcauth` entry.
    UserPass(String, String),
}

impl RpcAuth {
    /// The credentials for messages: where they came from, never the password.
    pub fn describe(&self) -> String {
        match self {
            RpcAuth::Cookie(path) => format!("the cookie from {}", path.display()),
            RpcAuth::UserPass(user, _) => format!("user '{user}' with the given password"),
        }
    }
}

// Hand-written so the password never reaches a log through `{:?}`.
impl fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcAuth::Cookie(path) => f.debug_tuple("Cookie").field(path).finish(),
            RpcAuth::UserPass(user, _) => f
                .debug_tuple("UserPass")
                .field(user)
                .field(&"<hidden>")
                .finish(),
        }
    }
}

/// A JSON-RPC error object as bitcoind sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// A client of one bitcoind: JSON-RPC calls and REST GETs over pooled connections.
pub struct RpcClient {
    target: HttpTarget,
    auth: RpcAuth,
    /// The `Authorization` header value, once built (cookie read).
    header: Mutex<Option<String>>,
    next_id: AtomicU64,
    idle: Mutex<Vec<HttpConnection>>,
    limits: HttpLimits,
}

// A poisoned lock only means another thread panicked mid-call; the data (a cached
// header, idle sockets) is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RpcClient {
    /// A client of the bitcoind at `url` (`http://host:port`). Nothing is sent yet.
    pub fn new(url: &str, auth: RpcAuth, limits: HttpLimits) -> Result<RpcClient, FollowError> {
        Ok(RpcClient {
            target: HttpTarget::parse(url)?,
            auth,
            header: Mutex::new(None),
            next_id: AtomicU64::new(1),
            idle: Mutex::new(Vec::new()),
            limits,
        })
    }

    /// The node's URL, for messages.
    pub fn url(&self) -> String {
        self.target.url()
    }

    /// A connection of its own, for a caller that blocks on it (the long-poll).
    pub fn dedicated_connection(&self) -> HttpConnection {
        HttpConnection::new(self.target.clone(), self.limits)
    }

    /// The limits connections are opened with.
    pub fn limits(&self) -> HttpLimits {
        self.limits
    }

    /// Calls `method` on a pooled connection and returns its `result`.
    pub fn call(&self, method: &str, params: &[Value]) -> Result<Value, FollowError> {
        let timeout = self.limits.io_timeout;
        self.with_connection(|conn| self.call_on(conn, method, params, timeout))
    }

    /// A REST GET on a pooled connection; the status is the caller's to judge.
    /// bitcoind's REST interface does not authenticate, so no credentials are sent.
    pub fn get(&self, path: &str) -> Result<HttpResponse, FollowError> {
        let timeout = self.limits.io_timeout;
        self.with_connection(|conn| {
            let req = HttpRequest {
                method: "GET",
                path,
                headers: &[],
                body: &[],
            };
            Ok(conn.send(&req, timeout)?)
        })
    }

    /// Runs `f` on an idle connection (or a new one) and keeps the connection for
    /// the next call if it is still open.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut HttpConnection) -> Result<T, FollowError>,
    ) -> Result<T, FollowError> {
        let pooled = lock(&self.idle).pop();
        let mut conn = pooled.unwrap_or_else(|| self.dedicated_connection());
        let result = f(&mut conn);
        if conn.is_open() {
            let mut idle = lock(&self.idle);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result
    }

    /// Calls `method` on `conn`, waiting up to `read_timeout` for the answer. On a
    /// 401 with a cookie, the cookie file is read again and the call retried once.
    pub fn call_on(
        &self,
        conn: &mut HttpConnection,
        method: &str,
        params: &[Value],
        read_timeout: Duration,
    ) -> Result<Value, FollowError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params}).to_string();
        let mut header = self.auth_header(false)?;
        let mut retried = false;
        loop {
            let headers = [
                ("Authorization", header.as_str()),
                ("Content-Type", "application/json"),
            ];
            let req = HttpRequest {
                method: "POST",
                path: "/",
                headers: &headers,
                body: body.as_bytes(),
            };
            let resp = conn.send(&req, read_timeout)?;
            if resp.status == 401 {
                if let (RpcAuth::Cookie(_), false) = (&self.auth, retried) {
                    let fresh = self.auth_header(true)?;
                    if fresh != header {
                        header = fresh;
                        retried = true;
                        continue;
                    }
                }
                return Err(FollowError::Auth {
                    url: self.url(),
                    credentials: self.auth.describe(),
                });
            }
            return parse_reply(method, id, &resp);
        }
    }

    /// The `Authorization` header value; `reload` reads the cookie file again.
    fn auth_header(&self, reload: bool) -> Result<String, FollowError> {
        let mut cached = lock(&self.header);
        if let (Some(h), false) = (cached.as_ref(), reload) {
            return Ok(h.clone());
        }
        let userpass = match &self.auth {
            RpcAuth::UserPass(user, pass) => format!("{user}:{pass}"),
            RpcAuth::Cookie(path) => read_cookie(path)?,
        };
        let header = format!("Basic {}", base64(userpass.as_bytes()));
        *cached = Some(header.clone());
        Ok(header)
    }
}

/// The `user:password` line of bitcoind's cookie file.
fn read_cookie(path: &PathBuf) -> Result<String, FollowError> {
    let cookie_error = |detail: String| FollowError::Cookie {
        path: path.clone(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        cookie_error(format!(
            "{e} (is bitcoind running, and is this its datadir's .cookie?)"
        ))
    })?;
    let line = text.lines().next().unwrap_or_default().trim();
    match line.split_once(':') {
        Some((user, pass)) if !user.is_empty() && !pass.is_empty() => Ok(line.to_string()),
        _ => Err(cookie_error(
            "not a bitcoind cookie (expected one line user:password)".to_string(),
        )),
    }
}

/// The `result` of a JSON-RPC 1.0 reply. bitcoind sends errors with HTTP 500 (404
/// for an unknown method) and a JSON body, so the body decides, not the status.
fn parse_reply(method: &str, id: u64, resp: &HttpResponse) -> Result<Value, FollowError> {
    let what = if resp.status == 403 {
        format!("bitcoind RPC {method} (bitcoind refuses this client's address: see -rpcallowip)")
    } else {
        format!("bitcoind RPC {method}")
    };
    let reply: Value = match serde_json::from_slice(&resp.body) {
        Ok(v) => v,
        Err(e) => {
            return Err(if resp.is_success() {
                FollowError::Protocol(format!(
                    "{what}: the reply is not JSON ({e}): {}",
                    excerpt(&resp.body)
                ))
            } else {
                FollowError::Http(HttpError::Status {
                    what,
                    status: resp.status,
                    excerpt: excerpt(&resp.body),
                })
            })
        }
    };
    let Some(obj) = reply.as_object() else {
        return Err(FollowError::Protocol(format!(
            "{what}: the reply is not a JSON object"
        )));
    };
    match obj.get("error") {
        None | Some(Value::Null) => {}
        Some(err) => {
            let code = err.get("code").and_then(Value::as_i64);
            let message = err.get("message").and_then(Value::as_str);
            return Err(match (code, message) {
                (Some(code), Some(message)) => FollowError::Rpc {
                    method: method.to_string(),
                    error: RpcError {
                        code,
                        message: message.to_string(),
                    },
                },
                _ => FollowError::Protocol(format!("{what}: malformed error object {err}")),
            });
        }
    }
    if !resp.is_success() {
        return Err(FollowError::Http(HttpError::Status {
            what,
            status: resp.status,
            excerpt: excerpt(&resp.body),
        }));
    }
    if obj.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(FollowError::Protocol(format!(
            "{what}: the reply's id is not the request's ({id})"
        )));
    }
    obj.get("result")
        .cloned()
        .ok_or_else(|| FollowError::Protocol(format!("{what}: the reply has no result")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn results_and_error_objects() {
        let ok = parse_reply(
            "getbestblockhash",
            7,
            &reply(200, r#"{"result":"ab","error":null,"id":7}"#),
        );
        assert_eq!(ok, Ok(json!("ab")));
        let err = parse_reply(
            "getblockhash",
            8,
            &reply(500, r#"{"result":null,"error":{"code":-8,"message":"Block height out of range"},"id":8}"#),
        )
        .unwrap_err();
        assert_eq!(err.rpc_code(), Some(RPC_INVALID_PARAMETER));
        assert_eq!(
            err.to_string(),
            "bitcoind RPC getblockhash failed: Block height out of range (code -8)"
        );
        let not_found = parse_reply(
            "nosuch",
            1,
            &reply(
                404,
                r#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1}"#,
            ),
        );
        assert_eq!(not_found.unwrap_err().rpc_code(), Some(-32601));
    }

    #[test]
    fn non_json_and_mismatched_replies_are_errors() {
        let e = parse_reply("x", 1, &reply(503, "Work queue depth exceeded")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bitcoind RPC x: HTTP status 503: Work queue depth exceeded"
        );
        let e = parse_reply("x", 1, &reply(403, "")).unwrap_err();
        assert!(e.to_string().contains("-rpcallowip"), "{e}");
        let e = parse_reply("x", 1, &reply(200, "<html>")).unwrap_err();
        assert!(matches!(e, FollowError::Protocol(_)), "{e}");
        let e =
            parse_reply("x", 1, &reply(200, r#"{"result":1,"error":null,"id":2}"#)).unwrap_err();
        assert!(e.to_string().contains("id"), "{e}");
        let e = parse_reply("x", 1, &reply(200, r#"{"error":{"code":"a"},"id":1}"#)).unwrap_err();
        assert!(matches!(e, FollowError::Protocol(_)), "{e}");
        let e = parse_reply("x", 1, &reply(200, "[1]")).unwrap_err();
        assert!(matches!(e, FollowError::Protocol(_)), "{e}");
    }

    #[test]
    fn cookies_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("opnet-follow-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".cookie");
        std::fs::write(&path, "__cookie__:s3cret\n").unwrap();
        assert_eq!(read_cookie(&path).unwrap(), "__cookie__:s3cret");
        std::fs::write(&path, "garbage").unwrap();
        assert!(read_cookie(&path)
            .unwrap_err()
            .to_string()
            .contains("not a bitcoind cookie"));
        let missing = dir.join("missing");
        let e = read_cookie(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing") && e.contains("is bitcoind running"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn credentials_never_show_the_password() {
        let auth = RpcAuth::UserPass("alice".into(), "hunter2".into());
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert!(!auth.describe().contains("hunter2"));
        assert!(auth.describe().contains("alice"));
    }
}
