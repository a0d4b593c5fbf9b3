use super::*;

#[test]
fn rounding_matches_half() {
    for x in [
        0.0f32,
        -0.0,
        1.0,
        1.0 + f32::EPSILON,
        3.140_625_5,
        -2.718_281_7,
        1e-40,
        3.0e38,
        f32::MAX,
        f32::INFINITY,
    ] {
        let ours = pack::to_bf16(x) as u16;
        assert_eq!(ours, half::bf16::from_f32(x).to_bits(), "{x}");
    }
    assert!(half::bf16::from_bits(pack::to_bf16(f32::NAN) as u16).is_nan());
}

/// `kernel`'s products against [`reference`] for every layout of `A`, `B`
/// and `C` the linear layers use, written and accumulated, at shapes with
/// edges on every side: `m`, `n` not whole tiles, `k` odd and even, none,
/// tiny, longer than two blocks of `k`.
pub(super) fn check_every_layout<K: TileProduct>(kernel: &K, label: &str) {
    for &(m, n, k) in &[
        (3, 5, 0),
        (1, 1, 1),
        (13, 33, 7),
        (25, 70, 64),
        (12, 32, 65),
        (40, 17, 130),
        (33, 31, 2 * 2 * KC + 3),
    ] {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        // Row-major, transposed, and every other value of a longer buffer.
        let spread = values(2 * m * k, 3);
        let a_layouts: [View; 3] = [(&a, k, 1), (&a, 1, m), (&spread, 2 * k, 2)];
        let b_layouts: [View; 2] = [(&b, n, 1), (&b, 1, k)];
        for (ai, &av) in a_layouts.iter().enumerate() {
            for (bi, &bv) in b_layouts.iter().enumerate() {
                let want = reference((m, n, k), av, bv);
                // Row-major and transposed destinations, accumulated plainly
                // and with a bias and a finishing function.
                let bias = values(n, 4);
                let finish = |run: &mut [f32]| run.iter_mut().for_each(|v| *v = v.abs() + 0.5);
                for transposed in [false, true] {
                    let (rs, cs) = if transposed { (1, m) } else { (n, 1) };
                    for with_epilogue in [false, true] {
                        let epilogue = Epilogue {
                            accumulate: true,
                            bias: with_epilogue.then_some(&bias[..]),
                            finish: with_epilogue.then_some(&finish as Finish),
                        };
                        let mut c = vec![1f32; m * n];
                        gemm_on(kernel, (m, n, k), (&mut c, rs, cs), av, bv, epilogue).unwrap();
                        for i in 0..m {
                            for j in 0..n {
                                let got = f64::from(c[i * rs + j * cs]);
                                let sum = 1.0 + want[i * n + j];
                                let w = if with_epilogue {
                                    (sum + f64::from(bias[j])).abs() + 0.5
                                } else {
                                    sum
                                };
                                assert!(
                                    close(got, w),
                                    "{label} {m}x{n}x{k} a{ai} b{bi} t{transposed} e{with_epilogue} [{i},{j}]: {got} vs {w}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn avx512_products_equal_bf16_rounded_f64_for_every_layout() {
    let Some(kernel) = avx512::Avx512::new() else {
        eprintln!("skipped: this CPU has no AVX-512-BF16, so its kernel cannot run here");
        return;
    };
    check_every_layout(&kernel, "AVX-512-BF16");
}

#[test]
fn a_bias_of_the_wrong_length_is_refused() {
    if !available() {
        eprintln!("skipped: this CPU has no bf16 products");
        return;
    }
    let (a, mut c) = (vec![0f32; 4], vec![0f32; 4]);
    let epilogue = Epilogue {
        bias: Some(&[1.0; 3]),
        ..Epilogue::default()
    };
    let err = gemm_with((2, 2, 2), (&mut c, 2, 1), (&a, 2, 1), (&a, 2, 1), epilogue);
    assert!(err.is_err(), "3 bias values for 2 columns");
}

#[test]
fn operands_their_strides_overrun_are_refused() {
    if !available() {
        eprintln!("skipped: this CPU has no bf16 products");
        return;
    }
    let a = vec![0f32; 6];
    let mut c = vec![0f32; 4];
    let err = gemm((2, 2, 4), (&mut c, 2, 1), false, (&a, 4, 1), (&a, 2, 1));
    assert!(err.is_err(), "a 2×4 left operand in 6 values");
    let mut small = vec![0f32; 3];
    let err = gemm((2, 2, 1), (&mut small, 2, 1), false, (&a, 1, 1), (&a, 2, 1));
    assert!(err.is_err(), "a 2×2 destination in 3 values");
}

#[test]
fn the_kernel_taken_is_the_best_this_cpu_runs() {
    #[cfg(target_arch = "x86_64")]
    if amx::unusable_because().is_none() {
        assert_eq!(
            kernel(),
            Some(Kernel::Amx),
            "AMX usable and right, so taken"
        );
        return;
    }
    let expected = avx512::usable().then_some(Kernel::Avx512);
    assert_eq!(kernel(), expected);
}
