//! `causeway check -c FILE`.

use std::path::Path;
use std::process::ExitCode;

/// Validate the config file. Prints `FILE: ok` (stdout) and exits 0, or prints every
/// problem as `FILE:LINE:COL: message` (stderr) and exits 1. Warnings are printed in both
/// cases as `FILE:LINE:COL: warning: message`.
pub fn check(path: &Path) -> ExitCode {
    match config::Config::from_path(path) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("{w}");
            }
            let tunnels = cfg.tunnels.len();
            let neighbors = cfg.bgp.as_ref().map_or(0, |b| b.neighbors.len());
            println!(
                "{}: ok ({tunnels} tunnel{}, {neighbors} BGP neighbor{})",
                path.display(),
                if tunnels == 1 { "" } else { "s" },
                if neighbors == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
