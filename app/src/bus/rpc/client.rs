//! The calling end of an RPC channel.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use serde::de::DeserializeOwned;
use serde::Serialize;
use smoltcp::time::Instant;

use super::error::RpcError;
use super::wire::{RpcRequest, RpcResponse, RpcResult};
use super::RpcConfig;
use crate::bus::channel::ChannelIo;
use crate::bus::codec::{self, reset_code, CodecError, MsgReader, MsgWriter};

/// Handle of one call (its wire id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u32);

/// A call that completed, one way or another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallDone {
    pub call: CallId,
    pub result: Result<Vec<u8>, RpcError>,
}

impl CallDone {
    /// The answer decoded as `T` (postcard); an undecodable body is `malformed`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, RpcError> {
        match &self.result {
            Ok(body) => codec::decode(body).map_err(|_| RpcError::Malformed),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Counters of one client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpcClientStats {
    /// Calls accepted by [`RpcClient::call`].
    pub calls: u64,
    /// Calls answered `Ok`.
    pub ok: u64,
    /// Calls answered with an error.
    pub remote_errors: u64,
    /// Calls whose deadline passed.
    pub timeouts: u64,
    /// Responses for no call in flight (late after a timeout, or bogus): dropped.
    pub late_responses: u64,
}

#[derive(Debug)]
struct InFlight {
    id: u32,
    deadline: Instant,
}

/// Client side of one RPC channel: queue calls, then [`RpcClient::poll`]
/// until their [`CallDone`]s come out.
#[derive(Debug)]
pub struct RpcClient {
    cfg: RpcConfig,
    next_id: u32,
    in_flight: Vec<InFlight>,
    /// Encoded requests not yet handed to the writer (id, payload).
    outbox: VecDeque<(u32, Vec<u8>)>,
    writer: MsgWriter,
    reader: MsgReader,
    done: VecDeque<CallDone>,
    closed: Option<RpcError>,
    stats: RpcClientStats,
}

impl RpcClient {
    /// A client with the given caps.
    pub fn new(cfg: RpcConfig) -> RpcClient {
        let cfg = cfg.clamped();
        RpcClient {
            cfg,
            next_id: 1,
            in_flight: Vec::with_capacity(cfg.max_in_flight),
            outbox: VecDeque::new(),
            writer: MsgWriter::new(cfg.msg_cap),
            reader: MsgReader::new(cfg.msg_cap),
            done: VecDeque::new(),
            closed: None,
            stats: RpcClientStats::default(),
        }
    }

    /// Queues a call with `body`, answered (or timed out) by `deadline`
    /// (a deadline not after `now` is [`RpcError::Timeout`] at once).
    pub fn call(
        &mut self,
        body: Vec<u8>,
        now: Instant,
        deadline: Instant,
    ) -> Result<CallId, RpcError> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        if deadline <= now {
            return Err(RpcError::Timeout);
        }
        if body.len() > self.cfg.max_body() {
            return Err(RpcError::TooLarge);
        }
        if self.in_flight.len() >= self.cfg.max_in_flight {
            return Err(RpcError::TooManyInFlight);
        }
        let id = self.fresh_id();
        let payload = codec::encode(&RpcRequest { id, body }).map_err(|_| RpcError::TooLarge)?;
        self.writer
            .check(payload.len())
            .map_err(|_| RpcError::TooLarge)?;
        self.in_flight.push(InFlight { id, deadline });
        self.outbox.push_back((id, payload));
        self.stats.calls += 1;
        Ok(CallId(id))
    }

    /// [`RpcClient::call`] with `msg` encoded with postcard as the body.
    pub fn call_msg<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        now: Instant,
        deadline: Instant,
    ) -> Result<CallId, RpcError> {
        let body = codec::encode(msg).map_err(|_| RpcError::TooLarge)?;
        self.call(body, now, deadline)
    }

    fn fresh_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.in_flight.iter().any(|c| c.id == id) {
                return id;
            }
        }
    }

    /// Writes queued calls, reads answers, expires deadlines; returns one
    /// completed call, if any (call again until `None`).
    pub fn poll<C: ChannelIo + ?Sized>(&mut self, now: Instant, io: &mut C) -> Option<CallDone> {
        if self.closed.is_none() {
            self.pump_out(io);
        }
        if self.closed.is_none() {
            self.pump_in(io);
        }
        self.expire(now);
        self.done.pop_front()
    }

    fn pump_out<C: ChannelIo + ?Sized>(&mut self, io: &mut C) {
        loop {
            match self.writer.flush(io) {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => return self.close(RpcError::ChannelClosed),
            }
            let Some((_, payload)) = self.outbox.pop_front() else {
                return;
            };
            if self.writer.send_payload(&payload).is_err() {
                // Checked in `call`; cannot happen. Fail closed rather than hang.
                io.reset(reset_code::ABORTED);
                return self.close(RpcError::ChannelClosed);
            }
        }
    }

    fn pump_in<C: ChannelIo + ?Sized>(&mut self, io: &mut C) {
        loop {
            match self.reader.poll(io) {
                Ok(Some(payload)) => match RpcResponse::decode(&payload) {
                    Ok(r) => self.answer(r),
                    Err(_) => {
                        io.reset(reset_code::MALFORMED);
                        return self.close(RpcError::Malformed);
                    }
                },
                Ok(None) => return,
                Err(CodecError::TooLarge { .. }) => {
                    io.reset(reset_code::TOO_LARGE);
                    return self.close(RpcError::Malformed);
                }
                Err(CodecError::Malformed) => {
                    io.reset(reset_code::MALFORMED);
                    return self.close(RpcError::Malformed);
                }
                Err(_) => return self.close(RpcError::ChannelClosed),
            }
        }
    }

    fn answer(&mut self, r: RpcResponse) {
        let Some(i) = self.in_flight.iter().position(|c| c.id == r.id) else {
            self.stats.late_responses += 1;
            return;
        };
        self.in_flight.swap_remove(i);
        let result = match r.result {
            RpcResult::Ok(body) => {
                self.stats.ok += 1;
                Ok(body)
            }
            RpcResult::Err(e) => {
                self.stats.remote_errors += 1;
                Err(RpcError::from_remote(e))
            }
        };
        self.done.push_back(CallDone {
            call: CallId(r.id),
            result,
        });
    }

    fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while let Some(c) = self.in_flight.get(i) {
            if c.deadline > now {
                i += 1;
                continue;
            }
            let id = c.id;
            self.in_flight.swap_remove(i);
            self.outbox.retain(|(o, _)| *o != id);
            self.stats.timeouts += 1;
            self.done.push_back(CallDone {
                call: CallId(id),
                result: Err(RpcError::Timeout),
            });
        }
    }

    fn close(&mut self, e: RpcError) {
        for c in self.in_flight.drain(..) {
            self.done.push_back(CallDone {
                call: CallId(c.id),
                result: Err(e.clone()),
            });
        }
        self.outbox.clear();
        self.closed = Some(e);
    }

    /// Fails every call in flight with `e` and refuses new ones: for the
    /// node when the channel was refused (`Denied`, `UnknownService`) or lost.
    pub fn abort(&mut self, e: RpcError) {
        if self.closed.is_none() {
            self.close(e);
        }
    }

    /// The earliest deadline of a call in flight.
    pub fn poll_at(&self) -> Option<Instant> {
        self.in_flight.iter().map(|c| c.deadline).min()
    }

    /// Calls in flight (queued, sent or partly answered).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Why the channel is no longer usable, if it is not.
    pub fn closed(&self) -> Option<&RpcError> {
        self.closed.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> RpcClientStats {
        self.stats
    }

    /// Bytes held: queued requests, the frame being written, the frame being read.
    pub fn buffered(&self) -> usize {
        self.outbox.iter().map(|(_, p)| p.len()).sum::<usize>()
            + self.writer.pending()
            + self.reader.allocated()
    }
}
