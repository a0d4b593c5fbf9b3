//! The fused CPU ops of the differentiable path (`model::grad_kernels`) against
//! the composed candle ops they replace: forward values and the gradients of
//! every input, through `Var`s and `backward()`, on seeded random inputs of
//! several shapes (rows of one value, large scores, padded keys, layouts that
//! are not contiguous, gradients that arrive broadcast). The composed forms
//! are the candle ops the differentiable path uses off the CPU.

use bertscope::model::grad_kernels::{self, Gelu};
use bertscope::model::kernels::AttentionShape;
use bertscope::model::BatchMask;
use candle_core::{DType, Device, Tensor, Var, D};

/// Largest difference relative to the reference's largest magnitude.
const RTOL: f32 = 1e-5;

/// Seeded values in `[-scale, scale)` (xorshift; no generator shared with the crate).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn random(dims: &[usize], seed: u64, scale: f32) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(values(n, seed, scale), dims, &Device::Cpu).unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    assert!(
        got.iter().all(|v| v.is_finite()) && worst <= RTOL * scale,
        "{what}: largest difference {worst:e} for values up to {scale:e}"
    );
}

/// How the gradient of the output arrives: a random cotangent (`sum(y ⊙ c)`),
/// or the broadcast ones of `sum(y)`.
#[derive(Clone, Copy)]
enum Loss {
    Weighted(u64),
    Sum,
}

fn loss_of(y: &Tensor, loss: Loss) -> Tensor {
    match loss {
        Loss::Weighted(seed) => (y * random(y.dims(), seed, 1.0))
            .unwrap()
            .sum_all()
            .unwrap(),
        Loss::Sum => y.sum_all().unwrap(),
    }
}

/// Run `fused` and `composed` on fresh `Var`s of `inputs`; compare the outputs
/// and the gradient of every input.
fn check(
    what: &str,
    inputs: &[Tensor],
    loss: Loss,
    fused: impl Fn(&[Tensor]) -> Tensor,
    composed: impl Fn(&[Tensor]) -> Tensor,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&tensors);
        let grads = loss_of(&y, loss).backward().unwrap();
        let grads: Vec<Tensor> = vars
            .iter()
            .map(|v| grads.get(v).expect("every input gets a gradient").clone())
            .collect();
        (y, grads)
    };
    let (y_fused, g_fused) = run(&fused);
    let (y_composed, g_composed) = run(&composed);
    assert_close(&format!("{what}: forward"), &y_fused, &y_composed);
    for (i, (g, w)) in g_fused.iter().zip(&g_composed).enumerate() {
        assert_close(&format!("{what}: gradient of input {i}"), g, w);
    }
}

fn composed_layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let centered = x.broadcast_sub(&mean).unwrap();
    let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let normed = centered
        .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
        .unwrap();
    normed.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
}

fn composed_softmax(x: &Tensor) -> Tensor {
    let max = x.max_keepdim(D::Minus1).unwrap().detach();
    let exp = x.broadcast_sub(&max).unwrap().exp().unwrap();
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1).unwrap())
        .unwrap()
}

#[test]
fn linear_matches_matmul_and_bias() {
    let shapes: [(&[usize], usize); 5] = [
        (&[1, 1], 1),
        (&[5, 7], 3),
        (&[2, 3, 4], 5),
        (&[70, 384], 1536),
        (&[33, 1536], 384),
    ];
    for (seed, (x_dims, out)) in shapes.into_iter().enumerate() {
        let seed = seed as u64 * 10;
        let inner = x_dims[x_dims.len() - 1];
        let inputs = [
            random(x_dims, seed, 2.0),
            random(&[out, inner], seed + 1, 0.5),
            random(&[out], seed + 2, 1.0),
        ];
        check(
            &format!("linear {x_dims:?}→{out}"),
            &inputs,
            Loss::Weighted(seed + 3),
            |t| grad_kernels::linear(&t[0], &t[1], &t[2]).unwrap(),
            |t| {
                t[0].broadcast_matmul(&t[1].t().unwrap())
                    .unwrap()
                    .broadcast_add(&t[2])
                    .unwrap()
            },
        );
    }
}

#[test]
fn linear_takes_a_transposed_input_and_a_broadcast_gradient() {
    let inputs = [
        random(&[6, 9], 1, 1.0),
        random(&[4, 6], 2, 1.0),
        random(&[4], 3, 1.0),
    ];
    check(
        "linear of xᵀ",
        &inputs,
        Loss::Sum,
        |t| grad_kernels::linear(&t[0].t().unwrap(), &t[1], &t[2]).unwrap(),
        |t| {
            t[0].t()
                .unwrap()
                .matmul(&t[1].t().unwrap())
                .unwrap()
                .broadcast_add(&t[2])
                .unwrap()
        },
    );
}

#[test]
fn linear_gelu_matches_matmul_bias_and_candle_gelu() {
    // One value off the tails, where GELU' is O(1); the random cases reach
    // |z| ≈ 6, where both implementations lose GELU' below ~1e-7 to
    // cancellation, and the tolerance relative to the largest value covers it.
    let cpu = &Device::Cpu;
    let single = [
        Tensor::new(&[[0.9f32]], cpu).unwrap(),
        Tensor::new(&[[0.8f32]], cpu).unwrap(),
        Tensor::new(&[-0.1f32], cpu).unwrap(),
    ];
    let shapes: [(&[usize], usize); 3] = [(&[3, 5], 4), (&[4, 1], 7), (&[300, 96], 1000)];
    let random_cases = shapes.into_iter().enumerate().map(|(seed, (x_dims, out))| {
        let seed = seed as u64 * 10;
        let inner = x_dims[x_dims.len() - 1];
        [
            random(x_dims, seed, 2.0),
            random(&[out, inner], seed + 1, 3.0 / (inner as f32).sqrt()),
            random(&[out], seed + 2, 1.0),
        ]
    });
    for (seed, inputs) in std::iter::once(single).chain(random_cases).enumerate() {
        let seed = seed as u64 * 10;
        let (x_dims, out) = (inputs[0].dims().to_vec(), inputs[2].elem_count());
        let composed_z = |t: &[Tensor]| {
            t[0].matmul(&t[1].t().unwrap())
                .unwrap()
                .broadcast_add(&t[2])
                .unwrap()
        };
        check(
            &format!("linear + gelu {x_dims:?}→{out}"),
            &inputs,
            Loss::Weighted(seed + 3),
            |t| grad_kernels::linear_gelu(&t[0], &t[1], &t[2], Gelu::Erf).unwrap(),
            |t| composed_z(t).gelu_erf().unwrap(),
        );
        check(
            &format!("linear + gelu (tanh) {x_dims:?}→{out}"),
            &inputs,
            Loss::Weighted(seed + 4),
            |t| grad_kernels::linear_gelu(&t[0], &t[1], &t[2], Gelu::Tanh).unwrap(),
            |t| composed_z(t).gelu().unwrap(),
        );
    }
}

#[test]
fn layer_norm_matches_composed_ops() {
    let shapes: [(&[usize], f64); 6] = [
        (&[1, 1], 1e-12),
        (&[4, 1], 1e-5),
        (&[3, 7], 1e-12),
        (&[2, 5, 384], 1e-12),
        (&[100, 1536], 1e-5),
        (&[65, 33], 1e-12),
    ];
    for (seed, (dims, eps)) in shapes.into_iter().enumerate() {
        let seed = seed as u64 * 10;
        let dim = dims[dims.len() - 1];
        let offset = (random(&[1], seed, 5.0) + 0.0).unwrap();
        let x = random(dims, seed + 1, 3.0).broadcast_add(&offset).unwrap();
        let w = (random(&[dim], seed + 2, 0.5) + 1.0).unwrap();
        let inputs = [x, w, random(&[dim], seed + 3, 0.5)];
        for loss in [Loss::Weighted(seed + 4), Loss::Sum] {
            check(
                &format!("layer norm {dims:?}"),
                &inputs,
                loss,
                |t| grad_kernels::layer_norm(&t[0], &t[1], &t[2], eps).unwrap(),
                |t| composed_layer_norm(&t[0], &t[1], &t[2], eps),
            );
        }
    }
}

#[test]
fn layer_norm_takes_a_transposed_input() {
    let inputs = [
        random(&[8, 5], 7, 2.0),
        random(&[8], 8, 1.0),
        random(&[8], 9, 1.0),
    ];
    check(
        "layer norm of xᵀ",
        &inputs,
        Loss::Weighted(10),
        |t| grad_kernels::layer_norm(&t[0].t().unwrap(), &t[1], &t[2], 1e-12).unwrap(),
        |t| composed_layer_norm(&t[0].t().unwrap(), &t[1], &t[2], 1e-12),
    );
}

#[test]
fn softmax_matches_composed_ops() {
    let shapes: [(&[usize], f32); 5] = [
        (&[1, 1], 1.0),
        (&[5, 1], 3.0),
        (&[3, 10], 1.0),
        (&[200, 100], 50.0),
        (&[2, 3, 4, 9], 1e4),
    ];
    for (seed, (dims, scale)) in shapes.into_iter().enumerate() {
        let inputs = [random(dims, seed as u64, scale)];
        check(
            &format!("softmax {dims:?} ×{scale}"),
            &inputs,
            Loss::Weighted(seed as u64 + 50),
            |t| grad_kernels::softmax(&t[0]).unwrap(),
            |t| composed_softmax(&t[0]),
        );
    }
}

/// A batch whose rows have `lengths` real tokens, padded to the longest.
fn padded(lengths: &[usize]) -> BatchMask {
    let seq = lengths.iter().copied().max().unwrap_or(0);
    BatchMask {
        batch: lengths.len(),
        seq,
        keep: lengths
            .iter()
            .flat_map(|&n| (0..seq).map(move |i| i < n))
            .collect(),
    }
}

/// A dropout mask as `TrainDropout` draws it: `1/(1-p)` or 0.
fn keep_mask(n: usize, seed: u64, p: f32) -> Vec<f32> {
    values(n, seed, 1.0)
        .into_iter()
        .map(|u| {
            if (u + 1.0) / 2.0 < 1.0 - p {
                1.0 / (1.0 - p)
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn dropout_matches_a_product_with_the_mask() {
    let shapes: [&[usize]; 3] = [&[1], &[4, 6], &[8, 12, 64, 64]];
    for (seed, dims) in shapes.into_iter().enumerate() {
        let x = random(dims, seed as u64, 2.0);
        let keep = keep_mask(x.elem_count(), seed as u64 + 5, 0.1);
        let mask = Tensor::from_vec(keep.clone(), dims, &Device::Cpu).unwrap();
        check(
            &format!("dropout {dims:?}"),
            &[x],
            Loss::Weighted(seed as u64 + 9),
            |t| grad_kernels::dropout(&t[0], keep.clone()).unwrap(),
            |t| t[0].mul(&mask).unwrap(),
        );
    }
}

#[test]
fn residual_layer_norm_matches_dropout_sum_and_layer_norm() {
    let shapes: [&[usize]; 4] = [&[1, 1], &[5, 3], &[7, 1], &[512, 384]];
    for (seed, dims) in shapes.into_iter().enumerate() {
        let seed = seed as u64 * 10;
        let dim = dims[dims.len() - 1];
        let inputs = [
            random(dims, seed, 2.0),
            random(dims, seed + 1, 2.0),
            (random(&[dim], seed + 2, 0.5) + 1.0).unwrap(),
            random(&[dim], seed + 3, 0.5),
        ];
        let keep = keep_mask(inputs[0].elem_count(), seed + 4, 0.1);
        let mask = Tensor::from_vec(keep.clone(), dims, &Device::Cpu).unwrap();
        for (dropout, loss) in [(true, Loss::Weighted(seed + 5)), (false, Loss::Sum)] {
            check(
                &format!("dropout + residual + layer norm {dims:?}, dropout {dropout}"),
                &inputs,
                loss,
                |t| {
                    let keep = dropout.then(|| keep.clone());
                    grad_kernels::residual_layer_norm(&t[0], keep, &t[1], (&t[2], &t[3]), 1e-12)
                        .unwrap()
                },
                |t| {
                    let branch = match dropout {
                        true => t[0].mul(&mask).unwrap(),
                        false => t[0].clone(),
                    };
                    composed_layer_norm(&(branch + &t[1]).unwrap(), &t[2], &t[3], 1e-12)
                },
            );
        }
    }
}

#[test]
fn only_host_f32_takes_the_fused_ops() {
    let x = random(&[2, 3], 1, 1.0);
    assert!(grad_kernels::fused_cpu(&x));
    assert!(!grad_kernels::fused_cpu(&x.to_dtype(DType::F64).unwrap()));
    assert!(!grad_kernels::fused_cpu(&x.to_dtype(DType::BF16).unwrap()));
}

/// The composed attention core (`BertAttention::attend` on other devices):
/// split heads, scaled scores plus the mask, softmax, dropout, context.
fn composed_attention(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    shape: AttentionShape,
    additive: &Tensor,
    keep: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let AttentionShape {
        batch: b,
        seq: s,
        heads: h,
        head_dim: d,
    } = shape;
    let split = |t: &Tensor| {
        t.reshape((b, s, h, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let (q, k, v) = (split(q), split(k), split(v));
    let scores = q.matmul(&k.t().unwrap().contiguous().unwrap()).unwrap();
    let scores = (scores * (1.0 / (d as f64).sqrt())).unwrap();
    let probs = composed_softmax(&scores.broadcast_add(additive).unwrap());
    let dropped = match keep {
        Some(mask) => probs.mul(mask).unwrap(),
        None => probs.clone(),
    };
    let context = dropped.matmul(&v).unwrap().transpose(1, 2).unwrap();
    let context = context
        .contiguous()
        .unwrap()
        .reshape((b * s, h * d))
        .unwrap();
    (context, probs)
}

/// One attention case: sequence lengths, heads, head size, input magnitude,
/// dropout probability.
struct AttentionCase(&'static [usize], usize, usize, f32, Option<f32>);

#[test]
fn attention_matches_the_composed_core() {
    let long: &[usize] = &[64, 40, 17, 64, 1, 33, 60, 2];
    let cases = [
        AttentionCase(&[1], 1, 1, 1.0, None),
        AttentionCase(&[5, 3, 1], 2, 4, 3.0, Some(0.1)),
        AttentionCase(&[9, 9], 3, 8, 3.0, None),
        AttentionCase(long, 12, 32, 1.0, Some(0.1)),
        AttentionCase(long, 12, 32, 1.0, None),
    ];
    for (seed, AttentionCase(lengths, heads, head_dim, magnitude, p)) in
        cases.into_iter().enumerate()
    {
        let seed = seed as u64 * 10;
        let mask = padded(lengths);
        let additive = mask.additive(&Device::Cpu).unwrap();
        let shape = AttentionShape {
            batch: mask.batch,
            seq: mask.seq,
            heads,
            head_dim,
        };
        let dims = [mask.batch * mask.seq, heads * head_dim];
        let inputs: Vec<Tensor> = (0..3).map(|i| random(&dims, seed + i, magnitude)).collect();
        let n_probs = mask.batch * heads * mask.seq * mask.seq;
        let keep = p.map(|p| keep_mask(n_probs, seed + 5, p));
        let keep_tensor = keep.as_ref().map(|keep| {
            let probs_dims = (mask.batch, heads, mask.seq, mask.seq);
            Tensor::from_vec(keep.clone(), probs_dims, &Device::Cpu).unwrap()
        });
        let fused = |t: &[Tensor]| {
            grad_kernels::attention(
                &Tensor::cat(&[&t[0], &t[1], &t[2]], 1).unwrap(),
                &additive,
                shape,
                keep.clone(),
            )
            .unwrap()
        };
        let composed = |t: &[Tensor]| {
            composed_attention(
                (&t[0], &t[1], &t[2]),
                shape,
                &additive,
                keep_tensor.as_ref(),
            )
        };
        let what = format!("attention {lengths:?}, {heads}×{head_dim}, dropout {p:?}");
        check(
            &what,
            &inputs,
            Loss::Weighted(seed + 7),
            |t| fused(t).0,
            |t| composed(t).0,
        );
        assert_close(
            &format!("{what}: probabilities"),
            &fused(&inputs).1,
            &composed(&inputs).1,
        );
    }
}

#[test]
fn attention_gives_padding_keys_exactly_zero() {
    let mask = padded(&[2, 4]);
    let additive = mask.additive(&Device::Cpu).unwrap();
    let shape = AttentionShape {
        batch: 2,
        seq: 4,
        heads: 1,
        head_dim: 3,
    };
    let x = random(&[8, 3], 3, 5.0);
    let (_, probs) = grad_kernels::attention(
        &Tensor::cat(&[&x, &x, &x], 1).unwrap(),
        &additive,
        shape,
        None,
    )
    .unwrap();
    let first: Vec<Vec<f32>> = probs.get(0).unwrap().get(0).unwrap().to_vec2().unwrap();
    for row in first {
        assert_eq!(&row[2..], &[0.0, 0.0]);
        assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
    }
}
