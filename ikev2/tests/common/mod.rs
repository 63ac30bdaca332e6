//! Helpers shared by the integration tests (each test file that needs them declares
//! `mod common;`; not every file uses every helper).
#![allow(dead_code)]

pub mod charon;
pub mod sk;
pub mod vectors;

use std::net::SocketAddr;

use ikev2::proposal::{parse_esp_proposals, parse_ike_proposals};
use ikev2::{Config, Identity, Psk};

/// An endpoint's config for in-memory tests: `local` and `remote` ("addr:port"), the PSK,
/// IKE and ESP proposals (strings as in the config file); its ID is its address.
pub fn config(local: &str, remote: &str, psk: &str, ike: &[&str], esp: &[&str]) -> Config {
    let local_addr: SocketAddr = local.parse().unwrap();
    let mut c = Config::new(
        local_addr,
        remote.parse().unwrap(),
        Psk::new(psk.as_bytes().to_vec()),
    );
    c.ike_proposals = parse_ike_proposals(ike).unwrap();
    c.esp_proposals = parse_esp_proposals(esp).unwrap();
    c.local_id = Identity::Addr(local_addr.ip());
    c
}
