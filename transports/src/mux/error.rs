//! Typed errors of the multiplexer, each with a stable label.
//!
//! - [`MuxError`]: fatal for the session (protocol violations by the peer,
//!   idle timeout, peer GOAWAY). Sent to the peer as a GOAWAY code.
//! - [`RefuseReason`]: an incoming OPEN refused with a per-channel RESET; the
//!   session goes on.
//! - [`ChannelError`]: a local API call that cannot be served (backpressure,
//!   closed channel, bad name...); never affects the session.
//! - [`ConfigError`]: a [`super::MuxConfig`] outside its limits.

use core::fmt;

/// GOAWAY codes (u16 on the wire).
pub mod goaway_code {
    /// Orderly close requested by the application.
    pub const NO_ERROR: u16 = 0;
    /// `malformed`.
    pub const MALFORMED: u16 = 1;
    /// `unknown-frame-type`.
    pub const UNKNOWN_FRAME_TYPE: u16 = 2;
    /// `oversized-frame`.
    pub const OVERSIZED_FRAME: u16 = 3;
    /// `invalid-channel-id`.
    pub const INVALID_CHANNEL_ID: u16 = 4;
    /// `unknown-channel`.
    pub const UNKNOWN_CHANNEL: u16 = 5;
    /// `duplicate-channel-id`.
    pub const DUPLICATE_CHANNEL_ID: u16 = 6;
    /// `duplicate-name`.
    pub const DUPLICATE_NAME: u16 = 7;
    /// `credit-overflow`.
    pub const CREDIT_OVERFLOW: u16 = 8;
    /// `data-after-fin`.
    pub const DATA_AFTER_FIN: u16 = 9;
    /// `unexpected-frame`.
    pub const UNEXPECTED_FRAME: u16 = 10;
    /// `control-overflow`.
    pub const CONTROL_OVERFLOW: u16 = 11;
    /// `idle-timeout`.
    pub const IDLE_TIMEOUT: u16 = 12;
}

/// RESET codes reserved by the multiplexer (the application uses `0x0000..=0xFEFF`).
pub mod reset_code {
    /// Generic application abort.
    pub const CANCEL: u16 = 0;
    /// First code reserved for the multiplexer itself.
    pub const RESERVED_START: u16 = 0xFF00;
    /// The OPEN named a service the peer does not accept (`unknown-service`).
    pub const UNKNOWN_SERVICE: u16 = 0xFF01;
    /// The peer had no free channel slot (`too-many-channels`).
    pub const TOO_MANY_CHANNELS: u16 = 0xFF02;
    /// The service exists but its access policy does not allow us (`access-denied`).
    pub const ACCESS_DENIED: u16 = 0xFF03;
}

/// A fatal session error. After it the session is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxError {
    /// Bytes were fed before the owner called `set_authenticated`.
    DataBeforeAuth,
    /// A frame with a bad length, reserved flags set, bad name, zero credit increment...
    Malformed,
    /// The type byte is not a known frame type.
    UnknownFrameType(u8),
    /// The header announced a payload longer than `MAX_FRAME_PAYLOAD`.
    OversizedFrame(u16),
    /// A channel id not allowed for this frame (0 on a channel frame, non-0 on a
    /// session frame, an OPEN with the receiver's parity).
    InvalidChannelId(u32),
    /// A frame for a channel id that was never opened.
    UnknownChannel(u32),
    /// An OPEN reusing a channel id the peer has already used.
    DuplicateChannelId(u32),
    /// An OPEN naming a service the peer already has a live channel for.
    DuplicateName(u32),
    /// The peer sent more than the credit granted, or a credit update that overflows u32.
    CreditOverflow(u32),
    /// DATA or FIN after the peer's FIN on that channel.
    DataAfterFin(u32),
    /// A frame not allowed in the channel's state (DATA before ACCEPT, a second ACCEPT...).
    UnexpectedFrame(u32),
    /// The peer made us queue more control frames than `MAX_PENDING_REFUSALS`.
    ControlOverflow,
    /// Nothing was received for `idle_timeout`.
    IdleTimeout,
    /// The peer ended the session with a GOAWAY carrying this code.
    PeerGoAway(u16),
    /// The application closed the session.
    Closed,
}

impl MuxError {
    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            MuxError::DataBeforeAuth => "data-before-auth",
            MuxError::Malformed => "malformed",
            MuxError::UnknownFrameType(_) => "unknown-frame-type",
            MuxError::OversizedFrame(_) => "oversized-frame",
            MuxError::InvalidChannelId(_) => "invalid-channel-id",
            MuxError::UnknownChannel(_) => "unknown-channel",
            MuxError::DuplicateChannelId(_) => "duplicate-channel-id",
            MuxError::DuplicateName(_) => "duplicate-name",
            MuxError::CreditOverflow(_) => "credit-overflow",
            MuxError::DataAfterFin(_) => "data-after-fin",
            MuxError::UnexpectedFrame(_) => "unexpected-frame",
            MuxError::ControlOverflow => "control-overflow",
            MuxError::IdleTimeout => "idle-timeout",
            MuxError::PeerGoAway(_) => "peer-goaway",
            MuxError::Closed => "session-closed",
        }
    }

    /// GOAWAY code sent to the peer for this error (see [`goaway_code`]).
    pub fn code(&self) -> u16 {
        use goaway_code::*;
        match self {
            MuxError::Malformed => MALFORMED,
            MuxError::UnknownFrameType(_) => UNKNOWN_FRAME_TYPE,
            MuxError::OversizedFrame(_) => OVERSIZED_FRAME,
            MuxError::InvalidChannelId(_) => INVALID_CHANNEL_ID,
            MuxError::UnknownChannel(_) => UNKNOWN_CHANNEL,
            MuxError::DuplicateChannelId(_) => DUPLICATE_CHANNEL_ID,
            MuxError::DuplicateName(_) => DUPLICATE_NAME,
            MuxError::CreditOverflow(_) => CREDIT_OVERFLOW,
            MuxError::DataAfterFin(_) => DATA_AFTER_FIN,
            MuxError::UnexpectedFrame(_) => UNEXPECTED_FRAME,
            MuxError::ControlOverflow => CONTROL_OVERFLOW,
            MuxError::IdleTimeout => IDLE_TIMEOUT,
            MuxError::DataBeforeAuth | MuxError::PeerGoAway(_) | MuxError::Closed => NO_ERROR,
        }
    }

    /// Whether ending the session with this error sends a GOAWAY to the peer
    /// (not before authentication, not in answer to the peer's own GOAWAY).
    pub fn sends_goaway(&self) -> bool {
        !matches!(self, MuxError::DataBeforeAuth | MuxError::PeerGoAway(_))
    }
}

impl fmt::Display for MuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuxError::UnknownFrameType(t) => write!(f, "{} (type {t:#04x})", self.label()),
            MuxError::OversizedFrame(n) => write!(f, "{} (len {n})", self.label()),
            MuxError::PeerGoAway(c) => write!(f, "{} (code {c})", self.label()),
            MuxError::InvalidChannelId(c)
            | MuxError::UnknownChannel(c)
            | MuxError::DuplicateChannelId(c)
            | MuxError::DuplicateName(c)
            | MuxError::CreditOverflow(c)
            | MuxError::DataAfterFin(c)
            | MuxError::UnexpectedFrame(c) => write!(f, "{} (channel {c})", self.label()),
            _ => f.write_str(self.label()),
        }
    }
}

/// Why an incoming OPEN was refused (answered with a RESET, session continues).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// No service with that name is registered.
    UnknownService,
    /// All `max_channels` slots are in use (or the event queue is nearly full).
    TooManyChannels,
    /// The service exists, but its access policy does not allow this peer.
    AccessDenied,
}

impl RefuseReason {
    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            RefuseReason::UnknownService => "unknown-service",
            RefuseReason::TooManyChannels => "too-many-channels",
            RefuseReason::AccessDenied => "access-denied",
        }
    }

    /// RESET code carried to the opener.
    pub fn reset_code(&self) -> u16 {
        match self {
            RefuseReason::UnknownService => reset_code::UNKNOWN_SERVICE,
            RefuseReason::TooManyChannels => reset_code::TOO_MANY_CHANNELS,
            RefuseReason::AccessDenied => reset_code::ACCESS_DENIED,
        }
    }

    /// Maps a received RESET code back to a refusal reason, if it is one.
    pub fn from_reset_code(code: u16) -> Option<RefuseReason> {
        match code {
            reset_code::UNKNOWN_SERVICE => Some(RefuseReason::UnknownService),
            reset_code::TOO_MANY_CHANNELS => Some(RefuseReason::TooManyChannels),
            reset_code::ACCESS_DENIED => Some(RefuseReason::AccessDenied),
            _ => None,
        }
    }
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A local API call that could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelError {
    /// Nothing can be written/read right now (credit or buffer exhausted / no data yet).
    WouldBlock,
    /// `set_authenticated` has not been called yet.
    NotAuthenticated,
    /// The session has ended (error or `close`).
    SessionClosed,
    /// No channel with this id was ever opened on this session.
    UnknownChannel,
    /// The channel existed but is gone (reset, or closed in both directions and drained).
    Closed,
    /// `write` after `finish` on this channel.
    Finished,
    /// The service name is not 1..=32 bytes of `[A-Za-z0-9._-]`.
    InvalidName,
    /// This side already has a live channel it opened with that name.
    DuplicateName,
    /// All `max_channels` slots are in use.
    TooManyChannels,
    /// `MAX_SERVICES` names are already registered.
    TooManyServices,
    /// The reset code is in the range reserved for the multiplexer.
    ReservedCode,
    /// All channel ids of this side's parity have been used.
    IdsExhausted,
}

impl ChannelError {
    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            ChannelError::WouldBlock => "would-block",
            ChannelError::NotAuthenticated => "not-authenticated",
            ChannelError::SessionClosed => "session-closed",
            ChannelError::UnknownChannel => "unknown-channel",
            ChannelError::Closed => "channel-closed",
            ChannelError::Finished => "finished",
            ChannelError::InvalidName => "invalid-name",
            ChannelError::DuplicateName => "duplicate-name",
            ChannelError::TooManyChannels => "too-many-channels",
            ChannelError::TooManyServices => "too-many-services",
            ChannelError::ReservedCode => "reserved-code",
            ChannelError::IdsExhausted => "ids-exhausted",
        }
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A configuration value outside its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `max_channels` is 0 or above `MAX_CHANNELS_LIMIT`.
    MaxChannels,
    /// A window, buffer or cap is 0.
    ZeroCapacity,
    /// `max_frame_payload` is 0 or above `MAX_FRAME_PAYLOAD`.
    FramePayload,
    /// Timers: need `0 < keepalive_interval < idle_timeout <= MAX_TIMEOUT`.
    Timers,
}

impl ConfigError {
    /// Stable label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            ConfigError::MaxChannels => "max-channels",
            ConfigError::ZeroCapacity => "zero-capacity",
            ConfigError::FramePayload => "frame-payload",
            ConfigError::Timers => "timers",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl core::error::Error for MuxError {}

impl core::error::Error for ChannelError {}

impl core::error::Error for ConfigError {}
