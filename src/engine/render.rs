//! Renders a task's conversation in the model's chat format and splits it at
//! the image marker: the text before is shared by all tasks on one image.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use super::EngineError;
use crate::domain::prompts::{conversation, split_at_marker, Prompts, Turn, VicunaFormat};
use crate::settings::ChatTemplateChoice;

pub enum ChatFormat {
    Vicuna(VicunaFormat),
    Gguf(LlamaChatTemplate),
}

impl ChatFormat {
    pub fn choose(
        model: &LlamaModel,
        choice: ChatTemplateChoice,
        prompts: &Prompts,
    ) -> Result<ChatFormat, EngineError> {
        let own = model.chat_template(None).ok();
        match (choice, own) {
            (ChatTemplateChoice::VicunaV1, _) | (ChatTemplateChoice::Auto, None) => {
                Ok(ChatFormat::Vicuna(prompts.chat.clone()))
            }
            (_, Some(t)) => Ok(ChatFormat::Gguf(t)),
            (ChatTemplateChoice::Gguf, None) => Err(EngineError::Config {
                key: "model.chat_template",
                reason: "\"gguf\" was asked for, but the GGUF has no chat template".into(),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ChatFormat::Vicuna(_) => "vicuna_v1",
            ChatFormat::Gguf(_) => "gguf",
        }
    }

    /// Returns (shared prefix before the image, the task's text after it).
    pub fn render(
        &self,
        model: &LlamaModel,
        system: &str,
        marker: &str,
        history: &[Turn],
        question: &str,
    ) -> Result<(String, String), EngineError> {
        let messages = conversation(system, marker, history, question);
        let text = match self {
            ChatFormat::Vicuna(v) => v.render(&messages),
            ChatFormat::Gguf(template) => {
                let chat = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.as_str().into(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| EngineError::Prompt(e.to_string()))?;
                model
                    .apply_chat_template(template, &chat, true)
                    .map_err(|e| EngineError::Prompt(format!("chat template: {e}")))?
            }
        };
        let (pre, post) = split_at_marker(&text, marker).ok_or_else(|| {
            EngineError::Prompt("the chat template dropped the image marker".into())
        })?;
        Ok((pre.to_string(), post.to_string()))
    }
}
