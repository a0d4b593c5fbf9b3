use super::*;
use crate::model::kernels;

/// Values from −12 to 12 and a few far out, none repeated in pattern.
fn inputs() -> Vec<f32> {
    let mut v: Vec<f32> = (0..2401).map(|i| (i as f32 - 1200.0) / 100.0).collect();
    v.extend([
        -1e30, -100.0, -20.0, 20.0, 100.0, 1e30, 0.0, -0.0, 1e-30, -1e-30,
    ]);
    v
}

/// Within `rel` of `want`, or `abs` of it near zero.
fn near(got: f32, want: f32, rel: f32, abs: f32) -> bool {
    (got - want).abs() <= rel * want.abs() + abs
}

#[test]
fn gelu_is_the_scalar_formula_up_to_rounding() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX-512F");
        return;
    }
    let x = inputs();
    for len in [x.len(), 17, 16, 15, 1, 0] {
        let mut got = x[..len].to_vec();
        assert!(gelu(&mut got));
        for (&g, &v) in got.iter().zip(&x) {
            let want = kernels::gelu_erf(v);
            // Each erf is within ~2e-7 of the truth, and GELU multiplies it
            // by x/2 (where 1 + erf cancels, the relative error grows).
            let abs = 2e-7 * v.abs().min(10.0) + 1e-37;
            assert!(near(g, want, 4e-7, abs), "gelu({v}) = {g} vs {want}");
        }
    }
}

#[test]
fn gelu_and_its_derivative_match_f64() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX-512F");
        return;
    }
    let x = inputs();
    let mut z = x.clone();
    let mut y = vec![0f32; x.len()];
    assert!(gelu_keeping_grad(&mut z, &mut y));
    for ((&v, &value), &grad) in x.iter().zip(&y).zip(&z) {
        let v64 = f64::from(v);
        let cdf = 0.5 * (1.0 + candle_core::cpu::erf::erf_f64(v64 / std::f64::consts::SQRT_2));
        let density = (-0.5 * v64 * v64).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let (want, want_grad) = (v64 * cdf, cdf + v64 * density);
        // erf to ~2e-7 absolute: relative to the value, or absolute near 0.
        let tol = |w: f64| 4e-7 * w.abs() + 4e-7 * v64.abs().min(10.0) + 1e-30;
        if v.abs() < 1e29 {
            assert!(
                (f64::from(value) - want).abs() <= tol(want),
                "gelu({v}) = {value} vs {want}"
            );
            assert!(
                (f64::from(grad) - want_grad).abs() <= tol(want_grad),
                "gelu'({v}) = {grad} vs {want_grad}"
            );
        }
    }
}

#[test]
fn masked_softmax_is_the_scalar_one() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX-512F");
        return;
    }
    for len in [1usize, 7, 16, 33, 128, 300] {
        let scores: Vec<f32> = (0..len)
            .map(|i| ((i * 37) % 23) as f32 * 0.7 - 6.0)
            .collect();
        for pattern in [0usize, 1, 3] {
            // All kept, every third dropped, only the first kept.
            let mask: Vec<bool> = (0..len)
                .map(|i| match pattern {
                    0 => true,
                    1 => i % 3 != 1,
                    _ => i == 0,
                })
                .collect();
            let mut got = scores.clone();
            assert!(softmax_masked(&mut got, &mask));
            let max = scores
                .iter()
                .zip(&mask)
                .filter(|p| *p.1)
                .map(|p| f64::from(*p.0))
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = scores
                .iter()
                .zip(&mask)
                .filter(|p| *p.1)
                .map(|p| (f64::from(*p.0) - max).exp())
                .sum();
            for ((&g, &s), &keep) in got.iter().zip(&scores).zip(&mask) {
                if keep {
                    let want = ((f64::from(s) - max).exp() / sum) as f32;
                    assert!(
                        near(g, want, 1e-6, 1e-30),
                        "len {len} p{pattern}: {g} vs {want}"
                    );
                } else {
                    assert_eq!(g, 0.0, "a masked key gets exactly zero");
                }
            }
        }
    }
    let mut none_kept = vec![1.0f32; 20];
    assert!(softmax_masked(&mut none_kept, &[false; 20]));
    assert!(none_kept.iter().all(|&p| p == 0.0), "no key kept: all zero");
}

#[test]
fn scaled_softmax_with_an_additive_mask_matches_f64() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX-512F");
        return;
    }
    for len in [5usize, 16, 40, 129] {
        let s: Vec<f32> = (0..len).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let added: Vec<f32> = (0..len)
            .map(|i| if i % 4 == 3 { -1e4 } else { 0.0 })
            .collect();
        for mask in [None, Some(&added[..])] {
            let mut y = vec![0f32; len];
            assert!(softmax_scaled(&s, mask, 0.5, &mut y));
            let z: Vec<f64> = (0..len)
                .map(|i| 0.5 * f64::from(s[i]) + mask.map_or(0.0, |m| f64::from(m[i])))
                .collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z
                .iter()
                .map(|&v| {
                    if v - max > -87.0 {
                        (v - max).exp()
                    } else {
                        0.0
                    }
                })
                .collect();
            let sum: f64 = e.iter().sum();
            for (i, (&g, &w)) in y.iter().zip(&e).enumerate() {
                let want = (w / sum) as f32;
                assert!(near(g, want, 1e-6, 0.0), "len {len} [{i}]: {g} vs {want}");
            }
        }
    }
}

#[test]
fn entropy_in_bits_matches_f64() {
    if !available() {
        eprintln!("skipped: this CPU has no AVX-512F");
        return;
    }
    let exact = |p: &[f32]| -> f64 {
        p.iter()
            .filter(|&&x| x > 0.0)
            .map(|&x| -f64::from(x) * f64::from(x).log2())
            .sum()
    };
    // Uniform rows, peaked rows with tiny (even subnormal) tails and zeros.
    for len in [1usize, 5, 16, 17, 100, 512] {
        let uniform = vec![1.0 / len as f32; len];
        let mut peaked: Vec<f32> = (0..len).map(|i| 1e-3 / (1.0 + i as f32).powi(3)).collect();
        peaked[0] = 0.9;
        if len > 3 {
            peaked[1] = 0.0;
            peaked[2] = 1e-41;
        }
        for row in [uniform, peaked] {
            let got = f64::from(entropy_bits(&row).unwrap());
            let want = exact(&row);
            assert!(
                (got - want).abs() <= 1e-6 * (1.0 + want),
                "len {len}: {got} vs {want}"
            );
        }
    }
    assert_eq!(
        entropy_bits(&[1.0, 0.0]),
        Some(0.0),
        "certainty has no entropy"
    );
    assert_eq!(entropy_bits(&[]), Some(0.0));
}
