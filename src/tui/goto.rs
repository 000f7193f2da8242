//! Where in perstack.toml an Expert or one of its skills is written, for `o`: the line of its
//! key, found by parsing the file as it is on disk now (it may have changed since it loaded).

use toml::de::{DeTable, DeValue};

/// The 1-based line of `[experts."KEY"]` (or of the skill's key inside it) in `text`; None when
/// the file does not parse or does not name it.
pub fn definition_line(text: &str, expert: &str, skill: Option<&str>) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let experts = table(root.get_ref().get("experts")?.get_ref())?;
    let (expert_key, expert_value) = experts.iter().find(|(k, _)| k.get_ref() == expert)?;
    let mut offset = expert_key.span().start;
    // A skill the Expert gets without writing it (the base skill) opens at the Expert.
    let skill_key = skill.and_then(|skill| {
        let skills = table(table(expert_value.get_ref())?.get("skills")?.get_ref())?;
        let (key, _) = skills.iter().find(|(k, _)| k.get_ref() == skill)?;
        Some(key.span().start)
    });
    if let Some(at) = skill_key {
        offset = at;
    }
    Some(text.get(..offset)?.matches('\n').count() + 1)
}

fn table<'a, 'i>(value: &'a DeValue<'i>) -> Option<&'a DeTable<'i>> {
    match value {
        DeValue::Table(table) => Some(table),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"model = "m"

[experts."release-notes"]
instruction = "Write notes."
delegates = ["writer"]

[experts."release-notes".skills."ask-user"]
type = "interactiveSkill"

[experts.writer]
instruction = """
Write.
"""
skills = { "@perstack/base" = { type = "mcpStdioSkill", command = "npx" } }
"#;

    #[test]
    fn experts_and_skills_are_found_at_their_keys() {
        assert_eq!(definition_line(TOML, "release-notes", None), Some(3));
        assert_eq!(
            definition_line(TOML, "release-notes", Some("ask-user")),
            Some(7)
        );
        assert_eq!(definition_line(TOML, "writer", None), Some(10));
        assert_eq!(
            definition_line(TOML, "writer", Some("@perstack/base")),
            Some(14)
        );
        // A skill not written opens at its Expert; an unknown Expert is not found.
        assert_eq!(
            definition_line(TOML, "release-notes", Some("@perstack/base")),
            Some(3)
        );
        assert_eq!(definition_line(TOML, "nobody", None), None);
        assert_eq!(definition_line("not [toml", "writer", None), None);
    }
}
