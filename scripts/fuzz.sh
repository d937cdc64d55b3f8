#!/bin/sh
# `make fuzz`: every cargo-fuzz target of every crate in turn, one job each,
# at the lowest CPU priority. Not part of `make test`.
#
#   FUZZ_S=<seconds per target>     (default 60)
#   FUZZ_RUNS=<executions>          also stop a target after this many (default: no limit)
#   FUZZ_TARGETS="mux_frame ..."    only these targets (default: all)
#
# Targets are the files `<crate>/fuzz/fuzz_targets/*.rs`; each runs on its
# working corpus `<crate>/fuzz/corpus/<target>` (not committed) plus the
# committed seeds `<crate>/fuzz/seeds/<target>`. Prints one line per target:
#   FUZZ <target> execs=<n> cov=<edges> secs=<s> ok|CRASH <artifact>|FAIL <log>
# and exits non-zero if any target failed. Logs: out/fuzz/<target>.log.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${FUZZ_S:-60}
ONLY=${FUZZ_TARGETS:-}
RUNS=${FUZZ_RUNS:+-runs=$FUZZ_RUNS}
LOGS="$ROOT/out/fuzz"
CRATES="discovery noise transports app"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "make fuzz: needs the nightly toolchain: rustup toolchain install nightly"
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "make fuzz: installing cargo-fuzz with 'cargo install cargo-fuzz' (one time)"
  if ! cargo install cargo-fuzz --locked >/dev/null 2>&1; then
    echo "make fuzz: cargo-fuzz missing and could not be installed: run 'cargo install cargo-fuzz'"
    exit 1
  fi
fi
mkdir -p "$LOGS"
failed=0
for crate in $CRATES; do
  dir="$ROOT/$crate/fuzz"
  [ -d "$dir/fuzz_targets" ] || continue
  # Start from the versions the main workspace tests (the fuzz lock is not committed).
  [ -f "$dir/Cargo.lock" ] || cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
  for src in "$dir"/fuzz_targets/*.rs; do
    t=$(basename "$src" .rs)
    if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $t "; then continue; fi
    log="$LOGS/$t.log"
    mkdir -p "$dir/corpus/$t" "$dir/seeds/$t"
    before=$(ls "$dir/artifacts/$t" 2>/dev/null | wc -l)
    start=$(date +%s)
    # The fuzzer runs in the foreground (no -jobs): its output, final stats
    # included, goes to this target's own log, so targets of one crate can
    # run side by side (libFuzzer's -jobs mode writes fuzz-<n>.log in the
    # crate's directory, which two runs would share).
    (cd "$dir" && nice -n 19 cargo +nightly fuzz run -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" $RUNS -timeout=30 -print_final_stats=1) >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    after=$(ls "$dir/artifacts/$t" 2>/dev/null | wc -l)
    if [ "$after" -gt "$before" ]; then
      art=$(ls -t "$dir/artifacts/$t" | head -1)
      echo "FUZZ $t execs=${execs:-?} cov=${cov:-?} secs=$secs CRASH $crate/fuzz/artifacts/$t/$art"
      failed=1
    elif [ "$rc" -ne 0 ] || [ -z "$execs" ]; then
      echo "FUZZ $t execs=${execs:-?} cov=${cov:-?} secs=$secs FAIL out/fuzz/$t.log"
      failed=1
    else
      echo "FUZZ $t execs=${execs:-?} cov=${cov:-?} secs=$secs ok"
    fi
  done
done
exit $failed
