//! The delivery service against the real broker and real local HTTP receivers.

mod bots;
mod delivery;
mod email;
mod http;
mod inbox;
mod signatures;
mod sms;
mod wechat;
