//! The status bar's cost estimate, from the provider table's prices.

use crate::runtime::checkpoint::Usage;

/// The estimated cost in dollars, or None for a model not in the table.
pub fn estimate(model: &str, usage: &Usage) -> Option<f64> {
    crate::llm::providers::estimate_cost(model, usage.input_tokens, usage.output_tokens)
}

/// The tokens' cost plus the per-use price of the provider's own tools (`tools`: the name of
/// each use, e.g. `web_search`), or None for a model not in the table.
pub fn estimate_with_tools<'a>(
    model: &str,
    usage: &Usage,
    tools: impl Iterator<Item = &'a str>,
) -> Option<f64> {
    let tokens = estimate(model, usage)?;
    let uses: f64 = tools
        .filter_map(|tool| crate::llm::providers::provider_tool_cost(model, tool, 1))
        .sum();
    Some(tokens + uses)
}
