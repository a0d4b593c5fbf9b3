use super::super::tests::check_every_layout;
use super::*;

/// The tile unit in software, instruction by instruction as Intel's manual
/// defines them (palette 1, every tile 16 rows × 64 bytes): `tileloadd` and
/// `tilestored` move 16 rows of 64 bytes at a stride; `tdpbf16ps` adds, for
/// each row `m` and column `n` of `C`, `A[m].bf16[2k] · B[k].bf16[2n]` and
/// then `A[m].bf16[2k+1] · B[k].bf16[2n+1]` for each `k` in turn, in `f32`,
/// with denormal inputs read as zero and denormal results flushed to zero.
struct Emulated {
    /// Eight tiles of 16 rows of 16 `u32` (64 bytes).
    tiles: [[[u32; 16]; 16]; 8],
}

impl Emulated {
    unsafe fn load_tile(&mut self, t: usize, base: *const u32, stride: usize) {
        for r in 0..TILE_ROWS {
            let row = unsafe { base.cast::<u8>().add(r * stride).cast::<u32>() };
            for w in 0..16 {
                self.tiles[t][r][w] = unsafe { row.add(w).read_unaligned() };
            }
        }
    }

    unsafe fn store_tile(&self, t: usize, base: *mut f32, stride: usize) {
        for r in 0..TILE_ROWS {
            let row = unsafe { base.cast::<u8>().add(r * stride).cast::<u32>() };
            for w in 0..16 {
                unsafe { row.add(w).write_unaligned(self.tiles[t][r][w]) };
            }
        }
    }

    fn tdpbf16ps(&mut self, c: usize, a: usize, b: usize) {
        let daz = |bits: u32| {
            let x = f32::from_bits(bits << 16);
            if x.is_subnormal() {
                0.0
            } else {
                x
            }
        };
        let ftz = |x: f32| {
            if x.is_subnormal() {
                0.0 * x.signum()
            } else {
                x
            }
        };
        for m in 0..TILE_ROWS {
            for n in 0..16 {
                let mut sum = f32::from_bits(self.tiles[c][m][n]);
                for k in 0..TILE_PAIRS {
                    let (pa, pb) = (self.tiles[a][m][k], self.tiles[b][k][n]);
                    sum = ftz(sum + daz(pa & 0xffff) * daz(pb & 0xffff));
                    sum = ftz(sum + daz(pa >> 16) * daz(pb >> 16));
                }
                self.tiles[c][m][n] = sum.to_bits();
            }
        }
    }
}

impl Tiles for Emulated {
    fn configured() -> Self {
        // `ldtilecfg` zeroes every tile.
        Emulated {
            tiles: [[[0; 16]; 16]; 8],
        }
    }

    unsafe fn zero_c(&mut self) {
        for tile in &mut self.tiles[..4] {
            *tile = [[0; 16]; 16];
        }
    }

    unsafe fn load_c(&mut self, c: [*const f32; 4], stride: usize) {
        for (t, &at) in c.iter().enumerate() {
            unsafe { self.load_tile(t, at.cast(), stride) };
        }
    }

    unsafe fn load(
        &mut self,
        a: [*const u32; 2],
        a_stride: usize,
        b: [*const u32; 2],
        b_stride: usize,
    ) {
        unsafe {
            self.load_tile(4, a[0], a_stride);
            self.load_tile(5, a[1], a_stride);
            self.load_tile(6, b[0], b_stride);
            self.load_tile(7, b[1], b_stride);
        }
    }

    unsafe fn dot(&mut self) {
        self.tdpbf16ps(0, 4, 6);
        self.tdpbf16ps(1, 4, 7);
        self.tdpbf16ps(2, 5, 6);
        self.tdpbf16ps(3, 5, 7);
    }

    unsafe fn store_c(&mut self, c: [*mut f32; 4], stride: usize) {
        for (t, &at) in c.iter().enumerate() {
            unsafe { self.store_tile(t, at, stride) };
        }
    }
}

/// The emulation itself, against sums worked out by hand: `C[m][n]` gets
/// the pairs of row `m` of `A` times the pairs of column `n` of `B`.
#[test]
fn the_emulated_instruction_follows_its_definition() {
    let bf = |x: f32| u32::from(half::bf16::from_f32(x).to_bits());
    let pair = |even: f32, odd: f32| bf(even) | bf(odd) << 16;
    let mut unit = Emulated::configured();
    // A row 0: pairs (1, 2), (3, 4); B rows 0, 1 (pairs of k), column 0:
    // (5, 6), (7, 8); column 1: (-1, 0.5), (0, 0).
    unit.tiles[4][0][0] = pair(1.0, 2.0);
    unit.tiles[4][0][1] = pair(3.0, 4.0);
    unit.tiles[6][0][0] = pair(5.0, 6.0);
    unit.tiles[6][1][0] = pair(7.0, 8.0);
    unit.tiles[6][0][1] = pair(-1.0, 0.5);
    unit.tiles[0][0][1] = 10f32.to_bits();
    unit.tdpbf16ps(0, 4, 6);
    let c = |n: usize| f32::from_bits(unit.tiles[0][0][n]);
    assert_eq!(c(0), 1.0 * 5.0 + 2.0 * 6.0 + 3.0 * 7.0 + 4.0 * 8.0);
    assert_eq!(c(1), 10.0 - 1.0 + 2.0 * 0.5, "10 + 1 · -1 + 2 · 0.5");
    assert_eq!(c(2), 0.0);
    assert_eq!(
        f32::from_bits(unit.tiles[0][1][0]),
        0.0,
        "row 1 of A is zero"
    );
}

/// The AMX kernel (packing, tile addresses and strides, the 2 × 2 blocks,
/// the edges) on the emulated tiles, on every CPU.
#[test]
fn the_amx_kernel_on_emulated_tiles_equals_the_reference_for_every_layout() {
    let kernel: Amx<Emulated> = Amx(std::marker::PhantomData);
    check_every_layout(&kernel, "AMX (emulated tiles)");
}

/// The choice between AMX and AVX-512-BF16 is measured: the emulated tiles
/// (scalar code) time slower than AVX-512-BF16 on the same product, and
/// the slower kernel is not taken; a tie keeps AVX-512-BF16.
#[test]
fn the_slower_kernel_is_not_taken() {
    use super::super::avx512::Avx512;
    use super::super::choice::{time_ms, KernelTimes};
    let Some(avx512) = Avx512::new() else {
        eprintln!("skipped: this CPU lacks AVX-512-BF16, so there is no second kernel to time");
        return;
    };
    let emulated: Amx<Emulated> = Amx(std::marker::PhantomData);
    let dims = (64, 64, 64);
    let times = KernelTimes {
        amx_ms: time_ms(&emulated, dims, 1),
        avx512_ms: time_ms(&avx512, dims, 1),
    };
    assert!(
        times.amx_ms.is_finite() && times.avx512_ms > 0.0,
        "{times:?}"
    );
    assert_eq!(times.chosen(), super::super::Kernel::Avx512, "{times:?}");
    let faster = KernelTimes {
        amx_ms: 1.0,
        avx512_ms: 2.0,
    };
    assert_eq!(faster.chosen(), super::super::Kernel::Amx);
    let tie = KernelTimes {
        amx_ms: 2.0,
        avx512_ms: 2.0,
    };
    assert_eq!(tie.chosen(), super::super::Kernel::Avx512);
}

/// The AMX kernel on this CPU's tiles, and the AVX-512-BF16 kernel beside
/// it, against the same reference.
#[test]
fn amx_and_avx512_kernels_equal_the_same_reference() {
    let Some(kernel) = Amx::new() else {
        let why = unusable_because().unwrap_or("AMX unusable");
        eprintln!(
            "skipped: {why}, so the AMX kernel cannot run here (its emulated run is checked)"
        );
        return;
    };
    check_every_layout(&kernel, "AMX");
    match super::super::avx512::Avx512::new() {
        Some(avx512) => check_every_layout(&avx512, "AVX-512-BF16"),
        None => eprintln!("this CPU has AMX but no AVX-512-BF16: only AMX checked"),
    }
    assert!(agrees_with_reference(), "the start-up check agrees");
}

/// The emulated run again, under valgrind's memcheck: every tile load and
/// store the kernel issues (16 rows of 64 bytes at its strides, as the
/// tiles move them) stays inside the buffers it was given, at every layout,
/// so the real tiles read no byte past an edge either. Memcheck hides
/// AVX-512 from the code it runs, which then takes its portable paths.
/// Where valgrind is not installed the test says so (CI installs it).
#[test]
fn the_amx_kernel_touches_only_its_buffers() {
    let exact = concat!(
        "model::grad_kernels::bf16::amx::tests::",
        "the_amx_kernel_on_emulated_tiles_equals_the_reference_for_every_layout"
    );
    let exe = std::env::current_exe().expect("the test binary's path");
    let run = std::process::Command::new("valgrind")
        .args(["--error-exitcode=9", "-q", "--redzone-size=4096"])
        .arg(exe)
        .args(["--exact", exact, "--test-threads", "1"])
        .output();
    let out = match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "skipped: valgrind is not installed, so the tiles' memory reach is unchecked"
            );
            return;
        }
        other => other.expect("run valgrind"),
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "memcheck: {stderr}\n{stdout}");
    assert!(
        stdout.contains("1 passed"),
        "the emulated run ran: {stdout}"
    );
}
