//! Diffie-Hellman known answers (RFC 5114 A.3, RFC 5903 §8, RFC 5114 A.6/A.7, RFC 7748 §6.1,
//! RFC 8031 App. A) and peer-value validation (RFC 6989, RFC 8031 §2.3).

use ikev2::crypto::{DhError, DhGroup, DhPrivateKey, Rng, SystemRng, TestRng};

struct Kat {
    name: String,
    group: DhGroup,
    i: Vec<u8>,
    gi: Vec<u8>,
    r: Vec<u8>,
    gr: Vec<u8>,
    gir: Vec<u8>,
}

/// Parses `[name]` blocks of `key = hex` lines.
fn parse(text: &str) -> Vec<Kat> {
    let mut out = Vec::new();
    let mut cur: Option<(String, std::collections::HashMap<String, String>)> = None;
    let mut flush = |cur: &mut Option<(String, std::collections::HashMap<String, String>)>| {
        if let Some((name, m)) = cur.take() {
            let h = |k: &str| hex::decode(&m[k]).unwrap();
            out.push(Kat {
                name,
                group: DhGroup::from_id(m["group"].parse().unwrap()).unwrap(),
                i: h("i"),
                gi: h("gi"),
                r: h("r"),
                gr: h("gr"),
                gir: h("gir"),
            });
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            flush(&mut cur);
            cur = Some((name.to_string(), Default::default()));
        } else if let Some((k, v)) = line.split_once(" = ") {
            cur.as_mut().unwrap().1.insert(k.to_string(), v.to_string());
        }
    }
    flush(&mut cur);
    out
}

fn all_kats() -> Vec<Kat> {
    let mut v = parse(include_str!("vectors/dh_modp.txt"));
    v.extend(parse(include_str!("vectors/ecdh_ecp.txt")));
    v.extend(parse(include_str!("vectors/ecdh_x25519.txt")));
    v
}

#[test]
fn known_answers() {
    let kats = all_kats();
    let names: Vec<&str> = kats.iter().map(|k| k.name.as_str()).collect();
    for expected in [
        "rfc5114-a3",
        "rfc5903-p256",
        "rfc5903-p384",
        "rfc5114-p256",
        "rfc5114-p384",
        "rfc7748-6.1",
        "rfc8031-appA",
    ] {
        assert!(names.contains(&expected), "missing vector {expected}");
    }
    for k in &kats {
        let a = DhPrivateKey::from_private_bytes(k.group, &k.i).unwrap();
        let b = DhPrivateKey::from_private_bytes(k.group, &k.r).unwrap();
        assert_eq!(a.public_value(), k.gi, "{}: initiator public value", k.name);
        assert_eq!(b.public_value(), k.gr, "{}: responder public value", k.name);
        assert_eq!(a.public_value().len(), k.group.public_len());
        let z1 = a.shared_secret(&k.gr).unwrap();
        let z2 = b.shared_secret(&k.gi).unwrap();
        assert_eq!(z1.as_bytes(), &k.gir[..], "{}: shared (i)", k.name);
        assert_eq!(z2.as_bytes(), &k.gir[..], "{}: shared (r)", k.name);
        assert_eq!(z1.len(), k.group.shared_len());
    }
}

#[test]
fn round_trip_every_group_with_random_keys() {
    let mut rng = TestRng::new(7);
    for g in DhGroup::ALL {
        let a = DhPrivateKey::generate(g, &mut rng).unwrap();
        let b = DhPrivateKey::generate(g, &mut SystemRng).unwrap();
        assert_eq!(a.group(), g);
        assert_eq!(a.public_value().len(), g.public_len(), "{g}");
        assert_ne!(a.public_value(), b.public_value(), "{g}");
        let z1 = a.shared_secret(&b.public_value()).unwrap();
        let z2 = b.shared_secret(&a.public_value()).unwrap();
        assert_eq!(z1, z2, "{g}");
        assert_eq!(z1.len(), g.shared_len(), "{g}");
    }
}

#[test]
fn generation_is_deterministic_with_test_rng() {
    for g in DhGroup::ALL {
        let a = DhPrivateKey::generate(g, &mut TestRng::new(42)).unwrap();
        let b = DhPrivateKey::generate(g, &mut TestRng::new(42)).unwrap();
        let c = DhPrivateKey::generate(g, &mut TestRng::new(43)).unwrap();
        assert_eq!(a.public_value(), b.public_value(), "{g}");
        assert_ne!(a.public_value(), c.public_value(), "{g}");
    }
}

#[test]
fn ids_round_trip() {
    for g in DhGroup::ALL {
        assert_eq!(DhGroup::from_id(g.id()), Some(g));
    }
    assert_eq!(DhGroup::from_id(14), Some(DhGroup::Modp2048));
    assert_eq!(DhGroup::from_id(24), Some(DhGroup::Modp2048s256));
    assert_eq!(DhGroup::from_id(31), Some(DhGroup::Curve25519));
    assert_eq!(DhGroup::from_id(1), None);
    assert_eq!(DhGroup::from_id(21), None);
}

fn be_add(a: &[u8], delta: i32) -> Vec<u8> {
    // a + delta for small |delta|, big-endian, same length (test helper).
    let mut v = a.to_vec();
    let mut carry = delta;
    for b in v.iter_mut().rev() {
        let x = *b as i32 + carry;
        *b = x.rem_euclid(256) as u8;
        carry = x.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    v
}

#[test]
fn modp_rejects_degenerate_values() {
    let mut rng = TestRng::new(1);
    for g in DhGroup::ALL.into_iter().filter(|g| g.is_modp()) {
        let me = DhPrivateKey::generate(g, &mut rng).unwrap();
        let len = g.public_len();
        let p = g.modp_prime().unwrap();
        assert_eq!(p.len(), len);
        let zero = vec![0u8; len];
        let one = be_add(&zero, 1);
        let p_minus_1 = be_add(&p, -1);
        let p_plus_1 = be_add(&p, 1);
        for (what, v) in [
            ("0", &zero),
            ("1", &one),
            ("p-1", &p_minus_1),
            ("p", &p),
            ("p+1", &p_plus_1),
            ("all ones", &vec![0xff; len]),
        ] {
            assert_eq!(
                me.shared_secret(v).unwrap_err(),
                DhError::InvalidPublicValue,
                "{g}: {what}"
            );
        }
        // 2 and p-2 are in range for the safe-prime groups.
        let two = be_add(&zero, 2);
        if g != DhGroup::Modp2048s256 {
            assert!(me.shared_secret(&two).is_ok(), "{g}: 2");
            assert!(me.shared_secret(&be_add(&p, -2)).is_ok(), "{g}: p-2");
        }
        for bad_len in [0, 1, len - 1, len + 1] {
            let v = vec![0x42u8; bad_len];
            assert_eq!(
                me.shared_secret(&v).unwrap_err(),
                DhError::WrongLength {
                    expected: len,
                    got: bad_len
                },
                "{g}: len {bad_len}"
            );
        }
    }
}

#[test]
fn group24_rejects_values_outside_the_subgroup() {
    // RFC 6989 §2.2: for group 24, y^q must be 1. 2 is in (1, p-1) but (overwhelmingly
    // likely) not in the order-q subgroup; p-2 = -2 as well; a real public value times
    // nothing is fine.
    let me = DhPrivateKey::generate(DhGroup::Modp2048s256, &mut TestRng::new(3)).unwrap();
    let peer = DhPrivateKey::generate(DhGroup::Modp2048s256, &mut TestRng::new(4)).unwrap();
    let p = DhGroup::Modp2048s256.modp_prime().unwrap();
    let two = be_add(&vec![0u8; 256], 2);
    assert_eq!(
        me.shared_secret(&two).unwrap_err(),
        DhError::InvalidPublicValue
    );
    assert_eq!(
        me.shared_secret(&be_add(&p, -2)).unwrap_err(),
        DhError::InvalidPublicValue
    );
    // A valid element with its low bit flipped leaves the subgroup.
    let mut y = peer.public_value();
    assert!(me.shared_secret(&y).is_ok());
    y[255] ^= 1;
    assert_eq!(
        me.shared_secret(&y).unwrap_err(),
        DhError::InvalidPublicValue
    );
}

#[test]
fn ecp_rejects_bad_points_and_lengths() {
    let mut rng = TestRng::new(9);
    for g in [DhGroup::Ecp256, DhGroup::Ecp384] {
        let me = DhPrivateKey::generate(g, &mut rng).unwrap();
        let peer = DhPrivateKey::generate(g, &mut rng).unwrap();
        let good = peer.public_value();
        assert!(me.shared_secret(&good).is_ok());
        // Off-curve: flip a bit of y.
        let mut off = good.clone();
        *off.last_mut().unwrap() ^= 1;
        assert_eq!(
            me.shared_secret(&off).unwrap_err(),
            DhError::InvalidPublicValue,
            "{g}"
        );
        // The point at infinity has no affine encoding; all zeros is not on the curve.
        let zeros = vec![0u8; g.public_len()];
        assert_eq!(
            me.shared_secret(&zeros).unwrap_err(),
            DhError::InvalidPublicValue,
            "{g}"
        );
        // x || y with the SEC1 prefix (wrong length for IKEv2) and compressed forms.
        let mut with_prefix = vec![0x04];
        with_prefix.extend_from_slice(&good);
        assert!(matches!(
            me.shared_secret(&with_prefix),
            Err(DhError::WrongLength { .. })
        ));
        let half = g.public_len() / 2;
        let mut compressed = vec![0x02];
        compressed.extend_from_slice(&good[..half]);
        assert!(matches!(
            me.shared_secret(&compressed),
            Err(DhError::WrongLength { .. })
        ));
        // Coordinates >= the field prime: all 0xff.
        let ff = vec![0xffu8; g.public_len()];
        assert_eq!(
            me.shared_secret(&ff).unwrap_err(),
            DhError::InvalidPublicValue,
            "{g}"
        );
    }
}

#[test]
fn x25519_rejects_low_order_points() {
    let me = DhPrivateKey::generate(DhGroup::Curve25519, &mut TestRng::new(5)).unwrap();
    // u = 0 and u = 1 are low-order points: the result is all zeros (RFC 7748 §6.1,
    // RFC 8031 §2.3 requires rejecting it).
    let mut one = [0u8; 32];
    one[0] = 1;
    for (what, u) in [("u=0", [0u8; 32]), ("u=1", one)] {
        let e = me.shared_secret(&u).unwrap_err();
        assert!(
            matches!(e, DhError::ZeroSharedSecret | DhError::InvalidPublicValue),
            "{what}: {e:?}"
        );
    }
    assert!(matches!(
        me.shared_secret(&[9u8; 31]),
        Err(DhError::WrongLength {
            expected: 32,
            got: 31
        })
    ));
}

#[test]
fn private_bytes_out_of_range_are_refused() {
    assert!(DhPrivateKey::from_private_bytes(DhGroup::Modp2048, &[]).is_err());
    assert!(DhPrivateKey::from_private_bytes(DhGroup::Modp2048, &[0u8; 32]).is_err());
    assert!(DhPrivateKey::from_private_bytes(DhGroup::Modp2048, &[1u8; 65]).is_err());
    // Group 24: x must be < q (q starts with 0x8C).
    assert!(DhPrivateKey::from_private_bytes(DhGroup::Modp2048s256, &[0xff; 32]).is_err());
    assert!(DhPrivateKey::from_private_bytes(DhGroup::Modp2048s256, &[0x01; 32]).is_ok());
    // ECP: scalar must have the curve's length and be non-zero.
    assert!(DhPrivateKey::from_private_bytes(DhGroup::Ecp256, &[0u8; 32]).is_err());
    assert!(DhPrivateKey::from_private_bytes(DhGroup::Ecp256, &[1u8; 31]).is_err());
}

#[test]
fn debug_output_hides_the_private_key() {
    let k = DhPrivateKey::from_private_bytes(DhGroup::Curve25519, &[0x77; 32]).unwrap();
    let s = format!("{k:?}");
    assert!(s.contains("redacted"), "{s}");
    assert!(!s.contains("77, 77") && !s.contains("7777"), "{s}");
    let z = k.shared_secret(&k.public_value()).unwrap();
    let s = format!("{z:?}");
    assert!(s.contains("redacted") && !s.contains(&hex::encode(z.as_bytes())));
}

/// A generator that always returns the same bytes, to exercise rejection sampling.
struct Constant(u8);
impl Rng for Constant {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(self.0);
    }
}

#[test]
fn generation_fails_cleanly_when_randomness_is_degenerate() {
    // All-zero exponents are refused and retried; a stuck RNG ends in an error, not a loop.
    assert_eq!(
        DhPrivateKey::generate(DhGroup::Modp2048, &mut Constant(0)).unwrap_err(),
        DhError::KeyGeneration
    );
    assert_eq!(
        DhPrivateKey::generate(DhGroup::Modp2048s256, &mut Constant(0xff)).unwrap_err(),
        DhError::KeyGeneration
    );
    assert_eq!(
        DhPrivateKey::generate(DhGroup::Ecp256, &mut Constant(0)).unwrap_err(),
        DhError::KeyGeneration
    );
}
