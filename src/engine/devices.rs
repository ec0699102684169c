//! Which devices llama.cpp has, and where the model goes. A `gpu` build
//! links llama.cpp as shared libraries and loads its backends as modules at
//! start (llama.cpp's `GGML_BACKEND_DL`), so one binary serves CPU-only
//! hosts and hosts where a `libggml-cuda.so` sits next to it.

use std::path::{Path, PathBuf};

use llama_cpp_2::{LlamaBackendDevice, LlamaBackendDeviceType};

use crate::settings::{DeviceChoice, GpuLayers};

/// One device as llama.cpp lists it, kept to what placement needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub index: usize,
    pub name: String,
    pub description: String,
    pub backend: String,
    pub gpu: bool,
    pub memory_total: usize,
    pub memory_free: usize,
}

impl From<LlamaBackendDevice> for Device {
    fn from(d: LlamaBackendDevice) -> Device {
        let gpu = matches!(
            d.device_type,
            LlamaBackendDeviceType::Gpu | LlamaBackendDeviceType::IntegratedGpu
        );
        Device {
            index: d.index,
            name: d.name,
            description: d.description,
            backend: d.backend,
            gpu,
            memory_total: d.memory_total,
            memory_free: d.memory_free,
        }
    }
}

/// Devices registered with llama.cpp (after its backend is initialised).
pub fn list() -> Vec<Device> {
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(Device::from)
        .collect()
}

/// Where the model's layers go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub gpu_layers: u32,
    /// `Some`: only these devices (llama.cpp's indices); `None`: llama.cpp's
    /// default, every GPU it has.
    pub devices: Option<Vec<usize>>,
}

/// Decides the placement from the settings and the devices present.
pub fn place(
    layers: GpuLayers,
    choice: &DeviceChoice,
    devices: &[Device],
) -> Result<Placement, String> {
    let gpus: Vec<&Device> = devices.iter().filter(|d| d.gpu).collect();
    match choice {
        DeviceChoice::Cpu => Ok(Placement {
            gpu_layers: 0,
            devices: None,
        }),
        DeviceChoice::Auto => Ok(Placement {
            gpu_layers: layers.resolve(!gpus.is_empty()),
            devices: None,
        }),
        DeviceChoice::Named(name) => {
            let Some(dev) = devices.iter().find(|d| d.name.eq_ignore_ascii_case(name)) else {
                let known: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
                return Err(format!(
                    "no device {name:?}; llama.cpp has [{}]{}",
                    known.join(", "),
                    if cfg!(feature = "gpu") {
                        ""
                    } else {
                        " (this build has no loadable backends: build with --features gpu)"
                    }
                ));
            };
            if !dev.gpu {
                return Ok(Placement {
                    gpu_layers: 0,
                    devices: None,
                });
            }
            Ok(Placement {
                gpu_layers: layers.resolve(true),
                devices: Some(vec![dev.index]),
            })
        }
    }
}

/// Loads llama.cpp's backend modules before the backend is initialised:
/// from `dir` when set, else from `lib/` next to the executable (the
/// packaged layout), the executable's directory, or the directory this build
/// wrote them to. A build without `gpu` has its CPU
/// backend linked in and loads nothing.
pub(super) fn load_backend_modules(dir: Option<&Path>) -> Result<Option<PathBuf>, String> {
    #[cfg(feature = "gpu")]
    {
        use llama_cpp_2::llama_backend::load_backends_from_path;
        let registered = || unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
        let mut tried = Vec::new();
        let candidates: Vec<PathBuf> = match dir {
            Some(d) => vec![d.to_path_buf()],
            None => {
                let exe_dir = std::env::current_exe()
                    .ok()
                    .and_then(|exe| exe.parent().map(Path::to_path_buf));
                exe_dir
                    .iter()
                    .flat_map(|d| [d.join("lib"), d.clone()])
                    .chain(llama_cpp_sys_2::BACKENDS_DIR.map(PathBuf::from))
                    .collect()
            }
        };
        for candidate in candidates {
            if candidate.is_dir() {
                load_backends_from_path(&candidate);
                if registered() > 0 {
                    return Ok(Some(candidate));
                }
            }
            tried.push(candidate.display().to_string());
        }
        Err(format!(
            "no llama.cpp backend module (libggml-cpu*.so) found in [{}]; set engine.backends_dir",
            tried.join(", ")
        ))
    }
    #[cfg(not(feature = "gpu"))]
    {
        let _ = dir;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(index: usize, name: &str, gpu: bool) -> Device {
        Device {
            index,
            name: name.into(),
            description: String::new(),
            backend: if gpu { "CUDA" } else { "CPU" }.into(),
            gpu,
            memory_total: 0,
            memory_free: 0,
        }
    }

    #[test]
    fn auto_puts_every_layer_on_gpus_only_when_there_are_some() {
        let cpu_only = [dev(0, "CPU", false)];
        let with_gpu = [dev(0, "CUDA0", true), dev(1, "CPU", false)];
        let p = place(GpuLayers::Auto, &DeviceChoice::Auto, &cpu_only).unwrap();
        assert_eq!(p.gpu_layers, 0);
        let p = place(GpuLayers::Auto, &DeviceChoice::Auto, &with_gpu).unwrap();
        assert_eq!(p.gpu_layers, GpuLayers::ALL);
        assert_eq!(p.devices, None);
    }

    #[test]
    fn a_named_gpu_is_the_only_device_used_and_cpu_means_none() {
        let devs = [
            dev(0, "CUDA0", true),
            dev(1, "CUDA1", true),
            dev(2, "CPU", false),
        ];
        let p = place(
            GpuLayers::Count(20),
            &DeviceChoice::Named("cuda1".into()),
            &devs,
        )
        .unwrap();
        assert_eq!(
            p,
            Placement {
                gpu_layers: 20,
                devices: Some(vec![1])
            }
        );
        let p = place(GpuLayers::Auto, &DeviceChoice::Cpu, &devs).unwrap();
        assert_eq!(p.gpu_layers, 0);
    }

    #[test]
    fn an_unknown_device_is_refused_with_the_ones_there() {
        let err = place(
            GpuLayers::Auto,
            &DeviceChoice::Named("CUDA3".into()),
            &[dev(0, "CPU", false)],
        )
        .unwrap_err();
        assert!(err.contains("CUDA3") && err.contains("[CPU]"), "{err}");
    }
}
