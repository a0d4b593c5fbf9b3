//! Which bf16 kernel a CPU with both AMX tiles and AVX-512-BF16 takes:
//! measured, not assumed. The AMX kernel is taken only where it multiplies a
//! fine-tuning step's product faster than the AVX-512-BF16 kernel does on
//! this CPU, so an AMX kernel that does not pay here leaves bf16 no slower
//! than AVX-512-BF16 would make it.

use std::sync::OnceLock;
use std::time::Instant;

use super::{gemm_on, Epilogue, Kernel, Lhs, Out, Rhs, TileProduct};

/// The product timed, `(m, n, k)`: a feed-forward layer of a fine-tuning
/// step (256 rows × 384 → 1,536, MiniLM's widths), a few milliseconds on
/// one core.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const TIMED: (usize, usize, usize) = (256, 1536, 384);

/// The two kernels' times for [`TIMED`] on one core, in milliseconds (the
/// best of three rounds, alternating), where both were usable and the AMX
/// one right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelTimes {
    pub amx_ms: f64,
    pub avx512_ms: f64,
}

impl KernelTimes {
    /// The kernel these times choose: AMX only where it is faster.
    pub fn chosen(&self) -> Kernel {
        if self.amx_ms < self.avx512_ms {
            Kernel::Amx
        } else {
            Kernel::Avx512
        }
    }
}

static TIMES: OnceLock<KernelTimes> = OnceLock::new();

/// The measurement the choice rested on, where two kernels were compared.
pub fn kernel_times() -> Option<KernelTimes> {
    TIMES.get().copied()
}

/// AMX or AVX-512-BF16, on a CPU whose AMX kernel agrees with the
/// reference: AMX where AVX-512-BF16 is missing, else the faster of the two.
#[cfg(target_arch = "x86_64")]
pub(super) fn amx_or_avx512() -> Kernel {
    let (Some(amx), Some(avx512)) = (super::amx::Amx::new(), super::avx512::Avx512::new()) else {
        return Kernel::Amx;
    };
    // Three rounds, the kernels alternating within each, so that a moment
    // of load on a shared machine does not fall on one kernel's runs only.
    let timed = apart(|| {
        (0..3).fold(
            KernelTimes {
                amx_ms: f64::INFINITY,
                avx512_ms: f64::INFINITY,
            },
            |best, _| KernelTimes {
                amx_ms: best.amx_ms.min(time_ms(&amx, TIMED, 1)),
                avx512_ms: best.avx512_ms.min(time_ms(&avx512, TIMED, 1)),
            },
        )
    });
    match timed {
        Some(times) => TIMES.get_or_init(|| times).chosen(),
        None => Kernel::Avx512,
    }
}

/// Milliseconds `kernel` takes for a product of `(m, n, k)`, the best of
/// `runs` after one warm-up; infinite where the product fails.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn time_ms<K: TileProduct>(
    kernel: &K,
    (m, n, k): (usize, usize, usize),
    runs: usize,
) -> f64 {
    let (a, b) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
    let mut c = vec![0f32; m * n];
    let mut once = || {
        let start = Instant::now();
        let out = Out::F32(&mut c, n, 1);
        let (lhs, rhs) = (Lhs::F32((&a, k, 1)), Rhs::F32((&b, n, 1)));
        match gemm_on(kernel, (m, n, k), out, lhs, rhs, Epilogue::default()) {
            Ok(()) => start.elapsed().as_secs_f64() * 1e3,
            Err(_) => f64::INFINITY,
        }
    };
    once();
    (0..runs.max(1))
        .map(|_| once())
        .fold(f64::INFINITY, f64::min)
}

/// `f` on a plain thread of its own with a one-thread pool of its own. The
/// checks and timings run while the kernel is being chosen (inside a
/// `OnceLock`), where a thread of the shared pool waiting on a parallel loop
/// (even one installing work into another pool) could pick up work that
/// asks for the kernel and wait on itself. A plain thread only blocks.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn apart<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
    let run = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .ok()
            .map(|pool| pool.install(f))
    };
    std::thread::scope(|s| s.spawn(run).join().ok().flatten())
}
