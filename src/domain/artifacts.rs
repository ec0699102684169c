//! Parses DFA-GPT's artifact descriptions, a numbered list by region
//! ("1. **Forehead**: …"), into `[{region, text}]`.

use crate::domain::Artifact;

/// Returns the regions of a numbered-list description; empty when the text is
/// not such a list (the caller keeps the raw text either way).
pub fn parse_artifacts(text: &str) -> Vec<Artifact> {
    let mut items: Vec<Artifact> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match numbered_item(line) {
            Some(item) => items.push(item),
            None => {
                // A wrapped line continues the item above it.
                if let Some(last) = items.last_mut() {
                    if !last.text.is_empty() {
                        last.text.push(' ');
                    }
                    last.text.push_str(line);
                }
            }
        }
    }
    items
}

/// The numbered-list form DFA-GPT writes and `parse_artifacts` reads back:
/// what a reviewer's artifact list becomes as a training answer.
pub fn render_artifacts(items: &[Artifact]) -> String {
    items
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}. **{}**: {}", i + 1, a.region.trim(), a.text.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn numbered_item(line: &str) -> Option<Artifact> {
    let digits = line.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = line[digits..].strip_prefix(['.', ')'])?.trim_start();
    let (region, text) = match rest.strip_prefix("**") {
        Some(bold) => {
            let end = bold.find("**")?;
            let region = &bold[..end];
            let text = bold[end + 2..].trim_start();
            (
                region.trim_end_matches(':'),
                text.strip_prefix(':').unwrap_or(text),
            )
        }
        None => {
            let colon = rest.find(':')?;
            (&rest[..colon], &rest[colon + 1..])
        }
    };
    let region = region.trim();
    if region.is_empty() {
        return None;
    }
    Some(Artifact {
        region: region.to_string(),
        text: text.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_lists_parse_back() {
        let items = vec![
            Artifact {
                region: "Forehead".into(),
                text: "a blending seam.".into(),
            },
            Artifact {
                region: "Eyes".into(),
                text: "mismatched reflections.".into(),
            },
        ];
        assert_eq!(parse_artifacts(&render_artifacts(&items)), items);
    }

    #[test]
    fn parses_dfa_gpt_numbered_regions() {
        let text = "1. **Forehead**: The skin texture is unnaturally smooth.\n\
                    2. **Eye**: The eyes are misaligned.\n\
                    3. **Cheek and Jawline**: A visible blending boundary\n   runs along the jaw.\n\
                    4. **Mouth and Lips**: Teeth are blurred.";
        let items = parse_artifacts(text);
        let regions: Vec<&str> = items.iter().map(|a| a.region.as_str()).collect();
        assert_eq!(
            regions,
            ["Forehead", "Eye", "Cheek and Jawline", "Mouth and Lips"]
        );
        assert_eq!(
            items[2].text,
            "A visible blending boundary runs along the jaw."
        );
        assert_eq!(items[0].text, "The skin texture is unnaturally smooth.");
    }

    #[test]
    fn accepts_plain_and_bold_colon_inside() {
        let items = parse_artifacts("1) Eyes: asymmetric\n2. **Nose:** smeared");
        assert_eq!(
            items[0],
            Artifact {
                region: "Eyes".into(),
                text: "asymmetric".into()
            }
        );
        assert_eq!(
            items[1],
            Artifact {
                region: "Nose".into(),
                text: "smeared".into()
            }
        );
    }

    #[test]
    fn free_text_gives_no_regions() {
        assert!(parse_artifacts("The face looks natural overall.").is_empty());
        assert!(parse_artifacts("").is_empty());
        assert!(parse_artifacts("2024. A year").is_empty());
    }
}
