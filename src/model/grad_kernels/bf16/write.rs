//! A finished tile of `C` (its `f32` sums, `MR` rows of [`NR`] values)
//! taken to its place: the epilogue's bias and finishing function, then
//! written as `f32` values or rounded into bf16 rows, or added into `C`.
//!
//! On a CPU with AVX-512-BF16 a written row goes out as two 16-lane
//! registers. The tile was just stored by the kernel in whole registers, and
//! Zen 4 forwards a store only to a load of the same width: read back in
//! narrower pieces (as `memcpy` and the compiler's loops do), every row
//! stalled until the store had reached the cache.

use super::{rows, Epilogue, NR};

/// `C` as a pointer the row tiles share (each writes rows of its own):
/// `f32` values at strides `(rs, cs)`, or bf16 rows `stride` pairs apart.
#[derive(Clone, Copy)]
pub(super) enum Dst {
    F32(*mut f32, usize, usize),
    Bf16(*mut u32, usize),
}
// SAFETY: the tiles running in parallel write disjoint elements (checked
// layout, disjoint row ranges), and `gemm_on` keeps `C` borrowed until they
// end.
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

/// Where a tile goes in `C`: its first row and column, and how many of its
/// rows and columns are inside `C`.
#[derive(Clone, Copy)]
pub(super) struct Place {
    pub row: usize,
    pub col: usize,
    pub rows: usize,
    pub cols: usize,
}

/// A tile written to (or, with `accumulate`, added into) `C`, with the
/// epilogue's bias and then its finishing function. Written, the bias and
/// the function act on the tile itself (the function once on all of it),
/// which is then copied out; added, on `C`'s values.
///
/// # Safety
/// Every element of the placed tile is within `C`, and no other thread
/// writes those elements meanwhile.
pub(super) unsafe fn write_tile(tile: &mut [f32], at: Place, dst: Dst, step: Epilogue) {
    // SAFETY: the caller's promise.
    unsafe { write_tile_on(tile, at, dst, step, simd::available()) }
}

/// [`write_tile`], through the 16-lane loops when `vector` (the CPU has
/// them) or the portable ones.
///
/// # Safety
/// As [`write_tile`]; `vector` only where [`simd::available`].
pub(super) unsafe fn write_tile_on(
    tile: &mut [f32],
    at: Place,
    dst: Dst,
    step: Epilogue,
    vector: bool,
) {
    assert!(
        tile.len() >= at.rows * NR && at.cols <= NR,
        "a tile holds its placed rows and columns"
    );
    let bias = step.bias.map(|b| &b[at.col..at.col + at.cols]);
    if let Some(bias) = bias {
        #[cfg(target_arch = "x86_64")]
        if vector {
            // SAFETY: the CPU has AVX-512F (`vector`); the tile holds its rows.
            unsafe { simd::add_bias(tile, at.rows, bias) };
        }
        if !vector {
            for row in tile.chunks_exact_mut(NR).take(at.rows) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
    }
    if step.accumulate {
        if let Dst::F32(out, rs, cs) = dst {
            // SAFETY: the caller's promise.
            unsafe { add_tile(tile, at, (out, rs, cs), step.finish, vector) };
            return;
        }
    }
    if let Some(finish) = step.finish {
        finish(&mut tile[..at.rows * NR]);
    }
    #[cfg(target_arch = "x86_64")]
    if vector {
        // SAFETY: the CPU has AVX-512-BF16 (`vector`); the caller's promise.
        unsafe {
            match dst {
                Dst::F32(out, rs, 1) => return simd::copy_rows(tile, at, out, rs),
                Dst::Bf16(out, stride) => return simd::round_rows(tile, at, out, stride),
                Dst::F32(..) => {}
            }
        }
    }
    match dst {
        Dst::F32(out, rs, cs) => {
            for (r, values) in placed_rows(tile, at).enumerate() {
                let first = (at.row + r) * rs + at.col * cs;
                for (c, &v) in values.iter().enumerate() {
                    // SAFETY: within the tile's place in `C` (the caller's promise).
                    unsafe { *out.add(first + c * cs) = v };
                }
            }
        }
        Dst::Bf16(out, stride) => {
            let width = at.cols.div_ceil(2);
            for (r, row) in tile.chunks_exact_mut(NR).take(at.rows).enumerate() {
                // The last pair's second value is past `C`'s edge: zero.
                row[at.cols..].fill(0.0);
                let mut pairs = [0u32; NR / 2];
                rows::round_row(row, &mut pairs);
                let first = (at.row + r) * stride + at.col / 2;
                // SAFETY: the pairs of this row's columns `col..col + cols`
                // (`col` even) are within the row (the caller's promise).
                unsafe { std::ptr::copy_nonoverlapping(pairs.as_ptr(), out.add(first), width) };
            }
        }
    }
}

/// Added: the tile (its bias joined) is added into `C`, and the function
/// finishes `C`'s values.
///
/// # Safety
/// As [`write_tile_on`].
unsafe fn add_tile(
    tile: &[f32],
    at: Place,
    (out, rs, cs): (*mut f32, usize, usize),
    finish: Option<super::Finish>,
    vector: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if vector && cs == 1 {
        // SAFETY: AVX-512F (`vector`); the caller's promise.
        unsafe { simd::add_rows(tile, at, out, rs) };
        if let Some(finish) = finish {
            for r in 0..at.rows {
                // SAFETY: this row's part of the tile's place in `C`.
                finish(unsafe {
                    std::slice::from_raw_parts_mut(out.add((at.row + r) * rs + at.col), at.cols)
                });
            }
        }
        return;
    }
    let _ = vector;
    if rs == 1 {
        // A transposed C: each column's rows are contiguous.
        for c in 0..at.cols {
            // SAFETY: `first..first + rows` is this column's part of the
            // tile's place in `C` (the caller's promise).
            let column = unsafe {
                let first = at.row + (at.col + c) * cs;
                std::slice::from_raw_parts_mut(out.add(first), at.rows)
            };
            for (r, d) in column.iter_mut().enumerate() {
                *d += tile[r * NR + c];
            }
            if let Some(finish) = finish {
                finish(column);
            }
        }
        return;
    }
    for (r, values) in placed_rows(tile, at).enumerate() {
        let first = (at.row + r) * rs + at.col * cs;
        if cs == 1 {
            // SAFETY: `first..first + cols` is this row's part of the tile's
            // place in `C` (the caller's promise).
            let row = unsafe { std::slice::from_raw_parts_mut(out.add(first), at.cols) };
            row.iter_mut().zip(values).for_each(|(d, v)| *d += v);
            if let Some(finish) = finish {
                finish(row);
            }
            continue;
        }
        for (c, v) in values.iter().enumerate() {
            // SAFETY: within the tile's place in `C` (the caller's promise).
            let cell = unsafe { &mut *out.add(first + c * cs) };
            *cell += v;
            if let Some(finish) = finish {
                finish(std::slice::from_mut(cell));
            }
        }
    }
}

/// The rows of a tile that go into `C`, each cut to its placed columns.
fn placed_rows(tile: &[f32], at: Place) -> impl Iterator<Item = &[f32]> {
    tile.chunks_exact(NR)
        .take(at.rows)
        .map(move |row| &row[..at.cols])
}

/// The written rows on 16 lanes: a tile row is two registers.
pub(super) mod simd {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    use super::{Place, NR};
    #[cfg(target_arch = "x86_64")]
    use crate::model::lanes16::below;

    /// Whether this CPU has what the loops below run on.
    pub(in super::super) fn available() -> bool {
        super::super::pack::vector()
    }

    #[cfg(target_arch = "x86_64")]
    const _: () = assert!(NR == 32, "a tile row is two 16-lane registers");

    /// The lanes of a row's two registers below `cols`.
    #[cfg(target_arch = "x86_64")]
    fn halves(cols: usize) -> (__mmask16, __mmask16) {
        (below(cols), below(cols.saturating_sub(16)))
    }

    /// Two registers of a tile row (whole-register loads: see the module).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_row(row: &[f32; NR]) -> (__m512, __m512) {
        // SAFETY: `row` holds 32 floats.
        unsafe {
            (
                _mm512_loadu_ps(row.as_ptr()),
                _mm512_loadu_ps(row.as_ptr().add(16)),
            )
        }
    }

    /// `bias` (a value for each of the first `bias.len()` columns) added to
    /// the first `rows` rows of `tile`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) fn add_bias(tile: &mut [f32], rows: usize, bias: &[f32]) {
        let (lo, hi) = halves(bias.len());
        // SAFETY: the masks let through only lanes below `bias.len()`.
        let (b0, b1) = unsafe {
            let b1 = if hi == 0 {
                _mm512_setzero_ps()
            } else {
                _mm512_maskz_loadu_ps(hi, bias.as_ptr().add(16))
            };
            (_mm512_maskz_loadu_ps(lo, bias.as_ptr()), b1)
        };
        for row in tile.as_chunks_mut::<NR>().0.iter_mut().take(rows) {
            let (v0, v1) = load_row(row);
            // SAFETY: `row` holds 32 floats.
            unsafe {
                _mm512_storeu_ps(row.as_mut_ptr(), _mm512_add_ps(v0, b0));
                _mm512_storeu_ps(row.as_mut_ptr().add(16), _mm512_add_ps(v1, b1));
            }
        }
    }

    /// The placed rows and columns of `tile` copied to row-major `f32` rows
    /// `rs` apart.
    ///
    /// # Safety
    /// The tile's place is within `out` (see `write_tile`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_rows(tile: &[f32], at: Place, out: *mut f32, rs: usize) {
        let (lo, hi) = halves(at.cols);
        for (r, row) in tile.as_chunks::<NR>().0.iter().take(at.rows).enumerate() {
            let (v0, v1) = load_row(row);
            // SAFETY: the masks keep the stores within the place's columns
            // of this row (the caller's promise).
            unsafe {
                let dst = out.add((at.row + r) * rs + at.col);
                _mm512_mask_storeu_ps(dst, lo, v0);
                if hi != 0 {
                    _mm512_mask_storeu_ps(dst.add(16), hi, v1);
                }
            }
        }
    }

    /// The placed rows and columns of `tile` added into row-major `f32`
    /// rows `rs` apart.
    ///
    /// # Safety
    /// The tile's place is within `out` (see `write_tile`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_rows(tile: &[f32], at: Place, out: *mut f32, rs: usize) {
        let (lo, hi) = halves(at.cols);
        for (r, row) in tile.as_chunks::<NR>().0.iter().take(at.rows).enumerate() {
            let (v0, v1) = load_row(row);
            // SAFETY: the masks keep the loads and stores within the
            // place's columns of this row (the caller's promise).
            unsafe {
                let dst = out.add((at.row + r) * rs + at.col);
                let c0 = _mm512_maskz_loadu_ps(lo, dst);
                _mm512_mask_storeu_ps(dst, lo, _mm512_add_ps(c0, v0));
                if hi != 0 {
                    let c1 = _mm512_maskz_loadu_ps(hi, dst.add(16));
                    _mm512_mask_storeu_ps(dst.add(16), hi, _mm512_add_ps(c1, v1));
                }
            }
        }
    }

    /// The placed rows of `tile` rounded to bf16 pairs into rows `stride`
    /// pairs apart (`at.col` even); a last value past `C`'s edge pairs with
    /// zero.
    ///
    /// # Safety
    /// The tile's place is within `out`'s rows (see `write_tile`); the CPU
    /// has AVX-512-BF16.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn round_rows(tile: &[f32], at: Place, out: *mut u32, stride: usize) {
        let (lo, hi) = halves(at.cols);
        let width = at.cols.div_ceil(2);
        let pairs_kept = below(width);
        for (r, row) in tile.as_chunks::<NR>().0.iter().take(at.rows).enumerate() {
            let (v0, v1) = load_row(row);
            let (v0, v1) = (_mm512_maskz_mov_ps(lo, v0), _mm512_maskz_mov_ps(hi, v1));
            // SAFETY: the mask keeps the store within this row's pairs of
            // the place's columns (the caller's promise).
            unsafe {
                let pairs = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(v1, v0));
                let dst = out.add((at.row + r) * stride + at.col / 2);
                _mm512_mask_storeu_epi32(dst.cast(), pairs_kept, pairs);
            }
        }
    }
}
