//! Choosing the compute device: CPU, or CUDA when built with the `cuda` feature.

use candle_core::Device;

use crate::error::{BertError, Result};

/// `--device auto|cpu|cuda`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
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

/// What a run is on, as the app and the log say it: the device, and for
/// `auto` that it was chosen (`CPU (auto: no usable GPU)`).
pub fn describe(device: &Device, choice: DeviceChoice) -> String {
    let name = match device {
        Device::Cpu => format!("CPU ({} threads)", candle_core::utils::get_num_threads()),
        Device::Cuda(_) => "CUDA GPU 0".to_string(),
        Device::Metal(_) => "Metal GPU".to_string(),
    };
    match (choice, device.is_cpu()) {
        (DeviceChoice::Auto, true) => format!("{name}, auto: no usable GPU"),
        (DeviceChoice::Auto, false) => format!("{name}, auto: GPU found"),
        _ => name,
    }
}
