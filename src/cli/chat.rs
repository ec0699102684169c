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
use crate::domain::Verdict;
use crate::engine::analyze::analyze_bytes;
use crate::engine::{AnalysisRequest, Backend, Explain, Tasks};
use crate::intake::Intake;

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    adapter: AdapterChoice,
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
    let verdict = analyze_bytes(
        engine,
        Uuid::new_v4(),
        bytes.clone(),
        tasks,
        &intake,
        &settings.analysis,
    )
    .await?;
    let mut out = tokio::io::stdout();
    out.write_all(summary(&verdict).as_bytes()).await?;

    // The conversation as DFA-GPT holds it, as `dfa serve` continues it.
    let mut history = verdict_turns(
        engine.prompts(),
        &Screened {
            label: verdict.label,
            forgery_type: verdict.forgery_type,
            explanation: verdict.explanation.as_deref(),
        },
    );
    let (image, _) = intake.decode(bytes).await;
    let image = image?;
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

fn summary(v: &Verdict) -> String {
    let mut s = format!(
        "verdict: {:?}  p_fake={:.3}  type={}\n",
        v.label,
        v.p_fake,
        v.forgery_type
            .map(|t| format!("{t:?}"))
            .unwrap_or_else(|| "-".into())
    );
    if let Some(e) = &v.explanation {
        s.push_str(&format!("artifacts:\n{e}\n"));
    }
    s.push_str("Ask follow-up questions (empty line skips, /quit or Ctrl-D ends).\n");
    s
}
