//! A stand-in backend for benchmarks only (`dfa worker --bench-instant-engine`):
//! answers at once with a constant verdict, so a benchmark measures the
//! Kafka + Postgres path alone. Never used to serve verdicts.

use super::{AdapterSpec, Analysis, AnalysisRequest, Backend, EngineError, EngineTimings};
use crate::domain::AdapterIdentity;
use crate::domain::{ModelIdentity, TypeScores};

#[derive(Default)]
pub struct InstantBackend;

impl Backend for InstantBackend {
    async fn analyze(&self, _request: AnalysisRequest) -> Result<Analysis, EngineError> {
        Ok(Analysis {
            p_fake: Some(0.25),
            type_scores: Some(TypeScores::from_array([0.25; 4])),
            explanation: None,
            answers: Vec::new(),
            detection_logits: None,
            generated_tokens: 0,
            reused_tokens: 0,
            model: self.model(),
            timings: EngineTimings::default(),
        })
    }

    fn model(&self) -> ModelIdentity {
        ModelIdentity {
            base_sha256: "instant-benchmark-backend".into(),
            mmproj_sha256: "instant-benchmark-backend".into(),
            adapter: None,
        }
    }

    async fn set_adapter(
        &self,
        adapter: Option<AdapterSpec>,
    ) -> Result<ModelIdentity, EngineError> {
        Ok(ModelIdentity {
            base_sha256: "instant-benchmark-backend".into(),
            mmproj_sha256: "instant-benchmark-backend".into(),
            adapter: adapter.map(|a| AdapterIdentity {
                id: a.id,
                sha256: String::new(),
                scale: a.scale,
            }),
        })
    }
}
