//! `dfa retrain`, `dfa adapters list|promote|rollback`, `dfa lora import`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::setup::load_settings;
use crate::domain::adapter::AdapterRecord;
use crate::learning::record::Headline;
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
    // The featurizer is the first to start llama.cpp here: with the
    // configured backend modules, as the workers' engine does.
    crate::engine::llama::backend_in(settings.engine.backends_dir())
        .context("initialising llama.cpp")?;
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
    /// The registry, oldest first, as JSON lines with each adapter's
    /// headline numbers on its held-out split.
    List {
        /// An aligned table for people instead.
        #[arg(long)]
        table: bool,
    },
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
        AdaptersCommand::List { table } => {
            let rows = store.list_adapters().await?;
            if table {
                print!("{}", adapters_table(&rows));
            }
            for row in rows.iter().filter(|_| !table) {
                let mut line = serde_json::to_value(row)?;
                line["headline"] = serde_json::to_value(Headline::of(&row.metrics))?;
                println!("{line}");
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

/// `dfa adapters list --table`.
fn adapters_table(rows: &[AdapterRecord]) -> String {
    let pct = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let num = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.3}"));
    let mut lines = vec![[
        "ID",
        "STATUS",
        "CREATED",
        "PARENT",
        "HELD-OUT",
        "ACCURACY",
        "AUC",
        "ECE",
        "TYPE F1",
        "PROJECTOR",
        "REASON",
    ]
    .map(String::from)];
    for r in rows {
        let h = Headline::of(&r.metrics);
        lines.push([
            r.id.clone(),
            serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            r.created_at.format("%Y-%m-%d %H:%M").to_string(),
            r.parent_id.clone().unwrap_or_else(|| "—".into()),
            h.heldout_items.map_or("—".into(), |n| n.to_string()),
            pct(h.accuracy),
            num(h.roc_auc),
            num(h.ece_15),
            num(h.type_macro_f1),
            if r.mmproj_path.is_some() {
                "trained"
            } else {
                "—"
            }
            .to_string(),
            r.status_reason.clone().unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..11)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| match c {
                10 => cell.clone(),
                _ => format!("{cell:<w$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
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
