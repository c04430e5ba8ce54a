//! The compression function G of RFC 9106 §3.5 and the permutation P of §3.6, on 2×u64 lanes.
//!
//! A 1024-byte block is 128 little-endian u64 words, held here as 64 [`Lanes`] of two words
//! each. Built for `wasm32` with `+simd128`, a [`Lanes`] is one `v128` register and every step
//! below is a single v128 instruction (or a short fixed sequence); everywhere else it is a pair
//! of `u64`s with the same methods, so the natively tested code *is* the code the npm module
//! runs, with only the eleven lane primitives swapped.
//!
//! The layout follows the reference implementation's SSE path (`blamka-round-opt.h`): a BLAKE2b
//! round works on a 4×4 matrix of words `v0..v15` as eight registers
//! `A0=[v0,v1] A1=[v2,v3] B0=[v4,v5] B1=[v6,v7] C0=[v8,v9] C1=[v10,v11] D0=[v12,v13]
//! D1=[v14,v15]`: the column step is `GB` applied lane-wise to (A0,B0,C0,D0) and (A1,B1,C1,D1);
//! the diagonal step rotates rows B, C, D by one, two and three words (register swaps and
//! "align" shuffles), applies the same `GB`, and rotates them back.

/// The number of 2-word lanes in a block (RFC 9106 §3: a block is 1024 bytes).
pub(crate) const LANES_PER_BLOCK: usize = 64;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::{
        i32x4_shuffle, i64x2_add, i64x2_shl, i64x2_shuffle, i8x16_shuffle, i8x16_swizzle, u64x2,
        u64x2_extmul_low_u32x4, u64x2_extract_lane, u64x2_shr, u8x16, v128, v128_or, v128_xor,
    };

    /// Swizzle indices gathering each word's low 32 bits into u32 lanes 0 and 1 (lanes 2 and 3
    /// zero: indices ≥ 16 select 0).
    const LOW_HALVES: v128 = u8x16(
        0, 1, 2, 3, 8, 9, 10, 11, 128, 128, 128, 128, 128, 128, 128, 128,
    );

    /// The swizzle mask of [`Lanes::blamka`], made opaque to LLVM once per hash. With a
    /// constant mask LLVM folds the swizzle into a shuffle, sees through it and rewrites the
    /// product as a full `i64x2.mul` of masked words, which V8 expands into three multiplies
    /// and shifts; with an opaque one it must emit the single widening multiply.
    #[derive(Clone, Copy)]
    pub(crate) struct MulMask(v128);

    impl MulMask {
        pub(crate) fn new() -> Self {
            Self(core::hint::black_box(LOW_HALVES))
        }
    }

    /// Two u64 words in one v128 register.
    #[derive(Clone, Copy)]
    pub(crate) struct Lanes(v128);

    impl Lanes {
        pub(crate) const ZERO: Self = Self(u64x2(0, 0));

        #[inline(always)]
        pub(crate) fn new(lo: u64, hi: u64) -> Self {
            Self(u64x2(lo, hi))
        }

        #[inline(always)]
        pub(crate) fn lo(self) -> u64 {
            u64x2_extract_lane::<0>(self.0)
        }

        #[inline(always)]
        pub(crate) fn hi(self) -> u64 {
            u64x2_extract_lane::<1>(self.0)
        }

        #[inline(always)]
        pub(crate) fn xor(self, o: Self) -> Self {
            Self(v128_xor(self.0, o.0))
        }

        /// RFC 9106 §3.6 `GB`'s addition: `x + y + 2 · trunc(x) · trunc(y)` per word, where
        /// `trunc` keeps the low 32 bits. The low halves are gathered into u32 lanes 0 and 1,
        /// then one widening multiply gives both 64-bit products (see [`MulMask`]).
        #[inline(always)]
        pub(crate) fn blamka(self, y: Self, k: MulMask) -> Self {
            let xl = i8x16_swizzle(self.0, k.0);
            let yl = i8x16_swizzle(y.0, k.0);
            let p = u64x2_extmul_low_u32x4(xl, yl);
            Self(i64x2_add(i64x2_add(self.0, y.0), i64x2_add(p, p)))
        }

        /// Rotate each word right by 32 bits: swap its u32 halves.
        #[inline(always)]
        pub(crate) fn rotr32(self) -> Self {
            Self(i32x4_shuffle::<1, 0, 3, 2>(self.0, self.0))
        }

        /// Rotate each word right by 24 bits: a byte shuffle.
        #[inline(always)]
        pub(crate) fn rotr24(self) -> Self {
            Self(i8x16_shuffle::<
                3,
                4,
                5,
                6,
                7,
                0,
                1,
                2,
                11,
                12,
                13,
                14,
                15,
                8,
                9,
                10,
            >(self.0, self.0))
        }

        /// Rotate each word right by 16 bits: a byte shuffle.
        #[inline(always)]
        pub(crate) fn rotr16(self) -> Self {
            Self(i8x16_shuffle::<
                2,
                3,
                4,
                5,
                6,
                7,
                0,
                1,
                10,
                11,
                12,
                13,
                14,
                15,
                8,
                9,
            >(self.0, self.0))
        }

        /// Rotate each word right by 63 bits, i.e. left by one.
        #[inline(always)]
        pub(crate) fn rotr63(self) -> Self {
            Self(v128_or(i64x2_shl(self.0, 1), u64x2_shr(self.0, 63)))
        }

        /// `[lo.hi, hi.lo]`: the two words straddling `lo` then `hi` (SSSE3's `alignr 8`).
        #[inline(always)]
        pub(crate) fn straddle(lo: Self, hi: Self) -> Self {
            Self(i64x2_shuffle::<1, 2>(lo.0, hi.0))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    /// Nothing to carry natively (the wasm build's multiply needs a mask).
    #[derive(Clone, Copy)]
    pub(crate) struct MulMask;

    impl MulMask {
        pub(crate) fn new() -> Self {
            Self
        }
    }

    /// Two u64 words: the portable stand-in for a v128 register, same methods.
    #[derive(Clone, Copy)]
    pub(crate) struct Lanes([u64; 2]);

    impl Lanes {
        pub(crate) const ZERO: Self = Self([0, 0]);

        #[inline(always)]
        pub(crate) fn new(lo: u64, hi: u64) -> Self {
            Self([lo, hi])
        }

        #[inline(always)]
        pub(crate) fn lo(self) -> u64 {
            self.0[0]
        }

        #[inline(always)]
        pub(crate) fn hi(self) -> u64 {
            self.0[1]
        }

        #[inline(always)]
        fn map(self, f: impl Fn(u64) -> u64) -> Self {
            Self([f(self.0[0]), f(self.0[1])])
        }

        #[inline(always)]
        fn zip(self, o: Self, f: impl Fn(u64, u64) -> u64) -> Self {
            Self([f(self.0[0], o.0[0]), f(self.0[1], o.0[1])])
        }

        #[inline(always)]
        pub(crate) fn xor(self, o: Self) -> Self {
            self.zip(o, |x, y| x ^ y)
        }

        /// RFC 9106 §3.6 `GB`'s addition: `x + y + 2 · trunc(x) · trunc(y)` per word.
        #[inline(always)]
        pub(crate) fn blamka(self, y: Self, _: MulMask) -> Self {
            self.zip(y, |x, y| {
                let p = (x & 0xffff_ffff).wrapping_mul(y & 0xffff_ffff);
                x.wrapping_add(y).wrapping_add(p.wrapping_add(p))
            })
        }

        #[inline(always)]
        pub(crate) fn rotr32(self) -> Self {
            self.map(|x| x.rotate_right(32))
        }

        #[inline(always)]
        pub(crate) fn rotr24(self) -> Self {
            self.map(|x| x.rotate_right(24))
        }

        #[inline(always)]
        pub(crate) fn rotr16(self) -> Self {
            self.map(|x| x.rotate_right(16))
        }

        #[inline(always)]
        pub(crate) fn rotr63(self) -> Self {
            self.map(|x| x.rotate_right(63))
        }

        /// `[lo.hi, hi.lo]`: the two words straddling `lo` then `hi`.
        #[inline(always)]
        pub(crate) fn straddle(lo: Self, hi: Self) -> Self {
            Self([lo.0[1], hi.0[0]])
        }
    }
}

pub(crate) use lanes::{Lanes, MulMask};

/// One 1024-byte block: words `2i` and `2i + 1` are lane `i`.
#[derive(Clone, Copy)]
pub(crate) struct Block(pub(crate) [Lanes; LANES_PER_BLOCK]);

impl Block {
    pub(crate) const ZERO: Self = Self([Lanes::ZERO; LANES_PER_BLOCK]);

    /// Word `i` (0..128) of the block.
    #[inline(always)]
    pub(crate) fn word(&self, i: usize) -> u64 {
        let l = self.0[(i / 2) % LANES_PER_BLOCK];
        if i.is_multiple_of(2) {
            l.lo()
        } else {
            l.hi()
        }
    }

    /// A block from 1024 little-endian bytes (RFC 9106 §3.2 step 5: H' output as a block).
    pub(crate) fn from_le_bytes(bytes: &[u8; 1024]) -> Self {
        let mut b = Self::ZERO;
        for (lane, chunk) in b.0.iter_mut().zip(bytes.chunks_exact(16)) {
            let mut lo = [0u8; 8];
            let mut hi = [0u8; 8];
            lo.copy_from_slice(&chunk[..8]);
            hi.copy_from_slice(&chunk[8..]);
            *lane = Lanes::new(u64::from_le_bytes(lo), u64::from_le_bytes(hi));
        }
        b
    }

    /// The block's 1024 little-endian bytes (RFC 9106 §3.2 step 7: C as H' input).
    pub(crate) fn to_le_bytes(self) -> [u8; 1024] {
        let mut out = [0u8; 1024];
        for (lane, chunk) in self.0.iter().zip(out.chunks_exact_mut(16)) {
            chunk[..8].copy_from_slice(&lane.lo().to_le_bytes());
            chunk[8..].copy_from_slice(&lane.hi().to_le_bytes());
        }
        out
    }

    /// `self ^= other`, lane by lane.
    #[inline(always)]
    pub(crate) fn xor_assign(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.xor(*b);
        }
    }
}

/// RFC 9106 §3.6 `GB` as two half-steps (rotations 32, 24 then 16, 63), on `N` independent
/// lanes at once: each step is issued for every lane before the next step, so the CPU overlaps
/// `N` dependency chains instead of waiting on one.
#[inline(always)]
fn gb<const N: usize>(
    a: &mut [Lanes; N],
    b: &mut [Lanes; N],
    c: &mut [Lanes; N],
    d: &mut [Lanes; N],
    k: MulMask,
) {
    for i in 0..N {
        a[i] = a[i].blamka(b[i], k);
    }
    for i in 0..N {
        d[i] = d[i].xor(a[i]).rotr32();
    }
    for i in 0..N {
        c[i] = c[i].blamka(d[i], k);
    }
    for i in 0..N {
        b[i] = b[i].xor(c[i]).rotr24();
    }
    for i in 0..N {
        a[i] = a[i].blamka(b[i], k);
    }
    for i in 0..N {
        d[i] = d[i].xor(a[i]).rotr16();
    }
    for i in 0..N {
        c[i] = c[i].blamka(d[i], k);
    }
    for i in 0..N {
        b[i] = b[i].xor(c[i]).rotr63();
    }
}

/// RFC 9106 §3.6 `P`: one BLAKE2b round without message words on 16 words held as
/// `s = [A0, A1, B0, B1, C0, C1, D0, D1]`: `GB` down the four columns of the 4×4 word matrix
/// (lane-wise on A, B, C, D), then down its four diagonals.
#[inline(always)]
fn permute(s: &mut [Lanes; 8], k: MulMask) {
    let [a0, a1, b0, b1, c0, c1, d0, d1] = *s;
    let (mut a, mut b, mut c, mut d) = ([a0, a1], [b0, b1], [c0, c1], [d0, d1]);
    // Columns: GB(v0, v4, v8, v12) … GB(v3, v7, v11, v15).
    gb(&mut a, &mut b, &mut c, &mut d, k);
    // Diagonals: GB(v0, v5, v10, v15), GB(v1, v6, v11, v12), GB(v2, v7, v8, v13),
    // GB(v3, v4, v9, v14): row B turns left one word, C two, D three…
    let turn = Lanes::straddle;
    let mut e = [turn(b[0], b[1]), turn(b[1], b[0])];
    let mut f = [c[1], c[0]];
    let mut h = [turn(d[1], d[0]), turn(d[0], d[1])];
    gb(&mut a, &mut e, &mut f, &mut h, k);
    // …and back.
    let (b, c, d) = (
        [turn(e[1], e[0]), turn(e[0], e[1])],
        [f[1], f[0]],
        [turn(h[0], h[1]), turn(h[1], h[0])],
    );
    *s = [a[0], a[1], b[0], b[1], c[0], c[1], d[0], d[1]];
}

/// RFC 9106 §3.5 compression `G(X, Y)` into `out` (its previous content is ignored):
/// `R = X ^ Y`; `Q = P` on the rows of `R` (eight 16-word rows); `Z = P` on the columns of `Q`
/// (column `i` is words `2i, 2i+1, 2i+16, 2i+17, …, 2i+113`); result `Z ^ R`. `R` is never
/// stored: the rows read `X ^ Y` and the last step reads `X` and `Y` again (both are in cache),
/// so no 1 KiB temporary is copied or cleared per block.
#[inline(always)]
pub(crate) fn compress(x: &Block, y: &Block, out: &mut Block, k: MulMask) {
    for ((xr, yr), row) in
        x.0.chunks_exact(8)
            .zip(y.0.chunks_exact(8))
            .zip(out.0.chunks_exact_mut(8))
    {
        let mut s: [Lanes; 8] = core::array::from_fn(|j| xr[j].xor(yr[j]));
        permute(&mut s, k);
        row.copy_from_slice(&s);
    }
    for i in 0..8 {
        let mut s: [Lanes; 8] = core::array::from_fn(|j| out.0[8 * j + i]);
        permute(&mut s, k);
        for (j, l) in s.into_iter().enumerate() {
            out.0[8 * j + i] = l;
        }
    }
    for ((o, a), b) in out.0.iter_mut().zip(x.0.iter()).zip(y.0.iter()) {
        *o = o.xor(a.xor(*b));
    }
}

/// `G(0, G(0, input))`: the address block of RFC 9106 §3.4.1.2 (data-independent indexing).
pub(crate) fn address_block(input: &Block, k: MulMask) -> Block {
    let mut once = Block::ZERO;
    compress(&Block::ZERO, input, &mut once, k);
    let mut twice = Block::ZERO;
    compress(&Block::ZERO, &once, &mut twice, k);
    twice
}
