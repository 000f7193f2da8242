//! What one branch of an A/B comparison changes: the model (or provider and model), or the
//! instruction of the Expert it resumes. Given as `--variant model=X`,
//! `--variant provider=P,model=X` or `--variant instruction=@FILE`, and recorded in the run's
//! `run-setting.json` so `perstack diff` can say what differed.

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The one thing a run changes against its sibling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The whole instruction the resumed Expert runs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// The file the instruction was read from, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction_file: Option<PathBuf>,
}

impl Variant {
    pub fn model(model: impl Into<String>) -> Self {
        Variant {
            model: Some(model.into()),
            ..Variant::default()
        }
    }

    pub fn instruction(text: impl Into<String>) -> Self {
        Variant {
            instruction: Some(text.into()),
            ..Variant::default()
        }
    }

    /// One short line: `model=gpt-4.1`, `provider=openai,model=x`, `instruction=@b.md`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(provider) = &self.provider {
            parts.push(format!("provider={provider}"));
        }
        if let Some(model) = &self.model {
            parts.push(format!("model={model}"));
        }
        match (&self.instruction_file, &self.instruction) {
            (Some(file), _) => parts.push(format!("instruction=@{}", file.display())),
            (None, Some(text)) => {
                parts.push(format!("instruction ({} chars)", text.chars().count()))
            }
            (None, None) => {}
        }
        parts.join(",")
    }
}

/// Why a `--variant` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariantError {
    #[error("--variant {0}: give model=NAME, provider=NAME,model=NAME or instruction=@FILE")]
    Shape(String),
    #[error("--variant {0}: `{1}` is not a setting; use model, provider or instruction")]
    UnknownKey(String, String),
    #[error("--variant instruction=@{path}: {reason}; pass a readable text file")]
    InstructionFile { path: String, reason: String },
    #[error("--variant {0}: an instruction is a file, written instruction=@FILE")]
    InstructionNotFile(String),
    #[error(
        "--variant {0}: change the model or the instruction, not both, so the runs differ in one thing"
    )]
    Mixed(String),
}

impl FromStr for Variant {
    type Err = VariantError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut variant = Variant::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .filter(|(_, value)| !value.trim().is_empty())
                .ok_or_else(|| VariantError::Shape(text.to_string()))?;
            let value = value.trim();
            match key.trim() {
                "model" => variant.model = Some(value.to_string()),
                "provider" => variant.provider = Some(value.to_string()),
                "instruction" => {
                    let path = value
                        .strip_prefix('@')
                        .ok_or_else(|| VariantError::InstructionNotFile(text.to_string()))?;
                    let instruction = std::fs::read_to_string(path).map_err(|err| {
                        VariantError::InstructionFile {
                            path: path.to_string(),
                            reason: err.to_string(),
                        }
                    })?;
                    variant.instruction = Some(instruction);
                    variant.instruction_file = Some(PathBuf::from(path));
                }
                other => return Err(VariantError::UnknownKey(text.to_string(), other.into())),
            }
        }
        if variant == Variant::default() {
            return Err(VariantError::Shape(text.to_string()));
        }
        if variant.instruction.is_some() && (variant.model.is_some() || variant.provider.is_some())
        {
            return Err(VariantError::Mixed(text.to_string()));
        }
        Ok(variant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_and_provider_pairs_parse() {
        let variant: Variant = "provider=openai,model=gpt-4.1-mini"
            .parse()
            .expect("parses");
        assert_eq!(variant.provider.as_deref(), Some("openai"));
        assert_eq!(variant.model.as_deref(), Some("gpt-4.1-mini"));
        assert_eq!(variant.label(), "provider=openai,model=gpt-4.1-mini");
    }

    #[test]
    fn an_instruction_is_read_from_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.md");
        std::fs::write(&path, "Answer in French.").expect("write");
        let variant: Variant = format!("instruction=@{}", path.display())
            .parse()
            .expect("parses");
        assert_eq!(variant.instruction.as_deref(), Some("Answer in French."));
        assert_eq!(variant.label(), format!("instruction=@{}", path.display()));
    }

    #[test]
    fn mistakes_say_how_to_write_it() {
        assert!(matches!(
            "model".parse::<Variant>(),
            Err(VariantError::Shape(_))
        ));
        assert!(matches!(
            "temperature=1".parse::<Variant>(),
            Err(VariantError::UnknownKey(_, key)) if key == "temperature"
        ));
        assert!(matches!(
            "instruction=be brief".parse::<Variant>(),
            Err(VariantError::InstructionNotFile(_))
        ));
        let missing = "instruction=@/nonexistent/b.md".parse::<Variant>();
        assert!(
            matches!(&missing, Err(VariantError::InstructionFile { path, .. }) if path == "/nonexistent/b.md")
        );
    }
}
