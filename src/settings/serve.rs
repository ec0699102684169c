//! `[serve]` (the reviewers' and analysts' HTTP API) and `[feedback]` (how
//! corrections are signed and checked).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{invalid, SettingsError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Where `dfa serve` listens (the API, /healthz and /metrics).
    pub addr: String,
    /// Longest follow-up question, in characters.
    pub max_question_chars: usize,
    /// Follow-up questions one token may ask per minute (each one runs the model)...
    pub questions_per_minute: u32,
    /// ...and how many it may ask at once above that rate.
    pub questions_burst: u32,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a follow-up may take before the API answers 503.
    #[serde(with = "humantime_serde")]
    pub answer_timeout: Duration,
    /// On SIGTERM: how long open requests (streams, exports) may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `[console]`: the review console `dfa serve` puts at `/console`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// How long a signed-in browser stays signed in.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// The queue flags a verdict whose p_fake is within this distance of
    /// `analysis.threshold` (as well as every `fake` one).
    pub near_threshold: f32,
    /// Rows per queue page.
    pub page_size: u32,
    /// Mark cookies `Secure`. Unset: when the request came over TLS (a
    /// proxy's `X-Forwarded-Proto: https`).
    pub secure_cookies: Option<bool>,
}

impl ConsoleSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.session_ttl < Duration::from_secs(60) {
            return Err(invalid("console.session_ttl", "must be at least 1m"));
        }
        if !(0.0..=0.5).contains(&self.near_threshold) {
            return Err(invalid("console.near_threshold", "must lie in [0, 0.5]"));
        }
        if !(1..=500).contains(&self.page_size) {
            return Err(invalid("console.page_size", "must lie in [1, 500]"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackSettings {
    /// HMAC-SHA256 key: `dfa serve` signs the corrections it publishes, and
    /// workers check signatures with it. Empty: corrections are unsigned.
    pub signing_key: SecretString,
    /// Dead-letter feedback without a valid signature (`unsigned`). Unset:
    /// on exactly when `signing_key` is set.
    pub require_signature: Option<bool>,
}

impl FeedbackSettings {
    pub fn key(&self) -> Option<&[u8]> {
        let key = self.signing_key.expose_secret();
        (!key.is_empty()).then_some(key.as_bytes())
    }

    pub fn requires_signature(&self) -> bool {
        self.require_signature.unwrap_or(self.key().is_some())
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let len = self.signing_key.expose_secret().len();
        if len > 0 && len < 32 {
            return Err(invalid(
                "feedback.signing_key",
                format!("must hold at least 32 bytes (got {len}); e.g. `openssl rand -hex 32`"),
            ));
        }
        if self.require_signature == Some(true) && self.key().is_none() {
            return Err(invalid(
                "feedback.require_signature",
                "needs feedback.signing_key to check signatures with",
            ));
        }
        Ok(())
    }
}

impl ServeSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "serve.addr",
                format!("`{}` is not an address:port", self.addr),
            ));
        }
        if self.max_question_chars == 0 {
            return Err(invalid("serve.max_question_chars", "must be at least 1"));
        }
        if self.questions_per_minute == 0 {
            return Err(invalid("serve.questions_per_minute", "must be at least 1"));
        }
        if self.questions_burst == 0 {
            return Err(invalid("serve.questions_burst", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("serve.max_body_bytes", "must be at least 1024"));
        }
        Ok(())
    }
}
