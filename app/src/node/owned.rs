//! Channels the node drives itself, never seen by the application as raw
//! channels: the built-in services it serves (`ping` echo, `sd` directory,
//! `blob` store) and the client ends of the application's RPC calls and
//! blob transfers. Each is a state machine of `bus/`, polled on every pump
//! with the channel as a `ChannelIo`; what completes is handed back as a
//! [`Done`].

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use dsb_noise::DeviceId;
use dsb_transports::mux::{ChannelError, ChannelId, Mux, ServiceName};
use smoltcp::time::Instant;

use crate::bus::blob::BlobError;
use crate::bus::blob::{
    BlobEvent, BlobGet, BlobPut, BlobServer, BlobStore, GetDone, GetResume, PutDone,
};
use crate::bus::channel::{ChannelIo, MuxChannel};
use crate::bus::rpc::{self, RpcClient, RpcConfig, RpcError, RpcServer, ServerStatus};
use crate::bus::{sd, Handler, Services};

/// Bytes the echo moves per step.
const ECHO_CHUNK: usize = 4096;
/// Most calls one RPC channel carries at once (per service and session).
pub const MAX_CALLS_PER_CHANNEL: usize = rpc::RPC_MAX_IN_FLIGHT;

/// A call the application made (`Node::call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A blob transfer the application started (`Node::blob_put` / `blob_get`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u64);

/// What a finished transfer gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transferred {
    Put(PutDone),
    Get(GetDone),
}

impl Transferred {
    /// The blob's size.
    pub fn size(&self) -> u64 {
        match self {
            Transferred::Put(p) => p.size,
            Transferred::Get(g) => g.data.len() as u64,
        }
    }
}

/// A transfer whose session ended: kept to continue on the next session.
#[derive(Debug)]
pub(crate) enum Suspended {
    Put {
        name: alloc::string::String,
        data: Vec<u8>,
    },
    Get {
        resume: GetResume,
        cap: usize,
    },
}

impl Suspended {
    /// Bytes known to be done: a download's verified prefix (an upload
    /// learns from the peer's partial copy when it resumes).
    pub fn have(&self) -> u64 {
        match self {
            Suspended::Put { .. } => 0,
            Suspended::Get { resume, .. } => resume.data.len() as u64,
        }
    }
}

/// Something a node-driven channel completed.
#[derive(Debug)]
pub(crate) enum Done {
    Call(CallId, Result<Vec<u8>, RpcError>),
    Transfer(TransferId, Result<Transferred, BlobError>),
    /// The channel or session ended under a transfer: continue it later.
    Suspend(TransferId, DeviceId, Suspended),
    /// The blob store served a peer.
    Served(DeviceId, BlobEvent),
}

/// The calls on one RPC channel: up to [`MAX_CALLS_PER_CHANNEL`] in
/// flight, the rest waiting in order (the mux allows one channel per
/// service and direction, so calls to a service share it).
#[derive(Debug)]
pub(crate) struct Calls {
    pub service: ServiceName,
    pub client: RpcClient,
    map: heapless::Vec<(rpc::CallId, CallId), MAX_CALLS_PER_CHANNEL>,
    /// Calls not yet sent: (call, body, deadline). Bounded by the node's
    /// `MAX_CALLS`.
    waiting: VecDeque<(CallId, Vec<u8>, Instant)>,
}

impl Calls {
    pub fn new(service: ServiceName) -> Calls {
        Calls {
            service,
            client: RpcClient::new(RpcConfig::default()),
            map: heapless::Vec::new(),
            waiting: VecDeque::new(),
        }
    }

    /// Queues a call; `Err(TooLarge)` if the body can never go.
    pub fn call(&mut self, id: CallId, body: &[u8], deadline: Instant) -> Result<(), RpcError> {
        if body.len() > RpcConfig::default().max_body() {
            return Err(RpcError::TooLarge);
        }
        self.waiting.push_back((id, body.to_vec(), deadline));
        Ok(())
    }

    /// Whether this channel can take calls (it has not failed).
    pub fn usable(&self) -> bool {
        self.client.closed().is_none()
    }

    /// Sends waiting calls while fewer than the cap are in flight.
    fn start(&mut self, now: Instant, done: &mut Vec<Done>) {
        while !self.map.is_full() {
            let Some((id, body, deadline)) = self.waiting.pop_front() else {
                break;
            };
            if now >= deadline {
                done.push(Done::Call(id, Err(RpcError::Timeout)));
                continue;
            }
            match self.client.call(body, now, deadline) {
                // Cannot fail: the map has room.
                Ok(inner) => {
                    let _ = self.map.push((inner, id));
                }
                Err(e) => done.push(Done::Call(id, Err(e))),
            }
        }
    }

    /// Fails every call, in flight or waiting.
    fn fail_all(&mut self, why: &RpcError, done: &mut Vec<Done>) {
        for (_, call) in self.map.drain(..) {
            done.push(Done::Call(call, Err(why.clone())));
        }
        for (call, _, _) in self.waiting.drain(..) {
            done.push(Done::Call(call, Err(why.clone())));
        }
    }

    /// When a waiting call's deadline passes, at the latest.
    fn poll_at(&self) -> Option<Instant> {
        let waiting = self.waiting.iter().map(|(_, _, d)| *d).min();
        match (self.client.poll_at(), waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn take(&mut self, inner: rpc::CallId) -> Option<CallId> {
        let i = self.map.iter().position(|(c, _)| *c == inner)?;
        Some(self.map.swap_remove(i).1)
    }
}

/// One channel the node drives.
#[derive(Debug)]
pub(crate) enum Owned {
    /// `ping`: everything read is written back; FIN after the peer's FIN.
    Echo { peer_done: bool },
    /// `sd`: the directory, as an RPC server.
    Directory(RpcServer),
    /// `blob`: the store's server end.
    Blob(BlobServer),
    /// The application's calls to one service of the peer.
    Calls(alloc::boxed::Box<Calls>),
    /// An upload the application started.
    Put(TransferId, BlobPut),
    /// A download the application started.
    Get(TransferId, BlobGet, usize),
}

/// What polling needs from the node.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub peer: DeviceId,
    pub services: &'a Services,
    pub store: &'a mut Option<BlobStore>,
    pub done: &'a mut Vec<Done>,
}

impl Owned {
    /// The server of an accepted channel of `handler`, if the node serves it.
    pub fn serve(handler: Handler, now: Instant, has_store: bool) -> Option<Owned> {
        match handler {
            Handler::Ping => Some(Owned::Echo { peer_done: false }),
            Handler::Directory => Some(Owned::Directory(RpcServer::new(RpcConfig::default()))),
            Handler::Blob if has_store => Some(Owned::Blob(BlobServer::new(now))),
            Handler::Blob | Handler::App => None,
        }
    }

    /// The transfer this channel carries, if any.
    pub fn transfer(&self) -> Option<TransferId> {
        match self {
            Owned::Put(t, _) | Owned::Get(t, _, _) => Some(*t),
            _ => None,
        }
    }

    /// Progress of transfer `id`, if this channel carries it.
    pub fn progress(&self, id: TransferId) -> Option<super::requests::Progress> {
        let (done, total) = match self {
            Owned::Put(t, p) if *t == id => {
                let (done, total) = p.progress();
                (done, Some(total))
            }
            Owned::Get(t, g, _) if *t == id => (g.received(), g.size()),
            _ => return None,
        };
        Some(super::requests::Progress {
            done,
            total,
            suspended: false,
            finished: false,
        })
    }

    /// When this channel needs a poll even if nothing arrives (timeouts).
    pub fn poll_at(&self) -> Option<Instant> {
        match self {
            Owned::Echo { .. } | Owned::Directory(_) => None,
            Owned::Blob(b) => b.poll_at(),
            Owned::Calls(c) => c.poll_at(),
            Owned::Put(_, p) => p.poll_at(),
            Owned::Get(_, g, _) => g.poll_at(),
        }
    }

    /// Drives channel `id` as far as it goes; true when it is done.
    pub fn poll(&mut self, mux: &mut Mux, id: ChannelId, cx: &mut Ctx<'_>) -> bool {
        let mut io = MuxChannel { mux, id };
        match self {
            Owned::Echo { peer_done } => echo(&mut io, peer_done),
            Owned::Directory(server) => {
                while let Some(req) = server.poll(&mut io) {
                    let listed = cx
                        .services
                        .iter()
                        .map(|p| (p.name.as_str(), p.access.allows(&cx.peer)));
                    let _ = server.respond(req.id, sd::answer(&req.body, listed));
                }
                // Answers queued by `respond` go out on the next poll.
                let _ = server.poll(&mut io);
                server.status() != ServerStatus::Open
            }
            Owned::Blob(server) => {
                let Some(store) = cx.store.as_mut() else {
                    io.reset(crate::bus::codec::reset_code::ABORTED);
                    return true;
                };
                while let Some(ev) = server.poll(cx.now, &mut io, store) {
                    cx.done.push(Done::Served(cx.peer, ev));
                }
                server.is_done()
            }
            Owned::Calls(calls) => {
                calls.start(cx.now, cx.done);
                while let Some(done) = calls.client.poll(cx.now, &mut io) {
                    if let Some(call) = calls.take(done.call) {
                        cx.done.push(Done::Call(call, done.result));
                    }
                    calls.start(cx.now, cx.done);
                }
                // The channel stays for later calls until it fails.
                if let Some(e) = calls.client.closed().cloned() {
                    calls.fail_all(&e, cx.done);
                    return true;
                }
                false
            }
            Owned::Put(tid, put) => {
                let tid = *tid;
                match put.poll(cx.now, &mut io) {
                    None => false,
                    Some(Err(e)) if interrupted(&e) => self.interrupt(cx),
                    Some(r) => {
                        cx.done.push(Done::Transfer(tid, r.map(Transferred::Put)));
                        true
                    }
                }
            }
            Owned::Get(tid, get, _) => {
                let tid = *tid;
                match get.poll(cx.now, &mut io) {
                    None => false,
                    Some(Err(e)) if interrupted(&e) => self.interrupt(cx),
                    Some(r) => {
                        cx.done.push(Done::Transfer(tid, r.map(Transferred::Get)));
                        true
                    }
                }
            }
        }
    }

    /// The transfer's channel went away under it: hand it back to continue
    /// on a new channel. True (this channel is done).
    fn interrupt(&mut self, cx: &mut Ctx<'_>) -> bool {
        let this = core::mem::replace(self, Owned::Echo { peer_done: true });
        this.session_ended(cx.peer, cx.done);
        true
    }

    /// The peer refused the channel: calls fail; a transfer fails if the
    /// policy or the service is the reason, else (no free channel) it waits
    /// to try again.
    pub fn refused(self, why: RpcError, peer: DeviceId, done: &mut Vec<Done>) {
        match self {
            Owned::Calls(mut calls) => calls.fail_all(&why, done),
            Owned::Put(tid, _) | Owned::Get(tid, _, _) if why != RpcError::ChannelClosed => {
                let e = match why {
                    RpcError::Denied => BlobError::Denied,
                    _ => BlobError::UnknownService,
                };
                done.push(Done::Transfer(tid, Err(e)));
            }
            other => other.session_ended(peer, done),
        }
    }

    /// The session ended: calls fail, transfers are kept to resume.
    pub fn session_ended(self, peer: DeviceId, done: &mut Vec<Done>) {
        match self {
            Owned::Calls(mut calls) => calls.fail_all(&RpcError::ChannelClosed, done),
            Owned::Put(tid, put) => {
                let name = put.name().into();
                done.push(Done::Suspend(
                    tid,
                    peer,
                    Suspended::Put {
                        name,
                        data: put.into_data(),
                    },
                ));
            }
            Owned::Get(tid, get, cap) => done.push(Done::Suspend(
                tid,
                peer,
                Suspended::Get {
                    resume: get.into_resume(),
                    cap,
                },
            )),
            _ => {}
        }
    }
}

/// Whether a transfer that failed this way can continue on a new channel
/// (the channel or session went away; nothing says the data was wrong).
fn interrupted(e: &BlobError) -> bool {
    matches!(e, BlobError::ChannelClosed | BlobError::Truncated)
}

/// Echoes what the write side can take; finishes after the peer did and
/// everything was echoed. True when the channel is done.
fn echo(io: &mut impl ChannelIo, peer_done: &mut bool) -> bool {
    let mut buf = [0u8; ECHO_CHUNK];
    loop {
        let room = io.write_capacity().min(ECHO_CHUNK);
        if room == 0 {
            break;
        }
        match io.read(buf.get_mut(..room).unwrap_or(&mut [])) {
            Ok(0) => {
                *peer_done = true;
                break;
            }
            Ok(n) => match io.write(buf.get(..n).unwrap_or(&[])) {
                Ok(w) if w == n => {}
                // write_capacity said it fits; anything else ends the channel.
                _ => {
                    io.reset(2);
                    return true;
                }
            },
            Err(ChannelError::WouldBlock) => break,
            Err(_) => return true,
        }
    }
    if *peer_done {
        return !matches!(io.finish(), Err(ChannelError::WouldBlock));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::channel::{End, Pipe};

    #[test]
    fn the_echo_returns_every_byte_then_finishes() {
        let mut p = Pipe::new(16);
        let mut done = false;
        let mut peer_done = false;
        let msg: alloc::vec::Vec<u8> = (0..100u8).collect();
        let mut sent = 0;
        let mut back = alloc::vec::Vec::new();
        for _ in 0..100 {
            if sent < msg.len() {
                sent += p.end(End::A).write(&msg[sent..]).unwrap_or(0);
            } else {
                p.end(End::A).finish().unwrap();
            }
            if !done {
                done = echo(&mut p.end(End::B), &mut peer_done);
            }
            let mut buf = [0u8; 16];
            while let Ok(n) = p.end(End::A).read(&mut buf) {
                if n == 0 {
                    break;
                }
                back.extend_from_slice(&buf[..n]);
            }
        }
        assert!(done);
        assert_eq!(back, msg);
        assert_eq!(p.end(End::A).read(&mut [0u8; 4]), Ok(0));
    }
}
