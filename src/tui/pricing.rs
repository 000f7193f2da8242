//! A small price table for an estimated cost in the status bar. Prices move; this is a guide.

use crate::runtime::checkpoint::Usage;

/// US dollars per million input and output tokens, matched by model-name prefix.
const PRICES: &[(&str, f64, f64)] = &[
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5", 1.25, 10.0),
    ("o3", 2.0, 8.0),
    ("gemini-2.5-pro", 1.25, 10.0),
    ("gemini-2.5-flash", 0.3, 2.5),
    ("deepseek-chat", 0.27, 1.1),
];

/// The estimated cost in dollars, or None for a model not in the table.
pub fn estimate(model: &str, usage: &Usage) -> Option<f64> {
    let (_, input, output) = PRICES
        .iter()
        .find(|(prefix, _, _)| model.starts_with(prefix))?;
    Some((usage.input_tokens as f64 * input + usage.output_tokens as f64 * output) / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models_have_a_price_and_others_none() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            ..Default::default()
        };
        assert_eq!(estimate("claude-sonnet-4-5", &usage), Some(4.5));
        assert_eq!(estimate("gpt-4.1-mini", &usage), Some(0.56));
        assert_eq!(estimate("replay", &usage), None);
    }
}
