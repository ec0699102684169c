//! A `Backend` without a model, for in-process worker tests: every analysis
//! gets the same scripted answer (a verdict or an engine error), and the
//! calls are counted, so a test can tell whether the model was asked.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use dfa::domain::{ModelIdentity, TypeScores};
use dfa::engine::{AdapterSpec, Analysis, AnalysisRequest, Backend, EngineError, EngineTimings};

pub struct FakeBackend {
    answer: Result<f32, EngineError>,
    calls: AtomicUsize,
}

impl FakeBackend {
    /// Screens every image with this p_fake.
    pub fn scoring(p_fake: f32) -> FakeBackend {
        FakeBackend {
            answer: Ok(p_fake),
            calls: AtomicUsize::new(0),
        }
    }

    /// Fails every analysis with this error.
    pub fn failing(error: EngineError) -> FakeBackend {
        FakeBackend {
            answer: Err(error),
            calls: AtomicUsize::new(0),
        }
    }

    /// How many analyses were asked for.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn identity() -> ModelIdentity {
    ModelIdentity {
        base_sha256: "fake-backend".into(),
        mmproj_sha256: "fake-backend".into(),
        adapter: None,
    }
}

impl Backend for FakeBackend {
    async fn analyze(&self, _request: AnalysisRequest) -> Result<Analysis, EngineError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let p_fake = self.answer.clone()?;
        Ok(Analysis {
            p_fake: Some(p_fake),
            type_scores: Some(TypeScores::from_array([0.25; 4])),
            explanation: None,
            answers: Vec::new(),
            detection_logits: None,
            generated_tokens: 0,
            reused_tokens: 0,
            model: identity(),
            timings: EngineTimings::default(),
        })
    }

    fn model(&self) -> ModelIdentity {
        identity()
    }

    async fn set_adapter(
        &self,
        _adapter: Option<AdapterSpec>,
    ) -> Result<ModelIdentity, EngineError> {
        Ok(identity())
    }
}
