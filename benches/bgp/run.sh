#!/usr/bin/env bash
# BGP convergence benchmark: Causeway vs BIRD 2 as the device under test (DUT).
#
#   sudo benches/bgp/run.sh [N...]          (default: 10000 100000)
#
# For each N and each DUT: two fresh network namespaces joined by a veth
# (feeder 10.99.0.2/30 <-> DUT 10.99.0.1/30); bgp/examples/feeder.rs opens an eBGP session
# to the DUT, announces N IPv4 /24s (16.0.0.0/24, 16.0.1.0/24, ...; ~1000 per UPDATE) and
# later withdraws them all. Measured:
#   learn   : "announce" command -> kernel FIB (table main, DUT's proto) holds all N routes
#   withdraw: "withdraw" command -> FIB holds none of them
#   rss     : the DUT's VmHWM (peak RSS, reset just before the announce) after the run;
#             B/route = (VmHWM - VmRSS before the announce) / N
# FIB counts: `ip -n NS -4 route show table main root 16.0.0.0/4 proto P | wc -l`, polled every
# POLL s once SAMPLES (64) prefixes spread over the range are all in (or all out) by
# `ip route get fibmatch` lookups; the timed phase ends when the full count agrees.
#
# Environment: CARGO_TARGET_DIR (where the release binaries are, default ./target),
# CAUSEWAY, FEEDER (binary paths), DUTS ("causeway bird"), TIMEOUT (s per phase, 600),
# POLL (0.05), OUT (JSON file, default benches/bgp/results/<utc>.json), BUILD=1 to build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CAUSEWAY=${CAUSEWAY:-$TARGET/release/causeway}
FEEDER=${FEEDER:-$TARGET/release/examples/feeder}
DUTS=${DUTS:-causeway bird}
TIMEOUT=${TIMEOUT:-600}
POLL=${POLL:-0.05}
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
OUT=${OUT:-$ROOT/benches/bgp/results/$(date -u +%Y%m%dT%H%M%SZ).json}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)

die() { echo "run.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
if [ "${BUILD:-0}" = 1 ]; then
    (cd "$ROOT" && cargo build --release --bin causeway &&
        cargo build --release -p causeway-bgp --example feeder)
fi
[ -x "$FEEDER" ] || die "no feeder at $FEEDER (cargo build --release -p causeway-bgp --example feeder)"
for d in $DUTS; do
    case $d in
    causeway) [ -x "$CAUSEWAY" ] || die "no causeway at $CAUSEWAY (cargo build --release --bin causeway)" ;;
    bird) command -v bird >/dev/null || die "bird not installed" ;;
    *) die "unknown DUT $d" ;;
    esac
done

WORK=$(mktemp -d /tmp/cwbgp.XXXXXX)
NSF=cwbgp-$$-f
NSD=cwbgp-$$-d
PIDS=()
cleanup() {
    exec 3>&-
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do # up to 2 s for a clean shutdown, then SIGKILL
        for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        { kill -9 "$p" && wait "$p"; } 2>/dev/null || true
    done
    PIDS=()
    ip netns del "$NSF" 2>/dev/null || true
    ip netns del "$NSD" 2>/dev/null || true
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM HUP PIPE

now() { date +%s.%N; }
# elapsed START END -> seconds with 3 decimals
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
# cpu PID -> CPU seconds (user + system) the process used so far
TCK=$(getconf CLK_TCK)
cpu() { awk -v t="$TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }

topology() {
    ip netns add "$NSF"
    ip netns add "$NSD"
    ip -n "$NSD" link add v-dut type veth peer name v-feed netns "$NSF"
    ip -n "$NSD" addr add 10.99.0.1/30 dev v-dut
    ip -n "$NSF" addr add 10.99.0.2/30 dev v-feed
    for ns in "$NSF" "$NSD"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$NSD" link set v-dut up
    ip -n "$NSF" link set v-feed up
}

# Causeway: one tunnel that never comes up (start_action = none, peer = the feeder's
# namespace, so no IKE packet leaves the lab). The BGP listener accepts the neighbor
# regardless of the tunnel state; learned routes go to `dev cw-bench` with proto 249.
causeway_cfg() {
    cat >"$WORK/cw.toml" <<EOF
[daemon]
control_socket = "$WORK/cw.sock"
log_level = "warn"

[[tunnel]]
name = "bench"
local_addrs = "10.99.0.1"
remote_addrs = "10.99.0.2"
psk_env = "CW_BENCH_PSK"
local_ts = ["10.98.0.0/24"]
start_action = "none"

[bgp]
asn = 65001
router_id = "10.99.0.1"
proto = 249

[[bgp.neighbor]]
address = "10.99.0.2"
remote_asn = 65002
tunnel = "bench"
EOF
}

bird_cfg() {
    cat >"$WORK/bird.conf" <<EOF
log "$WORK/bird.log" { warning, error, fatal };
router id 10.99.0.1;
protocol device { }
protocol kernel {
    ipv4 { import none; export all; };
}
protocol bgp feeder {
    local 10.99.0.1 as 65001;
    neighbor 10.99.0.2 as 65002;
    ipv4 { import all; export none; };
}
EOF
}

start_dut() { # DUT -> sets DUTPID, PROTO
    case $1 in
    causeway)
        causeway_cfg
        CW_BENCH_PSK=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n') \
            ip netns exec "$NSD" "$CAUSEWAY" run -c "$WORK/cw.toml" >"$WORK/dut.log" 2>&1 &
        PROTO=249
        ;;
    bird)
        bird_cfg
        ip netns exec "$NSD" bird -f -c "$WORK/bird.conf" -s "$WORK/bird.ctl" \
            >"$WORK/dut.log" 2>&1 &
        PROTO=bird
        ;;
    esac
    DUTPID=$! # `ip netns exec` execs the program: this is the DUT's own pid
    PIDS+=("$DUTPID")
    local i
    for i in $(seq 100); do
        ip netns exec "$NSD" ss -ltnH 'sport = :179' | grep -q . && return 0
        kill -0 "$DUTPID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/dut.log" >&2
    die "$1 did not start listening on port 179"
}

# Only the feeder's range: Causeway also installs its remote_ts (0/1, 128/1) and peer pin routes.
fib_count() { ip -n "$NSD" -4 route show table main root 16.0.0.0/4 proto "$PROTO" | wc -l; }

# sample_count N -> how many of SAMPLES prefixes spread over the N (first and last included)
# the FIB holds, by `ip route get fibmatch` lookups: a few dozen lookups instead of a dump
# of up to a million routes, so polling does not steal the CPU the DUT is being timed on.
# Only a gate: the phase ends when the full fib_count agrees.
SAMPLES=${SAMPLES:-64}
sample_count() {
    awk -v n="$1" -v k="$SAMPLES" 'BEGIN {
        if (k > n) k = n
        for (j = 0; j < k; j++) {
            i = (k > 1) ? int(j * (n - 1) / (k - 1)) : 0
            a = 16 * 16777216 + i * 256 + 1
            printf "route get fibmatch %d.%d.%d.%d\n", int(a / 16777216), int(a / 65536) % 256, int(a / 256) % 256, a % 256
        }
    }' | ip -n "$NSD" -force -batch - 2>/dev/null | grep -c "^[0-9.]*/24 .*proto $PROTO " || true
}

# wait_count TARGET N -> prints the time the FIB first held TARGET (N or 0) of the N routes
wait_count() {
    local deadline c want
    deadline=$(awk -v t="$(now)" -v d="$TIMEOUT" 'BEGIN { printf "%.0f", t + d }')
    want=$SAMPLES
    [ "$want" -le "$2" ] || want=$2
    [ "$1" -gt 0 ] || want=0
    while :; do
        if [ "$(sample_count "$2")" -eq "$want" ]; then
            c=$(fib_count)
        else
            c=-1
        fi
        if [ "$c" -eq "$1" ]; then
            now
            return 0
        fi
        kill -0 "$DUTPID" 2>/dev/null || { echo "DUT died (FIB $c)" >&2; return 1; }
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timeout: FIB $c of $1" >&2; return 1; }
        sleep "$POLL"
    done
}

wait_line() { # PATTERN
    local i
    for i in $(seq 600); do
        grep -qs "$1" "$WORK/feeder.out" && return 0
        sleep 0.05
    done
    cat "$WORK/feeder.err" "$WORK/dut.log" >&2
    die "feeder: no '$1'"
}

RESULTS=()
one() { # DUT N
    local dut=$1 n=$2 base t0 t1 t2 t3 sent hwm learn wd bpr c0 c1 c2
    cleanup
    topology
    start_dut "$dut"
    rm -f "$WORK/ctl" "$WORK/feeder.out" "$WORK/feeder.err"
    mkfifo "$WORK/ctl"
    ip netns exec "$NSF" "$FEEDER" --connect 10.99.0.1 --local-as 65002 --peer-as 65001 \
        --router-id 10.99.0.2 --next-hop 10.99.0.2 --count "$n" \
        <"$WORK/ctl" >"$WORK/feeder.out" 2>"$WORK/feeder.err" &
    PIDS+=("$!")
    exec 3<>"$WORK/ctl"
    wait_line ESTABLISHED
    sleep 1
    # Reset VmHWM to the current RSS (Linux >= 4.0): the peak measured is the one of the
    # announce/withdraw phases, not a start-up transient.
    echo 5 >"/proc/$DUTPID/clear_refs" 2>/dev/null || true
    base=$(kb "$DUTPID" VmRSS)
    c0=$(cpu "$DUTPID")
    t0=$(now)
    echo announce >&3
    t1=$(wait_count "$n" "$n") || { cat "$WORK/dut.log" >&2; die "$dut $n: learn failed"; }
    sent=$(awk '$1 == "ANNOUNCED" { print $3 }' "$WORK/feeder.out")
    hwm=$(kb "$DUTPID" VmHWM)
    c1=$(cpu "$DUTPID")
    t2=$(now)
    echo withdraw >&3
    t3=$(wait_count 0 "$n") || { cat "$WORK/dut.log" >&2; die "$dut $n: withdraw failed"; }
    hwm=$(kb "$DUTPID" VmHWM)
    c2=$(cpu "$DUTPID")
    echo quit >&3
    learn=$(elapsed "$t0" "$t1")
    wd=$(elapsed "$t2" "$t3")
    bpr=$(awk -v h="$hwm" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (h - b) * 1024 / n }')
    printf '%-9s %8d  learn %8.3f s (feeder done %.3f s, DUT CPU %.2f s)  withdraw %8.3f s (DUT CPU %.2f s)  VmHWM %7d kB  base %6d kB  %6.1f B/route\n' \
        "$dut" "$n" "$learn" "$(elapsed "$t0" "${sent:-$t0}")" "$(elapsed "$c0" "$c1")" "$wd" "$(elapsed "$c1" "$c2")" "$hwm" "$base" "$bpr" >&2
    RESULTS+=("$dut $n $learn $wd $hwm $base $bpr $(elapsed "$c0" "$c1") $(elapsed "$c1" "$c2")")
    cleanup
}

for n in "${SIZES[@]}"; do
    for d in $DUTS; do
        one "$d" "$n"
    done
done

# Table (ratio = Causeway / BIRD; < 1 means Causeway is better) and JSON.
printf '%s\n' "${RESULTS[@]}" | awk '
{ k = $1 SUBSEP $2; L[k] = $3; W[k] = $4; H[k] = $5; B[k] = $7; if (!($2 in seen)) { seen[$2] = 1; ns[++m] = $2 } }
function r(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "-" }
function v(x, f) { return x == "" ? "-" : sprintf(f, x) }
END {
  printf "\n%9s | %-32s | %-32s | %s\n", "", "Causeway", "BIRD 2", "ratio Causeway/BIRD"
  printf "%9s | %8s %8s %8s %6s | %8s %8s %8s %6s | %6s %6s %6s\n", "N", "learn s", "wdraw s", "HWM MB", "B/rt", "learn s", "wdraw s", "HWM MB", "B/rt", "learn", "wdraw", "B/rt"
  for (i = 1; i <= m; i++) {
    n = ns[i]; c = "causeway" SUBSEP n; b = "bird" SUBSEP n
    printf "%9d | %8s %8s %8s %6s | %8s %8s %8s %6s | %6s %6s %6s\n", n,
      v(L[c], "%.3f"), v(W[c], "%.3f"), v(H[c] / 1024, "%.1f"), v(B[c], "%.0f"),
      v(L[b], "%.3f"), v(W[b], "%.3f"), v(H[b] / 1024, "%.1f"), v(B[b], "%.0f"),
      r(L[c], L[b]), r(W[c], W[b]), r(B[c], B[b])
  }
}'

mkdir -p "$(dirname "$OUT")"
{
    printf '{\n  "date": "%s",\n  "kernel": "%s",\n  "bird": "%s",\n  "results": [' \
        "$STAMP" "$(uname -r)" "$(bird --version 2>&1 | awk '{ print $3 }')"
    sep=""
    for r in "${RESULTS[@]}"; do
        set -- $r
        printf '%s\n    {"dut": "%s", "prefixes": %s, "learn_to_fib_s": %s, "withdraw_s": %s, "vmhwm_kb": %s, "rss_before_kb": %s, "bytes_per_route": %s, "learn_cpu_s": %s, "withdraw_cpu_s": %s}' \
            "$sep" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9"
        sep=","
    done
    printf '\n  ]\n}\n'
} >"$OUT"
echo "JSON: $OUT"
