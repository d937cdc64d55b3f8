//! The image entry point. Only meaningful for `x86_64-unknown-none`; on the host
//! this is a stub so that `cargo test -p dsb-app` builds.
//!
//! Run order: boot line -> config (errors exit before networking) -> heap ->
//! logger -> clock -> RNG -> PCI/virtio-net (one per node) -> one `NetStack` per
//! node, polled round-robin until every node pinged its gateway, a node failed, or
//! the run deadline passed.
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

    use dsb_app::config::Config;
    use dsb_app::marker::{Failure, Marker, NodePrefix};
    use dsb_app::net::{NetEvent, NetStack, NetStackConfig};
    use dsb_app::selftest::{NetSelftest, Verdict};
    use rand_core::RngCore;
    use smoltcp::time::{Duration, Instant};
    use virtio_drivers::transport::pci::bus::PciRoot;
    use virtio_drivers::transport::pci::PciTransport;

    use crate::platform::nic::VirtioNic;
    use crate::platform::virtio_hal::IdentityHal;
    use crate::platform::{clock, console, exit, heap, pci, rng, serial, start_info};

    /// One node: its line prefix and its stack.
    struct Node {
        prefix: NodePrefix,
        stack: NetStack<VirtioNic>,
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

        let nodes = run_setup(&config, &info, &mut rng);
        run_loop(&config, nodes)
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
            nodes.push(Node { prefix, stack });
        }
        console::set_log_prefix(UNPREFIXED);
        nodes
    }

    fn run_loop(config: &Config, mut nodes: Vec<Node>) -> ! {
        let deadline = Instant::from_millis(i64::from(config.run_timeout_ms));
        let mut selftest = NetSelftest::new(nodes.len(), deadline);
        loop {
            let now = clock::now();
            for (index, node) in nodes.iter_mut().enumerate() {
                console::set_log_prefix(node.prefix);
                node.stack.poll(now);
                while let Some(event) = node.stack.next_event() {
                    log_event(&event);
                    if let Some(marker) = selftest.on_event(index, &event) {
                        console::marker(node.prefix, &marker);
                    }
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

    fn log_stats(nodes: &[Node]) {
        for node in nodes {
            console::set_log_prefix(node.prefix);
            let s = node.stack.device().stats();
            log::debug!(
                "nic: rx {} tx {} rx-dropped {} tx-dropped {}; icmp ignored {}",
                s.rx_frames,
                s.tx_frames,
                s.rx_dropped,
                s.tx_dropped,
                node.stack.icmp_ignored()
            );
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
