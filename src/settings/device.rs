//! Where the model runs: which llama.cpp device, how many layers on it, and
//! where backends built as loadable modules are found.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// `engine.n_gpu_layers`: `"auto"` offloads every layer when a GPU backend
/// is present and none otherwise; a number is taken as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLayers {
    Auto,
    Count(u32),
}

impl GpuLayers {
    /// llama.cpp clamps the count to the model's layers, so "all" is any
    /// number at least as large as the deepest model we serve.
    pub const ALL: u32 = 999;

    /// The layer count to give llama.cpp, knowing whether a GPU is there.
    pub fn resolve(self, gpu_present: bool) -> u32 {
        match self {
            GpuLayers::Count(n) => n,
            GpuLayers::Auto if gpu_present => Self::ALL,
            GpuLayers::Auto => 0,
        }
    }
}

impl fmt::Display for GpuLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuLayers::Auto => f.write_str("auto"),
            GpuLayers::Count(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for GpuLayers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) => Ok(GpuLayers::Count(n)),
            Raw::Text(t) if t.eq_ignore_ascii_case("auto") => Ok(GpuLayers::Auto),
            Raw::Text(t) => t.trim().parse().map(GpuLayers::Count).map_err(|_| {
                serde::de::Error::custom(format!(
                    "n_gpu_layers: expected \"auto\" or a layer count, got {t:?}"
                ))
            }),
        }
    }
}

/// `engine.device`: `"auto"` lets llama.cpp use every GPU it finds, `"cpu"`
/// keeps the model off GPUs, and a device name (`"CUDA0"`, as `dfa devices`
/// lists them) pins the model to that one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Named(String),
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Named(name) => f.write_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let trimmed = text.trim();
        Ok(
            if trimmed.eq_ignore_ascii_case("auto") || trimmed.is_empty() {
                DeviceChoice::Auto
            } else if trimmed.eq_ignore_ascii_case("cpu") {
                DeviceChoice::Cpu
            } else {
                DeviceChoice::Named(trimmed.to_string())
            },
        )
    }
}

impl super::EngineSettings {
    /// `engine.backends_dir`, when set.
    pub fn backends_dir(&self) -> Option<&std::path::Path> {
        let dir = self.backends_dir.trim();
        (!dir.is_empty()).then(|| std::path::Path::new(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Wrap {
        layers: GpuLayers,
        device: DeviceChoice,
    }

    fn parse(toml_text: &str) -> Result<Wrap, String> {
        config::Config::builder()
            .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<Wrap>())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn layers_accept_auto_a_number_and_a_numeric_string() {
        let w = parse("layers = \"auto\"\ndevice = \"auto\"").unwrap();
        assert_eq!(w.layers, GpuLayers::Auto);
        assert_eq!(w.device, DeviceChoice::Auto);
        let w = parse("layers = 20\ndevice = \"CUDA1\"").unwrap();
        assert_eq!(w.layers, GpuLayers::Count(20));
        assert_eq!(w.device, DeviceChoice::Named("CUDA1".into()));
        // Environment variables arrive as text.
        let w = parse("layers = \"999\"\ndevice = \"CPU\"").unwrap();
        assert_eq!(w.layers, GpuLayers::Count(999));
        assert_eq!(w.device, DeviceChoice::Cpu);
    }

    #[test]
    fn a_word_other_than_auto_is_refused_with_the_setting_named() {
        let err = parse("layers = \"all\"\ndevice = \"auto\"").unwrap_err();
        assert!(err.contains("n_gpu_layers"), "{err}");
    }

    #[test]
    fn auto_offloads_everything_only_when_a_gpu_is_there() {
        assert_eq!(GpuLayers::Auto.resolve(true), GpuLayers::ALL);
        assert_eq!(GpuLayers::Auto.resolve(false), 0);
        assert_eq!(GpuLayers::Count(7).resolve(false), 7);
        assert_eq!(GpuLayers::Count(0).resolve(true), 0);
    }
}
