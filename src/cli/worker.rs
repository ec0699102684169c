//! `dfa worker` and `dfa migrate`.

use secrecy::ExposeSecret;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::setup::{load_settings, start_engine};
use super::AdapterChoice;
use crate::engine::instant::InstantBackend;
use crate::store::Store;

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    adapter: AdapterChoice,
    /// Benchmark only: answer every request instantly without a model, to
    /// measure what the Kafka + Postgres path carries. Verdicts are fake.
    #[arg(long, hide = true)]
    bench_instant_engine: bool,
}

pub async fn run(config_dir: &Path, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone());
    if args.bench_instant_engine {
        let (settings, _) = load_settings(config_dir)?;
        eprintln!("dfa: --bench-instant-engine: no model runs; every verdict is a constant. Benchmarks only.");
        crate::worker::run(settings, Arc::new(InstantBackend), stop).await?;
    } else {
        let loaded = start_engine(config_dir, &args.adapter).await?;
        crate::worker::run_serving(
            loaded.settings,
            Arc::new(loaded.engine),
            loaded.adapter,
            stop,
        )
        .await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or SIGINT: stop taking messages, drain, commit, exit 0.
pub(super) fn spawn_signal_handler(stop: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown signal received");
        stop.cancel();
    });
}

pub async fn migrate(config_dir: &Path) -> anyhow::Result<ExitCode> {
    let (settings, _) = load_settings(config_dir)?;
    let store = Store::connect(settings.database.url.expose_secret(), 1)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("running migrations")?;
    println!(
        "migrations applied to {}",
        redact(settings.database.url.expose_secret())
    );
    Ok(ExitCode::SUCCESS)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}
