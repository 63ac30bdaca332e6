//! Throughput through two Causeway dataplanes (namespaces, veth, ESP-in-UDP or raw ESP,
//! AES-256-GCM) measured with iperf3 (TCP, 5 s). Root and iperf3 needed; skips otherwise.
//! Run: `cargo bench -p causeway-dataplane --bench tunnel_iperf`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};

use dataplane::netns::skip_reason;
use dataplane::sa::Encap;

fn main() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    if Command::new("iperf3").arg("-v").output().is_err() {
        eprintln!("SKIP: iperf3 not installed");
        return;
    }
    for encap in [Encap::Udp, Encap::Esp] {
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
        let out = lab
            .a
            .exec(
                "iperf3",
                &["-c", "10.0.0.2", "-B", "10.0.0.1", "-t", "5", "-J"],
            )
            .expect("iperf3 -c");
        let _ = server.wait();
        let json = String::from_utf8_lossy(&out.stdout);
        // "sum_received": { ... "bits_per_second": N ... }
        let bps = json
            .split("\"sum_received\"")
            .nth(1)
            .and_then(|s| s.split("\"bits_per_second\":").nth(1))
            .and_then(|s| s.split([',', '\n', '}']).next())
            .and_then(|s| s.trim().parse::<f64>().ok());
        let [ca, _, cb, _] = lab.stop();
        match bps {
            Some(b) => println!(
                "{encap:?}: {:.2} Gbit/s TCP (A out {} pkts, B in {} pkts, drops A {} B {})",
                b / 1e9,
                ca.packets_out,
                cb.packets_in,
                ca.total_drops(),
                cb.total_drops()
            ),
            None => println!("{encap:?}: iperf3 gave no result: {json}"),
        }
    }
}
