//! `dfa serve` and `dfa tokens`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::setup::{load_settings, start_engine};
use super::worker::spawn_signal_handler;
use super::AdapterChoice;
use crate::domain::access::{NewToken, Role};
use crate::domain::prompts::Prompts;
use crate::serve::App;
use crate::store::Store;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    adapter: AdapterChoice,
}

pub async fn run(config_dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone());
    let loaded = start_engine(config_dir, &args.adapter).await?;
    let settings = loaded.settings;
    let prompts = Prompts::load(&settings.model.prompts)?;
    let store = Store::open(&settings.database, settings.database.max_connections)
        .await
        .context("opening the database")?;
    let producer =
        crate::worker::kafka::producer(&settings.kafka).context("creating the producer")?;
    let app = Arc::new(App::new(
        settings,
        prompts,
        store,
        loaded.engine,
        loaded.adapter,
        producer,
    )?);
    crate::serve::run(app, stop).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Make a token; it is printed once on stdout, only its hash is kept.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who uses it: recorded as the author of questions and corrections.
        #[arg(long)]
        name: String,
        /// Restrict the token to one tenant's verdicts.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Every token (id, name, role, tenant, created, revoked); never a secret.
    List,
    /// Revoke a token at once.
    Revoke { id: i64 },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>()
        .map_err(|_| "expected reviewer, analyst or admin".to_string())
}

pub async fn tokens(config_dir: &Path, cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    let (settings, _) = load_settings(config_dir)?;
    let store = Store::open(&settings.database, 1)
        .await
        .context("opening the database")?;
    match cmd {
        TokensCommand::Create { role, name, tenant } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                anyhow::bail!("--name must hold 1..200 characters");
            }
            let tenant = tenant.as_deref().map(str::trim).filter(|t| !t.is_empty());
            if role == Role::Admin && tenant.is_some() {
                // Adapters serve every tenant: a tenant's admin would change
                // the model for all of them.
                anyhow::bail!("--tenant: admin tokens act on every tenant (adapters); make a reviewer or analyst token for one tenant");
            }
            let token = NewToken::generate();
            let id = store
                .create_token(name, role, tenant, &token.sha256)
                .await
                .context("storing the token")?;
            println!("{}", token.secret);
            eprintln!(
                "dfa tokens: token {id} for {name} ({}{}) created; it is shown only this once",
                role.as_str(),
                tenant.map(|t| format!(", tenant {t}")).unwrap_or_default()
            );
        }
        TokensCommand::List => {
            for row in store.list_tokens().await? {
                println!("{}", serde_json::to_string(&row)?);
            }
        }
        TokensCommand::Revoke { id } => {
            if !store.revoke_token(id).await? {
                eprintln!("dfa tokens: no active token {id}");
                return Ok(ExitCode::FAILURE);
            }
            eprintln!("dfa tokens: token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
