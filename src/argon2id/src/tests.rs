//! Known answers (RFC 9106) and a bit-for-bit comparison with the `argon2` crate.

use super::*;
use proptest::prelude::*;

fn ours(
    version: Version,
    (t, m, p): (u32, u32, u32),
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
    len: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Argon2id::new(version, t, m, p)
        .unwrap()
        .with_secret(secret)
        .with_associated_data(ad)
        .hash_into(password, salt, &mut out)
        .unwrap();
    out
}

fn reference(
    version: Version,
    (t, m, p): (u32, u32, u32),
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
    len: usize,
) -> Vec<u8> {
    let params = argon2::ParamsBuilder::new()
        .m_cost(m)
        .t_cost(t)
        .p_cost(p)
        .output_len(len)
        .data(argon2::AssociatedData::new(ad).unwrap())
        .build()
        .unwrap();
    let version = match version {
        Version::V0x10 => argon2::Version::V0x10,
        Version::V0x13 => argon2::Version::V0x13,
    };
    let ctx = argon2::Argon2::new_with_secret(secret, argon2::Algorithm::Argon2id, version, params)
        .unwrap();
    let mut out = vec![0u8; len];
    ctx.hash_password_into(password, salt, &mut out).unwrap();
    out
}

#[test]
fn rfc9106_argon2id_vector_ok() {
    // RFC 9106 §5.3: Argon2id, t=3, m=32 KiB, p=4, with secret and associated data.
    let tag = ours(
        Version::V0x13,
        (3, 32, 4),
        &[0x01; 32],
        &[0x02; 16],
        &[0x03; 8],
        &[0x04; 12],
        32,
    );
    let expected = [
        0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b, 0x53,
        0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9, 0x6b, 0x01,
        0xe6, 0x59,
    ];
    assert_eq!(tag, expected);
}

#[test]
fn argon2_cffi_default_vector_ok() {
    // argon2-cffi 25.1.0 `PasswordHasher()` (t=3, m=64 MiB, p=4) on tests/vectors' first case:
    // salt "saltsaltsalt1234", tag DTScp0bGQwrNzk+zja6T3fCnDV8oM1y0rzKFjhtlCtI.
    let tag = ours(
        Version::V0x13,
        (3, 65_536, 4),
        b"correct horse battery staple",
        b"saltsaltsalt1234",
        &[],
        &[],
        32,
    );
    let expected = [
        0x0d, 0x34, 0x9c, 0xa7, 0x46, 0xc6, 0x43, 0x0a, 0xcd, 0xce, 0x4f, 0xb3, 0x8d, 0xae, 0x93,
        0xdd, 0xf0, 0xa7, 0x0d, 0x5f, 0x28, 0x33, 0x5c, 0xb4, 0xaf, 0x32, 0x85, 0x8e, 0x1b, 0x65,
        0x0a, 0xd2,
    ];
    assert_eq!(tag, expected);
}

#[test]
fn long_outputs_match_argon2_crate_ok() {
    // H' past 64 bytes (RFC 9106 §3.3): the 32-byte chunks and the variable-length last one.
    for len in [65, 95, 96, 97, 128, 129, 1000, 1024, 1025] {
        let args = (Version::V0x13, (1, 16, 2));
        assert_eq!(
            ours(args.0, args.1, b"pw", b"saltsalt", b"k", b"x", len),
            reference(args.0, args.1, b"pw", b"saltsalt", b"k", b"x", len),
            "len {len}"
        );
    }
}

#[test]
fn bad_parameters_fails() {
    assert_eq!(
        Argon2id::new(Version::V0x13, 0, 64, 1).unwrap_err(),
        Error::TimeCost
    );
    assert_eq!(
        Argon2id::new(Version::V0x13, 1, 64, 0).unwrap_err(),
        Error::Parallelism
    );
    assert_eq!(
        Argon2id::new(Version::V0x13, 1, 1 << 30, 1 << 24).unwrap_err(),
        Error::Parallelism
    );
    assert_eq!(
        Argon2id::new(Version::V0x13, 1, 15, 2).unwrap_err(),
        Error::MemoryCost
    );
    let a = Argon2id::new(Version::V0x13, 1, 16, 2).unwrap();
    assert_eq!(
        a.hash_into(b"pw", b"saltsalt", &mut [0u8; 3]),
        Err(Error::OutputLength)
    );
    assert_eq!(
        a.hash_into(b"pw", b"salt123", &mut [0u8; 32]),
        Err(Error::SaltLength)
    );
    // 4 TiB cannot be reserved (on 64-bit hosts the allocator refuses; on wasm32 the count
    // of 1 KiB blocks overflows the address space).
    let huge = Argon2id::new(Version::V0x13, 1, u32::MAX, 1).unwrap();
    assert_eq!(
        huge.hash_into(b"pw", b"saltsalt", &mut [0u8; 32]),
        Err(Error::OutOfMemory)
    );
    assert!(!format!("{:?}", a.with_secret(b"hidden")).contains("hidden"));
    assert!(!Error::OutOfMemory.to_string().is_empty());
}

fn costs() -> impl Strategy<Value = (u32, u32, u32)> {
    // t 1–4, p 1–8, m from 8·p to 4096 KiB (the ranges).
    (1u32..=4, 1u32..=8).prop_flat_map(|(t, p)| (Just(t), 8 * p..=4096, Just(p)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn matches_argon2_crate_ok(
        v13 in prop::bool::weighted(0.8),
        costs in costs(),
        password in prop::collection::vec(any::<u8>(), 0..=64),
        salt in prop::collection::vec(any::<u8>(), 8..=48),
        secret in prop::collection::vec(any::<u8>(), 0..=32),
        // The `argon2` crate caps associated data at 32 bytes.
        ad in prop::collection::vec(any::<u8>(), 0..=32),
        len in 4usize..=64,
    ) {
        let version = if v13 { Version::V0x13 } else { Version::V0x10 };
        prop_assert_eq!(
            ours(version, costs, &password, &salt, &secret, &ad, len),
            reference(version, costs, &password, &salt, &secret, &ad, len)
        );
    }
}
