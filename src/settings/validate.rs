//! Validation of the settings tree, one section at a time; every error names
//! the key to fix.

use std::path::Path;

use secrecy::ExposeSecret;

use super::{
    invalid, AnalysisSettings, DatabaseSettings, EngineSettings, ImageSettings, KafkaSettings,
    ModelSettings, Settings, SettingsError, TelemetrySettings, WorkerSettings, LLAMA_MAX_SEQ,
};

impl Settings {
    /// Checks what can be checked before the model is loaded; the engine checks
    /// the rest (context size against image tokens) once it knows the model.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.analysis.validate()?;
        self.engine.validate()?;
        self.model.validate()?;
        self.kafka.validate()?;
        self.database.validate()?;
        self.worker.validate()?;
        self.telemetry.validate()?;
        self.retrain.validate()?;
        self.serve.validate()?;
        self.console.validate()?;
        self.faces.validate()?;
        self.feedback.validate()?;
        if self.adapters.dir.trim().is_empty() {
            return Err(invalid("adapters.dir", "must not be empty"));
        }
        if self.image_store.dir.trim().is_empty() {
            return Err(invalid("image_store.dir", "must not be empty"));
        }
        self.image.validate()
    }
}

impl AnalysisSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        unit_interval("analysis.threshold", self.threshold)?;
        unit_interval("analysis.explain_threshold", self.explain_threshold)?;
        if self.max_explain_tokens == 0 {
            return Err(invalid("analysis.max_explain_tokens", "must be at least 1"));
        }
        if self.max_answer_tokens == 0 {
            return Err(invalid("analysis.max_answer_tokens", "must be at least 1"));
        }
        Ok(())
    }
}

impl EngineSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.n_batch < 32 {
            return Err(invalid(
                "engine.n_batch",
                format!("must be at least 32, got {}", self.n_batch),
            ));
        }
        if self.n_ctx < self.n_batch {
            return Err(invalid(
                "engine.n_ctx",
                format!(
                    "must be at least engine.n_batch ({}), got {}",
                    self.n_batch, self.n_ctx
                ),
            ));
        }
        // The lower bound (sequences one request needs) is the engine's rule,
        // checked by `EngineConfig::check` when the engine starts.
        if self.n_seq_max == 0 || self.n_seq_max > LLAMA_MAX_SEQ {
            return Err(invalid(
                "engine.n_seq_max",
                format!("must be within 1..={LLAMA_MAX_SEQ}, got {}", self.n_seq_max),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(invalid("engine.max_in_flight", "must be at least 1"));
        }
        if self.queue_capacity == 0 {
            return Err(invalid("engine.queue_capacity", "must be at least 1"));
        }
        Ok(())
    }
}

impl ModelSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if !(self.adapter_scale.is_finite() && (0.0..=4.0).contains(&self.adapter_scale)) {
            return Err(invalid(
                "model.adapter_scale",
                format!("must be within 0..=4, got {}", self.adapter_scale),
            ));
        }
        if self.gguf.is_empty() != self.mmproj.is_empty() {
            let key = if self.gguf.is_empty() {
                "model.gguf"
            } else {
                "model.mmproj"
            };
            return Err(invalid(
                key,
                "model.gguf and model.mmproj must be set together (or both left empty for the tiny model)",
            ));
        }
        for (key, path) in [
            ("model.gguf", &self.gguf),
            ("model.mmproj", &self.mmproj),
            ("model.adapter", &self.adapter),
            ("model.prompts", &self.prompts),
        ] {
            if !path.is_empty() && !Path::new(path).is_file() {
                return Err(invalid(key, format!("file not found: {path}")));
            }
        }
        Ok(())
    }
}

impl KafkaSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        for (key, value) in [
            ("kafka.brokers", &self.brokers),
            ("kafka.group_id", &self.group_id),
            ("kafka.requests_topic", &self.requests_topic),
            ("kafka.results_topic", &self.results_topic),
            ("kafka.dlq_topic", &self.dlq_topic),
            ("kafka.feedback_topic", &self.feedback_topic),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
        }
        if self.feedback_topic == self.requests_topic || self.feedback_topic == self.results_topic {
            return Err(invalid(
                "kafka.feedback_topic",
                "must differ from the requests and results topics",
            ));
        }
        if self.results_topic == self.requests_topic || self.dlq_topic == self.requests_topic {
            return Err(invalid(
                "kafka.results_topic",
                "results and dead-letter topics must differ from the requests topic",
            ));
        }
        if self.max_poll_interval < self.session_timeout {
            return Err(invalid(
                "kafka.max_poll_interval",
                "must be at least kafka.session_timeout",
            ));
        }
        Ok(())
    }
}

impl DatabaseSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("database.url", "must be a postgres:// URL"));
        }
        if self.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

/// The most verdict rows one INSERT may carry.
pub const MAX_WRITE_BATCH: usize = 65_535 / crate::store::VERDICT_BINDS;

impl WorkerSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_in_flight == 0 {
            return Err(invalid("worker.max_in_flight", "must be at least 1"));
        }
        if self.write_batch_max == 0 {
            return Err(invalid("worker.write_batch_max", "must be at least 1"));
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            return Err(invalid(
                "worker.retry_max",
                "need 0 < worker.retry_initial <= worker.retry_max",
            ));
        }
        if self.metrics_addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("worker.metrics_addr", "must be HOST:PORT"));
        }
        if self.write_batch_max > MAX_WRITE_BATCH {
            return Err(invalid(
                "worker.write_batch_max",
                format!(
                    "must be at most {MAX_WRITE_BATCH} (PostgreSQL's 65535 bind parameters over {} per verdict row), got {}",
                    crate::store::VERDICT_BINDS, self.write_batch_max
                ),
            ));
        }
        if self.allow_local_paths && self.local_paths_dir.trim().is_empty() {
            return Err(invalid(
                "worker.local_paths_dir",
                "must name the base directory when worker.allow_local_paths is on",
            ));
        }
        if self.fetch_max_attempts == 0 {
            return Err(invalid("worker.fetch_max_attempts", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("worker.max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

impl TelemetrySettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let is_http = ["http://", "https://"]
            .iter()
            .any(|p| self.otlp_endpoint.starts_with(p));
        if !self.otlp_endpoint.is_empty() && !is_http {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                "must be an http(s):// URL",
            ));
        }
        Ok(())
    }
}

impl ImageSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_bytes == 0 {
            return Err(invalid("image.max_bytes", "must be at least 1"));
        }
        if self.min_side == 0 {
            return Err(invalid("image.min_side", "must be at least 1"));
        }
        if self.max_pixels < u64::from(self.min_side) * u64::from(self.min_side) {
            return Err(invalid(
                "image.max_pixels",
                "must allow at least an image of image.min_side x image.min_side",
            ));
        }
        Ok(())
    }
}

pub(super) fn unit_interval(key: &'static str, value: f32) -> Result<(), SettingsError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, format!("must be within 0..=1, got {value}")))
    }
}
