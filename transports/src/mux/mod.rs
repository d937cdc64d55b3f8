//! Stream multiplexer: many named, flow-controlled channels over one
//! authenticated, reliable, ordered byte stream (Noise over TCP today, udp-sec
//! later; the multiplexer does not know which).
//!
//! Sans-IO and symmetric: both ends run the same [`Mux`]; the session role
//! only decides channel id parity. Layout (one concern per file):
//! - [`frame`]: the wire format (parse / emit), see `docs/protocol.md`;
//! - `reader`: frame reassembly from arbitrary chunks;
//! - `channel`: per-channel half-streams, buffers and credit;
//! - `keepalive`: idle deadline and PING scheduling;
//! - [`session`]: the state machine tying them together;
//! - [`error`], [`config`], [`event`], [`name`]: the types around it.

pub mod config;
pub mod error;
pub mod event;
pub mod frame;
pub mod name;
pub mod session;

mod channel;
mod keepalive;
mod reader;

pub use config::{
    MuxConfig, EVENT_HEADROOM, EVENT_QUEUE_CAP, MAX_CHANNELS_LIMIT, MAX_PENDING_REFUSALS,
    MAX_SERVICES, MAX_TIMEOUT,
};
pub use error::{goaway_code, reset_code, ChannelError, ConfigError, MuxError, RefuseReason};
pub use event::{ChannelId, MuxEvent, MuxStats, Role};
pub use frame::{
    Frame, FrameType, Header, HEADER_LEN, MAX_CONTROL_FRAME_LEN, MAX_FRAME_LEN, MAX_FRAME_PAYLOAD,
    NOISE_MAX_PLAINTEXT, SESSION_CHANNEL,
};
pub use name::ServiceName;
pub use session::Mux;
