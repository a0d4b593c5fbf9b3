//! The encoder's inference pass on the CPU over plain `f32` slices: one GEMM
//! per projection with the bias folded in, the fused attention kernel, and
//! reused buffers — no per-op tensor allocation or thread hand-off.

use candle_core::{CpuStorage, Storage, StorageRef, Tensor};

use crate::error::{BertError, Result};
use crate::model::kernels::{self, AttentionShape};
use crate::model::layer::BertLayer;
use crate::model::ops::{LayerNorm, Linear};
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

/// Weight and bias slices of a linear layer.
struct LinearData<'a> {
    weight: HostSlice<'a>,
    bias: HostSlice<'a>,
}

impl<'a> LinearData<'a> {
    fn new(l: &'a Linear) -> Result<Self> {
        let weight = l.weight_in_out().ok_or_else(|| {
            BertError::Unsupported("fused CPU path needs weights stored for inference".into())
        })?;
        Ok(LinearData {
            weight: HostSlice::new(weight)?,
            bias: HostSlice::new(&l.bias)?,
        })
    }
    fn out_dim(&self) -> usize {
        self.bias.len
    }
    fn apply(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) {
        out.resize(rows * self.out_dim(), 0.0);
        kernels::linear(x, rows, self.weight.get(), self.bias.get(), out);
    }
}

fn add_norm(x: &mut [f32], residual: &[f32], ln: &LayerNorm) -> Result<()> {
    let (w, b) = (HostSlice::new(&ln.weight)?, HostSlice::new(&ln.bias)?);
    kernels::add_layer_norm(x, residual, w.get(), b.get(), ln.eps as f32);
    Ok(())
}

/// Run every layer on `hidden` (`[batch·seq, hidden]` host data after the embeddings).
pub fn encode_layers(
    layers: &[BertLayer],
    mut hidden: Vec<f32>,
    mask: &BatchMask,
    heads: usize,
) -> Result<(Vec<f32>, AttentionProbs)> {
    let rows = mask.batch * mask.seq;
    let width = hidden.len() / rows.max(1);
    let shape = AttentionShape {
        batch: mask.batch,
        seq: mask.seq,
        heads,
        head_dim: width / heads,
    };
    let per_layer = mask.batch * heads * mask.seq * mask.seq;
    let mut probs = vec![0f32; layers.len() * per_layer];
    let (mut qkv, mut context, mut attended, mut inner, mut out) = (
        Vec::new(),
        vec![0f32; rows * width],
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (layer, layer_probs) in layers.iter().zip(probs.chunks_mut(per_layer.max(1))) {
        let att = &layer.attention;
        let fused = att.fused_qkv().ok_or_else(|| {
            BertError::Unsupported("fused CPU path needs fused projections".into())
        })?;
        LinearData::new(fused)?.apply(&hidden, rows, &mut qkv);
        kernels::attention(&qkv, &mask.keep, shape, &mut context, layer_probs);
        LinearData::new(&att.output_dense)?.apply(&context, rows, &mut attended);
        add_norm(&mut attended, &hidden, &att.output_layer_norm)?;
        LinearData::new(&layer.intermediate)?.apply(&attended, rows, &mut inner);
        kernels::activate(&mut inner, layer.activation());
        LinearData::new(&layer.output)?.apply(&inner, rows, &mut out);
        add_norm(&mut out, &attended, &layer.output_layer_norm)?;
        std::mem::swap(&mut hidden, &mut out);
    }
    Ok((
        hidden,
        AttentionProbs::Host {
            data: probs,
            layers: layers.len(),
            batch: mask.batch,
            heads,
            seq: mask.seq,
        },
    ))
}
