//! From text to a validated [`Config`]: TOML syntax, per-table decoding (all unknown keys
//! and type errors of every table are reported), value checks, defaults and profiles,
//! cross-references.

use core::ops::Range;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use crate::diag::{Errors, Sink};
use crate::psk::{check_psk_file, PskSource};
use crate::raw::*;
use crate::types::*;
use crate::value::*;
use crate::{azure, defaults};

/// Longest accepted duration (one year), so that `Instant + duration` never overflows.
const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// Routing protocol ids used by other well-known daemons (`/etc/iproute2/rt_protos`).
const KNOWN_PROTOS: &[(u8, &str)] = &[
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp (FRR)"),
    (187, "isis (FRR)"),
    (188, "ospf (FRR)"),
    (189, "rip (FRR)"),
    (192, "eigrp (FRR)"),
];

pub(crate) fn parse(text: &str, file: &str) -> Result<Config, Errors> {
    let base_dir = Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut cx = Cx {
        sink: Sink::new(file, text),
        text,
        base_dir,
    };
    let config = cx.document();
    if cx.sink.has_errors() {
        return Err(Errors::new(cx.sink.diagnostics));
    }
    match config {
        Some(mut c) => {
            let mut w = cx.sink.diagnostics;
            crate::diag::sort(&mut w);
            c.warnings = w;
            Ok(c)
        }
        None => {
            // Not reachable: every path that yields no config reports an error. Stay safe.
            cx.sink.error_nopos("invalid configuration");
            Err(Errors::new(cx.sink.diagnostics))
        }
    }
}

struct Cx<'a> {
    sink: Sink<'a>,
    text: &'a str,
    base_dir: PathBuf,
}

/// A decoded neighbor, and what cross-checks need even when it is invalid.
struct NeighborOut {
    neighbor: Option<Neighbor>,
    address: Option<(IpAddr, Range<usize>)>,
    remote_asn: Option<u32>,
}

/// What cross-checks need to know about a tunnel.
struct TunnelRef {
    name: String,
    name_span: Range<usize>,
    azure: bool,
    /// `local_ts`/`remote_ts` as configured and valid (`None` if invalid: skip checks).
    local_ts: Option<Vec<IpNet>>,
    remote_ts: Option<Vec<IpNet>>,
}

fn first_word(msg: &str) -> String {
    msg.replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array")
        .replace("expected a string or list", "expected a string or an array")
}

impl<'a> Cx<'a> {
    fn document(&mut self) -> Option<Config> {
        let (root, errors) = DeTable::parse_recoverable(self.text);
        if !errors.is_empty() {
            let mut lines = BTreeSet::new();
            for e in errors {
                let span = e.span().unwrap_or(0..0);
                let line = crate::diag::line_col(self.text, span.start).0;
                // After a syntax error the parser's recovery can cascade: one error per line.
                if lines.insert(line) {
                    self.sink.error(span, e.message().to_string());
                }
            }
            return None;
        }
        let mut daemon = None;
        let mut tunnels_raw = Vec::new();
        let mut bgp_raw = None;
        for (k, v) in root.into_inner() {
            let kspan = k.span();
            match k.get_ref().as_ref() {
                "daemon" => daemon = self.expect_table(v, "daemon", "[daemon]"),
                "tunnel" => tunnels_raw = self.expect_tables(v, "tunnel", "[[tunnel]]"),
                "bgp" => bgp_raw = self.expect_table(v, "bgp", "[bgp]"),
                other => {
                    let hint = suggest(other, &["daemon", "tunnel", "bgp"])
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_else(|| " (expected daemon, tunnel or bgp)".to_string());
                    self.sink
                        .error(kspan, format!("unknown section `{other}`{hint}"));
                }
            }
        }

        let daemon = match daemon {
            Some((span, t)) => self.daemon(span, t),
            None => Some(defaults::daemon()),
        };

        let mut tunnels = Vec::new();
        let mut refs: Vec<TunnelRef> = Vec::new();
        for (span, t) in tunnels_raw {
            if let Some((tunnel, r)) = self.tunnel(span, t) {
                tunnels.push(tunnel);
                refs.push(r);
            }
        }
        self.tunnel_uniqueness(&tunnels, &refs);
        if tunnels.is_empty() && refs.is_empty() && !self.sink.has_errors() {
            self.sink
                .warning(0..0, "no [[tunnel]] defined: nothing to do");
        }

        let bgp = match bgp_raw {
            Some((span, t)) => self.bgp(span, t, &refs),
            None => None,
        };
        Some(Config {
            daemon: daemon?,
            tunnels,
            bgp,
            warnings: Vec::new(),
        })
    }

    /// A value that must be a table (`[name]` or an inline table).
    fn expect_table(
        &mut self,
        v: Spanned<DeValue<'a>>,
        key: &str,
        how: &str,
    ) -> Option<(Range<usize>, DeTable<'a>)> {
        let span = v.span();
        match v.into_inner() {
            DeValue::Table(t) => Some((span, t)),
            other => {
                self.sink.error(
                    span,
                    format!(
                        "`{key}` must be a table ({how}), found {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    /// A value that must be an array of tables (`[[name]]`).
    fn expect_tables(
        &mut self,
        v: Spanned<DeValue<'a>>,
        key: &str,
        how: &str,
    ) -> Vec<(Range<usize>, DeTable<'a>)> {
        let span = v.span();
        match v.into_inner() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for e in a {
                    let espan = e.span();
                    match e.into_inner() {
                        DeValue::Table(t) => out.push((espan, t)),
                        other => self.sink.error(
                            espan,
                            format!(
                                "each `{key}` must be a table ({how}), found {}",
                                other.type_str()
                            ),
                        ),
                    }
                }
                out
            }
            DeValue::Table(_) => {
                self.sink.error(
                    span,
                    format!("`{key}` must be an array of tables: write {how}, not [{key}]"),
                );
                Vec::new()
            }
            other => {
                self.sink.error(
                    span,
                    format!(
                        "`{key}` must be an array of tables ({how}), found {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Decodes one table into `T`, reporting every unknown key and every ill-typed value.
    /// Returns the decoded value (ill-typed keys removed) and the set of removed keys.
    fn decode<T: DeserializeOwned>(
        &mut self,
        span: Range<usize>,
        mut table: DeTable<'a>,
        section: &str,
        keys: &[&str],
    ) -> Option<(T, BTreeSet<String>)> {
        let mut bad = BTreeSet::new();
        let mut unknown = Vec::new();
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            if !keys.contains(&name) {
                let suggestion = suggest(name, keys);
                let hint = suggestion
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                // A misspelt required key is not reported as missing too.
                if let Some(s) = suggestion {
                    if !table.contains_key(s) {
                        bad.insert(s.to_string());
                    }
                }
                self.sink
                    .error(k.span(), format!("unknown key `{name}` in {section}{hint}"));
                unknown.push(name.to_string());
            }
        }
        for u in &unknown {
            table.remove(u.as_str());
        }
        self.lists_from_strings(&mut table);

        for _ in 0..=keys.len() {
            let de = toml::de::Deserializer::from(Spanned::new(span.clone(), table.clone()));
            match T::deserialize(de) {
                Ok(v) => return Some((v, bad)),
                Err(e) => {
                    let espan = e.span();
                    let hit = |r: Range<usize>, pos: usize| {
                        pos >= r.start && pos < r.end.max(r.start + 1)
                    };
                    let key = espan.as_ref().and_then(|es| {
                        table
                            .iter()
                            .find(|(k, v)| hit(k.span(), es.start) || hit(v.span(), es.start))
                            .map(|(k, _)| k.get_ref().to_string())
                    });
                    let msg = first_word(e.message());
                    match key {
                        Some(k) => {
                            self.sink
                                .error(espan.unwrap_or(span.clone()), format!("`{k}`: {msg}"));
                            table.remove(k.as_str());
                            bad.insert(k);
                        }
                        None => {
                            self.sink.error(espan.unwrap_or(span.clone()), msg);
                            return None;
                        }
                    }
                }
            }
        }
        None
    }

    /// `key = "a, b"` → `key = ["a", "b"]` for keys that take lists, with exact spans
    /// for each element when the string has no escapes.
    fn lists_from_strings(&self, table: &mut DeTable<'a>) {
        for (k, v) in table.iter_mut() {
            if !LIST_KEYS.contains(&k.get_ref().as_ref()) {
                continue;
            }
            let span = v.span();
            let DeValue::String(s) = v.get_ref() else {
                continue;
            };
            let s = s.to_string();
            let raw = self.text.get(span.clone()).unwrap_or("");
            let exact = raw.len() >= 2
                && (raw.starts_with('"') || raw.starts_with('\''))
                && !raw.starts_with("\"\"\"")
                && !raw.starts_with("'''")
                && raw.get(1..raw.len() - 1) == Some(s.as_str());
            let mut arr = DeArray::new();
            let mut off = 0;
            for piece in s.split(',') {
                let lead = piece.len() - piece.trim_start().len();
                let trimmed = piece.trim();
                let pspan = if exact {
                    let start = span.start + 1 + off + lead;
                    start..start + trimmed.len()
                } else {
                    span.clone()
                };
                arr.push(Spanned::new(
                    pspan,
                    DeValue::String(trimmed.to_string().into()),
                ));
                off += piece.len() + 1;
            }
            *v = Spanned::new(span, DeValue::Array(arr));
        }
    }

    fn missing(&mut self, span: &Range<usize>, bad: &BTreeSet<String>, key: &str, section: &str) {
        if !bad.contains(key) {
            self.sink
                .error(span.clone(), format!("missing key `{key}` in {section}"));
        }
    }

    // ----- value helpers: report at the value's span, return None on error -----

    fn parse_str<T>(
        &mut self,
        f: &S<String>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let f = f.as_ref()?;
        match parse(f.get_ref()) {
            Ok(v) => Some(v),
            Err(m) => {
                self.sink.error(f.span(), m);
                None
            }
        }
    }

    /// A list; `Err(())` if any element is invalid (each reported).
    fn parse_list<T>(
        &mut self,
        f: &S<List>,
        key: &str,
        allow_empty: bool,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, ()> {
        let Some(f) = f else { return Ok(None) };
        if f.get_ref().is_empty() && !allow_empty {
            self.sink
                .error(f.span(), format!("`{key}` must not be empty"));
            return Err(());
        }
        let mut out = Vec::new();
        let mut ok = true;
        for e in f.get_ref() {
            match parse(e.get_ref()) {
                Ok(v) => out.push(v),
                Err(m) => {
                    self.sink.error(e.span(), m);
                    ok = false;
                }
            }
        }
        if ok {
            Ok(Some(out))
        } else {
            Err(())
        }
    }

    fn int(&mut self, f: &S<i64>, key: &str, lo: i64, hi: i64) -> Option<i64> {
        let f = f.as_ref()?;
        let v = *f.get_ref();
        if v < lo || v > hi {
            self.sink.error(
                f.span(),
                format!("`{key}` must be between {lo} and {hi}, found {v}"),
            );
            return None;
        }
        Some(v)
    }

    fn duration(&mut self, f: &S<IntOrStr>, key: &str, allow_zero: bool) -> Option<Duration> {
        let f = f.as_ref()?;
        let d = match f.get_ref() {
            IntOrStr::Int(n) if *n >= 0 => Duration::from_secs(n.unsigned_abs()),
            IntOrStr::Int(n) => {
                self.sink
                    .error(f.span(), format!("`{key}` must not be negative, found {n}"));
                return None;
            }
            IntOrStr::Str(s) => match parse_duration(s) {
                Ok(d) => d,
                Err(m) => {
                    self.sink.error(f.span(), format!("`{key}`: {m}"));
                    return None;
                }
            },
        };
        if d > MAX_DURATION {
            self.sink
                .error(f.span(), format!("`{key}` must be at most 365d"));
            return None;
        }
        if d.is_zero() && !allow_zero {
            self.sink
                .error(f.span(), format!("`{key}` must be greater than zero"));
            return None;
        }
        Some(d)
    }

    fn keyword<T: Copy>(&mut self, f: &S<String>, key: &str, choices: &[(&str, T)]) -> Option<T> {
        let f = f.as_ref()?;
        let v = f.get_ref().as_str();
        if let Some((_, t)) = choices.iter().find(|(k, _)| *k == v) {
            return Some(*t);
        }
        let names: Vec<&str> = choices.iter().map(|(k, _)| *k).collect();
        self.sink.error(
            f.span(),
            format!(
                "`{key}` must be one of {}; found `{}`",
                names.join(", "),
                v.escape_debug()
            ),
        );
        None
    }

    // ----- sections -----

    fn daemon(&mut self, span: Range<usize>, t: DeTable<'a>) -> Option<Daemon> {
        let (raw, _bad) = self.decode::<RawDaemon>(span, t, "[daemon]", DAEMON_KEYS)?;
        let mut d = defaults::daemon();
        if let Some(p) = self.parse_str(&raw.control_socket, |s| {
            let p = PathBuf::from(s);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(format!(
                    "`control_socket` must be an absolute path, found `{}`",
                    s.escape_debug()
                ))
            }
        }) {
            d.control_socket = p;
        }
        d.metrics = self.parse_str(&raw.metrics, |s| {
            SocketAddr::from_str(s.trim()).map_err(|_| {
                format!(
                    "invalid `metrics` address `{}`: expected IP:PORT (e.g. \"127.0.0.1:9474\")",
                    s.escape_debug()
                )
            })
        });
        if let Some(l) = self.keyword(
            &raw.log_level,
            "log_level",
            &[
                ("error", LogLevel::Error),
                ("warn", LogLevel::Warn),
                ("info", LogLevel::Info),
                ("debug", LogLevel::Debug),
                ("trace", LogLevel::Trace),
            ],
        ) {
            d.log_level = l;
        }
        Some(d)
    }

    fn tunnel(&mut self, span: Range<usize>, t: DeTable<'a>) -> Option<(Tunnel, TunnelRef)> {
        const SEC: &str = "[[tunnel]]";
        let (raw, bad) = self.decode::<RawTunnel>(span.clone(), t, SEC, TUNNEL_KEYS)?;

        // name (kept for cross-references even when invalid)
        let (name, name_span) = match &raw.name {
            Some(n) => {
                if let Err(m) = check_tunnel_name(n.get_ref()) {
                    self.sink.error(n.span(), m);
                }
                (n.get_ref().clone(), n.span())
            }
            None => {
                self.missing(&span, &bad, "name", SEC);
                (String::new(), span.clone())
            }
        };
        let profile = self
            .keyword(
                &raw.profile,
                "profile",
                &[("generic", Profile::Generic), ("azure", Profile::Azure)],
            )
            .unwrap_or(Profile::Generic);
        let azure = profile == Profile::Azure;

        let interface = match &raw.interface {
            Some(_) => self.parse_str(&raw.interface, |s| {
                check_interface_name(s).map(|()| s.to_string())
            }),
            None => Some(format!("cw-{name}")),
        }
        .unwrap_or_default();

        let local_addrs = self
            .parse_list(&raw.local_addrs, "local_addrs", false, parse_ip)
            .ok()
            .flatten();
        if raw.local_addrs.is_none() {
            self.missing(&span, &bad, "local_addrs", SEC);
        }
        let remote_addrs = self
            .parse_list(&raw.remote_addrs, "remote_addrs", false, |s| {
                let a = parse_ip(s)?;
                if a.is_unspecified() || a.is_multicast() || a == IpAddr::V4(Ipv4Addr::BROADCAST) {
                    return Err(format!("`remote_addrs`: `{a}` is not a unicast address"));
                }
                Ok(a)
            })
            .ok()
            .flatten();
        if raw.remote_addrs.is_none() {
            self.missing(&span, &bad, "remote_addrs", SEC);
        }
        if let (Some(l), Some(r), Some(rs)) = (&local_addrs, &remote_addrs, &raw.remote_addrs) {
            if !l
                .iter()
                .any(|a| r.iter().any(|b| a.is_ipv4() == b.is_ipv4()))
            {
                self.sink.error(
                    rs.span(),
                    "`local_addrs` and `remote_addrs` have no address family in common",
                );
            }
        }

        let local_port = self
            .int(&raw.local_port, "local_port", 1, 65535)
            .map_or(500, |v| v as u16);
        let remote_port = self
            .int(&raw.remote_port, "remote_port", 1, 65535)
            .map_or(500, |v| v as u16);

        let psk = self.psk(&span, &bad, &raw);

        let local_id = match &raw.local_id {
            Some(_) => self.parse_str(&raw.local_id, Identity::from_str),
            None => match local_addrs.as_ref().and_then(|a| a.first()) {
                Some(a) if a.is_unspecified() => {
                    if let Some(r) = &raw.local_addrs {
                        self.sink.error(
                            r.span(),
                            "set `local_id` when `local_addrs` is unspecified (it defaults to the first local address)",
                        );
                    }
                    None
                }
                Some(a) => Some(Identity::Addr(*a)),
                None => None,
            },
        };
        let remote_id = match &raw.remote_id {
            Some(_) => self.parse_str(&raw.remote_id, Identity::from_str),
            None => remote_addrs
                .as_ref()
                .and_then(|a| a.first())
                .map(|a| Identity::Addr(*a)),
        };

        let ike_proposals = self
            .parse_list(&raw.ike_proposals, "ike_proposals", false, |s| {
                ikev2::proposal::parse_ike_proposal(s).map_err(|e| e.to_string())
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| defaults::ike_proposals(profile));
        let esp_proposals = self
            .parse_list(&raw.esp_proposals, "esp_proposals", false, |s| {
                ikev2::proposal::parse_esp_proposal(s).map_err(|e| e.to_string())
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| defaults::esp_proposals(profile));
        if azure {
            if let Some(list) = &raw.esp_proposals {
                for (e, p) in list.get_ref().iter().zip(&esp_proposals) {
                    if !p.dh.is_empty() {
                        self.sink.warning(
                            e.span(),
                            format!(
                                "ESP proposal `{}` requires PFS: Azure VPN Gateway offers Child SAs without PFS by default, so Azure-initiated rekeys would fail",
                                e.get_ref().escape_debug()
                            ),
                        );
                    }
                }
            }
        }

        let local_ts = self.parse_list(&raw.local_ts, "local_ts", false, parse_prefix);
        let remote_ts = self.parse_list(&raw.remote_ts, "remote_ts", false, parse_prefix);

        let ike_lifetime = self
            .duration(&raw.ike_lifetime, "ike_lifetime", false)
            .unwrap_or_else(|| defaults::ike_lifetime(profile));
        let child_lifetime = self
            .duration(&raw.child_lifetime, "child_lifetime", false)
            .unwrap_or_else(|| defaults::child_lifetime(profile));
        let child_life_bytes = match &raw.child_life_bytes {
            Some(f) => match f.get_ref() {
                IntOrStr::Int(n) if *n > 0 => Some(n.unsigned_abs()),
                IntOrStr::Int(n) => {
                    self.sink.error(
                        f.span(),
                        format!("`child_life_bytes` must be greater than zero, found {n}"),
                    );
                    None
                }
                IntOrStr::Str(s) => match parse_size(s) {
                    Ok(0) => {
                        self.sink
                            .error(f.span(), "`child_life_bytes` must be greater than zero");
                        None
                    }
                    Ok(n) => Some(n),
                    Err(m) => {
                        self.sink
                            .error(f.span(), format!("`child_life_bytes`: {m}"));
                        None
                    }
                },
            },
            None => defaults::child_life_bytes(profile),
        };
        let rekey_fuzz = self
            .int(&raw.rekey_fuzz, "rekey_fuzz", 0, 100)
            .map_or(100, |v| v as u8);
        let ike_rekey_margin = self.margin(
            &raw.ike_rekey_margin,
            "ike_rekey_margin",
            "ike_lifetime",
            ike_lifetime,
            rekey_fuzz,
        );
        let child_rekey_margin = self.margin(
            &raw.child_rekey_margin,
            "child_rekey_margin",
            "child_lifetime",
            child_lifetime,
            rekey_fuzz,
        );

        let dpd_delay = self
            .duration(&raw.dpd_delay, "dpd_delay", true)
            .unwrap_or_else(|| defaults::dpd_delay(profile));
        let dpd_timeout = self
            .duration(&raw.dpd_timeout, "dpd_timeout", false)
            .or_else(|| defaults::dpd_timeout(profile));
        let retransmit_timeout = self
            .duration(&raw.retransmit_timeout, "retransmit_timeout", false)
            .unwrap_or(defaults::RETRANSMIT_TIMEOUT);
        let retransmit_tries = self
            .int(&raw.retransmit_tries, "retransmit_tries", 0, 10)
            .map_or(defaults::RETRANSMIT_TRIES, |v| v as u32);
        if let (Some(limit), Some(f)) = (dpd_timeout, &raw.dpd_timeout) {
            // The first retransmission must not come sooner than a round trip could.
            let factor: f64 = (0..=retransmit_tries as i32)
                .map(|n| crate::RETRANSMIT_BASE.powi(n))
                .sum();
            let first_ms = limit.as_secs_f64() * 1000.0 / factor;
            if first_ms < 100.0 {
                self.sink.error(
                    f.span(),
                    format!(
                        "`dpd_timeout` is too short for {retransmit_tries} retransmissions (the first would come after {first_ms:.0} ms; at least 100 ms): raise it or lower `retransmit_tries`"
                    ),
                );
            }
        }
        let dpd_action = self
            .keyword(
                &raw.dpd_action,
                "dpd_action",
                &[
                    ("clear", DpdAction::Clear),
                    ("restart", DpdAction::Restart),
                    ("trap", DpdAction::Trap),
                ],
            )
            .unwrap_or(DpdAction::Restart);
        let encap = self
            .keyword(
                &raw.encap,
                "encap",
                &[
                    ("auto", Encap::Auto),
                    ("udp", Encap::Udp),
                    ("esp", Encap::Esp),
                ],
            )
            .unwrap_or(Encap::Auto);
        let mtu = self
            .int(&raw.mtu, "mtu", 576, 9000)
            .map_or(defaults::MTU, |v| v as u16);
        let mss_clamp = match &raw.mss_clamp {
            Some(_) => self
                .int(&raw.mss_clamp, "mss_clamp", 536, i64::from(mtu) - 40)
                .map(|v| v as u16),
            None => defaults::mss_clamp(profile),
        };
        if raw.mss_clamp.is_none() {
            if let (Some(m), Some(f)) = (mss_clamp, &raw.mtu) {
                if i64::from(m) > i64::from(mtu) - 40 {
                    self.sink.error(
                        f.span(),
                        format!("`mtu` {mtu} is too small for the profile's mss_clamp {m} (needs at least {})", m + 40),
                    );
                }
            }
        }
        let start_action = self
            .keyword(
                &raw.start_action,
                "start_action",
                &[
                    ("start", StartAction::Start),
                    ("trap", StartAction::Trap),
                    ("none", StartAction::None),
                ],
            )
            .unwrap_or(StartAction::Start);

        let tref = TunnelRef {
            name: name.clone(),
            name_span,
            azure,
            local_ts: local_ts
                .clone()
                .ok()
                .map(|v| v.unwrap_or_else(defaults::traffic_selectors)),
            remote_ts: remote_ts
                .clone()
                .ok()
                .map(|v| v.unwrap_or_else(defaults::traffic_selectors)),
        };
        let tunnel = Tunnel {
            name,
            interface,
            local_addrs: local_addrs.unwrap_or_default(),
            remote_addrs: remote_addrs.unwrap_or_default(),
            local_port,
            remote_port,
            psk: psk.unwrap_or(PskSource::Env(String::new())),
            local_id: local_id.unwrap_or(Identity::KeyId(Vec::new())),
            remote_id: remote_id.unwrap_or(Identity::KeyId(Vec::new())),
            ike_proposals,
            esp_proposals,
            local_ts: local_ts
                .ok()
                .flatten()
                .unwrap_or_else(defaults::traffic_selectors),
            remote_ts: remote_ts
                .ok()
                .flatten()
                .unwrap_or_else(defaults::traffic_selectors),
            ike_lifetime,
            child_lifetime,
            child_life_bytes,
            ike_rekey_margin,
            child_rekey_margin,
            rekey_fuzz,
            dpd_delay,
            dpd_timeout,
            dpd_action,
            retransmit_timeout,
            retransmit_tries,
            encap,
            mtu,
            mss_clamp,
            start_action,
            profile,
        };
        Some((tunnel, tref))
    }

    /// A rekey margin: default 10% of the lifetime; with the fuzz it must stay below it.
    fn margin(
        &mut self,
        f: &S<IntOrStr>,
        key: &str,
        life_key: &str,
        life: Duration,
        fuzz: u8,
    ) -> Duration {
        let Some(m) = self.duration(f, key, true) else {
            return life / 10;
        };
        let total = m + m.mul_f64(f64::from(fuzz) / 100.0);
        if total >= life {
            if let Some(f) = f {
                self.sink.error(
                    f.span(),
                    format!(
                        "`{key}` {} (plus rekey_fuzz {fuzz}%) must be shorter than `{life_key}` {}",
                        format_duration(m),
                        format_duration(life)
                    ),
                );
            }
        }
        m
    }

    fn psk(
        &mut self,
        span: &Range<usize>,
        bad: &BTreeSet<String>,
        raw: &RawTunnel,
    ) -> Option<PskSource> {
        match (&raw.psk_file, &raw.psk_env) {
            (Some(_), Some(e)) => {
                self.sink
                    .error(e.span(), "set only one of `psk_file` and `psk_env`");
                None
            }
            (None, None) => {
                if !bad.contains("psk_file") && !bad.contains("psk_env") {
                    self.sink.error(
                        span.clone(),
                        "missing key `psk_file` or `psk_env` in [[tunnel]] (the pre-shared key is never written inline)",
                    );
                }
                None
            }
            (Some(f), None) => {
                let p = PathBuf::from(f.get_ref());
                let p = if p.is_relative() {
                    self.base_dir.join(p)
                } else {
                    p
                };
                if f.get_ref().is_empty() {
                    self.sink.error(f.span(), "`psk_file` must not be empty");
                    return None;
                }
                match check_psk_file(&p) {
                    Ok(()) => Some(PskSource::File(p)),
                    Err(e) => {
                        self.sink.error(f.span(), e.to_string());
                        None
                    }
                }
            }
            (None, Some(e)) => match check_env_name(e.get_ref()) {
                Ok(()) => Some(PskSource::Env(e.get_ref().clone())),
                Err(m) => {
                    self.sink.error(e.span(), format!("`psk_env`: {m}"));
                    None
                }
            },
        }
    }

    fn tunnel_uniqueness(&mut self, tunnels: &[Tunnel], refs: &[TunnelRef]) {
        let mut names: HashMap<&str, Range<usize>> = HashMap::new();
        for r in refs {
            if r.name.is_empty() {
                continue;
            }
            if let Some(first) = names.get(r.name.as_str()) {
                let (l, c) = crate::diag::line_col(self.text, first.start);
                self.sink.error(
                    r.name_span.clone(),
                    format!(
                        "duplicate tunnel name `{}` (first defined at {l}:{c})",
                        r.name
                    ),
                );
            } else {
                names.insert(&r.name, r.name_span.clone());
            }
        }
        let mut ifaces: HashMap<&str, &str> = HashMap::new();
        for (t, r) in tunnels.iter().zip(refs) {
            if t.interface.is_empty() || names.get(r.name.as_str()) != Some(&r.name_span) {
                continue;
            }
            if let Some(other) = ifaces.insert(&t.interface, &t.name) {
                self.sink.error(
                    r.name_span.clone(),
                    format!(
                        "tunnel `{}` uses interface `{}`, already used by tunnel `{other}`",
                        t.name, t.interface
                    ),
                );
            }
        }
    }

    fn bgp(
        &mut self,
        span: Range<usize>,
        mut t: DeTable<'a>,
        tunnels: &[TunnelRef],
    ) -> Option<Bgp> {
        const SEC: &str = "[bgp]";
        let mut neighbors_raw = Vec::new();
        if let Some(v) = t.remove("neighbor") {
            neighbors_raw = self.expect_tables(v, "neighbor", "[[bgp.neighbor]]");
        }
        let decoded = self.decode::<RawBgp>(span.clone(), t, SEC, BGP_KEYS);

        let mut neighbors = Vec::new();
        let mut addrs: HashMap<IpAddr, Range<usize>> = HashMap::new();
        let mut any_azure_peer = tunnels.iter().any(|t| t.azure);
        let mut remote_asns = Vec::new();
        for (nspan, nt) in neighbors_raw {
            let Some(out) = self.neighbor(nspan, nt, tunnels) else {
                continue;
            };
            if let Some((addr, aspan)) = &out.address {
                if let Some(first) = addrs.get(addr) {
                    let (l, c) = crate::diag::line_col(self.text, first.start);
                    self.sink.error(
                        aspan.clone(),
                        format!("duplicate neighbor address {addr} (first defined at {l}:{c})"),
                    );
                } else {
                    addrs.insert(*addr, aspan.clone());
                }
            }
            any_azure_peer |= out.remote_asn == Some(azure::ASN);
            if let Some(asn) = out.remote_asn {
                remote_asns.push((asn, out.address.as_ref().map(|a| a.0)));
            }
            if let Some(n) = out.neighbor {
                neighbors.push(n);
            }
        }

        let (raw, bad) = decoded?;
        let asn = match &raw.asn {
            Some(a) => {
                let v = *a.get_ref();
                match check_asn(v) {
                    Err(m) => {
                        self.sink.error(a.span(), format!("`asn`: {m}"));
                        None
                    }
                    Ok(asn) => {
                        if azure::RESERVED_ASNS.contains(&asn) {
                            let msg = format!(
                                "`asn` {asn} is reserved by Azure (8074, 8075, 12076, 65515-65520) and cannot be used on-premises"
                            );
                            if any_azure_peer {
                                self.sink.error(a.span(), msg);
                            } else {
                                self.sink.warning(a.span(), msg);
                            }
                        }
                        for (remote, addr) in &remote_asns {
                            if *remote == asn {
                                let who = addr
                                    .map_or("a neighbor".to_string(), |a| format!("neighbor {a}"));
                                self.sink.warning(
                                    a.span(),
                                    format!(
                                        "{who} has the same ASN {asn}: that is an iBGP session"
                                    ),
                                );
                            }
                        }
                        Some(asn)
                    }
                }
            }
            None => {
                self.missing(&span, &bad, "asn", SEC);
                None
            }
        };
        let router_id = match &raw.router_id {
            Some(_) => self.parse_str(&raw.router_id, |s| match Ipv4Addr::from_str(s.trim()) {
                Ok(a) if !a.is_unspecified() => Ok(a),
                _ => Err(format!(
                    "invalid `router_id` `{}`: expected a non-zero IPv4 address",
                    s.escape_debug()
                )),
            }),
            None => {
                self.missing(&span, &bad, "router_id", SEC);
                None
            }
        };
        let table = match &raw.table {
            Some(f) => {
                let v = *f.get_ref();
                if !(1..=i64::from(u32::MAX)).contains(&v) || v == 253 || v == 255 {
                    self.sink.error(
                        f.span(),
                        format!("`table` must be a routing table id 1..=4294967295 other than 253 (default) and 255 (local), found {v}"),
                    );
                    None
                } else {
                    Some(v as u32)
                }
            }
            None => Some(defaults::TABLE),
        };
        let proto = match self.int(&raw.proto, "proto", 0, 255) {
            Some(v) if v < 5 => {
                if let Some(f) = &raw.proto {
                    self.sink.error(
                        f.span(),
                        format!("`proto` {v} is reserved for the kernel (0-4: unspec, redirect, kernel, boot, static)"),
                    );
                }
                None
            }
            Some(v) => {
                if let (Some((_, who)), Some(f)) = (
                    KNOWN_PROTOS.iter().find(|(p, _)| i64::from(*p) == v),
                    &raw.proto,
                ) {
                    self.sink.warning(
                        f.span(),
                        format!("`proto` {v} is also used by {who}: Causeway removes routes with this id at start-up"),
                    );
                }
                Some(v as u8)
            }
            None if raw.proto.is_some() => None,
            None => Some(defaults::PROTO),
        };
        Some(Bgp {
            asn: asn?,
            router_id: router_id?,
            table: table?,
            proto: proto?,
            neighbors,
        })
    }

    fn neighbor(
        &mut self,
        span: Range<usize>,
        t: DeTable<'a>,
        tunnels: &[TunnelRef],
    ) -> Option<NeighborOut> {
        const SEC: &str = "[[bgp.neighbor]]";
        let (raw, bad) = self.decode::<RawNeighbor>(span.clone(), t, SEC, NEIGHBOR_KEYS)?;
        let address = match &raw.address {
            Some(_) => self.parse_str(&raw.address, |s| {
                let a = parse_ip(s)?;
                if a.is_unspecified() || a.is_multicast() {
                    return Err(format!("neighbor `address` `{a}` is not a unicast address"));
                }
                Ok(a)
            }),
            None => {
                self.missing(&span, &bad, "address", SEC);
                None
            }
        };
        let aspan = raw.address.as_ref().map_or(span.clone(), |a| a.span());

        // The tunnel: named, or the only one.
        let tref = match &raw.tunnel {
            Some(n) => match tunnels.iter().find(|t| t.name == *n.get_ref()) {
                Some(t) => Some(t),
                None => {
                    let names: Vec<&str> = tunnels.iter().map(|t| t.name.as_str()).collect();
                    let hint = suggest(n.get_ref(), &names)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    self.sink.error(
                        n.span(),
                        format!("no tunnel named `{}`{hint}", n.get_ref().escape_debug()),
                    );
                    None
                }
            },
            None if tunnels.len() == 1 => tunnels.first(),
            None => {
                if !bad.contains("tunnel") {
                    self.sink.error(
                        span.clone(),
                        format!(
                            "missing key `tunnel` in {SEC} (required when there is not exactly one tunnel)"
                        ),
                    );
                }
                None
            }
        };
        let azure = tref.is_some_and(|t| t.azure);

        let remote_asn = match &raw.remote_asn {
            Some(a) => match check_asn(*a.get_ref()) {
                Ok(v) => Some(v),
                Err(m) => {
                    self.sink.error(a.span(), format!("`remote_asn`: {m}"));
                    None
                }
            },
            None if azure => Some(azure::ASN),
            None => {
                self.missing(&span, &bad, "remote_asn", SEC);
                None
            }
        };

        let local_address = self.parse_str(&raw.local_address, parse_ip);
        if let (Some(l), Some(a), Some(f)) = (local_address, address, &raw.local_address) {
            if l.is_ipv4() != a.is_ipv4() {
                self.sink.error(
                    f.span(),
                    format!(
                        "`local_address` {l} and `address` {a} are of different address families"
                    ),
                );
            }
        }
        // The session must fit the tunnel's traffic selectors.
        if let (Some(t), Some(a)) = (tref, address) {
            if let Some(ts) = &t.remote_ts {
                if !ts.iter().any(|n| n.contains(&a)) {
                    self.sink.error(
                        aspan.clone(),
                        format!(
                            "neighbor address {a} is not inside `remote_ts` of tunnel `{}`: BGP packets would not match the tunnel's traffic selectors",
                            t.name
                        ),
                    );
                }
            }
            if let (Some(ts), Some(l), Some(f)) = (&t.local_ts, local_address, &raw.local_address) {
                if !ts.iter().any(|n| n.contains(&l)) {
                    self.sink.error(
                        f.span(),
                        format!(
                            "`local_address` {l} is not inside `local_ts` of tunnel `{}`",
                            t.name
                        ),
                    );
                }
            }
        }

        let multihop = match &raw.multihop {
            Some(_) => self.int(&raw.multihop, "multihop", 1, 255).map(|v| v as u8),
            None if azure => Some(azure::MULTIHOP),
            None => None,
        };
        let hold = self.duration(&raw.hold_time, "hold_time", true);
        let hold = match (hold, &raw.hold_time) {
            (Some(h), Some(f))
                if (h.as_secs() > 0 && h.as_secs() < 3)
                    || h.as_secs() > 65535
                    || h.subsec_nanos() != 0 =>
            {
                self.sink.error(
                    f.span(),
                    "`hold_time` must be 0 or 3 to 65535 whole seconds",
                );
                Duration::from_secs(defaults::HOLD_TIME)
            }
            (Some(h), _) => h,
            (None, _) => Duration::from_secs(defaults::HOLD_TIME),
        };
        let keepalive = match self.duration(&raw.keepalive, "keepalive", true) {
            Some(k) => {
                let bad_ka = if hold.is_zero() {
                    !k.is_zero()
                } else {
                    k.is_zero() || k >= hold || k.subsec_nanos() != 0
                };
                if bad_ka {
                    if let Some(f) = &raw.keepalive {
                        self.sink.error(
                            f.span(),
                            format!(
                                "`keepalive` must be whole seconds, greater than zero and shorter than `hold_time` {} (0 only when hold_time is 0)",
                                format_duration(hold)
                            ),
                        );
                    }
                }
                k
            }
            None => Duration::from_secs(hold.as_secs() / 3),
        };

        let announce = self
            .parse_list(&raw.announce, "announce", true, parse_prefix)
            .ok()
            .flatten()
            .unwrap_or_default();
        let import = self
            .parse_list(&raw.import, "import", true, parse_filter)
            .ok()
            .flatten();
        let export = self
            .parse_list(&raw.export, "export", true, parse_filter)
            .ok()
            .flatten();
        let prepend = self
            .int(&raw.prepend, "prepend", 0, 16)
            .map_or(0, |v| v as u8);
        let max_prefixes = self
            .int(&raw.max_prefixes, "max_prefixes", 1, i64::from(u32::MAX))
            .map(|v| v as u32);
        let max_prefixes_action = self
            .keyword(
                &raw.max_prefixes_action,
                "max_prefixes_action",
                &[
                    ("warn", MaxPrefixesAction::Warn),
                    ("teardown", MaxPrefixesAction::Teardown),
                    ("restart", MaxPrefixesAction::Restart),
                ],
            )
            .unwrap_or(MaxPrefixesAction::Teardown);
        if azure && announce.len() > azure::MAX_SITE_PREFIXES {
            if let Some(f) = &raw.announce {
                self.sink.warning(
                    f.span(),
                    format!(
                        "Azure VPN Gateway accepts at most {} prefixes from a site; {} announced",
                        azure::MAX_SITE_PREFIXES,
                        announce.len()
                    ),
                );
            }
        }

        let out = NeighborOut {
            address: address.map(|a| (a, aspan)),
            remote_asn,
            neighbor: None,
        };
        let (Some(address), Some(remote_asn), Some(tref)) = (address, remote_asn, tref) else {
            return Some(out);
        };
        let n = Neighbor {
            address,
            remote_asn,
            tunnel: tref.name.clone(),
            local_address,
            multihop,
            hold_time: hold,
            keepalive,
            announce,
            import,
            export,
            prepend,
            max_prefixes,
            max_prefixes_action,
        };
        Some(NeighborOut {
            neighbor: Some(n),
            ..out
        })
    }
}

/// A prefix-list entry, parsed by the `bgp` crate (one syntax for config and policy);
/// the message comes from the config's own parser when it has a more precise one.
fn parse_filter(s: &str) -> Result<bgp::PrefixListEntry, String> {
    bgp::parse_prefix_filter(s).map_err(|e| match PrefixFilter::from_str(s) {
        Err(m) => m,
        Ok(_) => format!("invalid prefix filter `{}`: {}", s.escape_debug(), e.reason),
    })
}

/// AS numbers: 1..=4294967294, not 23456 (AS_TRANS).
fn check_asn(v: i64) -> Result<u32, String> {
    match v {
        0 => Err("AS 0 is reserved".into()),
        23456 => Err("AS 23456 (AS_TRANS) cannot be used".into()),
        4_294_967_295 => Err("AS 4294967295 is reserved".into()),
        1..=4_294_967_294 => Ok(v as u32),
        _ => Err(format!("must be between 1 and 4294967294, found {v}")),
    }
}
