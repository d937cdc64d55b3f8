//! Per-channel state: the two half-streams, their buffers and their credit.
//!
//! Send half: `write` appends to a bounded buffer; DATA leaves it only within
//! the credit the peer granted (ACCEPT/OPEN initial credit + WINDOW_UPDATEs).
//! Receive half: the buffer holds at most the credit we granted; every byte
//! the application reads is granted back (batched, see [`Channel::take_grant`]).

use alloc::collections::VecDeque;

use super::name::ServiceName;

/// State of our sending direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendState {
    /// `write` is allowed.
    Open,
    /// `finish` was called; FIN goes out once the buffer is drained.
    FinQueued,
    /// FIN has been emitted.
    FinSent,
    /// We reset the channel (RESET pending or emitted).
    Reset,
}

/// State of the peer's sending direction, as we receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvState {
    /// DATA may arrive.
    Open,
    /// The peer's FIN arrived.
    FinReceived,
}

/// One multiplexed channel.
#[derive(Debug)]
pub(crate) struct Channel {
    pub id: u32,
    pub name: ServiceName,
    /// We sent the OPEN.
    pub local_opened: bool,
    /// Our OPEN was accepted (always true for channels the peer opened).
    pub accepted: bool,
    /// Control frames still to emit.
    pub open_pending: bool,
    pub accept_pending: bool,
    pub reset_pending: Option<u16>,

    pub send_state: SendState,
    pub send_buf: VecDeque<u8>,
    /// Bytes the peer still lets us send on this channel.
    pub send_credit: u32,

    pub recv_state: RecvState,
    pub recv_buf: VecDeque<u8>,
    /// Our receive window (= receive buffer cap).
    pub recv_window: u32,
    /// Credit granted to the peer and not yet used by DATA.
    pub recv_outstanding: u32,
    /// Bytes read by the application and not yet granted back.
    pub recv_pending_grant: u32,

    /// A `Readable` event was emitted and the buffer has not been drained since.
    pub readable_signalled: bool,
    /// A `write` was short; emit `Writable` when space frees up.
    pub want_writable: bool,
}

impl Channel {
    /// A channel this side opens (OPEN still to be emitted).
    pub fn new_local(id: u32, name: ServiceName, recv_window: u32) -> Channel {
        let mut c = Channel::new(id, name, recv_window, 0);
        c.local_opened = true;
        c.accepted = false;
        c.open_pending = true;
        c
    }

    /// A channel the peer opened and we accept (ACCEPT still to be emitted).
    pub fn new_remote(id: u32, name: ServiceName, recv_window: u32, send_credit: u32) -> Channel {
        let mut c = Channel::new(id, name, recv_window, send_credit);
        c.accept_pending = true;
        c
    }

    fn new(id: u32, name: ServiceName, recv_window: u32, send_credit: u32) -> Channel {
        Channel {
            id,
            name,
            local_opened: false,
            accepted: true,
            open_pending: false,
            accept_pending: false,
            reset_pending: None,
            send_state: SendState::Open,
            send_buf: VecDeque::new(),
            send_credit,
            recv_state: RecvState::Open,
            recv_buf: VecDeque::new(),
            recv_window,
            // The initial credit travels in our OPEN/ACCEPT.
            recv_outstanding: recv_window,
            recv_pending_grant: 0,
            readable_signalled: false,
            want_writable: false,
        }
    }

    /// We reset it (frames for it are stale from now on).
    pub fn is_locally_reset(&self) -> bool {
        self.send_state == SendState::Reset
    }

    /// Both directions are over on the wire (what `duplicate-name` is judged by):
    /// our FIN emitted or our reset, and the peer's FIN received or our reset.
    pub fn wire_closed(&self) -> bool {
        match self.send_state {
            SendState::Reset => true,
            SendState::FinSent => self.recv_state == RecvState::FinReceived,
            SendState::Open | SendState::FinQueued => false,
        }
    }

    /// The slot can be released: nothing left to emit and nothing left to read.
    pub fn is_done(&self) -> bool {
        if self.reset_pending.is_some() {
            return false;
        }
        if self.is_locally_reset() {
            return true;
        }
        self.wire_closed() && self.recv_buf.is_empty()
    }

    /// Appends received payload (credit already checked by the caller).
    pub fn push_recv(&mut self, data: &[u8]) {
        self.recv_buf.extend(data);
    }

    /// Copies up to `out.len()` received bytes out, records them for re-granting.
    pub fn read_into(&mut self, out: &mut [u8]) -> usize {
        let n = drain_into(&mut self.recv_buf, out);
        if self.recv_state == RecvState::Open {
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            self.recv_pending_grant = self.recv_pending_grant.saturating_add(n32);
        }
        n
    }

    /// Returns a WINDOW_UPDATE increment when enough has been read to be worth
    /// granting (half the window), or nothing once the peer has finished.
    pub fn take_grant(&mut self) -> Option<u32> {
        let threshold = (self.recv_window / 2).max(1);
        if self.recv_state != RecvState::Open
            || self.send_state == SendState::Reset
            || self.open_pending
            || self.accept_pending
            || self.recv_pending_grant < threshold
        {
            return None;
        }
        let inc = self.recv_pending_grant;
        self.recv_pending_grant = 0;
        self.recv_outstanding = self.recv_outstanding.saturating_add(inc);
        Some(inc)
    }

    /// Bytes that may go out now on this channel, before session credit and frame size.
    pub fn sendable(&self) -> usize {
        if !self.accepted
            || self.open_pending
            || self.accept_pending
            || self.reset_pending.is_some()
        {
            return 0;
        }
        self.send_buf.len().min(self.send_credit as usize)
    }

    /// Moves `out.len()` buffered bytes into `out` and charges the credit.
    pub fn take_send(&mut self, out: &mut [u8]) -> usize {
        let n = drain_into(&mut self.send_buf, out);
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        self.send_credit = self.send_credit.saturating_sub(n32);
        n
    }

    /// FIN can be emitted now (finish called, buffer drained, OPEN already out).
    pub fn fin_ready(&self) -> bool {
        self.send_state == SendState::FinQueued
            && self.send_buf.is_empty()
            && !self.open_pending
            && self.reset_pending.is_none()
    }
}

/// Moves up to `out.len()` bytes from the front of `buf` into `out`.
fn drain_into(buf: &mut VecDeque<u8>, out: &mut [u8]) -> usize {
    let n = out.len().min(buf.len());
    let (a, b) = buf.as_slices();
    let from_a = n.min(a.len());
    let from_b = n.saturating_sub(from_a);
    if let (Some(dst_a), Some(src_a)) = (out.get_mut(..from_a), a.get(..from_a)) {
        dst_a.copy_from_slice(src_a);
    }
    if let (Some(dst_b), Some(src_b)) = (out.get_mut(from_a..n), b.get(..from_b)) {
        dst_b.copy_from_slice(src_b);
    }
    buf.drain(..n);
    n
}
