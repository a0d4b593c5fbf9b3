//! AdamW and gradient clipping fused into one parallel pass per parameter on
//! the CPU, with PyTorch's arithmetic (`torch.optim.AdamW`, `clip_grad_norm_`).
//! candle-nn's AdamW allocates a tensor per elementwise operation (about 15
//! passes over every parameter, single-threaded): on MiniLM that was a fifth
//! of each training step.

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::train::weights::NamedVar;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// Call `f` with a tensor's values as a flat `f32` slice (no copy when it is a
/// contiguous CPU tensor).
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            if let Ok(all) = cpu.as_slice::<f32>() {
                return Ok(f(&all[start..end]));
            }
        }
    }
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&values))
}

/// Sum of squares of a tensor's values, in f64.
pub fn sum_squares(t: &Tensor) -> Result<f64> {
    with_f32(t, |x| {
        x.par_chunks(CHUNK)
            .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
            .sum()
    })
}

/// The moments of one parameter.
struct Slot {
    param: NamedVar,
    weight_decay: f32,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// One parameter's AdamW moments.
pub struct Moments<'a> {
    pub name: &'a str,
    pub exp_avg: &'a [f32],
    pub exp_avg_sq: &'a [f32],
}

pub struct FusedAdamW {
    slots: Vec<Slot>,
    step: i32,
}

impl FusedAdamW {
    /// `weight_decay` applies to the parameters whose `decays()` is true.
    pub fn new(params: &[NamedVar], weight_decay: f64) -> Self {
        let slots = params
            .iter()
            .map(|p| {
                let n = p.var.elem_count();
                Slot {
                    param: p.clone(),
                    weight_decay: if p.decays() { weight_decay as f32 } else { 0.0 },
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        FusedAdamW { slots, step: 0 }
    }

    /// The step count.
    pub fn steps(&self) -> i32 {
        self.step
    }

    /// Each parameter's moments (`exp_avg`, `exp_avg_sq`).
    pub fn moments(&self) -> impl Iterator<Item = Moments<'_>> {
        self.slots.iter().map(|s| Moments {
            name: &s.param.name,
            exp_avg: &s.m,
            exp_avg_sq: &s.v,
        })
    }

    /// Restore the step count and the moments; `saved` maps each parameter's
    /// name to its moments, which must have its element count.
    pub fn restore(
        &mut self,
        step: i32,
        saved: &mut std::collections::HashMap<String, (Vec<f32>, Vec<f32>)>,
    ) -> Result<()> {
        for slot in &mut self.slots {
            let (m, v) = saved.remove(&slot.param.name).ok_or_else(|| {
                crate::error::BertError::Input(format!(
                    "the optimiser state has no moments for `{}`",
                    slot.param.name
                ))
            })?;
            if m.len() != slot.m.len() || v.len() != slot.v.len() {
                return Err(crate::error::BertError::Input(format!(
                    "optimiser state of `{}` has {} values, the parameter {}",
                    slot.param.name,
                    m.len(),
                    slot.m.len()
                )));
            }
            (slot.m, slot.v) = (m, v);
        }
        self.step = step;
        Ok(())
    }

    /// One update with learning rate `lr`, the gradients scaled by `grad_scale`
    /// (the clipping coefficient, 1 when not clipping).
    pub fn step(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        grad_scale: f32,
    ) -> Result<()> {
        self.step += 1;
        let bias1 = 1.0 - BETA1.powi(self.step);
        let bias2_sqrt = (1.0 - BETA2.powi(self.step)).sqrt();
        let step_size = (lr / bias1) as f32;
        let (b1, b2) = (BETA1 as f32, BETA2 as f32);
        let (bias2_sqrt, eps) = (bias2_sqrt as f32, EPS as f32);
        for slot in &mut self.slots {
            let Some(grad) = grads.get(&slot.param.var) else {
                continue;
            };
            let keep = 1.0 - lr as f32 * slot.weight_decay;
            let (m, v) = (&mut slot.m, &mut slot.v);
            let next = with_f32(grad, |g| {
                with_f32(slot.param.var.as_tensor(), |p| {
                    let mut out = vec![0f32; p.len()];
                    out.par_chunks_mut(CHUNK)
                        .zip(m.par_chunks_mut(CHUNK))
                        .zip(v.par_chunks_mut(CHUNK))
                        .enumerate()
                        .for_each(|(i, ((out, m), v))| {
                            let at = i * CHUNK;
                            let (p, g) = (&p[at..at + out.len()], &g[at..at + out.len()]);
                            for j in 0..out.len() {
                                let g = g[j] * grad_scale;
                                let p = p[j] * keep;
                                m[j] += (g - m[j]) * (1.0 - b1);
                                v[j] = v[j] * b2 + g * g * (1.0 - b2);
                                let denom = v[j].sqrt() / bias2_sqrt + eps;
                                out[j] = p - step_size * m[j] / denom;
                            }
                        });
                    out
                })
            })??;
            let shape = slot.param.var.shape().clone();
            let next = Tensor::from_vec(next, shape, slot.param.var.device())?;
            slot.param.var.set(&next)?;
        }
        Ok(())
    }
}
