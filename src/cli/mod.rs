//! The `dfa` command line: thin wrappers over the library.

mod analyze;
mod bench;
mod chat;
mod devices;
mod eval;
mod images;
mod models;
mod retrain;
mod serve;
mod setup;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dfa",
    version,
    about = "Interactive deepfake analysis (DFA-GPT on llama.cpp)"
)]
struct Cli {
    /// Directory holding default.toml and $DFA_ENV.toml.
    #[arg(long, global = true, env = "DFA_CONFIG_DIR", default_value = "config")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse images: one JSON line per image on stdout.
    Analyze(analyze::AnalyzeArgs),
    /// Ask follow-up questions about one image in the terminal.
    Chat(chat::ChatArgs),
    /// The devices llama.cpp sees (CPU, GPUs) and where the model would go.
    Devices,
    /// Generate random-weight models for tests and benchmarks.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// DFA-Bench: score a model on a labelled dataset (docs/eval.md).
    Eval(eval::EvalArgs),
    /// Measure engine throughput; writes docs/BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Consume analysis requests from Kafka; store and publish verdicts.
    Worker(worker::WorkerArgs),
    /// Apply the database migrations.
    Migrate,
    /// Train a LoRA on reviewers' corrections (and a dataset), evaluate it
    /// against the active adapter, and promote or reject it.
    Retrain(retrain::RetrainArgs),
    /// The adapter registry: list, promote, roll back.
    #[command(subcommand)]
    Adapters(retrain::AdaptersCommand),
    /// LoRA adapters made elsewhere.
    #[command(subcommand)]
    Lora(retrain::LoraCommand),
    /// The image store: retention.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// The HTTP API for reviewers and analysts (docs/api.md).
    Serve(serve::ServeArgs),
    /// API tokens for `dfa serve`: create, list, revoke.
    #[command(subcommand)]
    Tokens(serve::TokensCommand),
}

/// `--adapter FILE | --no-adapter`; neither: the setting `model.adapter`.
#[derive(Args, Debug, Clone)]
#[group(multiple = false)]
pub struct AdapterChoice {
    /// LoRA adapter (GGUF) to apply instead of the configured one.
    #[arg(long, value_name = "FILE")]
    adapter: Option<PathBuf>,
    /// Serve the base model without any adapter.
    #[arg(long)]
    no_adapter: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry_settings = crate::settings::Settings::load(&cli.config_dir)
        .ok()
        .map(|s| s.telemetry);
    let _telemetry = crate::telemetry::init(telemetry_settings.as_ref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dfa: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Analyze(args) => analyze::run(&cli.config_dir, args).await,
            Command::Chat(args) => chat::run(&cli.config_dir, args).await,
            Command::Models(cmd) => models::run(&cli.config_dir, cmd),
            Command::Devices => devices::run(&cli.config_dir),
            Command::Eval(args) => eval::run(&cli.config_dir, args).await,
            Command::Bench(args) => bench::run(&cli.config_dir, args).await,
            Command::Worker(args) => worker::run(&cli.config_dir, args).await,
            Command::Migrate => worker::migrate(&cli.config_dir).await,
            Command::Retrain(args) => retrain::run_retrain(&cli.config_dir, args).await,
            Command::Adapters(cmd) => retrain::run_adapters(&cli.config_dir, cmd).await,
            Command::Lora(cmd) => retrain::run_lora(&cli.config_dir, cmd).await,
            Command::Images(cmd) => images::run(&cli.config_dir, cmd).await,
            Command::Serve(args) => serve::run(&cli.config_dir, args).await,
            Command::Tokens(cmd) => serve::tokens(&cli.config_dir, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dfa: {e:#}");
            ExitCode::FAILURE
        }
    }
}
