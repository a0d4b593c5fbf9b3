//! The AMX kernel (Intel Sapphire Rapids and later): `tdpbf16ps` multiplies
//! a 16 × 32 bf16 tile of `A` by a 32 × 16 tile of `B` into a 16 × 16 tile of
//! `f32` sums, 8,192 products an instruction.
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are inline
//! `asm!`, each wrapped in one of the few operations of [`Tiles`]; the
//! kernel is written in those operations alone. Tests run the same kernel on
//! an emulation of the tiles that follows the instructions' definitions in
//! Intel's manual (so the packing, addresses, strides and edges are checked
//! on every CPU), and on the tiles themselves where the CPU has them. Before
//! bertscope takes the AMX kernel in a process it checks one product against
//! bf16-rounded `f64` sums; a CPU that disagrees keeps the AVX-512 kernel.
//!
//! Linux gives a process the tiles' 8 KiB of state only when asked
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); where it refuses,
//! the kernel is not used.

use std::sync::OnceLock;

use super::{ALayout, TileProduct, NR};

/// Rows of `C` per kernel call: two tiles of 16 rows.
const MR: usize = 32;
// A tile fits the bf16 destination's buffer, and bf16 rows hold whole tiles.
const _: () = assert!(MR <= super::MAX_MR && super::rows::ROW_TILES.is_multiple_of(MR));
/// Rows of a tile.
const TILE_ROWS: usize = 16;
/// Pairs of `k` in a tile row of `A` (64 bytes), and rows of a `B` tile.
const TILE_PAIRS: usize = 16;
/// Bytes in a tile row.
const TILE_ROW_BYTES: usize = 64;

/// Why the AMX kernel is not used here; `None` where it is usable.
pub(super) fn unusable_because() -> Option<&'static str> {
    UNUSABLE
        .get_or_init(|| {
            if !cpu_has_amx() {
                Some("this CPU has no AMX-BF16".to_string())
            } else {
                tile_permission().err().map(|why| {
                    format!("the operating system did not grant this process the AMX tile state ({why})")
                })
            }
        })
        .as_deref()
}

static UNUSABLE: OnceLock<Option<String>> = OnceLock::new();

/// CPUID leaf 7: AMX-BF16 (EDX bit 22) and AMX-TILE (EDX bit 24).
pub(super) fn cpu_has_amx() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only where
    // the CPU reports it.
    #[allow(unused_unsafe)]
    let edx = unsafe {
        if __cpuid(0).eax < 7 {
            return false;
        }
        __cpuid_count(7, 0).edx
    };
    edx & (1 << 22) != 0 && edx & (1 << 24) != 0
}

/// Asks Linux for the tile data state (once per process: the grant holds
/// for all its threads) and reads back whether it was granted; the reason
/// where it was not (an old kernel answers EINVAL; ENOSPC where a thread's
/// signal stack is too small for the tile state).
fn tile_permission() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        let mut granted: u64 = 0;
        let failed = |call: &str| format!("{call}: {}", std::io::Error::last_os_error());
        // SAFETY: `arch_prctl` with these codes takes a feature number, or a
        // pointer to a u64 it writes the granted features to.
        unsafe {
            if libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) != 0
            {
                return Err(failed("ARCH_REQ_XCOMP_PERM"));
            }
            let read = &mut granted as *mut u64;
            if libc::syscall(libc::SYS_arch_prctl, ARCH_GET_XCOMP_PERM, read) != 0 {
                return Err(failed("ARCH_GET_XCOMP_PERM"));
            }
        }
        if granted & (1 << XFEATURE_XTILEDATA) == 0 {
            return Err("granted features lack XTILEDATA".to_string());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("tile permission is asked of Linux only".to_string())
    }
}

/// The operations the kernel is written in, on eight tiles of 16 rows × 64
/// bytes: tiles 0–3 hold `C`'s 2 × 2 blocks of 16 × 16 `f32`, tiles 4–5
/// `A`'s two blocks of 16 rows × 16 pairs, tiles 6–7 `B`'s two blocks of
/// 16 pairs × 16 columns.
pub(super) trait Tiles {
    /// The tiles configured for that layout, each thread its own.
    fn configured() -> Self;
    /// `C`'s four tiles set to zero.
    ///
    /// # Safety
    /// `self` is configured (it always is).
    unsafe fn zero_c(&mut self);
    /// `C`'s blocks `[0][0]`, `[0][1]`, `[1][0]`, `[1][1]` from `c[0..4]`,
    /// rows `stride` bytes apart.
    ///
    /// # Safety
    /// Each block's 16 rows of 64 bytes are readable.
    unsafe fn load_c(&mut self, c: [*const f32; 4], stride: usize);
    /// `A`'s blocks from `a[0]`, `a[1]` (rows `a_stride` bytes apart) and
    /// `B`'s from `b[0]`, `b[1]` (rows `b_stride` bytes apart).
    ///
    /// # Safety
    /// Each block's 16 rows of 64 bytes are readable.
    unsafe fn load(
        &mut self,
        a: [*const u32; 2],
        a_stride: usize,
        b: [*const u32; 2],
        b_stride: usize,
    );
    /// `C[i][j] += A[i] · B[j]` for the four blocks (`tdpbf16ps`).
    ///
    /// # Safety
    /// `self` is configured.
    unsafe fn dot(&mut self);
    /// `C`'s blocks `[0][0]`, `[0][1]`, `[1][0]`, `[1][1]` to `c[0..4]`,
    /// rows `stride` bytes apart.
    ///
    /// # Safety
    /// Each block's 16 rows of 64 bytes are writable.
    unsafe fn store_c(&mut self, c: [*mut f32; 4], stride: usize);
}

/// The kernel on a tile unit: the CPU's ([`Hardware`]) or, in tests, an
/// emulation.
pub(super) struct Amx<U>(std::marker::PhantomData<fn() -> U>);

impl Amx<Hardware> {
    /// The kernel on this CPU's tiles, where they are usable.
    pub(super) fn new() -> Option<Self> {
        unusable_because()
            .is_none()
            .then_some(Amx(std::marker::PhantomData))
    }
}

impl<U: Tiles> TileProduct for Amx<U> {
    const MR: usize = MR;
    /// Four blocks of 32 rows share each panel of B.
    const GROUP: usize = 4;
    /// A panel of B (`KC` × [`NR`] pairs, 32 KiB) fits L1.
    const KC: usize = 256;
    type Task = U;

    fn padded(pairs: usize) -> usize {
        pairs.next_multiple_of(TILE_PAIRS)
    }

    fn task(&self) -> U {
        U::configured()
    }

    /// `out` (32 × [`NR`]) = the block of `A` (32 rows of `pairs`,
    /// `a_stride` pairs apart) times the panel of `B` (`pairs` rows of
    /// [`NR`] columns), a tile of 16 pairs at a time; with `onto`, the tiles
    /// start from `out`'s sums.
    fn tile(
        &self,
        tiles: &mut U,
        (a, layout): (&[u32], ALayout),
        b: &[u32],
        pairs: usize,
        out: &mut [f32],
        onto: bool,
    ) {
        let a_pairs = layout.row;
        assert!(
            pairs.is_multiple_of(TILE_PAIRS)
                && layout.pair == 1
                && a_pairs >= pairs
                && a.len() >= (MR - 1) * a_pairs + pairs
                && b.len() >= pairs * NR
                && out.len() >= MR * NR,
            "AMX tile: operands shorter than {pairs} pairs"
        );
        let (a_stride, b_stride) = (a_pairs * 4, NR * 4);
        // SAFETY: every block read lies within `a` (rows `r < 32`, pairs
        // `q * 16 + 16 <= pairs`) or `b` (rows `q * 16 + 15 < pairs`, 32
        // columns), and each block written within `out` (32 × 32), as
        // asserted above; the tiles were configured when the task began.
        unsafe {
            let c = out.as_mut_ptr();
            let lower = c.add(TILE_ROWS * NR);
            let blocks = [c, c.add(16), lower, lower.add(16)];
            if onto {
                tiles.load_c(blocks.map(<*mut f32>::cast_const), NR * 4);
            } else {
                tiles.zero_c();
            }
            for q in 0..pairs / TILE_PAIRS {
                let a0 = a.as_ptr().add(q * TILE_PAIRS);
                let b0 = b.as_ptr().add(q * TILE_PAIRS * NR);
                tiles.load(
                    [a0, a0.add(TILE_ROWS * a_pairs)],
                    a_stride,
                    [b0, b0.add(16)],
                    b_stride,
                );
                tiles.dot();
            }
            tiles.store_c(blocks, NR * 4);
        }
    }
}

/// `ldtilecfg`'s 64 bytes: palette 1, then each tile's bytes per row and rows.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    /// Tiles 0–7 at 16 rows × 64 bytes.
    fn full() -> Self {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        config.bytes_per_row[..8].fill(TILE_ROW_BYTES as u16);
        config.rows[..8].fill(TILE_ROWS as u8);
        config
    }
}

/// This CPU's tiles, configured on the thread that holds the value and
/// released when the thread's last one is dropped. It stays on its thread
/// (not `Send`): another thread's tiles were never configured.
///
/// A thread's tasks can nest: a task waiting inside a parallel loop (a
/// tile's finishing function that used rayon) may run another group's task
/// on the same thread. The configuration is the same for all, so the count
/// of live values per thread decides when the tiles are released, never
/// under a task that still uses them.
pub(super) struct Hardware(std::marker::PhantomData<*const ()>);

thread_local! {
    /// `Hardware` values alive on this thread.
    static CONFIGURED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Tiles for Hardware {
    fn configured() -> Self {
        assert!(
            unusable_because().is_none(),
            "AMX tiles configured where they are unusable"
        );
        let config = TileConfig::full();
        // SAFETY: the CPU has AMX and Linux granted the tile state (asserted
        // above); `config` is a valid palette-1 configuration.
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) &config, options(nostack));
        }
        CONFIGURED.with(|n| n.set(n.get() + 1));
        Hardware(std::marker::PhantomData)
    }

    unsafe fn zero_c(&mut self) {
        unsafe {
            std::arch::asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
    }

    unsafe fn load_c(&mut self, c: [*const f32; 4], stride: usize) {
        unsafe {
            std::arch::asm!(
                "tileloadd tmm0, [{c0} + {s} * 1]",
                "tileloadd tmm1, [{c1} + {s} * 1]",
                "tileloadd tmm2, [{c2} + {s} * 1]",
                "tileloadd tmm3, [{c3} + {s} * 1]",
                c0 = in(reg) c[0],
                c1 = in(reg) c[1],
                c2 = in(reg) c[2],
                c3 = in(reg) c[3],
                s = in(reg) stride,
                options(nostack, readonly)
            );
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
            std::arch::asm!(
                "tileloadd tmm4, [{a0} + {sa} * 1]",
                "tileloadd tmm5, [{a1} + {sa} * 1]",
                "tileloadd tmm6, [{b0} + {sb} * 1]",
                "tileloadd tmm7, [{b1} + {sb} * 1]",
                a0 = in(reg) a[0],
                a1 = in(reg) a[1],
                b0 = in(reg) b[0],
                b1 = in(reg) b[1],
                sa = in(reg) a_stride,
                sb = in(reg) b_stride,
                options(nostack, readonly)
            );
        }
    }

    unsafe fn dot(&mut self) {
        unsafe {
            std::arch::asm!(
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                options(nostack, nomem)
            );
        }
    }

    unsafe fn store_c(&mut self, c: [*mut f32; 4], stride: usize) {
        unsafe {
            std::arch::asm!(
                "tilestored [{c0} + {s} * 1], tmm0",
                "tilestored [{c1} + {s} * 1], tmm1",
                "tilestored [{c2} + {s} * 1], tmm2",
                "tilestored [{c3} + {s} * 1], tmm3",
                c0 = in(reg) c[0],
                c1 = in(reg) c[1],
                c2 = in(reg) c[2],
                c3 = in(reg) c[3],
                s = in(reg) stride,
                options(nostack)
            );
        }
    }
}

impl Drop for Hardware {
    fn drop(&mut self) {
        let last = CONFIGURED.with(|n| {
            n.set(n.get() - 1);
            n.get() == 0
        });
        if last {
            // SAFETY: the tiles were configured by this value's `configured`.
            unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
        }
    }
}

/// Whether the AMX kernel gives this CPU's tiles the right products: one
/// product with every edge (rows, columns and `k` not whole tiles, a
/// transposed operand) against bf16-rounded `f64` sums.
pub(super) fn agrees_with_reference() -> bool {
    let Some(kernel) = Amx::new() else {
        return false;
    };
    // Apart from the shared pool: see `choice::apart`.
    super::choice::apart(|| super::agrees(&kernel, (45, 70, 100))).unwrap_or(false)
}

#[cfg(test)]
mod tests;
