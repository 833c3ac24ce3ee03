//! The `opnet.sock` protocol (docs/PROTOCOL.md): framing now; messages, the server
//! and the client build on it. Compiled without the `engine` feature so the napi
//! addon's client can use it.

pub mod frame;

pub use frame::{encode, Frame, FrameDecoder, FrameError, DEFAULT_MAX_FRAME};
