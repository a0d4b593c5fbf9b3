//! Trainable variables: every tensor the model asks for becomes a `Var`,
//! starting from the checkpoint (or a fresh initialisation for new heads).

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::checkpoint::Weights;
use crate::error::{BertError, Result};

/// A named trainable variable (normalised `BertModel` key).
#[derive(Clone)]
pub struct NamedVar {
    pub name: String,
    pub var: Var,
}

impl NamedVar {
    /// transformers' AdamW grouping: no weight decay for biases and LayerNorm weights.
    pub fn decays(&self) -> bool {
        !(self.name.contains("bias") || self.name.contains("LayerNorm.weight"))
    }
}

/// A weight source that hands out variables and remembers them.
pub struct TrainableWeights<'a> {
    base: &'a dyn Weights,
    fresh: HashMap<String, Tensor>,
    vars: RefCell<Vec<NamedVar>>,
}

impl<'a> TrainableWeights<'a> {
    pub fn new(base: &'a dyn Weights) -> Self {
        TrainableWeights {
            base,
            fresh: HashMap::new(),
            vars: RefCell::new(Vec::new()),
        }
    }

    /// Add a newly initialised tensor (a head the checkpoint lacks).
    pub fn insert(&mut self, key: &str, tensor: Tensor) {
        self.fresh.insert(key.to_string(), tensor);
    }

    /// The variables handed out so far, in the order the model asked for them.
    pub fn into_vars(self) -> Vec<NamedVar> {
        self.vars.into_inner()
    }
}

impl Weights for TrainableWeights<'_> {
    fn get(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        // A key asked for twice (the tied decoder) shares its variable.
        if let Some(v) = self.vars.borrow().iter().find(|v| v.name == key) {
            return Ok(v.var.as_tensor().clone());
        }
        let tensor = match self.fresh.get(key) {
            Some(t) if t.dims() == shape => t.clone(),
            Some(t) => {
                return Err(BertError::Unsupported(format!(
                    "new tensor {key} has shape {:?}, expected {shape:?}",
                    t.dims()
                )))
            }
            None => self.base.get(key, shape)?,
        };
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        self.vars.borrow_mut().push(NamedVar {
            name: key.to_string(),
            var,
        });
        Ok(out)
    }

    fn contains(&self, key: &str) -> bool {
        self.fresh.contains_key(key) || self.base.contains(key)
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.fresh.keys().any(|k| k.starts_with(prefix)) || self.base.has_prefix(prefix)
    }
}

/// `normal(0, std)` values as `nn.init.normal_` / `_init_weights` draw them, seeded.
pub fn normal(shape: &[usize], std: f64, rng: &mut SmallRng, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        // Box–Muller: two uniforms give two independent normals.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        values.push((r * theta.cos() * std) as f32);
        values.push((r * theta.sin() * std) as f32);
    }
    values.truncate(n);
    Ok(Tensor::from_vec(values, shape, device)?)
}

pub fn zeros(shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::zeros(shape, DType::F32, device)?)
}

pub fn seeded(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}
