//! Matrix products with bf16 inputs and `f32` sums, for `--precision bf16`:
//! both operands rounded to bf16 (to nearest even, as PyTorch's autocast
//! does), the products of bf16 pairs added into `f32` sums by the CPU's bf16
//! instructions; the sums and the result stay `f32`. Two kernels, the first
//! this CPU runs is used: AMX tiles ([`amx`], Intel Sapphire Rapids and
//! later), then AVX-512-BF16 ([`avx512`], Intel Cooper Lake, AMD Zen 4 and
//! later). Both take the same driver: `B` packed as bf16 pairs in panels,
//! block of `k` by block ([`pack`]; a layer's weights once, [`PackedB`]),
//! groups of row tiles of `C` in parallel, each group's rows of `A` packed
//! by its task (or read as they lie when they are already bf16 rows,
//! [`Bf16Rows`]), each tile summed over every block of `k` and then written
//! (or added) once, as `f32` values or as bf16 rows for the next product.

#[cfg(target_arch = "x86_64")]
mod amx;
mod avx512;
mod choice;
mod pack;
mod rows;
mod write;

use std::sync::OnceLock;

use candle_core::bail;
use rayon::prelude::*;

use super::View;
pub use choice::{kernel_times, KernelTimes};
pub use rows::{round_row, Bf16Rows};
use write::{write_tile, Dst, Place};

/// Columns of `C` per tile: two 16-lane registers, or two AMX tiles.
const NR: usize = 32;
/// The most rows of `C` a kernel's tile has (AMX's 32).
const MAX_MR: usize = 32;

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

/// The kernel bf16 products take on this CPU (chosen once per process:
/// AMX where its tiles give the right products and, where the CPU has
/// AVX-512-BF16 too, multiply faster; see [`choice`]), `None` where it has
/// neither.
pub fn kernel() -> Option<Kernel> {
    *CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if amx::agrees_with_reference() {
            return Some(choice::amx_or_avx512());
        }
        avx512::usable().then_some(Kernel::Avx512)
    })
}

/// Whether this CPU multiplies bf16 (AMX-BF16 or AVX-512-BF16).
pub fn available() -> bool {
    kernel().is_some()
}

/// Whether the CPU reports AMX-BF16 and AMX-TILE (CPUID), whatever the
/// operating system allows.
pub fn cpu_has_amx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        amx::cpu_has_amx()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Why bf16 products do not run on AMX tiles here; `None` where they do.
/// The reasons, in the order they are met: no AMX on this CPU, the tile
/// state refused by the operating system, the tiles' products disagreeing
/// with the reference, or the tiles slower than AVX-512-BF16 (timed).
pub fn amx_not_taken_because() -> Option<String> {
    let taken = kernel();
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(why) = amx::unusable_because() {
            return Some(why.to_string());
        }
        if taken == Some(Kernel::Amx) {
            return None;
        }
        Some(match kernel_times() {
            Some(t) => format!(
                "the tiles multiply more slowly than AVX-512-BF16 on this CPU ({:.2} ms vs {:.2} ms on one core)",
                t.amx_ms, t.avx512_ms
            ),
            None => "the tiles' products disagreed with the reference on this CPU".to_string(),
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = taken;
        Some("this is not an x86-64 CPU".to_string())
    }
}

/// How one kernel multiplies a block: the rows of its tiles, how it wants
/// `A` packed, and the product of one row tile by one panel of `B`.
trait TileProduct: Sync {
    /// Rows of `C` per tile.
    const MR: usize;
    /// Row tiles that share each panel of `B` while it is in the caches.
    const GROUP: usize;
    /// Pairs of `k` per block: the blocks of a panel of `B` that one tile
    /// runs through stay in the caches it reads them from.
    const KC: usize;
    /// What a parallel task holds while it multiplies (AMX: its tiles).
    type Task;
    /// The pairs a packed block holds for `pairs` pairs of `k` (AMX: whole tiles).
    fn padded(pairs: usize) -> usize;
    /// `A`'s `m` rows of `k` (`pairs` pairs a row, padded), packed in row
    /// tiles of [`Self::MR`] rows as this kernel reads them; row-major
    /// unless the kernel says otherwise.
    fn pack_a(a: View, m: usize, k: usize, pairs: usize) -> PackedA {
        PackedA {
            data: pack::pack_a_rows(a, m, k, Self::MR, pairs),
            layout: ALayout::rows(pairs),
        }
    }
    fn task(&self) -> Self::Task;
    /// `out` ([`Self::MR`] × [`NR`]) = a row tile of `A` times a packed
    /// panel of `B`, over `pairs` pairs; with `onto`, added to the sums
    /// `out` holds (the blocks of `k` after the first).
    fn tile(
        &self,
        task: &mut Self::Task,
        a: (&[u32], ALayout),
        b: &[u32],
        pairs: usize,
        out: &mut [f32],
        onto: bool,
    );
}

/// Where pair `p` of row `r` of a tile of `A` lies: at `r * row + p * pair`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ALayout {
    pub(super) row: usize,
    pub(super) pair: usize,
}

impl ALayout {
    /// Row by row, rows `stride` pairs apart.
    pub(super) fn rows(stride: usize) -> Self {
        ALayout {
            row: stride,
            pair: 1,
        }
    }
}

/// A block of `A` packed in row tiles, each `MR · pairs` long.
pub(super) struct PackedA {
    data: Vec<u32>,
    layout: ALayout,
}

/// The left operand of a product: `f32` values at strides (rounded as they
/// are packed), or rows already rounded.
#[derive(Clone, Copy)]
pub enum Lhs<'a> {
    F32(View<'a>),
    Bf16(&'a Bf16Rows),
}

/// The right operand of a product: `f32` values at strides (rounded and
/// packed for this product), or packed once for many (a layer's weights).
#[derive(Clone, Copy)]
pub enum Rhs<'a> {
    F32(View<'a>),
    Packed(&'a PackedB),
}

/// A right operand `B[k, n]` rounded and packed as the kernel taken on this
/// CPU reads it: its panels of [`NR`] columns, block of `k` by block.
#[derive(Debug, Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// The kernel's block of `k`, in pairs: what the blocks were cut by.
    kc: usize,
    blocks: Vec<Vec<u32>>,
}

impl PackedB {
    /// `b` (`k` × `n`) packed for this CPU's kernel; fails where it has none.
    pub fn new(b: View, k: usize, n: usize) -> candle_core::Result<Self> {
        if !reaches(b.0.len(), (b.1, b.2), k, n) {
            bail!("bf16 matmul: operands smaller than their shapes");
        }
        match kernel() {
            #[cfg(target_arch = "x86_64")]
            Some(Kernel::Amx) => Ok(Self::pack::<amx::Amx<amx::Hardware>>(b, k, n)),
            Some(_) => Ok(Self::pack::<avx512::Avx512>(b, k, n)),
            None => bail!("bf16 products need a CPU with AVX-512-BF16 or AMX-BF16"),
        }
    }

    fn pack<K: TileProduct>((data, rs, cs): View, k: usize, n: usize) -> Self {
        let blocks = (0..k)
            .step_by(2 * K::KC)
            .map(|k0| {
                let kc = (2 * K::KC).min(k - k0);
                let pairs = K::padded(kc.div_ceil(2));
                pack::pack_b((&data[k0 * rs..], rs, cs), kc, n, NR, pairs)
            })
            .collect();
        PackedB {
            k,
            n,
            kc: K::KC,
            blocks,
        }
    }
}

/// Where a product goes: `f32` values at strides (row-major or transposed),
/// or rows rounded to bf16 for the next product.
pub enum Out<'a> {
    F32(&'a mut [f32], usize, usize),
    Bf16(&'a mut Bf16Rows),
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
    /// Add into `C`'s values (else overwrite them; `f32` destinations only).
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
    (dst, rs, cs): (&mut [f32], usize, usize),
    a: View,
    b: View,
    epilogue: Epilogue,
) -> candle_core::Result<()> {
    product(
        dims,
        Out::F32(dst, rs, cs),
        Lhs::F32(a),
        Rhs::F32(b),
        epilogue,
    )
}

/// [`gemm_with`] with either kind of left operand and destination; a bf16
/// destination is reshaped to `m` × `n`.
pub fn product(
    dims: (usize, usize, usize),
    out: Out,
    a: Lhs,
    b: Rhs,
    epilogue: Epilogue,
) -> candle_core::Result<()> {
    match kernel() {
        #[cfg(target_arch = "x86_64")]
        Some(Kernel::Amx) => match amx::Amx::new() {
            Some(k) => gemm_on(&k, dims, out, a, b, epilogue),
            None => bail!("AMX tiles: chosen, then unusable"),
        },
        Some(_) => match avx512::Avx512::new() {
            Some(k) => gemm_on(&k, dims, out, a, b, epilogue),
            None => bail!("AVX-512-BF16: chosen, then unusable"),
        },
        None => bail!("bf16 products need a CPU with AVX-512-BF16 or AMX-BF16"),
    }
}

/// Whether `(rows, cols)` at strides `(rs, cs)` stays within `len` values.
fn reaches(len: usize, (rs, cs): (usize, usize), rows: usize, cols: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// [`product`] on the given kernel.
fn gemm_on<K: TileProduct>(
    kernel: &K,
    (m, n, k): (usize, usize, usize),
    out: Out,
    a: Lhs,
    b: Rhs,
    epilogue: Epilogue,
) -> candle_core::Result<()> {
    let a_fits = match a {
        Lhs::F32((data, rs, cs)) => reaches(data.len(), (rs, cs), m, k),
        Lhs::Bf16(rows) => rows.shape() == (m, k),
    };
    let b_fits = match b {
        Rhs::F32((data, rs, cs)) => reaches(data.len(), (rs, cs), k, n),
        Rhs::Packed(packed) => (packed.k, packed.n) == (k, n),
    };
    if !a_fits || !b_fits {
        bail!("bf16 matmul: operands smaller than their shapes");
    }
    if matches!(b, Rhs::Packed(packed) if packed.kc != K::KC) {
        bail!("bf16 matmul: weights packed for another kernel");
    }
    if epilogue.bias.is_some_and(|bias| bias.len() != n) {
        bail!(
            "bf16 matmul: a bias of {} values for {n} columns",
            epilogue.bias.map_or(0, <[f32]>::len)
        );
    }
    let dst = match out {
        Out::F32(dst, rs, cs) => {
            if !reaches(dst.len(), (rs, cs), m, n) {
                bail!("bf16 matmul: operands smaller than their shapes");
            }
            // Distinct (row, column) pairs must be distinct elements of
            // `C`, or two tiles could write the same value at once.
            let (row_major, col_major) = (cs == 1 && rs >= n, rs == 1 && cs >= m);
            if m > 1 && n > 1 && !row_major && !col_major {
                bail!("bf16 matmul: the destination's strides ({rs}, {cs}) overlap");
            }
            Dst::F32(dst.as_mut_ptr(), rs, cs)
        }
        Out::Bf16(rows) => {
            if epilogue.accumulate {
                bail!("bf16 matmul: a bf16 destination cannot be added into");
            }
            rows.reshape(m, n);
            let (data, stride) = rows.rows_mut();
            Dst::Bf16(data.as_mut_ptr(), stride)
        }
    };
    if m == 0 || n == 0 {
        return Ok(());
    }
    let (tiles, panels) = (m.div_ceil(K::MR), n.div_ceil(NR));
    // `k` in blocks of KC pairs; B packed whole (its panels, block by block).
    let blocks: Vec<(usize, usize)> = (0..k)
        .step_by(2 * K::KC)
        .map(|k0| (k0, K::padded((2 * K::KC).min(k - k0).div_ceil(2))))
        .collect();
    let packed_here;
    let packed_b = match b {
        Rhs::F32(view) => {
            packed_here = PackedB::pack::<K>(view, k, n);
            &packed_here.blocks
        }
        Rhs::Packed(packed) => &packed.blocks,
    };
    // Groups of row tiles: each panel of B is read once per group and meets
    // all of its tiles while it is in the caches; each tile runs through
    // every block of `k` in turn and reaches `C` once. Where the groups are
    // fewer than twice the threads (few rows, many cores), each group's
    // panels are also split into chunks, a task each (its rows of A packed
    // again per chunk).
    let groups: Vec<usize> = (0..tiles).step_by(K::GROUP).collect();
    let threads = rayon::current_num_threads().max(1);
    let chunks = (2 * threads).div_ceil(groups.len()).clamp(1, panels);
    let panels_of = |chunk: usize| chunk * panels / chunks..(chunk + 1) * panels / chunks;
    let work: Vec<(usize, usize)> = (groups.iter())
        .flat_map(|&first| (0..chunks).map(move |chunk| (first, chunk)))
        .collect();
    work.into_par_iter().for_each(|(first_tile, chunk)| {
        let group = first_tile..tiles.min(first_tile + K::GROUP);
        let first_row = first_tile * K::MR;
        let group_rows = (group.len() * K::MR).min(m - first_row);
        // The group's rows of A, block by block: packed here from `f32`, or
        // read where they lie.
        let packed_a: Vec<PackedA> = match a {
            Lhs::F32((data, rs, cs)) => blocks
                .iter()
                .map(|&(k0, pairs)| {
                    let kc = (2 * K::KC).min(k - k0);
                    let view = (&data[first_row * rs + k0 * cs..], rs, cs);
                    K::pack_a(view, group_rows, kc, pairs)
                })
                .collect(),
            Lhs::Bf16(_) => Vec::new(),
        };
        let a_tile = |t: usize, block: usize| -> (&[u32], ALayout) {
            match a {
                Lhs::F32(_) => {
                    let pairs = blocks[block].1;
                    let local = (t - first_tile) * K::MR * pairs;
                    let packed = &packed_a[block];
                    (&packed.data[local..], packed.layout)
                }
                Lhs::Bf16(rows) => {
                    let at = t * K::MR * rows.stride() + block * K::KC;
                    (&rows.data()[at..], ALayout::rows(rows.stride()))
                }
            }
        };
        let mut task = kernel.task();
        let mut tile = vec![0f32; K::MR * NR];
        for j in panels_of(chunk) {
            for t in group.clone() {
                if blocks.is_empty() {
                    // `k = 0`: the sums are zero (the first block's kernel
                    // call writes the whole tile otherwise).
                    tile.fill(0.0);
                }
                for (block, &(_, pairs)) in blocks.iter().enumerate() {
                    let b_panel = &packed_b[block][j * pairs * NR..(j + 1) * pairs * NR];
                    let a_block = a_tile(t, block);
                    kernel.tile(&mut task, a_block, b_panel, pairs, &mut tile, block > 0);
                }
                let place = Place {
                    row: t * K::MR,
                    col: j * NR,
                    rows: K::MR.min(m - t * K::MR),
                    cols: NR.min(n - j * NR),
                };
                // SAFETY: the reach and layout checks above; this task
                // alone writes tile `t`'s rows in panel `j`'s columns.
                unsafe { write_tile(&mut tile, place, dst, epilogue) };
            }
        }
    });
    Ok(())
}

/// `half`'s rounding, products and sums in `f64`, for a row-major `C`: what
/// a kernel must give up to the order of its `f32` sums.
fn reference(dims: (usize, usize, usize), a: View, b: View) -> Vec<f64> {
    bf16_sums(dims, a, b, |x| x)
}

/// `Σ_k f(a_ik) · f(b_kj)` in `f64` for a row-major `C`, each operand
/// first rounded to bf16 by `half`.
fn bf16_sums(
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
    f: impl Fn(f64) -> f64,
) -> Vec<f64> {
    let round = |x: f32| f(f64::from(half::bf16::from_f32(x).to_f32()));
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
    let out = Out::F32(&mut c, n, 1);
    let (a, b) = (Lhs::F32(av), Rhs::F32(bv));
    gemm_on(kernel, (m, n, k), out, a, b, Epilogue::default()).is_ok()
        && c.iter()
            .zip(reference((m, n, k), av, bv))
            .all(|(&got, want)| close(f64::from(got), want))
}

#[cfg(test)]
mod tests;
