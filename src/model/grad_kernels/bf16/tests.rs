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

/// Σ |a·b| over each entry's products (bf16-rounded operands): how far
/// apart two orders of `f32` sums of those products can honestly land.
fn magnitudes(dims: (usize, usize, usize), a: View, b: View) -> Vec<f64> {
    bf16_sums(dims, a, b, f64::abs)
}

/// [`close`], or within the rounding of long `f32` sums: a few units of
/// `f32`'s precision on the products' magnitudes (2.4e-7 · Σ|a·b|; an
/// operand read from a wrong place is off by about the values themselves).
fn close_for(got: f64, want: f64, magnitude: f64) -> bool {
    close(got, want) || (got - want).abs() <= 2.4e-7 * magnitude
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
        (33, 31, 2 * 2 * K::KC + 3),
    ] {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        // Row-major, transposed, and every other value of a longer buffer.
        let spread = values(2 * m * k, 3);
        let a_layouts: [View; 3] = [(&a, k, 1), (&a, 1, m), (&spread, 2 * k, 2)];
        let b_layouts: [View; 2] = [(&b, n, 1), (&b, 1, k)];
        for (ai, &av) in a_layouts.iter().enumerate() {
            for (bi, &bv) in b_layouts.iter().enumerate() {
                let want = reference((m, n, k), av, bv);
                let size = magnitudes((m, n, k), av, bv);
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
                        let out = Out::F32(&mut c, rs, cs);
                        gemm_on(kernel, (m, n, k), out, Lhs::F32(av), Rhs::F32(bv), epilogue)
                            .unwrap();
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
                                    close_for(got, w, size[i * n + j]),
                                    "{label} {m}x{n}x{k} a{ai} b{bi} t{transposed} e{with_epilogue} [{i},{j}]: {got} vs {w}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    check_rounded_operands(kernel, label);
}

/// `kernel`'s products with `A` already in bf16 rows, `B` packed once, and
/// `C` written as bf16 rows (with a bias and a finishing function), against
/// [`reference`]: the same sums, and a bf16 `C` holds the rounding of the
/// `f32` one, with the pairs past an odd `n` zero for the next product.
fn check_rounded_operands<K: TileProduct>(kernel: &K, label: &str) {
    for &(m, n, k) in &[
        (1, 1, 1),
        (13, 33, 7),
        (40, 17, 130),
        (97, 64, 96),
        (33, 31, 2 * 2 * K::KC + 3),
    ] {
        let (a, b) = (values(m * k, 5), values(k * n, 6));
        let (av, bv): (View, View) = ((&a, k, 1), (&b, 1, k));
        let want = reference((m, n, k), av, bv);
        let size = magnitudes((m, n, k), av, bv);
        let mut rows = Bf16Rows::default();
        rows.fill(&a, m, k);
        let packed = PackedB::pack::<K>(bv, k, n);
        let bias = values(n, 7);
        let finish = |run: &mut [f32]| run.iter_mut().for_each(|v| *v = v.abs() + 0.5);
        let epilogue = Epilogue {
            accumulate: false,
            bias: Some(&bias),
            finish: Some(&finish),
        };
        let expected = |i: usize, j: usize| (want[i * n + j] + f64::from(bias[j])).abs() + 0.5;
        for (lhs, rhs) in [
            (Lhs::Bf16(&rows), Rhs::Packed(&packed)),
            (Lhs::Bf16(&rows), Rhs::F32(bv)),
            (Lhs::F32(av), Rhs::Packed(&packed)),
        ] {
            let mut c = vec![0f32; m * n];
            gemm_on(
                kernel,
                (m, n, k),
                Out::F32(&mut c, n, 1),
                lhs,
                rhs,
                epilogue,
            )
            .unwrap();
            let mut c16 = Bf16Rows::default();
            gemm_on(kernel, (m, n, k), Out::Bf16(&mut c16), lhs, rhs, epilogue).unwrap();
            assert_eq!(c16.shape(), (m, n));
            for i in 0..m {
                for j in 0..n {
                    let got = f64::from(c[i * n + j]);
                    assert!(
                        close_for(got, expected(i, j), size[i * n + j]),
                        "{label} {m}x{n}x{k} [{i},{j}]: {got}"
                    );
                    let rounded = half::bf16::from_f32(c[i * n + j]).to_f32();
                    assert_eq!(c16.get(i, j), rounded, "{label} {m}x{n}x{k} bf16 [{i},{j}]");
                }
                let row = &c16.data()[i * c16.stride()..(i + 1) * c16.stride()];
                if n % 2 == 1 {
                    assert_eq!(
                        row[n / 2] >> 16,
                        0,
                        "{label}: the value past an odd n is zero"
                    );
                }
                assert!(
                    row[n.div_ceil(2)..].iter().all(|&p| p == 0),
                    "{label}: padding"
                );
            }
        }
    }
    // Shapes that disagree with the operands are refused.
    let (a, b) = (values(6, 1), values(6, 2));
    let mut rows = Bf16Rows::default();
    rows.fill(&a, 2, 3);
    let packed = PackedB::pack::<K>((&b, 2, 1), 3, 2);
    let mut c = vec![0f32; 4];
    let wrong_k = gemm_on(
        kernel,
        (2, 2, 2),
        Out::F32(&mut c, 2, 1),
        Lhs::Bf16(&rows),
        Rhs::F32((&b, 2, 1)),
        Epilogue::default(),
    );
    assert!(wrong_k.is_err(), "{label}: rows of 3 values for k = 2");
    let wrong_n = gemm_on(
        kernel,
        (2, 1, 3),
        Out::F32(&mut c, 1, 1),
        Lhs::Bf16(&rows),
        Rhs::Packed(&packed),
        Epilogue::default(),
    );
    assert!(wrong_n.is_err(), "{label}: weights of 2 columns for n = 1");
    let mut c16 = Bf16Rows::default();
    let added = Epilogue {
        accumulate: true,
        ..Epilogue::default()
    };
    let into_bf16 = gemm_on(
        kernel,
        (2, 2, 3),
        Out::Bf16(&mut c16),
        Lhs::Bf16(&rows),
        Rhs::Packed(&packed),
        added,
    );
    assert!(into_bf16.is_err(), "{label}: added into bf16 rows");
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
        let taken = kernel();
        match kernel_times() {
            Some(times) => {
                eprintln!("AMX against AVX-512-BF16 here: {times:?}");
                assert_eq!(taken, Some(times.chosen()), "the faster one taken");
            }
            None => assert_eq!(taken, Some(Kernel::Amx), "AMX usable, right, alone"),
        }
        return;
    }
    let expected = avx512::usable().then_some(Kernel::Avx512);
    assert_eq!(kernel(), expected);
}

/// The 16-lane tile writes give the portable loops' bits: `f32` rows
/// (whole and cut tiles, strided columns; written and added), bf16 rows
/// (an odd last column pairing with zero), with and without bias and
/// finishing function, and nothing written outside the tile's place.
#[test]
fn the_vector_tile_writes_equal_the_portable_ones() {
    use write::{simd, write_tile_on, Dst, Place};
    if !simd::available() {
        eprintln!("skipped: this CPU lacks AVX-512-BF16, so only the portable writes run");
        return;
    }
    let double_plus_one: &(dyn Fn(&mut [f32]) + Sync) =
        &|v| v.iter_mut().for_each(|x| *x = 2.0 * *x + 1.0);
    let bias_all = values(64, 3);
    let (m, n) = (40, 64);
    for (rows, cols) in [(12, 32), (12, 17), (3, 16), (5, 5), (1, 1), (7, 31)] {
        for (bias, finish) in [(false, false), (true, false), (false, true), (true, true)] {
            let at = Place {
                row: 9,
                col: 30,
                rows,
                cols,
            };
            let step = Epilogue {
                accumulate: false,
                bias: bias.then_some(&bias_all[..]),
                finish: finish.then_some(double_plus_one),
            };
            let label = format!("{rows}×{cols}, bias {bias}, finish {finish}");
            let tile = values(MAX_MR * NR, rows + cols);
            let write = |vector: bool, dst: Dst| {
                let mut tile = tile.clone();
                // SAFETY: the place (rows 9.., columns 30..) is within C.
                unsafe { write_tile_on(&mut tile, at, dst, step, vector) };
            };
            for cs in [1, 3] {
                let (rs, len) = if cs == 1 {
                    (n, m * n)
                } else {
                    (n * cs, m * n * cs)
                };
                let (mut fast, mut plain) = (vec![-7.0f32; len], vec![-7.0f32; len]);
                write(true, Dst::F32(fast.as_mut_ptr(), rs, cs));
                write(false, Dst::F32(plain.as_mut_ptr(), rs, cs));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let differs = first_difference(&bits(&fast), &bits(&plain));
                assert_eq!(
                    differs, None,
                    "f32 C, cs {cs}, {label}: first differing element"
                );
                let touched = plain.iter().filter(|&&x| x != -7.0).count();
                assert_eq!(
                    touched,
                    rows * cols,
                    "f32 C, cs {cs}, {label}: only the place"
                );
                // Added into C's values (then finished there).
                let start = values(len, 5);
                let (mut fast, mut plain) = (start.clone(), start);
                let added = Epilogue {
                    accumulate: true,
                    ..step
                };
                let add = |vector: bool, dst: Dst| {
                    let mut tile = tile.clone();
                    // SAFETY: as above.
                    unsafe { write_tile_on(&mut tile, at, dst, added, vector) };
                };
                add(true, Dst::F32(fast.as_mut_ptr(), rs, cs));
                add(false, Dst::F32(plain.as_mut_ptr(), rs, cs));
                let differs = first_difference(&bits(&fast), &bits(&plain));
                assert_eq!(
                    differs, None,
                    "f32 C added, cs {cs}, {label}: first differing element"
                );
            }
            let stride = n / 2 + 16;
            let (mut fast, mut plain) = (vec![u32::MAX; m * stride], vec![u32::MAX; m * stride]);
            write(true, Dst::Bf16(fast.as_mut_ptr(), stride));
            write(false, Dst::Bf16(plain.as_mut_ptr(), stride));
            let differs = first_difference(&fast, &plain);
            assert_eq!(differs, None, "bf16 C, {label}: first differing pair");
            let touched = plain.iter().filter(|&&x| x != u32::MAX).count();
            assert_eq!(
                touched,
                rows * cols.div_ceil(2),
                "bf16 C, {label}: only the place"
            );
            if cols % 2 == 1 {
                let last = plain[9 * stride + 15 + cols / 2];
                assert_eq!(
                    last >> 16,
                    0,
                    "bf16 C, {label}: the value past the edge is zero"
                );
            }
        }
    }
}

/// Where two equally long buffers first differ, with both values there.
fn first_difference(a: &[u32], b: &[u32]) -> Option<(usize, u32, u32)> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (&x, &y))| (i, x, y))
}
