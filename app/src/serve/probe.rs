//! The serving node's health check of one peer, over the peer's `ping`
//! byte echo: an 8-byte nonce for the round-trip time, then (if asked)
//! `bulk` bytes of a generated sequence echoed back and compared by BLAKE2s
//! hash. Nothing is buffered beyond one chunk: both directions are hashed
//! as they stream, so any size costs the same memory.

use crate::net::Network;
use blake2::{Blake2s256, Digest};
use dsb_noise::DeviceId;
use dsb_transports::mux::ChannelError;
use smoltcp::time::{Duration, Instant};

use crate::bus::api::PING;
use crate::bus::{ApiError, ChannelRef};
use crate::node::NodeOn;

/// The probe gives up after this long without progress.
pub const PROBE_IDLE: Duration = Duration::from_secs(10);
/// Bytes written or read per step.
const CHUNK: usize = 4096;

/// What a finished step of a probe reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The nonce came back after `rtt`.
    Rtt(Duration),
    /// `bytes` came back with the hash of what was sent, after `elapsed`.
    Echo { bytes: u64, elapsed: Duration },
    /// The probe ended without success.
    Failed(&'static str),
}

#[derive(Debug)]
enum Phase {
    Nonce {
        sent: usize,
        got: usize,
    },
    Bulk {
        sent: u64,
        got: u64,
        since: Instant,
    },
    /// FIN sent; waiting for the echo's FIN.
    Closing,
}

/// One peer's probe.
#[derive(Debug)]
pub struct Probe {
    pub peer: DeviceId,
    ch: Option<ChannelRef>,
    nonce: [u8; 8],
    started: Instant,
    last_progress: Instant,
    bulk: u64,
    phase: Phase,
    /// Generator state of the bulk sequence (sender side).
    gen: u32,
    tx: Blake2s256,
    rx: Blake2s256,
}

impl Probe {
    pub fn new(peer: DeviceId, now: Instant, bulk: u64) -> Probe {
        Probe {
            peer,
            ch: None,
            nonce: (now.total_micros() as u64).to_be_bytes(),
            started: now,
            last_progress: now,
            bulk,
            phase: Phase::Nonce { sent: 0, got: 0 },
            gen: 0x9e37_79b9 ^ now.total_micros() as u32 | 1,
            tx: Blake2s256::new(),
            rx: Blake2s256::new(),
        }
    }

    /// The channel, once opened.
    pub fn channel(&self) -> Option<ChannelRef> {
        self.ch
    }

    /// When it gives up if nothing moves.
    pub fn poll_at(&self) -> Instant {
        self.last_progress + PROBE_IDLE
    }

    /// Advances the probe; each result it reached (the round trip, then the
    /// echo) is pushed to `out`. True when the probe is over.
    pub fn step<N: Network>(
        &mut self,
        now: Instant,
        node: &mut NodeOn<N>,
        out: &mut impl FnMut(ProbeResult),
    ) -> bool {
        if now >= self.last_progress + PROBE_IDLE {
            out(ProbeResult::Failed("no echo in time"));
            return true;
        }
        let ch = match self.ch {
            Some(ch) => ch,
            None => match node.open(&self.peer, PING) {
                Ok(ch) => {
                    self.ch = Some(ch);
                    ch
                }
                // One `ping` channel per direction: wait for a free one.
                Err(ApiError::Channel(
                    ChannelError::TooManyChannels | ChannelError::DuplicateName,
                )) => return false,
                Err(_) => {
                    out(ProbeResult::Failed("ping open"));
                    return true;
                }
            },
        };
        match self.advance(now, node, ch, out) {
            Ok(done) => done,
            Err(what) => {
                let _ = node.reset(ch, 1);
                out(ProbeResult::Failed(what));
                true
            }
        }
    }

    fn advance<N: Network>(
        &mut self,
        now: Instant,
        node: &mut NodeOn<N>,
        ch: ChannelRef,
        out: &mut impl FnMut(ProbeResult),
    ) -> Result<bool, &'static str> {
        let mut buf = [0u8; CHUNK];
        if let Phase::Nonce { sent, got } = &mut self.phase {
            if *sent < self.nonce.len() {
                *sent += write(node, ch, self.nonce.get(*sent..).unwrap_or(&[]))?;
            }
            let want = self.nonce.len() - *got;
            let n = read(node, ch, buf.get_mut(..want).unwrap_or(&mut []))?;
            if n == Some(0) && want > 0 {
                return Err("ping echo short");
            }
            let n = n.unwrap_or(0);
            if buf.get(..n) != self.nonce.get(*got..*got + n) {
                return Err("ping echo mismatch");
            }
            *got += n;
            if n > 0 {
                self.last_progress = now;
            }
            if *got < self.nonce.len() {
                return Ok(false);
            }
            out(ProbeResult::Rtt(now - self.started));
            self.phase = if self.bulk > 0 {
                Phase::Bulk {
                    sent: 0,
                    got: 0,
                    since: now,
                }
            } else {
                Phase::Closing
            };
            if self.bulk == 0 {
                let _ = node.finish(ch);
            }
        }
        if let Phase::Bulk { sent, got, since } = &mut self.phase {
            // Send what the channel takes.
            while *sent < self.bulk {
                let room = node.write_capacity(ch).min(CHUNK);
                let left = usize::try_from(self.bulk - *sent).unwrap_or(CHUNK);
                let n = room.min(left);
                if n == 0 {
                    break;
                }
                let chunk = buf.get_mut(..n).unwrap_or(&mut []);
                fill(&mut self.gen, chunk);
                let w = write(node, ch, chunk)?;
                if w != n {
                    // `write_capacity` said it fits.
                    return Err("echo write short");
                }
                self.tx.update(&*chunk);
                *sent += n as u64;
                self.last_progress = now;
            }
            // Hash what came back.
            loop {
                match read(node, ch, &mut buf)? {
                    None => break,
                    Some(0) => return Err("echo ended early"),
                    Some(n) => {
                        *got += n as u64;
                        if *got > *sent {
                            return Err("echo returned more than was sent");
                        }
                        self.rx.update(buf.get(..n).unwrap_or(&[]));
                        self.last_progress = now;
                    }
                }
            }
            if *got < self.bulk {
                return Ok(false);
            }
            let (bytes, elapsed) = (*got, now - *since);
            let sent_hash = core::mem::take(&mut self.tx).finalize();
            let got_hash = core::mem::take(&mut self.rx).finalize();
            if sent_hash != got_hash {
                return Err("echo hash mismatch");
            }
            out(ProbeResult::Echo { bytes, elapsed });
            let _ = node.finish(ch);
            self.phase = Phase::Closing;
        }
        // Closing: the echo finishes after our FIN; then the channel is free.
        match read(node, ch, &mut buf) {
            Ok(Some(0)) | Err(_) => Ok(true),
            Ok(Some(_)) => Err("echo after the end"),
            Ok(None) => Ok(false),
        }
    }
}

/// Bytes taken (0 when the channel has no room).
fn write<N: Network>(
    node: &mut NodeOn<N>,
    ch: ChannelRef,
    data: &[u8],
) -> Result<usize, &'static str> {
    match node.write(ch, data) {
        Ok(n) => Ok(n),
        Err(ApiError::Channel(ChannelError::WouldBlock)) => Ok(0),
        Err(_) => Err("echo write"),
    }
}

/// `Some(n)` bytes read (`Some(0)`: the peer finished), `None`: nothing yet.
fn read<N: Network>(
    node: &mut NodeOn<N>,
    ch: ChannelRef,
    buf: &mut [u8],
) -> Result<Option<usize>, &'static str> {
    if buf.is_empty() {
        return Ok(None);
    }
    match node.read(ch, buf) {
        Ok(n) => Ok(Some(n)),
        Err(ApiError::Channel(ChannelError::WouldBlock)) => Ok(None),
        Err(_) => Err("echo read"),
    }
}

/// The next bytes of the xorshift sequence.
fn fill(state: &mut u32, out: &mut [u8]) {
    for chunk in out.chunks_mut(4) {
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *state = x;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(b.get(..chunk.len()).unwrap_or(&[]));
    }
}
