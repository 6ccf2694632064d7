#!/usr/bin/env bash
# Builds and runs mcp-gateway's fuzz targets (fuzz/fuzz_targets) with libFuzzer on the
# nightly toolchain, each from its committed seed corpus (fuzz/seeds/<target>) plus the
# corpus it grew before (fuzz/corpus/<target>, not committed).
#
#   scripts/fuzz.sh                 every target for 60 s
#   scripts/fuzz.sh -t 600 sse jwt  two targets, 10 minutes each
#   scripts/fuzz.sh --smoke         every target for a few seconds (the test command's check
#                                   that they build and run)
#
# With cargo-fuzz installed, `cargo +nightly fuzz run <target>` works as well; this script
# needs only the nightly toolchain: it passes the same coverage flags cargo fuzz passes
# (without AddressSanitizer: the code under test is safe Rust). A finding stops the run
# and leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=60
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) seconds=3; shift ;;
    -t|--time) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^mcp-gateway-fuzz$')
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "[fuzz] the nightly toolchain is not installed (rustup toolchain install nightly); skipping" >&2
  exit 0
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
echo "[fuzz] building ${#targets[@]} targets (nightly, $triple)" >&2
cargo +nightly build --quiet --release --manifest-path fuzz/Cargo.toml --target "$triple" \
  $(printf -- '--bin %s ' "${targets[@]}")

status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  bin="fuzz/target/$triple/release/$t"
  log="fuzz/artifacts/$t/last.log"
  if "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="fuzz/artifacts/$t/" "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1; then
    runs="$(grep -o 'Done [0-9]* runs' "$log" | tail -1 || true)"
    echo "[fuzz] $t: ${seconds} s, no finding (${runs:-?})" >&2
  else
    echo "[fuzz] $t: FINDING, see $log and fuzz/artifacts/$t/" >&2
    tail -30 "$log" >&2
    status=1
  fi
done
exit $status
