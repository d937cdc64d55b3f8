//! The `services` scenario's checks, as an application of the node API:
//! every node asks every peer's `sd` directory; one node serves a blob
//! store to one peer only; that peer puts a blob, gets it back and compares
//! it with what it sent; another peer tries and must be refused.

use alloc::vec::Vec;

use crate::net::Network;
use dsb_noise::DeviceId;
use smoltcp::time::{Duration, Instant};

use crate::bus::blob::{blob_hash, BlobError, BLOB_SERVICE};
use crate::bus::sd::{SdRequest, SdResponse, SD_SERVICE};
use crate::bus::{Access, ApiError};
use crate::node::{CallId, NodeEvent, NodeOn, TransferId, Transferred, MAX_SESSIONS};

/// Deadline of one directory call.
const SD_TIMEOUT: Duration = Duration::from_secs(5);
/// Name of the blob the putter sends.
const BLOB_NAME: &str = "selftest.bin";
/// Name of the blob the intruder tries to put.
const INTRUDER_NAME: &str = "intruder.bin";

/// What one node does in the `services` scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Publishes `blob`, allowed to `client` only.
    Server { client: DeviceId },
    /// Puts `bytes` into `server`'s store, gets them back, compares.
    Putter { server: DeviceId, bytes: usize },
    /// Tries to put into `server`'s store: must be refused.
    Intruder { server: DeviceId },
}

/// The scenario for one node: its role, and the peers whose directory it asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub role: Role,
    pub peers: [Option<DeviceId>; 2],
}

/// What the checks report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckEvent {
    /// Every peer's directory answered (and listed `sd` as allowed).
    RpcOk { peers: u8 },
    /// The blob came back byte-exact and with its hash.
    BlobOk { bytes: u64 },
    /// The server refused our blob channel (`access-denied`).
    AccessDeniedOk { server: DeviceId },
    /// A check failed.
    Failed(&'static str),
}

#[derive(Debug)]
enum BlobStep {
    Idle,
    Putting(TransferId),
    Getting(TransferId),
    Done,
}

/// Runs a [`Plan`].
#[derive(Debug)]
pub struct Checks {
    plan: Plan,
    /// (peer, its call) once asked; the bool says it answered well.
    calls: Vec<(DeviceId, Option<CallId>, bool)>,
    rpc_reported: bool,
    blob: BlobStep,
    data: Vec<u8>,
}

impl Checks {
    pub fn new(plan: Plan) -> Checks {
        Checks {
            plan,
            calls: Vec::new(),
            rpc_reported: false,
            blob: BlobStep::Idle,
            data: Vec::new(),
        }
    }

    /// Publishes `sd` to everyone and, on the server, `blob` to its client.
    pub fn publish<N: Network>(&self, node: &mut NodeOn<N>) -> Result<(), ApiError> {
        node.publish(SD_SERVICE, Access::AnyAuthenticated)?;
        if let Role::Server { client } = self.plan.role {
            node.publish(BLOB_SERVICE, Access::only([&client])?)?;
        }
        Ok(())
    }

    /// Follows the node's events; returns what they complete.
    pub fn on_event<N: Network>(
        &mut self,
        node: &mut NodeOn<N>,
        ev: &NodeEvent,
        out: &mut Vec<CheckEvent>,
    ) {
        match *ev {
            NodeEvent::CallDone(id) => {
                let Some(i) = self.calls.iter().position(|(_, c, _)| *c == Some(id)) else {
                    return;
                };
                let answer = node.take_call(id);
                let good = matches!(
                    answer.as_ref().map(|r| r.as_ref().map(|b| SdResponse::decode(b))),
                    Some(Ok(Ok(r))) if r.allows(SD_SERVICE)
                );
                if let Some(c) = self.calls.get_mut(i) {
                    if good {
                        c.2 = true;
                    } else {
                        // Ask again on the next poll (the session may have changed).
                        c.1 = None;
                    }
                }
                let wanted = self.plan.peers.iter().flatten().count();
                let ok = self.calls.iter().filter(|c| c.2).count();
                if !self.rpc_reported && ok == wanted {
                    self.rpc_reported = true;
                    out.push(CheckEvent::RpcOk { peers: ok as u8 });
                }
            }
            NodeEvent::TransferDone(id) => self.transfer_done(node, id, out),
            NodeEvent::SessionDown { peer, .. } => {
                // Calls on it failed: ask again when a session is back.
                for c in self.calls.iter_mut().filter(|c| c.0 == peer && !c.2) {
                    c.1 = None;
                }
            }
            _ => {}
        }
    }

    fn transfer_done<N: Network>(
        &mut self,
        node: &mut NodeOn<N>,
        id: TransferId,
        out: &mut Vec<CheckEvent>,
    ) {
        let Some(result) = node.take_transfer(id) else {
            return;
        };
        match (&self.blob, self.plan.role, result) {
            (BlobStep::Putting(t), Role::Putter { server, .. }, Ok(Transferred::Put(p)))
                if *t == id =>
            {
                if p.hash != blob_hash(&self.data) || p.size != self.data.len() as u64 {
                    return self.fail(out, "blob put: stored another size or hash");
                }
                match node.blob_get(&server, BLOB_NAME, self.data.len()) {
                    Ok(g) => self.blob = BlobStep::Getting(g),
                    Err(_) => self.fail(out, "blob get: not started"),
                }
            }
            (BlobStep::Getting(t), Role::Putter { .. }, Ok(Transferred::Get(g))) if *t == id => {
                if g.data != self.data || g.hash != blob_hash(&self.data) {
                    return self.fail(out, "blob get: other bytes than were put");
                }
                self.blob = BlobStep::Done;
                out.push(CheckEvent::BlobOk {
                    bytes: g.data.len() as u64,
                });
            }
            (BlobStep::Putting(t), Role::Intruder { server }, Err(BlobError::Denied))
                if *t == id =>
            {
                self.blob = BlobStep::Done;
                out.push(CheckEvent::AccessDeniedOk { server });
            }
            (BlobStep::Putting(t), Role::Intruder { .. }, _) if *t == id => {
                self.fail(out, "blob put by a peer the policy denies was not refused")
            }
            (BlobStep::Putting(t) | BlobStep::Getting(t), _, Err(_)) if *t == id => {
                self.fail(out, "blob transfer failed")
            }
            _ => {}
        }
    }

    fn fail(&mut self, out: &mut Vec<CheckEvent>, what: &'static str) {
        self.blob = BlobStep::Done;
        out.push(CheckEvent::Failed(what));
    }

    /// Starts what can start: directory calls on sessions that exist, and
    /// the blob step once the server's session exists and it announces `blob`.
    pub fn poll<N: Network>(&mut self, node: &mut NodeOn<N>, seed: u32) {
        for peer in self.plan.peers.iter().flatten() {
            if node.session_stats(peer).is_none() {
                continue;
            }
            let i = match self.calls.iter().position(|c| c.0 == *peer) {
                Some(i) => i,
                None if self.calls.len() < MAX_SESSIONS => {
                    self.calls.push((*peer, None, false));
                    self.calls.len() - 1
                }
                None => continue,
            };
            if let Some(c) = self.calls.get_mut(i) {
                if c.1.is_none() && !c.2 {
                    c.1 = node
                        .call_msg(peer, SD_SERVICE, &SdRequest::List, SD_TIMEOUT)
                        .ok();
                }
            }
        }
        if !matches!(self.blob, BlobStep::Idle) {
            return;
        }
        let server = match self.plan.role {
            Role::Server { .. } => return,
            Role::Putter { server, .. } | Role::Intruder { server } => server,
        };
        let announces_blob = node.peers().any(|p| {
            p.device_id.as_bytes() == server.as_bytes()
                && p.services
                    .iter()
                    .any(|s| s.as_bytes() == BLOB_SERVICE.as_bytes())
        });
        if node.session_stats(&server).is_none() || !announces_blob {
            return;
        }
        let started = match self.plan.role {
            Role::Putter { bytes, .. } => {
                self.data = pattern(bytes, seed);
                node.blob_put(&server, BLOB_NAME, self.data.clone())
            }
            _ => node.blob_put(&server, INTRUDER_NAME, pattern(4096, seed)),
        };
        if let Ok(t) = started {
            self.blob = BlobStep::Putting(t);
        }
    }

    /// When a check needs a poll without any event (none: every step
    /// follows an event or a session).
    pub fn poll_at(&self) -> Option<Instant> {
        None
    }
}

/// `len` bytes of a xorshift sequence: no two chunks alike, so a misplaced
/// or repeated chunk changes the hash.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        for b in x.to_le_bytes() {
            if v.len() < len {
                v.push(b);
            }
        }
    }
    v
}
