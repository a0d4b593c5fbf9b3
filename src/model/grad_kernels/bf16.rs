//! Matrix products with bf16 inputs and `f32` sums, for `--precision bf16`:
//! both operands rounded to bf16 (to nearest even, as PyTorch's autocast
//! does) and multiplied with AVX-512-BF16's `vdpbf16ps`, which adds the
//! products of two bf16 pairs into each `f32` lane: twice the products of an
//! `f32` FMA per instruction. The sums and the result stay `f32`.
//!
//! Layout: `A` is packed as bf16 pairs along `k` (one `u32` per pair, the
//! even `k` in the low half), `B` in panels of [`NR`] columns with the same
//! pairs, so one broadcast of an `A` pair meets 16 columns of `B` per
//! instruction. Each [`MR`]×[`NR`] tile of `C` is summed over all of `k` in
//! registers, then written once.

use candle_core::bail;
use rayon::prelude::*;

use super::View;

/// Rows of `C` per tile: 12 rows × 2 registers = 24 accumulators, with two
/// `B` registers and a broadcast, within AVX-512's 32.
const MR: usize = 12;
/// Columns of `C` per tile: two 16-lane registers.
const NR: usize = 32;
/// Pairs of `k` per block: a panel of B (`KC` × [`NR`] pairs, 32 KiB) fits L1.
const KC: usize = 256;
/// Row tiles that share each panel of B while it is in L1.
const GROUP: usize = 8;

/// Whether this CPU multiplies bf16 (AVX-512-BF16).
pub fn available() -> bool {
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

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits; a NaN
/// stays a (quiet) NaN.
#[inline]
fn to_bf16(x: f32) -> u32 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) | 0x40;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round)) >> 16
}

/// `A[m, k]` tile by tile: tile `t`, pair `p`, row `r` at
/// `(t * pairs + p) * MR + r` (a tile's rows side by side, as the kernel
/// broadcasts them); padding is zero.
fn pack_a(a: View, m: usize, k: usize, tiles: usize, pairs: usize) -> Vec<u32> {
    let mut out = vec![0u32; tiles * pairs * MR];
    out.par_chunks_mut((pairs * MR).max(1))
        .enumerate()
        .for_each(|(t, tile)| {
            let rows = MR.min(m - t * MR);
            let (data, rs, cs) = a;
            if cs == 1 {
                // Each row's k values are contiguous: pairs straight from them.
                for r in 0..rows {
                    let row = &data[(t * MR + r) * rs..][..k];
                    pairs_of_run(row, &mut tile[r..], MR);
                }
            } else if rs == 1 {
                // Each k's rows are contiguous: two k at a time, the tile's rows side by side.
                let lines = Lines {
                    data,
                    stride: cs,
                    start: t * MR,
                    len: rows,
                    k,
                };
                pairs_of_lines(lines, tile, MR);
            } else {
                for r in 0..rows {
                    for (p, pair) in tile[r..].iter_mut().step_by(MR).take(pairs).enumerate() {
                        let at = |kk: usize| data[(t * MR + r) * rs + kk * cs];
                        *pair = pair_of(at(2 * p), (2 * p + 1 < k).then(|| at(2 * p + 1)));
                    }
                }
            }
        });
    out
}

/// `B[k, n]` in panels of [`NR`] columns: panel `j`, pair `p`, column `c` at
/// `(j * pairs + p) * NR + c`; padding is zero.
fn pack_b(b: View, k: usize, n: usize, panels: usize, pairs: usize) -> Vec<u32> {
    let mut out = vec![0u32; panels * pairs * NR];
    out.par_chunks_mut((pairs * NR).max(1))
        .enumerate()
        .for_each(|(j, panel)| {
            let cols = NR.min(n - j * NR);
            let (data, rs, cs) = b;
            if cs == 1 {
                let lines = Lines {
                    data,
                    stride: rs,
                    start: j * NR,
                    len: cols,
                    k,
                };
                pairs_of_lines(lines, panel, NR);
            } else if rs == 1 {
                for c in 0..cols {
                    let column = &data[(j * NR + c) * cs..][..k];
                    pairs_of_run(column, &mut panel[c..], NR);
                }
            } else {
                for c in 0..cols {
                    for (p, pair) in panel[c..].iter_mut().step_by(NR).take(pairs).enumerate() {
                        let at = |kk: usize| data[kk * rs + (j * NR + c) * cs];
                        *pair = pair_of(at(2 * p), (2 * p + 1 < k).then(|| at(2 * p + 1)));
                    }
                }
            }
        });
    out
}

/// Two values as one bf16 pair (the second zero when absent).
#[inline]
fn pair_of(first: f32, second: Option<f32>) -> u32 {
    to_bf16(first) | second.map_or(0, to_bf16) << 16
}

/// The pairs of a contiguous run of `k` values (`run[2p]`, `run[2p + 1]`),
/// pair `p` written to `out[p * stride]`.
fn pairs_of_run(run: &[f32], out: &mut [u32], stride: usize) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has the features `vector` was compiled for.
        done = unsafe { vector::pairs_of_run(run, out, stride) };
    }
    let pairs = run.len().div_ceil(2);
    for p in done..pairs {
        out[p * stride] = pair_of(run[2 * p], run.get(2 * p + 1).copied());
    }
}

/// `k` lines of `len` contiguous values, line `kk` from
/// `data[kk * stride + start]`.
#[derive(Clone, Copy)]
struct Lines<'a> {
    data: &'a [f32],
    stride: usize,
    start: usize,
    len: usize,
    k: usize,
}

impl Lines<'_> {
    fn line(&self, kk: usize) -> Option<&[f32]> {
        (kk < self.k).then(|| &self.data[kk * self.stride + self.start..][..self.len])
    }
}

/// Pair `p` of lines 2p and 2p + 1, value by value, to `out[p * width..][..len]`
/// (the second zero past the last line).
fn pairs_of_lines(lines: Lines, out: &mut [u32], width: usize) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has the features `vector` was compiled for.
        unsafe { vector::pairs_of_lines(lines, out, width) };
        return;
    }
    for (p, dst) in out.chunks_exact_mut(width).enumerate() {
        let (Some(first), second) = (lines.line(2 * p), lines.line(2 * p + 1)) else {
            break;
        };
        for (c, v) in dst[..lines.len].iter_mut().enumerate() {
            *v = pair_of(first[c], second.map(|s| s[c]));
        }
    }
}

/// The packing loops on AVX-512-BF16 (`vcvtne2ps2bf16` rounds to nearest
/// even, as `to_bf16` does); each returns how far it got, the caller does
/// the rest.
#[cfg(target_arch = "x86_64")]
mod vector {
    use std::arch::x86_64::*;

    /// Whole blocks of 32 values of `run` as 16 pairs each.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn pairs_of_run(run: &[f32], out: &mut [u32], stride: usize) -> usize {
        let blocks = run.len() / 32;
        let mut pairs = [0u32; 16];
        for block in 0..blocks {
            let values = &run[block * 32..block * 32 + 32];
            // SAFETY: `values` holds 32 floats; `pairs` 16 u32 (64 bytes).
            unsafe {
                let lo = _mm512_loadu_ps(values.as_ptr());
                let hi = _mm512_loadu_ps(values.as_ptr().add(16));
                let both = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(pairs.as_mut_ptr().cast(), both);
            }
            for (i, &pair) in pairs.iter().enumerate() {
                out[(block * 16 + i) * stride] = pair;
            }
        }
        blocks * 16
    }

    /// Every pair of lines, 16 values at a time (the last block masked).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn pairs_of_lines(lines: super::Lines, out: &mut [u32], width: usize) {
        let n = lines.len;
        assert!(n <= width, "bf16 packing: lines wider than their slots");
        for (p, dst) in out.chunks_exact_mut(width).enumerate() {
            let (Some(first), second) = (lines.line(2 * p), lines.line(2 * p + 1)) else {
                break;
            };
            for at in (0..n).step_by(16) {
                let mask: __mmask16 = if n - at >= 16 {
                    0xffff
                } else {
                    (1u16 << (n - at)) - 1
                };
                // SAFETY: each line holds `n` values and `dst` at least `n`
                // (`n <= width`); the mask lets through only those below `n`.
                unsafe {
                    let widen = |values: __m512| {
                        let half =
                            std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(values));
                        _mm512_cvtepu16_epi32(half)
                    };
                    let lo = widen(_mm512_maskz_loadu_ps(mask, first.as_ptr().add(at)));
                    let pair = match second {
                        Some(s) => {
                            let hi = widen(_mm512_maskz_loadu_ps(mask, s.as_ptr().add(at)));
                            _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi))
                        }
                        None => lo,
                    };
                    _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(at).cast(), mask, pair);
                }
            }
        }
    }
}

/// One tile: `tile[r][c] = Σ_p a[p][r] · b[p][c]` over `pairs` pairs, with
/// `a` `pairs` rows of [`MR`] and `b` `pairs` rows of [`NR`].
///
/// # Safety
/// The CPU has AVX-512F and AVX-512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_kernel(a: &[u32], b: &[u32], pairs: usize, tile: &mut [f32; MR * NR]) {
    use std::arch::x86_64::*;
    assert!(
        a.len() >= MR * pairs && b.len() >= NR * pairs,
        "bf16 tile: operands shorter than {pairs} pairs"
    );
    let mut acc = [_mm512_setzero_ps(); 2 * MR];
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
            let pair = _mm512_set1_epi32(a[p * MR + r] as i32);
            let pair = unsafe { std::mem::transmute::<__m512i, __m512bh>(pair) };
            acc[2 * r] = _mm512_dpbf16_ps(acc[2 * r], pair, b0);
            acc[2 * r + 1] = _mm512_dpbf16_ps(acc[2 * r + 1], pair, b1);
        }
    }
    for (r, row) in tile.chunks_exact_mut(NR).enumerate() {
        // SAFETY: each row of `tile` holds NR = 32 values.
        unsafe {
            _mm512_storeu_ps(row.as_mut_ptr(), acc[2 * r]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc[2 * r + 1]);
        }
    }
}

/// `C`'s values as a pointer the row tiles share: each writes rows of its own.
#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: the tiles running in parallel write disjoint elements (checked
// layout, disjoint row ranges), and `gemm` keeps `C` borrowed until they end.
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Dst {
    /// The element `at` values in (a method, so that closures capture the
    /// whole `Dst`, not its raw pointer).
    ///
    /// # Safety
    /// `at` is within the destination.
    unsafe fn at(&self, at: usize) -> *mut f32 {
        unsafe { self.0.add(at) }
    }
}

/// `C[m, n] (+)= A[m, k] · B[k, n]` with the products in bf16 and the sums
/// in `f32`; `C` at strides `(rs, cs)` (row-major, or transposed). Fails on
/// a CPU without AVX-512-BF16 and on operands their strides overrun.
pub fn gemm(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (&mut [f32], usize, usize),
    accumulate: bool,
    a: View,
    b: View,
) -> candle_core::Result<()> {
    if !available() {
        bail!("bf16 products need a CPU with AVX-512-BF16");
    }
    let reach = |len: usize, rs: usize, cs: usize, rows: usize, cols: usize| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    let operand = |(data, rs, cs): View, rows, cols| reach(data.len(), rs, cs, rows, cols);
    if !reach(dst.len(), dst_rs, dst_cs, m, n) || !operand(a, m, k) || !operand(b, k, n) {
        bail!("bf16 matmul: operands smaller than their shapes");
    }
    // Distinct (row, column) pairs must be distinct elements of `C`, or two
    // tiles could write the same value at once.
    let row_major = dst_cs == 1 && dst_rs >= n;
    let col_major = dst_rs == 1 && dst_cs >= m;
    if m > 1 && n > 1 && !row_major && !col_major {
        bail!("bf16 matmul: the destination's strides ({dst_rs}, {dst_cs}) overlap");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let tiles = m.div_ceil(MR);
    let panels = n.div_ceil(NR);
    let out = Dst(dst.as_mut_ptr());
    let (a_data, a_rs, a_cs) = a;
    let (b_data, b_rs, b_cs) = b;
    // `k` in blocks of KC pairs, so that a block of B stays in the caches
    // while the row tiles pass over it; every block after the first adds.
    for (block, k0) in (0..k).step_by(2 * KC).enumerate() {
        let kc = (2 * KC).min(k - k0);
        let pairs = kc.div_ceil(2);
        let a_block = (&a_data[k0 * a_cs..], a_rs, a_cs);
        let b_block = (&b_data[k0 * b_rs..], b_rs, b_cs);
        let packed_a = pack_a(a_block, m, kc, tiles, pairs);
        let packed_b = pack_b(b_block, kc, n, panels, pairs);
        let add = accumulate || block > 0;
        // Groups of row tiles: each panel of B is read once per group and
        // meets all of its tiles while it is in L1.
        let groups: Vec<usize> = (0..tiles).step_by(GROUP).collect();
        groups.into_par_iter().for_each(|first_tile| {
            let mut tile = [0f32; MR * NR];
            let group = first_tile..tiles.min(first_tile + GROUP);
            for j in 0..panels {
                let b_panel = &packed_b[j * pairs * NR..(j + 1) * pairs * NR];
                for t in group.clone() {
                    let a_tile = &packed_a[t * MR * pairs..(t + 1) * MR * pairs];
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `available()` checked the CPU's features above.
                    unsafe {
                        tile_kernel(a_tile, b_panel, pairs, &mut tile)
                    };
                    let place = Place {
                        row: t * MR,
                        col: j * NR,
                        rows: MR.min(m - t * MR),
                        cols: NR.min(n - j * NR),
                    };
                    // SAFETY: the reach and layout checks above; this group
                    // alone writes the rows of tile `t`.
                    unsafe { write_tile(&tile, place, (out, dst_rs, dst_cs), add) };
                }
            }
        });
    }
    Ok(())
}

/// Where a tile goes in `C`: its first row and column, and how many of its
/// rows and columns are inside `C`.
#[derive(Clone, Copy)]
struct Place {
    row: usize,
    col: usize,
    rows: usize,
    cols: usize,
}

/// A tile written to (or, with `add`, added into) `C` at strides `(rs, cs)`.
///
/// # Safety
/// Every element of the placed tile is within `C`, and no other thread
/// writes those elements meanwhile.
unsafe fn write_tile(
    tile: &[f32; MR * NR],
    at: Place,
    (out, rs, cs): (Dst, usize, usize),
    add: bool,
) {
    if rs == 1 {
        // A transposed C: each column's rows are contiguous.
        for c in 0..at.cols {
            let first = at.row + (at.col + c) * cs;
            // SAFETY: `first..first + rows` is this column's part of the
            // tile's place in `C` (the caller's promise).
            let column = unsafe { std::slice::from_raw_parts_mut(out.at(first), at.rows) };
            for (r, d) in column.iter_mut().enumerate() {
                let v = tile[r * NR + c];
                *d = if add { *d + v } else { v };
            }
        }
        return;
    }
    for (r, values) in tile.chunks_exact(NR).take(at.rows).enumerate() {
        let first = (at.row + r) * rs + at.col * cs;
        if cs == 1 {
            // SAFETY: `first..first + cols` is this row's part of the tile's
            // place in `C` (the caller's promise).
            let row = unsafe { std::slice::from_raw_parts_mut(out.at(first), at.cols) };
            if add {
                row.iter_mut().zip(values).for_each(|(d, v)| *d += v);
            } else {
                row.copy_from_slice(&values[..at.cols]);
            }
            continue;
        }
        for (c, &v) in values.iter().take(at.cols).enumerate() {
            // SAFETY: within the tile's place in `C` (the caller's promise).
            unsafe {
                let cell = out.at(first + c * cs);
                *cell = if add { *cell + v } else { v };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_half() {
        for x in [
            0.0f32,
            -0.0,
            1.0,
            1.0 + f32::EPSILON,
            3.140_625_5,
            -2.718_281_7,
            1e-40,
            3.0e38,
            f32::MAX,
            f32::INFINITY,
        ] {
            let ours = to_bf16(x) as u16;
            assert_eq!(ours, half::bf16::from_f32(x).to_bits(), "{x}");
        }
        assert!(half::bf16::from_bits(to_bf16(f32::NAN) as u16).is_nan());
    }

    /// Values in [-2, 2) from a fixed sequence (a few hundred distinct ones).
    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + salt * 104_729) % 997) as f32 / 249.25 - 2.0)
            .collect()
    }

    /// `half`'s rounding, products and sums in f64: what the kernel must give
    /// up to the order of its f32 sums.
    fn reference(dims: (usize, usize, usize), a: View, b: View) -> Vec<f64> {
        let (m, n, k) = dims;
        let round = |x: f32| f64::from(half::bf16::from_f32(x).to_f32());
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|kk| round(a.0[i * a.1 + kk * a.2]) * round(b.0[kk * b.1 + j * b.2]))
                    .sum();
            }
        }
        c
    }

    #[test]
    fn products_equal_bf16_rounded_f64_for_every_layout() {
        if !available() {
            eprintln!("this CPU has no AVX-512-BF16: the bf16 kernel cannot run here");
            return;
        }
        // Edges on every side: m, n not whole tiles, k odd and even, tiny and long.
        for &(m, n, k) in &[
            (1, 1, 1),
            (13, 33, 7),
            (25, 70, 64),
            (12, 32, 65),
            (40, 17, 130),
        ] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let a_layouts: [View; 2] = [(&a, k, 1), (&a, 1, m)];
            let b_layouts: [View; 2] = [(&b, n, 1), (&b, 1, k)];
            for (ai, &av) in a_layouts.iter().enumerate() {
                for (bi, &bv) in b_layouts.iter().enumerate() {
                    let want = reference((m, n, k), av, bv);
                    // Row-major and transposed destinations, written and accumulated.
                    for transposed in [false, true] {
                        let (rs, cs) = if transposed { (1, m) } else { (n, 1) };
                        let mut c = vec![1f32; m * n];
                        gemm((m, n, k), (&mut c, rs, cs), true, av, bv).unwrap();
                        for i in 0..m {
                            for j in 0..n {
                                let got = f64::from(c[i * rs + j * cs]) - 1.0;
                                let w = want[i * n + j];
                                assert!(
                                    (got - w).abs() <= 1e-4 * (1.0 + w.abs()),
                                    "{m}x{n}x{k} a{ai} b{bi} t{transposed} [{i},{j}]: {got} vs {w}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn operands_their_strides_overrun_are_refused() {
        let a = vec![0f32; 6];
        let mut c = vec![0f32; 4];
        let err = gemm((2, 2, 4), (&mut c, 2, 1), false, (&a, 4, 1), (&a, 2, 1));
        assert!(err.is_err(), "a 2×4 left operand in 6 values");
        let mut small = vec![0f32; 3];
        let err = gemm((2, 2, 1), (&mut small, 2, 1), false, (&a, 1, 1), (&a, 2, 1));
        assert!(err.is_err(), "a 2×2 destination in 3 values");
    }
}
