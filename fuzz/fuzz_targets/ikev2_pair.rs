//! Two IKEv2 endpoints talking in memory, with the fuzzer choosing what happens to each
//! datagram (deliver, drop, duplicate, corrupt), the clock, and operator actions (rekeys,
//! liveness checks, deletes, soft/hard expiries), optionally with IKE fragmentation at a
//! tiny fragment size. Nothing may panic; established Child SAs must always match.
#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ikev2::crypto::TestRng;
use ikev2::{Config, Endpoint, Event, Psk, Transmit};
use libfuzzer_sys::fuzz_target;

const I: &str = "192.0.2.1:500";
const R: &str = "198.51.100.7:500";

fn endpoint(local: &str, remote: &str, seed: u64, esp: &str, frag: bool) -> Endpoint {
    let mut c = Config::new(local.parse().unwrap(), remote.parse().unwrap(), Psk::new(b"fuzz".to_vec()));
    c.ike_proposals =
        ikev2::proposal::parse_ike_proposals(&["aes128gcm16-prfsha256-x25519", "aes256-sha256-x25519"]).unwrap();
    c.esp_proposals = ikev2::proposal::parse_esp_proposals(&[esp]).unwrap();
    c.dpd_delay = Some(Duration::from_secs(30));
    if frag {
        c.fragment_size = 200;
    }
    c.child_rekey_jitter = Duration::from_secs(60);
    Endpoint::new(c, Box::new(TestRng::new(seed)))
}

fuzz_target!(|data: &[u8]| {
    let esp = if data.first().is_some_and(|b| b & 1 == 1) { "aes256gcm16-x25519" } else { "aes256gcm16" };
    let mut now = Instant::now();
    let frag = data.first().is_some_and(|b| b & 2 == 2);
    let mut eps = [endpoint(I, R, 1, esp, frag), endpoint(R, I, 2, esp, frag)];
    eps[0].initiate(now);
    let mut queue: VecDeque<(usize, Transmit)> = VecDeque::new();
    let mut children: [Vec<(u32, u32, Vec<u8>, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
    let mut it = data.iter().skip(1).copied();
    for _ in 0..2000 {
        for (k, ep) in eps.iter_mut().enumerate() {
            while let Some(t) = ep.poll_transmit() {
                queue.push_back((1 - k, t));
            }
            while let Some(e) = ep.poll_event() {
                if let Event::ChildSaEstablished(c) = e {
                    children[k].push((c.local_spi, c.remote_spi, c.keys_in.keymat().to_vec(), c.keys_out.keymat().to_vec()));
                }
            }
        }
        let Some(op) = it.next() else { break };
        match op % 12 {
            0..=3 => {
                if let Some((to, t)) = queue.pop_front() {
                    let mut payload = t.payload.clone();
                    match op % 12 {
                        1 => continue, // dropped
                        2 => queue.push_front((to, t.clone())), // duplicated
                        3 => {
                            let pos = usize::from(it.next().unwrap_or(0)) % payload.len().max(1);
                            if let Some(b) = payload.get_mut(pos) {
                                *b ^= it.next().unwrap_or(1) | 1;
                            }
                        }
                        _ => {}
                    }
                    eps[to].handle_datagram(now, t.src, t.dst, &payload);
                }
            }
            4 => {
                now += Duration::from_secs(u64::from(it.next().unwrap_or(1)));
                for ep in &mut eps {
                    ep.handle_timeout(now);
                }
            }
            5 => {
                let k = usize::from(op >> 7);
                if let Some(spi) = eps[k].ike_sas().first().and_then(|s| s.children.first().map(|c| c.0)) {
                    eps[k].rekey_child(now, spi);
                }
            }
            6 => eps[usize::from(op >> 7)].rekey_ike(now),
            7 => eps[usize::from(op >> 7)].check_liveness(now),
            8 => eps[usize::from(op >> 7)].terminate(now),
            9 => eps[usize::from(op >> 7)].initiate(now),
            k => {
                let e = &mut eps[usize::from(op >> 7)];
                if let Some(spi) = e.ike_sas().first().and_then(|s| s.children.first().map(|c| c.0)) {
                    if k == 10 {
                        e.child_sa_soft_expired(now, spi);
                    } else {
                        e.child_sa_hard_expired(now, spi);
                    }
                }
            }
        }
    }
    // Whatever happened, Child SAs that both sides know are crossed correctly.
    for (spi, rspi, kin, kout) in &children[0] {
        if let Some((_, _, kin2, kout2)) = children[1].iter().find(|c| c.0 == *rspi && c.1 == *spi) {
            assert_eq!(kin, kout2);
            assert_eq!(kout, kin2);
        }
    }
});
