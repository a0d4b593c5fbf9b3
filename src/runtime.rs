//! Process-wide tuning for tensor workloads.

/// Keep freed tensor buffers in the heap instead of returning them to the OS.
///
/// glibc serves allocations above 128 KiB with fresh `mmap`s and unmaps them on
/// free; a training step allocates and frees hundreds of multi-megabyte
/// tensors, so every step paid for page faults, zeroing and TLB shootdowns
/// (a third of the CPU time here). Raising the thresholds lets the heap reuse
/// them; measured: 2× the fine-tuning throughput, inference unchanged.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called once at start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        // Above 32 MiB (the most M_MMAP_THRESHOLD takes) glibc still maps
        // fresh pages: the word-embedding gradient (47 MB for MiniLM) paid
        // its page faults on every micro-batch. No mmap at all: +6%.
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}

/// candle's pool for elementwise ops spins 25,000 turns after every job,
/// holding a core that rayon's workers (the fused kernels, gemm) need on a
/// small machine; its threads park at once instead (+13% fine-tuning
/// throughput on 2 cores), unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set.
/// Call first thing in `main`, before any thread starts.
pub fn tune_threads() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1");
    }
}
