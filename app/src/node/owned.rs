//! Channels the node drives itself, never seen by the application as raw
//! channels: the built-in services it serves (`ping` echo, `sd` directory,
//! `blob` store) and the client ends of the application's RPC calls and
//! blob transfers. Each is a state machine of `bus/`, polled on every pump
//! with the channel as a `ChannelIo`; what completes is handed back as a
//! [`Done`].

use alloc::vec::Vec;

use dsb_noise::DeviceId;
use dsb_transports::mux::{ChannelError, ChannelId, Mux, ServiceName};
use smoltcp::time::Instant;

use crate::bus::blob::{BlobEvent, BlobGet, BlobPut, BlobServer, BlobStore, GetDone, GetResume, PutDone};
use crate::bus::blob::BlobError;
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
    Put { name: alloc::string::String, data: Vec<u8> },
    Get { resume: GetResume, cap: usize },
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
    /// The session ended under a transfer: continue it later.
    Suspend(TransferId, DeviceId, Suspended),
    /// The blob store served a peer.
    Served(DeviceId, BlobEvent),
}

/// The calls on one RPC channel.
#[derive(Debug)]
pub(crate) struct Calls {
    pub service: ServiceName,
    pub client: RpcClient,
    map: heapless::Vec<(rpc::CallId, CallId), MAX_CALLS_PER_CHANNEL>,
}

impl Calls {
    pub fn new(service: ServiceName) -> Calls {
        Calls {
            service,
            client: RpcClient::new(RpcConfig::default()),
            map: heapless::Vec::new(),
        }
    }

    /// Starts a call; `Err` when the channel's calls are at their cap.
    pub fn call(
        &mut self,
        id: CallId,
        body: &[u8],
        now: Instant,
        deadline: Instant,
    ) -> Result<(), RpcError> {
        if self.map.is_full() {
            return Err(RpcError::TooManyInFlight);
        }
        let inner = self.client.call(body.to_vec(), now, deadline)?;
        // Cannot fail: checked above.
        let _ = self.map.push((inner, id));
        Ok(())
    }

    /// Whether another call fits on this channel.
    pub fn has_room(&self) -> bool {
        !self.map.is_full() && self.client.closed().is_none()
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
            Owned::Calls(c) => c.client.poll_at(),
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
                    let listed = cx.services.iter().map(|p| (p.name.as_str(), p.access.allows(&cx.peer)));
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
                while let Some(done) = calls.client.poll(cx.now, &mut io) {
                    if let Some(call) = calls.take(done.call) {
                        cx.done.push(Done::Call(call, done.result));
                    }
                }
                // The channel stays for later calls until it fails.
                calls.client.closed().is_some() && calls.map.is_empty()
            }
            Owned::Put(tid, put) => match put.poll(cx.now, &mut io) {
                Some(r) => {
                    cx.done.push(Done::Transfer(*tid, r.map(Transferred::Put)));
                    true
                }
                None => false,
            },
            Owned::Get(tid, get, _) => match get.poll(cx.now, &mut io) {
                Some(r) => {
                    cx.done.push(Done::Transfer(*tid, r.map(Transferred::Get)));
                    true
                }
                None => false,
            },
        }
    }

    /// The peer refused or reset the channel: calls fail, transfers end.
    pub fn refused(self, why: RpcError, done: &mut Vec<Done>) {
        match self {
            Owned::Calls(mut calls) => {
                for (_, call) in calls.map.drain(..) {
                    done.push(Done::Call(call, Err(why.clone())));
                }
            }
            Owned::Put(tid, _) | Owned::Get(tid, _, _) => {
                let e = match why {
                    RpcError::Denied => BlobError::Denied,
                    RpcError::UnknownService => BlobError::UnknownService,
                    _ => BlobError::ChannelClosed,
                };
                done.push(Done::Transfer(tid, Err(e)));
            }
            _ => {}
        }
    }

    /// The session ended: calls fail, transfers are kept to resume.
    pub fn session_ended(self, peer: DeviceId, done: &mut Vec<Done>) {
        match self {
            Owned::Calls(mut calls) => {
                for (_, call) in calls.map.drain(..) {
                    done.push(Done::Call(call, Err(RpcError::ChannelClosed)));
                }
            }
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
