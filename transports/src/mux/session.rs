//! The multiplexer state machine: one per authenticated byte stream.
//!
//! Sans-IO (quinn-proto style): bytes from the stream go in through
//! [`Mux::handle_bytes`], bytes for the stream come out of
//! [`Mux::poll_transmit`], events out of [`Mux::poll_event`], time goes in
//! through [`Mux::handle_timeout`] with the next deadline from [`Mux::poll_at`].
//! The application side is `open` / `write` / `read` / `finish` / `reset`.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use smoltcp::time::Instant;

use super::channel::{Channel, RecvState, SendState};
use super::config::{
    MuxConfig, EVENT_HEADROOM, EVENT_QUEUE_CAP, MAX_PENDING_REFUSALS, MAX_SERVICES,
};
use super::error::{reset_code, ChannelError, ConfigError, MuxError, RefuseReason};
use super::event::{ChannelId, MuxEvent, MuxStats, Role};
use super::frame::{Frame, FrameType, Header, HEADER_LEN, SESSION_CHANNEL};
use super::keepalive::Keepalive;
use super::name::ServiceName;
use super::reader::FrameReader;

/// Lifecycle of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Failed(MuxError),
    Closed,
}

/// Where a frame's channel id points.
enum Target {
    /// A channel in the table, at this index, that accepts frames.
    Live(usize),
    /// A channel that existed (or was refused, or we reset it): frame ignored.
    Stale,
}

/// A multiplexed session over one reliable, ordered, authenticated byte stream.
#[derive(Debug)]
pub struct Mux {
    role: Role,
    config: MuxConfig,
    state: State,
    authenticated: bool,
    reader: FrameReader,
    channels: Vec<Channel>,
    services: Vec<ServiceName>,
    /// Services that exist but are closed to this peer (refused `access-denied`).
    denied: Vec<ServiceName>,
    /// Next id this side opens (`None` once exhausted).
    next_local_id: Option<u32>,
    /// Highest id this side opened (0 = none yet).
    local_high: u32,
    /// Highest id the peer opened (0 = none yet).
    peer_high: u32,
    /// Session-wide bytes the peer still lets us send.
    session_send_credit: u32,
    /// Session-wide credit granted to the peer and not yet used.
    session_recv_outstanding: u32,
    /// Session-wide bytes consumed (or discarded) and not yet granted back.
    session_pending_grant: u32,
    send_buffered: usize,
    recv_buffered: usize,
    events: VecDeque<MuxEvent>,
    /// RESETs answering refused OPENs: (channel, code).
    refusals: VecDeque<(u32, u16)>,
    pong_pending: Option<u64>,
    ping_pending: Option<u64>,
    goaway_pending: Option<u16>,
    keepalive: Keepalive,
    /// Round-robin start for DATA.
    rr: usize,
    stats: MuxStats,
}

/// Emits `frame` at `*pos` if it fits; counts it.
fn put(out: &mut [u8], pos: &mut usize, frame: &Frame<'_>, frames_tx: &mut u64) -> bool {
    match out.get_mut(*pos..).and_then(|o| frame.emit(o)) {
        Some(n) => {
            *pos += n;
            *frames_tx += 1;
            true
        }
        None => false,
    }
}

fn room(out: &[u8], pos: usize) -> usize {
    out.len().saturating_sub(pos)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Mux {
    /// A new, not yet authenticated session. `role` is this side's role in the
    /// underlying session (it only decides channel id parity).
    pub fn new(role: Role, config: MuxConfig, now: Instant) -> Result<Mux, ConfigError> {
        config.validate()?;
        Ok(Mux {
            role,
            config,
            state: State::Open,
            authenticated: false,
            reader: FrameReader::default(),
            channels: Vec::new(),
            services: Vec::new(),
            denied: Vec::new(),
            next_local_id: Some(match role {
                Role::Initiator => 1,
                Role::Responder => 2,
            }),
            local_high: 0,
            peer_high: 0,
            session_send_credit: 0,
            session_recv_outstanding: 0,
            session_pending_grant: 0,
            send_buffered: 0,
            recv_buffered: 0,
            events: VecDeque::new(),
            refusals: VecDeque::new(),
            pong_pending: None,
            ping_pending: None,
            goaway_pending: None,
            keepalive: Keepalive::new(config.idle_timeout, config.keepalive_interval, now),
            rr: 0,
            stats: MuxStats::default(),
        })
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration in use.
    pub fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// Called by the owner once the peer's identity is bound. Before this, any
    /// byte fed is `data-before-auth` and nothing is transmitted. Grants the
    /// initial session credit and restarts the idle clock.
    pub fn set_authenticated(&mut self, now: Instant) {
        if self.authenticated || self.state != State::Open {
            return;
        }
        self.authenticated = true;
        self.session_pending_grant = self.config.session_window;
        self.keepalive.restart(now);
    }

    /// Whether `set_authenticated` was called.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Accept incoming channels for `name` from now on (up to `MAX_SERVICES`).
    pub fn register_service(&mut self, name: &str) -> Result<(), ChannelError> {
        let name = ServiceName::new(name.as_bytes()).ok_or(ChannelError::InvalidName)?;
        self.denied.retain(|s| *s != name);
        if self.services.contains(&name) {
            return Ok(());
        }
        if self.services.len() >= MAX_SERVICES {
            return Err(ChannelError::TooManyServices);
        }
        self.services.push(name);
        Ok(())
    }

    /// Refuse incoming channels for `name` with `access-denied` (rather than
    /// `unknown-service`): the service exists, but not for this peer. At most
    /// `MAX_SERVICES` names.
    pub fn deny_service(&mut self, name: &str) -> Result<(), ChannelError> {
        let name = ServiceName::new(name.as_bytes()).ok_or(ChannelError::InvalidName)?;
        self.services.retain(|s| *s != name);
        if self.denied.contains(&name) {
            return Ok(());
        }
        if self.denied.len() >= MAX_SERVICES {
            return Err(ChannelError::TooManyServices);
        }
        self.denied.push(name);
        Ok(())
    }

    /// Stop accepting (or denying) new channels for `name`: it becomes
    /// unknown; true if it was registered or denied.
    pub fn unregister_service(&mut self, name: &str) -> bool {
        let before = self.services.len() + self.denied.len();
        self.services.retain(|s| s.as_bytes() != name.as_bytes());
        self.denied.retain(|s| s.as_bytes() != name.as_bytes());
        self.services.len() + self.denied.len() != before
    }

    /// Whether the session has ended (error or `close`).
    pub fn is_closed(&self) -> bool {
        self.state != State::Open
    }

    /// The error that ended the session, if any.
    pub fn error(&self) -> Option<MuxError> {
        match self.state {
            State::Failed(e) => Some(e),
            State::Closed => Some(MuxError::Closed),
            State::Open => None,
        }
    }

    /// Counters and buffer occupancy.
    pub fn stats(&self) -> MuxStats {
        MuxStats {
            channels: self.channels.len(),
            send_buffered: self.send_buffered,
            recv_buffered: self.recv_buffered,
            input_buffered: self.reader.buffered(),
            events_queued: self.events.len(),
            ..self.stats
        }
    }

    /// Service name of a live channel.
    pub fn channel_name(&self, id: ChannelId) -> Option<ServiceName> {
        self.channels.iter().find(|c| c.id == id.0).map(|c| c.name)
    }

    /// Ids of all live channels (for the owner's bookkeeping).
    pub fn channel_ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.channels.iter().map(|c| ChannelId(c.id))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    // ----------------------------------------------------------------- input

    /// Feeds bytes read from the stream (any chunking). A frame split across
    /// calls is reassembled (at most one frame is buffered). Any protocol
    /// violation ends the session and is returned (then on every later call).
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> Result<(), MuxError> {
        match self.state {
            State::Failed(e) => return Err(e),
            State::Closed => return Err(MuxError::Closed),
            State::Open => {}
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.authenticated {
            return Err(self.fail(MuxError::DataBeforeAuth));
        }
        self.stats.bytes_rx = self.stats.bytes_rx.saturating_add(bytes.len() as u64);
        self.keepalive.on_receive(now);
        let mut reader = core::mem::take(&mut self.reader);
        let result = reader.feed(bytes, |raw| {
            self.stats.frames_rx = self.stats.frames_rx.saturating_add(1);
            self.stats.largest_frame_rx = self.stats.largest_frame_rx.max(raw.len());
            let frame = Frame::parse(raw)?;
            self.on_frame(now, frame)
        });
        self.reader = reader;
        match result {
            Ok(()) => {
                self.sweep();
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn on_frame(&mut self, now: Instant, frame: Frame<'_>) -> Result<(), MuxError> {
        match frame {
            Frame::Open {
                channel,
                initial_credit,
                name,
            } => self.on_open(channel, initial_credit, name),
            Frame::Accept {
                channel,
                initial_credit,
            } => self.on_accept(channel, initial_credit),
            Frame::Data { channel, payload } => self.on_data(channel, payload),
            Frame::WindowUpdate { channel, increment } => self.on_window_update(channel, increment),
            Frame::Fin { channel } => self.on_fin(channel),
            Frame::Reset { channel, code } => self.on_reset(channel, code),
            Frame::Ping { opaque } => {
                // Only the latest PING is answered.
                self.pong_pending = Some(opaque);
                Ok(())
            }
            Frame::Pong { opaque } => {
                match self.keepalive.on_pong(opaque, now) {
                    Some(rtt) => self.push_event(MuxEvent::Pong { rtt }),
                    None => self.stats.stale_pongs = self.stats.stale_pongs.saturating_add(1),
                }
                Ok(())
            }
            Frame::GoAway { code } => Err(MuxError::PeerGoAway(code)),
        }
    }

    /// Resolves a channel id of a non-OPEN frame.
    fn target(&mut self, id: u32) -> Result<Target, MuxError> {
        if let Some(i) = self.channels.iter().position(|c| c.id == id) {
            let c = self.channels.get(i).ok_or(MuxError::UnknownChannel(id))?;
            if c.open_pending {
                // The peer cannot know an id whose OPEN we have not sent.
                return Err(MuxError::UnexpectedFrame(id));
            }
            if c.is_locally_reset() {
                self.stats.stale_frames = self.stats.stale_frames.saturating_add(1);
                return Ok(Target::Stale);
            }
            return Ok(Target::Live(i));
        }
        let high = if id & 1 == self.role.parity() {
            self.local_high
        } else {
            self.peer_high
        };
        if id <= high {
            self.stats.stale_frames = self.stats.stale_frames.saturating_add(1);
            Ok(Target::Stale)
        } else {
            Err(MuxError::UnknownChannel(id))
        }
    }

    fn channel_mut(&mut self, i: usize, id: u32) -> Result<&mut Channel, MuxError> {
        self.channels.get_mut(i).ok_or(MuxError::UnknownChannel(id))
    }

    fn on_open(&mut self, id: u32, credit: u32, name: &[u8]) -> Result<(), MuxError> {
        if id & 1 == self.role.parity() {
            return Err(MuxError::InvalidChannelId(id));
        }
        if id <= self.peer_high {
            return Err(MuxError::DuplicateChannelId(id));
        }
        self.peer_high = id;
        let name = ServiceName::new(name).ok_or(MuxError::Malformed)?;
        if self
            .channels
            .iter()
            .any(|c| !c.local_opened && c.name == name && !c.wire_closed())
        {
            return Err(MuxError::DuplicateName(id));
        }
        let refuse = if self.denied.contains(&name) {
            Some(RefuseReason::AccessDenied)
        } else if !self.services.contains(&name) {
            Some(RefuseReason::UnknownService)
        } else if self.channels.len() >= self.config.max_channels
            || self.events.len().saturating_add(EVENT_HEADROOM) > EVENT_QUEUE_CAP
        {
            Some(RefuseReason::TooManyChannels)
        } else {
            None
        };
        if let Some(reason) = refuse {
            if self.refusals.len() >= MAX_PENDING_REFUSALS {
                return Err(MuxError::ControlOverflow);
            }
            self.refusals.push_back((id, reason.reset_code()));
            match reason {
                RefuseReason::UnknownService => {
                    self.stats.refused_unknown_service =
                        self.stats.refused_unknown_service.saturating_add(1);
                }
                RefuseReason::TooManyChannels => {
                    self.stats.refused_too_many_channels =
                        self.stats.refused_too_many_channels.saturating_add(1);
                }
                RefuseReason::AccessDenied => {
                    self.stats.refused_access_denied =
                        self.stats.refused_access_denied.saturating_add(1);
                }
            }
            self.push_event(MuxEvent::Refused {
                id: ChannelId(id),
                name,
                reason,
            });
            return Ok(());
        }
        self.channels.push(Channel::new_remote(
            id,
            name,
            self.config.recv_window,
            credit,
        ));
        self.push_event(MuxEvent::ChannelOpened {
            id: ChannelId(id),
            name,
        });
        Ok(())
    }

    fn on_accept(&mut self, id: u32, credit: u32) -> Result<(), MuxError> {
        let Target::Live(i) = self.target(id)? else {
            return Ok(());
        };
        let c = self.channel_mut(i, id)?;
        if !c.local_opened || c.accepted {
            return Err(MuxError::UnexpectedFrame(id));
        }
        c.accepted = true;
        c.send_credit = credit;
        self.push_event(MuxEvent::Accepted { id: ChannelId(id) });
        Ok(())
    }

    fn on_data(&mut self, id: u32, payload: &[u8]) -> Result<(), MuxError> {
        let n = to_u32(payload.len());
        self.session_recv_outstanding = self
            .session_recv_outstanding
            .checked_sub(n)
            .ok_or(MuxError::CreditOverflow(SESSION_CHANNEL))?;
        self.stats.data_rx = self.stats.data_rx.saturating_add(u64::from(n));
        let Target::Live(i) = self.target(id)? else {
            // Discarded bytes are granted back to the session at once.
            self.session_pending_grant = self.session_pending_grant.saturating_add(n);
            return Ok(());
        };
        let c = self.channel_mut(i, id)?;
        if !c.accepted {
            return Err(MuxError::UnexpectedFrame(id));
        }
        if c.recv_state == RecvState::FinReceived {
            return Err(MuxError::DataAfterFin(id));
        }
        c.recv_outstanding = c
            .recv_outstanding
            .checked_sub(n)
            .ok_or(MuxError::CreditOverflow(id))?;
        c.push_recv(payload);
        let signal = !c.readable_signalled;
        c.readable_signalled = true;
        self.recv_buffered = self.recv_buffered.saturating_add(payload.len());
        if signal {
            self.push_event(MuxEvent::Readable { id: ChannelId(id) });
        }
        Ok(())
    }

    fn on_window_update(&mut self, id: u32, increment: u32) -> Result<(), MuxError> {
        if id == SESSION_CHANNEL {
            self.session_send_credit = self
                .session_send_credit
                .checked_add(increment)
                .ok_or(MuxError::CreditOverflow(id))?;
            return Ok(());
        }
        let Target::Live(i) = self.target(id)? else {
            return Ok(());
        };
        let c = self.channel_mut(i, id)?;
        if !c.accepted {
            return Err(MuxError::UnexpectedFrame(id));
        }
        if c.send_state == SendState::FinSent {
            return Ok(()); // nothing more to send; a late grant is harmless
        }
        c.send_credit = c
            .send_credit
            .checked_add(increment)
            .ok_or(MuxError::CreditOverflow(id))?;
        Ok(())
    }

    fn on_fin(&mut self, id: u32) -> Result<(), MuxError> {
        let Target::Live(i) = self.target(id)? else {
            return Ok(());
        };
        let c = self.channel_mut(i, id)?;
        if !c.accepted {
            return Err(MuxError::UnexpectedFrame(id));
        }
        if c.recv_state == RecvState::FinReceived {
            return Err(MuxError::DataAfterFin(id));
        }
        c.recv_state = RecvState::FinReceived;
        c.recv_pending_grant = 0;
        self.push_event(MuxEvent::Finished { id: ChannelId(id) });
        Ok(())
    }

    fn on_reset(&mut self, id: u32, code: u16) -> Result<(), MuxError> {
        let Target::Live(i) = self.target(id)? else {
            return Ok(());
        };
        if i < self.channels.len() {
            let c = self.channels.remove(i);
            self.release_buffers(&c);
        }
        self.push_event(MuxEvent::Reset {
            id: ChannelId(id),
            code,
        });
        Ok(())
    }

    /// Un-counts a removed channel's buffers; unread bytes go back as session credit.
    fn release_buffers(&mut self, c: &Channel) {
        self.send_buffered = self.send_buffered.saturating_sub(c.send_buf.len());
        self.recv_buffered = self.recv_buffered.saturating_sub(c.recv_buf.len());
        self.session_pending_grant = self
            .session_pending_grant
            .saturating_add(to_u32(c.recv_buf.len()));
    }

    // ---------------------------------------------------------------- output

    /// Writes the next whole frames into `out` (never splits a frame) and
    /// returns how many bytes to write to the stream; 0 = nothing to send now.
    /// `out` should hold at least `MAX_CONTROL_FRAME_LEN` bytes; pass at most
    /// `NOISE_MAX_PLAINTEXT` to fit the result into one Noise message.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> usize {
        let mut pos = 0;
        if self.state != State::Open {
            if let Some(code) = self.goaway_pending {
                if put(
                    out,
                    &mut pos,
                    &Frame::GoAway { code },
                    &mut self.stats.frames_tx,
                ) {
                    self.goaway_pending = None;
                }
            }
        } else if self.authenticated {
            if self.emit_control(out, &mut pos) {
                self.emit_data(out, &mut pos);
            }
            self.signal_writable();
            self.sweep();
        }
        self.stats.bytes_tx = self.stats.bytes_tx.saturating_add(pos as u64);
        pos
    }

    /// Control frames first, in a fixed order (a RESET of an old channel always
    /// precedes the OPEN of a newer one). False if `out` filled up.
    fn emit_control(&mut self, out: &mut [u8], pos: &mut usize) -> bool {
        let ftx = &mut self.stats.frames_tx;
        // Grant in batches of half the window, but never leave the peer below
        // half while anything is pending: bytes parked unread on one channel
        // must not starve the others of session credit.
        let threshold = (self.config.session_window / 2).max(1);
        let pending = self.session_pending_grant;
        if pending >= threshold || (pending > 0 && self.session_recv_outstanding < threshold) {
            let frame = Frame::WindowUpdate {
                channel: SESSION_CHANNEL,
                increment: self.session_pending_grant,
            };
            if !put(out, pos, &frame, ftx) {
                return false;
            }
            self.session_recv_outstanding = self
                .session_recv_outstanding
                .saturating_add(self.session_pending_grant);
            self.session_pending_grant = 0;
        }
        if let Some(opaque) = self.pong_pending {
            if !put(out, pos, &Frame::Pong { opaque }, ftx) {
                return false;
            }
            self.pong_pending = None;
        }
        while let Some(&(channel, code)) = self.refusals.front() {
            if !put(out, pos, &Frame::Reset { channel, code }, ftx) {
                return false;
            }
            self.refusals.pop_front();
        }
        let recv_window = self.config.recv_window;
        for c in self.channels.iter_mut() {
            if let Some(code) = c.reset_pending {
                let frame = Frame::Reset {
                    channel: c.id,
                    code,
                };
                if !put(out, pos, &frame, ftx) {
                    return false;
                }
                c.reset_pending = None;
                continue;
            }
            if c.open_pending {
                let frame = Frame::Open {
                    channel: c.id,
                    initial_credit: recv_window,
                    name: c.name.as_bytes(),
                };
                if !put(out, pos, &frame, ftx) {
                    return false;
                }
                c.open_pending = false;
            }
            if c.accept_pending {
                let frame = Frame::Accept {
                    channel: c.id,
                    initial_credit: recv_window,
                };
                if !put(out, pos, &frame, ftx) {
                    return false;
                }
                c.accept_pending = false;
            }
            // Check room before taking the grant so that it is never lost.
            if room(out, *pos) < HEADER_LEN + 4 {
                return false;
            }
            if let Some(increment) = c.take_grant() {
                put(
                    out,
                    pos,
                    &Frame::WindowUpdate {
                        channel: c.id,
                        increment,
                    },
                    ftx,
                );
            }
        }
        if let Some(opaque) = self.ping_pending {
            if !put(out, pos, &Frame::Ping { opaque }, ftx) {
                return false;
            }
            self.ping_pending = None;
        }
        true
    }

    /// DATA (and FIN once drained), one frame per channel per round, round-robin.
    fn emit_data(&mut self, out: &mut [u8], pos: &mut usize) {
        let n = self.channels.len();
        if n == 0 {
            return;
        }
        let max_payload = self.config.max_frame_payload;
        loop {
            let mut progressed = false;
            for k in 0..n {
                let free = room(out, *pos);
                if free < HEADER_LEN {
                    return;
                }
                let i = (self.rr + k) % n;
                let Some(c) = self.channels.get_mut(i) else {
                    continue;
                };
                let len = c
                    .sendable()
                    .min(self.session_send_credit as usize)
                    .min(max_payload)
                    .min(free - HEADER_LEN);
                if len > 0 {
                    let Some(frame) = out.get_mut(*pos..*pos + HEADER_LEN + len) else {
                        return;
                    };
                    let (head, body) = frame.split_at_mut(HEADER_LEN);
                    let header = Header {
                        frame_type: FrameType::Data as u8,
                        flags: 0,
                        channel: c.id,
                        len: u16::try_from(len).unwrap_or(u16::MAX),
                    };
                    if header.emit(head).is_none() {
                        return;
                    }
                    let taken = c.take_send(body);
                    *pos += HEADER_LEN + taken;
                    self.session_send_credit =
                        self.session_send_credit.saturating_sub(to_u32(taken));
                    self.send_buffered = self.send_buffered.saturating_sub(taken);
                    self.stats.data_tx = self.stats.data_tx.saturating_add(taken as u64);
                    self.stats.frames_tx = self.stats.frames_tx.saturating_add(1);
                    progressed = true;
                } else if c.fin_ready() {
                    let frame = Frame::Fin { channel: c.id };
                    if put(out, pos, &frame, &mut self.stats.frames_tx) {
                        c.send_state = SendState::FinSent;
                        progressed = true;
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        self.rr = (self.rr + 1) % n;
    }

    /// Bytes `write` would accept on this channel now.
    fn write_space(&self, c: &Channel) -> usize {
        if c.send_state != SendState::Open {
            return 0;
        }
        self.config
            .send_buffer
            .saturating_sub(c.send_buf.len())
            .min(
                self.config
                    .max_pending_send
                    .saturating_sub(self.send_buffered),
            )
    }

    fn signal_writable(&mut self) {
        let mut i = 0;
        while let Some(c) = self.channels.get(i) {
            if c.want_writable && self.write_space(c) > 0 {
                let id = c.id;
                if let Some(c) = self.channels.get_mut(i) {
                    c.want_writable = false;
                }
                self.push_event(MuxEvent::Writable { id: ChannelId(id) });
            }
            i += 1;
        }
    }

    /// Releases channels that are over and drained.
    fn sweep(&mut self) {
        self.channels.retain(|c| !c.is_done());
    }

    fn push_event(&mut self, event: MuxEvent) {
        if self.events.len() < EVENT_QUEUE_CAP {
            self.events.push_back(event);
        } else {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
        }
    }

    /// Ends the session with `error` (first error wins) and frees all buffers.
    fn fail(&mut self, error: MuxError) -> MuxError {
        if let State::Failed(first) = self.state {
            return first;
        }
        self.state = State::Failed(error);
        if self.authenticated && error.sends_goaway() {
            self.goaway_pending = Some(error.code());
        }
        self.release_all();
        error
    }

    fn release_all(&mut self) {
        self.channels = Vec::new();
        self.refusals = VecDeque::new();
        self.reader.clear();
        self.send_buffered = 0;
        self.recv_buffered = 0;
        self.pong_pending = None;
        self.ping_pending = None;
    }

    // ------------------------------------------------------------------ time

    /// The next instant `handle_timeout` must be called (idle deadline or PING
    /// due); `None` once the session has ended.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.state != State::Open {
            return None;
        }
        let idle = self.keepalive.idle_deadline();
        if self.authenticated {
            Some(idle.min(self.keepalive.next_ping_at()))
        } else {
            Some(idle)
        }
    }

    /// Advances timers: fails with `idle-timeout` at the idle deadline, queues
    /// a keepalive PING when one is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MuxError> {
        match self.state {
            State::Failed(e) => return Err(e),
            State::Closed => return Err(MuxError::Closed),
            State::Open => {}
        }
        if now >= self.keepalive.idle_deadline() {
            return Err(self.fail(MuxError::IdleTimeout));
        }
        if self.authenticated && now >= self.keepalive.next_ping_at() {
            self.ping_pending = Some(self.keepalive.start_ping(now));
        }
        Ok(())
    }

    /// Sends a PING now; its PONG yields `MuxEvent::Pong { rtt }`.
    pub fn ping(&mut self, now: Instant) -> Result<(), ChannelError> {
        self.check_usable()?;
        self.ping_pending = Some(self.keepalive.start_ping(now));
        Ok(())
    }

    /// Ends the session: queues GOAWAY(`code`) and drops every channel.
    pub fn close(&mut self, code: u16) {
        if self.state != State::Open {
            return;
        }
        self.state = State::Closed;
        if self.authenticated {
            self.goaway_pending = Some(code);
        }
        self.release_all();
    }

    // ----------------------------------------------------------- application

    fn check_usable(&self) -> Result<(), ChannelError> {
        if self.state != State::Open {
            return Err(ChannelError::SessionClosed);
        }
        if !self.authenticated {
            return Err(ChannelError::NotAuthenticated);
        }
        Ok(())
    }

    /// Index of a live channel, or why there is none.
    fn find(&self, id: ChannelId) -> Result<usize, ChannelError> {
        self.check_usable()?;
        if let Some(i) = self.channels.iter().position(|c| c.id == id.0) {
            return Ok(i);
        }
        let high = if id.0 & 1 == self.role.parity() {
            self.local_high
        } else {
            self.peer_high
        };
        if id.0 != 0 && id.0 <= high {
            Err(ChannelError::Closed)
        } else {
            Err(ChannelError::UnknownChannel)
        }
    }

    /// Opens a channel to the peer's service `name`. Data may be written at
    /// once (it is held until the peer's ACCEPT brings credit).
    pub fn open(&mut self, name: &str) -> Result<ChannelId, ChannelError> {
        self.check_usable()?;
        let name = ServiceName::new(name.as_bytes()).ok_or(ChannelError::InvalidName)?;
        if self
            .channels
            .iter()
            .any(|c| c.local_opened && c.name == name && !c.wire_closed())
        {
            return Err(ChannelError::DuplicateName);
        }
        if self.channels.len() >= self.config.max_channels {
            return Err(ChannelError::TooManyChannels);
        }
        let id = self.next_local_id.ok_or(ChannelError::IdsExhausted)?;
        self.next_local_id = id.checked_add(2);
        self.local_high = id;
        self.channels
            .push(Channel::new_local(id, name, self.config.recv_window));
        Ok(ChannelId(id))
    }

    /// Copies as much of `data` as the send buffers allow; `WouldBlock` when
    /// nothing fits (backpressure: wait for `MuxEvent::Writable`).
    pub fn write(&mut self, id: ChannelId, data: &[u8]) -> Result<usize, ChannelError> {
        let i = self.find(id)?;
        let c = self.channels.get(i).ok_or(ChannelError::Closed)?;
        match c.send_state {
            SendState::Open => {}
            SendState::FinQueued | SendState::FinSent => return Err(ChannelError::Finished),
            SendState::Reset => return Err(ChannelError::Closed),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.write_space(c).min(data.len());
        let c = self.channels.get_mut(i).ok_or(ChannelError::Closed)?;
        if n < data.len() {
            c.want_writable = true;
        }
        if n == 0 {
            return Err(ChannelError::WouldBlock);
        }
        c.send_buf.extend(data.get(..n).unwrap_or(&[]));
        self.send_buffered = self.send_buffered.saturating_add(n);
        Ok(n)
    }

    /// Reads received bytes. `Ok(0)` = the peer finished and all was read;
    /// `WouldBlock` = nothing yet; `Closed` = the channel was reset, or closed
    /// both ways and drained (slot released). Reading grants credit back.
    pub fn read(&mut self, id: ChannelId, out: &mut [u8]) -> Result<usize, ChannelError> {
        let i = self.find(id)?;
        let c = self.channels.get_mut(i).ok_or(ChannelError::Closed)?;
        if c.is_locally_reset() {
            return Err(ChannelError::Closed);
        }
        if out.is_empty() {
            return Ok(0);
        }
        if c.recv_buf.is_empty() {
            c.readable_signalled = false;
            return match c.recv_state {
                RecvState::FinReceived => Ok(0),
                RecvState::Open => Err(ChannelError::WouldBlock),
            };
        }
        let n = c.read_into(out);
        if c.recv_buf.is_empty() {
            c.readable_signalled = false;
        }
        self.recv_buffered = self.recv_buffered.saturating_sub(n);
        self.session_pending_grant = self.session_pending_grant.saturating_add(to_u32(n));
        self.sweep();
        Ok(n)
    }

    /// Bytes waiting to be read on a channel (0 if unknown).
    pub fn readable_len(&self, id: ChannelId) -> usize {
        self.channels
            .iter()
            .find(|c| c.id == id.0)
            .map_or(0, |c| c.recv_buf.len())
    }

    /// Bytes the peer still lets us send on a channel: the smaller of its
    /// channel credit and the session credit (`None` if unknown). Zero means
    /// the reader is holding the writer back.
    pub fn send_credit(&self, id: ChannelId) -> Option<u32> {
        self.channels
            .iter()
            .find(|c| c.id == id.0)
            .map(|c| c.send_credit.min(self.session_send_credit))
    }

    /// Bytes `write` would accept on a channel now (0 if unknown or finished).
    pub fn write_capacity(&self, id: ChannelId) -> usize {
        self.channels
            .iter()
            .find(|c| c.id == id.0)
            .map_or(0, |c| self.write_space(c))
    }

    /// Ends our direction: FIN follows the data already written. Idempotent.
    pub fn finish(&mut self, id: ChannelId) -> Result<(), ChannelError> {
        let i = self.find(id)?;
        let c = self.channels.get_mut(i).ok_or(ChannelError::Closed)?;
        match c.send_state {
            SendState::Open => {
                c.send_state = SendState::FinQueued;
                c.want_writable = false;
                Ok(())
            }
            SendState::FinQueued | SendState::FinSent => Ok(()),
            SendState::Reset => Err(ChannelError::Closed),
        }
    }

    /// Aborts both directions with `code` (below `reset_code::RESERVED_START`);
    /// buffered data is dropped. Idempotent.
    pub fn reset(&mut self, id: ChannelId, code: u16) -> Result<(), ChannelError> {
        if code >= reset_code::RESERVED_START {
            return Err(ChannelError::ReservedCode);
        }
        let i = self.find(id)?;
        let c = self.channels.get_mut(i).ok_or(ChannelError::Closed)?;
        if c.is_locally_reset() {
            return Ok(());
        }
        // Nothing to tell the peer if it never saw the channel or both
        // directions are already over on the wire.
        let silent = c.open_pending || c.wire_closed();
        let send = core::mem::take(&mut c.send_buf);
        let recv = core::mem::take(&mut c.recv_buf);
        c.send_state = SendState::Reset;
        c.accept_pending = false;
        c.want_writable = false;
        c.reset_pending = if silent { None } else { Some(code) };
        self.send_buffered = self.send_buffered.saturating_sub(send.len());
        self.recv_buffered = self.recv_buffered.saturating_sub(recv.len());
        self.session_pending_grant = self
            .session_pending_grant
            .saturating_add(to_u32(recv.len()));
        self.sweep();
        Ok(())
    }
}
