//! Asking the engine about one evaluation item, as the workers ask: scores
//! from logits, the artifact description where the item has a reference,
//! then the free-conversation questions.

use crate::domain::parse_artifacts;
use crate::engine::{AnalysisRequest, Backend, EngineError, Explain, Tasks};
use crate::intake::DecodedImage;
use crate::metrics::report::Prediction;

use super::EvalItem;

pub async fn predict<B: Backend>(
    backend: &B,
    item: &EvalItem,
    image: DecodedImage,
) -> Result<Prediction, EngineError> {
    let tasks = Tasks {
        explain: if item.wants_explanation() {
            Explain::Always
        } else {
            Explain::Never
        },
        questions: item
            .conversation
            .iter()
            .map(|t| t.question.clone())
            .collect(),
        ..Tasks::screening(1.0)
    };
    let analysis = backend.analyze(AnalysisRequest { image, tasks }).await?;
    let answers = item
        .conversation
        .iter()
        .zip(&analysis.answers)
        .map(|(reference, generated)| (reference.answer.clone(), generated.answer.clone()))
        .collect();
    Ok(Prediction {
        id: item.id.clone(),
        slice: item.source.clone(),
        truth: item.truth.clone(),
        p_fake: analysis.p_fake.map(f64::from),
        type_scores: analysis.type_scores,
        forgery_type: analysis.type_scores.map(|s| s.best()),
        artifacts: analysis
            .explanation
            .as_deref()
            .map(parse_artifacts)
            .unwrap_or_default(),
        explanation: analysis.explanation,
        answers,
    })
}
