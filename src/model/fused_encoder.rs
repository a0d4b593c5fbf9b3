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
    /// The weight rounded and packed for bf16 products, on first use.
    packed: std::sync::OnceLock<grad_kernels::Bf16PackedB>,
}

impl FusedLinear {
    fn new(l: &Linear) -> Result<Self> {
        Ok(FusedLinear {
            weight_in_out: l.weight.t()?.contiguous()?,
            bias: l.bias.clone(),
            packed: std::sync::OnceLock::new(),
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
    /// applied to each tile of the product while it is in the caches, and
    /// `x` and `out` may be rows already in bf16.
    fn apply(&self, x: Input, rows: usize, out: Output, act: Option<Activation>) -> Result<()> {
        let (weight, bias) = (
            HostSlice::new(&self.weight_in_out)?,
            HostSlice::new(&self.bias)?,
        );
        let out_dim = bias.len;
        if precision::current() == Precision::Bf16 {
            let (lhs, in_dim) = match x {
                Input::F32(x) => {
                    let in_dim = x.len() / rows.max(1);
                    (grad_kernels::Bf16Lhs::F32((x, in_dim, 1)), in_dim)
                }
                Input::Rounded(x) => (grad_kernels::Bf16Lhs::Bf16(x), x.shape().1),
            };
            let dst = match out {
                Output::F32(out) => {
                    out.resize(rows * out_dim, 0.0);
                    grad_kernels::Bf16Out::F32(out, out_dim, 1)
                }
                Output::Rounded(out) => grad_kernels::Bf16Out::Bf16(out),
            };
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
            let weights = match self.packed.get() {
                Some(packed) => packed,
                None => {
                    let view = (weight.get(), out_dim, 1);
                    let packed = grad_kernels::Bf16PackedB::new(view, in_dim, out_dim)?;
                    self.packed.get_or_init(|| packed)
                }
            };
            let weights = grad_kernels::Bf16Rhs::Packed(weights);
            grad_kernels::bf16_product((rows, out_dim, in_dim), dst, lhs, weights, epilogue)?;
            return Ok(());
        }
        let (Input::F32(x), Output::F32(out)) = (x, out) else {
            return Err(BertError::Unsupported(
                "bf16 rows reach a linear layer outside bf16 precision".into(),
            ));
        };
        out.resize(rows * out_dim, 0.0);
        kernels::linear(x, rows, weight.get(), bias.get(), out);
        if let Some(act) = act {
            kernels::activate(out, act);
        }
        Ok(())
    }
}

/// A linear layer's input: `f32` rows, or rows rounded to bf16 where they
/// were made (bf16 precision only).
#[derive(Clone, Copy)]
enum Input<'a> {
    F32(&'a [f32]),
    Rounded(&'a grad_kernels::Bf16Rows),
}

/// Where a linear layer's output goes: `f32` rows, or rows rounded to bf16
/// for the next product (bf16 precision only).
enum Output<'a> {
    F32(&'a mut Vec<f32>),
    Rounded(&'a mut grad_kernels::Bf16Rows),
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
    /// The last forward's buffers, for the next one.
    kept: KeptScratch,
}

/// `x = LayerNorm(x + residual)`, and with `rounded` the result also
/// rounded to bf16 rows in the same pass (the next product's input).
fn add_norm(
    x: &mut [f32],
    residual: &[f32],
    ln: &LayerNorm,
    rounded: Option<&mut grad_kernels::Bf16Rows>,
) -> Result<()> {
    let (w, b) = (HostSlice::new(&ln.weight)?, HostSlice::new(&ln.bias)?);
    let (w, b, eps) = (w.get(), b.get(), ln.eps as f32);
    match rounded {
        Some(rows) => {
            rows.reshape(x.len() / w.len().max(1), w.len());
            let norm = (w, b, eps);
            let copies = rows.rows_mut();
            kernels::add_layer_norm_copying(
                x,
                residual,
                norm,
                copies,
                grad_kernels::bf16_round_row,
            );
        }
        None => kernels::add_layer_norm(x, residual, w, b, eps),
    }
    Ok(())
}

impl FusedEncoder {
    /// Build from the loaded (differentiable) layers, which can then be dropped.
    pub fn new(layers: &[BertLayer], heads: usize) -> Result<Self> {
        Ok(FusedEncoder {
            layers: layers.iter().map(FusedLayer::new).collect::<Result<_>>()?,
            heads,
            kept: KeptScratch::default(),
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
        let mut scratch = self.kept.take();
        let layers = self.layers.iter().zip(probs.chunks_mut(per_layer.max(1)));
        for (index, (layer, layer_probs)) in layers.enumerate() {
            // A dataset pass's cancel lands within a batch, between layers.
            super::cancel::check()?;
            if let Some((l, h)) = inspect.neurons.filter(|&(l, _)| l == index) {
                let qkv = Output::F32(&mut scratch.qkv);
                layer
                    .qkv
                    .apply(Input::F32(&hidden), shape.rows(), qkv, None)?;
                neurons = Some(neurons_of(&scratch.qkv, shape, shape.rows(), (l, h)));
            }
            let ablated: Vec<usize> = inspect.ablate.in_layer(index).collect();
            layer.run(
                &mut hidden,
                mask,
                shape,
                &ablated,
                Some(layer_probs),
                &mut scratch,
            )?;
        }
        self.kept.put(scratch);
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
        let mut scratch = self.kept.take();
        sink(0, &hidden)?;
        for (index, layer) in self.layers.iter().take(upto).enumerate() {
            super::cancel::check()?;
            layer.run(&mut hidden, mask, shape, &[], None, &mut scratch)?;
            sink(index + 1, &hidden)?;
        }
        self.kept.put(scratch);
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
    rounded: Rounded,
}

/// The buffers a forward leaves for the next one: a dataset pass runs
/// batch after batch of one shape, and fresh buffers would be zeroed (and
/// their pages faulted in) every time. A forward that finds none (another
/// is running) starts with empty ones. A clone of the encoder starts empty,
/// and buffers past [`KEPT_BYTES`] are let go rather than held for as long
/// as the model is loaded.
#[derive(Default)]
struct KeptScratch(std::sync::Mutex<Option<Box<Scratch>>>);

/// The most a model keeps between forwards (a batch of 64 × 128 tokens of
/// MiniLM uses about 110 MB, of BERT-base twice that).
const KEPT_BYTES: usize = 512 << 20;

impl Scratch {
    /// Bytes held by the buffers.
    fn bytes(&self) -> usize {
        let values = [
            &self.qkv,
            &self.context,
            &self.attended,
            &self.inner,
            &self.out,
        ];
        let r = &self.rounded;
        let rows = [&r.hidden, &r.context, &r.attended, &r.inner];
        values.iter().map(|v| v.capacity() * 4).sum::<usize>()
            + rows.iter().map(|rows| rows.bytes()).sum::<usize>()
    }
}

impl KeptScratch {
    fn take(&self) -> Scratch {
        let kept = self.0.try_lock().ok().and_then(|mut kept| kept.take());
        let mut scratch = kept.map_or_else(Scratch::default, |kept| *kept);
        // The rounded rows are the last forward's, not this one's input.
        scratch.rounded.ready = false;
        scratch
    }

    fn put(&self, scratch: Scratch) {
        if scratch.bytes() > KEPT_BYTES {
            return;
        }
        if let Ok(mut kept) = self.0.try_lock() {
            *kept = Some(Box::new(scratch));
        }
    }
}

impl Clone for KeptScratch {
    fn clone(&self) -> Self {
        KeptScratch::default()
    }
}

impl std::fmt::Debug for KeptScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptScratch")
    }
}

/// With bf16 precision, the linear layers' inputs rounded to bf16 where
/// they are made (the rounding the products would do; done once, with no
/// packing pass), and the intermediate activation kept only so.
#[derive(Default)]
struct Rounded {
    /// The layer input's rows; `ready` when the previous layer's norm made them.
    hidden: grad_kernels::Bf16Rows,
    ready: bool,
    context: grad_kernels::Bf16Rows,
    attended: grad_kernels::Bf16Rows,
    inner: grad_kernels::Bf16Rows,
}

impl FusedLayer {
    /// This layer on `hidden`, in place, its attention into `probs` (when
    /// kept), the context of the `ablated` heads zeroed.
    fn run(
        &self,
        hidden: &mut Vec<f32>,
        mask: &BatchMask,
        shape: AttentionShape,
        ablated: &[usize],
        probs: Option<&mut [f32]>,
        s: &mut Scratch,
    ) -> Result<()> {
        let rows = shape.rows();
        let width = shape.heads * shape.head_dim;
        let bf16 = precision::current() == Precision::Bf16;
        let r = &mut s.rounded;
        if bf16 && !r.ready {
            r.hidden.fill(hidden, rows, width);
        }
        r.ready = false;
        let x = if bf16 {
            Input::Rounded(&r.hidden)
        } else {
            Input::F32(hidden)
        };
        self.qkv.apply(x, rows, Output::F32(&mut s.qkv), None)?;
        // With bf16, the context goes from each head straight into rounded
        // rows (a head's values are whole pairs when its width is even).
        let rounded_context = bf16 && shape.head_dim.is_multiple_of(2);
        let context_out = if rounded_context {
            r.context.reshape(rows, width);
            let (pairs, stride) = r.context.rows_mut();
            kernels::ContextOut::Rounded {
                pairs,
                stride,
                round: grad_kernels::bf16_round_row,
            }
        } else {
            s.context.resize(hidden.len(), 0.0);
            kernels::ContextOut::F32(&mut s.context)
        };
        kernels::attention(&s.qkv, &mask.keep, shape, context_out, probs);
        if rounded_context {
            let (pairs, stride) = r.context.rows_mut();
            for &head in ablated {
                zero_head(pairs, stride, shape.head_dim / 2, head, shape.heads);
            }
        } else {
            for &head in ablated {
                zero_head(&mut s.context, width, shape.head_dim, head, shape.heads);
            }
            if bf16 {
                r.context.fill(&s.context, rows, width);
            }
        }
        let context = if bf16 {
            Input::Rounded(&r.context)
        } else {
            Input::F32(&s.context)
        };
        let attended = Output::F32(&mut s.attended);
        self.attention_output.apply(context, rows, attended, None)?;
        let attended_rounded = bf16.then_some(&mut r.attended);
        add_norm(
            &mut s.attended,
            hidden,
            &self.attention_norm,
            attended_rounded,
        )?;
        let act = Some(self.activation);
        let (x, inner) = if bf16 {
            (Input::Rounded(&r.attended), Output::Rounded(&mut r.inner))
        } else {
            (Input::F32(&s.attended), Output::F32(&mut s.inner))
        };
        self.intermediate.apply(x, rows, inner, act)?;
        let inner = if bf16 {
            Input::Rounded(&r.inner)
        } else {
            Input::F32(&s.inner)
        };
        self.output
            .apply(inner, rows, Output::F32(&mut s.out), None)?;
        let next_rounded = bf16.then_some(&mut r.hidden);
        add_norm(&mut s.out, &s.attended, &self.output_norm, next_rounded)?;
        r.ready = bf16;
        std::mem::swap(hidden, &mut s.out);
        Ok(())
    }
}

/// Zero one head's `width` columns (values, or pairs of bf16 values) in
/// every row of the context, rows `stride` apart.
fn zero_head<T: Copy + Default>(
    context: &mut [T],
    stride: usize,
    width: usize,
    head: usize,
    heads: usize,
) {
    if head >= heads {
        return;
    }
    for row in context.chunks_mut(stride.max(1)) {
        row[head * width..(head + 1) * width].fill(T::default());
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
