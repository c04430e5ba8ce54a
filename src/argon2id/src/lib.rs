//! Argon2id (RFC 9106) for keygate, fast in WebAssembly.
//!
//! The `argon2` crate has a SIMD compression only for x86 AVX2; in wasm it runs scalar 64-bit
//! code. Here the compression ([`blamka`], RFC 9106 §3.5–3.6) works on 2×u64 lanes that are
//! `core::arch::wasm32` v128 registers when built with `-C target-feature=+simd128` (the npm
//! module) and plain `[u64; 2]` otherwise (native, the Envoy filter): the same code either way.
//!
//! Only Argon2id is implemented, versions 0x13 (current) and 0x10 (old hashes still verify).
//! PHC strings, parameter policy and constant-time tag comparison stay in `keygate::password`.
//! Memory is one `Vec` allocated fallibly: too much memory is an error, not an abort.
//! Lanes are filled one after another (single thread, as wasm runs it).

#![forbid(unsafe_code)]

mod blamka;

use blake2::digest::block_api::{Buffer, UpdateCore, VariableOutputCore};
use blake2::{Blake2b512, Blake2bVarCore, Digest};
use blamka::{address_block, compress, Block, Lanes, MulMask};

/// Argon2 version (RFC 9106 §3.1 `v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// Version 16: blocks of later passes are overwritten, not XORed.
    V0x10,
    /// Version 19 (RFC 9106's): the default.
    #[default]
    V0x13,
}

impl From<Version> for u32 {
    fn from(v: Version) -> Self {
        match v {
            Version::V0x10 => 0x10,
            Version::V0x13 => 0x13,
        }
    }
}

/// Why an Argon2id computation did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `t_cost` is 0.
    TimeCost,
    /// `p_cost` is 0 or over 2^24 − 1.
    Parallelism,
    /// `m_cost` is under 8 × `p_cost` KiB.
    MemoryCost,
    /// The tag is shorter than 4 bytes.
    OutputLength,
    /// The salt is shorter than 8 bytes.
    SaltLength,
    /// An input is longer than 2^32 − 1 bytes.
    InputTooLong,
    /// The memory could not be allocated.
    OutOfMemory,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TimeCost => "argon2id: t_cost must be at least 1",
            Self::Parallelism => "argon2id: p_cost must be between 1 and 2^24 - 1",
            Self::MemoryCost => "argon2id: m_cost must be at least 8 KiB per lane",
            Self::OutputLength => "argon2id: the output must be at least 4 bytes",
            Self::SaltLength => "argon2id: the salt must be at least 8 bytes",
            Self::InputTooLong => "argon2id: inputs are limited to 2^32 - 1 bytes",
            Self::OutOfMemory => "argon2id: memory could not be allocated",
        })
    }
}

impl std::error::Error for Error {}

/// Argon2id with fixed costs and optional secret `K` / associated data `X` (RFC 9106 §3.1).
#[derive(Clone, Copy)]
pub struct Argon2id<'k> {
    version: Version,
    t_cost: u32,
    m_cost: u32,
    p_cost: u32,
    secret: &'k [u8],
    associated_data: &'k [u8],
}

// The secret stays out of logs.
impl core::fmt::Debug for Argon2id<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Argon2id")
            .field("version", &self.version)
            .field("t_cost", &self.t_cost)
            .field("m_cost", &self.m_cost)
            .field("p_cost", &self.p_cost)
            .finish_non_exhaustive()
    }
}

/// Argon2's `y` for Argon2id (RFC 9106 §3.1).
const TYPE_ID: u32 = 2;
/// Slices per pass (RFC 9106 §3.4: `SL = 4`).
const SYNC_POINTS: u32 = 4;
/// Pseudo-random words per address block (RFC 9106 §3.4.1.2).
const ADDRESSES_PER_BLOCK: u32 = 128;

impl<'k> Argon2id<'k> {
    /// Largest `p_cost` (RFC 9106 §3.1: 2^24 − 1 lanes).
    pub const MAX_P_COST: u32 = 0x00ff_ffff;

    /// `t_cost` passes over `m_cost` KiB in `p_cost` lanes.
    ///
    /// # Errors
    /// [`Error::TimeCost`], [`Error::Parallelism`] or [`Error::MemoryCost`] when outside
    /// RFC 9106's bounds (`t ≥ 1`, `1 ≤ p < 2^24`, `m ≥ 8p`).
    pub const fn new(
        version: Version,
        t_cost: u32,
        m_cost: u32,
        p_cost: u32,
    ) -> Result<Self, Error> {
        if t_cost == 0 {
            return Err(Error::TimeCost);
        }
        if p_cost == 0 || p_cost > Self::MAX_P_COST {
            return Err(Error::Parallelism);
        }
        if (m_cost as u64) < 8 * (p_cost as u64) {
            return Err(Error::MemoryCost);
        }
        Ok(Self {
            version,
            t_cost,
            m_cost,
            p_cost,
            secret: &[],
            associated_data: &[],
        })
    }

    /// The same, keyed with `secret` (`K`, a pepper).
    #[must_use]
    pub const fn with_secret(self, secret: &'k [u8]) -> Self {
        Self { secret, ..self }
    }

    /// The same, with associated data `X`.
    #[must_use]
    pub const fn with_associated_data(self, associated_data: &'k [u8]) -> Self {
        Self {
            associated_data,
            ..self
        }
    }

    /// Hashes `password` with `salt` into `out` (the tag length `T` is `out.len()`).
    ///
    /// # Errors
    /// [`Error::OutputLength`] for `out` under 4 bytes, [`Error::SaltLength`] for a salt under
    /// 8 bytes, [`Error::InputTooLong`] for any input or `out` over 2^32 − 1 bytes,
    /// [`Error::OutOfMemory`] when the `m_cost` KiB cannot be allocated.
    pub fn hash_into(&self, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), Error> {
        if out.len() < 4 {
            return Err(Error::OutputLength);
        }
        if salt.len() < 8 {
            return Err(Error::SaltLength);
        }
        let len32 = |b: &[u8]| u32::try_from(b.len()).map_err(|_| Error::InputTooLong);
        let tag_len = len32(out)?;

        // RFC 9106 §3.2 step 1: H0 = H^64(LE32(p) || LE32(T) || LE32(m) || LE32(t) || LE32(v)
        // || LE32(y) || LE32(len P) || P || LE32(len S) || S || LE32(len K) || K || LE32(len X) || X).
        let mut h = Blake2b512::new();
        for word in [
            self.p_cost,
            tag_len,
            self.m_cost,
            self.t_cost,
            u32::from(self.version),
            TYPE_ID,
        ] {
            Digest::update(&mut h, word.to_le_bytes());
        }
        for field in [password, salt, self.secret, self.associated_data] {
            Digest::update(&mut h, len32(field)?.to_le_bytes());
            Digest::update(&mut h, field);
        }
        let mut h0 = [0u8; 64];
        h0.copy_from_slice(&h.finalize());

        // Step 2: m' = 4 · p · floor(m / 4p) blocks; q = m' / p columns per lane.
        let lanes = self.p_cost;
        let segment_len = self.m_cost / (SYNC_POINTS * lanes);
        let lane_len = segment_len * SYNC_POINTS;
        let blocks = lane_len * lanes;
        let count = usize::try_from(blocks).map_err(|_| Error::OutOfMemory)?;
        let mut memory: Vec<Block> = Vec::new();
        memory
            .try_reserve_exact(count)
            .map_err(|_| Error::OutOfMemory)?;
        memory.resize(count, Block::ZERO);
        let geometry = Geometry {
            lanes,
            segment_len,
            lane_len,
            blocks,
            passes: self.t_cost,
            xor_later_passes: self.version == Version::V0x13,
        };

        // Steps 3–4: B[i][0] = H'^1024(H0 || LE32(0) || LE32(i)), B[i][1] likewise with 1.
        let mut bytes = [0u8; 1024];
        for lane in 0..lanes {
            for column in 0..2u32 {
                h_prime(
                    &mut bytes,
                    &[&h0, &column.to_le_bytes(), &lane.to_le_bytes()],
                );
                let i = geometry.index(lane, column);
                memory[i] = Block::from_le_bytes(&bytes);
            }
        }

        // Steps 5–6: every pass, slice by slice (the sync points), each lane's segment.
        let mut scratch = Block::ZERO;
        for pass in 0..self.t_cost {
            for slice in 0..SYNC_POINTS {
                for lane in 0..lanes {
                    geometry.fill_segment(&mut memory, &mut scratch, pass, slice, lane);
                }
            }
        }

        // Step 7: C = XOR of every lane's last block; tag = H'^T(C).
        let mut c = memory[geometry.index(0, lane_len - 1)];
        for lane in 1..lanes {
            c.xor_assign(&memory[geometry.index(lane, lane_len - 1)]);
        }
        h_prime(out, &[&c.to_le_bytes()]);
        Ok(())
    }
}

/// The shape of the memory matrix, fixed per hash.
struct Geometry {
    lanes: u32,
    segment_len: u32,
    lane_len: u32,
    blocks: u32,
    passes: u32,
    xor_later_passes: bool,
}

impl Geometry {
    /// Index of `B[lane][column]` in the flat memory (lane-major).
    #[inline(always)]
    fn index(&self, lane: u32, column: u32) -> usize {
        (lane * self.lane_len + column) as usize
    }

    /// RFC 9106 §3.4: compute the segment `slice` of `lane` in pass `pass`.
    fn fill_segment(
        &self,
        memory: &mut [Block],
        scratch: &mut Block,
        pass: u32,
        slice: u32,
        lane: u32,
    ) {
        // §3.4.1.3 (Argon2id): data-independent indexing in the first two slices of pass 0.
        let independent = pass == 0 && slice < SYNC_POINTS / 2;
        // §3.4.1.2: Z = LE64(r) || LE64(l) || LE64(sl) || LE64(m') || LE64(t) || LE64(y) ||
        // LE64(counter) || zeros; the counter is the word at index 6 (lane 3, low half).
        let mut input = Block::ZERO;
        let mut addresses = Block::ZERO;
        if independent {
            input.0[0] = Lanes::new(u64::from(pass), u64::from(lane));
            input.0[1] = Lanes::new(u64::from(slice), u64::from(self.blocks));
            input.0[2] = Lanes::new(u64::from(self.passes), u64::from(TYPE_ID));
        }
        let mut counter = 0u64;
        let k = MulMask::new();
        let mut next_addresses = |input: &mut Block| {
            counter += 1;
            input.0[3] = Lanes::new(counter, 0);
            address_block(input, k)
        };

        // The first two blocks of each lane come from H0 (steps 3–4).
        let first = if pass == 0 && slice == 0 { 2 } else { 0 };
        if independent && first != 0 {
            addresses = next_addresses(&mut input);
        }
        for index in first..self.segment_len {
            let column = slice * self.segment_len + index;
            let current = self.index(lane, column);
            // The previous block wraps to the lane's last column at column 0.
            let previous = if column == 0 {
                self.index(lane, self.lane_len - 1)
            } else {
                current - 1
            };
            let pseudo_rand = if independent {
                if index.is_multiple_of(ADDRESSES_PER_BLOCK) {
                    addresses = next_addresses(&mut input);
                }
                addresses.word((index % ADDRESSES_PER_BLOCK) as usize)
            } else {
                // §3.4.1.1: J1 || J2 from the first word of the previous block.
                memory[previous].0[0].lo()
            };
            let (ref_lane, ref_column) = self.reference(pseudo_rand, pass, slice, lane, index);

            // §3.2 step 6: B[i][j] = G(B[i][j-1], B[l][z]) (XORed into the old block after
            // the first pass, version 0x13).
            let reference = self.index(ref_lane, ref_column);
            compress(&memory[previous], &memory[reference], scratch, k);
            if pass > 0 && self.xor_later_passes {
                memory[current].xor_assign(scratch);
            } else {
                memory[current] = *scratch;
            }
        }
    }

    /// RFC 9106 §3.4.1.1 / §3.4.2: the lane and column of the reference block for block
    /// `index` of the segment, from the pseudo-random word `J1 || J2` (J1 the low half).
    #[inline(always)]
    fn reference(
        &self,
        pseudo_rand: u64,
        pass: u32,
        slice: u32,
        lane: u32,
        index: u32,
    ) -> (u32, u32) {
        let j1 = pseudo_rand & 0xffff_ffff;
        let j2 = pseudo_rand >> 32;
        // l = J2 mod p, except in the first slice of the first pass: the current lane.
        let ref_lane = if pass == 0 && slice == 0 {
            lane
        } else {
            (j2 % u64::from(self.lanes)) as u32
        };
        let same_lane = ref_lane == lane;
        // The set W: blocks already computed and not overwritten in this pass, minus the
        // previous block; other lanes only up to the end of the last finished segment.
        let finished = if pass == 0 {
            slice * self.segment_len
        } else {
            self.lane_len - self.segment_len
        };
        let area = if same_lane {
            finished + index - 1
        } else if index == 0 {
            finished - 1
        } else {
            finished
        };
        // x = J1^2 / 2^32; y = (|W| · x) / 2^32; zz = |W| − 1 − y.
        let x = (j1 * j1) >> 32;
        let y = (u64::from(area) * x) >> 32;
        let relative = u64::from(area) - 1 - y;
        // W starts after the current slice's segment in later passes (wrapping).
        let start = if pass == 0 || slice == SYNC_POINTS - 1 {
            0
        } else {
            (slice + 1) * self.segment_len
        };
        let column = (u64::from(start) + relative) % u64::from(self.lane_len);
        (ref_lane, column as u32)
    }
}

/// RFC 9106 §3.3 variable-length hash `H'^T` of the concatenated `input`, `T = out.len()`.
fn h_prime(out: &mut [u8], input: &[&[u8]]) {
    // The tag length prefixes the input; callers bound it to u32.
    let t = (out.len() as u32).to_le_bytes();
    if out.len() <= 64 {
        blake2b_var(out, core::iter::once(&t[..]).chain(input.iter().copied()));
        return;
    }
    // V1 = H^64(LE32(T) || A); V(i+1) = H^64(V(i)); out = W1 || … || Wr || V(r+1) where W is
    // the first 32 bytes of V and V(r+1) = H^(T − 32r)(V(r)), r = ceil(T / 32) − 2.
    let mut h = Blake2b512::new();
    Digest::update(&mut h, t);
    for part in input {
        Digest::update(&mut h, part);
    }
    let mut v = [0u8; 64];
    v.copy_from_slice(&h.finalize());
    let mut pos = 0;
    while out.len() - pos > 64 {
        out[pos..pos + 32].copy_from_slice(&v[..32]);
        pos += 32;
        if out.len() - pos > 64 {
            let next = Blake2b512::digest(v);
            v.copy_from_slice(&next);
        }
    }
    blake2b_var(&mut out[pos..], core::iter::once(&v[..]));
}

/// BLAKE2b with digest length `out.len()` (1..=64; a parameter of BLAKE2b, not a truncation).
fn blake2b_var<'a>(out: &mut [u8], parts: impl Iterator<Item = &'a [u8]>) {
    // 1..=64 is guaranteed by the callers, so `new` succeeds.
    if let Ok(mut core) = Blake2bVarCore::new(out.len()) {
        let mut buffer: Buffer<Blake2bVarCore> = Buffer::<Blake2bVarCore>::default();
        for part in parts {
            buffer.digest_blocks(part, |blocks| core.update_blocks(blocks));
        }
        let mut full = Default::default();
        core.finalize_variable_core(&mut buffer, &mut full);
        out.copy_from_slice(&full[..out.len()]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
