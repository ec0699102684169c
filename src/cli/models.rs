//! `dfa models tiny|bench`: writes the generated random-weight models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::setup::load_settings;
use crate::model::tiny::{generate, ModelShape};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// The tiny test model (milliseconds per request).
    Tiny {
        #[arg(long, default_value = "models/tiny")]
        out: PathBuf,
        #[arg(long, default_value_t = crate::model::files::TINY_SEED)]
        seed: u64,
    },
    /// The bench-size model (hidden 1024, 8 layers, 256 image tokens).
    Bench {
        #[arg(long, default_value = "models/bench")]
        out: PathBuf,
        #[arg(long, default_value_t = crate::model::files::TINY_SEED)]
        seed: u64,
    },
}

pub fn run(config_dir: &Path, cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    let (_, prompts) = load_settings(config_dir)?;
    let (out, seed, shape) = match cmd {
        ModelsCommand::Tiny { out, seed } => (out, seed, ModelShape::tiny()),
        ModelsCommand::Bench { out, seed } => (out, seed, ModelShape::bench()),
    };
    let files = generate(&out, &shape, &prompts.all_texts(), seed)?;
    println!("model   {}", files.gguf.display());
    println!("mmproj  {}", files.mmproj.display());
    for a in &files.adapters {
        println!("adapter {}", a.display());
    }
    eprintln!("dfa: random weights: use these files for tests and benchmarks only.");
    Ok(ExitCode::SUCCESS)
}
