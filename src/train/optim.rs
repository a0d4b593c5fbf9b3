//! The optimiser of the BERT recipe: AdamW in two groups (no weight decay for
//! biases and LayerNorm weights), linear warm-up then linear decay, and global
//! gradient-norm clipping — as `transformers`' Trainer with PyTorch's AdamW.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::error::{BertError, Result};
use crate::train::fused_adamw::{sum_squares, FusedAdamW};
use crate::train::weights::NamedVar;

/// `get_linear_schedule_with_warmup`: the LR multiplier at optimiser step `step` (0-based).
pub fn linear_schedule(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        (total.saturating_sub(step)) as f64 / total.saturating_sub(warmup).max(1) as f64
    }
}

/// The update rule: fused on the CPU, candle-nn's AdamW elsewhere (CUDA).
enum Update {
    Fused(FusedAdamW),
    Candle { decay: AdamW, no_decay: AdamW },
}

pub struct Optim {
    update: Update,
    params: Vec<NamedVar>,
    base_lr: f64,
    warmup: usize,
    total: usize,
    max_grad_norm: f64,
    step: usize,
    /// Gradients summed over the micro-batches of the current step.
    pending: Option<GradStore>,
}

/// What one optimiser step did.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    pub lr: f64,
    pub grad_norm: f64,
}

impl Optim {
    pub fn new(
        params: Vec<NamedVar>,
        lr: f64,
        weight_decay: f64,
        warmup: usize,
        total: usize,
        max_grad_norm: f64,
    ) -> Result<Self> {
        let group = |decay: bool, wd: f64| -> Result<AdamW> {
            let vars = params
                .iter()
                .filter(|p| p.decays() == decay)
                .map(|p| p.var.clone())
                .collect();
            Ok(AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    weight_decay: wd,
                    ..Default::default()
                },
            )?)
        };
        let on_cpu = params.iter().all(|p| p.var.device().is_cpu());
        let update = if on_cpu {
            Update::Fused(FusedAdamW::new(&params, weight_decay))
        } else {
            Update::Candle {
                decay: group(true, weight_decay)?,
                no_decay: group(false, 0.0)?,
            }
        };
        Ok(Optim {
            update,
            params,
            base_lr: lr,
            warmup,
            total,
            max_grad_norm,
            step: 0,
            pending: None,
        })
    }

    /// Backpropagate one micro-batch's share of the step's loss and add its
    /// gradients to those of the step so far.
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        let Some(sum) = &mut self.pending else {
            self.pending = Some(grads);
            return Ok(());
        };
        for p in &self.params {
            if let Some(g) = grads.get(&p.var) {
                let total = match sum.remove(&p.var) {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                };
                sum.insert(&p.var, total);
            }
        }
        Ok(())
    }

    /// Optimiser steps taken (the scheduler's position).
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// Save the AdamW moments and step count as safetensors
    /// (`NAME.exp_avg`, `NAME.exp_avg_sq`, `step`), PyTorch's names.
    pub fn save_state(&self, path: &Path, cancel: &AtomicBool) -> Result<()> {
        let Update::Fused(adamw) = &self.update else {
            return Err(BertError::Unsupported(
                "saving the optimiser state is supported for runs on the CPU".into(),
            ));
        };
        let adam_step = adamw.steps();
        let cpu = Device::Cpu;
        let mut tensors = Vec::new();
        for m in adamw.moments() {
            let (a, b) = (m.exp_avg, m.exp_avg_sq);
            tensors.push((
                format!("{}.exp_avg", m.name),
                Tensor::from_slice(a, a.len(), &cpu)?,
            ));
            tensors.push((
                format!("{}.exp_avg_sq", m.name),
                Tensor::from_slice(b, b.len(), &cpu)?,
            ));
        }
        let counters = [adam_step as u32, self.step as u32];
        tensors.push(("step".into(), Tensor::from_slice(&counters, 2, &cpu)?));
        crate::train::save::write_safetensors(&tensors, path, cancel)
    }

    /// Restore what [`Optim::save_state`] wrote.
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| BertError::file(path, format!("cannot read the optimiser state: {e}")))?;
        let Update::Fused(adamw) = &mut self.update else {
            return Err(BertError::Unsupported(
                "resuming is supported for runs on the CPU".into(),
            ));
        };
        let read = |key: &str| -> Result<Vec<f32>> {
            let t = tensors
                .get(key)
                .ok_or_else(|| BertError::weight(path, key, "missing"))?;
            t.flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| BertError::weight(path, key, e.to_string()))
        };
        let counters: Vec<u32> = tensors
            .get("step")
            .ok_or_else(|| BertError::weight(path, "step", "missing"))?
            .to_vec1::<u32>()
            .map_err(|e| BertError::weight(path, "step", e.to_string()))?;
        let [adam_step, step] = counters[..] else {
            return Err(BertError::weight(path, "step", "expected two counters"));
        };
        let mut saved = HashMap::new();
        for p in &self.params {
            let name = &p.name;
            let moments = (
                read(&format!("{name}.exp_avg"))?,
                read(&format!("{name}.exp_avg_sq"))?,
            );
            saved.insert(name.clone(), moments);
        }
        adamw.restore(adam_step as i32, &mut saved)?;
        self.step = step as usize;
        Ok(())
    }

    /// Drop the gradients gathered for an unfinished step (cancelled).
    pub fn discard(&mut self) {
        self.pending = None;
    }

    /// Clip the gathered gradients and update every parameter.
    pub fn step(&mut self) -> Result<StepInfo> {
        let Some(mut grads) = self.pending.take() else {
            return Err(crate::error::BertError::Input(
                "optimiser step without gradients".into(),
            ));
        };
        let (grad_norm, scale) = self.clip_scale(&grads)?;
        let lr = self.base_lr * linear_schedule(self.step, self.warmup, self.total);
        match &mut self.update {
            Update::Fused(adamw) => adamw.step(&grads, lr, scale as f32)?,
            Update::Candle { decay, no_decay } => {
                if scale != 1.0 {
                    for p in &self.params {
                        if let Some(g) = grads.remove(&p.var) {
                            grads.insert(&p.var, (g * scale)?);
                        }
                    }
                }
                decay.set_learning_rate(lr);
                no_decay.set_learning_rate(lr);
                decay.step(&grads)?;
                no_decay.step(&grads)?;
            }
        }
        self.step += 1;
        Ok(StepInfo { lr, grad_norm })
    }

    /// `clip_grad_norm_`: the global gradient norm, and the factor
    /// `max / (norm + 1e-6)` to scale every gradient by when above `max` (else 1).
    fn clip_scale(&self, grads: &GradStore) -> Result<(f64, f64)> {
        let mut total = 0f64;
        for p in &self.params {
            if let Some(g) = grads.get(&p.var) {
                total += if g.device().is_cpu() {
                    sum_squares(g)?
                } else {
                    g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64
                };
            }
        }
        let norm = total.sqrt();
        let coef = self.max_grad_norm / (norm + 1e-6);
        let scale = if self.max_grad_norm > 0.0 && coef < 1.0 {
            coef
        } else {
            1.0
        };
        Ok((norm, scale))
    }
}

#[cfg(test)]
mod tests {
    use super::linear_schedule;

    #[test]
    fn warmup_then_linear_decay() {
        assert_eq!(linear_schedule(0, 2, 10), 0.0);
        assert_eq!(linear_schedule(1, 2, 10), 0.5);
        assert_eq!(linear_schedule(2, 2, 10), 1.0);
        assert_eq!(linear_schedule(6, 2, 10), 0.5);
        assert_eq!(linear_schedule(10, 2, 10), 0.0);
        assert_eq!(linear_schedule(0, 0, 4), 1.0);
    }
}
