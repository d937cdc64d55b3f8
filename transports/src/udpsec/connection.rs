//! One udp-sec connection: a sans-IO state machine carrying one reliable,
//! ordered, authenticated byte stream.
//!
//! Input: [`handle_datagram`](Connection::handle_datagram) and
//! [`handle_timeout`](Connection::handle_timeout), with the time passed in.
//! Output: [`poll_transmit`](Connection::poll_transmit) (one datagram of at
//! most [`MAX_DATAGRAM`] bytes per call), [`poll_timeout`](Connection::poll_timeout),
//! [`poll_event`](Connection::poll_event). Stream: [`write`](Connection::write)
//! (bounded, 0 = backpressure), [`read`](Connection::read), [`close`](Connection::close).
//!
//! Life cycle: handshake (three datagrams, re-sent on timeout) → established
//! (data packets under AEAD) → closing (our CLOSE after all our data was
//! acknowledged) or draining (peer's CLOSE) → closed. Idle timeout and
//! handshake timeout close without a CLOSE frame.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use dsb_noise::TrustStore;
use smoltcp::time::{Duration, Instant};

use super::ack::AckState;
use super::assembler::Assembler;
use super::config::{Config, INITIAL_MAX_DATA};
use super::congestion::Controller;
use super::crypto::{PacketKey, ReplayWindow};
use super::frame::{self, Frame, FrameIter, FrameWriter, ACK_DELAY_UNIT_US};
use super::handshake::{backoff, HandshakeReject, HsDriver, HsOutcome};
pub use super::handshake::{Handshake, HsError, Role};
use super::pacing::Pacer;
use super::packet::{Header, Packet, PacketType, FLAG_ACK, HEADER_LEN, MAX_PAYLOAD_LEN, TAG_LEN};
use super::recovery::{is_lost, RttEstimator};
use super::reject::RejectCode;
use super::send_buf::SendBuf;
use super::sent::{SentPacket, SentPackets, MAX_SENT_PACKETS};
use super::stats::{DropReason, Stats};
use super::{since, MAX_DATAGRAM};

/// Start closing once the next packet number reaches this (nonces never repeat).
pub const PN_CLOSE_THRESHOLD: u32 = u32::MAX - 64;
/// Most queued events.
pub const MAX_EVENTS: usize = 16;
/// Most CLOSE frames re-sent while closing (on timer or in answer to packets).
pub const MAX_CLOSE_SENDS: u8 = 8;
/// CLOSE code of a normal close.
pub const CLOSE_NORMAL: u16 = 0;
/// Packets a tail-loss probe sends (RFC 9002 §6.2.4 allows two).
pub const PROBE_PACKETS: u8 = 2;
/// CLOSE code when packet numbers are exhausted.
pub const CLOSE_PN_EXHAUSTED: u16 = 1;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The application called [`Connection::close`].
    Local,
    /// The peer sent CLOSE with `code`.
    Peer {
        /// The peer's close code (0 = normal).
        code: u16,
    },
    /// Nothing authenticated arrived for the idle timeout.
    IdleTimeout,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// The handshake layer rejected the peer (e.g. `"identity-mismatch"`).
    HandshakeFailed(HsError),
    /// The responder refused our handshake with an HS_REJECT.
    Rejected(RejectCode),
    /// Packet numbers ran out (the connection closed before any nonce reuse).
    PacketNumbersExhausted,
}

impl CloseReason {
    /// Stable label.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Local => "local",
            CloseReason::Peer { .. } => "peer",
            CloseReason::IdleTimeout => "idle-timeout",
            CloseReason::HandshakeTimeout => "handshake-timeout",
            CloseReason::HandshakeFailed(e) => e.label(),
            CloseReason::Rejected(c) => c.label(),
            CloseReason::PacketNumbersExhausted => "pn-exhausted",
        }
    }
}

/// Something the application should know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed and the peer proved it holds the session keys.
    Connected {
        /// The session id.
        session_id: u64,
    },
    /// Stream bytes can be read (read until `read` returns 0).
    Readable,
    /// Send-buffer space freed after `write` accepted less than offered.
    Writable,
    /// The connection ended (buffered stream bytes stay readable).
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Established,
    Closing { until: Instant },
    Draining { until: Instant },
    Closed,
}

/// A udp-sec connection driven by handshake `H`.
pub struct Connection<H: Handshake> {
    config: Config,
    role: Role,
    session_id: u64,
    state: State,
    hs: HsDriver<H>,
    hs_started: Instant,
    tx_key: Option<PacketKey>,
    rx_key: Option<PacketKey>,
    handshake_hash: Option<[u8; 32]>,
    confirmed: bool,

    // receive-side packet state
    next_pn: u32,
    replay: ReplayWindow,
    acks: AckState,

    // send-side recovery and congestion state
    sent: SentPackets,
    largest_acked: Option<u32>,
    rtt: RttEstimator,
    cc: Box<dyn Controller>,
    pacer: Pacer,
    pacing_at: Option<Instant>,
    loss_time: Option<Instant>,
    rto_backoff: u32,
    /// A tail-loss probe went out and nothing new was acknowledged since.
    tlp_sent: bool,
    /// Probe packets still to send (they may exceed the window).
    probes_left: u8,
    last_eliciting_sent: Option<Instant>,
    app_limited: bool,
    scratch_pns: Vec<u32>,
    scratch_acked: Vec<u32>,

    // stream and flow control
    send_buf: SendBuf,
    peer_max_data: u64,
    assembler: Assembler,
    max_data_sent: u64,
    max_data_pending: bool,
    ping_pending: bool,

    // close
    close_requested: bool,
    close_frame_pending: bool,
    close_code: u16,
    close_label: &'static str,
    close_sends_left: u8,
    close_resend_at: Option<Instant>,
    closed_reason: Option<CloseReason>,
    closed_emitted: bool,

    last_recv: Instant,
    last_activity_sent: Instant,

    events: VecDeque<Event>,
    readable_armed: bool,
    writable_wanted: bool,
    stats: Stats,
}

impl<H: Handshake> core::fmt::Debug for Connection<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("session_id", &self.session_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What an incoming ACK acknowledged.
#[derive(Default)]
struct AckAcc {
    newly_largest: Option<(u32, Instant)>,
    any: bool,
}

impl<H: Handshake> Connection<H> {
    fn new(config: Config, role: Role, session_id: u64, hs: H, now: Instant) -> Self {
        let mss = Config::MSS;
        let cc = config.congestion.build(
            mss,
            config.initial_window_packets.saturating_mul(mss),
            config.min_window_packets.saturating_mul(mss),
            config.max_window,
        );
        let pacer = Pacer::new(
            mss,
            config.pacing_burst_interval,
            config.pacing_min_burst,
            config.pacing_max_burst,
            config.initial_rtt,
            cc.window(),
            now,
        );
        Connection {
            role,
            session_id,
            state: State::Handshake,
            hs: HsDriver::new(role, hs),
            hs_started: now,
            tx_key: None,
            rx_key: None,
            handshake_hash: None,
            confirmed: false,
            next_pn: 0,
            replay: ReplayWindow::new(),
            acks: AckState::new(),
            sent: SentPackets::new(),
            largest_acked: None,
            rtt: RttEstimator::new(config.initial_rtt),
            cc,
            pacer,
            pacing_at: None,
            loss_time: None,
            rto_backoff: 0,
            tlp_sent: false,
            probes_left: 0,
            last_eliciting_sent: None,
            app_limited: true,
            scratch_pns: Vec::new(),
            scratch_acked: Vec::new(),
            send_buf: SendBuf::new(config.send_buffer),
            peer_max_data: INITIAL_MAX_DATA,
            assembler: Assembler::new(config.effective_recv_window()),
            max_data_sent: INITIAL_MAX_DATA,
            max_data_pending: false,
            ping_pending: false,
            close_requested: false,
            close_frame_pending: false,
            close_code: CLOSE_NORMAL,
            close_label: "",
            close_sends_left: 0,
            close_resend_at: None,
            closed_reason: None,
            closed_emitted: false,
            last_recv: now,
            last_activity_sent: now,
            events: VecDeque::new(),
            readable_armed: false,
            writable_wanted: false,
            stats: Stats::default(),
            config,
        }
    }

    /// Start a connection as initiator; message 1 is ready for `poll_transmit`.
    pub fn connect(config: Config, session_id: u64, hs: H, now: Instant) -> Result<Self, HsError> {
        let mut c = Self::new(config, Role::Initiator, session_id, hs, now);
        c.hs.start()?;
        Ok(c)
    }

    /// A responder waiting for message 1 on `session_id`.
    pub fn accept(config: Config, session_id: u64, hs: H, now: Instant) -> Self {
        Self::new(config, Role::Responder, session_id, hs, now)
    }

    /// Replace the congestion controller (before any data is sent).
    pub fn set_controller(&mut self, cc: Box<dyn Controller>) {
        self.cc = cc;
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Initiator or responder.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True once `Connected` was emitted and until the connection closes or drains.
    pub fn is_established(&self) -> bool {
        self.confirmed && matches!(self.state, State::Established)
    }

    /// True when the handshake is still in progress (no `Connected` yet).
    pub fn is_handshaking(&self) -> bool {
        !self.confirmed && !matches!(self.state, State::Closed)
    }

    /// True once fully closed (nothing more will be sent).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Why the connection closed (or is closing), if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.closed_reason
    }

    /// The handshake: running, failed, or finished (e.g. to ask who the peer is).
    pub fn handshake(&self) -> Option<&H> {
        self.hs.handshake()
    }

    /// The Noise handshake hash, once keys exist.
    pub fn handshake_hash(&self) -> Option<[u8; 32]> {
        self.handshake_hash
    }

    /// Bytes `write` would accept now.
    pub fn send_capacity(&self) -> usize {
        if self.close_requested || self.closed_reason.is_some() {
            0
        } else {
            self.send_buf.free()
        }
    }

    /// Stream bytes ready to read.
    pub fn readable(&self) -> usize {
        self.assembler.readable()
    }

    /// Counters and recovery state.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.cwnd = self.cc.window();
        s.ssthresh = self.cc.ssthresh();
        s.srtt = self.rtt.srtt();
        s.rttvar = self.rtt.rttvar();
        s.min_rtt = self.rtt.min_rtt();
        s.rto = self.rto();
        s.bytes_in_flight = self.sent.bytes_in_flight();
        s.app_limited = self.app_limited;
        s
    }

    fn rto(&self) -> Duration {
        if self.rtt.has_sample() {
            self.rtt.rto(
                self.config.max_ack_delay,
                self.config.min_rto,
                self.config.max_rto,
            )
        } else {
            // RFC 6298 before the first sample: 2 × the initial RTT guess.
            (self.config.initial_rtt * 2).clamp(self.config.min_rto, self.config.max_rto)
        }
    }

    // ------------------------------------------------------------------
    // Stream API
    // ------------------------------------------------------------------

    /// Queue stream bytes; returns how many were accepted (0 = backpressure).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.close_requested || self.closed_reason.is_some() {
            return 0;
        }
        let n = self.send_buf.write(data);
        if n < data.len() {
            self.writable_wanted = true;
        }
        n
    }

    /// Read in-order stream bytes; returns how many (0 = nothing ready).
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.assembler.read(out);
        self.stats.stream_bytes_read += n as u64;
        if self.assembler.readable() == 0 {
            self.readable_armed = false;
        }
        let threshold = (self.assembler.window() / 8) as u64;
        if n > 0 && self.assembler.limit() >= self.max_data_sent.saturating_add(threshold) {
            self.max_data_pending = true;
        }
        n
    }

    /// Close gracefully: stop accepting writes, deliver what was written,
    /// then send CLOSE. During the handshake with nothing written, this
    /// closes at once (no CLOSE can be sent without keys).
    pub fn close(&mut self) {
        if self.closed_reason.is_some() {
            return;
        }
        self.close_requested = true;
        if self.tx_key.is_none() && self.send_buf.is_fully_acked() {
            self.close_now(CloseReason::Local);
        }
    }

    /// Closes now, without waiting for what was written to be
    /// acknowledged (the peer is known to be gone): CLOSE is sent (up to
    /// [`MAX_CLOSE_SENDS`] times) and the connection ends after 3 RTO at
    /// most, instead of holding its slot until the idle timeout. Before keys
    /// exist it closes at once.
    pub fn abort(&mut self, now: Instant) {
        if self.closed_reason.is_some() {
            return;
        }
        if self.tx_key.is_none() {
            return self.close_now(CloseReason::Local);
        }
        self.begin_closing(now, CloseReason::Local, CLOSE_NORMAL);
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn push_event(&mut self, e: Event) {
        // Closed must never be lost; others are edge hints and may be dropped.
        if self.events.len() >= MAX_EVENTS && !matches!(e, Event::Closed { .. }) {
            return;
        }
        self.events.push_back(e);
    }

    fn close_now(&mut self, reason: CloseReason) {
        if self.closed_reason.is_none() {
            self.closed_reason = Some(reason);
        }
        self.state = State::Closed;
        self.emit_closed();
    }

    fn emit_closed(&mut self) {
        if !self.closed_emitted {
            if let Some(reason) = self.closed_reason {
                self.closed_emitted = true;
                self.push_event(Event::Closed { reason });
            }
        }
    }

    fn maybe_start_close(&mut self, now: Instant) {
        if matches!(self.state, State::Established)
            && self.close_requested
            && self.send_buf.is_fully_acked()
        {
            self.begin_closing(now, CloseReason::Local, CLOSE_NORMAL);
        }
    }

    fn begin_closing(&mut self, now: Instant, reason: CloseReason, code: u16) {
        if self.closed_reason.is_none() {
            self.closed_reason = Some(reason);
        }
        self.close_code = code;
        self.close_label = reason.label();
        self.close_frame_pending = true;
        self.close_sends_left = MAX_CLOSE_SENDS;
        self.state = State::Closing {
            until: now + self.rto() * 3,
        };
    }

    // ------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------

    fn rto_deadline(&self) -> Option<Instant> {
        if self.sent.is_empty() {
            return None;
        }
        let last = self.last_eliciting_sent?;
        Some(last + backoff(self.rto(), self.rto_backoff, self.config.max_rto))
    }

    /// When to send a tail-loss probe (RFC 8985 §7.2): `2·srtt` after the last
    /// ack-eliciting packet, plus `max_ack_delay` when only one packet is in
    /// flight; once per flight, and only while that comes before the RTO
    /// (which then runs from the probe).
    fn probe_deadline(&self) -> Option<Instant> {
        if self.tlp_sent
            || self.rto_backoff > 0
            || self.sent.is_empty()
            || !self.rtt.has_sample()
            || !matches!(self.state, State::Established)
        {
            return None;
        }
        let last = self.last_eliciting_sent?;
        // RFC 8985 §7.2: 2·SRTT, plus the worst-case delayed ACK only when a
        // single packet is in flight (with two or more the receiver's every-
        // second-packet rule answers without delay).
        let mut pto = self.rtt.srtt() * 2;
        if self.sent.len() == 1 {
            pto += self.config.max_ack_delay;
        }
        (pto < self.rto()).then(|| last + pto)
    }

    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.config.keepalive_interval?;
        if !self.is_established() || self.ping_pending {
            return None;
        }
        Some(self.last_activity_sent + interval)
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        match self.state {
            State::Closed => return None,
            State::Closing { until } => {
                let resend = self.close_resend_at.filter(|_| self.close_sends_left > 0);
                return Some(resend.map_or(until, |r| r.min(until)));
            }
            State::Draining { until } => return Some(until),
            State::Handshake | State::Established => {}
        }
        if self.hs.has_outgoing() {
            add(self.hs.retransmit_at);
        }
        if !self.confirmed {
            add(Some(self.hs_started + self.config.handshake_timeout));
        }
        if matches!(self.state, State::Established) {
            add(self.loss_time);
            add(self.probe_deadline());
            add(self.rto_deadline());
            add(self.acks.timer());
            add(self.pacing_at);
            add(Some(self.last_recv + self.config.idle_timeout));
            add(self.keepalive_deadline());
        }
        t
    }

    /// Run the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Closing { until } | State::Draining { until } => {
                if now >= until {
                    self.state = State::Closed;
                    self.emit_closed();
                } else if self.close_resend_at.is_some_and(|t| t <= now) {
                    // Repeat the CLOSE once per RTO while closing.
                    self.close_resend_at = None;
                    if self.close_sends_left > 0 {
                        self.close_sends_left -= 1;
                        self.close_frame_pending = true;
                    }
                }
                return;
            }
            State::Handshake | State::Established => {}
        }
        if !self.confirmed && now >= self.hs_started + self.config.handshake_timeout {
            self.close_now(CloseReason::HandshakeTimeout);
            return;
        }
        if matches!(self.state, State::Established)
            && now >= self.last_recv + self.config.idle_timeout
        {
            self.close_now(CloseReason::IdleTimeout);
            return;
        }
        if self.hs.retransmit_at.is_some_and(|t| t <= now) {
            self.hs.on_timeout();
        }
        if !matches!(self.state, State::Established) {
            return;
        }
        if self.loss_time.is_some_and(|t| t <= now) {
            self.detect_lost(now);
        } else if self.probe_deadline().is_some_and(|t| t <= now) {
            self.on_probe_timeout();
        } else if self.rto_deadline().is_some_and(|t| t <= now) {
            self.on_rto(now);
        }
        self.acks.on_timeout(now);
        if self.pacing_at.is_some_and(|t| t <= now) {
            self.pacing_at = None;
        }
        if self.keepalive_deadline().is_some_and(|t| t <= now) {
            self.ping_pending = true;
        }
        self.maybe_start_close(now);
    }

    /// The tail of the flight went unacknowledged for the probe timeout: send
    /// [`PROBE_PACKETS`] packets beyond the window, each asking for an
    /// immediate ACK — new data if there is any, else the stream data of the
    /// newest packets again, else a PING — so that their acknowledgement lets
    /// packet- or time-threshold detection find the loss instead of the RTO.
    /// Two probes, because one and its ACK are both lost often enough under
    /// heavy loss to leave the RTO as the only way out. Nothing is declared
    /// lost and the window is unchanged here; a loss the probes reveal is a
    /// normal congestion event.
    fn on_probe_timeout(&mut self) {
        self.tlp_sent = true;
        self.probes_left = PROBE_PACKETS;
        self.stats.tlp_count += 1;
        if self.send_buf.has_sendable(self.peer_max_data) {
            return;
        }
        for (off, len) in self.sent.newest_streams(usize::from(PROBE_PACKETS)) {
            self.send_buf.lost(off, u64::from(len));
        }
        if !self.send_buf.has_sendable(self.peer_max_data) {
            self.ping_pending = true;
        }
    }

    fn on_rto(&mut self, now: Instant) {
        self.rto_backoff = self.rto_backoff.saturating_add(1);
        self.stats.rto_count += 1;
        self.cc.on_rto(now);
        let lost: Vec<SentPacket> = self.sent.drain_all().map(|(_, p)| p).collect();
        for p in lost {
            self.on_packet_lost(p);
        }
        self.loss_time = None;
        if !self.send_buf.has_sendable(self.peer_max_data) {
            self.ping_pending = true;
        }
    }

    // ------------------------------------------------------------------
    // Receive path
    // ------------------------------------------------------------------

    /// Process one received datagram. Rejections are counted and returned;
    /// a rejected datagram never changes the connection's state. `trust` is
    /// handed to the handshake (the responder checks message 3 against it).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        trust: &mut dyn TrustStore,
    ) -> Result<(), DropReason> {
        let r = self.process(now, datagram, trust);
        if let Err(e) = r {
            self.stats.rejected.count(e);
        }
        r
    }

    fn process(
        &mut self,
        now: Instant,
        datagram: &[u8],
        trust: &mut dyn TrustStore,
    ) -> Result<(), DropReason> {
        if matches!(self.state, State::Closed) {
            return Err(DropReason::Closed);
        }
        let p = Packet::new_checked(datagram)?;
        let h = Header::parse(&p)?;
        if h.session_id != self.session_id {
            return Err(DropReason::UnknownSession);
        }
        if h.typ == PacketType::HsReject {
            self.on_reject(p.payload())
        } else if h.typ.is_handshake() {
            self.on_handshake(now, h.typ, p.payload(), trust)
        } else {
            self.on_data(now, &h, p.header_bytes(), p.payload())
        }
    }

    fn on_handshake(
        &mut self,
        now: Instant,
        typ: PacketType,
        msg: &[u8],
        trust: &mut dyn TrustStore,
    ) -> Result<(), DropReason> {
        if matches!(self.state, State::Closing { .. } | State::Draining { .. }) {
            return Err(DropReason::Closed);
        }
        if self.role == Role::Responder && self.tx_key.is_some() {
            // Our confirmation was lost: the initiator re-sent message 3.
            if typ == PacketType::HsFinish {
                self.ping_pending = true;
            }
            return Err(DropReason::UnexpectedHandshake);
        }
        match self.hs.on_message(now, typ, msg, trust) {
            Ok(HsOutcome::Progress) => {}
            Ok(HsOutcome::Finished(keys)) => self.install_keys(now, &keys),
            Err(HandshakeReject::Drop(r)) => return Err(r),
            Err(HandshakeReject::Fatal(e)) => {
                self.close_now(CloseReason::HandshakeFailed(e));
                return Err(DropReason::HandshakeFailed);
            }
        }
        if let Some(sample) = self.hs.rtt_sample.take() {
            if !self.rtt.has_sample() {
                self.rtt.update(sample, Duration::ZERO);
            }
        }
        Ok(())
    }

    /// An HS_REJECT is honoured only by an initiator whose handshake the
    /// responder has not confirmed yet (the endpoint checked the source).
    fn on_reject(&mut self, payload: &[u8]) -> Result<(), DropReason> {
        if self.role != Role::Initiator
            || self.confirmed
            || !matches!(self.state, State::Handshake | State::Established)
        {
            return Err(DropReason::UnexpectedHandshake);
        }
        let code = RejectCode::from_payload(payload).ok_or(DropReason::Malformed)?;
        self.close_now(CloseReason::Rejected(code));
        Ok(())
    }

    fn install_keys(&mut self, now: Instant, keys: &super::handshake::SessionKeys) {
        let (tx, rx) = match self.role {
            Role::Initiator => (&keys.initiator_to_responder, &keys.responder_to_initiator),
            Role::Responder => (&keys.responder_to_initiator, &keys.initiator_to_responder),
        };
        self.tx_key = Some(PacketKey::new(tx));
        self.rx_key = Some(PacketKey::new(rx));
        self.handshake_hash = Some(keys.handshake_hash);
        self.state = State::Established;
        self.last_recv = now;
        self.last_activity_sent = now;
        if self.assembler.limit() > self.max_data_sent {
            self.max_data_pending = true;
        }
        if self.role == Role::Responder {
            // Message 3 proved the initiator; confirm to it with an
            // authenticated packet so it stops re-sending message 3.
            self.confirmed = true;
            self.ping_pending = true;
            self.push_event(Event::Connected {
                session_id: self.session_id,
            });
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        h: &Header,
        header: &[u8],
        payload: &[u8],
    ) -> Result<(), DropReason> {
        if matches!(self.state, State::Draining { .. }) {
            return Err(DropReason::Closed);
        }
        let rx = self.rx_key.as_ref().ok_or(DropReason::NoKeys)?;
        self.replay.check(h.pn)?;
        let mut scratch = [0u8; MAX_PAYLOAD_LEN];
        let plain = rx.open(h.pn, header, payload, &mut scratch)?;
        let eliciting = self.validate_frames(h, plain)?;

        // Authenticated and well formed: from here on the packet counts.
        self.replay.mark(h.pn);
        self.stats.packets_received += 1;
        self.last_recv = now;
        if self.role == Role::Initiator && !self.confirmed {
            self.confirmed = true;
            self.hs.confirm();
            self.push_event(Event::Connected {
                session_id: self.session_id,
            });
        }
        if let State::Closing { .. } = self.state {
            // Only a CLOSE matters now; answer anything else with our CLOSE.
            for f in FrameIter::new(plain).flatten() {
                if let Frame::Close { .. } = f {
                    self.state = State::Draining {
                        until: now + self.rto() * 3,
                    };
                    return Ok(());
                }
            }
            if self.close_sends_left > 0 {
                self.close_sends_left -= 1;
                self.close_frame_pending = true;
            }
            return Ok(());
        }
        self.on_packet_received(now, h.pn, eliciting);

        let mut ack_frame = None;
        for f in FrameIter::new(plain).flatten() {
            if let Frame::Ack { delay, ranges } = f {
                ack_frame = Some((delay, ranges));
            }
        }
        if h.flags & FLAG_ACK != 0 || ack_frame.is_some() {
            self.on_ack_received(now, h, ack_frame);
        }
        let mut peer_close = None;
        for f in FrameIter::new(plain).flatten() {
            match f {
                Frame::Stream { offset, data } => {
                    // Checked in validate_frames, so this cannot fail.
                    if let Ok(true) = self.assembler.insert(offset, data) {
                        if !self.readable_armed {
                            self.readable_armed = true;
                            self.push_event(Event::Readable);
                        }
                    }
                }
                Frame::MaxData(m) => {
                    self.peer_max_data = self.peer_max_data.max(m);
                }
                Frame::Close { code, .. } => peer_close = Some(code),
                Frame::ImmediateAck => self.acks.request_immediate(),
                Frame::Ping | Frame::Ack { .. } => {}
            }
        }
        if let Some(code) = peer_close {
            if self.closed_reason.is_none() {
                self.closed_reason = Some(CloseReason::Peer { code });
            }
            self.state = State::Draining {
                until: now + self.rto() * 3,
            };
            self.emit_closed();
            return Ok(());
        }
        self.maybe_start_close(now);
        Ok(())
    }

    /// Check every frame before acting on any; returns whether the packet is ack-eliciting.
    fn validate_frames(&self, h: &Header, plain: &[u8]) -> Result<bool, DropReason> {
        if h.flags & FLAG_ACK != 0 && h.ack >= self.next_pn {
            return Err(DropReason::InvalidAck);
        }
        let mut eliciting = false;
        let mut streams = 0;
        let mut acks = 0;
        for f in FrameIter::new(plain) {
            let f = f?;
            eliciting |= f.is_ack_eliciting();
            match f {
                Frame::Ack { ranges, .. } => {
                    acks += 1;
                    if h.flags & FLAG_ACK == 0 {
                        return Err(DropReason::MalformedFrame);
                    }
                    if ranges.largest().is_some_and(|l| l >= self.next_pn) {
                        return Err(DropReason::InvalidAck);
                    }
                }
                Frame::Stream { offset, data } => {
                    streams += 1;
                    let end = offset.saturating_add(data.len() as u64);
                    if end > self.max_data_sent {
                        return Err(DropReason::FlowControl);
                    }
                    self.assembler.check(offset, data.len())?;
                }
                Frame::Ping | Frame::ImmediateAck | Frame::MaxData(_) | Frame::Close { .. } => {}
            }
        }
        if streams > 1 || acks > 1 {
            return Err(DropReason::MalformedFrame);
        }
        Ok(eliciting)
    }

    fn on_packet_received(&mut self, now: Instant, pn: u32, eliciting: bool) {
        let threshold = self.config.ack_eliciting_threshold;
        let max_delay = self.config.max_ack_delay;
        self.acks
            .on_packet(now, pn, eliciting, threshold, max_delay);
    }

    /// Apply the acknowledgement of every tracked packet in `lo..=hi` whose
    /// bit is set in `mask` (bit i = `hi - i`; `None`: all of them).
    fn ack_range(&mut self, now: Instant, lo: u32, hi: u32, mask: Option<u64>, acc: &mut AckAcc) {
        let mut pns = core::mem::take(&mut self.scratch_acked);
        pns.clear();
        pns.extend(
            self.sent
                .numbers_in(lo, hi)
                .filter(|pn| mask.is_none_or(|m| m >> (hi - pn) & 1 == 1)),
        );
        for &pn in pns.iter() {
            let Some(p) = self.sent.remove(pn) else {
                continue;
            };
            acc.any = true;
            if acc.newly_largest.is_none_or(|(l, _)| pn > l) {
                acc.newly_largest = Some((pn, p.time_sent));
            }
            self.cc.on_ack(
                now,
                p.time_sent,
                u64::from(p.size),
                self.app_limited,
                self.rtt.srtt(),
            );
            if let Some((off, len)) = p.stream {
                let freed = self.send_buf.ack(off, u64::from(len));
                if freed > 0 && self.writable_wanted {
                    self.writable_wanted = false;
                    self.push_event(Event::Writable);
                }
            }
            if let Some(l) = p.largest_ack {
                // The peer saw our acknowledgement up to `l`: stop repeating it.
                self.acks.on_ack_acked(l);
            }
        }
        self.scratch_acked = pns;
    }

    fn on_ack_received(
        &mut self,
        now: Instant,
        h: &Header,
        frame: Option<(u16, frame::AckRanges<'_>)>,
    ) {
        let mut acc = AckAcc::default();
        let mut largest: Option<u32> = None;
        if h.flags & FLAG_ACK != 0 {
            // `ack` and the 32 numbers below it, in one pass over what is in flight.
            largest = Some(h.ack);
            let mask = 1 | (u64::from(h.ack_bits) << 1);
            self.ack_range(now, h.ack.saturating_sub(32), h.ack, Some(mask), &mut acc);
        }
        if let Some((_, ranges)) = frame {
            for (hi, lo) in ranges.iter() {
                self.ack_range(now, lo, hi, None, &mut acc);
            }
            if let Some(l) = ranges.largest() {
                largest = Some(largest.map_or(l, |x| x.max(l)));
            }
        }
        let Some(largest) = largest else {
            return;
        };
        self.largest_acked = Some(self.largest_acked.map_or(largest, |x| x.max(largest)));
        if acc.any {
            self.rto_backoff = 0;
            self.tlp_sent = false;
            self.probes_left = 0;
            let mut sample = None;
            if let (Some((pn, sent)), Some((delay, _))) = (acc.newly_largest, frame) {
                if pn == largest {
                    let delay = Duration::from_micros(u64::from(delay) * ACK_DELAY_UNIT_US)
                        .min(self.config.max_ack_delay);
                    sample = Some(since(now, sent));
                    self.rtt.update(since(now, sent), delay);
                }
            }
            let largest_acked = self.largest_acked.unwrap_or(largest);
            self.cc.on_ack_end(now, largest_acked, sample);
        }
        self.detect_lost(now);
    }

    fn detect_lost(&mut self, now: Instant) {
        self.loss_time = None;
        let Some(largest) = self.largest_acked else {
            return;
        };
        let loss_delay = self.rtt.loss_delay();
        let mut lost = core::mem::take(&mut self.scratch_pns);
        lost.clear();
        for (pn, p) in self.sent.below(largest) {
            if is_lost(pn, p.time_sent, largest, now, loss_delay) {
                lost.push(pn);
            } else {
                let t = p.time_sent + loss_delay;
                self.loss_time = Some(self.loss_time.map_or(t, |x| x.min(t)));
            }
        }
        let mut newest_lost: Option<Instant> = None;
        let mut lost_bytes = 0u64;
        for pn in lost.iter() {
            if let Some(p) = self.sent.remove(*pn) {
                newest_lost = Some(newest_lost.map_or(p.time_sent, |t| t.max(p.time_sent)));
                lost_bytes += u64::from(p.size);
                self.on_packet_lost(p);
            }
        }
        self.scratch_pns = lost;
        if let Some(sent) = newest_lost {
            let before = self.cc.window();
            self.cc.on_congestion_event(now, sent, lost_bytes);
            if self.cc.window() < before {
                self.stats.congestion_events += 1;
            }
        }
    }

    fn on_packet_lost(&mut self, p: SentPacket) {
        self.stats.packets_lost += 1;
        if let Some((off, len)) = p.stream {
            self.send_buf.lost(off, u64::from(len));
        }
        if p.max_data {
            self.max_data_pending = true;
        }
    }

    // ------------------------------------------------------------------
    // Send path
    // ------------------------------------------------------------------

    /// Write the next datagram into `buf` (at most [`MAX_DATAGRAM`] bytes are
    /// used) and return its length, or `None` when nothing is to be sent now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let limit = buf.len().min(MAX_DATAGRAM);
        let buf = buf.get_mut(..limit)?;
        if matches!(self.state, State::Closed | State::Draining { .. }) {
            return None;
        }
        if self.hs.send_pending {
            if let Some(n) = self.emit_handshake(now, buf) {
                return Some(n);
            }
        }
        // Nothing but handshake messages before the keys exist.
        self.tx_key.as_ref()?;
        self.maybe_start_close(now);
        if self.state == State::Established
            && self.next_pn >= PN_CLOSE_THRESHOLD
            && self.closed_reason.is_none()
        {
            self.begin_closing(now, CloseReason::PacketNumbersExhausted, CLOSE_PN_EXHAUSTED);
            self.emit_closed();
        }
        self.emit_data(now, buf)
    }

    fn emit_handshake(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let (typ, msg) = self.hs.outgoing()?;
        let n = HEADER_LEN + msg.len();
        let h = Header {
            typ,
            flags: 0,
            session_id: self.session_id,
            pn: 0,
            ack: 0,
            ack_bits: 0,
            len: u16::try_from(msg.len()).ok()?,
        };
        let out = buf.get_mut(..n)?;
        let (hdr, body) = out.split_at_mut(HEADER_LEN);
        if !h.emit(hdr) {
            return None;
        }
        body.copy_from_slice(msg);
        let rto = self.rto();
        if self.hs.on_sent(now, rto, self.config.max_rto) {
            self.stats.handshake_retransmits += 1;
        }
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += n as u64;
        Some(n)
    }

    fn emit_data(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.next_pn == u32::MAX {
            return None; // never reuse a nonce
        }
        let closing = matches!(self.state, State::Closing { .. });
        let wants_close = closing && self.close_frame_pending;
        let has_data = !closing && self.send_buf.has_sendable(self.peer_max_data);
        let eliciting_wanted = !closing && (self.ping_pending || self.max_data_pending || has_data);
        let window = self.cc.window();
        let in_flight = self.sent.bytes_in_flight();
        let cwnd_room = in_flight + MAX_DATAGRAM as u64 <= window;
        let probe = self.probes_left > 0 && eliciting_wanted;
        let mut may_elicit =
            eliciting_wanted && (cwnd_room || probe) && self.sent.len() < MAX_SENT_PACKETS;
        if eliciting_wanted && !cwnd_room {
            self.app_limited = false;
        }
        if !eliciting_wanted && cwnd_room && !closing {
            self.app_limited = true;
        }
        if may_elicit && self.config.pacing {
            let slow_start = self.cc.in_slow_start();
            match self.pacer.delay(
                self.rtt.srtt(),
                MAX_DATAGRAM as u64,
                window,
                slow_start,
                now,
            ) {
                Some(t) => {
                    self.pacing_at = Some(t);
                    self.app_limited = false;
                    may_elicit = false;
                }
                None => self.pacing_at = None,
            }
        }
        let ack_due = self.acks.is_due(now);
        if !may_elicit && !ack_due && !wants_close {
            return None;
        }

        let (hdr_buf, rest) = buf.split_at_mut(HEADER_LEN);
        let max_plain = rest.len().saturating_sub(TAG_LEN);
        let plain_area = rest.get_mut(..max_plain)?;
        let mut w = FrameWriter::new(plain_area);
        let mut sp = SentPacket {
            time_sent: now,
            size: 0,
            stream: None,
            max_data: false,
            largest_ack: None,
        };
        let mut eliciting = false;
        let mut has_ack_frame = false;
        let mut has_close = false;
        let mut retransmit = false;

        if wants_close && w.close(self.close_code, self.close_label) {
            has_close = true;
        }
        if self.acks.pending() || wants_close {
            if let Some((largest, t)) = self.acks.largest() {
                let delay_units = since(now, t).total_micros() / ACK_DELAY_UNIT_US;
                let delay = u16::try_from(delay_units).unwrap_or(u16::MAX);
                if w.ack(delay, self.acks.ranges()) {
                    has_ack_frame = true;
                    sp.largest_ack = Some(largest);
                }
            }
        }
        if may_elicit {
            if self.ping_pending && w.ping() {
                self.ping_pending = false;
                eliciting = true;
            }
            if self.max_data_pending && w.max_data(self.assembler.limit()) {
                self.max_data_pending = false;
                self.max_data_sent = self.assembler.limit();
                sp.max_data = true;
                eliciting = true;
            }
            // A tail-loss probe asks for an immediate ACK (its answer is what
            // lets loss detection find the lost tail).
            let ask_now = probe;
            if has_data {
                let reserve = usize::from(ask_now);
                let room = w
                    .remaining()
                    .saturating_sub(frame::STREAM_OVERHEAD + reserve);
                if let Some(chunk) = self.send_buf.next_chunk(room, self.peer_max_data) {
                    let send_buf = &self.send_buf;
                    if w.stream_with(chunk.offset, chunk.len, |dst| {
                        send_buf.copy(chunk.offset, dst)
                    }) {
                        sp.stream = Some((chunk.offset, chunk.len as u16));
                        eliciting = true;
                        retransmit = chunk.retransmit;
                        if chunk.retransmit {
                            self.stats.stream_bytes_retransmitted += chunk.len as u64;
                        } else {
                            self.stats.stream_bytes_sent += chunk.len as u64;
                        }
                    } else {
                        // Could not place it: give it back for a later packet.
                        self.send_buf.lost(chunk.offset, chunk.len as u64);
                    }
                }
            }
            if eliciting && ask_now && w.immediate_ack() {
                self.stats.immediate_acks_requested += 1;
            }
        }
        if !eliciting && !has_ack_frame && !has_close {
            return None;
        }

        let plain_len = w.len();
        let ct_len = plain_len + TAG_LEN;
        let (flags, ack, ack_bits) = match self.acks.largest() {
            Some((l, _)) => (FLAG_ACK, l, self.acks.bits(l)),
            None => (0, 0, 0),
        };
        let h = Header {
            typ: PacketType::Data,
            flags,
            session_id: self.session_id,
            pn: self.next_pn,
            ack,
            ack_bits,
            len: u16::try_from(ct_len).ok()?,
        };
        if !h.emit(hdr_buf) {
            return None;
        }
        let key = self.tx_key.as_ref()?;
        key.seal(h.pn, hdr_buf, rest, plain_len)?;
        let total = HEADER_LEN + ct_len;

        let pn = self.next_pn;
        self.next_pn += 1;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += total as u64;
        if has_ack_frame {
            self.acks.on_ack_sent();
        }
        if has_close {
            self.close_frame_pending = false;
            self.close_resend_at = Some(now + self.rto());
        }
        if eliciting {
            sp.size = total as u16;
            self.sent.insert(pn, sp);
            self.cc.on_sent(now, pn, total as u64);
            self.last_eliciting_sent = Some(now);
            self.last_activity_sent = now;
            self.probes_left = self.probes_left.saturating_sub(1);
            self.pacer.on_transmit(total as u64);
            if retransmit {
                self.stats.packets_retransmitted += 1;
            }
        } else if !has_close {
            self.stats.acks_sent += 1;
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    //! In-crate tests with a stand-in handshake (no cryptography in the
    //! handshake; the packet protection is real).

    use super::*;
    use crate::udpsec::handshake::SessionKeys;
    use alloc::vec;
    use dsb_noise::NoTrust;
    use proptest::prelude::*;

    /// Three fixed messages, fixed keys. Not a real handshake.
    struct Fake {
        initiator: bool,
        step: u8,
    }

    impl Handshake for Fake {
        fn write_message(&mut self, out: &mut [u8]) -> Result<usize, HsError> {
            let b = out.get_mut(..8).ok_or(HsError::TOO_LARGE)?;
            b.fill(self.step + 1);
            self.step += 1;
            Ok(8)
        }
        fn read_message(
            &mut self,
            _now: Instant,
            msg: &[u8],
            _trust: &mut dyn TrustStore,
        ) -> Result<(), HsError> {
            if msg != [self.step + 1; 8] {
                return Err(HsError::new("fake-mismatch"));
            }
            self.step += 1;
            Ok(())
        }
        fn is_finished(&self) -> bool {
            self.step >= 3
        }
        fn is_my_turn(&self) -> bool {
            self.step.is_multiple_of(2) == self.initiator
        }
        fn take_keys(&mut self) -> Result<SessionKeys, HsError> {
            Ok(SessionKeys {
                initiator_to_responder: [1; 32],
                responder_to_initiator: [2; 32],
                handshake_hash: [3; 32],
            })
        }
    }

    fn t(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    fn pair() -> (Connection<Fake>, Connection<Fake>) {
        let cfg = Config::default();
        let a = Connection::connect(
            cfg.clone(),
            9,
            Fake {
                initiator: true,
                step: 0,
            },
            t(0),
        )
        .unwrap();
        let b = Connection::accept(
            cfg,
            9,
            Fake {
                initiator: false,
                step: 0,
            },
            t(0),
        );
        (a, b)
    }

    /// Exchange datagrams (zero delay) until quiet; returns the largest seen.
    fn pump(a: &mut Connection<Fake>, b: &mut Connection<Fake>, now: Instant) -> usize {
        let mut buf = vec![0u8; 2048];
        let mut largest = 0;
        loop {
            let mut any = false;
            while let Some(n) = a.poll_transmit(now, &mut buf) {
                largest = largest.max(n);
                let _ = b.handle_datagram(now, &buf[..n], &mut NoTrust);
                any = true;
            }
            while let Some(n) = b.poll_transmit(now, &mut buf) {
                largest = largest.max(n);
                let _ = a.handle_datagram(now, &buf[..n], &mut NoTrust);
                any = true;
            }
            if !any {
                return largest;
            }
        }
    }

    #[test]
    fn handshake_then_data_in_memory() {
        let (mut a, mut b) = pair();
        pump(&mut a, &mut b, t(0));
        assert!(a.is_established() && b.is_established());
        assert_eq!(a.write(b"hello"), 5);
        pump(&mut a, &mut b, t(1));
        let mut out = [0u8; 16];
        assert_eq!(b.read(&mut out), 5);
        assert_eq!(&out[..5], b"hello");
        assert_eq!(a.handshake_hash(), Some([3; 32]));
    }

    #[test]
    fn closes_before_packet_numbers_wrap() {
        let (mut a, mut b) = pair();
        pump(&mut a, &mut b, t(0));
        a.next_pn = PN_CLOSE_THRESHOLD - 2;
        let mut now = t(1);
        for _ in 0..10 {
            a.write(&[7u8; 3000]);
            pump(&mut a, &mut b, now);
            let mut out = [0u8; 4096];
            while b.read(&mut out) > 0 {}
            now += Duration::from_millis(5);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
        assert_eq!(a.close_reason(), Some(CloseReason::PacketNumbersExhausted));
        assert_eq!(
            b.close_reason(),
            Some(CloseReason::Peer {
                code: CLOSE_PN_EXHAUSTED
            })
        );
        assert!(a.next_pn < u32::MAX);
    }

    #[test]
    fn retransmitted_handshake_message_is_the_stored_one() {
        let (mut a, _b) = pair();
        let mut buf = vec![0u8; 2048];
        let n1 = a.poll_transmit(t(0), &mut buf).unwrap();
        let first = buf[..n1].to_vec();
        assert!(a.poll_transmit(t(0), &mut buf).is_none());
        let deadline = a.poll_timeout().unwrap();
        a.handle_timeout(deadline);
        let n2 = a.poll_transmit(deadline, &mut buf).unwrap();
        assert_eq!(&buf[..n2], &first[..]);
        assert_eq!(a.stats().handshake_retransmits, 1);
        // backoff: the next re-send waits twice as long
        let next = a.poll_timeout().unwrap();
        assert_eq!(next - deadline, (deadline - t(0)) * 2);
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic_and_are_counted(
            data in proptest::collection::vec(any::<u8>(), 0..1300),
        ) {
            let (mut a, mut b) = pair();
            pump(&mut a, &mut b, t(0));
            let before = b.stats().rejected.total();
            let r = b.handle_datagram(t(1), &data, &mut NoTrust);
            prop_assert!(r.is_err());
            prop_assert_eq!(b.stats().rejected.total(), before + 1);
            prop_assert!(b.is_established());
        }

        #[test]
        fn header_and_frame_parsers_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..1300),
        ) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = Header::parse(&p);
            }
            for f in FrameIter::new(&data) {
                let _ = f;
            }
        }
    }
}
