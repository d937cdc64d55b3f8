//! The image entry point. Only meaningful for `x86_64-unknown-none`; on the host
//! this is a stub so that `cargo test -p dsb-app` builds.
//!
//! Run order: boot line -> config (errors exit before networking) -> heap ->
//! logger -> clock -> RNG -> keys -> PCI/virtio-net (one per node) -> one
//! `Node` (stack + bus) per NIC, polled round-robin until every node reached
//! its self-test goal, a node failed, or the run deadline passed.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod platform;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dsoftbus: this binary is the x86_64-unknown-none image; build it with `make image`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
use image::kmain;

#[cfg(target_os = "none")]
mod image {
    use alloc::vec::Vec;

    use dsb_app::config::{Config, Scenario, Transport};
    use dsb_app::marker::{Failure, Marker, NodePrefix, NODE_IDS};
    use dsb_app::net::{NetEvent, NetStack, NetStackConfig};
    use dsb_app::node::{self, Behaviour, NodeConfig, NodeEvent};
    use dsb_app::rng::NodeRng;
    use dsb_app::selftest::{BusGoal, NetSelftest, TransportGoal, Verdict};
    use dsb_noise::Identity;
    use rand_core::RngCore;
    use smoltcp::time::{Duration, Instant};
    use virtio_drivers::transport::pci::bus::PciRoot;
    use virtio_drivers::transport::pci::PciTransport;

    use crate::platform::nic::VirtioNic;
    use crate::platform::virtio_hal::IdentityHal;
    use crate::platform::{clock, console, exit, heap, pci, rng, rtc, serial, start_info};

    /// First TCP session port; node `i` listens on `TCP_PORT_BASE + i`.
    const TCP_PORT_BASE: u16 = 37021;
    /// First udp-sec port; node `i` binds `UDPSEC_PORT_BASE + i`.
    const UDPSEC_PORT_BASE: u16 = 37031;
    /// Bulk echo per udp-sec session (the `SELFTEST: udp-sec bulk ok` step).
    const UDPSEC_BULK_BYTES: u64 = dsb_app::selftest::UDPSEC_BULK_MIN;
    /// Bytes pushed into the peer's slow sink per udp-sec session (backpressure step).
    const UDPSEC_SINK_BYTES: u64 = 256 * 1024;

    /// One node: its line prefix, its runtime and its own RNG.
    struct Node {
        prefix: NodePrefix,
        node: node::Node<VirtioNic>,
        rng: NodeRng,
        /// Ignored announces per label, for the log rate limit.
        ignored: [u32; 16],
        /// The udp-sec fallback marker was printed (once per node).
        fallback_printed: bool,
    }

    const UNPREFIXED: NodePrefix = NodePrefix(None);

    fn fail(prefix: NodePrefix, failure: Failure) -> ! {
        console::marker(prefix, &Marker::Fail(failure));
        exit::exit_failure()
    }

    /// The image after the boot stub: never returns.
    pub fn kmain(start_info_paddr: u32) -> ! {
        serial::init();
        console::marker(UNPREFIXED, &Marker::Boot);

        // SAFETY: `start_info_paddr` is what the PVH loader passed in ebx.
        let info = unsafe { start_info::read(start_info_paddr) };
        let config = match Config::parse(info.cmdline()) {
            Ok(c) => c,
            Err(e) => {
                console::marker(UNPREFIXED, &Marker::ConfigError(&e));
                exit::exit_failure();
            }
        };
        console::init_logger(config.log.to_filter());
        if !info.valid {
            log::warn!("boot: no hvm_start_info (magic mismatch): defaults, no memory map");
        }
        for r in info.ram() {
            log::debug!("boot: ram {:#x}..{:#x}", r.start, r.end);
        }
        match heap::init(info.ram()) {
            Ok((start, size)) => log::info!("heap: {size} bytes at {start:#x}"),
            Err(e) => {
                log::error!("heap: cannot set up ({})", e.label());
                exit::exit_failure();
            }
        }

        let (tsc_hz, how) = clock::calibrate();
        log::info!("clock: tsc {} kHz ({:?})", tsc_hz / 1000, how);
        if how == clock::Calibration::Fallback {
            log::warn!("clock: PIT calibration failed, assuming {tsc_hz} Hz");
        }

        let mut rng = rng::seed();
        console::marker(UNPREFIXED, &Marker::Rng(rng.source()));
        if cfg!(feature = "test-keys") {
            console::marker(UNPREFIXED, &Marker::TestKeys);
        }
        if config.transport == Transport::UdpSec && !config.udpsec {
            log::error!("transport: udp-sec requested but udpsec=off");
            fail(UNPREFIXED, Failure::TransportUnavailable);
        }

        let nodes = run_setup(&config, &info, &mut rng);
        run_loop(&config, nodes)
    }

    /// Whether node `index` is the impostor of the spoofing scenario.
    fn is_spoofer(config: &Config, index: usize) -> bool {
        config.scenario == Scenario::Spoof && index == 2
    }

    /// The keys of node `index`: deterministic with `test-keys`, otherwise
    /// from the CSPRNG, which must have had hardware entropy. The spoofer
    /// claims node-b's id with keys of its own.
    fn identity(config: &Config, index: usize, rng: &mut NodeRng) -> Identity {
        let spoofer = is_spoofer(config, index);
        let id = if spoofer {
            NODE_IDS[1]
        } else {
            NODE_IDS[index.min(2)]
        };
        let made = if cfg!(feature = "test-keys") && !spoofer {
            test_identity(id)
        } else {
            if rng.check_long_term_keys().is_err() {
                fail(UNPREFIXED, Failure::NoEntropy);
            }
            Identity::generate(id, rng)
        };
        match made {
            Ok(i) => i,
            Err(e) => {
                log::error!("keys: {}", e.label());
                fail(UNPREFIXED, Failure::NoEntropy)
            }
        }
    }

    #[cfg(feature = "test-keys")]
    fn test_identity(id: &str) -> Result<Identity, dsb_noise::NoiseError> {
        // SECURITY: test keys, not for production
        Identity::from_test_seed(id)
    }

    #[cfg(not(feature = "test-keys"))]
    fn test_identity(_id: &str) -> Result<Identity, dsb_noise::NoiseError> {
        Err(dsb_noise::NoiseError::Crypto)
    }

    fn run_setup(
        config: &Config,
        info: &start_info::StartInfo,
        rng: &mut dsb_app::rng::NodeRng,
    ) -> Vec<Node> {
        // SAFETY: the only PCI configuration accessor in the image.
        let mut root = PciRoot::new(unsafe { pci::PortCam::new() });
        let found = pci::find_virtio_nets(&root);
        let wanted = usize::from(config.nodes);
        log::info!(
            "pci: {} virtio-net device(s), {wanted} node(s)",
            found.len()
        );
        if found.len() < wanted {
            fail(UNPREFIXED, Failure::NicCount);
        }
        let identities: Vec<Identity> = (0..wanted).map(|i| identity(config, i, rng)).collect();
        // Siblings in one image are provisioned with each other's device keys:
        // pinned bindings that trust-on-first-use can never override.
        let pins: Vec<(dsb_discovery::DeviceId, [u8; 32])> = identities
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_spoofer(config, *i))
            .filter_map(|(_, id)| {
                let d = dsb_discovery::DeviceId::new(id.device_id().as_bytes()).ok()?;
                Some((d, id.device_public_key()))
            })
            .collect();
        let epoch = rtc::seconds_since_2000().unwrap_or_else(|| {
            log::warn!(
                "rtc: unreadable; announce epoch 0 (peers may see our next boot as a replay)"
            );
            0
        });
        let mut identities = identities.into_iter();
        let mut bars = pci::BarAllocator::new(info.ram());
        let mut nodes = Vec::with_capacity(wanted);
        for (index, df) in found.into_iter().take(wanted).enumerate() {
            let prefix = NodePrefix::for_node(index, wanted);
            console::set_log_prefix(prefix);
            if let Err(e) = pci::prepare_device(&mut root, df, &mut bars) {
                log::error!("pci: {df}: {}", e.label());
                fail(prefix, Failure::NicInit);
            }
            let transport = match PciTransport::new::<IdentityHal, _>(&mut root, df) {
                Ok(t) => t,
                Err(e) => {
                    log::error!("virtio: {df}: {e}");
                    fail(prefix, Failure::NicInit);
                }
            };
            pci::enable_device(&mut root, df);
            let nic = match VirtioNic::new(transport) {
                Ok(n) => n,
                Err(e) => {
                    log::error!("virtio-net: {df}: {}", e.label());
                    fail(prefix, Failure::NicInit);
                }
            };
            let mac = nic.mac();
            console::marker(prefix, &Marker::VirtioNetUp(mac));
            let mut stack_config = NetStackConfig::new(mac, rng.next_u64());
            stack_config.dhcp_timeout = Duration::from_millis(u64::from(config.dhcp_timeout_ms));
            stack_config.ping_timeout = Duration::from_millis(u64::from(config.ping_timeout_ms));
            let stack = match NetStack::new(nic, stack_config, clock::now()) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("net: {}", e.label());
                    fail(prefix, Failure::NicInit);
                }
            };
            console::marker(prefix, &Marker::IfaceUp);
            let Some(identity) = identities.next() else {
                fail(prefix, Failure::NicInit);
            };
            let mut node_config = NodeConfig::new(TCP_PORT_BASE + index as u16);
            node_config.boot_epoch = epoch;
            node_config.transport = config.transport;
            node_config.udpsec_port = config.udpsec.then_some(UDPSEC_PORT_BASE + index as u16);
            node_config.udpsec_bulk_bytes = UDPSEC_BULK_BYTES;
            node_config.udpsec_sink_bytes = UDPSEC_SINK_BYTES;
            node_config.udpsec_cc = config.udpsec_cc;
            node_config.pinned = pins
                .iter()
                .filter(|(id, _)| id.as_bytes() != identity.device_id().as_bytes())
                .cloned()
                .collect();
            if is_spoofer(config, index) {
                node_config.behaviour = Behaviour::Spoofer;
                node_config.pinned.clear();
                log::warn!("spoof: this stack claims device id node-b with its own keys");
            }
            nodes.push(Node {
                prefix,
                node: node::Node::new(stack, identity, node_config),
                rng: rng.fork(),
                ignored: [0; 16],
                fallback_printed: false,
            });
        }
        console::set_log_prefix(UNPREFIXED);
        nodes
    }

    fn run_loop(config: &Config, mut nodes: Vec<Node>) -> ! {
        let deadline = Instant::from_millis(i64::from(config.run_timeout_ms));
        let goal = match (nodes.len(), config.scenario) {
            (1, _) => BusGoal::Discovery,
            (_, Scenario::Spoof) => BusGoal::Sessions { spoof: true },
            _ => BusGoal::Sessions { spoof: false },
        };
        let honest = [true, true, !is_spoofer(config, 2)];
        let transport = match (config.transport, config.udpsec) {
            (Transport::UdpSec, _) => TransportGoal::UdpSec,
            (Transport::Auto, false) => TransportGoal::Fallback,
            _ => TransportGoal::Any,
        };
        let mut selftest = NetSelftest::new(nodes.len(), deadline)
            .with_goal(goal, honest)
            .with_transport(transport);
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
                }
            }
            console::set_log_prefix(UNPREFIXED);
            if let Some(marker) = selftest.on_time(now) {
                console::marker(UNPREFIXED, &marker);
            }
            match selftest.verdict() {
                Verdict::Pending => core::hint::spin_loop(),
                Verdict::AllOk => {
                    log::info!("selftest: done at {} ms", clock::now().total_millis());
                    log_stats(&nodes);
                    console::marker(UNPREFIXED, &Marker::AllOk);
                    exit::exit_success();
                }
                Verdict::Failed(_) => exit::exit_failure(),
            }
        }
    }

    /// Prints a node event's marker (or log line), then feeds the self-test
    /// and prints the verdict that event completes. Ignored announces are
    /// always counted but printed only at counts 1, 2, 4, 8, ... per label, so
    /// a flood cannot flood the console; the udp-sec fallback prints once.
    fn node_event(n: &mut Node, index: usize, event: &NodeEvent, selftest: &mut NetSelftest) {
        print_node_event(n, event);
        if let Some(marker) = selftest.on_node_event(index, event) {
            console::marker(n.prefix, &marker);
        }
    }

    fn print_node_event(n: &mut Node, event: &NodeEvent) {
        if let NodeEvent::UdpSecFallback { peer, reason } = event {
            log::info!(
                "udp-sec: fallback to tcp ({reason}{}{})",
                if peer.is_some() { ", peer " } else { "" },
                peer.as_ref().map_or("", |p| p.as_str())
            );
            if n.fallback_printed {
                return;
            }
            n.fallback_printed = true;
        }
        if let NodeEvent::AnnounceIgnored(e) = event {
            let slot = dsb_discovery::AnnounceError::ALL
                .iter()
                .position(|x| x == e)
                .unwrap_or(15);
            let count = n.ignored.get_mut(slot).map(|c| {
                *c = c.saturating_add(1);
                *c
            });
            if !count.is_some_and(u32::is_power_of_two) {
                return;
            }
        }
        match Marker::for_node_event(event) {
            Some(marker) => console::marker(n.prefix, &marker),
            None => match event {
                NodeEvent::HandshakeFailed { peer, error } => log::warn!(
                    "session: handshake with {} failed ({})",
                    peer.as_ref().map_or("?", |p| p.as_str()),
                    error.label()
                ),
                NodeEvent::SessionClosed { peer, reason } => {
                    log::warn!("session: {} closed ({reason})", peer.as_str())
                }
                NodeEvent::ServiceFailed { peer, what } => {
                    log::error!("selftest: {} with {}", what, peer.as_str())
                }
                NodeEvent::BusFailed(what) => log::error!("bus: {what}"),
                NodeEvent::PeerLost(peer) => log::info!("discovery: lost {}", peer.as_str()),
                NodeEvent::BackpressureOk { bytes, blocked, peak_buffered, .. } => log::info!(
                    "selftest: sink took {bytes} bytes, writer held {blocked} times, peak {peak_buffered} buffered"
                ),
                _ => {}
            },
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
        }
    }
}
