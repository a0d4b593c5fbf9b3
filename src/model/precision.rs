//! The precision of a training step's matrix products: `f32` (the default,
//! equal to PyTorch step for step) or bf16 products with `f32` sums
//! (`--precision bf16`, like PyTorch's CPU autocast). Master weights,
//! gradients, optimiser state, layer norms, softmax and the loss stay `f32`
//! either way. Like the cancel flag, it is scoped to the training thread: the
//! linear ops created inside [`scoped`] keep it for their backward.

use serde::{Deserialize, Serialize};

use crate::error::{BertError, Result};
use crate::model::grad_kernels;

/// How a training step multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// What a caption adds after the numbers' description: nothing for
    /// fp32 (the default, `transformers`' numbers), `, bf16 products` else.
    pub fn caption(self) -> &'static str {
        match self {
            Precision::Fp32 => "",
            Precision::Bf16 => ", bf16 products",
        }
    }

    /// Whether this precision can train on `device` here: bf16 needs the
    /// host CPU's AMX-BF16 or AVX-512-BF16 (its products run in our own
    /// kernels).
    pub fn check(self, device: &candle_core::Device) -> Result<()> {
        match self {
            Precision::Fp32 => Ok(()),
            Precision::Bf16 if !device.is_cpu() => Err(BertError::Unsupported(
                "bf16 training runs on the CPU only for now (the CUDA path is fp32)".into(),
            )),
            Precision::Bf16 if !grad_kernels::bf16_available() => Err(BertError::Unsupported(
                "bf16 training needs a CPU with AVX-512-BF16 or AMX-BF16 (Intel Cooper Lake / \
                 Sapphire Rapids or later, AMD Zen 4 or later); this one has none"
                    .into(),
            )),
            Precision::Bf16 => Ok(()),
        }
    }
}

scoped_tls::scoped_thread_local!(static CURRENT: Precision);

/// Run `f` with `precision` for the linear ops it creates on this thread.
pub fn scoped<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    CURRENT.set(&precision, f)
}

/// The precision of the step running on this thread (`Fp32` outside one).
pub fn current() -> Precision {
    if CURRENT.is_set() {
        CURRENT.with(|p| *p)
    } else {
        Precision::Fp32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_to_this_thread_and_call() {
        assert_eq!(current(), Precision::Fp32);
        scoped(Precision::Bf16, || {
            assert_eq!(current(), Precision::Bf16);
            let other = std::thread::scope(|s| s.spawn(current).join().ok());
            assert_eq!(other, Some(Precision::Fp32));
        });
        assert_eq!(current(), Precision::Fp32);
    }
}
