//! Operands rounded to bf16 (to nearest even, as PyTorch's autocast does)
//! and laid out as the kernels read them: bf16 pairs along `k`, one `u32` a
//! pair with the even `k` in the low half, zero past the operand's edges.

use rayon::prelude::*;

use super::View;

/// Whether the packing loops can use AVX-512-BF16's conversions (and
/// AVX-512BW's permutation, which every CPU with them has).
pub(super) fn vector() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits; a NaN
/// stays a (quiet) NaN.
#[inline]
pub(super) fn to_bf16(x: f32) -> u32 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) | 0x40;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round)) >> 16
}

/// `A[m, k]` row by row, rows in blocks of `mr` (the last padded): row `r`,
/// pair `p` at `r * pairs + p` (as both kernels read a tile's rows).
pub(super) fn pack_a_rows(a: View, m: usize, k: usize, mr: usize, pairs: usize) -> Vec<u32> {
    let blocks = m.div_ceil(mr);
    let mut out = vec![0u32; blocks * mr * pairs];
    out.par_chunks_mut((mr * pairs).max(1))
        .enumerate()
        .for_each(|(t, block)| {
            let rows = mr.min(m - t * mr);
            let (data, rs, cs) = a;
            if cs == 1 {
                for (r, dst) in block.chunks_exact_mut(pairs).take(rows).enumerate() {
                    pairs_of_run(&data[(t * mr + r) * rs..][..k], dst, 1);
                }
            } else if rs == 1 {
                // Pairs of k lines with the block's rows side by side, then
                // turned to rows.
                let mut side_by_side = vec![0u32; k.div_ceil(2) * mr];
                let lines = Lines {
                    data,
                    stride: cs,
                    start: t * mr,
                    len: rows,
                    k,
                };
                pairs_of_lines(lines, &mut side_by_side, mr);
                for (p, pair_row) in side_by_side.chunks_exact(mr).enumerate() {
                    for (r, &pair) in pair_row[..rows].iter().enumerate() {
                        block[r * pairs + p] = pair;
                    }
                }
            } else {
                for r in 0..rows {
                    let at = |kk: usize| data[(t * mr + r) * rs + kk * cs];
                    pairs_of_strided(at, k, &mut block[r * pairs..], 1);
                }
            }
        });
    out
}

/// A transposed `A[m, k]` (rows one apart, `k` lines `cs` apart) pair by
/// pair, rows in blocks of `mr` (the last padded): pair `p` of row `r` at
/// `p * mr + r` of its block (the lines of `k` convert straight into it).
pub(super) fn pack_a_pairs(a: View, m: usize, k: usize, mr: usize, pairs: usize) -> Vec<u32> {
    let blocks = m.div_ceil(mr);
    let mut out = vec![0u32; blocks * mr * pairs];
    out.par_chunks_mut((mr * pairs).max(1))
        .enumerate()
        .for_each(|(t, block)| {
            let (data, _, cs) = a;
            let lines = Lines {
                data,
                stride: cs,
                start: t * mr,
                len: mr.min(m - t * mr),
                k,
            };
            pairs_of_lines(lines, block, mr);
        });
    out
}

/// `B[k, n]` in panels of `nr` columns: panel `j`, pair `p`, column `c` at
/// `(j * pairs + p) * nr + c`.
pub(super) fn pack_b(b: View, k: usize, n: usize, nr: usize, pairs: usize) -> Vec<u32> {
    let panels = n.div_ceil(nr);
    let mut out = vec![0u32; panels * pairs * nr];
    out.par_chunks_mut((pairs * nr).max(1))
        .enumerate()
        .for_each(|(j, panel)| {
            let cols = nr.min(n - j * nr);
            let (data, rs, cs) = b;
            if cs == 1 {
                let lines = Lines {
                    data,
                    stride: rs,
                    start: j * nr,
                    len: cols,
                    k,
                };
                pairs_of_lines(lines, panel, nr);
            } else if rs == 1 {
                for c in 0..cols {
                    let column = &data[(j * nr + c) * cs..][..k];
                    pairs_of_run(column, &mut panel[c..], nr);
                }
            } else {
                for c in 0..cols {
                    let at = |kk: usize| data[kk * rs + (j * nr + c) * cs];
                    pairs_of_strided(at, k, &mut panel[c..], nr);
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

/// The pairs of `k` values read one by one (`at(kk)`), pair `p` written to
/// `out[p * stride]`.
fn pairs_of_strided(at: impl Fn(usize) -> f32, k: usize, out: &mut [u32], stride: usize) {
    let pairs = k.div_ceil(2);
    for (p, pair) in out.iter_mut().step_by(stride).take(pairs).enumerate() {
        *pair = pair_of(at(2 * p), (2 * p + 1 < k).then(|| at(2 * p + 1)));
    }
}

/// The pairs of a contiguous run of `k` values (`run[2p]`, `run[2p + 1]`),
/// pair `p` written to `out[p * stride]`.
pub(super) fn pairs_of_run(run: &[f32], out: &mut [u32], stride: usize) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if vector() {
        // SAFETY: the CPU has the features `simd` was compiled for.
        done = unsafe { simd::pairs_of_run(run, out, stride) };
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
    if vector() {
        // SAFETY: the CPU has the features `simd` was compiled for.
        unsafe { simd::pairs_of_lines(lines, out, width) };
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
mod simd {
    use std::arch::x86_64::*;

    /// Whole blocks of 32 values of `run` as 16 pairs each.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn pairs_of_run(run: &[f32], out: &mut [u32], stride: usize) -> usize {
        let blocks = run.len() / 32;
        let convert = |block: usize| {
            let values = &run[block * 32..block * 32 + 32];
            // SAFETY: `values` holds 32 floats.
            unsafe {
                let lo = _mm512_loadu_ps(values.as_ptr());
                let hi = _mm512_loadu_ps(values.as_ptr().add(16));
                std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
            }
        };
        if stride == 1 {
            let out = &mut out[..blocks * 16];
            for (block, dst) in out.chunks_exact_mut(16).enumerate() {
                // SAFETY: `dst` holds 16 u32 (64 bytes).
                unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), convert(block)) };
            }
            return blocks * 16;
        }
        let mut pairs = [0u32; 16];
        for block in 0..blocks {
            // SAFETY: `pairs` holds 16 u32 (64 bytes).
            unsafe { _mm512_storeu_si512(pairs.as_mut_ptr().cast(), convert(block)) };
            for (i, &pair) in pairs.iter().enumerate() {
                out[(block * 16 + i) * stride] = pair;
            }
        }
        blocks * 16
    }

    /// Every pair of lines, 16 values at a time (the last block masked):
    /// both lines' 16 values rounded by one conversion, then interleaved
    /// into pairs by one permutation.
    #[target_feature(enable = "avx512f,avx512bf16,avx512bw")]
    pub(super) fn pairs_of_lines(lines: super::Lines, out: &mut [u32], width: usize) {
        let n = lines.len;
        assert!(n <= width, "bf16 packing: lines wider than their slots");
        // Lane 2i takes the first line's value i (lane i of the conversion),
        // lane 2i + 1 the second line's (lane 16 + i).
        let order: [u16; 32] = std::array::from_fn(|l| (l / 2 + 16 * (l % 2)) as u16);
        // SAFETY: `order` holds 32 u16 (64 bytes).
        let order = unsafe { _mm512_loadu_si512(order.as_ptr().cast()) };
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
                    let lo = _mm512_maskz_loadu_ps(mask, first.as_ptr().add(at));
                    let hi = match second {
                        Some(s) => _mm512_maskz_loadu_ps(mask, s.as_ptr().add(at)),
                        None => _mm512_setzero_ps(),
                    };
                    let both =
                        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
                    let pair = _mm512_permutexvar_epi16(order, both);
                    _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(at).cast(), mask, pair);
                }
            }
        }
    }
}
