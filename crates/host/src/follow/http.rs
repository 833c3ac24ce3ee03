//! A minimal blocking HTTP/1.1 client for bitcoind's RPC and REST ports. bitcoind
//! only speaks plain HTTP on localhost-style deployments, and follow mode needs a
//! handful of GETs and POSTs: a full HTTP stack (and its dependency tree) would be
//! most of the loader's size, so this is the small subset bitcoind uses — one
//! keep-alive connection, `Content-Length` or chunked bodies, timeouts and a bound
//! on what a response may make us allocate.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The most a status line or one header line may take: bitcoind's are tiny.
const MAX_LINE: usize = 8 * 1024;
/// The most header lines a response may have.
const MAX_HEADERS: usize = 100;
/// How much of an error body goes into an error message.
const EXCERPT_CHARS: usize = 200;

/// Where bitcoind listens, from an `http://host:port` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    host: String,
    port: u16,
}

impl HttpTarget {
    /// Parses `http://host:port` (an optional trailing `/`; IPv6 hosts in brackets).
    /// The port is required because bitcoind's default differs per network.
    pub fn parse(url: &str) -> Result<HttpTarget, HttpError> {
        let bad = |reason: &str| HttpError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(bad("bitcoind's RPC port speaks plain HTTP: use http://"));
        }
        if !lower.starts_with("http://") {
            return Err(bad("expected http://host:port"));
        }
        let rest = &url["http://".len()..];
        let authority = match rest.find('/') {
            Some(i) if rest[i..] != *"/" => {
                return Err(bad("expected no path after host:port"));
            }
            Some(i) => &rest[..i],
            None => rest,
        };
        if authority.contains('@') {
            return Err(bad(
                "credentials do not belong in the URL: use a cookie file or user and password",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in an IPv6 host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = port.ok_or_else(|| {
            bad("missing port (bitcoind's RPC port: 8332 main, 18332 test, 48332 testnet4, 38332 signet, 18443 regtest)")
        })?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
        Ok(HttpTarget {
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` as the `Host` header and `connect` want it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL again, normalized, for messages.
    pub fn url(&self) -> String {
        format!("http://{}", self.authority())
    }
}

/// Timeouts and size bounds of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long establishing the TCP connection may take.
    pub connect_timeout: Duration,
    /// How long any single read or write may block (a long-poll needs more).
    pub io_timeout: Duration,
    /// The largest response body accepted: bounds what a bad peer can make us
    /// allocate while still fitting the largest block bitcoind can return.
    pub max_body: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
            max_body: 64 * 1024 * 1024,
        }
    }
}

/// A response: status and the whole body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself when 2xx; otherwise an error carrying the status and the
    /// start of the body (bitcoind explains itself there).
    pub fn into_success(self, what: &str) -> Result<HttpResponse, HttpError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(HttpError::Status {
                what: what.to_string(),
                status: self.status,
                excerpt: excerpt(&self.body),
            })
        }
    }
}

/// The first characters of a body, printable, for an error message.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .trim()
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// Why a request got no usable response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://host:port`.
    BadUrl { url: String, reason: String },
    /// No TCP connection could be made (refused, unreachable, unknown host).
    Connect { url: String, detail: String },
    /// A read or write blocked longer than its timeout.
    Timeout { url: String, after: Duration },
    /// The server closed the connection before the response was complete.
    Closed { url: String },
    /// Another I/O failure mid-exchange.
    Io { url: String, detail: String },
    /// The response is not HTTP/1.x as we understand it.
    Malformed { url: String, detail: String },
    /// The response body exceeds [`HttpLimits::max_body`].
    TooLarge { url: String, limit: usize },
    /// A non-2xx status (from [`HttpResponse::into_success`]).
    Status {
        what: String,
        status: u16,
        excerpt: String,
    },
}

impl HttpError {
    /// Whether the failure is about reaching the server at all (as opposed to what
    /// it answered): such errors mean "bitcoind unavailable".
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            HttpError::Connect { .. }
                | HttpError::Timeout { .. }
                | HttpError::Closed { .. }
                | HttpError::Io { .. }
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadUrl { url, reason } => write!(f, "bad bitcoind URL '{url}': {reason}"),
            HttpError::Connect { url, detail } => {
                write!(f, "cannot connect to bitcoind at {url}: {detail}")
            }
            HttpError::Timeout { url, after } => {
                write!(f, "bitcoind at {url} did not answer within {after:?}")
            }
            HttpError::Closed { url } => write!(
                f,
                "bitcoind at {url} closed the connection before answering (stopped or restarted?)"
            ),
            HttpError::Io { url, detail } => {
                write!(f, "connection to bitcoind at {url} failed: {detail}")
            }
            HttpError::Malformed { url, detail } => {
                write!(
                    f,
                    "bitcoind at {url} sent a malformed HTTP response: {detail}"
                )
            }
            HttpError::TooLarge { url, limit } => write!(
                f,
                "bitcoind at {url} sent a response larger than the {limit}-byte limit"
            ),
            HttpError::Status {
                what,
                status,
                excerpt,
            } => {
                if excerpt.is_empty() {
                    write!(f, "{what}: HTTP status {status}")
                } else {
                    write!(f, "{what}: HTTP status {status}: {excerpt}")
                }
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// One request: method, path, extra headers and body.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// One keep-alive connection to bitcoind, opened on first use and reopened when
/// the server has closed it. Not shared: callers that need concurrency use one
/// connection each.
pub struct HttpConnection {
    target: HttpTarget,
    limits: HttpLimits,
    stream: Option<BufReader<TcpStream>>,
}

/// How far an exchange got before it failed: only a closed connection before any
/// response byte, on a reused connection, means "the server had closed it while
/// idle", worth one retry. A timeout is never retried (it would double the wait).
struct Failure {
    before_response: bool,
    error: HttpError,
}

impl HttpConnection {
    /// A connection to `target`; nothing is opened until the first request.
    pub fn new(target: HttpTarget, limits: HttpLimits) -> HttpConnection {
        HttpConnection {
            target,
            limits,
            stream: None,
        }
    }

    /// Whether a kept-alive socket is open (it may still have been closed by the
    /// server since).
    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Sends `req` and reads the whole response, each read waiting at most
    /// `read_timeout`. A kept-alive connection the server closed in the meantime is
    /// reopened once; callers only send requests that are safe to repeat.
    pub fn send(
        &mut self,
        req: &HttpRequest<'_>,
        read_timeout: Duration,
    ) -> Result<HttpResponse, HttpError> {
        let reused = self.stream.is_some();
        match self.exchange(req, read_timeout) {
            Ok(resp) => Ok(resp),
            Err(f)
                if reused && f.before_response && matches!(f.error, HttpError::Closed { .. }) =>
            {
                self.exchange(req, read_timeout).map_err(|f| f.error)
            }
            Err(f) => Err(f.error),
        }
    }

    /// One attempt; any failure drops the socket.
    fn exchange(
        &mut self,
        req: &HttpRequest<'_>,
        read_timeout: Duration,
    ) -> Result<HttpResponse, Failure> {
        let result = self.exchange_inner(req, read_timeout);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange_inner(
        &mut self,
        req: &HttpRequest<'_>,
        read_timeout: Duration,
    ) -> Result<HttpResponse, Failure> {
        let url = self.target.url();
        if self.stream.is_none() {
            let stream = connect(&self.target, &self.limits).map_err(|error| Failure {
                before_response: false,
                error,
            })?;
            self.stream = Some(BufReader::new(stream));
        }
        let Some(reader) = self.stream.as_mut() else {
            // Set just above.
            return Err(Failure {
                before_response: false,
                error: HttpError::Closed { url },
            });
        };
        let head = encode_request(&self.target, req);
        let io_timeout = self.limits.io_timeout;
        let stream = reader.get_mut();
        let write = stream
            .set_write_timeout(Some(nonzero(io_timeout)))
            .and_then(|_| stream.set_read_timeout(Some(nonzero(read_timeout))))
            .and_then(|_| stream.write_all(&head))
            .and_then(|_| stream.write_all(req.body))
            .and_then(|_| stream.flush());
        if let Err(e) = write {
            return Err(Failure {
                before_response: true,
                error: io_error(&url, e, io_timeout),
            });
        }
        let (resp, keep_alive) = read_response(reader, self.limits.max_body, req.method == "HEAD")
            .map_err(|e| Failure {
                before_response: e.before_response,
                error: e.into_http(&url, read_timeout),
            })?;
        if !keep_alive {
            self.stream = None;
        }
        Ok(resp)
    }
}

/// A zero timeout means "block forever" to no one here: std rejects it.
fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// Opens a TCP connection to the first address of `target` that accepts.
fn connect(target: &HttpTarget, limits: &HttpLimits) -> Result<TcpStream, HttpError> {
    let url = target.url();
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| HttpError::Connect {
            url: url.clone(),
            detail: format!("cannot resolve host: {e}"),
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, nonzero(limits.connect_timeout)) {
            Ok(s) => {
                // Requests are single writes followed by a wait for the answer.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(HttpError::Connect {
        url,
        detail: match last {
            Some(e) => e.to_string(),
            None => "the host resolves to no address".to_string(),
        },
    })
}

fn io_error(url: &str, e: io::Error, after: Duration) -> HttpError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::Timeout {
            url: url.to_string(),
            after,
        },
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => HttpError::Closed {
            url: url.to_string(),
        },
        _ => HttpError::Io {
            url: url.to_string(),
            detail: e.to_string(),
        },
    }
}

/// The request line and headers. Every request is HTTP/1.1 with a body length, so
/// the connection can be kept alive.
fn encode_request(target: &HttpTarget, req: &HttpRequest<'_>) -> Vec<u8> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\nContent-Length: {}\r\n",
        req.method,
        req.path,
        target.authority(),
        req.body.len()
    );
    for (name, value) in req.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A response-reading failure, before the URL and timeout are known.
#[derive(Debug)]
pub(crate) struct ReadError {
    before_response: bool,
    kind: ReadErrorKind,
}

#[derive(Debug)]
enum ReadErrorKind {
    Io(io::Error),
    Malformed(String),
    TooLarge(usize),
}

impl ReadError {
    fn malformed(detail: impl Into<String>) -> ReadError {
        ReadError {
            before_response: false,
            kind: ReadErrorKind::Malformed(detail.into()),
        }
    }

    fn io(e: io::Error) -> ReadError {
        ReadError {
            before_response: false,
            kind: ReadErrorKind::Io(e),
        }
    }

    fn into_http(self, url: &str, timeout: Duration) -> HttpError {
        match self.kind {
            ReadErrorKind::Io(e) => io_error(url, e, timeout),
            ReadErrorKind::Malformed(detail) => HttpError::Malformed {
                url: url.to_string(),
                detail,
            },
            ReadErrorKind::TooLarge(limit) => HttpError::TooLarge {
                url: url.to_string(),
                limit,
            },
        }
    }
}

/// Reads one line ending in `\n` (at most [`MAX_LINE`] bytes) without the line end.
fn read_line<R: BufRead>(r: &mut R, what: &str) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .map_err(ReadError::io)?;
    if !buf.ends_with(b"\n") {
        return Err(if n >= MAX_LINE {
            ReadError::malformed(format!("{what} longer than {MAX_LINE} bytes"))
        } else {
            ReadError::io(io::Error::from(io::ErrorKind::UnexpectedEof))
        });
    }
    buf.pop();
    if buf.ends_with(b"\r") {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| ReadError::malformed(format!("{what} is not UTF-8")))
}

/// Status line and headers of one response.
struct Head {
    status: u16,
    http10: bool,
    content_length: Option<usize>,
    chunked: bool,
    connection_close: bool,
    connection_keep_alive: bool,
}

fn read_head<R: BufRead>(r: &mut R) -> Result<Head, ReadError> {
    // The first byte tells a dead kept-alive connection from a real answer.
    let first = r.fill_buf().map_err(|e| ReadError {
        before_response: true,
        kind: ReadErrorKind::Io(e),
    })?;
    if first.is_empty() {
        return Err(ReadError {
            before_response: true,
            kind: ReadErrorKind::Io(io::Error::from(io::ErrorKind::UnexpectedEof)),
        });
    }
    let status_line = read_line(r, "status line")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(ReadError::malformed(format!(
                "not an HTTP/1.x status line: '{}'",
                excerpt(status_line.as_bytes())
            )))
        }
    };
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| {
            ReadError::malformed(format!(
                "bad status in '{}'",
                excerpt(status_line.as_bytes())
            ))
        })?;
    let mut head = Head {
        status,
        http10,
        content_length: None,
        chunked: false,
        connection_close: false,
        connection_keep_alive: false,
    };
    for n in 0.. {
        let line = read_line(r, "header line")?;
        if line.is_empty() {
            break;
        }
        if n >= MAX_HEADERS {
            return Err(ReadError::malformed(format!(
                "more than {MAX_HEADERS} header lines"
            )));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::malformed(format!(
                "header line without ':': '{}'",
                excerpt(line.as_bytes())
            )));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let len: usize = value
                    .parse()
                    .map_err(|_| ReadError::malformed(format!("bad Content-Length '{value}'")))?;
                if head.content_length.is_some_and(|l| l != len) {
                    return Err(ReadError::malformed("conflicting Content-Length headers"));
                }
                head.content_length = Some(len);
            }
            "transfer-encoding" => {
                let last = value.rsplit(',').next().unwrap_or_default().trim();
                if last.eq_ignore_ascii_case("chunked") {
                    head.chunked = true;
                } else if !last.eq_ignore_ascii_case("identity") {
                    return Err(ReadError::malformed(format!(
                        "unsupported Transfer-Encoding '{value}'"
                    )));
                }
            }
            "connection" => {
                for token in value.split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("close") {
                        head.connection_close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        head.connection_keep_alive = true;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(head)
}

/// Reads one response (skipping any `1xx` interim ones). Returns it with whether
/// the connection may carry another request.
pub(crate) fn read_response<R: BufRead>(
    r: &mut R,
    max_body: usize,
    head_request: bool,
) -> Result<(HttpResponse, bool), ReadError> {
    let mut head = read_head(r)?;
    while (100..200).contains(&head.status) {
        head = read_head(r).map_err(|mut e| {
            e.before_response = false;
            e
        })?;
    }
    let mut keep_alive = if head.http10 {
        head.connection_keep_alive
    } else {
        !head.connection_close
    };
    let no_body = head_request || head.status == 204 || head.status == 304;
    let body = if no_body {
        Vec::new()
    } else if head.chunked {
        read_chunked(r, max_body)?
    } else if let Some(len) = head.content_length {
        if len > max_body {
            return Err(ReadError {
                before_response: false,
                kind: ReadErrorKind::TooLarge(max_body),
            });
        }
        let mut body = Vec::new();
        r.by_ref()
            .take(len as u64)
            .read_to_end(&mut body)
            .map_err(ReadError::io)?;
        if body.len() != len {
            return Err(ReadError::io(io::Error::from(io::ErrorKind::UnexpectedEof)));
        }
        body
    } else {
        // No length: the body runs to the end of the connection.
        keep_alive = false;
        read_bounded_to_end(r, max_body)?
    };
    Ok((
        HttpResponse {
            status: head.status,
            body,
        },
        keep_alive,
    ))
}

fn read_bounded_to_end<R: Read>(r: &mut R, max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    r.take(max_body as u64 + 1)
        .read_to_end(&mut body)
        .map_err(ReadError::io)?;
    if body.len() > max_body {
        return Err(ReadError {
            before_response: false,
            kind: ReadErrorKind::TooLarge(max_body),
        });
    }
    Ok(body)
}

/// A `Transfer-Encoding: chunked` body: hex sizes, data, a zero-size chunk and
/// optional trailers.
fn read_chunked<R: BufRead>(r: &mut R, max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, "chunk size line")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::malformed(format!("bad chunk size '{size_text}'")))?;
        if size == 0 {
            break;
        }
        if size > max_body - body.len() {
            return Err(ReadError {
                before_response: false,
                kind: ReadErrorKind::TooLarge(max_body),
            });
        }
        let start = body.len();
        r.by_ref()
            .take(size as u64)
            .read_to_end(&mut body)
            .map_err(ReadError::io)?;
        if body.len() - start != size {
            return Err(ReadError::io(io::Error::from(io::ErrorKind::UnexpectedEof)));
        }
        if !read_line(r, "chunk end")?.is_empty() {
            return Err(ReadError::malformed("chunk data longer than its size"));
        }
    }
    // Trailers, up to the empty line.
    for _ in 0..=MAX_HEADERS {
        if read_line(r, "trailer line")?.is_empty() {
            return Ok(body);
        }
    }
    Err(ReadError::malformed(format!(
        "more than {MAX_HEADERS} trailer lines"
    )))
}

/// Standard base64 with padding (RFC 4648), for the Basic `Authorization` header.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<(HttpResponse, bool), ReadError> {
        read_response(&mut io::Cursor::new(bytes), 1024, false)
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn urls_parse_and_bad_ones_say_why() {
        let t = HttpTarget::parse("http://127.0.0.1:18443").unwrap();
        assert_eq!(t.authority(), "127.0.0.1:18443");
        assert_eq!(
            HttpTarget::parse("HTTP://localhost:8332/").unwrap().url(),
            "http://localhost:8332"
        );
        assert_eq!(
            HttpTarget::parse("http://[::1]:8332").unwrap().authority(),
            "[::1]:8332"
        );
        for (url, why) in [
            ("https://x:1", "plain HTTP"),
            ("x:1", "expected http://"),
            ("http://x", "missing port"),
            ("http://x:0", "port"),
            ("http://x:99999", "port"),
            ("http://u:p@x:1", "credentials"),
            ("http://x:1/wallet/w", "no path"),
            ("http://:1", "missing host"),
            ("http://[::1:1", "unclosed"),
        ] {
            let err = HttpTarget::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn content_length_bodies_and_keep_alive() {
        let (r, keep) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloextra").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), keep),
            (200, &b"hello"[..], true)
        );
        let (_, keep) =
            parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!keep);
        let (_, keep) = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!keep);
        let (_, keep) =
            parse(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        assert!(keep);
        // No length: to the end of the stream, and the connection is done.
        let (r, keep) = parse(b"HTTP/1.1 404 Not Found\r\n\r\nbye").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), keep),
            (404, &b"bye"[..], false)
        );
        // Interim responses are skipped.
        let (r, _) =
            parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
                .unwrap();
        assert_eq!(r.body, b"x");
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let (r, keep) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\nnext",
        )
        .unwrap();
        assert_eq!(r.body, b"hello!");
        assert!(keep);
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"
        )
        .is_err());
    }

    #[test]
    fn bodies_beyond_the_limit_are_refused_before_reading() {
        let err = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n").unwrap_err();
        assert!(matches!(err.kind, ReadErrorKind::TooLarge(1024)));
        let err =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n").unwrap_err();
        assert!(matches!(err.kind, ReadErrorKind::TooLarge(1024)));
        let big = [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b'x'; 1025]].concat();
        assert!(matches!(
            parse(&big).unwrap_err().kind,
            ReadErrorKind::TooLarge(_)
        ));
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let e = parse(b"").unwrap_err();
        assert!(e.before_response, "an empty answer is a closed connection");
        let e = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").unwrap_err();
        assert!(!e.before_response);
        assert!(matches!(e.kind, ReadErrorKind::Io(_)));
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad).unwrap_err().kind, ReadErrorKind::Malformed(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; MAX_LINE]].concat();
        assert!(matches!(
            parse(&long).unwrap_err().kind,
            ReadErrorKind::Malformed(_)
        ));
    }

    /// A server that answers the first request of each connection and then reads
    /// (and counts) requests without answering.
    fn answer_once_server() -> (HttpTarget, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target =
            HttpTarget::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut answered = false;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            counter.fetch_add(1, Ordering::SeqCst);
                            if !answered {
                                answered = true;
                                let _ = stream
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                            }
                        }
                    }
                });
            }
        });
        (target, seen)
    }

    #[test]
    fn a_timeout_is_reported_and_never_retried() {
        use std::sync::atomic::Ordering;
        let (target, seen) = answer_once_server();
        let mut conn = HttpConnection::new(target, HttpLimits::default());
        let req = HttpRequest {
            method: "GET",
            path: "/",
            headers: &[],
            body: &[],
        };
        let wait = Duration::from_millis(200);
        assert_eq!(conn.send(&req, wait).unwrap().body, b"ok");
        let err = conn.send(&req, wait).unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
        assert!(err.is_connection());
        assert!(!conn.is_open(), "a timed-out connection is dropped");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            2,
            "the timed-out request was sent again"
        );
    }

    #[test]
    fn status_errors_carry_an_excerpt() {
        let resp = HttpResponse {
            status: 404,
            body: b"abc not found\r\n".to_vec(),
        };
        let err = resp.into_success("GET /rest/block/abc.bin").unwrap_err();
        assert_eq!(
            err.to_string(),
            "GET /rest/block/abc.bin: HTTP status 404: abc not found"
        );
        let long = excerpt(&[b'z'; 500]);
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
    }
}
