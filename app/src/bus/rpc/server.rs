//! The serving end of an RPC channel.
//!
//! Oversized requests: the frame is read and discarded without buffering
//! (its length prefix says how much to skip), the request id is parsed from
//! the frame's first bytes and `too-large` is answered for it. Only when the
//! id cannot be parsed from those bytes is the channel reset
//! (`reset_code::TOO_LARGE`). Any other undecodable frame, a zero length, a
//! duplicate id in flight or a FIN inside a frame resets the channel
//! (`reset_code::MALFORMED`).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use serde::de::DeserializeOwned;

use super::error::RespondError;
use super::wire::{code, RpcRequest, RpcResponse, RpcResult};
use super::RpcConfig;
use crate::bus::channel::ChannelIo;
use crate::bus::codec::{self, reset_code, CodecError, MsgReader, MsgWriter, Read};

/// A request to answer with [`RpcServer::respond`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub id: u32,
    pub body: Vec<u8>,
}

impl Incoming {
    /// The body decoded as `T` (postcard, exactly). On error answer
    /// `RpcResult::err(code::BAD_REQUEST, ..)`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        codec::decode(&self.body)
    }
}

/// Where the server's channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerStatus {
    /// Serving requests.
    Open,
    /// The peer finished, every request was answered and our FIN is queued.
    Finished,
    /// The channel went away under us (reset by the peer, session down).
    Closed,
    /// We reset the channel with this code (malformed input).
    Reset(u16),
}

/// Counters of one server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpcServerStats {
    /// Requests delivered by [`RpcServer::poll`].
    pub requests: u64,
    /// Answers queued (including automatic `too-large` ones).
    pub responses: u64,
    /// Oversized requests skipped and answered `too-large`.
    pub too_large: u64,
}

/// Server side of one RPC channel.
#[derive(Debug)]
pub struct RpcServer {
    cfg: RpcConfig,
    reader: MsgReader,
    writer: MsgWriter,
    /// Ids delivered and not answered yet.
    pending: Vec<u32>,
    /// Encoded answers not yet handed to the writer.
    outbox: VecDeque<Vec<u8>>,
    peer_finished: bool,
    status: ServerStatus,
    stats: RpcServerStats,
}

impl RpcServer {
    /// A server with the given caps.
    pub fn new(cfg: RpcConfig) -> RpcServer {
        let cfg = cfg.clamped();
        RpcServer {
            cfg,
            reader: MsgReader::new(cfg.msg_cap),
            writer: MsgWriter::new(cfg.msg_cap),
            pending: Vec::with_capacity(cfg.max_queued),
            outbox: VecDeque::new(),
            peer_finished: false,
            status: ServerStatus::Open,
            stats: RpcServerStats::default(),
        }
    }

    /// Writes queued answers and reads the next request, if one is complete
    /// and fewer than `max_queued` requests are held. Finishes the channel
    /// once the peer finished and everything was answered.
    pub fn poll<C: ChannelIo + ?Sized>(&mut self, io: &mut C) -> Option<Incoming> {
        loop {
            if self.status != ServerStatus::Open {
                return None;
            }
            if !self.pump_out(io) {
                return None;
            }
            if self.peer_finished {
                if self.pending.is_empty() && self.outbox.is_empty() && self.writer.is_idle() {
                    match io.finish() {
                        Ok(()) => self.status = ServerStatus::Finished,
                        Err(dsb_transports::mux::ChannelError::WouldBlock) => {}
                        Err(_) => self.status = ServerStatus::Closed,
                    }
                }
                return None;
            }
            if self.pending.len() + self.outbox.len() >= self.cfg.max_queued {
                return None;
            }
            match self.reader.poll_or_skip(io) {
                Ok(Some(Read::Msg(payload))) => {
                    let Ok(req) = codec::decode::<RpcRequest>(&payload) else {
                        return self.reset(io, reset_code::MALFORMED);
                    };
                    if self.pending.contains(&req.id) {
                        return self.reset(io, reset_code::MALFORMED);
                    }
                    self.pending.push(req.id);
                    self.stats.requests += 1;
                    return Some(Incoming {
                        id: req.id,
                        body: req.body,
                    });
                }
                Ok(Some(Read::Skipped { head, .. })) => {
                    let Ok((id, _)) = postcard::take_from_bytes::<u32>(head.as_slice()) else {
                        return self.reset(io, reset_code::TOO_LARGE);
                    };
                    if self.pending.contains(&id) {
                        return self.reset(io, reset_code::MALFORMED);
                    }
                    self.stats.too_large += 1;
                    self.queue(id, RpcResult::err(code::TOO_LARGE, "request too large"));
                }
                Ok(None) => return None,
                Err(CodecError::Eof) => self.peer_finished = true,
                Err(CodecError::Closed) => {
                    self.status = ServerStatus::Closed;
                    return None;
                }
                Err(_) => return self.reset(io, reset_code::MALFORMED),
            }
        }
    }

    /// Flushes what can be written; false if the channel is gone.
    fn pump_out<C: ChannelIo + ?Sized>(&mut self, io: &mut C) -> bool {
        loop {
            match self.writer.flush(io) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(_) => {
                    self.status = ServerStatus::Closed;
                    return false;
                }
            }
            let Some(payload) = self.outbox.pop_front() else {
                return true;
            };
            if self.writer.send_payload(&payload).is_err() {
                // Answers are size-checked when queued; cannot happen.
                self.reset(io, reset_code::ABORTED);
                return false;
            }
        }
    }

    fn reset<C: ChannelIo + ?Sized>(&mut self, io: &mut C, code: u16) -> Option<Incoming> {
        io.reset(code);
        self.status = ServerStatus::Reset(code);
        self.pending.clear();
        self.outbox.clear();
        None
    }

    fn queue(&mut self, id: u32, result: RpcResult) -> bool {
        let fits = match codec::encode(&RpcResponse { id, result }) {
            Ok(p) if self.writer.check(p.len()).is_ok() => {
                self.outbox.push_back(p);
                true
            }
            _ => false,
        };
        if !fits {
            let small = RpcResult::err(code::TOO_LARGE, "response too large");
            if let Ok(p) = codec::encode(&RpcResponse { id, result: small }) {
                self.outbox.push_back(p);
            }
        }
        self.stats.responses += 1;
        fits
    }

    /// Answers request `id`; the answer is written by the following polls.
    /// An answer over the frame cap is replaced by `too-large`.
    pub fn respond(&mut self, id: u32, result: RpcResult) -> Result<(), RespondError> {
        let Some(i) = self.pending.iter().position(|p| *p == id) else {
            return Err(RespondError::UnknownId);
        };
        self.pending.swap_remove(i);
        if self.status != ServerStatus::Open {
            return Ok(());
        }
        if self.queue(id, result) {
            Ok(())
        } else {
            Err(RespondError::TooLarge)
        }
    }

    /// Where the channel stands.
    pub fn status(&self) -> ServerStatus {
        self.status
    }

    /// Requests delivered and not answered.
    pub fn unanswered(&self) -> usize {
        self.pending.len()
    }

    /// Counters.
    pub fn stats(&self) -> RpcServerStats {
        self.stats
    }

    /// Bytes held: answers queued, the frame being written, the frame being read
    /// (at most `(max_queued + 2) * msg_cap` plus prefixes).
    pub fn buffered(&self) -> usize {
        self.outbox.iter().map(Vec::len).sum::<usize>()
            + self.writer.pending()
            + self.reader.allocated()
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> RpcConfig {
        self.cfg
    }
}
