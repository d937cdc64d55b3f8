//! Calls and blob transfers the application asked the node to carry out.
//!
//! The node drives their channels itself ([`super::owned`]); this keeps what
//! the application gets back: a result per [`CallId`] and [`TransferId`],
//! announced by `NodeEvent::CallDone` / `TransferDone` and held until
//! `take_call` / `take_transfer` collects it. Both tables have a cap: a
//! call or transfer is refused with `Busy` rather than grow them.
//!
//! Transfers to one peer run one at a time, in the order they were asked
//! for (the mux allows one live channel per service and direction). A
//! transfer whose channel or session ends is not failed: it waits and
//! continues on the next channel (an upload where the peer's partial copy
//! ends, a download from what it verified), at most [`MAX_ATTEMPTS`] times,
//! and fails once its peer has had no session for [`RESUME_WINDOW`].

use alloc::vec::Vec;

use dsb_noise::DeviceId;
use smoltcp::time::{Duration, Instant};

use super::owned::{CallId, Done, Owned, Suspended, TransferId, Transferred};
use super::sessions::Sessions;
use crate::bus::blob::{BlobError, BlobGet, BlobPut, BLOB_SERVICE};
use crate::bus::rpc::RpcError;

/// Most calls outstanding at once: in flight plus results not yet taken.
pub const MAX_CALLS: usize = 64;
/// Most transfers outstanding at once: running, suspended, or finished and
/// not yet taken.
pub const MAX_TRANSFERS: usize = 8;
/// How long a waiting transfer waits for a session with its peer.
pub const RESUME_WINDOW: Duration = Duration::from_secs(30);
/// Most channels one transfer is tried on (the first and its resumptions).
pub const MAX_ATTEMPTS: u8 = 8;

/// How far a transfer got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes acknowledged (upload) or verified so far (download).
    pub done: u64,
    /// The blob's size, once known.
    pub total: Option<u64>,
    /// Waiting for its turn, a channel or a session with the peer.
    pub suspended: bool,
    /// Finished (the result waits in `take_transfer`).
    pub finished: bool,
}

enum CallState {
    Pending,
    Done(Result<Vec<u8>, RpcError>),
}

enum TransferState {
    /// Its channel runs on the session with the peer.
    Running,
    /// Not started yet, or its channel ended: start on the next channel.
    Waiting(Suspended),
    Done(Result<Transferred, BlobError>),
}

struct Transfer {
    id: TransferId,
    peer: DeviceId,
    state: TransferState,
    /// Channels it was started on.
    attempts: u8,
    /// Since when its peer has had no session (while waiting).
    absent_since: Option<Instant>,
    /// Progress when it last stopped.
    last: Progress,
}

#[derive(Default)]
pub(crate) struct Requests {
    next: u64,
    calls: Vec<(CallId, CallState)>,
    transfers: Vec<Transfer>,
}

/// What finishing requests means for the application.
pub(crate) enum Finished {
    Call(CallId),
    Transfer(TransferId),
    Served(DeviceId, crate::bus::blob::BlobEvent),
}

impl Requests {
    fn fresh(&mut self) -> u64 {
        self.next = self.next.wrapping_add(1);
        self.next
    }

    pub fn has_room_for_call(&self) -> bool {
        self.calls.len() < MAX_CALLS
    }

    pub fn has_room_for_transfer(&self) -> bool {
        self.transfers.len() < MAX_TRANSFERS
    }

    pub fn new_call(&mut self) -> CallId {
        let id = CallId(self.fresh());
        self.calls.push((id, CallState::Pending));
        id
    }

    pub fn forget_call(&mut self, id: CallId) {
        self.calls.retain(|(c, _)| *c != id);
    }

    /// Queues a transfer; it starts on a later poll.
    pub fn new_transfer(
        &mut self,
        peer: DeviceId,
        what: Suspended,
        total: Option<u64>,
    ) -> TransferId {
        let id = TransferId(self.fresh());
        self.transfers.push(Transfer {
            id,
            peer,
            state: TransferState::Waiting(what),
            attempts: 0,
            absent_since: None,
            last: Progress {
                done: 0,
                total,
                suspended: true,
                finished: false,
            },
        });
        id
    }

    pub fn forget_transfer(&mut self, id: TransferId) {
        self.transfers.retain(|t| t.id != id);
    }

    /// The result of call `id`, once it is done (then forgotten).
    pub fn take_call(&mut self, id: CallId) -> Option<Result<Vec<u8>, RpcError>> {
        let i = self
            .calls
            .iter()
            .position(|(c, s)| *c == id && matches!(s, CallState::Done(_)))?;
        match self.calls.swap_remove(i).1 {
            CallState::Done(r) => Some(r),
            CallState::Pending => None,
        }
    }

    /// The result of transfer `id`, once it is done (then forgotten).
    pub fn take_transfer(&mut self, id: TransferId) -> Option<Result<Transferred, BlobError>> {
        let i = self
            .transfers
            .iter()
            .position(|t| t.id == id && matches!(t.state, TransferState::Done(_)))?;
        // `remove`, not `swap_remove`: the table's order is the start order.
        match self.transfers.remove(i).state {
            TransferState::Done(r) => Some(r),
            _ => None,
        }
    }

    /// Whether `id` is a transfer this node knows.
    pub fn progress(&self, id: TransferId, sessions: &Sessions) -> Option<Progress> {
        let t = self.transfers.iter().find(|t| t.id == id)?;
        Some(match &t.state {
            TransferState::Running => sessions
                .get(&t.peer)
                .and_then(|s| s.owned.iter().find_map(|(_, o)| o.progress(id)))
                .unwrap_or(t.last),
            TransferState::Waiting(_) | TransferState::Done(_) => t.last,
        })
    }

    /// Files what node-driven channels completed; says what the
    /// application should hear about.
    pub fn settle(&mut self, done: &mut Vec<Done>, out: &mut impl FnMut(Finished)) {
        for d in done.drain(..) {
            match d {
                Done::Call(id, r) => {
                    if let Some((_, s)) = self.calls.iter_mut().find(|(c, _)| *c == id) {
                        *s = CallState::Done(r);
                        out(Finished::Call(id));
                    }
                }
                Done::Transfer(id, r) => {
                    if let Some(t) = self.transfers.iter_mut().find(|t| t.id == id) {
                        if let Ok(x) = &r {
                            let size = x.size();
                            t.last.done = size;
                            t.last.total = Some(size);
                        }
                        t.last.suspended = false;
                        t.last.finished = true;
                        t.state = TransferState::Done(r);
                        out(Finished::Transfer(id));
                    }
                }
                Done::Suspend(id, _peer, what) => {
                    if let Some(t) = self.transfers.iter_mut().find(|t| t.id == id) {
                        t.last.done = what.have();
                        if t.attempts >= MAX_ATTEMPTS {
                            t.last.finished = true;
                            t.last.suspended = false;
                            t.state = TransferState::Done(Err(BlobError::ChannelClosed));
                            out(Finished::Transfer(id));
                        } else {
                            t.last.suspended = true;
                            t.state = TransferState::Waiting(what);
                        }
                    }
                }
                Done::Served(peer, ev) => out(Finished::Served(peer, ev)),
            }
        }
    }

    /// Peers a waiting transfer needs a session with.
    pub fn waiting_peers(&self) -> impl Iterator<Item = &DeviceId> {
        self.transfers
            .iter()
            .filter(|t| matches!(t.state, TransferState::Waiting(_)))
            .map(|t| &t.peer)
    }

    /// Starts waiting transfers whose peer has a session with no transfer
    /// running, in order; fails those whose peer has had no session for
    /// [`RESUME_WINDOW`].
    pub fn resume(
        &mut self,
        sessions: &mut Sessions,
        now: Instant,
        out: &mut impl FnMut(Finished),
    ) {
        for t in self.transfers.iter_mut() {
            if !matches!(t.state, TransferState::Waiting(_)) {
                continue;
            }
            let Some(s) = sessions.get_mut(&t.peer) else {
                let since = *t.absent_since.get_or_insert(now);
                if now >= since + RESUME_WINDOW {
                    t.last.suspended = false;
                    t.last.finished = true;
                    t.state = TransferState::Done(Err(BlobError::ChannelClosed));
                    out(Finished::Transfer(t.id));
                }
                continue;
            };
            t.absent_since = None;
            if s.owned.iter().any(|(_, o)| o.transfer().is_some()) {
                continue; // one at a time per peer
            }
            // Fails while the previous blob channel is not closed on the
            // wire yet (or no slot is free): try on the next poll.
            let Ok(ch) = s.mux.open(BLOB_SERVICE) else {
                continue;
            };
            let TransferState::Waiting(what) =
                core::mem::replace(&mut t.state, TransferState::Running)
            else {
                continue;
            };
            t.attempts = t.attempts.saturating_add(1);
            t.last.suspended = false;
            let owned = match what {
                Suspended::Put { name, data } => {
                    BlobPut::new(&name, data).map(|p| Owned::Put(t.id, p))
                }
                Suspended::Get { resume, cap } => {
                    BlobGet::resume(resume, cap).map(|g| Owned::Get(t.id, g, cap))
                }
            };
            match owned {
                Ok(o) => s.owned.push((ch, o)),
                Err(e) => {
                    let _ = s.mux.reset(ch, crate::bus::codec::reset_code::ABORTED);
                    t.last.finished = true;
                    t.state = TransferState::Done(Err(e));
                    out(Finished::Transfer(t.id));
                }
            }
        }
    }

    /// When a waiting transfer gives up, at the latest.
    pub fn poll_at(&self) -> Option<Instant> {
        self.transfers
            .iter()
            .filter(|t| matches!(t.state, TransferState::Waiting(_)))
            .filter_map(|t| t.absent_since.map(|s| s + RESUME_WINDOW))
            .min()
    }
}
