//! One head's attention over one sequence on 16 lanes (AVX-512F), fused:
//! for a block of [`ROWS`] queries, the scaled scores against every key,
//! their softmax and the context, while the block's scores are in L1. No
//! `seq × seq` matrix goes through memory (unless the maps are kept), the
//! products need no packing or dispatch of a general matrix product, and
//! a bf16 context is rounded from the registers it was summed in.
//!
//! The numbers are `transformers`' eager attention in `f32`: each score is
//! `(q · k) · scale` summed over the head's values in order, the softmax is
//! [`super::softmax_row`]'s, and each context value is `Σ_j p_j · v_j` in key
//! order. A masked key's probability is exactly zero.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Queries a block.
const ROWS: usize = 6;
/// Keys (for the scores) or values (for the context) a block: four
/// 16-lane registers, so a block's sums fill 24 registers.
const WIDE: usize = 64;

/// One head's queries, keys and values: row `j`'s `dim` values start at
/// `j * row` of each slice.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub row: usize,
    pub seq: usize,
    pub dim: usize,
    /// One flag a key: false keys get probability zero.
    pub keys: &'a [bool],
    pub scale: f32,
}

/// Where query `i`'s context goes: `dim` values at `at + i * stride`, or
/// (`dim` even) `dim / 2` bf16 pairs, rounded to nearest even, at
/// `at + i * stride`.
#[derive(Clone, Copy)]
pub enum Dest {
    F32 { at: *mut f32, stride: usize },
    Pairs { at: *mut u32, stride: usize },
}

/// A task's buffers, kept from head to head: the keys transposed, a block
/// of queries' scores.
#[derive(Default)]
pub struct Scratch {
    keys_t: Vec<f32>,
    scores: Vec<f32>,
}

/// Whether [`run`] runs here for `dest`: AVX-512F, and AVX-512-BF16 to
/// round pairs.
pub fn available(dest: &Dest) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::available()
            && (matches!(dest, Dest::F32 { .. })
                || std::arch::is_x86_feature_detected!("avx512bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = dest;
        false
    }
}

/// The head's context into `dest`, and its probabilities into `probs`
/// (`seq × seq`, query-major) when given.
///
/// # Safety
/// [`available`] for `dest`; `dest` holds `seq` rows of the head's values
/// (or pairs) that no other thread touches meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn run(head: Head, dest: Dest, mut probs: Option<&mut [f32]>, scratch: &mut Scratch) {
    let Head { seq, dim, row, .. } = head;
    let reach = |len: usize| seq == 0 || len >= (seq - 1) * row + dim;
    assert!(
        reach(head.q.len()) && reach(head.k.len()) && reach(head.v.len()),
        "attention head: rows past the end of q, k or v"
    );
    assert_eq!(head.keys.len(), seq, "attention head: one flag a key");
    assert!(
        probs.as_deref().is_none_or(|p| p.len() == seq * seq),
        "attention head: probs is seq × seq"
    );
    assert!(
        !matches!(dest, Dest::Pairs { .. }) || dim.is_multiple_of(2),
        "attention head: pairs of an odd width"
    );
    let padded = seq.next_multiple_of(16);
    let Scratch { keys_t, scores } = scratch;
    // Kᵀ: value d of every key in a line of `padded` (zero past `seq`).
    keys_t.resize(dim.next_multiple_of(16) * padded, 0.0);
    for j in (0..padded).step_by(16) {
        for d in (0..dim).step_by(16) {
            // SAFETY: AVX-512F (the caller's promise); the block's keys below
            // `seq` and values below `dim` are within `k` (asserted), and
            // its 16 lines of 16 from `d * padded + j` within `keys_t`.
            unsafe {
                transpose_block(
                    // Past the last key nothing is read (a block of none).
                    head.k.as_ptr().wrapping_add(j * row + d),
                    row,
                    ((seq - j.min(seq)).min(16), (dim - d).min(16)),
                    keys_t.as_mut_ptr().add(d * padded + j),
                    padded,
                )
            };
        }
    }
    scores.resize(ROWS * padded, 0.0);
    for first in (0..seq).step_by(ROWS) {
        let rows = ROWS.min(seq - first);
        // Row r of the block's queries; a block past the last query repeats
        // it (its sums are not kept).
        let queries: [*const f32; ROWS] =
            std::array::from_fn(|r| head.q[(first + r.min(rows - 1)) * row..].as_ptr());
        for start in (0..padded).step_by(WIDE) {
            let lanes = (padded - start).min(WIDE) / 16;
            // SAFETY: AVX-512F (the caller's promise); each query has `dim`
            // values, `keys_t` holds `dim` lines of `padded`, `scores` ROWS
            // lines of `padded`, and the block's `lanes` registers end
            // within them.
            unsafe {
                let args = (queries, dim, keys_t.as_ptr().add(start), padded);
                let out = scores.as_mut_ptr().add(start);
                match lanes {
                    1 => scores_block::<1>(args, out),
                    2 => scores_block::<2>(args, out),
                    3 => scores_block::<3>(args, out),
                    _ => scores_block::<4>(args, out),
                }
            }
        }
        // The probabilities go where they are kept (the maps, else the
        // scores' own lines); the context reads them there.
        let mut lines = [std::ptr::null(); ROWS];
        for r in 0..rows {
            let line = &mut scores[r * padded..r * padded + seq];
            let keys = super::Flags(head.keys);
            // SAFETY: AVX-512F; the flags and the source are as long as the line.
            lines[r] = unsafe {
                match probs.as_deref_mut() {
                    Some(probs) => {
                        let out = &mut probs[(first + r) * seq..(first + r + 1) * seq];
                        super::softmax_row(out, keys, head.scale, Some(line));
                        out.as_ptr()
                    }
                    None => {
                        super::softmax_row(line, keys, head.scale, None);
                        line.as_ptr()
                    }
                }
            };
        }
        // A block past the last query repeats it (its sums are not kept).
        for r in rows..ROWS {
            lines[r] = lines[rows - 1];
        }
        for start in (0..dim).step_by(WIDE) {
            let width = (dim - start).min(WIDE);
            let block = Block {
                probs: lines,
                seq,
                values: head.v[start..].as_ptr(),
                row,
                width,
                rows,
            };
            // SAFETY: AVX-512F (and BF16 for pairs), the caller's promise;
            // `head.v` reaches `seq` rows of `dim` values (asserted), and
            // `dest` query `first`'s row at value `start` (pair `start / 2`,
            // `start` a multiple of WIDE) has room for the block's rows.
            unsafe {
                match dest {
                    Dest::F32 { at, stride } => {
                        let at = at.add(first * stride + start);
                        match width.div_ceil(16) {
                            1 => context_f32::<1>(block, at, stride),
                            2 => context_f32::<2>(block, at, stride),
                            3 => context_f32::<3>(block, at, stride),
                            _ => context_f32::<4>(block, at, stride),
                        }
                    }
                    Dest::Pairs { at, stride } => {
                        let at = at.add(first * stride + start / 2);
                        match width.div_ceil(16) {
                            1 => context_pairs::<1>(block, at, stride),
                            2 => context_pairs::<2>(block, at, stride),
                            3 => context_pairs::<3>(block, at, stride),
                            _ => context_pairs::<4>(block, at, stride),
                        }
                    }
                }
            }
        }
    }
}

/// A block of 16 keys' (`size.0` of them) first 16 values (`size.1`)
/// transposed: value `d` of key `j` (rows `row` apart from `from`) to
/// `to[d * line + j]`, for the first `size.1` lines and all 16 keys (zero
/// past the `size.0`th).
///
/// # Safety
/// AVX-512F; the keys' values are readable, and the `size.1` lines of 16
/// writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(
    from: *const f32,
    row: usize,
    (keys, values): (usize, usize),
    to: *mut f32,
    line: usize,
) {
    let kept = super::below(values);
    // SAFETY: the caller's promise; lanes past `values` are not read.
    let rows: [__m512; 16] = std::array::from_fn(|j| {
        if j < keys {
            unsafe { _mm512_maskz_loadu_ps(kept, from.add(j * row)) }
        } else {
            _mm512_setzero_ps()
        }
    });
    // Three rounds of interleaving: pairs of rows by 32-bit lanes, by
    // 64-bit lanes, then by 128-bit quarters twice.
    let a: [__m512; 16] = std::array::from_fn(|i| {
        let (x, y) = (rows[i & !1], rows[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(x, y)
        } else {
            _mm512_unpackhi_ps(x, y)
        }
    });
    let b: [__m512; 16] = std::array::from_fn(|i| {
        let base = (i & !3) + ((i >> 1) & 1);
        let (x, y) = (_mm512_castps_pd(a[base]), _mm512_castps_pd(a[base + 2]));
        _mm512_castpd_ps(if i & 1 == 0 {
            _mm512_unpacklo_pd(x, y)
        } else {
            _mm512_unpackhi_pd(x, y)
        })
    });
    let c: [__m512; 16] = std::array::from_fn(|i| {
        let base = (i & !7) + (i & 3);
        let (x, y) = (b[base], b[base + 4]);
        if i & 4 == 0 {
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y)
        }
    });
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let base = i & 7;
        let (x, y) = (c[base], c[base + 8]);
        if i & 8 == 0 {
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y)
        }
    });
    for (d, &column) in t.iter().enumerate().take(values) {
        // SAFETY: the caller's promise.
        unsafe { _mm512_storeu_ps(to.add(d * line), column) };
    }
}

/// `out[r][c] = Σ_d q[r][d] · kᵀ[d][c]` for the ROWS queries (`dim` values
/// each, from `q[r]`) and `L` registers of keys (lines `padded` apart from
/// `kt`), into lines `padded` apart from `out`.
///
/// # Safety
/// AVX-512F; every read and written line holds `16 L` values from its start.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scores_block<const L: usize>(
    (q, dim, kt, padded): ([*const f32; ROWS], usize, *const f32, usize),
    out: *mut f32,
) {
    let mut sums = [[_mm512_setzero_ps(); L]; ROWS];
    for d in 0..dim {
        // SAFETY: the caller's promise.
        let keys: [__m512; L] =
            std::array::from_fn(|l| unsafe { _mm512_loadu_ps(kt.add(d * padded + 16 * l)) });
        for (r, line) in sums.iter_mut().enumerate() {
            // SAFETY: each query holds `dim` values.
            let query = _mm512_set1_ps(unsafe { *q[r].add(d) });
            for (sum, &key) in line.iter_mut().zip(&keys) {
                *sum = _mm512_fmadd_ps(query, key, *sum);
            }
        }
    }
    for (r, line) in sums.iter().enumerate() {
        for (l, &sum) in line.iter().enumerate() {
            // SAFETY: the caller's promise.
            unsafe { _mm512_storeu_ps(out.add(r * padded + 16 * l), sum) };
        }
    }
}

/// A block of the context: `rows` queries' probabilities (a line of `seq`
/// keys each), the keys' values from `values` (rows `row` apart, `width` of
/// them from here).
#[derive(Clone, Copy)]
struct Block {
    probs: [*const f32; ROWS],
    seq: usize,
    values: *const f32,
    row: usize,
    width: usize,
    rows: usize,
}

/// The lanes of each of `L` registers below `width` values.
#[cfg(target_arch = "x86_64")]
fn lanes<const L: usize>(width: usize) -> [__mmask16; L] {
    std::array::from_fn(|l| super::below(width.saturating_sub(16 * l)))
}

/// `Σ_j p[r][j] · v[j][c]` for the block's ROWS queries and `width` (at
/// most `16 L`) values, in key order; lanes past `width` are zero.
///
/// # Safety
/// AVX-512F; the block's reads are within their buffers.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn context_sums<const L: usize>(b: Block) -> [[__m512; L]; ROWS] {
    let kept = lanes::<L>(b.width);
    let mut sums = [[_mm512_setzero_ps(); L]; ROWS];
    for j in 0..b.seq {
        // SAFETY: the caller's promise; masked lanes past `width` are not read.
        let values: [__m512; L] = std::array::from_fn(|l| unsafe {
            let at = b.values.add(j * b.row + 16 * l);
            if kept[l] == 0xffff {
                _mm512_loadu_ps(at)
            } else {
                _mm512_maskz_loadu_ps(kept[l], at)
            }
        });
        for (r, line) in sums.iter_mut().enumerate() {
            // SAFETY: each line of probabilities holds `seq` values.
            let p = _mm512_set1_ps(unsafe { *b.probs[r].add(j) });
            for (sum, &value) in line.iter_mut().zip(&values) {
                *sum = _mm512_fmadd_ps(p, value, *sum);
            }
        }
    }
    sums
}

/// The block's context as `f32` values: row `r`'s `width` values at
/// `at + r * stride`, for its first `rows` rows.
///
/// # Safety
/// AVX-512F; the block's reads and the rows written are within their
/// buffers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn context_f32<const L: usize>(b: Block, at: *mut f32, stride: usize) {
    // SAFETY: the caller's promise.
    let sums = unsafe { context_sums::<L>(b) };
    let kept = lanes::<L>(b.width);
    for (r, line) in sums.iter().enumerate().take(b.rows) {
        for (l, &sum) in line.iter().enumerate() {
            // SAFETY: within row r's `width` values (the caller's promise).
            unsafe { _mm512_mask_storeu_ps(at.add(r * stride + 16 * l), kept[l], sum) };
        }
    }
}

/// The block's context rounded to bf16 pairs: row `r`'s `width / 2` pairs
/// at `at + r * stride`, for its first `rows` rows (`width` even).
///
/// # Safety
/// AVX-512F and AVX-512-BF16; the block's reads and the rows written are
/// within their buffers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn context_pairs<const L: usize>(b: Block, at: *mut u32, stride: usize) {
    // SAFETY: the caller's promise.
    let sums = unsafe { context_sums::<L>(b) };
    for (r, line) in sums.iter().enumerate().take(b.rows) {
        for (l, two) in line.chunks(2).enumerate() {
            let high = two.get(1).copied().unwrap_or(_mm512_setzero_ps());
            // Lanes 0–15 round two[0]'s values, 16–31 high's: as u32, pair
            // i is values 2i and 2i + 1.
            let pairs = _mm512_cvtne2ps_pbh(high, two[0]);
            let keep = super::below(b.width.saturating_sub(32 * l).div_ceil(2));
            // SAFETY: within row r's `width / 2` pairs (the caller's promise).
            unsafe {
                let pairs = std::mem::transmute::<__m512bh, __m512i>(pairs);
                _mm512_mask_storeu_epi32(at.add(r * stride + 16 * l).cast(), keep, pairs);
            }
        }
    }
}

#[cfg(test)]
mod tests;
