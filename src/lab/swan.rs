//! Site B played by strongSwan (charon with kernel-libipsec: userspace ESP, always in UDP)
//! and BIRD 2 for BGP, both configured like an Azure VPN Gateway.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{
    cmd, stdout_and_stderr, terminate, wait_for, Netns, Peer, ANNOUNCE_B, BGP_A, BGP_B, TUNNEL,
    WAN_A, WAN_B,
};

const CHARON: &str = "/usr/sbin/charon-systemd";
const SWANCTL: &str = "/usr/sbin/swanctl";

/// Whether strongSwan and BIRD are installed.
pub fn available() -> Result<(), String> {
    for bin in [CHARON, SWANCTL] {
        if !Path::new(bin).exists() {
            return Err(format!("{bin} is missing"));
        }
    }
    for tool in ["bird", "birdc"] {
        cmd("sh", &["-c", &format!("command -v {tool}")])
            .map_err(|_| format!("`{tool}` is missing"))?;
    }
    Ok(())
}

fn sw_dir(dir: &Path) -> PathBuf {
    dir.join("site-b-strongswan")
}

/// Write strongswan.conf, swanctl.conf and bird.conf for site B.
pub fn write_configs(dir: &Path) -> Result<(), String> {
    let d = sw_dir(dir);
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let psk = std::fs::read_to_string(dir.join("lab.psk")).map_err(|e| e.to_string())?;
    let dd = d.display();
    // kernel-libipsec must load before kernel-netlink (this kernel has no ESP).
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
  azure {{
    version = 2
    local_addrs = {WAN_B}
    remote_addrs = {WAN_A}
    proposals = aes256-sha1-modp1024,aes256-sha256-modp1024,aes128-sha1-modp1024,aes256-sha256-modp2048
    encap = yes
    dpd_delay = 45s
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
        local_ts = {local_ts}
        remote_ts = 10.1.0.0/16
        esp_proposals = aes256gcm16
        start_action = none
        close_action = none
        dpd_action = clear
      }}
    }}
  }}
}}
secrets {{
  ike-lab {{
    id-a = {WAN_A}
    id-b = {WAN_B}
    secret = "{psk}"
  }}
}}
"#,
        psk = psk.trim(),
        local_ts = if super::forced() {
            "0.0.0.0/0"
        } else {
            "10.2.0.0/16"
        }
    );
    let routes: String = ANNOUNCE_B
        .iter()
        .map(|p| format!("  route {p} unreachable;\n"))
        .collect();
    let bird = format!(
        r#"router id {BGP_B};
log "{dd}/bird.log" all;
protocol device {{ scan time 2; }}
# What this "Azure" side announces.
protocol static announce {{
  ipv4;
{routes}}}
# The BGP peer is reached through strongSwan's ipsec0 (recursive next hops resolve via it).
protocol static peer {{
  ipv4;
  route {BGP_A}/32 via "ipsec0";
}}
protocol bgp causeway {{
  local {BGP_B} as 65515;
  neighbor {BGP_A} as 65010;
  multihop 8;
  hold time 180;
  keepalive time 60;
  connect delay time 1;
  connect retry time 2;
  ipv4 {{
    import all;
    export where proto = "announce";
  }};
}}
"#
    );
    for (name, text) in [
        ("strongswan.conf", strongswan),
        ("swanctl.conf", swanctl),
        ("bird.conf", bird),
    ] {
        std::fs::write(d.join(name), text).map_err(|e| format!("{name}: {e}"))?;
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(
        d.join("swanctl.conf"),
        std::fs::Permissions::from_mode(0o600),
    );
    Ok(())
}

/// charon + BIRD running in gw-b; both stopped on drop.
pub struct SwanBird {
    dir: PathBuf,
    charon: Option<Child>,
    bird: Option<Child>,
}

fn spawn(ns: &Netns, args: &[&str], log: &Path, conf: &Path) -> Result<Child, String> {
    let f = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    let mut v = vec!["netns", "exec", ns.name.as_str()];
    v.extend_from_slice(args);
    Command::new("ip")
        .args(&v)
        .env("STRONGSWAN_CONF", conf)
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .spawn()
        .map_err(|e| format!("{}: {e}", args.first().copied().unwrap_or("")))
}

/// Stops a process of ours (SIGTERM, 5 s, then SIGKILL); its exit status if it exited.
fn stop_child(c: &mut Option<Child>) -> Option<std::process::ExitStatus> {
    terminate(c.take()?, Duration::from_secs(5))
}

impl SwanBird {
    /// Start charon, load the connection, start BIRD.
    pub fn start(ns: &Netns, dir: &Path) -> Result<SwanBird, String> {
        let d = sw_dir(dir);
        let conf = d.join("strongswan.conf");
        // The BGP address of the "Azure" side.
        ns.ip(&["addr", "add", &format!("{BGP_B}/32"), "dev", "lo"])?;
        if super::forced() {
            // libipsec ignores bypass policies: with local_ts 0.0.0.0/0 keep the site's
            // own traffic out of table 220 (INTEROP.md).
            ns.ip(&[
                "rule",
                "add",
                "to",
                "10.2.0.0/16",
                "lookup",
                "main",
                "pref",
                "100",
            ])?;
        }
        let mut me = SwanBird {
            dir: d.clone(),
            charon: Some(spawn(ns, &[CHARON], &d.join("charon.stdout"), &conf)?),
            bird: None,
        };
        let vici = d.join("charon.vici");
        let charon_up = || vici.exists().then_some(());
        if wait_for(Duration::from_secs(10), charon_up).is_none() {
            return Err(format!("charon did not start: {}", me.log_tail()));
        }
        let file = d.join("swanctl.conf").to_string_lossy().into_owned();
        let out = me.swanctl(&["--load-all", "--file", &file])?;
        if !out.contains("loaded connection 'azure'") {
            return Err(format!("swanctl --load-all: {out}"));
        }
        // ipsec0 (kernel-libipsec's TUN) must exist for BIRD's static route to it.
        let ipsec0_up = || ns.ip(&["link", "show", "ipsec0"]).ok();
        if wait_for(Duration::from_secs(5), ipsec0_up).is_none() {
            return Err("charon did not create ipsec0 (kernel-libipsec)".into());
        }
        let bird_conf = d.join("bird.conf").to_string_lossy().into_owned();
        let ctl = d.join("bird.ctl").to_string_lossy().into_owned();
        me.bird = Some(spawn(
            ns,
            &["bird", "-f", "-c", &bird_conf, "-s", &ctl],
            &d.join("bird.stdout"),
            &conf,
        )?);
        let bird_up = || me.birdc(&["show", "status"]).ok();
        if wait_for(Duration::from_secs(10), bird_up).is_none() {
            return Err(format!("BIRD did not start: {}", me.log_tail()));
        }
        Ok(me)
    }

    fn swanctl(&self, args: &[&str]) -> Result<String, String> {
        let uri = format!("unix://{}", self.dir.join("charon.vici").display());
        let mut v: Vec<&str> = args.to_vec();
        v.extend_from_slice(&["--uri", &uri]);
        let out = Command::new(SWANCTL)
            .args(&v)
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .output()
            .map_err(|e| e.to_string())?;
        let text = stdout_and_stderr(&out);
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    fn birdc(&self, args: &[&str]) -> Result<String, String> {
        let ctl = self.dir.join("bird.ctl").to_string_lossy().into_owned();
        let mut v = vec!["-s", ctl.as_str()];
        v.extend_from_slice(args);
        cmd("birdc", &v)
    }

    /// (spi_in, spi_out, packets_in, packets_out) of every installed CHILD_SA.
    fn children(&self) -> Vec<(String, String, u64, u64)> {
        let Ok(text) = self.swanctl(&["--list-sas"]) else {
            return vec![];
        };
        let mut out = vec![];
        let mut cur_in: Option<(String, u64)> = None;
        for line in text.lines() {
            let l = line.trim();
            let dir = if l.starts_with("in ") {
                "in"
            } else if l.starts_with("out ") {
                "out"
            } else {
                continue;
            };
            let spi = l
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .trim_end_matches(',')
                .to_lowercase();
            let packets = l
                .split(',')
                .find(|p| p.contains("packets"))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if dir == "in" {
                cur_in = Some((spi, packets));
            } else if let Some((spi_in, p_in)) = cur_in.take() {
                out.push((spi_in, spi, p_in, packets));
            }
        }
        out
    }
}

impl Peer for SwanBird {
    fn describe(&self) -> String {
        let v = cmd(SWANCTL, &["--version"]).unwrap_or_default();
        format!(
            "strongSwan charon (kernel-libipsec) {} + BIRD, AS 65515, Azure's proposals",
            v.split_whitespace().last().unwrap_or("")
        )
    }
    fn child_spis(&self) -> Vec<(String, String)> {
        self.children()
            .into_iter()
            .map(|(i, o, _, _)| (i, o))
            .collect()
    }
    fn packets(&self) -> Option<(u64, u64)> {
        let c = self.children();
        if c.is_empty() {
            return None;
        }
        Some(c.iter().fold((0, 0), |(a, b), x| (a + x.2, b + x.3)))
    }
    fn drops(&self) -> Option<String> {
        None
    }
    fn bgp_established(&self) -> Option<String> {
        let text = self.birdc(&["show", "protocols", "all", "causeway"]).ok()?;
        if !text.contains("Established") {
            return None;
        }
        let routes = text
            .lines()
            .find(|l| l.trim_start().starts_with("Routes:"))
            .map(|l| l.trim().to_string())
            .unwrap_or_default();
        if !routes.contains("imported") || routes.contains(" 0 imported") {
            return None;
        }
        Some(format!(
            "gw-b BIRD (AS 65515): protocol causeway Established; {routes}"
        ))
    }
    fn learned(&self, prefix: &str) -> bool {
        self.birdc(&["show", "route", prefix])
            .map(|t| {
                t.lines()
                    .any(|l| l.starts_with(prefix) && l.contains("causeway"))
            })
            .unwrap_or(false)
    }
    fn stop(&mut self) -> Result<Vec<String>, String> {
        let b = stop_child(&mut self.bird);
        let c = stop_child(&mut self.charon);
        Ok(vec![format!(
            "gw-b: BIRD {}, charon {}",
            b.map_or("killed".to_string(), |s| s.to_string()),
            c.map_or("killed".to_string(), |s| s.to_string())
        )])
    }
    fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in ["charon.log", "bird.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let lines: Vec<&str> = t.lines().collect();
                s.push_str(&format!(
                    "[{f}] {}; ",
                    lines[lines.len().saturating_sub(3)..].join(" | ")
                ));
            }
        }
        s
    }
}

impl Drop for SwanBird {
    fn drop(&mut self) {
        let _ = stop_child(&mut self.bird);
        let _ = stop_child(&mut self.charon);
    }
}
