//! Endpoint: many connections behind one UDP socket, demultiplexed by
//! session id, with bounded half-open handshakes.
//!
//! A datagram for a known session goes to its connection. Only a handshake
//! message 1 (`HsInit`) may create a connection, and only after cheap checks
//! that cost no cryptography: header validation, the half-open cap, the
//! connection cap, a global token bucket and a per-source token bucket
//! (bounded table, least-recently-seen eviction). Only then is the
//! handshake's first DH computed. No stateless cookie: message 2 is not
//! larger than message 1 (no amplification), and the rate limits bound the
//! DH work an off-path flood can cause; a cookie round trip would add an RTT
//! to every connection for little gain at our scale.
//!
//! Responder connections that fail before `Connected` are removed silently;
//! established or locally initiated connections stay until
//! [`remove`](Endpoint::remove) (their stream may still be readable).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use dsb_noise::TrustStore;
use smoltcp::time::{Duration, Instant};

use super::config::Config;
use super::connection::{CloseReason, Connection, Event};
use super::handshake::{Handshake, HsError};
use super::packet::{Header, Packet, PacketType, HEADER_LEN};
use super::reject::{RejectCode, REJECT_PAYLOAD_LEN};
use super::stats::{DropReason, RejectCounters};
use super::MAX_DATAGRAM;

/// Most HS_REJECT packets queued at once (more are not sent, only counted).
pub const MAX_PENDING_REJECTS: usize = 16;
/// HS_REJECT budget: a burst of this many...
pub const REJECT_BURST: u32 = 16;
/// ...then one more per this interval.
pub const REJECT_INTERVAL: Duration = Duration::from_millis(10);

/// Endpoint limits.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Most connections of any kind.
    pub max_connections: usize,
    /// Most responder connections still in their handshake.
    pub max_half_open: usize,
    /// Handshake initiations one source may make in a burst.
    pub per_source_burst: u32,
    /// One more initiation per source per this interval.
    pub per_source_interval: Duration,
    /// Handshake initiations accepted in a burst from all sources.
    pub global_burst: u32,
    /// One more initiation overall per this interval.
    pub global_interval: Duration,
    /// Sources tracked by the per-source limiter.
    pub rate_table_size: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            max_connections: 64,
            max_half_open: 16,
            per_source_burst: 4,
            per_source_interval: Duration::from_millis(250),
            global_burst: 32,
            global_interval: Duration::from_millis(10),
            rate_table_size: 64,
        }
    }
}

/// Why [`Endpoint::connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointError {
    /// A connection with this session id exists.
    SessionIdInUse,
    /// The connection table is full.
    Full,
    /// The handshake could not write message 1.
    Handshake(HsError),
}

impl EndpointError {
    /// Stable label.
    pub fn label(&self) -> &'static str {
        match self {
            EndpointError::SessionIdInUse => "session-id-in-use",
            EndpointError::Full => "endpoint-full",
            EndpointError::Handshake(e) => e.label(),
        }
    }
}

/// Endpoint-level counters (per-connection ones live in each connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Responder connections created.
    pub accepted: u64,
    /// Responder connections removed because their handshake failed or timed out.
    pub half_open_reaped: u64,
    /// Datagrams dropped before reaching a connection.
    pub rejected: RejectCounters,
    /// HS_REJECT packets sent (refused handshakes).
    pub rejects_sent: u64,
    /// Refusals not answered with an HS_REJECT (queue full or over budget).
    pub rejects_suppressed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    last: Instant,
}

impl Bucket {
    fn new(burst: u32, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn take(&mut self, now: Instant, burst: u32, interval: Duration) -> bool {
        let iv = interval.total_micros().max(1);
        let elapsed = super::since(now, self.last).total_micros();
        let add = elapsed / iv;
        if add > 0 {
            self.tokens = u32::try_from(u64::from(self.tokens).saturating_add(add))
                .unwrap_or(u32::MAX)
                .min(burst);
            self.last += Duration::from_micros(add.saturating_mul(iv));
        }
        if self.tokens >= burst {
            self.last = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

struct Slot<H: Handshake, A> {
    conn: Connection<H>,
    remote: A,
    local: bool,
    surfaced: bool,
}

/// Connections behind one socket; `A` is the peer address type.
pub struct Endpoint<H: Handshake, A: Copy + Eq> {
    config: EndpointConfig,
    conn_config: Config,
    conns: BTreeMap<u64, Slot<H, A>>,
    sources: Vec<(A, Bucket, Instant)>,
    global: Option<Bucket>,
    /// Refused handshakes to answer: (initiator address, session id, why).
    rejects: VecDeque<(A, u64, RejectCode)>,
    reject_budget: Option<Bucket>,
    cursor: u64,
    stats: EndpointStats,
}

impl<H: Handshake, A: Copy + Eq> Endpoint<H, A> {
    /// An endpoint creating connections with `conn_config`.
    pub fn new(config: EndpointConfig, conn_config: Config) -> Self {
        Endpoint {
            config,
            conn_config,
            conns: BTreeMap::new(),
            sources: Vec::new(),
            global: None,
            rejects: VecDeque::new(),
            reject_budget: None,
            cursor: 0,
            stats: EndpointStats::default(),
        }
    }

    /// Start a connection to `remote` as initiator.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: A,
        session_id: u64,
        hs: H,
    ) -> Result<(), EndpointError> {
        if self.conns.contains_key(&session_id) {
            return Err(EndpointError::SessionIdInUse);
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(EndpointError::Full);
        }
        let conn = Connection::connect(self.conn_config.clone(), session_id, hs, now)
            .map_err(EndpointError::Handshake)?;
        self.conns.insert(
            session_id,
            Slot {
                conn,
                remote,
                local: true,
                surfaced: true,
            },
        );
        Ok(())
    }

    fn half_open(&self) -> usize {
        self.conns
            .values()
            .filter(|s| !s.local && s.conn.is_handshaking())
            .count()
    }

    fn source_allows(&mut self, now: Instant, remote: A) -> bool {
        let (burst, iv) = (
            self.config.per_source_burst,
            self.config.per_source_interval,
        );
        if let Some(e) = self.sources.iter_mut().find(|e| e.0 == remote) {
            e.2 = now;
            return e.1.take(now, burst, iv);
        }
        if self.config.rate_table_size == 0 {
            return false;
        }
        if self.sources.len() >= self.config.rate_table_size {
            // Evict the source seen least recently.
            if let Some(i) = self
                .sources
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map(|(i, _)| i)
            {
                self.sources.swap_remove(i);
            }
        }
        let mut b = Bucket::new(burst, now);
        let ok = b.take(now, burst, iv);
        self.sources.push((remote, b, now));
        ok
    }

    fn global_allows(&mut self, now: Instant) -> bool {
        let (burst, iv) = (self.config.global_burst, self.config.global_interval);
        self.global
            .get_or_insert_with(|| Bucket::new(burst, now))
            .take(now, burst, iv)
    }

    fn reject(&mut self, r: DropReason) -> Result<u64, DropReason> {
        self.stats.rejected.count(r);
        Err(r)
    }

    /// Queues an HS_REJECT for a refused handshake (bounded; beyond the
    /// queue or the budget the refusal is only counted).
    fn refuse(&mut self, now: Instant, remote: A, sid: u64, code: RejectCode) {
        let budget = self
            .reject_budget
            .get_or_insert_with(|| Bucket::new(REJECT_BURST, now))
            .take(now, REJECT_BURST, REJECT_INTERVAL);
        if !budget || self.rejects.len() >= MAX_PENDING_REJECTS {
            self.stats.rejects_suppressed += 1;
            return;
        }
        self.rejects.push_back((remote, sid, code));
    }

    /// The HS_REJECT code for a responder connection whose handshake failed.
    fn refusal_code(conn: &Connection<H>) -> RejectCode {
        match conn.close_reason() {
            Some(CloseReason::HandshakeFailed(e)) => RejectCode::for_error(e),
            Some(CloseReason::HandshakeTimeout) => RejectCode::HandshakeTimeout,
            _ => RejectCode::Other,
        }
    }

    /// Route one datagram from `remote`. `accept` supplies a responder
    /// handshake when a new session may be created (return `None` to refuse);
    /// `trust` is handed to the handshake (identity check of message 3).
    /// Returns the session id the datagram was accepted for.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: A,
        datagram: &[u8],
        trust: &mut dyn TrustStore,
        accept: impl FnOnce() -> Option<H>,
    ) -> Result<u64, DropReason> {
        if datagram.len() > MAX_DATAGRAM {
            return self.reject(DropReason::Oversized);
        }
        let Some(sid) = Header::peek_session_id(datagram) else {
            return self.reject(DropReason::Truncated);
        };
        if let Some(slot) = self.conns.get_mut(&sid) {
            if Header::peek_type(datagram) == Some(PacketType::HsReject) && slot.remote != remote {
                // Unauthenticated: only from the address we are talking to.
                return self.reject(DropReason::UnexpectedHandshake);
            }
            let r = slot.conn.handle_datagram(now, datagram, trust);
            if r == Err(DropReason::HandshakeFailed) && !slot.local {
                let code = Self::refusal_code(&slot.conn);
                self.refuse(now, remote, sid, code);
            }
            return r.map(|_| sid);
        }
        let p = match Packet::new_checked(datagram) {
            Ok(p) => p,
            Err(e) => return self.reject(e),
        };
        match Header::parse(&p) {
            Ok(h) if h.typ == PacketType::HsInit => {}
            Ok(_) => return self.reject(DropReason::UnknownSession),
            Err(e) => return self.reject(e),
        }
        self.reap();
        // Transient overload: dropped quietly, the initiator's re-send retries.
        if self.half_open() >= self.config.max_half_open {
            return self.reject(DropReason::HalfOpenFull);
        }
        if !self.source_allows(now, remote) || !self.global_allows(now) {
            return self.reject(DropReason::RateLimited);
        }
        // A refusal: answered, so the initiator need not wait out its timer.
        if self.conns.len() >= self.config.max_connections {
            self.refuse(now, remote, sid, RejectCode::NotAccepting);
            return self.reject(DropReason::EndpointFull);
        }
        let Some(hs) = accept() else {
            self.refuse(now, remote, sid, RejectCode::NotAccepting);
            return self.reject(DropReason::EndpointFull);
        };
        let mut conn = Connection::accept(self.conn_config.clone(), sid, hs, now);
        match conn.handle_datagram(now, datagram, trust) {
            Ok(()) => {
                self.stats.accepted += 1;
                self.conns.insert(
                    sid,
                    Slot {
                        conn,
                        remote,
                        local: false,
                        surfaced: false,
                    },
                );
                Ok(sid)
            }
            Err(e) => {
                if e == DropReason::HandshakeFailed {
                    let code = Self::refusal_code(&conn);
                    self.refuse(now, remote, sid, code);
                }
                self.reject(e)
            }
        }
    }

    /// Next datagram to send and where to: queued HS_REJECTs first, then the
    /// connections round-robin.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(A, usize)> {
        if let Some(&(remote, sid, code)) = self.rejects.front() {
            if let Some(n) = emit_reject(sid, code, buf) {
                self.rejects.pop_front();
                self.stats.rejects_sent += 1;
                return Some((remote, n));
            }
        }
        let start = self.cursor;
        let ids: Vec<u64> = self
            .conns
            .range(start.saturating_add(1)..)
            .chain(self.conns.range(..=start))
            .map(|(k, _)| *k)
            .collect();
        for id in ids {
            if let Some(slot) = self.conns.get_mut(&id) {
                if let Some(n) = slot.conn.poll_transmit(now, buf) {
                    self.cursor = id;
                    return Some((slot.remote, n));
                }
            }
        }
        None
    }

    /// Earliest deadline over all connections. (HS_REJECTs are queued by
    /// `handle_datagram`; like every answer, they are pulled with
    /// `poll_transmit` after the input.)
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|s| s.conn.poll_timeout())
            .min()
    }

    /// Run due timers of every connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in self.conns.values_mut() {
            if slot.conn.poll_timeout().is_some_and(|t| t <= now) {
                slot.conn.handle_timeout(now);
            }
        }
        self.reap();
    }

    /// Next `(session id, event)`. Responder connections surface with `Connected`.
    pub fn poll_event(&mut self) -> Option<(u64, Event)> {
        for (id, slot) in self.conns.iter_mut() {
            while let Some(e) = slot.conn.poll_event() {
                if !slot.surfaced {
                    match e {
                        Event::Connected { .. } => slot.surfaced = true,
                        // Not yet visible to the application.
                        _ => continue,
                    }
                }
                return Some((*id, e));
            }
        }
        None
    }

    fn reap(&mut self) {
        let before = self.conns.len();
        self.conns
            .retain(|_, s| s.surfaced || s.local || !s.conn.is_closed());
        self.stats.half_open_reaped += (before - self.conns.len()) as u64;
    }

    /// The connection for `session_id`.
    pub fn connection(&self, session_id: u64) -> Option<&Connection<H>> {
        self.conns.get(&session_id).map(|s| &s.conn)
    }

    /// The connection for `session_id`, mutably (stream API).
    pub fn connection_mut(&mut self, session_id: u64) -> Option<&mut Connection<H>> {
        self.conns.get_mut(&session_id).map(|s| &mut s.conn)
    }

    /// Peer address of `session_id`.
    pub fn remote(&self, session_id: u64) -> Option<A> {
        self.conns.get(&session_id).map(|s| s.remote)
    }

    /// Forget a connection (after it closed and its stream was read).
    pub fn remove(&mut self, session_id: u64) -> Option<Connection<H>> {
        self.conns.remove(&session_id).map(|s| s.conn)
    }

    /// Session ids of all connections.
    pub fn sessions(&self) -> impl Iterator<Item = u64> + '_ {
        self.conns.keys().copied()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when there are no connections.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Endpoint counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }
}

/// Writes an HS_REJECT for `session_id` into `buf`; returns its length.
fn emit_reject(session_id: u64, code: RejectCode, buf: &mut [u8]) -> Option<usize> {
    let n = HEADER_LEN + REJECT_PAYLOAD_LEN;
    let out = buf.get_mut(..n)?;
    let (hdr, body) = out.split_at_mut(HEADER_LEN);
    let h = Header {
        typ: PacketType::HsReject,
        flags: 0,
        session_id,
        pn: 0,
        ack: 0,
        ack_bits: 0,
        len: REJECT_PAYLOAD_LEN as u16,
    };
    if !h.emit(hdr) {
        return None;
    }
    body.copy_from_slice(&code.to_payload());
    Some(n)
}
