#!/bin/sh
# fuzz.sh [SECONDS]: build every cargo-fuzz target in fuzz/ and run each for SECONDS (default 60).
# scripts/test.sh calls it with a short smoke time; run it by hand for real fuzzing sessions.
# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 lets the stable toolchain provide them.
set -eu
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in $(cargo fuzz list); do
  mkdir -p "corpus/$t"
  touch "corpus/$t"
  echo "== fuzz $t (${secs}s)"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|panicked" || true
  # cargo fuzz exits non-zero on a crash; with `| grep` we check the artifacts instead
  if [ -d "artifacts/$t" ] && [ -n "$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) -newer "corpus/$t" 2>/dev/null | head -1)" ]; then
    echo "fuzz.sh: $t found a failing input: fuzz/artifacts/$t" >&2
    exit 1
  fi
done
echo "fuzz.sh: all targets ran ${secs}s without a failure"
