//! The segment switch over real loopback sockets: stations are plain UDP and
//! unix datagram sockets sending raw Ethernet frames, exactly what QEMU's
//! `-netdev dgram` does. Shows forwarding, learning, each fault knob's effect
//! on the counters, and the segment pcap.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use dsb_tests::switch::{net, Control, PortSpec, Report, RunOptions, SwitchConfig};

const BCAST: [u8; 6] = [0xff; 6];

fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0x12, 0x34, n]
}

fn frame(dst: [u8; 6], src: [u8; 6], seq: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(60, 0);
    f
}

struct Running {
    control: Arc<Control>,
    thread: std::thread::JoinHandle<Result<Report, String>>,
}

impl Running {
    fn stop(self) -> Report {
        self.control
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap().unwrap()
    }
}

/// Binds `n` UDP ports on 127.0.0.1 (ephemeral) and one station socket per
/// port with the port as its peer; starts the switch.
fn start(n: usize, cfg: SwitchConfig, opts: RunOptions) -> (Running, Vec<UdpSocket>) {
    let mut stations = Vec::new();
    let mut specs = Vec::new();
    for _ in 0..n {
        let st = UdpSocket::bind("127.0.0.1:0").unwrap();
        st.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        specs.push(PortSpec::Udp {
            local: "127.0.0.1:0".parse().unwrap(),
            peer: Some(st.local_addr().unwrap()),
        });
        stations.push(st);
    }
    let ports = net::bind_all(&specs).unwrap();
    for (st, p) in stations.iter().zip(&ports) {
        st.connect(p.udp_addr().unwrap()).unwrap();
    }
    let control = Arc::new(Control::default());
    let c = control.clone();
    let thread = std::thread::spawn(move || net::run(ports, cfg, &opts, &c, &mut |_| {}));
    (Running { control, thread }, stations)
}

fn recv_all(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = s.recv(&mut buf) {
        v.push(buf[..n].to_vec());
    }
    v
}

fn seq(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

#[test]
fn forwards_floods_and_learns_over_udp() {
    let (sw, st) = start(3, SwitchConfig::new(3), RunOptions::default());
    st[0].send(&frame(BCAST, mac(1), 1)).unwrap();
    assert_eq!(recv_all(&st[1]).len(), 1);
    assert_eq!(recv_all(&st[2]).len(), 1);
    st[1].send(&frame(mac(1), mac(2), 2)).unwrap();
    assert_eq!(recv_all(&st[0]).len(), 1, "mac(1) learnt on port 0");
    assert!(recv_all(&st[2]).is_empty(), "not flooded once learnt");
    st[0].send(&[1, 2, 3]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let r = sw.stop();
    assert_eq!(r.ports[0].rx_frames, 2);
    assert_eq!(r.ports[0].bad_frame, 1);
    assert_eq!(r.ports[2].tx_frames, 1);
}

/// Sends `n` frames from station 0 to station 1 (learnt) and returns what
/// station 1 got and the final counters.
fn blast(cfg: SwitchConfig, n: u32) -> (Vec<Vec<u8>>, Report) {
    let (sw, st) = start(2, cfg, RunOptions::default());
    st[1].send(&frame(BCAST, mac(2), u32::MAX)).unwrap();
    recv_all(&st[0]);
    // Read while sending: a socket buffer holds only a few hundred datagrams.
    let rx = st[1].try_clone().unwrap();
    let reader = std::thread::spawn(move || recv_all(&rx));
    for i in 0..n {
        st[0].send(&frame(mac(2), mac(1), i)).unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let got = reader.join().unwrap();
    (got, sw.stop())
}

#[test]
fn every_fault_knob_shows_in_the_counters() {
    let n = 1000;
    let mut cfg = SwitchConfig::new(2);
    cfg.faults.loss_pct = 10.0;
    let (got, r) = blast(cfg, n);
    let lost = r.ports[1].lost;
    assert!((50..160).contains(&lost), "LOSS=10: lost {lost}");
    assert_eq!(got.len() as u64, u64::from(n) - lost);

    let mut cfg = SwitchConfig::new(2);
    cfg.faults.dup_pct = 10.0;
    let (got, r) = blast(cfg, n);
    let dup = r.ports[1].duplicated;
    assert!((50..160).contains(&dup), "DUP=10: dup {dup}");
    assert_eq!(got.len() as u64, u64::from(n) + dup);

    let mut cfg = SwitchConfig::new(2);
    cfg.faults.reorder_pct = 10.0;
    let (got, r) = blast(cfg, n);
    let reordered = r.ports[1].reordered;
    let inversions = got.windows(2).filter(|w| seq(&w[1]) < seq(&w[0])).count() as u64;
    assert!(reordered > 30, "REORDER=10: reordered {reordered}");
    assert_eq!(inversions, reordered);
    assert_eq!(got.len() as u32, n);

    let mut cfg = SwitchConfig::new(2);
    cfg.faults.delay = smoltcp::time::Duration::from_millis(150);
    let (sw, st) = start(2, cfg, RunOptions::default());
    let t0 = std::time::Instant::now();
    st[0].send(&frame(BCAST, mac(1), 0)).unwrap();
    st[1]
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 100];
    st[1].recv(&mut buf).unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(150), "DELAY=150: {took:?}");
    sw.stop();

    // RATE=1 Mbit/s: 200 frames of 60 bytes (96 kbit) need >= 96 ms; a
    // queue of 50 frames drops what does not fit.
    let mut cfg = SwitchConfig::new(2);
    cfg.faults.rate_mbps = Some(1.0);
    cfg.queue_frames = 50;
    let (sw, st) = start(2, cfg, RunOptions::default());
    st[1].send(&frame(BCAST, mac(2), u32::MAX)).unwrap();
    recv_all(&st[0]);
    let t0 = std::time::Instant::now();
    for i in 0..200 {
        st[0].send(&frame(mac(2), mac(1), i)).unwrap();
    }
    let got = recv_all(&st[1]);
    let r = sw.stop();
    assert!(r.ports[1].queue_full > 0, "RATE=1 queue 50: {}", r.ports[1]);
    assert_eq!(got.len() as u64 + r.ports[1].queue_full, 200);
    // The frames that got through took their serialisation time (480 us each).
    assert!(t0.elapsed() >= Duration::from_micros(480 * got.len() as u64));
}

#[test]
fn pcap_holds_every_received_frame_and_unix_ports_work() {
    let dir = std::env::temp_dir().join(format!("dsb-switch-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("seg.pcap");
    let a = UnixDatagram::bind(dir.join("a.sock")).unwrap();
    let b = UnixDatagram::bind(dir.join("b.sock")).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let specs = vec![
        PortSpec::Unix {
            local: dir.join("sw-a.sock"),
            peer: Some(dir.join("a.sock")),
        },
        // No peer: learnt from the first datagram.
        PortSpec::Unix {
            local: dir.join("sw-b.sock"),
            peer: None,
        },
    ];
    let ports = net::bind_all(&specs).unwrap();
    let control = Arc::new(Control::default());
    let c = control.clone();
    let opts = RunOptions {
        pcap: Some(pcap.clone()),
        ..Default::default()
    };
    let t =
        std::thread::spawn(move || net::run(ports, SwitchConfig::new(2), &opts, &c, &mut |_| {}));
    b.send_to(&frame(BCAST, mac(2), 0), dir.join("sw-b.sock"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for i in 1..=5 {
        a.send_to(&frame(mac(2), mac(1), i), dir.join("sw-a.sock"))
            .unwrap();
    }
    let mut buf = [0u8; 100];
    for i in 1..=5 {
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(seq(&buf[..n]), i);
    }
    control
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let r = t.join().unwrap().unwrap();
    assert_eq!(r.pcap_frames, 6);
    let bytes = std::fs::read(&pcap).unwrap();
    assert_eq!(&bytes[..4], &0xa1b2c3d4u32.to_le_bytes(), "pcap magic");
    assert_eq!(bytes.len(), 24 + 6 * (16 + 60));
    assert!(
        !dir.join("sw-a.sock").exists(),
        "socket files removed on exit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_binary_rejects_bad_options_in_one_line() {
    let exe = env!("CARGO_BIN_EXE_switch");
    for args in [
        vec!["--port", "udp:8.8.8.8:4000"],
        vec!["--port", "udp:127.0.0.1:0", "--loss", "abc"],
        vec![],
    ] {
        let out = std::process::Command::new(exe)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap();
        assert!(first.starts_with("switch: "), "{first}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
