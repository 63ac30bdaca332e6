#!/usr/bin/env bash
# Throughput harness: host A — gateway A ═ WAN ═ gateway B — host B in four network
# namespaces, measured for several gateway configurations in ONE run (interleaved
# repetitions, median). See README.md next to this file. Run as root:
#
#   sudo benches/tunnel/run.sh            # REPS=3 DURATION=5 by default
#
# Environment knobs:
#   REPS=3            repetitions per configuration (interleaved: rep 1 of every config,
#                     then rep 2, ...)
#   DURATION=5        seconds per iperf3 test
#   CONFIGS="plain swan-swan cw-cw cw-swan"   which configurations, in this order; also
#                     cw-cw-base: Causeway <-> Causeway with the dataplane offloads off,
#                     cw-cw-1w / cw-cw-nw: Causeway <-> Causeway with 1 worker / one
#                     worker per core (CAUSEWAY_DP_WORKERS=1 / 0), cw-swan-1w /
#                     cw-swan-nw: the same for Causeway <-> strongSwan
#   TESTS="tcp1 tcp4 udp64"                   which tests
#   UDP_RATE=0        iperf3 -b for the 64-byte UDP test (0 = as fast as possible)
#   CAUSEWAY_BIN=...  the daemon (default: $CARGO_TARGET_DIR or ./target, release/causeway;
#                     built with `cargo build --release -p causeway` when missing)
#   OUT=benches/tunnel/results/<UTC time>.json   the JSON result file
#   KEEP_LOGS=1       keep the work directory (configs, daemon logs) after the run
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-5}
CONFIGS=${CONFIGS:-"plain swan-swan cw-cw cw-swan"}
TESTS=${TESTS:-"tcp1 tcp4 udp64"}
UDP_RATE=${UDP_RATE:-0}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$HERE/results/$STAMP.json}
CAUSEWAY_BIN=${CAUSEWAY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/causeway}
CHARON=${CHARON:-/usr/sbin/charon-systemd}
SWANCTL=${SWANCTL:-/usr/sbin/swanctl}

if [ "$(id -u)" != 0 ]; then
    echo "run.sh: needs root (network namespaces)" >&2
    exit 2
fi
for t in ip iperf3 python3 ping; do
    command -v "$t" >/dev/null || { echo "run.sh: $t is missing" >&2; exit 2; }
done

TAG="cwb$$"
HA="$TAG-ha"; GA="$TAG-ga"; GB="$TAG-gb"; HB="$TAG-hb"
WORK=$(mktemp -d "/tmp/cw-tunnel-bench.XXXXXX")
RAW="$WORK/raw.tsv"
: >"$RAW"
PIDS=()          # every daemon started (killed in the trap)
GW_PIDS=()       # gateway daemons of the current configuration (CPU accounting)
GW_NAMES=()      # their gateway (ga/gb), same order
THREADS="$WORK/threads.tsv"   # per-thread CPU of the gateways, per test
: >"$THREADS"
IPERF_PID=""

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    [ -n "$IPERF_PID" ] && stop_pid "$IPERF_PID"
    for ns in "$HA" "$GA" "$GB" "$HB"; do
        # Anything still running inside (e.g. a daemon's child) goes first.
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    if [ "${KEEP_LOGS:-0}" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---------------------------------------------------------------- topology
build_topology() {
    local ns
    for ns in "$HA" "$GA" "$GB" "$HB"; do
        ip netns add "$ns" || return 1
        ip -n "$ns" link set lo up
    done
    # veth pairs created inside the namespaces (never visible in the root namespace).
    ip -n "$HA" link add lan0 type veth peer name lan0 netns "$GA" || return 1
    ip -n "$GA" link add wan0 type veth peer name wan0 netns "$GB" || return 1
    ip -n "$GB" link add lan0 type veth peer name lan0 netns "$HB" || return 1
    # Site MTU 1400 everywhere so TCP uses the same MSS (1360) on every path and no
    # configuration depends on PMTU discovery or MSS clamping.
    ip -n "$HA" link set lan0 mtu 1400 up
    ip -n "$GA" link set lan0 mtu 1400 up
    ip -n "$GB" link set lan0 mtu 1400 up
    ip -n "$HB" link set lan0 mtu 1400 up
    ip -n "$GA" link set wan0 up
    ip -n "$GB" link set wan0 up
    ip -n "$HA" addr add 10.1.0.2/24 dev lan0
    ip -n "$GA" addr add 10.1.0.1/24 dev lan0
    ip -n "$GA" addr add 192.0.2.1/24 dev wan0
    ip -n "$GB" addr add 192.0.2.2/24 dev wan0
    ip -n "$GB" addr add 10.2.0.1/24 dev lan0
    ip -n "$HB" addr add 10.2.0.2/24 dev lan0
    ip -n "$HA" route add default via 10.1.0.1
    ip -n "$HB" route add default via 10.2.0.1
    for ns in "$GA" "$GB"; do
        nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
            net.ipv4.conf.default.rp_filter=0 || return 1
    done
    # One iperf3 server on host B for the whole run.
    nsx "$HB" iperf3 -s -B 10.2.0.2 >"$WORK/iperf3-server.log" 2>&1 &
    IPERF_PID=$!
    sleep 0.3
}

wait_ping() {
    local secs=$1 i
    for i in $(seq "$secs"); do
        nsx "$HA" ping -c1 -W1 -q 10.2.0.2 >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

# ---------------------------------------------------------------- strongSwan
# write_swan <dir> <local wan> <remote wan> <local site> <remote site>
write_swan() {
    local d=$1 lw=$2 rw=$3 ln=$4 rn=$5
    mkdir -p "$d"
    # kernel-libipsec before kernel-netlink (this kernel has no ESP; INTEROP.md).
    cat >"$d/strongswan.conf" <<EOF
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  plugins {
    vici { socket = unix://$d/charon.vici }
  }
  filelog {
    t { path = $d/charon.log
        default = 1
        ike = 1 }
  }
}
EOF
    cat >"$d/swanctl.conf" <<EOF
connections {
  bench {
    version = 2
    local_addrs = $lw
    remote_addrs = $rw
    proposals = aes256gcm16-prfsha256-x25519,aes256-sha256-x25519,aes256-sha256-modp2048
    encap = yes
    local { auth = psk
            id = $lw }
    remote { auth = psk
             id = $rw }
    children {
      bench {
        local_ts = $ln
        remote_ts = $rn
        esp_proposals = aes256gcm16
        start_action = none
      }
    }
  }
}
secrets {
  ike-bench {
    id-a = 192.0.2.1
    id-b = 192.0.2.2
    secret = "$(cat "$WORK/psk")"
  }
}
EOF
    chmod 600 "$d/swanctl.conf"
}

# start_swan <ns> <dir>: charon in the namespace, connection loaded; added to GW_PIDS.
start_swan() {
    local ns=$1 d=$2 i
    # A socket left by an earlier charon would be "up" at once and refuse connections.
    rm -f "$d/charon.vici"
    STRONGSWAN_CONF="$d/strongswan.conf" ip netns exec "$ns" "$CHARON" \
        >"$d/charon.out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    GW_PIDS+=("$pid")
    GW_NAMES+=("${ns##*-}")
    for i in $(seq 150); do
        [ -S "$d/charon.vici" ] && break
        sleep 0.1
    done
    # charon may still be loading plugins on a busy machine: retry.
    for i in 1 2 3 4 5; do
        if STRONGSWAN_CONF="$d/strongswan.conf" nsx "$ns" "$SWANCTL" --load-all \
            --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >"$d/swanctl.out" 2>&1; then
            return 0
        fi
        sleep 1
    done
    echo "swanctl --load-all failed: $(grep -v '^ ' "$d/swanctl.out" | head -n1)" >&2
    return 1
}

swan_initiate() {
    local ns=$1 d=$2
    STRONGSWAN_CONF="$d/strongswan.conf" nsx "$ns" "$SWANCTL" --initiate --child bench \
        --timeout 15 --uri "unix://$d/charon.vici" >"$d/initiate.out" 2>&1
}

# ---------------------------------------------------------------- Causeway
# write_cw <file> <local wan> <remote wan> <local site> <remote site> <start_action>
write_cw() {
    local f=$1 lw=$2 rw=$3 ln=$4 rn=$5 sa=$6
    cat >"$f" <<EOF
# written by benches/tunnel/run.sh
[daemon]
control_socket = "$f.sock"
log_level = "info"

[[tunnel]]
name = "bench"
local_addrs = "$lw"
remote_addrs = "$rw"
psk_file = "$WORK/psk"
ike_proposals = ["aes256gcm16-prfsha256-x25519", "aes256-sha256-x25519", "aes256-sha256-modp2048"]
esp_proposals = ["aes256gcm16"]
local_ts = ["$ln"]
remote_ts = ["$rn"]
encap = "udp"
mtu = 1400
start_action = "$sa"
EOF
}

start_cw() {
    local ns=$1 cfg=$2
    if [ ! -x "$CAUSEWAY_BIN" ]; then
        echo "no causeway binary at $CAUSEWAY_BIN" >&2
        return 1
    fi
    rm -f "$cfg.sock"
    # `ip netns exec` execs the daemon: $! is the daemon's pid (CPU accounting, SIGTERM).
    # shellcheck disable=SC2086 # CW_ENV is a list of VAR=value words
    env ${CW_ENV:-} ip netns exec "$ns" "$CAUSEWAY_BIN" run -c "$cfg" >"$cfg.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    GW_PIDS+=("$pid")
    GW_NAMES+=("${ns##*-}")
    sleep 0.3
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "causeway run exited: $(tail -n1 "$cfg.log")" >&2
        return 1
    fi
}

# ---------------------------------------------------------------- configurations
# setup_<config>: bring the path up, set GW_PIDS; print a reason and fail otherwise.
setup_plain() {
    ip -n "$GA" route add 10.2.0.0/16 via 192.0.2.2 || return 1
    ip -n "$GB" route add 10.1.0.0/16 via 192.0.2.1 || return 1
    wait_ping 10 || { echo "no ping over the plain path" >&2; return 1; }
}
teardown_plain() {
    ip -n "$GA" route del 10.2.0.0/16 2>/dev/null
    ip -n "$GB" route del 10.1.0.0/16 2>/dev/null
    return 0
}

setup_swan_swan() {
    write_swan "$WORK/swan-a" 192.0.2.1 192.0.2.2 10.1.0.0/16 10.2.0.0/16
    write_swan "$WORK/swan-b" 192.0.2.2 192.0.2.1 10.2.0.0/16 10.1.0.0/16
    start_swan "$GB" "$WORK/swan-b" || return 1
    start_swan "$GA" "$WORK/swan-a" || return 1
    swan_initiate "$GA" "$WORK/swan-a" ||
        { echo "swanctl --initiate failed: $(tail -n1 "$WORK/swan-a/initiate.out")" >&2; return 1; }
    wait_ping 20 || { echo "strongSwan tunnel up but no ping through it" >&2; return 1; }
}

setup_cw_cw() {
    write_cw "$WORK/cw-a.toml" 192.0.2.1 192.0.2.2 10.1.0.0/16 10.2.0.0/16 start
    write_cw "$WORK/cw-b.toml" 192.0.2.2 192.0.2.1 10.2.0.0/16 10.1.0.0/16 none
    start_cw "$GB" "$WORK/cw-b.toml" || return 1
    start_cw "$GA" "$WORK/cw-a.toml" || return 1
    wait_ping 30 || {
        echo "no ping through the Causeway tunnel within 15 s (A: $(grep -v '^\s*$' "$WORK/cw-a.toml.log" | tail -n1 | cut -c1-160))" >&2
        return 1
    }
}

setup_cw_swan() {
    write_swan "$WORK/swan-b" 192.0.2.2 192.0.2.1 10.2.0.0/16 10.1.0.0/16
    write_cw "$WORK/cw-a.toml" 192.0.2.1 192.0.2.2 10.1.0.0/16 10.2.0.0/16 start
    start_swan "$GB" "$WORK/swan-b" || return 1
    start_cw "$GA" "$WORK/cw-a.toml" || return 1
    wait_ping 30 || {
        echo "no ping through Causeway<->strongSwan within 15 s (A: $(grep -v '^\s*$' "$WORK/cw-a.toml.log" | tail -n1 | cut -c1-160))" >&2
        return 1
    }
}

# Causeway <-> Causeway with the dataplane's offloads off (TUN without IFF_VNET_HDR, no UDP
# GSO/GRO): the dataplane as it was before issue 8, for A/B in the same run.
setup_cw_cw_base() {
    local rc
    CW_ENV="CAUSEWAY_DP_TUN_OFFLOAD=0 CAUSEWAY_DP_UDP_GSO=0 CAUSEWAY_DP_UDP_GRO=0"
    setup_cw_cw
    rc=$?
    CW_ENV=""
    return $rc
}

# Causeway <-> Causeway with one dataplane worker (one TUN queue, one socket) and with one
# worker per core (multi-queue TUN, SO_REUSEPORT sockets), for A/B in the same run.
setup_cw_cw_1w() {
    local rc
    CW_ENV="CAUSEWAY_DP_WORKERS=1"
    setup_cw_cw
    rc=$?
    CW_ENV=""
    return $rc
}
setup_cw_cw_nw() {
    local rc
    CW_ENV="CAUSEWAY_DP_WORKERS=0"
    setup_cw_cw
    rc=$?
    CW_ENV=""
    return $rc
}

# Causeway with one worker / one worker per core <-> strongSwan (whose replay window is
# 32 packets by default: the multi-worker TX must keep sequence numbers in order).
setup_cw_swan_1w() {
    local rc
    CW_ENV="CAUSEWAY_DP_WORKERS=1"
    setup_cw_swan
    rc=$?
    CW_ENV=""
    return $rc
}
setup_cw_swan_nw() {
    local rc
    CW_ENV="CAUSEWAY_DP_WORKERS=0"
    setup_cw_swan
    rc=$?
    CW_ENV=""
    return $rc
}

teardown_daemons() {
    local p keep=()
    for p in "${GW_PIDS[@]}"; do stop_pid "$p"; done
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && keep+=("$p"); done
    PIDS=("${keep[@]}")
    GW_PIDS=()
    GW_NAMES=()
    # Leftover routes/rules of a daemon that died hard.
    ip -n "$GA" route flush table 220 2>/dev/null
    ip -n "$GB" route flush table 220 2>/dev/null
    return 0
}

# ---------------------------------------------------------------- measurement
cpu_ticks() { # sum of utime+stime of GW_PIDS
    local p sum=0 f
    for p in "${GW_PIDS[@]}"; do
        f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
        # after "pid (comm)": state is field 1 → utime = 12, stime = 13
        set -- $f
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

thread_ticks() { # "<gateway>/<thread name>\t<utime+stime>" for every thread of GW_PIDS
    local i p t f comm
    for i in "${!GW_PIDS[@]}"; do
        p=${GW_PIDS[$i]}
        for t in /proc/"$p"/task/*; do
            f=$(cat "$t/stat" 2>/dev/null) || continue
            comm=${f#*(}
            comm=${comm%%)*}
            set -- ${f##*) }
            printf '%s/%s\t%s\n' "${GW_NAMES[$i]:-gw$i}" "${comm// /_}" "$((${12} + ${13}))"
        done
    done
}

# run_test <config> <test> <rep>: one iperf3 run, appends a line to $RAW.
run_test() {
    local cfg=$1 test=$2 rep=$3 args json t0 t1 c0 c1 value
    case $test in
    tcp1) args=(-t "$DURATION" -P 1) ;;
    tcp4) args=(-t "$DURATION" -P 4) ;;
    udp64) args=(-t "$DURATION" -u -l 64 -b "$UDP_RATE") ;;
    esac
    json="$WORK/$cfg-$test-$rep.json"
    thread_ticks >"$WORK/threads0"
    c0=$(cpu_ticks); t0=$(date +%s.%N)
    nsx "$HA" timeout $((DURATION + 20)) iperf3 -c 10.2.0.2 -B 10.1.0.2 -J "${args[@]}" \
        >"$json" 2>&1
    t1=$(date +%s.%N); c1=$(cpu_ticks)
    thread_ticks >"$WORK/threads1"
    # Per thread name (threads of one name summed): ticks during the test.
    awk -F'\t' -v cfg="$cfg" -v test="$test" -v rep="$rep" -v wall="$(python3 -c "print($t1-$t0)")" '
        NR == FNR { a[$1] += $2; next }
        { b[$1] += $2 }
        END { for (k in b) { d = b[k] - a[k]; if (d > 0) printf "%s\t%s\t%s\t%s\t%d\t%s\n", cfg, test, rep, k, d, wall } }
    ' "$WORK/threads0" "$WORK/threads1" >>"$THREADS"
    value=$(python3 - "$json" "$test" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    e = d["end"]
    if sys.argv[2].startswith("tcp"):
        print(e["sum_received"]["bits_per_second"])
    else:
        s = e["sum"]
        rx = s["packets"] - s["lost_packets"]
        print(rx / s["seconds"])
except Exception as ex:
    print("error: %s" % (d.get("error", ex) if isinstance(d, dict) else ex))
EOF
)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "$test" "$rep" "$value" \
        "$((c1 - c0))" "$(python3 -c "print($t1-$t0)")" >>"$RAW"
    log "  $cfg $test #$rep: $value (gateway cpu ticks $((c1 - c0)))"
}

fail_config() { # <config> <rep> <reason>
    local t
    for t in $TESTS; do
        printf '%s\t%s\t%s\tfailed: %s\t0\t0\n' "$1" "$t" "$2" "$3" >>"$RAW"
    done
    log "  $1 #$2 failed: $3"
}

# ---------------------------------------------------------------- main
head -c 24 /dev/urandom | base64 >"$WORK/psk"
chmod 600 "$WORK/psk"

if [[ " $CONFIGS " == *" cw-"* ]] && [ ! -x "$CAUSEWAY_BIN" ]; then
    log "building $CAUSEWAY_BIN (cargo build --release -p causeway)"
    (cd "$ROOT" && cargo build --release -p causeway) >&2 ||
        log "build failed: the Causeway configurations will report failed"
fi

build_topology || { echo "run.sh: topology failed" >&2; exit 1; }
log "topology up: $HA - $GA = $GB - $HB; configs: $CONFIGS; $REPS x ${DURATION}s"

for rep in $(seq "$REPS"); do
    for cfg in $CONFIGS; do
        log "$cfg, repetition $rep"
        fn="setup_${cfg//-/_}"
        if ! declare -F "$fn" >/dev/null; then
            fail_config "$cfg" "$rep" "unknown configuration"
            continue
        fi
        GW_PIDS=()
        "$fn" 2>"$WORK/setup.err" >/dev/null
        if [ $? -ne 0 ]; then
            fail_config "$cfg" "$rep" "$(tail -n1 "$WORK/setup.err" | tr '\t' ' ')"
        else
            for t in $TESTS; do run_test "$cfg" "$t" "$rep"; done
        fi
        teardown_plain
        teardown_daemons
    done
done

mkdir -p "$(dirname "$OUT")"
python3 "$HERE/report.py" "$RAW" "$OUT" "$DURATION" "$REPS" "$(getconf CLK_TCK)" "$THREADS"
