//! `dfa images prune`: the retention pass the workers run hourly, on demand.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use super::setup::load_settings;
use crate::images::{sweep_once, ImageStore};
use crate::store::Store;

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Delete images unused for `image_store.retain_days` days, except those
    /// of corrected verdicts, and temporary files left by crashed writers.
    /// Prints what it did as one JSON line.
    Prune {
        /// Instead of `image_store.retain_days` (0: delete no image).
        #[arg(long)]
        retain_days: Option<u32>,
    },
}

pub async fn run(config_dir: &Path, cmd: ImagesCommand) -> anyhow::Result<ExitCode> {
    let ImagesCommand::Prune { retain_days } = cmd;
    let (settings, _) = load_settings(config_dir)?;
    let retain_days = retain_days.unwrap_or(settings.image_store.retain_days);
    let images = ImageStore::new(&settings.image_store.dir);
    let store = Store::open(&settings.database, 1)
        .await
        .context("opening the database")?;
    let temp_removed = images.clean_temp().await?;
    let report = sweep_once(&images, &store, retain_days, &CancellationToken::new()).await?;
    if retain_days == 0 {
        eprintln!("dfa images: retention is off (retain_days = 0): no image deleted");
    }
    let mut line = serde_json::to_value(report)?;
    line["temp_removed"] = temp_removed.into();
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
