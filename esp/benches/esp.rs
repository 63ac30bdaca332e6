//! ESP benchmarks.
//!
//! * `aead_seal/*`: raw AES-256-GCM seal in place (12-byte nonce, 8-byte AAD, detached
//!   tag) at 64 / 1420 / 8192 bytes: aws-lc-rs vs ring vs RustCrypto `aes-gcm`.
//! * `sa_seal/<suite>` and `sa_open/<suite>`: a whole ESP packet of a 1420-byte inner
//!   packet through `Sa::seal` / `Sa::open` (open: a freshly sealed packet per
//!   iteration, sealed outside the timed part).
//!
//! * `esp/<size>/<suite>/{esp_seal,raw_seal,esp_open,raw_open}`: ESP against the raw
//!   `aws-lc-rs` AEAD (or AES-CBC + HMAC) on the same bytes at 64 / 512 / 1420 / 8192
//!   bytes, back to back per size and suite (see [`esp_vs_raw`]).
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

/// Suites of issue 3's benchmark table (AES-192 is implemented but not benchmarked).
fn table_suites() -> impl Iterator<Item = Suite> {
    Suite::all().filter(|s| s.aes_key_len() != 24)
}

/// Inner-packet sizes of the ESP-vs-raw table.
const TABLE_SIZES: [usize; 4] = [64, 512, 1420, 8192];

/// ESP `seal`/`open` against the raw `aws-lc-rs` primitive on the same bytes, one
/// criterion group per (size, suite) so that the four measurements run back to back.
///
/// * `esp_seal`: `Sa::seal` of an `n`-byte inner packet (ESN on, 12-byte GCM AAD).
/// * `raw_seal`: GCM: `LessSafeKey::seal_in_place_separate_tag` over `n` bytes with a
///   12-byte AAD. CBC: AES-CBC encrypt of `n` bytes rounded up to 16, then HMAC over
///   them.
/// * `esp_open`: `Sa::open` of a freshly sealed packet (sealed outside the timed part).
/// * `raw_open`: GCM: `open_in_place_separate_tag` of a valid ciphertext (copied in
///   outside the timed part). CBC: HMAC verify, then AES-CBC decrypt.
///
/// Throughput is always counted as `n` bytes, so the ratio raw time / ESP time is the
/// share of the raw primitive's speed ESP keeps.
fn esp_vs_raw(c: &mut Criterion) {
    use aws_lc_rs::{aead, cipher, hmac};
    for size in TABLE_SIZES {
        for suite in table_suites() {
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
            let payload = MAX_HEADER_LEN..MAX_HEADER_LEN + size;
            let mut g = c.benchmark_group(format!("esp/{size}/{suite}"));
            g.throughput(Throughput::Bytes(size as u64));

            let mut buf = vec![0x45u8; MAX_HEADER_LEN + size + MAX_TRAILER_LEN];
            g.bench_function("esp_seal", |b| {
                b.iter(|| black_box(out.seal(&mut buf, payload.clone(), 4).expect("seal")))
            });

            let ekey = &km[..suite.aes_key_len()];
            match suite.integrity() {
                None => {
                    let alg = if suite.aes_key_len() == 16 {
                        &aead::AES_128_GCM
                    } else {
                        &aead::AES_256_GCM
                    };
                    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, ekey).expect("key"));
                    let nonce = [7u8; 12];
                    let aad = [0xC0u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
                    let mut raw = vec![0x45u8; size];
                    g.bench_function("raw_seal", |b| {
                        b.iter(|| {
                            let tag = k
                                .seal_in_place_separate_tag(
                                    aead::Nonce::assume_unique_for_key(nonce),
                                    aead::Aad::from(&aad),
                                    &mut raw,
                                )
                                .expect("seal");
                            let _ = black_box(tag);
                        })
                    });
                    let mut ct = vec![0x45u8; size];
                    let tag = k
                        .seal_in_place_separate_tag(
                            aead::Nonce::assume_unique_for_key(nonce),
                            aead::Aad::from(&aad),
                            &mut ct,
                        )
                        .expect("seal");
                    esp_open_bench(&mut g, &out, &inb, &payload);
                    g.bench_function("raw_open", |b| {
                        b.iter_batched_ref(
                            || ct.clone(),
                            |ct| {
                                k.open_in_place_separate_tag(
                                    aead::Nonce::assume_unique_for_key(nonce),
                                    aead::Aad::from(&aad),
                                    tag.as_ref(),
                                    ct,
                                )
                                .expect("open");
                            },
                            BatchSize::SmallInput,
                        )
                    });
                }
                Some(integ) => {
                    let alg = if suite.aes_key_len() == 16 {
                        &cipher::AES_128
                    } else {
                        &cipher::AES_256
                    };
                    let halg = match integ {
                        esp::Integrity::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                        esp::Integrity::HmacSha256_128 => hmac::HMAC_SHA256,
                        esp::Integrity::HmacSha384_192 => hmac::HMAC_SHA384,
                        esp::Integrity::HmacSha512_256 => hmac::HMAC_SHA512,
                    };
                    let enc = cipher::EncryptingKey::cbc(
                        cipher::UnboundCipherKey::new(alg, ekey).expect("key"),
                    )
                    .expect("key");
                    let dec = cipher::DecryptingKey::cbc(
                        cipher::UnboundCipherKey::new(alg, ekey).expect("key"),
                    )
                    .expect("key");
                    let mk = hmac::Key::new(halg, &km[suite.aes_key_len()..]);
                    let iv = [9u8; 16];
                    let mut raw = vec![0x45u8; size.div_ceil(16) * 16];
                    g.bench_function("raw_seal", |b| {
                        b.iter(|| {
                            enc.less_safe_encrypt(
                                &mut raw,
                                cipher::EncryptionContext::Iv128(iv.into()),
                            )
                            .expect("enc");
                            black_box(hmac::sign(&mk, &raw));
                        })
                    });
                    let tag = hmac::sign(&mk, &raw);
                    esp_open_bench(&mut g, &out, &inb, &payload);
                    g.bench_function("raw_open", |b| {
                        b.iter_batched_ref(
                            || raw.clone(),
                            |ct| {
                                hmac::verify(&mk, ct, tag.as_ref()).expect("verify");
                                dec.decrypt(ct, cipher::DecryptionContext::Iv128(iv.into()))
                                    .expect("dec");
                            },
                            BatchSize::SmallInput,
                        )
                    });
                }
            }
            g.finish();
        }
    }
}

/// `esp_open`: opens a packet sealed (untimed) just before.
fn esp_open_bench(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    out: &Sa,
    inb: &Sa,
    payload: &std::ops::Range<usize>,
) {
    let len = payload.len();
    g.bench_function("esp_open", |b| {
        b.iter_batched_ref(
            || {
                let mut buf = vec![0x45u8; MAX_HEADER_LEN + len + MAX_TRAILER_LEN];
                let p = out.seal(&mut buf, payload.clone(), 4).expect("seal").packet;
                (buf, p)
            },
            |(buf, p)| black_box(inb.open(buf, p.clone()).expect("open")),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, esp_vs_raw, aead_seal, sa, cbc_parts);
criterion_main!(benches);
