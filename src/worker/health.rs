//! What `/healthz` reports: one check per dependency the worker needs
//! (database, broker, image store, engine, topics, its own writer). A check
//! is failing with a reason while its dependency is down or a message is
//! held still because of it; the endpoint answers 503 while any check fails,
//! so an orchestrator sees a stalled worker instead of a quiet one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// A dependency `/healthz` reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// PostgreSQL: verdict writes and rejection records.
    Database,
    /// Kafka, producing: results and dead letters.
    Broker,
    /// Kafka, consuming: fetching requests and feedback.
    Consumer,
    /// The topics the worker consumes and produces exist.
    Topics,
    /// The image store directory is writable.
    ImageStore,
    /// The engine thread is alive.
    Engine,
    /// The batched verdict writer is alive.
    Writer,
}

impl Check {
    pub const ALL: [Check; 7] = [
        Check::Database,
        Check::Broker,
        Check::Consumer,
        Check::Topics,
        Check::ImageStore,
        Check::Engine,
        Check::Writer,
    ];
}

/// Shared, cheap to clone; every check starts passing.
#[derive(Clone, Default)]
pub struct Health {
    failing: Arc<Mutex<BTreeMap<Check, String>>>,
}

/// The body of `/healthz`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub status: &'static str,
    /// "ok", or why the check is failing.
    pub checks: BTreeMap<Check, String>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// Marks a check failing (or still failing, with the latest reason).
    pub fn fail(&self, check: Check, reason: impl Into<String>) {
        if let Ok(mut f) = self.failing.lock() {
            f.insert(check, reason.into());
        }
    }

    pub fn pass(&self, check: Check) {
        if let Ok(mut f) = self.failing.lock() {
            f.remove(&check);
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.failing.lock().map(|f| f.is_empty()).unwrap_or(false)
    }

    /// Why `check` is failing, if it is.
    pub fn failing(&self, check: Check) -> Option<String> {
        self.failing.lock().ok()?.get(&check).cloned()
    }

    pub fn report(&self) -> Report {
        let failing = self.failing.lock().map(|f| f.clone()).unwrap_or_default();
        let checks = Check::ALL
            .iter()
            .map(|c| (*c, failing.get(c).cloned().unwrap_or_else(|| "ok".into())))
            .collect();
        Report {
            status: if failing.is_empty() { "ok" } else { "failing" },
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_reported_with_its_reason_until_it_passes() {
        let h = Health::new();
        assert!(h.is_healthy());
        h.fail(Check::Database, "connection refused");
        h.fail(Check::Engine, "engine thread ended");
        let r = h.report();
        assert_eq!(r.status, "failing");
        assert_eq!(r.checks[&Check::Database], "connection refused");
        assert_eq!(r.checks[&Check::Broker], "ok");
        assert_eq!(r.checks.len(), Check::ALL.len());
        h.pass(Check::Database);
        assert!(!h.is_healthy(), "the engine still fails");
        h.pass(Check::Engine);
        assert!(h.is_healthy());
        assert_eq!(h.report().status, "ok");
    }

    #[test]
    fn the_report_names_checks_in_snake_case() {
        let json = serde_json::to_value(Health::new().report()).unwrap_or_default();
        assert_eq!(json["checks"]["image_store"], "ok");
        assert_eq!(json["status"], "ok");
    }
}
