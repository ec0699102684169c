//! Scratch databases: each benchmark measures on a database of its own.

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

use crate::settings::Settings;

/// A database of its own for one measurement, dropped (best effort) after:
/// a leftover one costs disk, not results.
pub(in crate::cli::bench) struct ScratchDb {
    pub name: String,
    pub url: String,
    admin: PgPool,
}

impl ScratchDb {
    pub(in crate::cli::bench) async fn create(settings: &Settings) -> anyhow::Result<ScratchDb> {
        let name = format!("dfa_bench_{}", &Uuid::new_v4().simple().to_string()[..10]);
        let base = settings
            .database
            .url
            .expose_secret()
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .context("database.url has no database name")?;
        let admin = PgPool::connect(&format!("{base}/postgres"))
            .await
            .context("Postgres (scripts/dev-up)")?;
        // The name is ours (hex), not input.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        Ok(ScratchDb {
            url: format!("{base}/{name}"),
            name,
            admin,
        })
    }

    pub(in crate::cli::bench) async fn drop_database(self) {
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await;
    }
}
