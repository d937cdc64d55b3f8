//! The run loop: poll every node and its application, print markers, judge the run.

use super::setup::is_spoofer;
use super::*;

pub(super) fn run_loop(config: &Config, mut nodes: Vec<Node>) -> ! {
    let deadline = Instant::from_millis(i64::from(config.run_timeout_ms));
    let goal = match (nodes.len(), config.scenario) {
        (1, _) => BusGoal::Discovery,
        (_, Scenario::Spoof) => BusGoal::Sessions { spoof: true },
        (_, Scenario::Services) => BusGoal::Services,
        _ => BusGoal::Sessions { spoof: false },
    };
    let honest = [true, true, !is_spoofer(config, 2)];
    let transport = match (config.transport, config.udpsec, config.udpsec_drop) {
        (Transport::UdpSec, _, _) => TransportGoal::UdpSec,
        (Transport::Auto, false, _) | (Transport::Auto, true, true) => TransportGoal::Fallback,
        _ => TransportGoal::Any,
    };
    let mut selftest = NetSelftest::new(nodes.len(), deadline)
        .with_goal(goal, honest)
        .with_transport(transport);
    // `idle_test_ms`: after the verdict, serve on (idle) until then.
    let mut linger: Option<Instant> = None;
    loop {
        let now = clock::now();
        for (index, n) in nodes.iter_mut().enumerate() {
            console::set_log_prefix(n.prefix);
            n.node.poll(now, &mut n.rng);
            while let Some(event) = n.node.stack_mut().next_event() {
                log_event(&event);
                if let Some(marker) = selftest.on_event(index, &event) {
                    console::marker(n.prefix, &marker);
                }
            }
            while let Some(event) = n.node.next_event() {
                node_event(n, index, &event, &mut selftest);
                match &mut n.app {
                    App::Selftest(app) => app.on_event(&mut n.node, &event),
                    App::Serve(app) => app.on_event(&event),
                }
            }
            match &mut n.app {
                App::Selftest(app) => {
                    app.poll(now, &mut n.node);
                    while let Some(event) = app.next_event() {
                        test_event(n.prefix, index, &event, &mut selftest);
                    }
                }
                App::Serve(app) => {
                    app.poll(now, &mut n.node);
                    while let Some(event) = app.next_event() {
                        serve_event(n.prefix, &event);
                    }
                }
            }
        }
        console::set_log_prefix(UNPREFIXED);
        if config.mode == Mode::Serve {
            // A serving node has no verdict and no run deadline: it serves
            // until QEMU is stopped.
            wait_for_work(&mut nodes, now + Duration::from_secs(1));
            continue;
        }
        if let Some(marker) = selftest.on_time(now) {
            console::marker(UNPREFIXED, &marker);
        }
        match selftest.verdict() {
            Verdict::Pending => wait_for_work(&mut nodes, deadline),
            Verdict::AllOk if config.idle_test_ms > 0 && linger.is_none_or(|t| now < t) => {
                if linger.is_none() {
                    console::marker(UNPREFIXED, &Marker::AllOk);
                    let hold = Duration::from_millis(u64::from(config.idle_test_ms));
                    linger = Some(now + hold);
                }
                wait_for_work(&mut nodes, linger.unwrap_or(now));
            }
            Verdict::AllOk => {
                log::info!("selftest: done at {} ms", clock::now().total_millis());
                log_stats(&nodes);
                if linger.is_none() {
                    console::marker(UNPREFIXED, &Marker::AllOk);
                }
                exit::exit_success();
            }
            Verdict::Failed(_) => exit::exit_failure(),
        }
    }
}

/// Halts until the earliest deadline of any node (at most `until`) or a
/// NIC interrupt; returns at once when a frame is already waiting.
fn wait_for_work(nodes: &mut [Node], until: Instant) {
    let now = clock::now();
    let next = nodes
        .iter_mut()
        .flat_map(|n| [n.node.poll_at(now), n.app.poll_at()])
        .flatten()
        .fold(until, core::cmp::min);
    if !nodes.iter().any(|n| n.node.stack().device().rx_pending()) {
        idle::wait_until(next);
    }
}

/// Prints a node event's marker (or log line), then feeds the self-test
/// and prints the verdict that event completes. Ignored announces,
/// rejected handshakes and fallbacks are always counted but printed only
/// at counts 1, 2, 4, 8, ... per label ([`LabelLimit`]), so a flood
/// cannot flood the console.
fn node_event(n: &mut Node, index: usize, event: &NodeEvent, selftest: &mut NetSelftest) {
    print_node_event(n, event);
    if let Some(marker) = selftest.on_node_event(index, event) {
        console::marker(n.prefix, &marker);
    }
}

/// Prints a serving node's report.
fn serve_event(prefix: NodePrefix, event: &ServeEvent) {
    match *event {
        ServeEvent::PingOk { peer, rtt } => console::marker(
            prefix,
            &Marker::PingOk {
                peer,
                rtt_us: rtt.total_micros(),
            },
        ),
        ServeEvent::EchoOk {
            peer,
            bytes,
            elapsed,
        } => console::marker(
            prefix,
            &Marker::EchoOk {
                peer,
                bytes,
                ms: elapsed.total_millis(),
            },
        ),
        ServeEvent::PingFailed { peer, what } => {
            log::warn!("serve: health check of {} failed ({what})", peer.as_str())
        }
    }
}

/// Prints a self-test event's marker (or log line) and the verdict it completes.
fn test_event(prefix: NodePrefix, index: usize, event: &TestEvent, selftest: &mut NetSelftest) {
    match Marker::for_test_event(event) {
        Some(marker) => console::marker(prefix, &marker),
        None => match event {
            TestEvent::ServiceFailed { peer, kind, what } => {
                log::error!("selftest: {what} with {} ({kind})", peer.as_str())
            }
            TestEvent::CheckFailed { what } => log::error!("selftest: {what}"),
            TestEvent::BackpressureOk { bytes, blocked, peak_buffered, elapsed, .. } => log::info!(
                "selftest: peer's sink took {bytes} bytes in {} ms, writer held at zero credit {blocked} times, reader peak {peak_buffered} bytes",
                elapsed.total_millis()
            ),
            _ => {}
        },
    }
    if let Some(marker) = selftest.on_test_event(index, event) {
        console::marker(prefix, &marker);
    }
}

fn print_node_event(n: &mut Node, event: &NodeEvent) {
    let limited = match event {
        NodeEvent::AnnounceIgnored(e) => Some(e.label()),
        NodeEvent::HandshakeFailed { error, .. } => Some(error.label()),
        NodeEvent::UdpSecFallback { reason, .. } => Some(reason.label()),
        _ => None,
    };
    if let Some(label) = limited {
        if !n.limit.allow(label) {
            return;
        }
    }
    match Marker::for_node_event(event) {
        Some(marker) => console::marker(n.prefix, &marker),
        None => {
            if let NodeEvent::BusFailed(what) = event {
                log::error!("bus: {}", what.label());
            }
        }
    }
}

fn log_stats(nodes: &[Node]) {
    for n in nodes {
        console::set_log_prefix(n.prefix);
        let s = n.node.stack().device().stats();
        log::debug!(
            "nic: rx {} tx {} rx-dropped {} tx-dropped {}; icmp ignored {}",
            s.rx_frames,
            s.tx_frames,
            s.rx_dropped,
            s.tx_dropped,
            n.node.stack().icmp_ignored()
        );
        if let Some((t, e)) = n.node.udpsec_stats() {
            log::debug!(
                "udp-sec: datagrams in {} out {}; sessions accepted {}; rejected {}",
                t.datagrams_in,
                t.datagrams_out,
                e.accepted,
                e.rejected.total()
            );
        }
    }
    console::set_log_prefix(UNPREFIXED);
    let (halts, halted_us, timer, nic, other) = idle::stats();
    log::info!(
        "idle: {halts} halts, {halted_us} us halted; irqs timer {timer} nic {nic} other {other}"
    );
    let (used, size) = heap::usage();
    log::debug!("heap: {used} of {size} bytes in use");
}

fn log_event(event: &NetEvent) {
    match event {
        NetEvent::DhcpBound(lease) => log::info!(
            "dhcp: lease {} gateway {} ({})",
            lease.cidr,
            lease.gateway,
            if lease.gateway_from_router {
                "router option"
            } else {
                "dhcp server"
            }
        ),
        NetEvent::DhcpLost => log::warn!("dhcp: lease lost"),
        NetEvent::PingOk { seq, rtt } => {
            log::info!("icmp: echo reply seq={seq} rtt={} us", rtt.total_micros())
        }
        NetEvent::DhcpTimeout => log::error!("dhcp: no lease in time"),
        NetEvent::PingTimeout => log::error!("icmp: no echo reply in time"),
        NetEvent::StaticFallback(cidr) => log::info!("dhcp: no lease; static {cidr}"),
        NetEvent::GatewayUnreachable => log::warn!("icmp: gateway silent (optional)"),
    }
}
