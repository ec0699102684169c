//! Repost dedup: an image whose exact bytes were analysed before by the
//! model that would answer now reuses that analysis (`faces.reuse_reposts`).

use crate::domain::{ModelIdentity, Verdict};

/// The first stored verdict (JSON, newest first) a request may reuse: made by
/// exactly `model` (the adapter's scale included) and, when the request
/// asks for the artifact description always (`explain`), holding one for
/// every face it screened. Results that do not parse are passed over.
pub fn reusable(results: &[String], model: &ModelIdentity, explain: bool) -> Option<Verdict> {
    results
        .iter()
        .filter_map(|r| serde_json::from_str::<Verdict>(r).ok())
        .find(|v| &v.model == model && (!explain || explained(v)))
}

fn explained(v: &Verdict) -> bool {
    if v.faces.is_empty() {
        v.label.is_none() || v.explanation.is_some()
    } else {
        v.faces.iter().all(|f| f.explanation.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AdapterIdentity;
    use crate::engine::analyze::assemble_verdict;
    use crate::engine::{Analysis, EngineTimings};

    fn model(scale: f32) -> ModelIdentity {
        ModelIdentity {
            base_sha256: "b".into(),
            mmproj_sha256: "m".into(),
            adapter: Some(AdapterIdentity {
                id: "a".into(),
                sha256: "s".into(),
                scale,
            }),
        }
    }

    fn stored(scale: f32, explanation: Option<&str>) -> String {
        let a = Analysis {
            p_fake: Some(0.9),
            type_scores: None,
            explanation: explanation.map(str::to_string),
            answers: vec![],
            detection_logits: None,
            generated_tokens: 0,
            reused_tokens: 0,
            model: model(scale),
            timings: EngineTimings::default(),
        };
        let v = assemble_verdict(uuid::Uuid::new_v4(), a, 0.5);
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn only_the_same_model_and_enough_explanation_is_reused() {
        let results = [stored(0.5, None), stored(1.0, None)];
        let found = reusable(&results, &model(1.0), false).expect("same model");
        assert_eq!(found.model, model(1.0));
        assert!(reusable(&results, &model(2.0), false).is_none());
        assert!(reusable(&results, &model(1.0), true).is_none());
        let explained = [stored(1.0, Some("1. Eyes: blur."))];
        assert!(reusable(&explained, &model(1.0), true).is_some());
        assert!(reusable(&["not json".into()], &model(1.0), false).is_none());
    }
}
