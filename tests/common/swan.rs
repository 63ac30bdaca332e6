//! strongSwan (charon-systemd with kernel-libipsec) as the peer in gw-b.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::net::{wait_for, write_secret, HostSysctl, Netns, Proc, TUNNEL, WAN_A, WAN_B};

pub const CHARON: &str = "/usr/sbin/charon-systemd";
pub const SWANCTL: &str = "/usr/sbin/swanctl";

/// strongSwan (charon with kernel-libipsec) in gw-b; stopped on drop.
pub struct Swan {
    dir: PathBuf,
    _charon: Proc,
}

impl Swan {
    /// Starts charon in `ns` (files under `dir/swan`) with IKE proposal
    /// aes256-sha256-modp2048s256.
    pub fn start(ns: &Netns, dir: &Path, psk: &str) -> Self {
        Self::start_with(ns, dir, psk, "aes256-sha256-modp2048s256", None)
    }

    /// [`Swan::start`] with other IKE `proposals`; with `rcvbuf`, the host's
    /// `net.core.rmem_default` is raised to it while charon opens its sockets (charon sets
    /// no SO_RCVBUF of its own), and the size its UDP 4500 socket got is printed.
    pub fn start_with(
        ns: &Netns,
        dir: &Path,
        psk: &str,
        proposals: &str,
        rcvbuf: Option<u64>,
    ) -> Self {
        let d = dir.join("swan");
        std::fs::create_dir_all(&d).expect("swan dir");
        let dd = d.display();
        // kernel-libipsec must load before kernel-netlink (no kernel ESP needed).
        let strongswan = format!(
            r#"charon {{
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  plugins {{
    vici {{ socket = unix://{dd}/charon.vici }}
  }}
  filelog {{
    t {{ path = {dd}/charon.log
        default = 1
        ike = 2 }}
  }}
}}
"#
        );
        let swanctl = format!(
            r#"connections {{
  {TUNNEL} {{
    version = 2
    local_addrs = {WAN_B}
    remote_addrs = {WAN_A}
    proposals = {proposals}
    encap = yes
    local {{
      auth = psk
      id = {WAN_B}
    }}
    remote {{
      auth = psk
      id = {WAN_A}
    }}
    children {{
      {TUNNEL} {{
        local_ts = 10.2.0.0/24
        remote_ts = 10.1.0.0/24
        esp_proposals = aes256gcm16
        start_action = none
        close_action = none
      }}
    }}
  }}
}}
secrets {{
  ike-e2e {{
    id-a = {WAN_A}
    id-b = {WAN_B}
    secret = "{psk}"
  }}
}}
"#
        );
        std::fs::write(d.join("strongswan.conf"), strongswan).expect("strongswan.conf");
        write_secret(&d.join("swanctl.conf"), &swanctl);
        let log = std::fs::File::create(d.join("charon.stdout")).expect("charon log");
        let log2 = log.try_clone().expect("clone log fd");
        let rmem_default = rcvbuf.map(|min| HostSysctl::raise("net.core.rmem_default", min));
        let charon = Command::new("ip")
            .args(["netns", "exec", &ns.name, CHARON])
            .env("STRONGSWAN_CONF", d.join("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("start charon");
        let swan = Swan {
            dir: d.clone(),
            _charon: Proc(Some(charon)),
        };
        let started = wait_for(Duration::from_secs(10), || {
            d.join("charon.vici").exists().then_some(())
        });
        assert!(started.is_some(), "charon did not start: {}", swan.log());
        if let Some(rmem_default) = rmem_default {
            let rb = wait_for(Duration::from_secs(5), || ns.udp_rcvbuf(4500));
            drop(rmem_default);
            eprintln!("charon's UDP 4500 socket: receive buffer {rb:?} bytes");
        }
        let file = d.join("swanctl.conf").to_string_lossy().into_owned();
        let out = swan
            .swanctl(&["--load-all", "--file", &file])
            .unwrap_or_else(|e| panic!("swanctl --load-all: {e}"));
        assert!(
            out.contains(&format!("loaded connection '{TUNNEL}'")),
            "swanctl --load-all: {out}"
        );
        swan
    }

    pub fn swanctl(&self, args: &[&str]) -> Result<String, String> {
        let uri = format!("unix://{}", self.dir.join("charon.vici").display());
        let out = Command::new(SWANCTL)
            .args(args)
            .args(["--uri", &uri])
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// The last 20 lines of charon's log.
    pub fn log(&self) -> String {
        self.log_tail(20)
    }

    /// The last `n` lines of charon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let t = std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// (spi_in, spi_out) of every installed CHILD_SA (`swanctl --list-sas`).
    pub fn child_spis(&self) -> Vec<(String, String)> {
        let Ok(text) = self.swanctl(&["--list-sas"]) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut cur_in = None;
        for line in text.lines() {
            let l = line.trim();
            let spi = || {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .trim_end_matches(',')
                    .to_lowercase()
            };
            if l.starts_with("in ") {
                cur_in = Some(spi());
            } else if l.starts_with("out ") {
                if let Some(i) = cur_in.take() {
                    out.push((i, spi()));
                }
            }
        }
        out
    }
}
