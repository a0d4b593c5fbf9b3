//! The element-wise loops that weigh most after the matrix products — GELU's
//! `erf`, softmax's `exp`, attention entropy's `log₂` — on 16 lanes (AVX-512F) with fused
//! multiply-adds. The formulas are `kernels::{erf, exp}`'s; compiled from
//! plain Rust they run as separate multiplies and adds in one long chain per
//! value (about 8 cycles a value on an AMD EPYC), here the chain is half as
//! long and 16 values share it. A value may differ from the scalar formula's
//! in its last bit (a fused multiply-add rounds once).
//!
//! Each function returns `false`, having done nothing, on a CPU without
//! AVX-512F; the caller then runs its portable loop.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

pub mod attention;

/// Whether this CPU runs the 16-lane loops.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Exact GELU, `x·Φ(x)`, in place.
pub fn gelu(values: &mut [f32]) -> bool {
    if !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F (checked above).
    unsafe {
        gelu_run(values)
    };
    true
}

/// Exact GELU of `z` to `y`, and `z` replaced by its derivative
/// `Φ(z) + z·φ(z)`.
pub fn gelu_keeping_grad(z: &mut [f32], y: &mut [f32]) -> bool {
    if !available() {
        return false;
    }
    assert!(y.len() >= z.len(), "GELU: fewer outputs than inputs");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F (checked above).
    unsafe {
        gelu_grad_rows(z, y)
    };
    true
}

/// Softmax of one row of scores in place; keys whose `mask` is false get
/// exactly zero (a row with none kept is all zeros).
pub fn softmax_masked(scores: &mut [f32], mask: &[bool]) -> bool {
    if !available() {
        return false;
    }
    assert_eq!(scores.len(), mask.len(), "softmax: one mask flag a score");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F (checked above).
    unsafe {
        softmax_row(scores, Flags(mask), 1.0, None)
    };
    true
}

/// `y = softmax(scale·s + mask)` of one row, `mask` additive (0, or a large
/// negative); an exponent below −87 gives exactly zero.
pub fn softmax_scaled(s: &[f32], mask: Option<&[f32]>, scale: f32, y: &mut [f32]) -> bool {
    if !available() {
        return false;
    }
    assert!(
        y.len() == s.len() && mask.is_none_or(|m| m.len() == s.len()),
        "softmax: rows of different lengths"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F (checked above).
    unsafe {
        match mask {
            Some(mask) => softmax_row(y, Added(mask), scale, Some(s)),
            None => softmax_row(y, AllKeys, scale, Some(s)),
        }
    };
    true
}

/// The entropy of a row of probabilities in bits, `−Σ p·log₂ p` over its
/// positive values (0·log 0 = 0); `None` on a CPU without AVX-512F.
pub fn entropy_bits(p: &[f32]) -> Option<f32> {
    if !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F (checked above).
    return Some(unsafe { entropy_row(p) });
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `log₂ x` for positive `x` (Cephes `logf`: the mantissa reduced to
/// [√½, √2), `ln(1 + f)` by its degree-8 polynomial, to within ~1 ulp), the
/// exponent taken by `vgetexpps` (subnormal `x` included).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn log2_16(x: __m512) -> __m512 {
    let c = _mm512_set1_ps;
    let mut e = _mm512_getexp_ps(x);
    let mut m = _mm512_getmant_ps::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_ZERO>(x);
    let high = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m, c(std::f32::consts::SQRT_2));
    m = _mm512_mask_mul_ps(m, high, m, c(0.5));
    e = _mm512_mask_add_ps(e, high, e, c(1.0));
    let f = _mm512_sub_ps(m, c(1.0));
    let mut p = c(7.037_683_6e-2);
    for k in [
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ] {
        p = _mm512_fmadd_ps(p, f, c(k));
    }
    let f2 = _mm512_mul_ps(f, f);
    // ln(1 + f) = f − f²/2 + f³·P(f)
    let tail = _mm512_fmadd_ps(_mm512_mul_ps(f2, f), p, _mm512_mul_ps(f2, c(-0.5)));
    let ln = _mm512_add_ps(f, tail);
    _mm512_fmadd_ps(ln, c(std::f32::consts::LOG2_E), e)
}

/// `−Σ p·log₂ p` over the positive values of `p`.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn entropy_row(p: &[f32]) -> f32 {
    let len = p.len();
    let mut sum = _mm512_setzero_ps();
    for at in (0..len).step_by(16) {
        let m = lanes(at, len);
        // SAFETY: the mask lets through only the lanes below `len`.
        let x = unsafe { load(m, p.as_ptr().add(at)) };
        let positive = m & _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_setzero_ps());
        let term = _mm512_mul_ps(x, log2_16(x));
        sum = _mm512_mask_sub_ps(sum, positive, sum, term);
    }
    _mm512_reduce_add_ps(sum)
}

/// `eˣ` as `kernels::exp`: clamped to [−87, 88], reduced by ln 2, Cephes'
/// degree-6 polynomial, scaled by 2ⁿ through the exponent bits.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    let c = _mm512_set1_ps;
    let x = _mm512_min_ps(_mm512_max_ps(x, c(-87.0)), c(88.0));
    let round = c(12_582_912.0);
    let shifted = _mm512_fmadd_ps(x, c(std::f32::consts::LOG2_E), round);
    let n = _mm512_sub_ps(shifted, round);
    let r = _mm512_fnmadd_ps(n, c(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, c(-2.121_944_4e-4), r);
    let mut p = c(1.987_569_1e-4);
    for k in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5e-1,
    ] {
        p = _mm512_fmadd_ps(p, r, c(k));
    }
    let e = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, c(1.0)));
    let n_int = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(round));
    let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(n_int, _mm512_set1_epi32(127)));
    _mm512_mul_ps(e, _mm512_castsi512_ps(scale))
}

/// `erf(x)` as `kernels::erf`: the rational approximation `x·P(x²)/Q(x²)`,
/// |x| clamped to its [`kernels::ERF_CLAMP`].
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn erf16(x: __m512) -> __m512 {
    use crate::model::kernels::{ERF_CLAMP, ERF_P, ERF_Q};
    let c = _mm512_set1_ps;
    let x = _mm512_min_ps(_mm512_max_ps(x, c(-ERF_CLAMP)), c(ERF_CLAMP));
    let t = _mm512_mul_ps(x, x);
    let mut p = c(ERF_P[5]);
    for &k in ERF_P[..5].iter().rev() {
        p = _mm512_fmadd_ps(p, t, c(k));
    }
    let mut q = c(ERF_Q[4]);
    for &k in ERF_Q[..4].iter().rev() {
        q = _mm512_fmadd_ps(q, t, c(k));
    }
    q = _mm512_fmadd_ps(q, t, c(1.0));
    _mm512_div_ps(_mm512_mul_ps(x, p), q)
}

/// GELU of `x` and `Φ(x)`, the normal CDF it multiplies.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu16(x: __m512) -> (__m512, __m512) {
    let half = _mm512_set1_ps(0.5);
    let r = erf16(_mm512_mul_ps(
        x,
        _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
    ));
    let cdf = _mm512_fmadd_ps(half, r, half);
    (_mm512_mul_ps(x, cdf), cdf)
}

/// The lanes of a block of `n` values starting at `at` within `len`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn lanes(at: usize, len: usize) -> __mmask16 {
    below(len - at)
}

/// The lanes of a 16-lane register below `n` (all of them from 16 on).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn below(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

/// The lanes `m` of 16 values at `at`, the others zero. A whole block is
/// read with a plain load: Zen 4 forwards a store to a later load of the
/// same bytes only when neither is masked, and these loops read what the
/// previous pass (or the caller) has just written.
///
/// # Safety
/// The lanes of `m` are readable.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load(m: __mmask16, at: *const f32) -> __m512 {
    // SAFETY: the caller's promise.
    unsafe {
        if m == 0xffff {
            _mm512_loadu_ps(at)
        } else {
            _mm512_maskz_loadu_ps(m, at)
        }
    }
}

/// The lanes `m` of `v` written at `at` (a whole block with a plain store;
/// see [`load`]).
///
/// # Safety
/// The lanes of `m` are writable.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store(at: *mut f32, m: __mmask16, v: __m512) {
    // SAFETY: the caller's promise.
    unsafe {
        if m == 0xffff {
            _mm512_storeu_ps(at, v)
        } else {
            _mm512_mask_storeu_ps(at, m, v)
        }
    }
}

/// GELU in place, 16 values at a time (the last block masked).
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_run(values: &mut [f32]) {
    let len = values.len();
    let at_ptr = values.as_mut_ptr();
    for at in (0..len).step_by(16) {
        let m = lanes(at, len);
        // SAFETY: the mask lets through only the lanes below `len`.
        unsafe {
            let x = load(m, at_ptr.add(at));
            store(at_ptr.add(at), m, gelu16(x).0);
        }
    }
}

/// GELU of `z` to `y`, and `z` replaced by GELU's derivative.
///
/// # Safety
/// The CPU has AVX-512F; `y` is at least as long as `z`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_grad_rows(z: &mut [f32], y: &mut [f32]) {
    let len = z.len();
    let inv_sqrt_2pi = _mm512_set1_ps(0.398_942_3);
    for at in (0..len).step_by(16) {
        let m = lanes(at, len);
        // SAFETY: the mask lets through only the lanes below `len`, and
        // `y` holds at least `len` values.
        unsafe {
            let x = load(m, z.as_ptr().add(at));
            let (value, cdf) = gelu16(x);
            let density = exp16(_mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(-0.5)));
            let grad = _mm512_fmadd_ps(_mm512_mul_ps(x, inv_sqrt_2pi), density, cdf);
            store(y.as_mut_ptr().add(at), m, value);
            store(z.as_mut_ptr().add(at), m, grad);
        }
    }
}

/// Which keys of a softmax row count, and how: every key
/// ([`AllKeys`]), those flagged ([`Flags`]), or every key with a value
/// added to its scaled score ([`Added`]). Each kind compiles its own loops.
#[cfg(target_arch = "x86_64")]
trait KeySet: Copy {
    /// Whether an exponent below −87 gives zero (with flags, the keys out
    /// are zeroed by their flags and every other exponent is kept).
    const FLOOR: bool;
    /// The lanes of the block at `at` that count: `m` less the keys out.
    fn kept(self, at: usize, m: __mmask16) -> __mmask16;
    /// The scaled scores `v` of the block at `at` (lanes `m`), with what
    /// this kind adds.
    ///
    /// # Safety
    /// The lanes `m` from `at` are within the row.
    unsafe fn added(self, _at: usize, _m: __mmask16, v: __m512) -> __m512 {
        v
    }
}

/// Every key counts.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct AllKeys;

/// Keys flagged false get exactly zero.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Flags<'a>(&'a [bool]);

/// Added to the scaled scores (0, or a large negative).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Added<'a>(&'a [f32]);

#[cfg(target_arch = "x86_64")]
impl KeySet for AllKeys {
    const FLOOR: bool = true;
    fn kept(self, _at: usize, m: __mmask16) -> __mmask16 {
        m
    }
}

#[cfg(target_arch = "x86_64")]
impl KeySet for Flags<'_> {
    const FLOOR: bool = false;
    #[inline(always)]
    fn kept(self, at: usize, m: __mmask16) -> __mmask16 {
        if m == 0xffff {
            let block = &self.0[at..at + 16];
            // SAFETY: a bool is one byte, 0 or 1, and `block` holds 16.
            let (low, high) = unsafe {
                let bytes = block.as_ptr().cast::<u64>();
                (bytes.read_unaligned(), bytes.add(1).read_unaligned())
            };
            // Byte i's low bit to bit 56 + i of the product.
            let gather = |x: u64| (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u16;
            return gather(low) | gather(high) << 8;
        }
        let mut bits = 0u16;
        for (i, &keep) in self.0[at..].iter().take(16).enumerate() {
            bits |= u16::from(keep) << i;
        }
        m & bits
    }
}

#[cfg(target_arch = "x86_64")]
impl KeySet for Added<'_> {
    const FLOOR: bool = true;
    fn kept(self, _at: usize, m: __mmask16) -> __mmask16 {
        m
    }
    #[inline(always)]
    unsafe fn added(self, at: usize, m: __mmask16, v: __m512) -> __m512 {
        // SAFETY: the caller's promise (`added` is as long as the row), and
        // the callers run on AVX-512F.
        unsafe { _mm512_add_ps(v, load(m, self.0.as_ptr().add(at))) }
    }
}

/// `block(at, lanes)` for each block of 16 values of a row of `len`: the
/// whole ones with every lane, then the last with its lanes below `len`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn blocks(len: usize, mut block: impl FnMut(usize, __mmask16)) {
    let whole = len - len % 16;
    for at in (0..whole).step_by(16) {
        block(at, 0xffff);
    }
    if whole < len {
        block(whole, lanes(whole, len));
    }
}

/// One softmax row into `y`: from `source` (scaled by `scale`, with what
/// the keys add) or, without one, from `y` itself.
///
/// # Safety
/// The CPU has AVX-512F; `source` and the keys (when given) are as long as
/// `y`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_row<K: KeySet>(y: &mut [f32], keys: K, scale: f32, source: Option<&[f32]>) {
    let len = y.len();
    let out = y.as_mut_ptr();
    let from = source.map_or(out.cast_const(), <[f32]>::as_ptr);
    let scale = _mm512_set1_ps(scale);
    let floor = _mm512_set1_ps(-87.0);
    // Pass 1: the scaled scores into y, and their maximum over kept keys.
    let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
    blocks(len, |at, m| {
        // SAFETY: masked to the lanes below `len` of rows of `len`.
        unsafe {
            let v = keys.added(at, m, _mm512_mul_ps(load(m, from.add(at)), scale));
            store(out.add(at), m, v);
            max = _mm512_mask_max_ps(max, keys.kept(at, m), max, v);
        }
    });
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
    // Pass 2: the exponentials (zero for keys out, and below e⁻⁸⁷), summed.
    let mut sum = _mm512_setzero_ps();
    blocks(len, |at, m| {
        // SAFETY: as above.
        unsafe {
            let d = _mm512_sub_ps(load(m, out.add(at)), max);
            let mut live = keys.kept(at, m);
            if K::FLOOR {
                live &= _mm512_cmp_ps_mask::<_CMP_GT_OQ>(d, floor);
            }
            let e = _mm512_maskz_mov_ps(live, exp16(d));
            store(out.add(at), m, e);
            sum = _mm512_add_ps(sum, e);
        }
    });
    let sum = _mm512_reduce_add_ps(sum);
    if sum <= 0.0 {
        return;
    }
    let inv = _mm512_set1_ps(1.0 / sum);
    blocks(len, |at, m| {
        // SAFETY: as above.
        unsafe { store(out.add(at), m, _mm512_mul_ps(load(m, out.add(at)), inv)) };
    });
}

#[cfg(test)]
mod tests;
