//! Throughput through two Causeway dataplanes (namespaces, veth, ESP-in-UDP or raw ESP,
//! AES-256-GCM, fixed keys: no IKE) measured with iperf3, as an A/B comparison of the
//! dataplane's performance switches ([`DataplaneOptions`]): every variant once per
//! repetition (interleaved), median of the repetitions. Root and iperf3 needed; skips
//! otherwise. Run: `cargo bench -p causeway-dataplane --bench tunnel_iperf`.
//! Knobs: `TUNNEL_IPERF_REPS` (3), `TUNNEL_IPERF_SECS` (5), `TUNNEL_IPERF_TESTS`
//! (`tcp1,udp64`), `TUNNEL_IPERF_VARIANTS` (names below, comma-separated; default all;
//! `all/tun-rs-gro` coalesces with tun-rs's GRO table instead of `dataplane::gro`),
//! `TUNNEL_IPERF_ENCAP` (`udp` or `esp`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use dataplane::netns::skip_reason;
use dataplane::sa::Encap;
use dataplane::worker::DataplaneOptions;

const VARIANTS: &[(&str, DataplaneOptions)] = &[
    ("baseline", opts(false, false, false, false, 1)),
    ("gso", opts(false, true, false, false, 1)),
    ("gso+gro", opts(false, true, true, false, 1)),
    ("tun-offload", opts(true, false, false, false, 1)),
    ("offload+gso", opts(true, true, false, false, 1)),
    ("all/tun-rs-gro", opts(true, true, true, true, 1)),
    ("all", opts(true, true, true, false, 1)),
    ("all/N-workers", opts(true, true, true, false, 0)),
    (
        "all/N-unordered",
        unordered(opts(true, true, true, false, 0)),
    ),
];

const fn unordered(mut o: DataplaneOptions) -> DataplaneOptions {
    o.ordered_tx = false;
    o
}

const fn opts(
    tun_offload: bool,
    udp_gso: bool,
    udp_gro: bool,
    tun_rs_gro: bool,
    workers: usize,
) -> DataplaneOptions {
    DataplaneOptions {
        tun_offload,
        udp_gso,
        udp_gro,
        tun_rs_gro,
        workers,
        ordered_tx: true,
    }
}

fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_owned())
}

/// utime + stime of this process (both dataplanes run in it), seconds.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// A number after `"key":` in the last `"section":` object of iperf3's JSON (the totals
/// at the end come after every interval).
fn json_num(json: &str, section: &str, key: &str) -> Option<f64> {
    let s = &json[json.rfind(&format!("\"{section}\":"))?..];
    let s = s.split(&format!("\"{key}\":")).nth(1)?;
    s.split([',', '\n', '}']).next()?.trim().parse().ok()
}

/// One iperf3 run through a fresh lab: (value, dataplane CPU cores, drops).
fn run(encap: Encap, o: DataplaneOptions, test: &str, secs: u32) -> Option<(f64, f64, u64)> {
    common::DP_OPTS.set(Some(o));
    let lab = common::Lab::start(encap);
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.b.name(),
            "iperf3",
            "-s",
            "-1",
            "-B",
            "10.0.0.2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let secs_s = secs.to_string();
    let mut args = vec!["-c", "10.0.0.2", "-B", "10.0.0.1", "-t", &secs_s, "-J"];
    if test == "udp64" {
        args.extend(["-u", "-l", "64", "-b", "0"]);
    }
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let out = lab.a.exec("iperf3", &args).expect("iperf3 -c");
    let cpu = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
    let _ = server.wait();
    let json = String::from_utf8_lossy(&out.stdout);
    let [ca, _, cb, _] = lab.stop();
    let v = if test == "udp64" {
        let p = json_num(&json, "sum", "packets")?;
        let l = json_num(&json, "sum", "lost_packets")?;
        let s = json_num(&json, "sum", "seconds")?;
        (p - l) / s
    } else {
        json_num(&json, "sum_received", "bits_per_second")?
    };
    Some((v, cpu, ca.total_drops() + cb.total_drops()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    if Command::new("iperf3").arg("-v").output().is_err() {
        eprintln!("SKIP: iperf3 not installed");
        return;
    }
    // `cargo bench` passes --bench; under `cargo test --all-targets` this is a smoke run:
    // one short repetition of one test on the first variant.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (d_reps, d_secs, d_tests) = if bench_mode {
        ("3", "5", "tcp1,udp64")
    } else {
        ("1", "1", "tcp1")
    };
    let reps: usize = env_or("TUNNEL_IPERF_REPS", d_reps).parse().unwrap_or(3);
    let secs: u32 = env_or("TUNNEL_IPERF_SECS", d_secs).parse().unwrap_or(5);
    let tests = env_or("TUNNEL_IPERF_TESTS", d_tests);
    let tests: Vec<&str> = tests.split(',').map(str::trim).collect();
    let wanted = env_or("TUNNEL_IPERF_VARIANTS", "");
    let variants: Vec<_> = VARIANTS
        .iter()
        .filter(|(n, _)| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == *n))
        .take(if bench_mode || !wanted.is_empty() {
            usize::MAX
        } else {
            1
        })
        .collect();
    let encap = if env_or("TUNNEL_IPERF_ENCAP", "udp") == "esp" {
        Encap::Esp
    } else {
        Encap::Udp
    };
    // results[test][variant] = (values, cpu)
    let mut results = vec![vec![(Vec::new(), Vec::new(), 0u64); variants.len()]; tests.len()];
    for rep in 1..=reps {
        for (ti, test) in tests.iter().enumerate() {
            for (vi, (name, o)) in variants.iter().enumerate() {
                match run(encap, *o, test, secs) {
                    Some((v, cpu, drops)) => {
                        eprintln!(
                            "#{rep} {test} {name}: {v:.0} (cpu {cpu:.2} cores, drops {drops})"
                        );
                        let r = &mut results[ti][vi];
                        r.0.push(v);
                        r.1.push(cpu);
                        r.2 += drops;
                    }
                    None => eprintln!("#{rep} {test} {name}: iperf3 gave no result"),
                }
            }
        }
    }
    println!("\n{encap:?} encapsulation, median of {reps} x {secs}s, dataplane CPU = both sides");
    println!(
        "{:6} {:12} {:>10} {:>8} {:>9} {:>10}",
        "test", "variant", "median", "x base", "cpu", "cpu/unit"
    );
    for (ti, test) in tests.iter().enumerate() {
        let (unit, scale) = if *test == "udp64" {
            ("kpps", 1e3)
        } else {
            ("Gbit/s", 1e9)
        };
        let mut base = f64::NAN;
        for (vi, (name, _)) in variants.iter().enumerate() {
            let r = &mut results[ti][vi];
            let m = median(&mut r.0) / scale;
            let cpu = median(&mut r.1);
            if vi == 0 {
                base = m;
            }
            println!(
                "{test:6} {name:12} {m:>6.2} {unit:6} {:>6.2}x {cpu:>6.2} c {:>8.3}  (drops {})",
                m / base,
                cpu / m,
                r.2
            );
        }
    }
}
