# DSoftBus-lite unikernel. `make help` lists the targets and knobs.
#
# Knobs (make VAR=value):
#   NODES=1|2|3        nodes (NICs, network stacks) in the image        (default 1)
#   transport=auto|tcp|udp-sec   session transport                      (default auto)
#   SCENARIO=normal|spoof|services  scenario (spoof, services: NODES=3) (default normal)
#   CMDLINE="k=v ..."  extra kernel command-line options (see README)
#   ACCEL=tcg|kvm|auto accelerator; TCG is the dependable default       (default tcg)
#   FIRMWARE=auto|qboot|seabios  auto = qboot, SeaBIOS if it hangs     (default auto)
#   PCAP=1             write one pcap per NIC into out/pcap/
#   TIMEOUT=secs       wall-clock limit of one run                      (default 120)
#   FEATURES=...       cargo features of the image (e.g. test-keys)
#   VMS=2..8           cross-VM run: N serving nodes (one QEMU each, own identity)
#                      on one segment switch until the full mesh is up
#   SCENARIO=spoof     with VMS (3 or more): the last VM impersonates node-2
#   ECHO=bytes         with VMS: each VM echoes this many bytes with every peer
#   VM_CMDLINE="..."   per-VM options with VMS ({k} {id} {mac} {ip} filled in)
#   DHCP=none|slirp    with VMS: static fallback addresses, or one slirp on the segment
#   LOSS= DUP= REORDER= (percent)  DELAY= (ms)  RATE= (Mbit/s)  SEED=
#                      with VMS: faults the switch injects on every port
#   FUZZ_S=secs        `make fuzz`: seconds per fuzz target             (default 60)
#   FUZZ_RUNS=n        `make fuzz`: also stop a target after n executions
#   FUZZ_TARGETS="..." `make fuzz`: only these targets                  (default all)

NODES     ?= 1
transport ?= auto
SCENARIO  ?= normal
CMDLINE   ?=
ACCEL     ?= tcg
FIRMWARE  ?= auto
PCAP      ?= 0
TIMEOUT   ?= 120
FEATURES  ?=
VMS       ?=
VM_CMDLINE ?=
ECHO      ?= 0
DHCP      ?= none
LOSS      ?= 0
DUP       ?= 0
REORDER   ?= 0
DELAY     ?= 0
RATE      ?= 0
SEED      ?= 1
FUZZ_S    ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?=

CARGO        ?= cargo
TARGET       := x86_64-unknown-none
TARGET_DIR   := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
IMAGE        := $(TARGET_DIR)/$(TARGET)/release/dsoftbus
OUT          := $(CURDIR)/out
APPEND       := nodes=$(NODES) transport=$(transport) scenario=$(SCENARIO) $(CMDLINE)
BOOT_OPTS    := --accel $(ACCEL) --firmware $(FIRMWARE) --kernel $(IMAGE)
PCAP_OPT     := $(if $(filter 1,$(PCAP)),--pcap $(OUT)/pcap,)
VMS_APPEND   := transport=$(transport) $(CMDLINE)
VMS_OPTS     := --vms $(VMS) --scenario $(SCENARIO) --echo-bytes $(ECHO) \
                --append "$(VMS_APPEND)" --vm-append "$(VM_CMDLINE)" --dhcp $(DHCP) \
                --loss $(LOSS) --dup $(DUP) --reorder $(REORDER) --delay $(DELAY) --rate $(RATE) \
                --seed $(SEED) --timeout $(TIMEOUT) --out $(OUT)/vms \
                $(if $(filter 1,$(PCAP)),--pcap $(OUT)/vms/segment.pcap,) \
                --accel $(ACCEL) --firmware $(FIRMWARE) --kernel $(IMAGE)
TOOLS        := $(CARGO) run -q --release -p dsb-tests --bin

.PHONY: help deps qemu-dep target-dep image size run test-host test-qemu test-vms test-dsb test bench fuzz fmt clippy clean

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'
	@echo "targets: run image size test-host test bench fuzz fmt clippy clean deps"

# --- set-up: a fresh machine has no QEMU and no bare-metal Rust target --------
deps: qemu-dep target-dep

qemu-dep:
	@command -v qemu-system-x86_64 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing qemu-system-x86 with apt-get (one time)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 >/dev/null; } \
	      || { echo "make: 'apt-get install qemu-system-x86' failed"; exit 1; }; \
	  else \
	    echo "make: qemu-system-x86_64 not found: install qemu-system-x86 (e.g. sudo apt-get install qemu-system-x86)"; exit 1; \
	  fi; }

target-dep:
	@rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || { \
	  if command -v rustup >/dev/null 2>&1; then \
	    echo "make: adding Rust target $(TARGET) with rustup (one time)"; \
	    rustup target add $(TARGET) >/dev/null || { echo "make: 'rustup target add $(TARGET)' failed"; exit 1; }; \
	  else \
	    echo "make: Rust target $(TARGET) missing: install rustup and run 'rustup target add $(TARGET)'"; exit 1; \
	  fi; }

# --- the image ----------------------------------------------------------------
image: target-dep
	$(CARGO) build --release -p dsb-app --bin dsoftbus --target $(TARGET) $(if $(FEATURES),--features $(FEATURES),)

size: image
	@mkdir -p $(OUT)
	@objcopy --strip-all $(IMAGE) $(OUT)/dsoftbus.stripped
	@echo "image: $$(stat -c %s $(IMAGE)) bytes, stripped: $$(stat -c %s $(OUT)/dsoftbus.stripped) bytes"

run: qemu-dep image
ifeq ($(strip $(VMS)),)
	@$(TOOLS) qemu-run -- --nodes $(NODES) --append "$(APPEND)" --timeout $(TIMEOUT) $(BOOT_OPTS) $(PCAP_OPT)
else
	@$(TOOLS) vms -- $(VMS_OPTS)
endif

# --- tests ---------------------------------------------------------------------
test-host:
	$(CARGO) test --workspace

test-qemu: qemu-dep image
	$(TOOLS) scenarios -- $(BOOT_OPTS)

# Cross-VM scenarios (serving nodes, own identities, judged by the harness):
# cross-vm: 2 VMs over udp-sec, 1 MiB echoed hash-checked each way through the
#           switch with 5 % loss and 2 % reordering;
# mesh:     4 VMs, the full mesh (6 sessions), each pinged;
# spoof:    3 VMs, the third impersonates node-2 and gets no session.
VMS_TEST := --timeout 150 --accel $(ACCEL) --firmware $(FIRMWARE) --kernel $(IMAGE)
test-vms: qemu-dep image
	$(TOOLS) vms -- --vms 2 --append "transport=udp-sec" --echo-bytes 1048576 --loss 5 --reorder 2 \
	  --seed 3 --out $(OUT)/vms/cross-vm $(VMS_TEST)
	$(TOOLS) vms -- --vms 4 --out $(OUT)/vms/mesh $(VMS_TEST)
	$(TOOLS) vms -- --vms 3 --scenario spoof --out $(OUT)/vms/spoof $(VMS_TEST)

# dsb against two serving VMs: peers, ping, call sd, 4 MiB put/get, a denied
# put (exit 3), a file over the peer's cap (exit 1), an unknown peer (exit 4).
# dsb is built alone so that no test-only feature of the workspace reaches it.
test-dsb: qemu-dep image
	$(CARGO) build -q --release -p dsb
	$(TOOLS) dsb-scenario -- --dsb $(TARGET_DIR)/release/dsb $(BOOT_OPTS)

test: test-host test-qemu test-vms test-dsb

# --- benchmarks: one `BENCH <name> <value> <unit>` line per figure --------------
bench: qemu-dep image
	$(CARGO) bench -q -p dsb-discovery -p dsb-noise -p dsb-transports -p dsb-tests
	@# udp-sec + mux, quinn-proto (NewReno, Cubic) and smoltcp TCP + mux on one
	@# link model in simulated time, and blob / RPC over udp-sec + mux on it;
	@# its own workspace keeps quinn out of CI builds.
	$(CARGO) run -q --release --manifest-path tests/transport-bench/Cargo.toml
	@# The same udp-sec with the image's AEAD (RustCrypto) instead of ring's,
	@# against quinn Cubic again: only its `udpsec_portable_*` lines.
	BENCH_ONLY=udpsec_portable,quic_cubic $(CARGO) run -q --release \
	  --manifest-path tests/transport-bench/Cargo.toml --no-default-features \
	  | grep '^BENCH udpsec_portable_'
	@$(TOOLS) boot-bench -- --runs 5 $(BOOT_OPTS)
	@# Cross-VM: idle CPU of a serving VM, full-mesh set-up (4 and 8 VMs),
	@# udp-sec echo between two VMs; each from real `make run VMS=N` runs.
	@$(TOOLS) vm-bench -- $(BOOT_OPTS)
	@$(MAKE) -s size

# --- fuzzing (nightly + cargo-fuzz; not part of `make test`) --------------------
# Every target of discovery/fuzz, noise/fuzz, transports/fuzz and app/fuzz in
# turn, one job, nice 19; one `FUZZ <target> execs=.. cov=..` line per target.
fuzz:
	@FUZZ_S=$(FUZZ_S) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_TARGETS="$(FUZZ_TARGETS)" sh scripts/fuzz.sh

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets
	$(CARGO) clippy -p dsb-app --bin dsoftbus --target $(TARGET) --release

clean:
	$(CARGO) clean
	rm -rf $(OUT)
