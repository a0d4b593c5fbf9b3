use super::*;

/// Values in [-2, 2) from a fixed sequence.
fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + salt * 104_729) % 997) as f32 / 249.25 - 2.0)
        .collect()
}

/// `transformers`' eager attention in `f64`: the probabilities
/// (`seq × seq`) and the context (`seq × dim`); a masked key gets zero, a
/// query with no key kept gets zeros.
fn reference(head: &Head) -> (Vec<f64>, Vec<f64>) {
    let Head { seq, dim, row, .. } = *head;
    let at = |x: &[f32], j: usize, d: usize| f64::from(x[j * row + d]);
    let mut probs = vec![0f64; seq * seq];
    let mut context = vec![0f64; seq * dim];
    for i in 0..seq {
        let p = &mut probs[i * seq..(i + 1) * seq];
        let scores: Vec<f64> = (0..seq)
            .map(|j| {
                let dot: f64 = (0..dim).map(|d| at(head.q, i, d) * at(head.k, j, d)).sum();
                dot * f64::from(head.scale)
            })
            .collect();
        let kept = (0..seq).filter(|&j| head.keys[j]);
        let max = kept
            .clone()
            .map(|j| scores[j])
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = kept.clone().map(|j| (scores[j] - max).exp()).sum();
        for j in kept {
            p[j] = (scores[j] - max).exp() / sum;
        }
        for d in 0..dim {
            context[i * dim + d] = (0..seq).map(|j| p[j] * at(head.v, j, d)).sum();
        }
    }
    (probs, context)
}

/// Every query's probabilities and context (as `f32`, and rounded to bf16
/// pairs) against [`reference`], at shapes with edges everywhere: keys and
/// widths not whole registers or blocks, blocks of queries cut short, keys
/// masked, and none kept.
#[test]
fn the_fused_head_equals_eager_attention() {
    if !available(&Dest::F32 {
        at: std::ptr::null_mut(),
        stride: 0,
    }) {
        eprintln!("skipped: this CPU has no AVX-512F (the general products run instead)");
        return;
    }
    let pairs_too = available(&Dest::Pairs {
        at: std::ptr::null_mut(),
        stride: 0,
    });
    let mut scratch = Scratch::default();
    for (seq, dim) in [
        (1, 1),
        (5, 9),
        (16, 32),
        (17, 33),
        (70, 64),
        (128, 32),
        (131, 80),
        (200, 100),
    ] {
        let row = 3 * dim + 5;
        let (q, k, v) = (
            values(seq * row, 1),
            values(seq * row, 2),
            values(seq * row, 3),
        );
        for masking in ["none", "every third", "all"] {
            let keys: Vec<bool> = (0..seq)
                .map(|j| match masking {
                    "none" => true,
                    "every third" => j % 3 != 1,
                    _ => false,
                })
                .collect();
            let head = Head {
                q: &q,
                k: &k,
                v: &v,
                row,
                seq,
                dim,
                keys: &keys,
                scale: 1.0 / (dim as f32).sqrt(),
            };
            let label = format!("seq {seq}, dim {dim}, masked {masking}");
            let (want_p, want_c) = reference(&head);
            // The context's rows are wider than the head, as in a layer.
            let stride = dim + 7;
            let mut context = vec![-9.0f32; seq * stride];
            let mut probs = vec![-9.0f32; seq * seq];
            let dest = Dest::F32 {
                at: context.as_mut_ptr(),
                stride,
            };
            // SAFETY: available; `context` holds seq rows of `stride >= dim`.
            unsafe { run(head, dest, Some(&mut probs), &mut scratch) };
            for (n, (&got, &want)) in probs.iter().zip(&want_p).enumerate() {
                // A score summed in f32 over up to 100 products of values
                // up to 2 is off by ~1e-5 · scale, and so is ln p.
                let ok = (f64::from(got) - want).abs() <= 2e-5 * want + 1e-7;
                assert!(ok, "{label}: probability {n} is {got}, want {want}");
                if !keys[n % seq] {
                    assert_eq!(got.to_bits(), 0, "{label}: a masked key's probability");
                }
            }
            for i in 0..seq {
                let row_of = &context[i * stride..(i + 1) * stride];
                for (d, &got) in row_of.iter().enumerate() {
                    if d >= dim {
                        assert_eq!(got, -9.0, "{label}: query {i} wrote past its head");
                        continue;
                    }
                    let want = want_c[i * dim + d];
                    let ok = (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs());
                    assert!(ok, "{label}: context [{i}, {d}] is {got}, want {want}");
                }
            }
            if !pairs_too || dim % 2 == 1 {
                continue;
            }
            let pair_stride = dim / 2 + 3;
            let mut pairs = vec![u32::MAX; seq * pair_stride];
            let dest = Dest::Pairs {
                at: pairs.as_mut_ptr(),
                stride: pair_stride,
            };
            // SAFETY: available for pairs; `pairs` holds seq rows of
            // `pair_stride >= dim / 2`.
            unsafe { run(head, dest, None, &mut scratch) };
            for i in 0..seq {
                for p in 0..pair_stride {
                    let got = pairs[i * pair_stride + p];
                    if p >= dim / 2 {
                        assert_eq!(got, u32::MAX, "{label}: query {i} wrote past its pairs");
                        continue;
                    }
                    let bf16 = |x: f32| u32::from(half::bf16::from_f32(x).to_bits());
                    let (a, b) = (context[i * stride + 2 * p], context[i * stride + 2 * p + 1]);
                    let want = bf16(a) | bf16(b) << 16;
                    assert_eq!(
                        got, want,
                        "{label}: pair [{i}, {p}] is not the f32 context rounded"
                    );
                }
            }
        }
    }
}
