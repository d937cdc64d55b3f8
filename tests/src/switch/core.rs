//! The switch itself, without sockets: frames and time go in, frames for
//! ports come out (sans-IO, like the rest of the project). The socket loop in
//! [`super::net`] and the unit tests drive the same code.

use smoltcp::time::{Duration, Instant};
use std::collections::VecDeque;
use std::fmt;

use super::faults::{Egress, FaultConfig, REORDER_HOLD};
use super::table::{MacTable, DEFAULT_AGEING, DEFAULT_CAPACITY};
use crate::link::TimedQueue;

/// Most ports of one switch.
pub const MAX_PORTS: usize = 64;
/// Shortest accepted frame: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Longest accepted frame: 1514 bytes plus one VLAN tag, no FCS.
pub const MAX_FRAME: usize = 1518;
/// Default cap on frames waiting in one egress port (delay, rate, reorder hold).
pub const DEFAULT_QUEUE_FRAMES: usize = 512;
/// Largest accepted queue cap.
pub const MAX_QUEUE_FRAMES: usize = 65_536;

/// Settings of one switch.
#[derive(Clone, Debug)]
pub struct SwitchConfig {
    /// Number of ports, `1..=MAX_PORTS`.
    pub ports: usize,
    /// Faults applied on every egress port.
    pub faults: FaultConfig,
    /// Seed of every port's fault stream.
    pub seed: u64,
    /// Learning-table size.
    pub mac_capacity: usize,
    /// Learning-table ageing time.
    pub mac_ageing: Duration,
    /// Frames waiting per egress port at most; more are dropped (`queue_full`).
    pub queue_frames: usize,
}

impl SwitchConfig {
    /// `ports` ports, no faults, seed 1, default table and queue sizes.
    pub fn new(ports: usize) -> SwitchConfig {
        SwitchConfig {
            ports,
            faults: FaultConfig::default(),
            seed: 1,
            mac_capacity: DEFAULT_CAPACITY,
            mac_ageing: DEFAULT_AGEING,
            queue_frames: DEFAULT_QUEUE_FRAMES,
        }
    }

    /// Checks every limit; one-line errors.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_PORTS).contains(&self.ports) {
            return Err(format!("ports: {} is outside 1..={MAX_PORTS}", self.ports));
        }
        if !(1..=MAX_QUEUE_FRAMES).contains(&self.queue_frames) {
            return Err(format!(
                "queue: {} frames is outside 1..={MAX_QUEUE_FRAMES}",
                self.queue_frames
            ));
        }
        if self.mac_capacity == 0 || self.mac_capacity > 1 << 20 {
            return Err(format!(
                "mac table: {} entries is outside 1..={}",
                self.mac_capacity,
                1 << 20
            ));
        }
        self.faults.validate()
    }
}

/// Counters of one port (all saturating in practice: u64).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Datagrams received from the port's peer.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames the port's socket took.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Received datagrams that are not a frame (too short, too long, multicast source).
    pub bad_frame: u64,
    /// Received unicast frames for a MAC learnt on the same port (not forwarded).
    pub filtered: u64,
    /// Copies to this port dropped by `LOSS`.
    pub lost: u64,
    /// Copies to this port dropped because its queue was full.
    pub queue_full: u64,
    /// Extra copies sent by `DUP`.
    pub duplicated: u64,
    /// Frames sent after a later frame to this port (`REORDER`).
    pub reordered: u64,
    /// Frames for this port that the socket refused.
    pub send_error: u64,
    /// Frames for this port dropped because its peer address is not known yet.
    pub no_peer: u64,
}

impl PortStats {
    /// Adds `o` into `self` (for totals).
    pub fn add(&mut self, o: &PortStats) {
        self.rx_frames += o.rx_frames;
        self.rx_bytes += o.rx_bytes;
        self.tx_frames += o.tx_frames;
        self.tx_bytes += o.tx_bytes;
        self.bad_frame += o.bad_frame;
        self.filtered += o.filtered;
        self.lost += o.lost;
        self.queue_full += o.queue_full;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.send_error += o.send_error;
        self.no_peer += o.no_peer;
    }

    /// Every frame dropped for this port, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.lost + self.queue_full + self.send_error + self.no_peer
    }
}

impl fmt::Display for PortStats {
    /// `rx=.. rx_bytes=.. tx=.. tx_bytes=.. lost=.. queue_full=.. send_error=..
    /// no_peer=.. bad=.. filtered=.. dup=.. reordered=..`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx={} rx_bytes={} tx={} tx_bytes={} lost={} queue_full={} send_error={} \
             no_peer={} bad={} filtered={} dup={} reordered={}",
            self.rx_frames,
            self.rx_bytes,
            self.tx_frames,
            self.tx_bytes,
            self.lost,
            self.queue_full,
            self.send_error,
            self.no_peer,
            self.bad_frame,
            self.filtered,
            self.duplicated,
            self.reordered
        )
    }
}

enum Event {
    /// A copy whose delay and serialisation are over.
    Deliver {
        port: usize,
        frame: Vec<u8>,
        reorder: bool,
    },
    /// A held copy's wait for a later frame is over.
    HoldTimeout { port: usize, id: u64 },
}

struct Port {
    egress: Egress,
    /// Copies queued for this port (scheduled or held).
    queued: usize,
    /// The copy held back for reordering, with its id.
    held: Option<(u64, Vec<u8>)>,
    stats: PortStats,
}

/// A learning Ethernet switch with per-port fault injection.
pub struct Switch {
    cfg: SwitchConfig,
    ports: Vec<Port>,
    table: MacTable,
    queue: TimedQueue<Event>,
    out: VecDeque<(usize, Vec<u8>)>,
    next_hold: u64,
}

impl Switch {
    /// A switch as configured (validated first).
    pub fn new(cfg: SwitchConfig) -> Result<Switch, String> {
        cfg.validate()?;
        let ports = (0..cfg.ports)
            .map(|i| Port {
                egress: Egress::new(cfg.seed, i),
                queued: 0,
                held: None,
                stats: PortStats::default(),
            })
            .collect();
        Ok(Switch {
            table: MacTable::new(cfg.mac_capacity, cfg.mac_ageing),
            cfg,
            ports,
            queue: TimedQueue::default(),
            out: VecDeque::new(),
            next_hold: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SwitchConfig {
        &self.cfg
    }

    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.ports.len()
    }

    /// Counters of `port`.
    pub fn stats(&self, port: usize) -> Option<&PortStats> {
        self.ports.get(port).map(|p| &p.stats)
    }

    /// Counters of every port added up.
    pub fn totals(&self) -> PortStats {
        let mut t = PortStats::default();
        for p in &self.ports {
            t.add(&p.stats);
        }
        t
    }

    /// The learning table.
    pub fn table(&self) -> &MacTable {
        &self.table
    }

    /// Copies waiting in every port.
    pub fn in_flight(&self) -> usize {
        self.ports.iter().map(|p| p.queued).sum()
    }

    /// The socket of `port` refused a frame of `len` bytes (moved from `tx` to `send_error`).
    pub fn note_send_error(&mut self, port: usize, len: usize) {
        if let Some(p) = self.ports.get_mut(port) {
            p.stats.tx_frames = p.stats.tx_frames.saturating_sub(1);
            p.stats.tx_bytes = p.stats.tx_bytes.saturating_sub(len as u64);
            p.stats.send_error += 1;
        }
    }

    /// A frame of `len` bytes for `port` had nowhere to go: peer unknown or
    /// gone (moved from `tx` to `no_peer`).
    pub fn note_no_peer(&mut self, port: usize, len: usize) {
        if let Some(p) = self.ports.get_mut(port) {
            p.stats.tx_frames = p.stats.tx_frames.saturating_sub(1);
            p.stats.tx_bytes = p.stats.tx_bytes.saturating_sub(len as u64);
            p.stats.no_peer += 1;
        }
    }

    /// A datagram arrived on `port` at `now`: learn its source, forward it.
    pub fn ingress(&mut self, now: Instant, port: usize, frame: &[u8]) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        p.stats.rx_frames += 1;
        p.stats.rx_bytes += frame.len() as u64;
        let (Some(dst), Some(src)) = (frame.get(0..6), frame.get(6..12)) else {
            p.stats.bad_frame += 1;
            return;
        };
        if frame.len() < MIN_FRAME || frame.len() > MAX_FRAME || src[0] & 1 == 1 {
            p.stats.bad_frame += 1;
            return;
        }
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(src);
        self.table.learn(src_mac, port, now);
        let flood = dst[0] & 1 == 1;
        let known = if flood {
            None
        } else {
            let mut d = [0u8; 6];
            d.copy_from_slice(dst);
            self.table.lookup(&d, now)
        };
        match known {
            Some(target) if target == port => {
                if let Some(p) = self.ports.get_mut(port) {
                    p.stats.filtered += 1;
                }
            }
            Some(target) => self.enqueue(now, target, frame),
            None => {
                for target in 0..self.ports.len() {
                    if target != port {
                        self.enqueue(now, target, frame);
                    }
                }
            }
        }
    }

    fn enqueue(&mut self, now: Instant, target: usize, frame: &[u8]) {
        let faults = self.cfg.faults;
        let cap = self.cfg.queue_frames;
        let Some(p) = self.ports.get_mut(target) else {
            return;
        };
        let d = p.egress.decide(&faults);
        if d.lost {
            p.stats.lost += 1;
            return;
        }
        let copies = if d.duplicate { 2 } else { 1 };
        for copy in 0..copies {
            if p.queued >= cap {
                p.stats.queue_full += 1;
                continue;
            }
            let at = p.egress.schedule(&faults, now, frame.len());
            p.queued += 1;
            if copy == 1 {
                p.stats.duplicated += 1;
            }
            self.queue.push(
                at,
                Event::Deliver {
                    port: target,
                    frame: frame.to_vec(),
                    reorder: d.reorder && copy == 0,
                },
            );
        }
    }

    /// When [`Switch::poll_transmit`] has something to do next.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.out.is_empty() {
            return Some(Instant::ZERO);
        }
        self.queue.next_time()
    }

    /// The next frame due at `now`, and the port it leaves through.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        if let Some(x) = self.out.pop_front() {
            return Some(x);
        }
        while let Some(event) = self.queue.pop_due(now) {
            match event {
                Event::Deliver {
                    port,
                    frame,
                    reorder,
                } => {
                    let Some(p) = self.ports.get_mut(port) else {
                        continue;
                    };
                    if reorder && p.held.is_none() {
                        let id = self.next_hold;
                        self.next_hold += 1;
                        p.held = Some((id, frame));
                        self.queue
                            .push(now + REORDER_HOLD, Event::HoldTimeout { port, id });
                        continue;
                    }
                    let held = p.held.take();
                    self.emit(port, frame);
                    if let Some((_, h)) = held {
                        if let Some(p) = self.ports.get_mut(port) {
                            p.stats.reordered += 1;
                        }
                        self.emit(port, h);
                    }
                }
                Event::HoldTimeout { port, id } => {
                    let Some(p) = self.ports.get_mut(port) else {
                        continue;
                    };
                    if p.held.as_ref().is_some_and(|(h, _)| *h == id) {
                        if let Some((_, frame)) = p.held.take() {
                            self.emit(port, frame);
                        }
                    }
                }
            }
            if !self.out.is_empty() {
                break;
            }
        }
        self.out.pop_front()
    }

    fn emit(&mut self, port: usize, frame: Vec<u8>) {
        if let Some(p) = self.ports.get_mut(port) {
            p.queued = p.queued.saturating_sub(1);
            p.stats.tx_frames += 1;
            p.stats.tx_bytes += frame.len() as u64;
            self.out.push_back((port, frame));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCAST: [u8; 6] = [0xff; 6];

    fn mac(n: u8) -> [u8; 6] {
        [0x52, 0x54, 0, 0x12, 0x34, n]
    }

    /// A frame from `src` to `dst` whose payload carries `seq`.
    fn frame(dst: [u8; 6], src: [u8; 6], seq: u32) -> Vec<u8> {
        let mut f = Vec::with_capacity(64);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.extend_from_slice(&seq.to_be_bytes());
        f.resize(64, 0);
        f
    }

    fn seq_of(f: &[u8]) -> u32 {
        u32::from_be_bytes([f[14], f[15], f[16], f[17]])
    }

    fn drain(sw: &mut Switch, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let mut v = vec![];
        while let Some(x) = sw.poll_transmit(now) {
            v.push(x);
        }
        v
    }

    fn switch(ports: usize, faults: FaultConfig) -> Switch {
        let mut cfg = SwitchConfig::new(ports);
        cfg.faults = faults;
        Switch::new(cfg).unwrap()
    }

    #[test]
    fn floods_unknown_and_broadcast_then_forwards_learnt_unicast() {
        let mut sw = switch(3, FaultConfig::default());
        let t = Instant::from_millis(1);
        sw.ingress(t, 0, &frame(BCAST, mac(1), 0));
        let out: Vec<usize> = drain(&mut sw, t).into_iter().map(|(p, _)| p).collect();
        assert_eq!(out, vec![1, 2], "broadcast to every other port");
        // mac(2) is unknown: flooded.
        sw.ingress(t, 0, &frame(mac(2), mac(1), 1));
        assert_eq!(drain(&mut sw, t).len(), 2);
        // mac(2) speaks on port 2; now unicast to it goes to port 2 only.
        sw.ingress(t, 2, &frame(mac(1), mac(2), 2));
        let out = drain(&mut sw, t);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 0, "mac(1) was learnt on port 0");
        sw.ingress(t, 0, &frame(mac(2), mac(1), 3));
        let out = drain(&mut sw, t);
        assert_eq!(out.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2]);
        // Multicast is flooded like broadcast.
        let group = [0x01, 0x00, 0x5e, 0x2a, 0x00, 0x01];
        sw.ingress(t, 1, &frame(group, mac(3), 4));
        assert_eq!(drain(&mut sw, t).len(), 2);
        assert_eq!(sw.stats(0).unwrap().rx_frames, 3);
        assert_eq!(sw.stats(2).unwrap().tx_frames, 4);
    }

    #[test]
    fn bad_frames_and_same_port_unicast_are_counted_not_forwarded() {
        let mut sw = switch(2, FaultConfig::default());
        let t = Instant::ZERO;
        sw.ingress(t, 0, &[0u8; 10]);
        sw.ingress(t, 0, &vec![0u8; MAX_FRAME + 1]);
        sw.ingress(t, 0, &frame(mac(2), BCAST, 0)); // multicast source
        assert_eq!(sw.stats(0).unwrap().bad_frame, 3);
        sw.ingress(t, 0, &frame(BCAST, mac(1), 0));
        sw.ingress(t, 0, &frame(BCAST, mac(2), 0));
        drain(&mut sw, t);
        sw.ingress(t, 0, &frame(mac(2), mac(1), 0));
        assert!(drain(&mut sw, t).is_empty());
        assert_eq!(sw.stats(0).unwrap().filtered, 1);
        // Nonexistent port: ignored.
        sw.ingress(t, 9, &frame(BCAST, mac(1), 0));
    }

    /// Sends `n` frames from port 0 to a learnt MAC on port 1, one per `gap`,
    /// and collects what port 1 gets (with times) until everything is out.
    fn stream(sw: &mut Switch, n: u32, gap: Duration) -> Vec<(Instant, u32)> {
        let t0 = Instant::from_millis(1);
        sw.ingress(t0, 1, &frame(BCAST, mac(2), u32::MAX));
        drain(sw, Instant::from_secs(100));
        let mut got = vec![];
        let mut now = t0;
        let mut sent = 0;
        let end = Instant::from_secs(100);
        while now < end {
            if sent < n {
                sw.ingress(now, 0, &frame(mac(2), mac(1), sent));
                sent += 1;
            }
            while let Some((p, f)) = sw.poll_transmit(now) {
                if p == 1 {
                    got.push((now, seq_of(&f)));
                }
            }
            if sent >= n && sw.in_flight() == 0 {
                break;
            }
            now += match (sent < n, sw.poll_at()) {
                (true, _) => gap,
                (false, Some(at)) if at > now => at - now,
                _ => Duration::from_micros(1),
            };
        }
        got
    }

    #[test]
    fn loss_drops_about_the_given_share() {
        let mut sw = switch(
            2,
            FaultConfig {
                loss_pct: 10.0,
                ..Default::default()
            },
        );
        let got = stream(&mut sw, 5000, Duration::from_micros(100));
        let lost = sw.stats(1).unwrap().lost;
        assert_eq!(got.len() as u64 + lost, 5000);
        assert!((400..600).contains(&lost), "lost {lost}");
    }

    #[test]
    fn dup_sends_extra_copies() {
        let mut sw = switch(
            2,
            FaultConfig {
                dup_pct: 20.0,
                ..Default::default()
            },
        );
        let got = stream(&mut sw, 2000, Duration::from_micros(100));
        let dup = sw.stats(1).unwrap().duplicated;
        assert!((300..500).contains(&dup), "dup {dup}");
        assert_eq!(got.len() as u64, 2000 + dup);
        let mut seqs: Vec<u32> = got.iter().map(|g| g.1).collect();
        seqs.dedup();
        assert_eq!(seqs.len(), 2000, "a copy follows its original");
    }

    #[test]
    fn reorder_makes_later_frames_overtake() {
        let mut sw = switch(
            2,
            FaultConfig {
                reorder_pct: 10.0,
                ..Default::default()
            },
        );
        let got = stream(&mut sw, 2000, Duration::from_micros(100));
        assert_eq!(got.len(), 2000, "reordering loses nothing");
        let reordered = sw.stats(1).unwrap().reordered;
        let inversions = got.windows(2).filter(|w| w[1].1 < w[0].1).count() as u64;
        assert!((150..250).contains(&reordered), "reordered {reordered}");
        assert_eq!(inversions, reordered);
    }

    #[test]
    fn a_held_frame_goes_out_by_itself_when_nothing_follows() {
        let mut sw = switch(
            2,
            FaultConfig {
                reorder_pct: 100.0,
                ..Default::default()
            },
        );
        let got = stream(&mut sw, 1, Duration::from_millis(1));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Instant::from_millis(1) + REORDER_HOLD);
        assert_eq!(sw.stats(1).unwrap().reordered, 0);
    }

    #[test]
    fn delay_shifts_every_frame() {
        let delay = Duration::from_millis(30);
        let mut sw = switch(
            2,
            FaultConfig {
                delay,
                ..Default::default()
            },
        );
        let got = stream(&mut sw, 10, Duration::from_millis(1));
        for (i, (at, seq)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u32);
            let sent = Instant::from_millis(1) + Duration::from_millis(i as u64);
            assert_eq!(*at, sent + delay);
        }
    }

    #[test]
    fn rate_limits_throughput_and_the_queue_is_bounded() {
        // 64-byte frames offered every 10 us (51 Mbit/s) into 8 Mbit/s.
        let mut cfg = SwitchConfig::new(2);
        cfg.faults.rate_mbps = Some(8.0);
        cfg.queue_frames = 100;
        let mut sw = Switch::new(cfg).unwrap();
        let got = stream(&mut sw, 1000, Duration::from_micros(10));
        let st = sw.stats(1).unwrap();
        assert!(st.queue_full > 700, "{st}");
        assert_eq!(got.len() as u64 + st.queue_full, 1000);
        // Back-to-back departures are 64 us apart (64 bytes at 1 byte/us); the
        // test observes in 10 us steps while it is still sending.
        let span = (got[200].0 - got[0].0).total_micros() as i64;
        assert!((span - 200 * 64).abs() <= 10, "span {span} us");
        let tail: Vec<i64> = got[got.len() - 20..]
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).total_micros() as i64)
            .collect();
        assert!(tail.iter().all(|g| *g == 64), "{tail:?}");
    }

    #[test]
    fn same_seed_same_run() {
        let faults = FaultConfig {
            loss_pct: 5.0,
            dup_pct: 5.0,
            reorder_pct: 5.0,
            ..Default::default()
        };
        let mut a = switch(2, faults);
        let mut b = switch(2, faults);
        let ga = stream(&mut a, 1000, Duration::from_micros(50));
        let gb = stream(&mut b, 1000, Duration::from_micros(50));
        assert_eq!(ga, gb);
        assert_eq!(a.stats(1), b.stats(1));
    }

    #[test]
    fn bad_configs_are_one_line_errors() {
        let mut cfg = SwitchConfig::new(0);
        assert!(Switch::new(cfg.clone())
            .err()
            .unwrap()
            .starts_with("ports:"));
        cfg.ports = 2;
        cfg.queue_frames = 0;
        assert!(Switch::new(cfg.clone())
            .err()
            .unwrap()
            .starts_with("queue:"));
        cfg.queue_frames = 10;
        cfg.faults.loss_pct = 120.0;
        assert!(Switch::new(cfg).err().unwrap().starts_with("LOSS:"));
    }
}
