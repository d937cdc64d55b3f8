//! The transports of one node: TCP always, udp-sec when enabled.

use dsb_transports::tcp::TcpTransport;
use dsb_transports::transport::{Cx, Transport, TransportEvent, TransportKind};
use dsb_transports::udpsec::UdpSecTransport;
use smoltcp::time::Instant;

pub(crate) struct Transports {
    pub tcp: TcpTransport,
    pub udpsec: Option<UdpSecTransport>,
}

impl Transports {
    pub fn get(&mut self, kind: TransportKind) -> Option<&mut dyn Transport> {
        match kind {
            TransportKind::Tcp => Some(&mut self.tcp),
            TransportKind::UdpSec => self.udpsec.as_mut().map(|u| u as &mut dyn Transport),
        }
    }

    pub fn poll(&mut self, cx: &mut Cx<'_>) {
        self.tcp.poll(cx);
        if let Some(u) = self.udpsec.as_mut() {
            u.poll(cx);
        }
    }

    pub fn poll_event(&mut self) -> Option<(TransportKind, TransportEvent)> {
        if let Some(e) = self.tcp.poll_event() {
            return Some((TransportKind::Tcp, e));
        }
        let e = self.udpsec.as_mut()?.poll_event()?;
        Some((TransportKind::UdpSec, e))
    }

    pub fn poll_at(&self) -> Option<Instant> {
        let u = self.udpsec.as_ref().and_then(|u| u.poll_at());
        match (self.tcp.poll_at(), u) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes `conn` of `kind`, if that transport exists.
    pub fn close(
        &mut self,
        cx: &mut Cx<'_>,
        kind: TransportKind,
        conn: dsb_transports::transport::ConnId,
    ) {
        if let Some(t) = self.get(kind) {
            t.close(cx, conn);
        }
    }

    /// Ends `conn` at once (its peer is gone); see `Transport::abort`.
    pub fn abort(
        &mut self,
        cx: &mut Cx<'_>,
        kind: TransportKind,
        conn: dsb_transports::transport::ConnId,
    ) {
        if let Some(t) = self.get(kind) {
            t.abort(cx, conn);
        }
    }
}
