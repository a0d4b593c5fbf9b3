use super::*;

#[test]
fn softmax_masks_padding_exactly() {
    let mut row = vec![1.0, 2.0, 3.0];
    softmax_masked(&mut row, &[true, true, false]);
    let e = (1f32).exp();
    assert!((row[0] - 1.0 / (1.0 + e)).abs() < 1e-7);
    assert!((row[1] - e / (1.0 + e)).abs() < 1e-7);
    assert_eq!(row[2], 0.0);
}

/// The fused head and the general products give the same attention
/// through [`attention`]: probabilities, `f32` context and bf16 pairs,
/// with padding keys, at a width that is not a whole register.
#[test]
fn the_fused_and_general_attention_agree() {
    let (batch, seq, heads, head_dim) = (3, 37, 4, 10);
    let shape = AttentionShape {
        batch,
        seq,
        heads,
        head_dim,
    };
    let (hidden, rows) = (heads * head_dim, batch * seq);
    let qkv: Vec<f32> = (0..rows * 3 * hidden)
        .map(|i| ((i * 7919) % 997) as f32 / 249.25 - 2.0)
        .collect();
    // Sequence b has its last 5·b keys padded.
    let keys: Vec<bool> = (0..rows).map(|i| i % seq < seq - 5 * (i / seq)).collect();
    let run = |fused: bool| {
        let mut probs = vec![0f32; batch * heads * seq * seq];
        let mut context = vec![0f32; rows * hidden];
        let out = ContextOut::F32(&mut context);
        attention_on(&qkv, &keys, shape, out, Some(&mut probs), fused);
        let stride = hidden / 2 + 4;
        let mut pairs = vec![0u32; rows * stride];
        let round: fn(&[f32], &mut [u32]) = crate::model::grad_kernels::bf16_round_row;
        let out = ContextOut::Rounded {
            pairs: &mut pairs,
            stride,
            round,
        };
        attention_on(&qkv, &keys, shape, out, None, fused);
        (probs, context, pairs)
    };
    let (fused, general) = (run(true), run(false));
    for (n, (a, b)) in fused.0.iter().zip(&general.0).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
            "probability {n}: {a} vs {b}"
        );
        if *b == 0.0 {
            assert_eq!(*a, 0.0, "probability {n}: a padding key's");
        }
    }
    for (n, (a, b)) in fused.1.iter().zip(&general.1).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "context {n}: {a} vs {b}"
        );
    }
    // Each pair is its context's two values rounded (the f32 sums of the
    // two paths may differ in their last bits, so the pairs are checked
    // against each path's own f32 context).
    for (label, (_, context, pairs)) in [("fused", &fused), ("general", &general)] {
        let stride = hidden / 2 + 4;
        for r in 0..rows {
            for p in 0..hidden / 2 {
                let bf = |x: f32| u32::from(half::bf16::from_f32(x).to_bits());
                let (a, b) = (context[r * hidden + 2 * p], context[r * hidden + 2 * p + 1]);
                let got = pairs[r * stride + p];
                assert_eq!(got, bf(a) | bf(b) << 16, "{label}: pair [{r}, {p}]");
            }
        }
    }
}
