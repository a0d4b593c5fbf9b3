//! Choosing the compute device: CPU, or CUDA when built with the `cuda` feature.

use candle_core::Device;

use crate::error::{BertError, Result};

/// `--device auto|cpu|cuda`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// The device for a choice; `auto` takes the first GPU when one works, else the CPU.
pub fn select(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::new_cuda(0).unwrap_or(Device::Cpu)),
        DeviceChoice::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                return Err(BertError::Unsupported(
                    "CUDA: this build has no CUDA support (rebuild with `cargo build --features cuda`)".into(),
                ));
            }
            Device::new_cuda(0)
                .map_err(|e| BertError::Unsupported(format!("CUDA: no usable GPU: {e}")))
        }
    }
}
