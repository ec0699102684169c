//! One typed settings tree: embedded `config/default.toml`, then the files
//! `config/default.toml` and `config/$DFA_ENV.toml` when present, then
//! `DFA__SECTION__KEY` environment variables. Validated once at start-up.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod device;
mod faces;
mod learning;
mod serve;
mod validate;

use config::{Config, Environment, File, FileFormat};

pub use device::{DeviceChoice, GpuLayers};
pub use faces::{FaceMode, FaceSettings};
pub use learning::{AdapterSettings, ImageStoreSettings, RetrainSettings};
use secrecy::SecretString;
use serde::Deserialize;
pub use serve::{ConsoleSettings, FeedbackSettings, ServeSettings};

/// The defaults compiled into the binary, so `dfa` runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// llama.cpp's compile-time limit on sequence ids (`LLAMA_MAX_SEQ`).
pub const LLAMA_MAX_SEQ: u32 = 256;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub model: ModelSettings,
    pub engine: EngineSettings,
    pub analysis: AnalysisSettings,
    pub image: ImageSettings,
    pub faces: FaceSettings,
    pub kafka: KafkaSettings,
    pub database: DatabaseSettings,
    pub worker: WorkerSettings,
    pub telemetry: TelemetrySettings,
    pub image_store: ImageStoreSettings,
    pub adapters: AdapterSettings,
    pub retrain: RetrainSettings,
    pub serve: ServeSettings,
    pub console: ConsoleSettings,
    pub feedback: FeedbackSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub requests_topic: String,
    pub results_topic: String,
    pub dlq_topic: String,
    /// Reviewers' corrections of verdicts.
    pub feedback_topic: String,
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub max_poll_interval: Duration,
    /// Dead letters carry the original message up to this many bytes; a
    /// larger one is kept in the image store and referenced (docs/messages.md).
    pub dlq_max_payload_bytes: usize,
    /// Create missing topics at start (development stacks only).
    pub create_topics: bool,
    /// Extra librdkafka settings, applied to consumer and producer. They may
    /// hold credentials (`sasl.password`, `ssl.key.password`), so their values
    /// never print.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Holds the password: never printed, not even by `Debug`.
    pub url: SecretString,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub max_in_flight: usize,
    pub allow_local_paths: bool,
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub write_batch_max: usize,
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    pub metrics_addr: String,
    /// Base directory of `{"image": {"path": …}}` requests; required when
    /// `allow_local_paths` is on.
    pub local_paths_dir: String,
    /// Hosts (exact names or IP literals) the URL fetcher may reach even
    /// when they resolve to loopback, link-local or private addresses.
    pub fetch_allow_hosts: Vec<String>,
    /// Let the URL fetcher reach private, loopback and link-local addresses.
    pub fetch_allow_private: bool,
    /// Accept plain `http://` image URLs (default: `https://` only).
    pub fetch_allow_http: bool,
    /// Attempts at a transiently failing fetch (timeout, DNS, 5xx, 429)
    /// before it is dead-lettered as `fetch_failed`.
    pub fetch_max_attempts: u32,
    /// Deliveries of one message that may end in a crash before it is
    /// dead-lettered as `crash_loop`.
    pub max_attempts: u32,
    /// How far in the future a feedback `created_at` may lie (clock skew).
    #[serde(with = "humantime_serde")]
    pub feedback_max_skew: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// W3C traceparent propagation through Kafka headers.
    pub propagate_trace_context: bool,
    /// OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); empty: no export.
    pub otlp_endpoint: String,
    pub service_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub gguf: String,
    pub mmproj: String,
    pub tiny_dir: PathBuf,
    pub adapter: String,
    pub adapter_scale: f32,
    pub chat_template: ChatTemplateChoice,
    pub prompts: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatTemplateChoice {
    Auto,
    VicunaV1,
    Gguf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_seq_max: u32,
    pub max_in_flight: u32,
    pub queue_capacity: usize,
    pub n_gpu_layers: GpuLayers,
    pub device: DeviceChoice,
    /// Where llama.cpp's backend modules (`libggml-*.so`) are, in a build with
    /// the `gpu` feature; empty: next to the executable, then the build's own.
    pub backends_dir: String,
    pub threads: u32,
    pub threads_batch: u32,
    pub kv_cache_type: KvCacheKind,
    pub flash_attention: FlashAttention,
    /// Host memory for the KV state of recent conversations (bytes), so a
    /// follow-up question decodes only its new tokens. 0: no cache.
    pub conversation_cache_bytes: u64,
}

/// Storage type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheKind {
    F32,
    F16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashAttention {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSettings {
    pub threshold: f32,
    pub explain_threshold: f32,
    pub max_explain_tokens: u32,
    pub max_answer_tokens: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    pub max_bytes: u64,
    pub max_pixels: u64,
    pub min_side: u32,
    /// Decoded bytes all concurrent decodes together may hold.
    pub decode_budget_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("could not load settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Settings {
    /// Loads from the embedded defaults, `config/` under `config_dir` and the environment.
    pub fn load(config_dir: &Path) -> Result<Settings, SettingsError> {
        let env_name = std::env::var("DFA_ENV").ok();
        Self::load_from(config_dir, env_name.as_deref(), true)
    }

    /// Loads without files on disk or environment: the embedded defaults only.
    pub fn embedded() -> Result<Settings, SettingsError> {
        Self::build(Self::defaults())
    }

    fn defaults() -> config::ConfigBuilder<config::builder::DefaultState> {
        Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
    }

    fn build(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
    ) -> Result<Settings, SettingsError> {
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn load_from(
        config_dir: &Path,
        env_name: Option<&str>,
        with_env_vars: bool,
    ) -> Result<Settings, SettingsError> {
        let mut builder = Self::defaults()
            .add_source(File::from(config_dir.join("default.toml")).required(false));
        if let Some(name) = env_name {
            builder = builder.add_source(File::from(config_dir.join(format!("{name}.toml"))));
        }
        if with_env_vars {
            builder = builder.add_source(environment());
        }
        Self::build(builder)
    }
}

/// `DFA__SECTION__KEY` variables; list settings are comma-separated.
fn environment() -> Environment {
    Environment::with_prefix("DFA")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        // DFA__WORKER__FETCH_ALLOW_HOSTS=a.example,b.example
        .list_separator(",")
        .with_list_parse_key("worker.fetch_allow_hosts")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(overrides: &str) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test.toml"), overrides).unwrap();
        Settings::load_from(dir.path(), Some("test"), false)
    }

    #[test]
    fn debug_never_prints_secrets() {
        use secrecy::ExposeSecret;
        let s = with(
            "[database]\nurl = \"postgres://u:hunter2@h/db\"\n\
             [kafka.options]\n\"sasl.password\" = \"s3cret\"\n",
        )
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert_eq!(s.database.url.expose_secret(), "postgres://u:hunter2@h/db");
        assert_eq!(s.kafka.options["sasl.password"].expose_secret(), "s3cret");
    }

    #[test]
    fn fetch_allow_hosts_is_a_comma_separated_env_list() {
        let vars = [(
            "DFA__WORKER__FETCH_ALLOW_HOSTS".to_string(),
            "a.example,127.0.0.1".to_string(),
        )];
        let env = environment().source(Some(vars.into_iter().collect()));
        let loaded = Settings::build(Settings::defaults().add_source(env));
        let hosts = loaded
            .map(|s| s.worker.fetch_allow_hosts)
            .unwrap_or_default();
        assert_eq!(hosts, ["a.example", "127.0.0.1"]);
    }

    #[test]
    fn durations_are_read_with_units() {
        let s = with("[worker]\nshutdown_grace = \"1m 30s\"\nretry_initial = \"50ms\"\n").unwrap();
        assert_eq!(s.worker.shutdown_grace, Duration::from_secs(90));
        assert_eq!(s.worker.retry_initial, Duration::from_millis(50));
        assert_eq!(s.adapters.poll_interval, Duration::from_secs(1));
        let err = with("[worker]\nshutdown_grace = \"30\"\n").unwrap_err();
        assert!(err.to_string().contains("shutdown_grace"), "{err}");
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::embedded().unwrap();
        assert_eq!(s.analysis.threshold, 0.5);
        assert_eq!(s.engine.n_seq_max, 64);
        assert_eq!(s.model.chat_template, ChatTemplateChoice::Auto);
    }

    #[test]
    fn environment_file_overrides_defaults() {
        let s = with("[engine]\nn_ctx = 16384\n").unwrap();
        assert_eq!(s.engine.n_ctx, 16384);
        assert_eq!(s.engine.n_batch, 512);
    }

    fn rejected_key(overrides: &str) -> String {
        match with(overrides) {
            Err(SettingsError::Invalid { key, .. }) => key.to_string(),
            other => panic!("expected an invalid setting for {overrides:?}, got {other:?}"),
        }
    }

    #[test]
    fn impossible_settings_name_their_key() {
        let cases = [
            ("[analysis]\nthreshold = 1.5\n", "analysis.threshold"),
            ("[analysis]\nexplain_threshold = -0.1\n", "analysis.explain_threshold"),
            ("[analysis]\nmax_explain_tokens = 0\n", "analysis.max_explain_tokens"),
            ("[engine]\nn_ctx = 64\n", "engine.n_ctx"),
            ("[engine]\nn_batch = 4\n", "engine.n_batch"),
            ("[engine]\nn_seq_max = 0\n", "engine.n_seq_max"),
            ("[engine]\nn_seq_max = 1000\n", "engine.n_seq_max"),
            ("[engine]\nmax_in_flight = 0\n", "engine.max_in_flight"),
            ("[model]\nadapter = \"/nonexistent/adapter.gguf\"\n", "model.adapter"),
            ("[model]\nadapter_scale = -1.0\n", "model.adapter_scale"),
            ("[model]\ngguf = \"/nonexistent/model.gguf\"\nmmproj = \"/nonexistent/mmproj.gguf\"\n", "model.gguf"),
            ("[model]\ngguf = \"/nonexistent/model.gguf\"\n", "model.mmproj"),
            ("[image]\nmin_side = 0\n", "image.min_side"),
            ("[kafka]\nresults_topic = \"dfa.requests\"\n", "kafka.results_topic"),
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
            ("[worker]\nmax_in_flight = 0\n", "worker.max_in_flight"),
            ("[worker]\nmetrics_addr = \"nowhere\"\n", "worker.metrics_addr"),
        ];
        for (toml, key) in cases {
            assert_eq!(rejected_key(toml), key, "for {toml:?}");
        }
    }

    #[test]
    fn error_message_names_the_setting() {
        let err = with("[analysis]\nthreshold = 2.0\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("analysis.threshold"), "{msg}");
        assert!(msg.contains("0..=1"), "{msg}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = with("[engine]\nn_ctxx = 5\n").unwrap_err();
        assert!(err.to_string().contains("n_ctxx"), "{err}");
    }
}
