//! `dfa chat IMAGE`: the verdict, then a reviewer's follow-up questions, each
//! answered with the conversation so far.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

use super::setup::start_engine;
use super::AdapterChoice;
use crate::domain::dialogue::{verdict_turns, Screened};
use crate::domain::prompts::Turn;
use crate::domain::{FaceVerdict, Verdict};
use crate::engine::analyze::{analyze_bytes, subject_of, Stages};
use crate::engine::{AnalysisRequest, Backend, Explain, Tasks};
use crate::intake::Intake;

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    adapter: AdapterChoice,
    /// The face to ask about (its index in the verdict's faces; default: the most suspicious one).
    #[arg(long, value_name = "INDEX")]
    face: Option<u32>,
    image: PathBuf,
}

pub async fn run(config_dir: &Path, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let loaded = start_engine(config_dir, &args.adapter).await?;
    let (settings, engine) = (&loaded.settings, &loaded.engine);
    let intake = Intake::new(&settings.image);
    let bytes = std::sync::Arc::new(
        tokio::fs::read(&args.image)
            .await
            .with_context(|| format!("cannot read {}", args.image.display()))?,
    );
    let tasks = Tasks {
        explain: Explain::Always,
        ..Tasks::screening(settings.analysis.explain_threshold)
    };
    let stages = Stages {
        intake: &intake,
        analysis: &settings.analysis,
        faces: &loaded.faces,
    };
    let verdict = analyze_bytes(engine, Uuid::new_v4(), bytes.clone(), tasks, stages).await?;
    let mut out = tokio::io::stdout();
    out.write_all(summary(&verdict).as_bytes()).await?;

    // The conversation as DFA-GPT holds it about the face asked about, as
    // `dfa serve` continues it.
    let subject = Subject::of(&verdict, args.face)?;
    let mut history = match subject.screened() {
        Some(screened) => verdict_turns(engine.prompts(), &screened),
        None => Vec::new(),
    };
    let (image, _) = intake.decode(bytes).await;
    let image = match subject.face {
        Some(face) => loaded.faces.crop(image?, face.crop).await?,
        None => subject_of(&verdict, image?, &loaded.faces).await?,
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        out.write_all(b"\nyou> ").await?;
        out.flush().await?;
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let question = line.trim();
        if question.is_empty() {
            continue;
        }
        if matches!(question, "/quit" | "/exit") {
            break;
        }
        let request = AnalysisRequest {
            image: image.clone(),
            tasks: Tasks::follow_up(history.clone(), question.to_string()),
        };
        let analysis = engine.analyze(request).await?;
        let answer = analysis
            .answers
            .first()
            .map(|a| a.answer.clone())
            .unwrap_or_default();
        out.write_all(format!("dfa> {answer}\n").as_bytes()).await?;
        history.push(Turn {
            question: question.to_string(),
            answer,
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// What the follow-ups are about: a face the reviewer named, or the
/// verdict's own subject (its most suspicious face, or the whole image).
struct Subject<'a> {
    verdict: &'a Verdict,
    face: Option<&'a FaceVerdict>,
}

impl<'a> Subject<'a> {
    fn of(verdict: &'a Verdict, index: Option<u32>) -> anyhow::Result<Subject<'a>> {
        let face = match index {
            None => None,
            Some(i) => Some(verdict.faces.iter().find(|f| f.index == i).ok_or_else(|| {
                anyhow::anyhow!(
                    "--face {i}: the image has {} face(s) (indices 0..{})",
                    verdict.faces.len(),
                    verdict.faces.len()
                )
            })?),
        };
        Ok(Subject { verdict, face })
    }

    fn screened(&self) -> Option<Screened<'a>> {
        match self.face {
            Some(f) => Some(Screened {
                label: f.label,
                forgery_type: f.forgery_type,
                explanation: f.explanation.as_deref(),
            }),
            None => Some(Screened {
                label: self.verdict.label?,
                forgery_type: self.verdict.forgery_type,
                explanation: self.verdict.explanation.as_deref(),
            }),
        }
    }
}

fn summary(v: &Verdict) -> String {
    let mut s = match (v.label, v.p_fake) {
        (Some(label), Some(p_fake)) => format!(
            "verdict: {}  p_fake={p_fake:.3}  type={}\n",
            label.as_str(),
            v.forgery_type.map(|t| t.as_str()).unwrap_or("-")
        ),
        _ => "verdict: no face found; questions are about the whole image\n".to_string(),
    };
    for f in &v.faces {
        let primary = if v.primary_face == Some(f.index) {
            "  (most suspicious)"
        } else {
            ""
        };
        s.push_str(&format!(
            "face {}: box x={} y={} w={} h={}  {}  p_fake={:.3}{primary}\n",
            f.index,
            f.bbox.x,
            f.bbox.y,
            f.bbox.w,
            f.bbox.h,
            f.label.as_str(),
            f.p_fake
        ));
    }
    if let Some(e) = &v.explanation {
        s.push_str(&format!("artifacts:\n{e}\n"));
    }
    s.push_str("Ask follow-up questions (empty line skips, /quit or Ctrl-D ends).\n");
    s
}
