//! Connection configuration: timers, windows and buffer caps.

use smoltcp::time::Duration;

use super::congestion::CongestionControl;
use super::MAX_DATAGRAM;

/// Stream credit every receiver grants before its first MAX_DATA frame
/// (a protocol constant; `recv_window` is never smaller).
pub const INITIAL_MAX_DATA: u64 = 64 * 1024;

/// Per-connection settings. `Default` suits a LAN or a 10 ms / 100 Mbit/s path.
#[derive(Debug, Clone)]
pub struct Config {
    /// RTT assumed before the first sample.
    pub initial_rtt: Duration,
    /// Lower bound of the retransmission timeout.
    pub min_rto: Duration,
    /// Upper bound of the retransmission timeout (also caps backoff).
    pub max_rto: Duration,
    /// Longest we delay an acknowledgement (the peer assumes the same).
    pub max_ack_delay: Duration,
    /// Acknowledge at once after this many ack-eliciting packets.
    pub ack_eliciting_threshold: u32,
    /// Congestion controller.
    pub congestion: CongestionControl,
    /// Initial congestion window in datagrams.
    pub initial_window_packets: u64,
    /// Minimum congestion window in datagrams (after a timeout).
    pub min_window_packets: u64,
    /// Cap on the congestion window, i.e. on bytes in flight.
    pub max_window: u64,
    /// Send buffer: unacknowledged bytes the application may queue.
    pub send_buffer: usize,
    /// Receive window (reassembly buffer, advertised with MAX_DATA).
    pub recv_window: usize,
    /// Close after this long without an authenticated packet.
    pub idle_timeout: Duration,
    /// Send a PING after this long without sending anything ack-eliciting.
    pub keepalive_interval: Option<Duration>,
    /// Give up when the handshake is not confirmed within this time.
    pub handshake_timeout: Duration,
    /// Pace transmissions.
    pub pacing: bool,
    /// Pacer burst interval (bucket depth in time).
    pub pacing_burst_interval: Duration,
    /// Smallest pacer burst in datagrams.
    pub pacing_min_burst: u64,
    /// Largest pacer burst in datagrams.
    pub pacing_max_burst: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_rtt: Duration::from_millis(100),
            min_rto: Duration::from_millis(50),
            max_rto: Duration::from_secs(10),
            max_ack_delay: Duration::from_millis(25),
            ack_eliciting_threshold: 2,
            congestion: CongestionControl::default(),
            initial_window_packets: 10,
            min_window_packets: 2,
            max_window: 1024 * 1024,
            send_buffer: 256 * 1024,
            recv_window: 256 * 1024,
            idle_timeout: Duration::from_secs(30),
            keepalive_interval: Some(Duration::from_secs(10)),
            handshake_timeout: Duration::from_secs(5),
            pacing: true,
            pacing_burst_interval: Duration::from_millis(1),
            pacing_min_burst: 4,
            pacing_max_burst: 64,
        }
    }
}

impl Config {
    /// Maximum segment size used by congestion control.
    pub const MSS: u64 = MAX_DATAGRAM as u64;

    /// The receive window actually used (never below [`INITIAL_MAX_DATA`]).
    pub fn effective_recv_window(&self) -> usize {
        self.recv_window.max(INITIAL_MAX_DATA as usize)
    }
}
