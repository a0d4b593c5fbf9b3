//! The AVX-512-BF16 kernel: `vdpbf16ps` adds the products of two bf16 pairs
//! into each `f32` lane, twice the products of an `f32` FMA per instruction.
//! `A` is packed row by row (as it usually lies, so packing is a straight
//! conversion), and one broadcast of an `A` pair, read from each of the
//! tile's rows in turn, meets 32 columns of `B` in two instructions; each
//! [`MR`]×[`NR`] tile of `C` is summed over the block's `k` in registers,
//! then written once.

use super::{pack, ALayout, PackedA, TileProduct, View, NR};

/// Rows of `C` per tile: 12 rows × 2 registers = 24 accumulators, with two
/// `B` registers and a broadcast, within AVX-512's 32.
const MR: usize = 12;
// A tile fits the bf16 destination's buffer, and bf16 rows hold whole tiles.
const _: () = assert!(MR <= super::MAX_MR && super::rows::ROW_TILES.is_multiple_of(MR));

/// The kernel, made only where the CPU runs it.
pub(super) struct Avx512(());

impl Avx512 {
    pub(super) fn new() -> Option<Self> {
        usable().then_some(Avx512(()))
    }
}

/// Whether this CPU has AVX-512F and AVX-512-BF16.
pub(super) fn usable() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl TileProduct for Avx512 {
    const MR: usize = MR;
    /// Eight row tiles share each panel of B (`KC` × [`NR`] pairs, 32 KiB)
    /// while it is in L1.
    const GROUP: usize = 8;
    /// A tile's 24 sums take two panel rows (128 bytes) a step, which L2
    /// feeds: a whole BERT `k` (up to 2,048) in one block.
    const KC: usize = 1024;
    type Task = ();

    fn padded(pairs: usize) -> usize {
        pairs
    }

    /// Row by row, except a transposed `A` (the weight gradient's `xᵀ`):
    /// pair by pair, each pair's [`MR`] rows side by side, as its lines of
    /// `k` convert straight into them.
    fn pack_a(a: View, m: usize, k: usize, pairs: usize) -> PackedA {
        if a.1 == 1 && a.2 != 1 {
            return PackedA {
                data: pack::pack_a_pairs(a, m, k, MR, pairs),
                layout: ALayout { row: 1, pair: MR },
            };
        }
        PackedA {
            data: pack::pack_a_rows(a, m, k, MR, pairs),
            layout: ALayout::rows(pairs),
        }
    }

    fn task(&self) {}

    fn tile(
        &self,
        _: &mut (),
        a: (&[u32], ALayout),
        b: &[u32],
        pairs: usize,
        out: &mut [f32],
        onto: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx512` exists only where the CPU has the features.
        unsafe {
            tile_kernel(a, b, pairs, out, onto)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (a, b, pairs, out, onto);
    }
}

/// One tile: `out[r][c] = Σ_p a[r][p] · b[p][c]` over `pairs` pairs, with
/// `a` [`MR`] rows of `pairs` (pair `p` of row `r` at `r * row + p * pair`)
/// and `b` `pairs` rows of [`NR`]; with `onto`, the sums start from `out`'s.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_kernel(
    (a, at): (&[u32], ALayout),
    b: &[u32],
    pairs: usize,
    out: &mut [f32],
    onto: bool,
) {
    use std::arch::x86_64::*;
    assert!(
        (pairs == 0 || a.len() > (MR - 1) * at.row + (pairs - 1) * at.pair)
            && b.len() >= NR * pairs
            && out.len() >= MR * NR,
        "bf16 tile: operands shorter than {pairs} pairs"
    );
    // SAFETY: `out` holds MR rows of NR = 32 values (asserted above).
    let mut acc: [__m512; 2 * MR] = std::array::from_fn(|i| {
        if onto {
            unsafe { _mm512_loadu_ps(out.as_ptr().add(i * 16)) }
        } else {
            _mm512_setzero_ps()
        }
    });
    for p in 0..pairs {
        // SAFETY: `p * NR + 32 <= pairs * NR <= b.len()` (asserted above).
        let (b0, b1) = unsafe {
            let at = b.as_ptr().add(p * NR);
            (
                _mm512_loadu_si512(at.cast()),
                _mm512_loadu_si512(at.add(16).cast()),
            )
        };
        // Same 512 bits, read as 32 bf16 values.
        let (b0, b1): (__m512bh, __m512bh) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(b0),
                std::mem::transmute::<__m512i, __m512bh>(b1),
            )
        };
        for r in 0..MR {
            // SAFETY: `r * at.row + p * at.pair < a.len()` (asserted above).
            let pair = unsafe { *a.get_unchecked(r * at.row + p * at.pair) };
            let pair = _mm512_set1_epi32(pair as i32);
            let pair = unsafe { std::mem::transmute::<__m512i, __m512bh>(pair) };
            acc[2 * r] = _mm512_dpbf16_ps(acc[2 * r], pair, b0);
            acc[2 * r + 1] = _mm512_dpbf16_ps(acc[2 * r + 1], pair, b1);
        }
    }
    for (r, row) in out.chunks_exact_mut(NR).take(MR).enumerate() {
        // SAFETY: each row of `out` holds NR = 32 values.
        unsafe {
            _mm512_storeu_ps(row.as_mut_ptr(), acc[2 * r]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc[2 * r + 1]);
        }
    }
}
