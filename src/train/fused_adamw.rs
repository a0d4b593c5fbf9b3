//! AdamW and gradient clipping fused into one parallel pass per parameter on
//! the CPU, with PyTorch's arithmetic (`torch.optim.AdamW`, `clip_grad_norm_`).
//! candle-nn's AdamW allocates a tensor per elementwise operation (about 15
//! passes over every parameter, single-threaded): on MiniLM that was a fifth
//! of each training step.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Storage, Tensor};
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
        let coeffs = Coeffs {
            b1: BETA1 as f32,
            b2: BETA2 as f32,
            bias2_sqrt: bias2_sqrt as f32,
            eps: EPS as f32,
            step_size: (lr / bias1) as f32,
            grad_scale,
            keep: 1.0,
        };
        for slot in &mut self.slots {
            let Some(grad) = grads.get(&slot.param.var) else {
                continue;
            };
            let coeffs = Coeffs {
                keep: 1.0 - lr as f32 * slot.weight_decay,
                ..coeffs
            };
            let update = Update {
                moments: Mutex::new((&mut slot.m, &mut slot.v)),
                coeffs,
            };
            // The parameter's own storage, updated in place (no new tensor,
            // no copy back).
            // (`contiguous` is free for the contiguous gradients the backward
            // gives; a strided one is copied rather than refused.)
            slot.param
                .var
                .as_tensor()
                .inplace_op2(&grad.contiguous()?, &update)?;
        }
        Ok(())
    }
}

/// One step's constants (PyTorch's `_single_tensor_adamw`), `keep` the decay
/// factor `1 − lr·λ` of one parameter.
#[derive(Clone, Copy)]
struct Coeffs {
    b1: f32,
    b2: f32,
    bias2_sqrt: f32,
    eps: f32,
    step_size: f32,
    grad_scale: f32,
    keep: f32,
}

/// The update of one parameter, applied to its storage in place; the
/// moments are the optimiser's own.
struct Update<'a> {
    moments: Mutex<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
    coeffs: Coeffs,
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("adamw: a parameter or its gradient is not contiguous");
        };
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (s1, s2) else {
            bail!("adamw: parameters and gradients must be f32");
        };
        let (p, g) = (&mut p[p0..p1], &g[g0..g1]);
        let mut moments = match self.moments.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (m, v) = &mut *moments;
        if g.len() != p.len() || m.len() != p.len() || v.len() != p.len() {
            bail!(
                "adamw: {} values, {} gradients, {} and {} moments",
                p.len(),
                g.len(),
                m.len(),
                v.len()
            );
        }
        let c = self.coeffs;
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, ((p, m), v))| {
                let at = i * CHUNK;
                update_chunk(p, &g[at..at + p.len()], m, v, c)
            });
        Ok(())
    }
}

/// AdamW on one chunk: `p`, `m`, `v` updated in place from the gradients `g`.
fn update_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Coeffs) {
    crate::model::kernels::with_simd!(update_chunk, fn(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Coeffs) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * c.grad_scale;
            let decayed = *p * c.keep;
            *m += (g - *m) * (1.0 - c.b1);
            *v = *v * c.b2 + g * g * (1.0 - c.b2);
            let denom = v.sqrt() / c.bias2_sqrt + c.eps;
            *p = decayed - c.step_size * *m / denom;
        }
    });
}
