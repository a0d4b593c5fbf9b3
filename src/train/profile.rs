//! `bench --train --profile`: where a training step's time goes. The phases
//! (forward, backward, optimiser) are timed on the training loop's own step;
//! the backward pass is then split by op kind from the same ops run alone at
//! the step's shapes (candle's backward pass has no hooks to time it inside).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use serde::Serialize;

use crate::config::BertConfig;
use crate::error::Result;
use crate::model::dropout::TrainDropout;
use crate::model::grad_kernels;
use crate::model::kernels::AttentionShape;
use crate::model::ops::{LayerNorm, Linear};
use crate::model::precision::{self, Precision};
use crate::train::bench::Bench;
use crate::train::step::micro_batch_rows;
use crate::train::{batch_loss, weights};

/// Milliseconds per optimiser step, by phase and by backward op kind.
#[derive(Debug, Serialize)]
pub struct StepProfile {
    pub precision: Precision,
    pub steps: usize,
    pub micro_batches: usize,
    pub step_ms: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    /// Gradient clipping and the AdamW update.
    pub optimizer_ms: f64,
    /// Kernel time during the steps: mostly the page faults of fresh
    /// allocations (new tensors touching new memory).
    pub system_ms: f64,
    pub page_faults: f64,
    /// `(op kind, ms per step)` of the backward pass, from the ops run alone.
    pub backward_by_op: Vec<(String, f64)>,
}

/// Profile `steps` steps (after a warm-up step) of batch `batch` at `seq` tokens.
pub fn profile_step(
    base: &Path,
    batch: usize,
    seq: usize,
    steps: usize,
    device: &Device,
    precision: Precision,
) -> Result<StepProfile> {
    let steps = steps.max(1);
    let mut bench = Bench::new(base, batch, seq, steps, device, precision)?;
    let mut rng = weights::seeded(42);
    let never = AtomicBool::new(false);
    bench.step(&mut rng, &never)?;
    let per = micro_batch_rows(&bench.model, seq, batch);
    let before = Usage::now();
    // The step's ops are made inside the precision's scope, as in training.
    let (forward, backward, optimizer) = precision::scoped(precision, || -> Result<_> {
        let (mut forward, mut backward, mut optimizer) = (0.0, 0.0, 0.0);
        for _ in 0..steps {
            for part in bench.data.rows.chunks(per) {
                let t = Instant::now();
                let targets: Vec<usize> = (0..part.len()).map(|i| i % 2).collect();
                let (loss, _) = batch_loss(
                    &bench.model,
                    part,
                    &targets,
                    bench.pad,
                    Some(&bench.dropout),
                )?;
                let share = (loss * (part.len() as f64 / batch as f64))?;
                share.to_scalar::<f32>()?;
                forward += t.elapsed().as_secs_f64();
                let t = Instant::now();
                bench.optim.backward(&share)?;
                backward += t.elapsed().as_secs_f64();
            }
            let t = Instant::now();
            bench.optim.step()?;
            optimizer += t.elapsed().as_secs_f64();
        }
        Ok((forward, backward, optimizer))
    })?;
    let used = Usage::now().since(&before);
    let micro_batches = batch.div_ceil(per);
    let shapes = Shapes::of(&bench.model.config, per, seq);
    let ms = |s: f64| s * 1e3 / steps as f64;
    Ok(StepProfile {
        precision,
        steps,
        micro_batches,
        step_ms: ms(forward + backward + optimizer),
        forward_ms: ms(forward),
        backward_ms: ms(backward),
        optimizer_ms: ms(optimizer),
        system_ms: ms(used.system_s),
        page_faults: used.page_faults / steps as f64,
        backward_by_op: precision::scoped(precision, || {
            backward_by_op(&shapes, &bench.dropout, micro_batches, device)
        })?,
    })
}

/// The shapes one micro-batch's layers work on.
struct Shapes {
    rows: usize,
    seq: usize,
    hidden: usize,
    inner: usize,
    heads: usize,
    layers: usize,
    vocab: usize,
    activation: crate::config::Activation,
    eps: f64,
}

impl Shapes {
    fn of(config: &BertConfig, rows: usize, seq: usize) -> Self {
        Shapes {
            rows,
            seq,
            hidden: config.hidden_size(),
            inner: config.raw.intermediate_size,
            heads: config.num_heads(),
            layers: config.raw.num_hidden_layers,
            vocab: config.raw.vocab_size,
            activation: config.activation,
            eps: config.layer_norm_eps(),
        }
    }
}

/// Runs per op kind when timing it alone.
const RUNS: usize = 3;

/// The backward pass of each kind of op the training forward runs, alone at
/// one micro-batch's shapes, times the micro-batches and layers of a step.
/// On the CPU only: the fused ops it times exist there.
fn backward_by_op(
    s: &Shapes,
    dropout: &TrainDropout,
    micro_batches: usize,
    device: &Device,
) -> Result<Vec<(String, f64)>> {
    if !device.is_cpu() {
        return Ok(Vec::new());
    }
    let var = |shape: &[usize]| -> Result<Tensor> {
        Ok(Var::randn(0f32, 1f32, shape, device)?.as_tensor().clone())
    };
    let tokens = s.rows * s.seq;
    let (h, i) = (s.hidden, s.inner);
    let linear = |inp: usize, out: usize| -> Result<Linear> {
        Ok(Linear::new(var(&[out, inp])?, var(&[out])?))
    };
    let per_layer = (micro_batches * s.layers) as f64;
    let x = var(&[tokens, h])?;
    let (packed, projection) = (linear(h, 3 * h)?, linear(h, h)?);
    let projections =
        backward_ms(&|| packed.forward(&x))? + backward_ms(&|| projection.forward(&x))?;
    let (up, down, wide) = (linear(h, i)?, linear(i, h)?, var(&[tokens, i])?);
    let feed_forward = backward_ms(&|| up.forward_activated(&x, s.activation))?
        + backward_ms(&|| down.forward(&wide))?;
    let shape = AttentionShape {
        batch: s.rows,
        seq: s.seq,
        heads: s.heads,
        head_dim: h / s.heads.max(1),
    };
    let qkv = var(&[tokens, 3 * h])?;
    let mask = Tensor::zeros((s.rows, 1, 1, s.seq), DType::F32, device)?;
    let maps = s.rows * s.heads * s.seq * s.seq;
    let core = backward_ms(&|| {
        let keep = dropout.draw(maps, dropout.attention);
        Ok(grad_kernels::attention(&qkv, &mask, shape, keep)?.0)
    })?;
    let norm = LayerNorm {
        weight: var(&[h])?,
        bias: var(&[h])?,
        eps: s.eps,
    };
    let residual = var(&[tokens, h])?;
    let norms = 2.0 * backward_ms(&|| norm.forward_residual(x.clone(), &residual, Some(dropout)))?;
    let (table, ids) = (
        var(&[s.vocab, h])?,
        Tensor::zeros(tokens, DType::U32, device)?,
    );
    let lookup = backward_ms(&|| Ok(table.embedding(&ids)?))?;
    Ok(vec![
        (
            "q, k, v, output projections".into(),
            projections * per_layer,
        ),
        (
            "feed-forward (linear + GELU, linear)".into(),
            feed_forward * per_layer,
        ),
        (
            "attention core (scores, softmax, context)".into(),
            core * per_layer,
        ),
        ("layer norm + dropout + residual".into(), norms * per_layer),
        (
            "word-embedding lookup".into(),
            lookup * micro_batches as f64,
        ),
    ])
}

/// Milliseconds of the backward pass of `f`'s output (summed to a scalar):
/// forward + backward, less the forward alone.
fn backward_ms(f: &dyn Fn() -> Result<Tensor>) -> Result<f64> {
    let (mut fwd, mut both) = (0.0, 0.0);
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?.sum_all()?.to_scalar::<f32>()?;
        fwd += t.elapsed().as_secs_f64();
        let t = Instant::now();
        f()?.sum_all()?.backward()?;
        both += t.elapsed().as_secs_f64();
    }
    Ok(((both - fwd) * 1e3 / RUNS as f64).max(0.0))
}

/// The process's kernel time and page faults so far.
struct Usage {
    system_s: f64,
    page_faults: f64,
}

impl Usage {
    fn now() -> Self {
        // SAFETY: getrusage writes one `rusage` into the zeroed value we own.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer cannot fail or write elsewhere.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        Usage {
            system_s: usage.ru_stime.tv_sec as f64 + usage.ru_stime.tv_usec as f64 * 1e-6,
            page_faults: usage.ru_minflt as f64,
        }
    }

    fn since(&self, before: &Usage) -> Usage {
        Usage {
            system_s: self.system_s - before.system_s,
            page_faults: self.page_faults - before.page_faults,
        }
    }
}
