//! Matrix products with bf16 inputs and `f32` sums, for `--precision bf16`:
//! both operands rounded to bf16 (to nearest even, as PyTorch's autocast
//! does), the products of bf16 pairs added into `f32` sums by the CPU's bf16
//! instructions; the sums and the result stay `f32`. Two kernels, the first
//! this CPU runs is used: AMX tiles ([`amx`], Intel Sapphire Rapids and
//! later), then AVX-512-BF16 ([`avx512`], Intel Cooper Lake, AMD Zen 4 and
//! later). Both take the same driver: `k` in blocks, each block of `A` and
//! `B` packed as bf16 pairs ([`pack`]), row tiles of `C` in parallel, each
//! summed over the block in the kernel and then written (or added) once.

#[cfg(target_arch = "x86_64")]
mod amx;
mod avx512;
mod pack;

use std::sync::OnceLock;

use candle_core::bail;
use rayon::prelude::*;

use super::View;

/// Columns of `C` per tile: two 16-lane registers, or two AMX tiles.
const NR: usize = 32;
/// Pairs of `k` per block: a panel of B (`KC` × [`NR`] pairs, 32 KiB) fits L1.
const KC: usize = 256;

/// The instructions a bf16 product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Intel's AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX-512-BF16 (`vdpbf16ps`).
    Avx512,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "AMX tiles",
            Kernel::Avx512 => "AVX-512-BF16",
        }
    }
}

static CHOSEN: OnceLock<Option<Kernel>> = OnceLock::new();

/// The kernel bf16 products take on this CPU (chosen once per process),
/// `None` where it has neither.
pub fn kernel() -> Option<Kernel> {
    *CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if amx::agrees_with_reference() {
            return Some(Kernel::Amx);
        }
        avx512::usable().then_some(Kernel::Avx512)
    })
}

/// Whether this CPU multiplies bf16 (AMX-BF16 or AVX-512-BF16).
pub fn available() -> bool {
    kernel().is_some()
}

/// How one kernel multiplies a block: the rows of its tiles, how it wants
/// `A` packed, and the product of one row tile by one panel of `B`.
trait TileProduct: Sync {
    /// Rows of `C` per tile.
    const MR: usize;
    /// Row tiles that share each panel of `B` while it is in the caches.
    const GROUP: usize;
    /// What a parallel task holds while it multiplies (AMX: its tiles).
    type Task;
    /// The pairs a packed block holds for `pairs` pairs of `k` (AMX: whole tiles).
    fn padded(pairs: usize) -> usize;
    /// A block of `A` (`m` × `k`) packed for this kernel, `pairs` pairs a row.
    fn pack_a(a: View, m: usize, k: usize, pairs: usize) -> Vec<u32>;
    fn task(&self) -> Self::Task;
    /// `out` ([`Self::MR`] × [`NR`]) = a packed row tile of `A` times a packed
    /// panel of `B`, over `pairs` pairs.
    fn tile(&self, task: &mut Self::Task, a: &[u32], b: &[u32], pairs: usize, out: &mut [f32]);
}

/// `C[m, n] (+)= A[m, k] · B[k, n]` with the products in bf16 and the sums
/// in `f32`; `C` at strides `(rs, cs)` (row-major, or transposed). Fails on
/// a CPU without bf16 products and on operands their strides overrun.
pub fn gemm(
    dims: (usize, usize, usize),
    dst: (&mut [f32], usize, usize),
    accumulate: bool,
    a: View,
    b: View,
) -> candle_core::Result<()> {
    let epilogue = Epilogue {
        accumulate,
        ..Epilogue::default()
    };
    gemm_with(dims, dst, a, b, epilogue)
}

/// A function applied to runs of finished values of `C` (an activation).
pub type Finish<'a> = &'a (dyn Fn(&mut [f32]) + Sync);

/// What happens to the products as they reach `C`, while each tile is still
/// in the caches: a linear layer's bias and activation in the same pass.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Add into `C`'s values (else overwrite them).
    pub accumulate: bool,
    /// Added to every row of `C`: one value a column.
    pub bias: Option<&'a [f32]>,
    /// Applied to every value of `C` once its sum is complete, a run of
    /// values at a time; the function must treat each value on its own.
    pub finish: Option<Finish<'a>>,
}

/// [`gemm`] with an epilogue: `C = finish(C? + A · B + bias)`.
pub fn gemm_with(
    dims: (usize, usize, usize),
    dst: (&mut [f32], usize, usize),
    a: View,
    b: View,
    epilogue: Epilogue,
) -> candle_core::Result<()> {
    match kernel() {
        #[cfg(target_arch = "x86_64")]
        Some(Kernel::Amx) => match amx::Amx::new() {
            Some(k) => gemm_on(&k, dims, dst, a, b, epilogue),
            None => bail!("AMX tiles: chosen, then unusable"),
        },
        Some(_) => match avx512::Avx512::new() {
            Some(k) => gemm_on(&k, dims, dst, a, b, epilogue),
            None => bail!("AVX-512-BF16: chosen, then unusable"),
        },
        None => bail!("bf16 products need a CPU with AVX-512-BF16 or AMX-BF16"),
    }
}

/// [`gemm_with`] on the given kernel.
fn gemm_on<K: TileProduct>(
    kernel: &K,
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (&mut [f32], usize, usize),
    a: View,
    b: View,
    epilogue: Epilogue,
) -> candle_core::Result<()> {
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
    if epilogue.bias.is_some_and(|bias| bias.len() != n) {
        bail!(
            "bf16 matmul: a bias of {} values for {n} columns",
            epilogue.bias.map_or(0, <[f32]>::len)
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let tiles = m.div_ceil(K::MR);
    let panels = n.div_ceil(NR);
    let out = Dst(dst.as_mut_ptr());
    let (a_data, a_rs, a_cs) = a;
    let (b_data, b_rs, b_cs) = b;
    // `k` in blocks of KC pairs, so that a block of B stays in the caches
    // while the row tiles pass over it; every block after the first adds.
    // At least one block, so that `k = 0` still writes the bias (and zeros).
    let blocks = k.div_ceil(2 * KC).max(1);
    for (block, k0) in (0..k.max(1)).step_by(2 * KC).enumerate() {
        let kc = (2 * KC).min(k - k0);
        let pairs = K::padded(kc.div_ceil(2));
        let a_block = (&a_data[k0 * a_cs..], a_rs, a_cs);
        let b_block = (&b_data[k0 * b_rs..], b_rs, b_cs);
        let (packed_a, packed_b) = if kc == 0 {
            (Vec::new(), Vec::new())
        } else {
            let packed_a = K::pack_a(a_block, m, kc, pairs);
            (packed_a, pack::pack_b(b_block, kc, n, NR, pairs))
        };
        let step = Step {
            add: epilogue.accumulate || block > 0,
            bias: epilogue.bias.filter(|_| block == 0),
            finish: epilogue.finish.filter(|_| block + 1 == blocks),
        };
        // Groups of row tiles: each panel of B is read once per group and
        // meets all of its tiles while it is in the caches.
        let groups: Vec<usize> = (0..tiles).step_by(K::GROUP).collect();
        groups.into_par_iter().for_each(|first_tile| {
            let mut task = kernel.task();
            let mut tile = vec![0f32; K::MR * NR];
            let group = first_tile..tiles.min(first_tile + K::GROUP);
            for j in 0..panels {
                let b_panel = &packed_b[j * pairs * NR..(j + 1) * pairs * NR];
                for t in group.clone() {
                    let a_tile = &packed_a[t * K::MR * pairs..(t + 1) * K::MR * pairs];
                    kernel.tile(&mut task, a_tile, b_panel, pairs, &mut tile);
                    let place = Place {
                        row: t * K::MR,
                        col: j * NR,
                        rows: K::MR.min(m - t * K::MR),
                        cols: NR.min(n - j * NR),
                    };
                    // SAFETY: the reach and layout checks above; this group
                    // alone writes the rows of tile `t`.
                    unsafe { write_tile(&tile, place, (out, dst_rs, dst_cs), step) };
                }
            }
        });
    }
    Ok(())
}

/// `half`'s rounding, products and sums in `f64`, for a row-major `C`: what
/// a kernel must give up to the order of its `f32` sums.
fn reference((m, n, k): (usize, usize, usize), a: View, b: View) -> Vec<f64> {
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

/// Whether a kernel's `f32` result is the reference's up to the order of
/// its sums.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-4 * (1.0 + want.abs())
}

/// Values in [-2, 2) from a fixed sequence (a few hundred distinct ones).
fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + salt * 104_729) % 997) as f32 / 249.25 - 2.0)
        .collect()
}

/// Whether `kernel` gives the reference's product of `dims` (`A` row-major,
/// `B` transposed, as the linear layers multiply).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn agrees<K: TileProduct>(kernel: &K, (m, n, k): (usize, usize, usize)) -> bool {
    let (a, b) = (values(m * k, 1), values(k * n, 2));
    let (av, bv): (View, View) = ((&a, k, 1), (&b, 1, k));
    let mut c = vec![0f32; m * n];
    gemm_on(
        kernel,
        (m, n, k),
        (&mut c, n, 1),
        av,
        bv,
        Epilogue::default(),
    )
    .is_ok()
        && c.iter()
            .zip(reference((m, n, k), av, bv))
            .all(|(&got, want)| close(f64::from(got), want))
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

/// Where a tile goes in `C`: its first row and column, and how many of its
/// rows and columns are inside `C`.
#[derive(Clone, Copy)]
struct Place {
    row: usize,
    col: usize,
    rows: usize,
    cols: usize,
}

/// How one block's tile reaches `C`.
#[derive(Clone, Copy)]
struct Step<'a> {
    /// Add into `C` (a block after the first, or an accumulating product).
    add: bool,
    /// The bias to add with the tile (the first block only).
    bias: Option<&'a [f32]>,
    /// Applied to the finished values (the last block only).
    finish: Option<Finish<'a>>,
}

/// A tile written to (or, with `add`, added into) `C` at strides `(rs, cs)`,
/// with the step's bias and then its finishing function.
///
/// # Safety
/// Every element of the placed tile is within `C`, and no other thread
/// writes those elements meanwhile.
unsafe fn write_tile(tile: &[f32], at: Place, (out, rs, cs): (Dst, usize, usize), step: Step) {
    let bias = step.bias.map(|b| &b[at.col..at.col + at.cols]);
    let value = |r: usize, c: usize| tile[r * NR + c] + bias.map_or(0.0, |b| b[c]);
    let put = |d: &mut f32, v: f32| *d = if step.add { *d + v } else { v };
    if rs == 1 {
        // A transposed C: each column's rows are contiguous.
        for c in 0..at.cols {
            let first = at.row + (at.col + c) * cs;
            // SAFETY: `first..first + rows` is this column's part of the
            // tile's place in `C` (the caller's promise).
            let column = unsafe { std::slice::from_raw_parts_mut(out.at(first), at.rows) };
            for (r, d) in column.iter_mut().enumerate() {
                put(d, value(r, c));
            }
            if let Some(finish) = step.finish {
                finish(column);
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
            let values = &values[..at.cols];
            match (step.add, bias) {
                (false, None) => row.copy_from_slice(values),
                (true, None) => row.iter_mut().zip(values).for_each(|(d, v)| *d += v),
                (false, Some(b)) => {
                    for ((d, v), b) in row.iter_mut().zip(values).zip(b) {
                        *d = v + b;
                    }
                }
                (true, Some(b)) => {
                    for ((d, v), b) in row.iter_mut().zip(values).zip(b) {
                        *d += v + b;
                    }
                }
            }
            if let Some(finish) = step.finish {
                finish(row);
            }
            continue;
        }
        for c in 0..at.cols {
            // SAFETY: within the tile's place in `C` (the caller's promise).
            let cell = unsafe { &mut *out.at(first + c * cs) };
            put(cell, value(r, c));
            if let Some(finish) = step.finish {
                finish(std::slice::from_mut(cell));
            }
        }
    }
}

#[cfg(test)]
mod tests;
