//! What this CPU runs, as bertscope's kernels see it: the CPU's name, the
//! instruction sets they use, which kernel bf16 products take here and why
//! the AMX tiles are not taken where they are not, and whether bf16 pays
//! (measured, as the `--precision bf16` verdict). `bertscope cpu` prints it,
//! so that a speed measured here can name the CPU and kernels it ran on.

use serde::Serialize;

use super::bf16_speed;
use super::grad_kernels;

/// The instruction sets the kernels choose between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Features {
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512_bf16: bool,
    /// AMX-BF16 and AMX-TILE, as CPUID reports them (whatever the operating
    /// system grants).
    pub amx_bf16: bool,
}

/// One bf16 product against fp32 at a fine-tuning step's shape.
#[derive(Debug, Clone, Serialize)]
pub struct Bf16VsFp32 {
    pub fp32_ms: f64,
    pub bf16_ms: f64,
    pub speedup: f64,
    /// Whether bf16 is offered as the faster choice (at least 1.1×).
    pub pays: bool,
    pub verdict: String,
}

/// AMX tiles against AVX-512-BF16, where the CPU has both and the tiles
/// agree with the reference: the timing the kernel was chosen by.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KernelTimes {
    pub amx_ms: f64,
    pub avx512_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// The CPU's name (CPUID's brand string).
    pub model: String,
    /// Threads the kernels run on (rayon's pool).
    pub threads: usize,
    pub features: Features,
    /// Whether attention, softmax and GELU run on 16 lanes (AVX-512F)
    /// rather than portable loops.
    pub lanes16: bool,
    /// The kernel bf16 products take (`AMX tiles`, `AVX-512-BF16`), `None`
    /// where `--precision bf16` is refused.
    pub bf16_kernel: Option<&'static str>,
    /// Why bf16 products do not run on AMX tiles; `None` where they do.
    pub amx_not_taken_because: Option<String>,
    pub kernel_times: Option<KernelTimes>,
    /// `None` where the CPU has no bf16 products.
    pub bf16_vs_fp32: Option<Bf16VsFp32>,
}

/// This CPU's report (choosing the bf16 kernel and measuring bf16 against
/// fp32 if not yet done in this process: a fraction of a second).
pub fn report() -> CpuReport {
    let kernel = grad_kernels::bf16_kernel();
    let speed = bf16_speed::measure();
    CpuReport {
        model: model_name(),
        threads: rayon::current_num_threads(),
        features: features(),
        lanes16: super::lanes16::available(),
        bf16_kernel: kernel.map(|k| k.name()),
        amx_not_taken_because: grad_kernels::amx_not_taken_because(),
        kernel_times: grad_kernels::bf16_kernel_times().map(|t| KernelTimes {
            amx_ms: t.amx_ms,
            avx512_ms: t.avx512_ms,
        }),
        bf16_vs_fp32: speed.map(|s| Bf16VsFp32 {
            fp32_ms: s.fp32_ms,
            bf16_ms: s.bf16_ms,
            speedup: s.speedup(),
            pays: s.pays(),
            verdict: s.verdict(),
        }),
    }
}

fn features() -> Features {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        Features {
            avx2: has!("avx2"),
            fma: has!("fma"),
            avx512f: has!("avx512f"),
            avx512_bf16: has!("avx512bf16"),
            amx_bf16: grad_kernels::cpu_has_amx(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Features {
            avx2: false,
            fma: false,
            avx512f: false,
            avx512_bf16: false,
            amx_bf16: false,
        }
    }
}

/// CPUID's brand string (leaves 0x80000002–4), trimmed; `unknown` where
/// the CPU has none.
fn model_name() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // SAFETY: CPUID exists on every x86-64 CPU; the brand leaves are
        // read only where the highest extended leaf covers them.
        #[allow(unused_unsafe)]
        let bytes: Vec<u8> = unsafe {
            if __cpuid(0x8000_0000).eax < 0x8000_0004 {
                return "unknown".into();
            }
            (0x8000_0002u32..=0x8000_0004)
                .flat_map(|leaf| {
                    let r = __cpuid(leaf);
                    [r.eax, r.ebx, r.ecx, r.edx]
                })
                .flat_map(u32::to_le_bytes)
                .collect()
        };
        let text = String::from_utf8_lossy(&bytes);
        let name = text.trim_matches(char::from(0)).trim();
        if name.is_empty() {
            "unknown".into()
        } else {
            name.split_whitespace().collect::<Vec<_>>().join(" ")
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "unknown".into()
    }
}
