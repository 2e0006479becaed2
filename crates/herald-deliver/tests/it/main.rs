//! The delivery service against the real broker and real local HTTP receivers.

mod delivery;
mod signatures;
