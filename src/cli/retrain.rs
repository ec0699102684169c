//! `dfa retrain`, `dfa adapters list|promote|rollback`, `dfa lora import`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::setup::load_settings;
use crate::learning::retrain::retrain;
use crate::learning::RetrainOptions;
use crate::model::files::{resolve_model, tiny_model_warning};
use crate::registry::import::{import_peft, Imported};
use crate::registry::promote;
use crate::store::Store;

#[derive(Args)]
pub struct RetrainArgs {
    /// Also train on a LLaVA-format JSONL dataset (DFA-Instruct's format);
    /// image paths are relative to the file.
    #[arg(long, value_name = "FILE")]
    dataset: Option<PathBuf>,
    /// Fail on a bad dataset line instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Only report what would be trained and evaluated.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run_retrain(config_dir: &Path, args: RetrainArgs) -> anyhow::Result<ExitCode> {
    let (settings, prompts) = load_settings(config_dir)?;
    let model = resolve_model(&settings, &prompts).context("preparing the generated test model")?;
    if model.generated {
        eprintln!("{}", tiny_model_warning(&model));
    }
    let opts = RetrainOptions {
        dataset: args.dataset,
        strict: args.strict,
        dry_run: args.dry_run,
        progress: std::io::stderr().is_terminal(),
    };
    let report = retrain(&settings, &prompts, &model, &opts).await?;
    eprintln!("dfa retrain: {}", report.message);
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum AdaptersCommand {
    /// The registry, oldest first, as JSON lines.
    List,
    /// Make an adapter active; running workers switch to it within seconds.
    Promote { id: String },
    /// Retire the active adapter and restore the one it replaced.
    Rollback,
}

pub async fn run_adapters(config_dir: &Path, cmd: AdaptersCommand) -> anyhow::Result<ExitCode> {
    let (settings, _) = load_settings(config_dir)?;
    let store = Store::open(&settings.database, 1)
        .await
        .context("opening the database")?;
    match cmd {
        AdaptersCommand::List => {
            for row in store.list_adapters().await? {
                println!("{}", serde_json::to_string(&row)?);
            }
        }
        AdaptersCommand::Promote { id } => {
            promote(&store, &settings, &id, "promoted by an operator").await?;
            eprintln!("dfa adapters: {id} is active");
        }
        AdaptersCommand::Rollback => {
            let (retired, restored) = store.rollback_adapter().await?;
            eprintln!(
                "dfa adapters: {retired} retired; now serving {}",
                restored
                    .as_deref()
                    .unwrap_or("no adapter (model.adapter, if set)")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum LoraCommand {
    /// Convert a PEFT LoRA (adapter_config.json + adapter_model.safetensors)
    /// to a GGUF adapter in the adapter store and register it as a candidate.
    Import {
        /// The PEFT adapter directory.
        dir: PathBuf,
        /// Registry id (default: the directory name).
        #[arg(long)]
        id: Option<String>,
    },
}

pub async fn run_lora(config_dir: &Path, cmd: LoraCommand) -> anyhow::Result<ExitCode> {
    let LoraCommand::Import { dir, id } = cmd;
    let (settings, prompts) = load_settings(config_dir)?;
    let model = resolve_model(&settings, &prompts).context("preparing the generated test model")?;
    let Imported { id, path } = import_peft(&settings, &model, &dir, id).await?;
    eprintln!("dfa lora import: {id} registered as a candidate ({}); promote it with `dfa adapters promote {id}`", path.display());
    Ok(ExitCode::SUCCESS)
}
