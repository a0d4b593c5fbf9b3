//! Whether bf16 pays on this CPU, measured rather than assumed: the same
//! product of a fine-tuning step's shape (1,024 rows × 384 → 1,536, as in
//! MiniLM's feed-forward) by the fp32 kernel and by the bf16 one, once per
//! process, on the bf16 kernel this CPU takes (AMX tiles or AVX-512-BF16).
//! A CPU may have bf16 instructions and still multiply bf16 no faster than
//! fp32 here; there bf16 is not offered as the faster choice.

use std::sync::OnceLock;
use std::time::Instant;

use super::grad_kernels::{self, Bf16Kernel, Bf16KernelTimes};
use super::kernels;

/// The two kernels' times for one product, in milliseconds (the best of
/// five each, the runs alternating).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bf16Speed {
    pub fp32_ms: f64,
    pub bf16_ms: f64,
    /// The instructions the bf16 product ran on.
    pub kernel: Bf16Kernel,
    /// Where the CPU has both AMX and AVX-512-BF16: their times, which
    /// chose `kernel`.
    pub kernels: Option<Bf16KernelTimes>,
}

impl Bf16Speed {
    /// How many times faster the bf16 product is.
    pub fn speedup(&self) -> f64 {
        self.fp32_ms / self.bf16_ms.max(1e-9)
    }

    /// Whether bf16 is worth choosing for speed: at least 10 % faster.
    pub fn pays(&self) -> bool {
        self.speedup() >= 1.1
    }

    /// The one line the training form and `--precision` show.
    pub fn verdict(&self) -> String {
        if self.pays() {
            let mut line = format!(
                "bf16 products ({}) are {:.1}× as fast as fp32 on this CPU (measured: {:.1} ms vs {:.1} ms)",
                self.kernel.name(),
                self.speedup(),
                self.bf16_ms,
                self.fp32_ms
            );
            if let Some(t) = self.kernels {
                line.push_str(&format!(
                    "; AMX tiles {:.2} ms vs AVX-512-BF16 {:.2} ms on one core chose {}",
                    t.amx_ms,
                    t.avx512_ms,
                    t.chosen().name()
                ));
            }
            line
        } else {
            format!(
                "bf16 is not faster than fp32 on this CPU (measured: {:.1} ms for bf16 products on {} vs {:.1} ms for fp32): choose fp32 for speed",
                self.bf16_ms,
                self.kernel.name(),
                self.fp32_ms
            )
        }
    }
}

static MEASURED: OnceLock<Option<Bf16Speed>> = OnceLock::new();

/// The measurement (taken now if not yet; ~0.1 s); `None` on a CPU without
/// bf16 products (AVX-512-BF16 or AMX-BF16).
pub fn measure() -> Option<Bf16Speed> {
    *MEASURED.get_or_init(|| grad_kernels::bf16_kernel().and_then(time_both))
}

/// The measurement if it was taken (never blocks: the UI asks this).
pub fn measured() -> Option<Option<Bf16Speed>> {
    MEASURED.get().copied()
}

fn time_both(kernel: Bf16Kernel) -> Option<Bf16Speed> {
    let (m, k, n) = (1024, 384, 1536);
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5)
        .collect();
    let w: Vec<f32> = (0..k * n)
        .map(|i| ((i * 53) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let bias = vec![0f32; n];
    let mut out = vec![0f32; m * n];
    // Alternated, so that a moment of load on a shared machine slows both
    // kernels' runs rather than one kernel's five.
    let (mut fp32_ms, mut bf16_ms) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        let start = Instant::now();
        kernels::linear(&x, m, &w, &bias, &mut out);
        fp32_ms = fp32_ms.min(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        grad_kernels::bf16_gemm((m, n, k), (&mut out, n, 1), false, (&x, k, 1), (&w, n, 1)).ok()?;
        bf16_ms = bf16_ms.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    Some(Bf16Speed {
        fp32_ms,
        bf16_ms,
        kernel,
        kernels: grad_kernels::bf16_kernel_times(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_follows_the_measurement() {
        let fast = Bf16Speed {
            fp32_ms: 20.0,
            bf16_ms: 10.0,
            kernel: Bf16Kernel::Amx,
            kernels: None,
        };
        assert!(fast.pays() && fast.verdict().contains("(AMX tiles) are 2.0× as fast"));
        let compared = Bf16Speed {
            kernel: Bf16Kernel::Avx512,
            kernels: Some(Bf16KernelTimes {
                amx_ms: 3.0,
                avx512_ms: 2.5,
            }),
            ..fast
        };
        assert!(compared
            .verdict()
            .ends_with("AMX tiles 3.00 ms vs AVX-512-BF16 2.50 ms on one core chose AVX-512-BF16"));
        let slow = Bf16Speed {
            fp32_ms: 10.0,
            bf16_ms: 15.0,
            kernel: Bf16Kernel::Avx512,
            kernels: None,
        };
        assert!(!slow.pays() && slow.verdict().contains("not faster"));
        // Measured on this machine: a value either way, never a panic.
        match measure() {
            Some(s) => assert!(s.fp32_ms > 0.0 && s.bf16_ms > 0.0),
            None => assert!(!grad_kernels::bf16_available()),
        }
        assert_eq!(measured(), Some(measure()));
    }
}
