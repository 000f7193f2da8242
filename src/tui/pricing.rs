//! The status bar's cost estimate, from the provider table's prices.

use crate::runtime::checkpoint::Usage;

/// The estimated cost in dollars, or None for a model not in the table.
pub fn estimate(model: &str, usage: &Usage) -> Option<f64> {
    crate::llm::providers::estimate_cost(model, usage.input_tokens, usage.output_tokens)
}
