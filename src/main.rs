//! `causeway`: userspace IPsec (IKEv2/ESP) + BGP site-to-site gateway.
//!
//! One binary: the daemon (`run`), config validation (`check`), the control-socket client
//! (`status`, `sa`, `bgp`, `routes`, `initiate`, `terminate`, `rekey`) and a self-contained
//! network-namespace lab (`lab`).

mod api;
mod bgpd;
mod check;
mod control;
mod daemon;
mod lab;
mod metrics;
mod notify;
mod render;
mod tunnel;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use api::Request;

/// Userspace IPsec (IKEv2/ESP) + BGP site-to-site gateway.
#[derive(Debug, Parser)]
#[command(name = "causeway", version, about, propagate_version = true)]
struct Cli {
    /// Control socket of the daemon [default: control_socket from the config, else
    /// /run/causeway/causeway.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground (systemd Type=notify)
    Run {
        /// Configuration file
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file: prints FILE:LINE:COL: message and exits 1 on error
    Check {
        /// Configuration file
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Tunnels, IKE/Child SAs and BGP neighbors at a glance
    Status {
        /// Print the stable JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// IKE and Child SAs: state, algorithms, SPIs, bytes/packets, rekey times
    Sa {
        /// Print the stable JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// BGP neighbors: state, uptime, prefixes received/accepted/advertised
    Bgp {
        /// Print the stable JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Routes learned and installed in the kernel
    Routes {
        /// Print the stable JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Bring a tunnel up (start IKE)
    Initiate {
        /// Tunnel name
        tunnel: String,
    },
    /// Tear a tunnel down (delete its IKE and Child SAs)
    Terminate {
        /// Tunnel name
        tunnel: String,
    },
    /// Rekey a tunnel's Child SA (or its IKE SA with --ike)
    Rekey {
        /// Tunnel name
        tunnel: String,
        /// Rekey the IKE SA instead of the Child SA
        #[arg(long)]
        ike: bool,
    },
    /// Build a throw-away two-site lab in network namespaces, prove a tunnel, traffic and
    /// BGP routes between two Causeway instances, print a report and tear it all down (root)
    Lab {
        /// Keep the lab's logs and configs (their directory is printed)
        #[arg(long)]
        keep_logs: bool,
        /// ESP encapsulation between the two sites: `udp` (ESP-in-UDP on port 4500),
        /// `esp` (raw IP protocol 50, what Azure uses without NAT) or `auto` (UDP when a NAT
        /// is detected) [default: udp, auto with --nat]
        #[arg(long, value_parser = ["udp", "esp", "auto"])]
        encap: Option<String>,
        /// What plays site B (the Azure side): a second `causeway`, or `strongswan`
        /// (charon with kernel-libipsec + BIRD 2, when installed)
        #[arg(long, default_value = "causeway", value_parser = ["causeway", "strongswan"])]
        peer: String,
        /// Site A sends everything (remote_ts 0.0.0.0/0) into the tunnel, with the
        /// underlay route to the peer pinned
        #[arg(long)]
        forced_tunneling: bool,
        /// Put site A behind a NAT router (private WAN address, masquerade): NAT
        /// detection moves IKE to port 4500 and ESP into UDP
        #[arg(long)]
        nat: bool,
        /// Azure active-active: site A runs two tunnels and two BGP sessions to the two
        /// instances of site B's gateway (two causeways, AS 65515); traffic uses both
        /// (ECMP), and fails over when one tunnel is terminated
        #[arg(long)]
        active_active: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.socket.clone();
    match cli.command {
        Command::Run { config } => daemon::run(&config, socket),
        Command::Check { config } => check::check(&config),
        Command::Lab {
            keep_logs,
            encap,
            peer,
            forced_tunneling,
            nat,
            active_active,
        } => lab::run(
            keep_logs,
            encap.as_deref().unwrap_or(if nat { "auto" } else { "udp" }),
            if peer == "strongswan" {
                lab::PeerKind::StrongSwan
            } else {
                lab::PeerKind::Causeway
            },
            forced_tunneling,
            nat,
            active_active,
        ),
        Command::Status { json } => query(socket, Request::Status, json, render::status),
        Command::Sa { json } => query(socket, Request::Sa, json, render::sa),
        Command::Bgp { json } => query(socket, Request::Bgp, json, render::bgp),
        Command::Routes { json } => query(socket, Request::Routes, json, render::routes),
        Command::Initiate { tunnel } => action(socket, Request::Initiate { tunnel }),
        Command::Terminate { tunnel } => action(socket, Request::Terminate { tunnel }),
        Command::Rekey { tunnel, ike } => action(socket, Request::Rekey { tunnel, ike }),
    }
}

fn socket_path(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(|| PathBuf::from(api::DEFAULT_SOCKET))
}

fn query(
    socket: Option<PathBuf>,
    req: Request,
    json: bool,
    text: fn(&api::Snapshot) -> String,
) -> ExitCode {
    let path = socket_path(socket);
    let resp = match control::call(&path, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("causeway: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if !resp.ok {
        eprintln!(
            "causeway: {}",
            resp.error.as_deref().unwrap_or("request failed")
        );
        return ExitCode::FAILURE;
    }
    let Some(snap) = resp.status else {
        eprintln!("causeway: the daemon answered without data");
        return ExitCode::FAILURE;
    };
    if json {
        let value = match req {
            Request::Sa => serde_json::to_value(&snap.tunnels),
            Request::Bgp => serde_json::to_value(&snap.bgp),
            Request::Routes => serde_json::to_value(&snap.routes),
            _ => serde_json::to_value(&snap),
        };
        match value.and_then(|v| serde_json::to_string_pretty(&v)) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("causeway: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", text(&snap));
    }
    ExitCode::SUCCESS
}

fn action(socket: Option<PathBuf>, req: Request) -> ExitCode {
    let path = socket_path(socket);
    match control::call(&path, &req) {
        Ok(r) if r.ok => {
            println!("{}", r.message.as_deref().unwrap_or("ok"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!(
                "causeway: {}",
                r.error.as_deref().unwrap_or("request failed")
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("causeway: {e:#}");
            ExitCode::FAILURE
        }
    }
}
