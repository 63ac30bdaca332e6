#!/usr/bin/env python3
"""Summarises the raw results of run.sh: medians, ratios, CPU; prints a table, writes JSON.

usage: report.py RAW.tsv OUT.json DURATION REPS CLK_TCK [THREADS.tsv]
RAW.tsv lines: config, test, rep, value (bit/s, packets/s, or "failed: ..."), gateway CPU
ticks during the test, wall seconds of the test.
THREADS.tsv lines: config, test, rep, "<gateway>/<thread name>", CPU ticks, wall seconds.
"""
import json
import statistics
import sys
import time

raw, out, duration, reps, clk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
threads_tsv = sys.argv[6] if len(sys.argv) > 6 else None
UNITS = {"tcp1": ("Gbit/s", 1e9), "tcp4": ("Gbit/s", 1e9), "udp64": ("kpps", 1e3)}
NAMES = {
    "plain": "plain routed (no tunnel)",
    "swan-swan": "strongSwan <-> strongSwan",
    "cw-cw": "Causeway <-> Causeway",
    "cw-swan": "Causeway <-> strongSwan",
    "cw-cw-base": "Causeway<->Causeway, no offl.",
    "cw-cw-1w": "Causeway<->Causeway, 1 worker",
    "cw-cw-nw": "Causeway<->Causeway, N workers",
    "cw-swan-1w": "Causeway<->strongSwan, 1 wkr",
    "cw-swan-nw": "Causeway<->strongSwan, N wkrs",
}

rows = {}  # (config, test) -> {"values": [...], "cpu": [...], "failures": [...]}
order = []
for line in open(raw):
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 6:
        continue
    cfg, test, _rep, value, ticks, wall = parts[:6]
    key = (cfg, test)
    if key not in rows:
        rows[key] = {"values": [], "cpu": [], "failures": []}
        order.append(key)
    r = rows[key]
    try:
        v = float(value)
    except ValueError:
        r["failures"].append(value)
        continue
    r["values"].append(v)
    w = float(wall)
    if w > 0:
        r["cpu"].append(int(ticks) / clk / w)

result = {
    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "duration_s": duration,
    "repetitions": reps,
    "units": {"tcp1": "bit/s", "tcp4": "bit/s", "udp64": "received packets/s"},
    "cpu_note": "gateway CPU = (utime+stime) of both gateway daemons / wall time, in cores "
    "(0 for the plain path: forwarding runs in the kernel)",
    "results": [],
}
med = {}
for key in order:
    r = rows[key]
    if r["values"]:
        med[key] = statistics.median(r["values"])

lines = []
hdr = f"{'configuration':28} {'test':6} {'median':>9} {'unit':7} {'vs swan':>8} {'vs plain':>8} {'gw CPU':>7} {'CPU/unit':>9}  runs"
lines.append(hdr)
lines.append("-" * len(hdr))
for key in order:
    cfg, test = key
    r = rows[key]
    unit, scale = UNITS.get(test, ("", 1))
    entry = {
        "config": cfg,
        "test": test,
        "values": r["values"],
        "failures": r["failures"],
        "gateway_cpu_cores": r["cpu"],
    }
    if key not in med:
        reason = r["failures"][0] if r["failures"] else "no result"
        lines.append(f"{NAMES.get(cfg, cfg):28} {test:6} {reason}")
        entry["median"] = None
        result["results"].append(entry)
        continue
    m = med[key]
    cpu = statistics.median(r["cpu"]) if r["cpu"] else 0.0
    swan = med.get(("swan-swan", test))
    plain = med.get(("plain", test))
    vs_swan = m / swan if swan else None
    vs_plain = m / plain if plain else None
    per = cpu / (m / scale) if m > 0 and cpu > 0 else None
    entry.update(
        median=m,
        vs_swan_swan=vs_swan,
        vs_plain=vs_plain,
        gateway_cpu_cores_median=cpu,
        cpu_cores_per_unit=per,
        unit_for_cpu=unit,
    )
    result["results"].append(entry)
    f = lambda x, p=2: "-" if x is None else f"{x:.{p}f}"
    ok = f"{len(r['values'])}/{len(r['values']) + len(r['failures'])}"
    lines.append(
        f"{NAMES.get(cfg, cfg):28} {test:6} {m / scale:9.2f} {unit:7} {f(vs_swan):>8} {f(vs_plain, 3):>8} "
        f"{cpu:7.2f} {f(per, 3):>9}  {ok}"
    )

print()
print(f"== tunnel throughput, median of {reps} x {duration}s (tcp1/tcp4: iperf3 TCP 1/4 streams; "
      "udp64: 64-byte UDP, packets/s received)")
print("\n".join(lines))
print("gw CPU: both gateway daemons, cores (utime+stime / wall); CPU/unit: cores per Gbit/s or per kpps")

# Per-thread CPU (median over repetitions, cores) of the Causeway configurations: shows
# which worker threads carry the load (e.g. inbound decryption on one RX thread).
threads = {}
if threads_tsv:
    try:
        for line in open(threads_tsv):
            p = line.rstrip("\n").split("\t")
            if len(p) < 6:
                continue
            cfg, test, _rep, name, ticks, wall = p[:6]
            if float(wall) > 0:
                threads.setdefault((cfg, test, name), []).append(int(ticks) / clk / float(wall))
    except OSError:
        pass
if threads:
    result["threads"] = []
    print()
    print("== per-thread CPU, cores (median; threads over 0.02 cores; ga = sender side, gb = receiver side)")
    by_ct = {}
    for (cfg, test, name), v in threads.items():
        m = statistics.median(v + [0.0] * (reps - len(v))) if len(v) < reps else statistics.median(v)
        result["threads"].append({"config": cfg, "test": test, "thread": name, "cores_median": m})
        if m >= 0.02 and cfg.startswith("cw-"):
            by_ct.setdefault((cfg, test), []).append((name, m))
    for (cfg, test), v in sorted(by_ct.items()):
        v.sort()
        print(f"{cfg:10} {test:6} " + "  ".join(f"{n}={m:.2f}" for n, m in v))
with open(out, "w") as fh:
    json.dump(result, fh, indent=2)
print(f"JSON: {out}")
