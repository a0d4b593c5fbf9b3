//! The fused CPU encoder, a type of its own built from the loaded layers:
//! query/key/value stacked into one GEMM, every weight stored transposed
//! (`[in, out]`, contiguous) so the GEMM streams it, the fused attention
//! kernel, and buffers reused across layers — no per-op tensor allocation or
//! thread hand-off. Inference only: it carries no gradients.

use candle_core::{CpuStorage, Storage, StorageRef, Tensor};

use crate::config::Activation;
use crate::error::{BertError, Result};
use crate::model::grad_kernels;
use crate::model::head_mask::{Inspect, Neurons};
use crate::model::kernels::{self, AttentionShape};
use crate::model::layer::BertLayer;
use crate::model::ops::{LayerNorm, Linear};
use crate::model::precision::{self, Precision};
use crate::model::{AttentionProbs, BatchMask};

/// Read access to a contiguous f32 CPU tensor's data.
struct HostSlice<'a> {
    guard: StorageRef<'a>,
    start: usize,
    len: usize,
}

impl<'a> HostSlice<'a> {
    fn new(t: &'a Tensor) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        let Some((start, end)) = layout.contiguous_offsets() else {
            return Err(BertError::Unsupported(
                "fused CPU path needs contiguous weights".into(),
            ));
        };
        if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
            return Err(BertError::Unsupported(
                "fused CPU path needs f32 weights on the CPU".into(),
            ));
        }
        Ok(HostSlice {
            guard,
            start,
            len: end - start,
        })
    }

    fn get(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.start..self.start + self.len],
            _ => &[],
        }
    }
}

/// A linear layer stored for the fused path: the weight transposed to a
/// contiguous `[in, out]`.
#[derive(Debug, Clone)]
pub struct FusedLinear {
    weight_in_out: Tensor,
    bias: Tensor,
}

impl FusedLinear {
    fn new(l: &Linear) -> Result<Self> {
        Ok(FusedLinear {
            weight_in_out: l.weight.t()?.contiguous()?,
            bias: l.bias.clone(),
        })
    }

    /// `[query; key; value]` stacked: one GEMM for the three projections.
    fn stacked(parts: [&Linear; 3]) -> Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|l| &l.weight).collect();
        let biases: Vec<&Tensor> = parts.iter().map(|l| &l.bias).collect();
        FusedLinear::new(&Linear::new(
            Tensor::cat(&weights, 0)?,
            Tensor::cat(&biases, 0)?,
        ))
    }

    /// `out = act(x · W + b)` (`act` none, or an activation); with bf16
    /// precision in scope (`bench --inference --precision bf16`), the
    /// products in bf16 and the sums in `f32`, the bias and the activation
    /// applied to each tile of the product while it is in the caches.
    fn apply(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
        act: Option<Activation>,
    ) -> Result<()> {
        let (weight, bias) = (
            HostSlice::new(&self.weight_in_out)?,
            HostSlice::new(&self.bias)?,
        );
        let (in_dim, out_dim) = (x.len() / rows.max(1), bias.len);
        out.resize(rows * out_dim, 0.0);
        if precision::current() == Precision::Bf16 {
            let finish = move |run: &mut [f32]| {
                if let Some(act) = act {
                    kernels::activate_run(run, act);
                }
            };
            let epilogue = grad_kernels::Bf16Epilogue {
                accumulate: false,
                bias: Some(bias.get()),
                finish: act.is_some().then_some(&finish as grad_kernels::Bf16Finish),
            };
            let (inputs, weights) = ((x, in_dim, 1), (weight.get(), out_dim, 1));
            let dims = (rows, out_dim, in_dim);
            grad_kernels::bf16_gemm_with(dims, (out, out_dim, 1), inputs, weights, epilogue)?;
            return Ok(());
        }
        kernels::linear(x, rows, weight.get(), bias.get(), out);
        if let Some(act) = act {
            kernels::activate(out, act);
        }
        Ok(())
    }
}

/// One `BertLayer` in fused form.
#[derive(Debug, Clone)]
pub struct FusedLayer {
    qkv: FusedLinear,
    attention_output: FusedLinear,
    attention_norm: LayerNorm,
    intermediate: FusedLinear,
    output: FusedLinear,
    output_norm: LayerNorm,
    activation: Activation,
}

impl FusedLayer {
    fn new(layer: &BertLayer) -> Result<Self> {
        let att = &layer.attention;
        Ok(FusedLayer {
            qkv: FusedLinear::stacked([&att.query, &att.key, &att.value])?,
            attention_output: FusedLinear::new(&att.output_dense)?,
            attention_norm: att.output_layer_norm.clone(),
            intermediate: FusedLinear::new(&layer.intermediate)?,
            output: FusedLinear::new(&layer.output)?,
            output_norm: layer.output_layer_norm.clone(),
            activation: layer.activation(),
        })
    }
}

/// Every layer of the encoder in fused form.
#[derive(Debug, Clone)]
pub struct FusedEncoder {
    layers: Vec<FusedLayer>,
    heads: usize,
}

fn add_norm(x: &mut [f32], residual: &[f32], ln: &LayerNorm) -> Result<()> {
    let (w, b) = (HostSlice::new(&ln.weight)?, HostSlice::new(&ln.bias)?);
    kernels::add_layer_norm(x, residual, w.get(), b.get(), ln.eps as f32);
    Ok(())
}

impl FusedEncoder {
    /// Build from the loaded (differentiable) layers, which can then be dropped.
    pub fn new(layers: &[BertLayer], heads: usize) -> Result<Self> {
        Ok(FusedEncoder {
            layers: layers.iter().map(FusedLayer::new).collect::<Result<_>>()?,
            heads,
        })
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Run every layer on `hidden` (`[batch·seq, hidden]` host data after the
    /// embeddings), zeroing the context of `inspect.ablate`'s heads and
    /// copying out `inspect.neurons`' queries and keys (every row of the batch).
    pub fn forward(
        &self,
        mut hidden: Vec<f32>,
        mask: &BatchMask,
        inspect: &Inspect,
    ) -> Result<(Vec<f32>, AttentionProbs, Option<Neurons>)> {
        let shape = self.shape(&hidden, mask);
        let per_layer = mask.batch * self.heads * mask.seq * mask.seq;
        let mut probs = vec![0f32; self.layers.len() * per_layer];
        let mut neurons = None;
        let mut scratch = Scratch::default();
        let layers = self.layers.iter().zip(probs.chunks_mut(per_layer.max(1)));
        for (index, (layer, layer_probs)) in layers.enumerate() {
            // A dataset pass's cancel lands within a batch, between layers.
            super::cancel::check()?;
            if let Some((l, h)) = inspect.neurons.filter(|&(l, _)| l == index) {
                layer
                    .qkv
                    .apply(&hidden, shape.rows(), &mut scratch.qkv, None)?;
                neurons = Some(neurons_of(&scratch.qkv, shape, shape.rows(), (l, h)));
            }
            let ablated: Vec<usize> = inspect.ablate.in_layer(index).collect();
            layer.run(
                &mut hidden,
                mask,
                shape,
                &ablated,
                layer_probs,
                &mut scratch,
            )?;
        }
        let probs = AttentionProbs::Host {
            data: probs,
            layers: self.layers.len(),
            batch: mask.batch,
            heads: self.heads,
            seq: mask.seq,
        };
        Ok((hidden, probs, neurons))
    }

    /// Run layers `0..upto` on `hidden` (the embeddings' output), keeping no
    /// attention: `sink(i, states)` gets the hidden states `[batch·seq,
    /// hidden]` numbered as `transformers`' `hidden_states` (0 the
    /// embeddings, i layer i's output).
    pub fn hidden_states(
        &self,
        mut hidden: Vec<f32>,
        mask: &BatchMask,
        upto: usize,
        sink: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let shape = self.shape(&hidden, mask);
        let mut probs = vec![0f32; mask.batch * self.heads * mask.seq * mask.seq];
        let mut scratch = Scratch::default();
        sink(0, &hidden)?;
        for (index, layer) in self.layers.iter().take(upto).enumerate() {
            super::cancel::check()?;
            layer.run(&mut hidden, mask, shape, &[], &mut probs, &mut scratch)?;
            sink(index + 1, &hidden)?;
        }
        Ok(())
    }

    fn shape(&self, hidden: &[f32], mask: &BatchMask) -> AttentionShape {
        let rows = mask.batch * mask.seq;
        let width = hidden.len() / rows.max(1);
        AttentionShape {
            batch: mask.batch,
            seq: mask.seq,
            heads: self.heads,
            head_dim: width / self.heads,
        }
    }
}

/// The buffers of one forward, reused across its layers.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    inner: Vec<f32>,
    out: Vec<f32>,
}

impl FusedLayer {
    /// This layer on `hidden`, in place, its attention into `probs`, the
    /// context of the `ablated` heads zeroed.
    fn run(
        &self,
        hidden: &mut Vec<f32>,
        mask: &BatchMask,
        shape: AttentionShape,
        ablated: &[usize],
        probs: &mut [f32],
        s: &mut Scratch,
    ) -> Result<()> {
        let rows = shape.rows();
        self.qkv.apply(hidden, rows, &mut s.qkv, None)?;
        s.context.resize(hidden.len(), 0.0);
        kernels::attention(&s.qkv, &mask.keep, shape, &mut s.context, probs);
        for &head in ablated {
            zero_head(&mut s.context, shape, head);
        }
        self.attention_output
            .apply(&s.context, rows, &mut s.attended, None)?;
        add_norm(&mut s.attended, hidden, &self.attention_norm)?;
        let act = Some(self.activation);
        self.intermediate
            .apply(&s.attended, rows, &mut s.inner, act)?;
        self.output.apply(&s.inner, rows, &mut s.out, None)?;
        add_norm(&mut s.out, &s.attended, &self.output_norm)?;
        std::mem::swap(hidden, &mut s.out);
        Ok(())
    }
}

/// Zero one head's columns of the context `[rows, heads·head_dim]`.
fn zero_head(context: &mut [f32], shape: AttentionShape, head: usize) {
    let (d, width) = (shape.head_dim, shape.heads * shape.head_dim);
    if head >= shape.heads {
        return;
    }
    for row in context.chunks_mut(width.max(1)) {
        row[head * d..(head + 1) * d].fill(0.0);
    }
}

/// One head's queries and keys from the packed `[rows, q | k | v]` projection.
fn neurons_of(
    qkv: &[f32],
    shape: AttentionShape,
    rows: usize,
    (layer, head): (usize, usize),
) -> Neurons {
    let (d, width) = (shape.head_dim, shape.heads * shape.head_dim);
    let mut queries = Vec::with_capacity(rows * d);
    let mut keys = Vec::with_capacity(rows * d);
    for row in qkv.chunks(3 * width).take(rows) {
        queries.extend_from_slice(&row[head * d..(head + 1) * d]);
        keys.extend_from_slice(&row[width + head * d..width + (head + 1) * d]);
    }
    Neurons {
        layer,
        head,
        tokens: rows,
        dim: d,
        queries,
        keys,
    }
}
