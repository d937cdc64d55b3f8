//! One virtio-net NIC as a smoltcp `phy::Device`, over virtio-drivers' `VirtIONetRaw`
//! (modern PCI transport), polled.
//!
//! Receive: [`QUEUE_SIZE`] buffers of [`RX_BUF_LEN`] bytes stay posted; a completed
//! frame is copied out and its buffer re-posted at once, so the RX token only borrows
//! the copy. Transmit: [`TX_SLOTS`] buffers, each `virtio_net_hdr` + frame in one
//! descriptor; completions are reaped on every call, and when all slots are in flight
//! `transmit` returns `None` (smoltcp retries later). Nothing here blocks.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::PciTransport;

use super::virtio_hal::IdentityHal;

/// Virtqueue size (both queues).
pub const QUEUE_SIZE: usize = 16;
/// Size of each receive buffer (virtio-net needs at least 1526).
pub const RX_BUF_LEN: usize = 2048;
/// Transmit buffers in flight at most.
pub const TX_SLOTS: usize = 8;
/// Largest Ethernet frame (no FCS) handed to smoltcp.
pub const MTU: usize = 1514;
/// Room for the virtio-net header in front of each transmitted frame.
const TX_HEADROOM: usize = 32;

type RawNet = VirtIONetRaw<IdentityHal, PciTransport, QUEUE_SIZE>;

/// Why a NIC could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicError {
    /// virtio-drivers refused the device (label from its error).
    Driver(&'static str),
}

impl NicError {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            NicError::Driver(l) => l,
        }
    }
}

fn driver_label(e: virtio_drivers::Error) -> &'static str {
    use virtio_drivers::Error as E;
    match e {
        E::QueueFull => "queue-full",
        E::NotReady => "not-ready",
        E::WrongToken => "wrong-token",
        E::AlreadyUsed => "already-used",
        E::InvalidParam => "invalid-param",
        E::DmaError => "dma-error",
        E::IoError => "io-error",
        E::Unsupported => "unsupported",
        E::ConfigSpaceTooSmall => "config-space-too-small",
        E::ConfigSpaceMissing => "config-space-missing",
        _ => "driver-error",
    }
}

/// Counters of the adapter (all saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Frames handed to smoltcp.
    pub rx_frames: u32,
    /// Frames queued to the device.
    pub tx_frames: u32,
    /// Received frames dropped (bad length, device error).
    pub rx_dropped: u32,
    /// Frames smoltcp built that were not sent (no slot, oversize, device error).
    pub tx_dropped: u32,
}

struct TxPath {
    bufs: Vec<Box<[u8]>>,
    /// Per slot: the virtqueue token and the length queued, while in flight.
    inflight: [Option<(u16, usize)>; TX_SLOTS],
    /// Stand-in buffer for frames that cannot be sent (smoltcp still fills one).
    scratch: Box<[u8]>,
}

/// A virtio-net NIC usable as a smoltcp device.
pub struct VirtioNic {
    // Declared first: dropped first, so queues are unset before the buffers are freed.
    raw: RawNet,
    mac: EthernetAddress,
    rx_bufs: Vec<Box<[u8]>>,
    /// Per virtqueue token: index into `rx_bufs` of the buffer posted under it.
    rx_posted: [Option<usize>; QUEUE_SIZE],
    rx_frame: Box<[u8]>,
    tx: TxPath,
    broken: bool,
    stats: NicStats,
}

impl VirtioNic {
    /// Initialises the device and posts every receive buffer.
    pub fn new(transport: PciTransport) -> Result<VirtioNic, NicError> {
        let mut raw = RawNet::new(transport).map_err(|e| NicError::Driver(driver_label(e)))?;
        raw.disable_interrupts();
        let mac = EthernetAddress(raw.mac_address());
        let mut nic = VirtioNic {
            raw,
            mac,
            rx_bufs: (0..QUEUE_SIZE)
                .map(|_| vec![0u8; RX_BUF_LEN].into_boxed_slice())
                .collect(),
            rx_posted: [None; QUEUE_SIZE],
            rx_frame: vec![0u8; RX_BUF_LEN].into_boxed_slice(),
            tx: TxPath {
                bufs: (0..TX_SLOTS)
                    .map(|_| vec![0u8; MTU + TX_HEADROOM].into_boxed_slice())
                    .collect(),
                inflight: [None; TX_SLOTS],
                scratch: vec![0u8; MTU].into_boxed_slice(),
            },
            broken: false,
            stats: NicStats::default(),
        };
        for index in 0..QUEUE_SIZE {
            nic.post_rx(index)
                .map_err(|e| NicError::Driver(driver_label(e)))?;
        }
        Ok(nic)
    }

    /// The MAC address from the device's configuration space.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// Adapter counters.
    pub fn stats(&self) -> NicStats {
        self.stats
    }

    /// Asks the device for used-buffer notifications (interrupts), once they
    /// are routed (`idle::attach_nic`). With `VIRTIO_F_EVENT_IDX` the device
    /// interrupts whenever a buffer is used past the last one taken.
    pub fn enable_interrupts(&mut self) {
        self.raw.enable_interrupts();
    }

    /// Whether a received frame is waiting (checked before halting).
    pub fn rx_pending(&self) -> bool {
        !self.broken && self.raw.poll_receive().is_some()
    }

    fn post_rx(&mut self, index: usize) -> Result<(), virtio_drivers::Error> {
        let buf = self
            .rx_bufs
            .get_mut(index)
            .ok_or(virtio_drivers::Error::InvalidParam)?;
        // SAFETY: the buffer is owned by `self.rx_bufs`, which outlives `raw`'s use of it
        // (`raw` is dropped first), and is not touched until its token completes.
        let token = unsafe { self.raw.receive_begin(buf) }?;
        let slot = self
            .rx_posted
            .get_mut(usize::from(token))
            .ok_or(virtio_drivers::Error::WrongToken)?;
        *slot = Some(index);
        Ok(())
    }

    /// Takes one completed frame into `rx_frame`; returns its length.
    fn take_rx(&mut self) -> Option<usize> {
        let token = self.raw.poll_receive()?;
        let Some(index) = self
            .rx_posted
            .get_mut(usize::from(token))
            .and_then(Option::take)
        else {
            self.fail("rx token without buffer");
            return None;
        };
        let buf = self.rx_bufs.get_mut(index)?;
        // SAFETY: `buf` is exactly the buffer posted under `token`.
        let done = unsafe { self.raw.receive_complete(token, buf) };
        let frame_len = match done {
            Ok((hdr_len, pkt_len)) => {
                let frame = hdr_len
                    .checked_add(pkt_len)
                    .and_then(|end| buf.get(hdr_len..end))
                    .filter(|f| f.len() <= MTU);
                match (frame, self.rx_frame.get_mut(..pkt_len)) {
                    (Some(src), Some(dst)) => {
                        dst.copy_from_slice(src);
                        Some(pkt_len)
                    }
                    _ => None,
                }
            }
            Err(_) => None,
        };
        if frame_len.is_none() {
            self.stats.rx_dropped = self.stats.rx_dropped.saturating_add(1);
        }
        if self.post_rx(index).is_err() {
            self.fail("rx buffer could not be re-posted");
        }
        frame_len
    }

    fn fail(&mut self, why: &str) {
        if !self.broken {
            log::error!(
                "nic {}: {why}; device disabled",
                dsb_app::marker::Mac(self.mac)
            );
        }
        self.broken = true;
    }
}

impl TxPath {
    /// Collects finished transmissions; returns false if the device misbehaved.
    fn reap(&mut self, raw: &mut RawNet) -> bool {
        while let Some(token) = raw.poll_transmit() {
            let Some(slot) = self
                .inflight
                .iter()
                .position(|f| matches!(f, Some((t, _)) if *t == token))
            else {
                return false;
            };
            let (len, buf) = match (self.inflight.get_mut(slot), self.bufs.get(slot)) {
                (Some(entry), Some(buf)) => match entry.take() {
                    Some((_, len)) => (len, buf),
                    None => return false,
                },
                _ => return false,
            };
            let Some(queued) = buf.get(..len) else {
                return false;
            };
            // SAFETY: `queued` is the slice passed to `transmit_begin` for `token`.
            if unsafe { raw.transmit_complete(token, queued) }.is_err() {
                return false;
            }
        }
        true
    }

    fn free_slot(&self) -> Option<usize> {
        self.inflight.iter().position(Option::is_none)
    }
}

/// Receive token: one frame already copied out of the virtqueue.
pub struct NicRxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for NicRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Transmit token: one free TX slot (checked again when consumed).
pub struct NicTxToken<'a> {
    raw: &'a mut RawNet,
    tx: &'a mut TxPath,
    stats: &'a mut NicStats,
}

impl phy::TxToken for NicTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let NicTxToken { raw, tx, stats } = self;
        let ok = tx.reap(raw);
        let slot = tx.free_slot().filter(|_| ok && len <= MTU);
        let Some(slot) = slot else {
            stats.tx_dropped = stats.tx_dropped.saturating_add(1);
            return match tx.scratch.get_mut(..len) {
                Some(buf) => f(buf),
                None => f(&mut vec![0u8; len]),
            };
        };
        let Some(buf) = tx.bufs.get_mut(slot) else {
            stats.tx_dropped = stats.tx_dropped.saturating_add(1);
            return f(&mut vec![0u8; len]);
        };
        let hdr_len = raw.fill_buffer_header(buf).unwrap_or(0);
        let total = hdr_len + len;
        let result = match buf.get_mut(hdr_len..total) {
            Some(frame) if hdr_len > 0 => f(frame),
            _ => {
                stats.tx_dropped = stats.tx_dropped.saturating_add(1);
                return f(&mut vec![0u8; len]);
            }
        };
        let Some(queued) = buf.get(..total) else {
            return result;
        };
        // SAFETY: the slot's buffer is not touched again until `reap` sees its token.
        match unsafe { raw.transmit_begin(queued) } {
            Ok(token) => {
                if let Some(entry) = tx.inflight.get_mut(slot) {
                    *entry = Some((token, total));
                }
                stats.tx_frames = stats.tx_frames.saturating_add(1);
            }
            Err(_) => stats.tx_dropped = stats.tx_dropped.saturating_add(1),
        }
        result
    }
}

impl phy::Device for VirtioNic {
    type RxToken<'a>
        = NicRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = NicTxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.broken {
            return None;
        }
        let len = self.take_rx()?;
        self.stats.rx_frames = self.stats.rx_frames.saturating_add(1);
        let frame = self.rx_frame.get(..len)?;
        Some((
            NicRxToken { frame },
            NicTxToken {
                raw: &mut self.raw,
                tx: &mut self.tx,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if self.broken {
            return None;
        }
        if !self.tx.reap(&mut self.raw) {
            self.fail("tx completion for unknown token");
            return None;
        }
        self.tx.free_slot()?;
        Some(NicTxToken {
            raw: &mut self.raw,
            tx: &mut self.tx,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(TX_SLOTS);
        caps
    }
}
