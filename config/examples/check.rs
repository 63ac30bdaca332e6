//! `cargo run -p causeway-config --example check -- FILE...`: validate config files and
//! print `FILE:LINE:COL: message` lines, like `causeway check`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for arg in std::env::args().skip(1) {
        match config::Config::from_path(Path::new(&arg)) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("{w}");
                }
                println!(
                    "{arg}: ok ({} tunnel(s), {} BGP neighbor(s))",
                    cfg.tunnels.len(),
                    cfg.bgp.as_ref().map_or(0, |b| b.neighbors.len())
                );
            }
            Err(e) => {
                eprintln!("{e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
