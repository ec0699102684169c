//! `dfa eval`: DFA-Bench on a labelled dataset (docs/eval.md).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};

use super::setup::load_settings;
use crate::domain::prompts::Prompts;
use crate::engine::{AdapterSpec, Backend, Engine, EngineConfig};
use crate::eval::compare::compare;
use crate::eval::lines::{read_lines, PredictionLine};
use crate::eval::output::{DatasetInfo, Evaluation};
use crate::eval::run::{read_dataset, run_items, Dataset};
use crate::model::files::{adapter_spec, resolve_model, tiny_model_warning, ModelFiles};
use crate::registry::{registry_spec, verify_entry};
use crate::settings::Settings;
use crate::store::Store;

#[derive(Args)]
#[command(group(ArgGroup::new("model").args(["adapter", "active", "registry", "no_adapter", "compare"])))]
pub struct EvalArgs {
    /// The labelled LLaVA-format dataset (JSONL; image paths relative to it).
    #[arg(long, value_name = "FILE")]
    dataset: PathBuf,
    /// Evaluate this LoRA adapter (GGUF) instead of `model.adapter`.
    #[arg(long, value_name = "FILE")]
    adapter: Option<PathBuf>,
    /// Evaluate the registry's active adapter (and its projector).
    #[arg(long)]
    active: bool,
    /// Evaluate this registry entry, whatever its status.
    #[arg(long, value_name = "ID")]
    registry: Option<String>,
    /// Evaluate the base model without any adapter.
    #[arg(long)]
    no_adapter: bool,
    /// Compare two models: each `base`, `active`, a registry id, an adapter
    /// GGUF file, or the output folder of an earlier `dfa eval`.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<String>>,
    /// Output folder (default: eval/<dataset>-<UTC time>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The false-positive rate to find a threshold for.
    #[arg(long, default_value_t = 0.01, value_name = "RATE")]
    target_fpr: f64,
    /// Fail on a bad dataset line instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Evaluate only the first N items.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// What to evaluate.
enum Subject {
    /// `model.adapter` (the default).
    Configured,
    Base,
    File(PathBuf),
    Active,
    Registry(String),
    /// An earlier run's output folder.
    Run(PathBuf),
}

impl Subject {
    fn parse(s: &str) -> Subject {
        let path = Path::new(s);
        match s {
            "base" => Subject::Base,
            "active" => Subject::Active,
            _ if path.join("predictions.jsonl").is_file() => Subject::Run(path.to_path_buf()),
            _ if path.is_file() => Subject::File(path.to_path_buf()),
            _ => Subject::Registry(s.to_string()),
        }
    }
}

pub async fn run(config_dir: &Path, args: EvalArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.target_fpr) {
        bail!("--target-fpr must be within 0..=1");
    }
    let (settings, prompts) = load_settings(config_dir)?;
    let dataset = read(&args, &prompts).await?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&args.dataset));
    let subjects = match &args.compare {
        Some(pair) => pair.iter().map(|s| Subject::parse(s)).collect(),
        None => vec![single(&args)],
    };
    let mut bench = Bench::new(settings, prompts, &dataset, args.target_fpr);
    if let [subject] = subjects.as_slice() {
        let evaluation = bench.evaluate(subject).await?;
        write_blocking(&evaluation, &out, &bench.title(subject)).await?;
        summarise(&evaluation, &out);
        println!("{}", serde_json::to_string(&evaluation)?);
        return Ok(ExitCode::SUCCESS);
    }
    let names = args.compare.unwrap_or_default();
    let (a, b) = (
        bench.evaluate(&subjects[0]).await?,
        bench.evaluate(&subjects[1]).await?,
    );
    write_blocking(&a, &out.join("a"), &bench.title(&subjects[0])).await?;
    write_blocking(&b, &out.join("b"), &bench.title(&subjects[1])).await?;
    let comparison = compare(&names[0], &a, &names[1], &b);
    let table = comparison.table();
    std::fs::create_dir_all(&out)?;
    crate::atomic::write(
        &out.join("compare.json"),
        serde_json::to_string_pretty(&comparison)?.as_bytes(),
    )?;
    crate::atomic::write(&out.join("compare.md"), table.as_bytes())?;
    println!("{table}");
    eprintln!("dfa eval: compared; reports in {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn single(args: &EvalArgs) -> Subject {
    if args.no_adapter {
        Subject::Base
    } else if args.active {
        Subject::Active
    } else if let Some(id) = &args.registry {
        Subject::Registry(id.clone())
    } else if let Some(file) = &args.adapter {
        Subject::File(file.clone())
    } else {
        Subject::Configured
    }
}

fn default_out(dataset: &Path) -> PathBuf {
    let stem = dataset
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    PathBuf::from("eval").join(format!("{stem}-{stamp}"))
}

/// Reads the dataset, reporting bad lines (fatal with --strict).
async fn read(args: &EvalArgs, prompts: &Prompts) -> anyhow::Result<Dataset> {
    let (path, p) = (args.dataset.clone(), prompts.clone());
    let mut dataset = tokio::task::spawn_blocking(move || read_dataset(&path, &p)).await??;
    for e in &dataset.bad_lines {
        eprintln!("dfa eval: {}: {e} (skipped)", args.dataset.display());
    }
    if args.strict && !dataset.bad_lines.is_empty() {
        let lines: Vec<String> = dataset
            .bad_lines
            .iter()
            .map(|e| e.line.to_string())
            .collect();
        bail!(
            "{}: bad line(s) {} (without --strict they are skipped)",
            args.dataset.display(),
            lines.join(", ")
        );
    }
    if let Some(n) = args.limit {
        dataset.items.truncate(n);
    }
    Ok(dataset)
}

/// The evaluations of one command: one engine, its adapter swapped between
/// subjects.
struct Bench<'a> {
    settings: Settings,
    prompts: Prompts,
    dataset: &'a Dataset,
    target_fpr: f64,
    engine: Option<Engine>,
    model: Option<ModelFiles>,
}

impl<'a> Bench<'a> {
    fn new(settings: Settings, prompts: Prompts, dataset: &'a Dataset, target_fpr: f64) -> Self {
        Bench {
            settings,
            prompts,
            dataset,
            target_fpr,
            engine: None,
            model: None,
        }
    }

    fn title(&self, subject: &Subject) -> String {
        let who = match subject {
            Subject::Configured if self.settings.model.adapter.is_empty() => "base model".into(),
            Subject::Configured => format!("adapter {}", self.settings.model.adapter),
            Subject::Base => "base model".into(),
            Subject::File(p) => format!("adapter {}", p.display()),
            Subject::Active => "the registry's active adapter".into(),
            Subject::Registry(id) => format!("registry entry {id}"),
            Subject::Run(dir) => format!("the run in {}", dir.display()),
        };
        format!("{} on {}", who, self.dataset.path.display())
    }

    async fn evaluate(&mut self, subject: &Subject) -> anyhow::Result<Evaluation> {
        let threshold = f64::from(self.settings.analysis.threshold);
        if let Subject::Run(dir) = subject {
            same_dataset(dir, &self.dataset.sha256)?;
            let text = std::fs::read_to_string(dir.join("predictions.jsonl"))
                .with_context(|| format!("reading {}", dir.display()))?;
            let lines = read_lines(&text)
                .map_err(|e| anyhow::anyhow!("{}/predictions.jsonl: {e}", dir.display()))?;
            return Ok(Evaluation::new(
                DatasetInfo::of(self.dataset),
                None,
                lines,
                Vec::new(),
                threshold,
                self.target_fpr,
                0.0,
            ));
        }
        let adapter = self.adapter_for(subject).await?;
        let engine = self.engine_with(adapter).await?;
        let items = &self.dataset.items;
        let progress = bar(items.len());
        let started = Instant::now();
        let run = run_items(
            &engine,
            items,
            &self.settings.image,
            engine.info().capacity,
            &progress,
        )
        .await?;
        progress.finish_and_clear();
        let lines = run
            .predictions
            .iter()
            .map(|(i, p)| PredictionLine::new(&items[*i], p, threshold))
            .collect();
        Ok(Evaluation::new(
            DatasetInfo::of(self.dataset),
            Some(engine.model()),
            lines,
            run.skipped,
            threshold,
            self.target_fpr,
            started.elapsed().as_secs_f64(),
        ))
    }

    /// The engine, started with `adapter` or switched to it.
    async fn engine_with(&mut self, adapter: Option<AdapterSpec>) -> anyhow::Result<Engine> {
        if let Some(engine) = &self.engine {
            engine
                .set_adapter(adapter)
                .await
                .context("switching the adapter")?;
        } else {
            let files = self.model_files()?;
            let config = EngineConfig::from_settings(
                &self.settings,
                files.gguf,
                files.mmproj,
                adapter,
                self.prompts.clone(),
            );
            self.engine = Some(Engine::start(config).await.context("starting the engine")?);
        }
        self.engine
            .clone()
            .context("internal: the engine is not running")
    }

    fn model_files(&mut self) -> anyhow::Result<ModelFiles> {
        if self.model.is_none() {
            let files = resolve_model(&self.settings, &self.prompts)
                .context("preparing the generated test model")?;
            if files.generated {
                eprintln!("{}", tiny_model_warning(&files));
            }
            self.model = Some(files);
        }
        self.model.clone().context("internal: no model files")
    }

    async fn adapter_for(&self, subject: &Subject) -> anyhow::Result<Option<AdapterSpec>> {
        let scale = self.settings.model.adapter_scale;
        let row = match subject {
            Subject::Base | Subject::Run(_) => return Ok(None),
            Subject::Configured => return Ok(adapter_spec(&self.settings.model.adapter, scale)),
            Subject::File(p) => return Ok(adapter_spec(&p.to_string_lossy(), scale)),
            Subject::Active => {
                let store = self.store().await?;
                store
                    .active_adapter()
                    .await?
                    .context("the registry has no active adapter")?
            }
            Subject::Registry(id) => {
                let store = self.store().await?;
                store.adapter(id).await?.with_context(|| {
                    format!("no adapter `{id}` in the registry (nor a file or an eval folder of that name)")
                })?
            }
        };
        let (entry, dir) = ((&row).into(), PathBuf::from(&self.settings.adapters.dir));
        let spec = registry_spec(&entry, &dir);
        tokio::task::spawn_blocking(move || verify_entry(&entry, &dir))
            .await?
            .context("the registry's files")?;
        Ok(Some(spec))
    }

    async fn store(&self) -> anyhow::Result<Store> {
        Store::open(&self.settings.database, 1)
            .await
            .context("opening the database (for the adapter registry)")
    }
}

/// An earlier run is compared only on the dataset it was made from (its
/// report.json's sha256): items are matched by id, and another file's ids
/// would pair unrelated items without a word.
fn same_dataset(dir: &Path, sha256: &str) -> anyhow::Result<()> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (the run's dataset digest)", path.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    match report["dataset"]["sha256"].as_str() {
        Some(s) if s == sha256 => Ok(()),
        other => bail!(
            "{} was made from another dataset (sha256 {}), not --dataset's ({sha256})",
            dir.display(),
            other.unwrap_or("unknown")
        ),
    }
}

fn bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(
            "evaluating [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

async fn write_blocking(e: &Evaluation, dir: &Path, title: &str) -> anyhow::Result<()> {
    let (e, dir2, title) = (e.clone(), dir.to_path_buf(), title.to_string());
    tokio::task::spawn_blocking(move || e.write(&dir2, &title))
        .await?
        .with_context(|| format!("writing the report into {}", dir.display()))
}

fn summarise(e: &Evaluation, out: &Path) {
    let d = &e.report.detection;
    let pct = |x: Option<f64>| x.map_or("—".into(), |v| format!("{:.1}%", 100.0 * v));
    let num = |x: Option<f64>| x.map_or("—".into(), |v| format!("{v:.3}"));
    eprintln!(
        "dfa eval: {} items ({} skipped): accuracy {} at threshold {:.2}, AUC {}, ECE {}; threshold {} keeps FPR ≤ {:.1}% with recall {}; type accuracy {}",
        e.report.items,
        e.skipped.len(),
        pct(d.accuracy),
        d.threshold,
        num(d.roc_auc),
        num(d.ece_15),
        num(d.threshold_at_target),
        100.0 * d.target_fpr,
        pct(d.recall_at_target),
        pct(e.report.classification.accuracy),
    );
    eprintln!("dfa eval: report in {}", out.join("report.md").display());
}
