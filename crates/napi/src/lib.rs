//! The Node.js addon of the OPNet native data path (`opnet-native` on npm): the
//! opnet.sock client of `opnet` (its client side only: no LevelDB, no chain
//! readers) as native classes. `index.js` at the repository root wraps them into
//! the API of `index.d.ts` (promises, async iterators, a Readable, an
//! EventEmitter); nothing is parsed, filtered or hashed in JavaScript.

#![deny(clippy::all)]

mod client;
mod convert;
mod cursor;
mod error;
mod events;
mod pull;
