//! A deterministic point-to-point link in simulated time, and a driver that
//! pumps two sans-IO endpoints over it.
//!
//! Per direction: a drop-tail queue of `queue_packets` datagrams in front of
//! a serializer of `bandwidth_bps` (plus `overhead_bytes` per datagram, e.g.
//! 28 for IPv4 + UDP), then Bernoulli loss, then one-way propagation `delay`;
//! optional duplication and reordering (an extra random delay for some
//! datagrams, so later ones overtake them). All randomness comes from one
//! seeded ChaCha8 stream: the same seed gives the same run, to the datagram.
//!
//! [`Sim`] drives two [`Node`]s (anything with the quinn-proto-style
//! `handle_datagram` / `poll_transmit` / `poll_timeout` / `handle_timeout`
//! shape) and jumps from event to event (the earliest of the next delivery
//! and both nodes' timers), so seconds of simulated time take milliseconds.
//! Every datagram a node emits is checked against `max_datagram`.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smoltcp::time::{Duration, Instant};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Direction of travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// From node A to node B.
    AtoB,
    /// From node B to node A.
    BtoA,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::AtoB => 0,
            Dir::BtoA => 1,
        }
    }
}

/// One direction of the link.
#[derive(Clone, Debug)]
pub struct PathConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Serialization rate in bit/s (`None`: infinitely fast).
    pub bandwidth_bps: Option<u64>,
    /// Bytes added to every datagram for serialization (headers below UDP).
    pub overhead_bytes: usize,
    /// Datagrams the queue holds, including the one being serialized.
    pub queue_packets: usize,
    /// Probability that a datagram is lost after serialization.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram gets an extra delay of up to `reorder_delay`.
    pub reorder: f64,
    /// Largest extra delay for reordered (and duplicated) datagrams.
    pub reorder_delay: Duration,
    /// Drop everything (a black hole).
    pub blackhole: bool,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            delay: Duration::from_millis(5),
            bandwidth_bps: None,
            overhead_bytes: 0,
            queue_packets: usize::MAX,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(2),
            blackhole: false,
        }
    }
}

impl PathConfig {
    /// The benchmark path: 5 ms one way, 100 Mbit/s, 64-datagram drop-tail
    /// queue, Bernoulli `loss`.
    pub fn benchmark(loss: f64) -> Self {
        PathConfig {
            delay: Duration::from_millis(5),
            bandwidth_bps: Some(100_000_000),
            queue_packets: 64,
            loss,
            ..PathConfig::default()
        }
    }
}

/// Both directions.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// A → B.
    pub a_to_b: PathConfig,
    /// B → A.
    pub b_to_a: PathConfig,
}

impl LinkConfig {
    /// The same configuration both ways.
    pub fn symmetric(p: PathConfig) -> Self {
        LinkConfig {
            a_to_b: p.clone(),
            b_to_a: p,
        }
    }
}

/// What one direction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Datagrams offered.
    pub sent: u64,
    /// Datagrams delivered (duplicates included).
    pub delivered: u64,
    /// Lost to random loss or the black hole.
    pub lost: u64,
    /// Dropped because the queue was full.
    pub queue_dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Datagrams given an extra delay.
    pub reordered: u64,
    /// Payload bytes offered.
    pub bytes: u64,
}

#[derive(Default)]
struct PathState {
    busy_until: Option<Instant>,
    /// Serialization finish times of queued datagrams (front = oldest).
    queue: VecDeque<Instant>,
    stats: PathStats,
}

/// Items ordered by the time they are due, first-in first-out among equal
/// times (a sequence number breaks ties), so a seeded run replays exactly.
/// Shared by this link model and the simulated Ethernet segment.
pub struct TimedQueue<T> {
    heap: BinaryHeap<Reverse<Timed<T>>>,
    seq: u64,
}

struct Timed<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Timed<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<T> Eq for Timed<T> {}
impl<T> PartialOrd for Timed<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Timed<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

impl<T> Default for TimedQueue<T> {
    fn default() -> Self {
        TimedQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> TimedQueue<T> {
    /// Queues `item`, due at `at`.
    pub fn push(&mut self, at: Instant, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Timed {
            at,
            seq: self.seq,
            item,
        }));
    }

    /// When the earliest item is due.
    pub fn next_time(&self) -> Option<Instant> {
        self.heap.peek().map(|r| r.0.at)
    }

    /// The earliest item if it is due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.next_time()? > now {
            return None;
        }
        self.heap.pop().map(|r| r.0.item)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The link model.
pub struct Link {
    cfg: [PathConfig; 2],
    paths: [PathState; 2],
    rng: ChaCha8Rng,
    in_flight: TimedQueue<(Dir, Vec<u8>)>,
}

impl Link {
    /// A link with configuration `cfg`, randomness from `seed`.
    pub fn new(cfg: LinkConfig, seed: u64) -> Self {
        Link {
            cfg: [cfg.a_to_b, cfg.b_to_a],
            paths: [PathState::default(), PathState::default()],
            rng: ChaCha8Rng::seed_from_u64(seed),
            in_flight: TimedQueue::default(),
        }
    }

    /// The configuration of one direction (change it mid-run, e.g. a black hole).
    pub fn path_mut(&mut self, dir: Dir) -> &mut PathConfig {
        &mut self.cfg[dir.index()]
    }

    /// Counters of one direction.
    pub fn stats(&self, dir: Dir) -> &PathStats {
        &self.paths[dir.index()].stats
    }

    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits -> [0, 1)
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        let m = max.total_micros();
        if m == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.rng.next_u64() % (m + 1))
    }

    /// Offer a datagram at `now`.
    pub fn send(&mut self, now: Instant, dir: Dir, bytes: &[u8]) {
        let i = dir.index();
        let cfg = self.cfg[i].clone();
        let st = &mut self.paths[i];
        st.stats.sent += 1;
        st.stats.bytes += bytes.len() as u64;
        while st.queue.front().is_some_and(|&t| t <= now) {
            st.queue.pop_front();
        }
        if st.queue.len() >= cfg.queue_packets {
            st.stats.queue_dropped += 1;
            return;
        }
        let departure = match cfg.bandwidth_bps {
            Some(bps) if bps > 0 => {
                let bits = ((bytes.len() + cfg.overhead_bytes) as u128) * 8;
                let us = (bits * 1_000_000).div_ceil(bps as u128) as u64;
                let start = st.busy_until.map_or(now, |b| b.max(now));
                let done = start + Duration::from_micros(us);
                st.busy_until = Some(done);
                done
            }
            _ => now,
        };
        st.queue.push_back(departure);
        if cfg.blackhole || self.chance(cfg.loss) {
            self.paths[i].stats.lost += 1;
            return;
        }
        let mut at = departure + cfg.delay;
        if self.chance(cfg.reorder) {
            self.paths[i].stats.reordered += 1;
            at += self.jitter(cfg.reorder_delay);
        }
        if self.chance(cfg.duplicate) {
            self.paths[i].stats.duplicated += 1;
            let extra = self.jitter(cfg.reorder_delay);
            self.in_flight.push(at + extra, (dir, bytes.to_vec()));
        }
        self.in_flight.push(at, (dir, bytes.to_vec()));
    }

    /// When the next datagram arrives.
    pub fn next_delivery_time(&self) -> Option<Instant> {
        self.in_flight.next_time()
    }

    /// The next datagram due at or before `now`.
    pub fn deliver(&mut self, now: Instant) -> Option<(Dir, Vec<u8>)> {
        let (dir, bytes) = self.in_flight.pop_due(now)?;
        self.paths[dir.index()].stats.delivered += 1;
        Some((dir, bytes))
    }

    /// Datagrams in flight (both directions).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// A sans-IO endpoint the driver can pump.
pub trait Node {
    /// A datagram arrived.
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8]);
    /// The next datagram to send.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    /// The next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Run due timers.
    fn handle_timeout(&mut self, now: Instant);
}

impl<H: dsb_transports::udpsec::Handshake> Node for dsb_transports::udpsec::Connection<H> {
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        // Rejections are counted by the connection itself. The handshakes
        // these tests drive bring their own identity checks: no trust store.
        let _ = dsb_transports::udpsec::Connection::handle_datagram(
            self,
            now,
            datagram,
            &mut dsb_noise::NoTrust,
        );
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        dsb_transports::udpsec::Connection::poll_transmit(self, now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        dsb_transports::udpsec::Connection::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        dsb_transports::udpsec::Connection::handle_timeout(self, now)
    }
}

/// Decides whether a datagram leaving a node enters the link (`false` drops
/// it); sees every datagram, so tests can also record them.
pub type Tap = Box<dyn FnMut(Instant, Dir, &[u8]) -> bool>;

/// Most driver iterations at one instant before the driver reports a timer livelock.
pub const MAX_ITERATIONS_PER_INSTANT: u32 = 100_000;

/// Two nodes joined by a [`Link`], in simulated time.
pub struct Sim<A: Node, B: Node> {
    /// Current simulated time.
    pub now: Instant,
    /// Node A.
    pub a: A,
    /// Node B.
    pub b: B,
    /// The link.
    pub link: Link,
    /// Every datagram must be at most this long (the driver panics otherwise).
    pub max_datagram: usize,
    /// Longest datagram seen.
    pub largest_datagram: usize,
    /// Datagrams emitted by A and by B.
    pub emitted: [u64; 2],
    /// Optional filter / recorder in front of the link.
    pub tap: Option<Tap>,
    buf: Vec<u8>,
    same_instant: u32,
}

impl<A: Node, B: Node> Sim<A, B> {
    /// Start at `now`, checking every datagram against `max_datagram`.
    pub fn new(now: Instant, a: A, b: B, link: Link, max_datagram: usize) -> Self {
        Sim {
            now,
            a,
            b,
            link,
            max_datagram,
            largest_datagram: 0,
            emitted: [0; 2],
            tap: None,
            // Larger than any legal datagram, so oversize output is caught.
            buf: vec![0u8; 65536],
            same_instant: 0,
        }
    }

    fn flush(&mut self) -> bool {
        let mut any = false;
        for dir in [Dir::AtoB, Dir::BtoA] {
            loop {
                let n = match dir {
                    Dir::AtoB => self.a.poll_transmit(self.now, &mut self.buf),
                    Dir::BtoA => self.b.poll_transmit(self.now, &mut self.buf),
                };
                let Some(n) = n else { break };
                assert!(
                    n <= self.max_datagram,
                    "datagram of {n} bytes exceeds the {} byte limit",
                    self.max_datagram
                );
                any = true;
                self.largest_datagram = self.largest_datagram.max(n);
                self.emitted[dir.index()] += 1;
                let bytes = &self.buf[..n];
                let pass = match self.tap.as_mut() {
                    Some(tap) => tap(self.now, dir, bytes),
                    None => true,
                };
                if pass {
                    self.link.send(self.now, dir, bytes);
                }
            }
        }
        any
    }

    /// Hand a datagram straight to the receiving node at the current time
    /// (for injected replays and forgeries).
    pub fn inject(&mut self, dir: Dir, bytes: &[u8]) {
        match dir {
            Dir::AtoB => self.b.handle_datagram(self.now, bytes),
            Dir::BtoA => self.a.handle_datagram(self.now, bytes),
        }
    }

    /// Process everything due at `now` until nothing changes.
    pub fn process(&mut self) {
        loop {
            let mut any = false;
            while let Some((dir, bytes)) = self.link.deliver(self.now) {
                any = true;
                match dir {
                    Dir::AtoB => self.b.handle_datagram(self.now, &bytes),
                    Dir::BtoA => self.a.handle_datagram(self.now, &bytes),
                }
            }
            if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
                any = true;
                self.a.handle_timeout(self.now);
            }
            if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
                any = true;
                self.b.handle_timeout(self.now);
            }
            any |= self.flush();
            if !any {
                break;
            }
            self.same_instant += 1;
            assert!(
                self.same_instant < MAX_ITERATIONS_PER_INSTANT,
                "timer livelock at {}",
                self.now
            );
        }
    }

    /// The next event time (delivery or timer), if any.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.link.next_delivery_time(),
            self.a.poll_timeout(),
            self.b.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Run until `app` returns true (then `true`) or until `deadline` or no
    /// more events (then `false`). `app` runs after every processed instant
    /// and may read, write or close; its effects are flushed at that instant.
    pub fn run_until(&mut self, deadline: Instant, mut app: impl FnMut(&mut Self) -> bool) -> bool {
        loop {
            self.process();
            if app(self) {
                return true;
            }
            self.process();
            let Some(next) = self.next_event() else {
                return false;
            };
            let next = next.max(self.now);
            if next > deadline {
                self.now = deadline;
                return false;
            }
            if next > self.now {
                self.same_instant = 0;
            }
            self.now = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_queue_and_delay() {
        let mut l = Link::new(
            LinkConfig::symmetric(PathConfig {
                delay: Duration::from_millis(5),
                bandwidth_bps: Some(8_000_000), // 1 byte per µs
                queue_packets: 2,
                ..PathConfig::default()
            }),
            1,
        );
        let t0 = Instant::from_millis(0);
        l.send(t0, Dir::AtoB, &[0u8; 1000]);
        l.send(t0, Dir::AtoB, &[0u8; 1000]);
        l.send(t0, Dir::AtoB, &[0u8; 1000]); // queue full: dropped
        assert_eq!(l.stats(Dir::AtoB).queue_dropped, 1);
        assert_eq!(l.next_delivery_time(), Some(Instant::from_micros(6000)));
        assert!(l.deliver(Instant::from_micros(5999)).is_none());
        assert!(l.deliver(Instant::from_micros(6000)).is_some());
        assert_eq!(l.next_delivery_time(), Some(Instant::from_micros(7000)));
    }

    #[test]
    fn same_seed_same_losses() {
        let cfg = LinkConfig::symmetric(PathConfig {
            loss: 0.3,
            duplicate: 0.1,
            reorder: 0.2,
            ..PathConfig::default()
        });
        let run = |seed| {
            let mut l = Link::new(cfg.clone(), seed);
            for i in 0..200u32 {
                l.send(
                    Instant::from_micros(i as i64 * 10),
                    Dir::AtoB,
                    &i.to_le_bytes(),
                );
            }
            let mut out = vec![];
            while let Some((_, b)) = l.deliver(Instant::from_secs(10)) {
                out.push(b);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let n = run(7).len();
        assert!(n > 120 && n < 170, "{n}");
    }
}
