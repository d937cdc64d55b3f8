//! `seg-ping`: an ARP "ping" that attaches to a running segment switch as one
//! more station (a peerless port, see docs/protocol.md) and measures the round
//! trip to a node: `--count` ARP requests for `--target`, one at a time,
//! `--interval` apart (so the node is idle between them). Prints `seg-ping: rtt min/median/mean/max ...` and one `BENCH` line.
//! Used to compare the image's halting idle loop with busy polling.

use std::os::unix::net::UnixDatagram;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dsb_tests::cli;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Ipv4Address,
};

const USAGE: &str =
    "usage: seg-ping --switch-port PATH --target IP [--count N] [--interval MS] [--source IP]";
const OUR_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0xfe]);

fn eth(dst: EthernetAddress, proto: EthernetProtocol, payload_len: usize) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: OUR_MAC,
        dst_addr: dst,
        ethertype: proto,
    };
    let mut buf = vec![0u8; repr.buffer_len() + payload_len];
    let mut f = EthernetFrame::new_unchecked(&mut buf);
    repr.emit(&mut f);
    buf
}

fn main() -> ExitCode {
    let (mut port, mut target, mut count, mut interval) = (None, None, 50u32, 100u64);
    let mut source = Ipv4Address::new(10, 0, 2, 250);
    let parsed = cli::parse(std::env::args().skip(1), |flag, value| {
        match flag {
            "--switch-port" => port = Some(value()?),
            "--target" => {
                target = Some(
                    value()?
                        .parse::<Ipv4Address>()
                        .map_err(|_| "--target: not an IPv4 address")?,
                )
            }
            "--source" => {
                source = value()?
                    .parse::<Ipv4Address>()
                    .map_err(|_| "--source: not an IPv4 address")?
            }
            "--count" => {
                count = value()?
                    .parse()
                    .ok()
                    .filter(|c| (1..=10_000).contains(c))
                    .ok_or("--count: 1..=10000")?
            }
            "--interval" => {
                interval = value()?
                    .parse()
                    .ok()
                    .filter(|c| (1..=10_000).contains(c))
                    .ok_or("--interval: 1..=10000 ms")?
            }
            _ => return Ok(false),
        }
        Ok(true)
    });
    let (Ok(()), Some(port), Some(target)) = (parsed.clone(), port, target) else {
        eprintln!(
            "seg-ping: {}\n{USAGE}",
            parsed
                .err()
                .unwrap_or_else(|| "--switch-port and --target are required".into())
        );
        return ExitCode::from(2);
    };
    match run(
        &port,
        source,
        target,
        count,
        Duration::from_millis(interval),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seg-ping: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    port: &str,
    source: Ipv4Address,
    target: Ipv4Address,
    count: u32,
    interval: Duration,
) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!("dsb-seg-ping-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
    let result = ping(&sock, port, source, target, count, interval);
    let _ = std::fs::remove_file(&path);
    result
}

fn ping(
    sock: &UnixDatagram,
    port: &str,
    source: Ipv4Address,
    target: Ipv4Address,
    count: u32,
    interval: Duration,
) -> Result<(), String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let send = |f: &[u8]| {
        sock.send_to(f, port)
            .map_err(|e| format!("send to {port}: {e}"))
    };
    // ARP for the target (also teaches the switch our port).
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: OUR_MAC,
        source_protocol_addr: source,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut target_mac = None;
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        let mut f = eth(
            EthernetAddress::BROADCAST,
            EthernetProtocol::Arp,
            arp.buffer_len(),
        );
        arp.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
        send(&f)?;
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until && target_mac.is_none() {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let Ok(frame) = EthernetFrame::new_checked(&buf[..n]) else {
                continue;
            };
            if frame.ethertype() != EthernetProtocol::Arp {
                continue;
            }
            if let Ok(ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr,
                source_protocol_addr,
                ..
            }) = ArpPacket::new_checked(frame.payload()).and_then(|p| ArpRepr::parse(&p))
            {
                if source_protocol_addr == target {
                    target_mac = Some(source_hardware_addr);
                }
            }
        }
        if target_mac.is_some() {
            break;
        }
    }
    target_mac.ok_or_else(|| format!("no ARP reply from {target}"))?;
    // The image answers ARP in the same smoltcp poll that reads the request
    // (its ICMP echo auto-reply feature is off), so an ARP exchange measures
    // exactly the wake-up + poll + send path.
    let mut rtts = Vec::new();
    let mut lost = 0;
    let mut f = eth(
        EthernetAddress::BROADCAST,
        EthernetProtocol::Arp,
        arp.buffer_len(),
    );
    arp.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    for _ in 0..count {
        std::thread::sleep(interval);
        // Drop what queued up meanwhile (announces, stray replies).
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        while sock.recv(&mut buf).is_ok() {}
        sock.set_nonblocking(false).map_err(|e| e.to_string())?;
        let sent = Instant::now();
        send(&f)?;
        let mut got = false;
        while sent.elapsed() < Duration::from_secs(1) && !got {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let Ok(frame) = EthernetFrame::new_checked(&buf[..n]) else {
                continue;
            };
            if frame.ethertype() != EthernetProtocol::Arp {
                continue;
            }
            if let Ok(ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_protocol_addr,
                ..
            }) = ArpPacket::new_checked(frame.payload()).and_then(|p| ArpRepr::parse(&p))
            {
                if source_protocol_addr == target {
                    rtts.push(sent.elapsed());
                    got = true;
                }
            }
        }
        if !got {
            lost += 1;
        }
    }
    if rtts.is_empty() {
        return Err(format!("no echo reply from {target} ({count} sent)"));
    }
    rtts.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = rtts.iter().map(|d| us(*d)).sum::<f64>() / rtts.len() as f64;
    let median = rtts[rtts.len() / 2];
    println!(
        "seg-ping: {target} {} replies, {lost} lost; rtt min/median/mean/max {:.0}/{:.0}/{:.0}/{:.0} us",
        rtts.len(),
        us(rtts[0]),
        us(median),
        mean,
        us(rtts[rtts.len() - 1])
    );
    println!("BENCH seg_ping_rtt_median_us {:.0} us", us(median));
    Ok(())
}
