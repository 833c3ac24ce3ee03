//! Errors as JavaScript sees them. napi-rs gives errors from async functions a
//! generic `code`, so the stable code travels at the front of the message,
//! `[ERR_X status=N detail=M] text`, and index.js moves it into `err.code`.

use napi::{Error, Status};
use opnet::client::ClientError;
use opnet::protocol::Status as ServerStatus;

/// A JavaScript error with a stable code.
pub fn coded(code: &str, message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("[{code}] {message}"))
}

/// A bad argument (index.js throws it as a TypeError).
pub fn invalid(message: impl std::fmt::Display) -> Error {
    coded("ERR_INVALID_ARG", message)
}

fn server_code(status: ServerStatus) -> &'static str {
    match status {
        ServerStatus::NotFound => "ERR_NOT_FOUND",
        ServerStatus::LimitExceeded => "ERR_LIMIT_EXCEEDED",
        ServerStatus::BadCursor => "ERR_BAD_CURSOR",
        ServerStatus::NotReady => "ERR_NOT_READY",
        ServerStatus::Unavailable => "ERR_UNAVAILABLE",
        ServerStatus::RateLimited => "ERR_RATE_LIMITED",
        _ => "ERR_SERVER",
    }
}

/// The client's error with its stable code.
pub fn client(e: ClientError) -> Error {
    match &e {
        ClientError::Connect { .. } => coded("ERR_CONNECT", &e),
        ClientError::Server { status, detail, .. } => Error::new(
            Status::GenericFailure,
            format!(
                "[{} status={} detail={detail}] {e}",
                server_code(*status),
                *status as u8
            ),
        ),
        ClientError::UnknownStatus { code, detail, .. } => Error::new(
            Status::GenericFailure,
            format!("[ERR_SERVER status={code} detail={detail}] {e}"),
        ),
        ClientError::Protocol(_) => coded("ERR_PROTOCOL", &e),
        ClientError::Closed { .. } => coded("ERR_CLOSED", &e),
        ClientError::WrongNetwork { .. } => coded("ERR_WRONG_NETWORK", &e),
        ClientError::Invalid(_) => coded("ERR_INVALID_ARG", &e),
        ClientError::Timeout => coded("ERR_TIMEOUT", &e),
    }
}

/// The error of a call on a closed client.
pub fn closed() -> Error {
    coded("ERR_CLOSED", "the client is closed")
}
