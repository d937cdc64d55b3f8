//! The image: boot, set-up and the run loop (bare metal only).
//!
//! - `setup`: identities, NICs, one node per NIC and its application;
//! - `run`: the polling loop, console output, the verdict.

use alloc::vec::Vec;

use dsb_app::bus::blob::StoreConfig;
use dsb_app::config::{Config, IdleMode, Mode, Scenario, Transport};
use dsb_app::marker::{Failure, LabelLimit, Marker, NodePrefix, NODE_IDS};
use dsb_app::net::{NetEvent, NetStack, NetStackConfig};
use dsb_app::node::{self, DialPolicy, NodeConfig, NodeEvent};
use dsb_app::rng::NodeRng;
use dsb_app::selftest::checks::{Plan, Role};
use dsb_app::selftest::{
    BusGoal, NetSelftest, SelftestApp, SelftestConfig, TestEvent, TransportGoal, Verdict,
};
use dsb_app::serve::{ServeApp, ServeEvent};
use dsb_noise::{DeviceId, Identity};
use rand_core::RngCore;
use smoltcp::time::{Duration, Instant};
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::PciTransport;

use crate::platform::nic::VirtioNic;
use crate::platform::virtio_hal::IdentityHal;
use crate::platform::{clock, console, exit, heap, idle, pci, rng, rtc, serial, start_info};

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
    /// Console rate limit of rejection lines, per label.
    limit: LabelLimit,
    /// The application running on this node.
    app: App,
}

/// What runs on a node: the self-test (`mode=selftest`) or the serving
/// node's application (`mode=serve`).
enum App {
    Selftest(alloc::boxed::Box<SelftestApp>),
    Serve(ServeApp),
}

impl App {
    fn poll_at(&self) -> Option<Instant> {
        match self {
            App::Selftest(a) => a.poll_at(),
            App::Serve(a) => a.poll_at(),
        }
    }
}

const UNPREFIXED: NodePrefix = NodePrefix(None);

mod run;
mod setup;

use run::run_loop;
use setup::run_setup;

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
