//! ESP benchmarks.
//!
//! * `aead_seal/*`: raw AES-256-GCM seal in place (12-byte nonce, 8-byte AAD, detached
//!   tag) at 64 / 1420 / 8192 bytes: aws-lc-rs vs ring vs RustCrypto `aes-gcm`.
//! * `sa_seal/<suite>` and `sa_open/<suite>`: a whole ESP packet of a 1420-byte inner
//!   packet through `Sa::seal` / `Sa::open` (open: a freshly sealed packet per
//!   iteration, sealed outside the timed part).
//!
//! Run: `cargo bench -p causeway-esp --bench esp -- --warm-up-time 1 --measurement-time 2`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use esp::{Direction, Sa, SaParams, Suite, MAX_HEADER_LEN, MAX_TRAILER_LEN};
use std::hint::black_box;

const SIZES: [usize; 3] = [64, 1420, 8192];
const AAD: [u8; 8] = [0xC0, 0xFF, 0xEE, 0x01, 0, 0, 0, 1];

fn aead_seal(c: &mut Criterion) {
    let key = [0x42u8; 32];
    let nonce = [7u8; 12];
    let mut g = c.benchmark_group("aead_seal");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size];

        let k = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key).expect("key"),
        );
        g.bench_function(format!("aws-lc-rs/{size}"), |b| {
            b.iter(|| {
                let tag = k
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                        aws_lc_rs::aead::Aad::from(&AAD),
                        &mut buf,
                    )
                    .expect("seal");
                let _ = black_box(tag);
            })
        });

        let k = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key).expect("key"),
        );
        g.bench_function(format!("ring/{size}"), |b| {
            b.iter(|| {
                let tag = k
                    .seal_in_place_separate_tag(
                        ring::aead::Nonce::assume_unique_for_key(nonce),
                        ring::aead::Aad::from(&AAD),
                        &mut buf,
                    )
                    .expect("seal");
                let _ = black_box(tag);
            })
        });

        {
            use aes_gcm::aead::{AeadInPlace, KeyInit};
            let k = aes_gcm::Aes256Gcm::new_from_slice(&key).expect("key");
            let n = aes_gcm::Nonce::from_slice(&nonce);
            g.bench_function(format!("rustcrypto-aes-gcm/{size}"), |b| {
                b.iter(|| {
                    let tag = k
                        .encrypt_in_place_detached(n, &AAD, &mut buf)
                        .expect("seal");
                    let _ = black_box(tag);
                })
            });
        }
    }
    g.finish();
}

fn keymat(suite: Suite) -> Vec<u8> {
    (0..suite.encryption_keymat_len() + suite.integrity_keymat_len())
        .map(|i| i as u8)
        .collect()
}

fn sa(c: &mut Criterion) {
    const LEN: usize = 1420;
    let payload = MAX_HEADER_LEN..MAX_HEADER_LEN + LEN;
    let mut seal_g = c.benchmark_group("sa_seal");
    seal_g.throughput(Throughput::Bytes(LEN as u64));
    for suite in Suite::all() {
        let out = Sa::from_keymat(
            SaParams::new(1, Direction::Outbound, suite).with_esn(true),
            &keymat(suite),
        )
        .expect("sa");
        let mut buf = vec![0x45u8; MAX_HEADER_LEN + LEN + MAX_TRAILER_LEN];
        seal_g.bench_function(suite.to_string(), |b| {
            b.iter(|| black_box(out.seal(&mut buf, payload.clone(), 4).expect("seal")))
        });
    }
    seal_g.finish();

    let mut open_g = c.benchmark_group("sa_open");
    open_g.throughput(Throughput::Bytes(LEN as u64));
    for suite in Suite::all() {
        let km = keymat(suite);
        let out = Sa::from_keymat(
            SaParams::new(1, Direction::Outbound, suite).with_esn(true),
            &km,
        )
        .expect("sa");
        let inb = Sa::from_keymat(
            SaParams::new(1, Direction::Inbound, suite).with_esn(true),
            &km,
        )
        .expect("sa");
        open_g.bench_function(suite.to_string(), |b| {
            b.iter_batched_ref(
                || {
                    let mut buf = vec![0x45u8; MAX_HEADER_LEN + LEN + MAX_TRAILER_LEN];
                    let p = out.seal(&mut buf, payload.clone(), 4).expect("seal").packet;
                    (buf, p)
                },
                |(buf, p)| black_box(inb.open(buf, p.clone()).expect("open")),
                BatchSize::SmallInput,
            )
        });
    }
    open_g.finish();
}

/// Per-packet parts of the CBC path: AES-128-CBC encrypt/decrypt and HMAC-SHA1 over
/// 1440 bytes, and, for comparison, drawing a random 16-byte IV.
fn cbc_parts(c: &mut Criterion) {
    use esp::backend::{AwsLc, Backend, CbcKey, MacKey};
    let mut g = c.benchmark_group("cbc_parts");
    let mut iv = [0u8; 16];
    g.bench_function("aws_lc_rand_16", |b| {
        b.iter(|| aws_lc_rs::rand::fill(black_box(&mut iv)).expect("rand"))
    });
    let key = AwsLc::cbc_key(&[1u8; 16]).expect("key");
    let mut buf = vec![0u8; 1440];
    g.throughput(Throughput::Bytes(1440));
    g.bench_function("aes128_cbc_encrypt_1440", |b| {
        b.iter(|| key.encrypt_in_place(&iv, black_box(&mut buf)).expect("enc"))
    });
    g.bench_function("aes128_cbc_decrypt_1440", |b| {
        b.iter(|| key.decrypt_in_place(&iv, black_box(&mut buf)).expect("dec"))
    });
    let mac = AwsLc::mac_key(esp::Integrity::HmacSha1_96, &[2u8; 20]).expect("mac");
    let mut out = [0u8; 64];
    g.bench_function("hmac_sha1_1440", |b| {
        b.iter(|| mac.sign(&[black_box(&buf)], &mut out).expect("mac"))
    });
    g.finish();
}

criterion_group!(benches, aead_seal, sa, cbc_parts);
criterion_main!(benches);
