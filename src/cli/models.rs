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
    /// A model of a named shape, e.g. `--shape llava-7b` (13.5 GB) for GPU
    /// benchmarks.
    Generate {
        #[arg(long, value_enum)]
        shape: Shape,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = crate::model::files::TINY_SEED)]
        seed: u64,
    },
}

/// Model shapes `dfa models generate` knows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shape {
    /// hidden 64, 2 layers, 16 image tokens (the tests' model).
    Tiny,
    /// hidden 1024, 8 layers, 256 image tokens (the CPU benchmarks' model).
    Bench,
    /// LLaVA-1.5-7B + CLIP ViT-L/14-336: hidden 4096, 32 layers, FFN 11008,
    /// 32 000 tokens, 576 image tokens.
    #[value(name = "llava-7b")]
    Llava7b,
}

pub fn run(config_dir: &Path, cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    let (_, prompts) = load_settings(config_dir)?;
    let (out, seed, shape) = match cmd {
        ModelsCommand::Tiny { out, seed } => (out, seed, ModelShape::tiny()),
        ModelsCommand::Bench { out, seed } => (out, seed, ModelShape::bench()),
        ModelsCommand::Generate { shape, out, seed } => (
            out,
            seed,
            match shape {
                Shape::Tiny => ModelShape::tiny(),
                Shape::Bench => ModelShape::bench(),
                Shape::Llava7b => ModelShape::llava_7b(),
            },
        ),
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
