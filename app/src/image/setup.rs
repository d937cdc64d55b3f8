//! Set-up: identities, NICs, and one node per NIC with its application.

use super::*;
use crate::platform::fw_cfg;

/// Whether node `index` is the impostor of the spoofing scenario.
pub(super) fn is_spoofer(config: &Config, index: usize) -> bool {
    config.scenario == Scenario::Spoof && index == 2
}

/// The blob store of a self-test node: small, up to three nodes share a
/// heap of at most 32 MiB.
const SELFTEST_STORE: StoreConfig = StoreConfig {
    blob_cap: 2 << 20,
    total_cap: 4 << 20,
    max_blobs: 16,
    max_partials: 2,
};

/// The blob store of a serving node (alone in its image): half the heap.
const SERVE_STORE: StoreConfig = StoreConfig {
    blob_cap: 8 << 20,
    total_cap: 16 << 20,
    max_blobs: 64,
    max_partials: 2,
};

/// Bytes node-b puts and gets back in the `services` scenario.
const SERVICES_BLOB_BYTES: usize = 1 << 20;

/// Node `index`'s part in the `services` scenario: node-a serves `blob` to
/// node-b only, node-b puts and gets 1 MiB, node-c is refused; every node
/// asks the other two's directory.
fn services_plan(config: &Config, index: usize) -> Option<Plan> {
    if config.scenario != Scenario::Services {
        return None;
    }
    let id = |i: usize| DeviceId::new(NODE_IDS.get(i)?).ok();
    let (a, b) = (id(0)?, id(1)?);
    let role = match index {
        0 => Role::Server { client: b },
        1 => Role::Putter {
            server: a,
            bytes: SERVICES_BLOB_BYTES,
        },
        _ => Role::Intruder { server: a },
    };
    let mut peers = [None; 2];
    for (slot, i) in peers.iter_mut().zip((0..3).filter(|i| *i != index)) {
        *slot = id(i);
    }
    Some(Plan { role, peers })
}

/// Where a VM's identity file arrives through QEMU's `fw_cfg`.
const IDENTITY_FILE: &str = "opt/dsoftbus/identity";

/// The keys of node `index`, and where they came from. A single-node image
/// takes its identity file from `fw_cfg` when QEMU provides one; otherwise
/// the keys are deterministic with `test-keys`, or drawn from the CSPRNG,
/// which must have had hardware entropy. The device id is `id=` (one node)
/// or `node-a`.. by index; the spoofer claims node-b's id with keys of its own.
fn identity(config: &Config, index: usize, rng: &mut NodeRng) -> (Identity, &'static str) {
    if config.nodes == 1 {
        let mut buf = [0u8; dsb_noise::MAX_IDENTITY_FILE_LEN];
        match fw_cfg::read_file(IDENTITY_FILE, &mut buf) {
            Ok(n) => match dsb_noise::parse_identity_file(buf.get(..n).unwrap_or(&[])) {
                Ok(ident) => {
                    if config.id.is_some_and(|id| id != *ident.device_id()) {
                        log::error!("identity: {IDENTITY_FILE} is for another device id than id=");
                        fail(UNPREFIXED, Failure::Identity);
                    }
                    return (ident, "fw_cfg");
                }
                Err(e) => {
                    // The message never contains a secret.
                    log::error!("identity: {IDENTITY_FILE}: {e}");
                    fail(UNPREFIXED, Failure::Identity);
                }
            },
            Err(fw_cfg::FwCfgError::TooLarge(size)) => {
                log::error!("identity: {IDENTITY_FILE}: {size} bytes is too large");
                fail(UNPREFIXED, Failure::Identity);
            }
            Err(fw_cfg::FwCfgError::Absent | fw_cfg::FwCfgError::NotFound) => {}
        }
    }
    let spoofer = is_spoofer(config, index);
    let configured = config.id.filter(|_| config.nodes == 1);
    let id = match (&configured, spoofer) {
        (_, true) => NODE_IDS[1],
        (Some(id), false) => id.as_str(),
        (None, false) => NODE_IDS[index.min(2)],
    };
    let (made, source) = if cfg!(feature = "test-keys") && !spoofer {
        (test_identity(id), "test-keys")
    } else {
        if rng.check_long_term_keys().is_err() {
            fail(UNPREFIXED, Failure::NoEntropy);
        }
        (Identity::generate(id, rng), "generated")
    };
    match made {
        Ok(i) => (i, source),
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

pub(super) fn run_setup(
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
    let identities: Vec<Identity> = (0..wanted)
        .map(|i| {
            let (ident, source) = identity(config, i, rng);
            let prefix = NodePrefix::for_node(i, wanted);
            console::marker(
                prefix,
                &Marker::Identity {
                    id: *ident.device_id(),
                    key: ident.device_public_key(),
                    source,
                },
            );
            ident
        })
        .collect();
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
        log::warn!("rtc: unreadable; announce epoch 0 (peers may see our next boot as a replay)");
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
        let mut nic = match VirtioNic::new(transport) {
            Ok(n) => n,
            Err(e) => {
                log::error!("virtio-net: {df}: {}", e.label());
                fail(prefix, Failure::NicInit);
            }
        };
        idle::attach_nic(&mut root, df, &mut nic, config.idle == IdleMode::Halt);
        let mac = nic.mac();
        console::marker(prefix, &Marker::VirtioNetUp(mac));
        let mut stack_config = NetStackConfig::new(mac, rng.next_u64());
        stack_config.dhcp_timeout = Duration::from_millis(u64::from(config.dhcp_timeout_ms));
        stack_config.ping_timeout = Duration::from_millis(u64::from(config.ping_timeout_ms));
        stack_config.fallback = config.fallback_address(mac, index);
        stack_config.gateway_ping = config.gateway_ping();
        let mut stack = match NetStack::new(nic, stack_config, clock::now()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("net: {}", e.label());
                fail(prefix, Failure::NicInit);
            }
        };
        if config.udpsec_drop {
            // Fault injection: udp-sec is unreachable, as behind a UDP filter.
            let last = UDPSEC_PORT_BASE + u16::from(dsb_app::config::MAX_NODES) - 1;
            stack.set_udp_blackhole(Some((UDPSEC_PORT_BASE, last)));
            log::warn!("fault: inbound udp-sec datagrams are dropped (udpsec_drop=on)");
        }
        console::marker(prefix, &Marker::IfaceUp);
        let Some(identity) = identities.next() else {
            fail(prefix, Failure::NicInit);
        };
        let mut node_config = NodeConfig::new(TCP_PORT_BASE + index as u16);
        node_config.boot_epoch = epoch;
        node_config.transport = config.transport;
        node_config.udpsec_cc = config.udpsec_cc;
        node_config.udpsec_port = config.udpsec.then_some(UDPSEC_PORT_BASE + index as u16);
        node_config.pinned = pins
            .iter()
            .filter(|(id, _)| id.as_bytes() != identity.device_id().as_bytes())
            .cloned()
            .collect();
        for (id, key) in &config.trust {
            if let Ok(d) = dsb_discovery::DeviceId::new(id.as_bytes()) {
                if d.as_bytes() != identity.device_id().as_bytes() {
                    node_config.pinned.push((d, *key));
                }
            }
        }
        node_config.tofu = config.tofu;
        if config.dial_everyone {
            node_config.dial = DialPolicy::Everyone;
        }
        if is_spoofer(config, index) {
            node_config.dial = DialPolicy::Everyone;
            node_config.pinned.clear();
            log::warn!("spoof: this stack claims device id node-b with its own keys");
        }
        node_config.blob_store = match config.mode {
            Mode::Selftest => SELFTEST_STORE,
            Mode::Serve => SERVE_STORE,
        };
        let window = node_config.mux.recv_window as usize;
        let mut node = node::Node::new(stack, identity, node_config);
        let app = match config.mode {
            Mode::Selftest => {
                let app = SelftestApp::new(SelftestConfig {
                    udpsec_bulk_bytes: UDPSEC_BULK_BYTES,
                    udpsec_sink_bytes: UDPSEC_SINK_BYTES,
                    window,
                    plan: services_plan(config, index),
                    ..SelftestConfig::default()
                });
                if let Err(e) = app.publish(&mut node) {
                    log::error!("selftest: cannot publish its services ({})", e.label());
                    fail(prefix, Failure::BusStart);
                }
                App::Selftest(alloc::boxed::Box::new(app))
            }
            Mode::Serve => {
                if let Err(e) = dsb_app::serve::publish(&mut node, config.allow.as_deref()) {
                    log::error!("serve: cannot publish the services ({})", e.label());
                    fail(prefix, Failure::BusStart);
                }
                App::Serve(ServeApp::new(u64::from(config.echo_bytes)))
            }
        };
        nodes.push(Node {
            prefix,
            node,
            rng: rng.fork(),
            limit: LabelLimit::default(),
            app,
        });
    }
    console::set_log_prefix(UNPREFIXED);
    nodes
}
