//! `dfa devices`: what llama.cpp sees on this host, and where the configured
//! engine would put the model. A JSON line per device, then the placement.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::setup::load_settings;
use crate::engine::{devices, llama};

pub fn run(config_dir: &Path) -> anyhow::Result<ExitCode> {
    let (settings, _) = load_settings(config_dir)?;
    let e = &settings.engine;
    llama::backend_in(e.backends_dir()).context("initialising llama.cpp")?;
    let found = devices::list();
    for d in &found {
        println!(
            "{}",
            json!({
                "device": d.name,
                "backend": d.backend,
                "description": d.description,
                "gpu": d.gpu,
                "memory_total_mib": d.memory_total >> 20,
                "memory_free_mib": d.memory_free >> 20,
            })
        );
    }
    let placement = devices::place(e.n_gpu_layers, &e.device, &found)
        .map_err(|reason| anyhow::anyhow!("invalid setting `engine.device`: {reason}"))?;
    println!(
        "{}",
        json!({
            "placement": {
                "n_gpu_layers": e.n_gpu_layers.to_string(),
                "device": e.device.to_string(),
                "gpu_layers": placement.gpu_layers,
                "devices": placement.devices,
                "gpu_build": cfg!(feature = "gpu"),
            }
        })
    );
    Ok(ExitCode::SUCCESS)
}
