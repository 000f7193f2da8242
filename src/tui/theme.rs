//! Colours by role, loaded from `themes/*.toml` (built in) or a file given with `--theme`.

use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use toml::Spanned;

const DARK: &str = include_str!("../../themes/dark.toml");
const LIGHT: &str = include_str!("../../themes/light.toml");
const HIGH_CONTRAST: &str = include_str!("../../themes/high-contrast.toml");

/// The names `--theme` accepts besides a path.
pub const BUILT_IN: [&str; 3] = ["dark", "light", "high-contrast"];

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Unreadable { file: PathBuf, message: String },
    #[error("no theme \"{0}\": use dark, light, high-contrast or the path of a theme file")]
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub fg: Color,
    pub bg: Color,
    pub accent: Color,
    pub muted: Color,
    pub error: Color,
    pub added: Color,
    pub removed: Color,
    pub warning: Color,
    pub selection: Color,
    /// The highlighter's theme name.
    pub syntax: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    name: Option<String>,
    foreground: Spanned<String>,
    background: Spanned<String>,
    accent: Spanned<String>,
    muted: Spanned<String>,
    error: Spanned<String>,
    added: Spanned<String>,
    removed: Spanned<String>,
    warning: Spanned<String>,
    selection: Spanned<String>,
    syntax: Spanned<String>,
}

/// The highlighter themes bundled in the binary.
pub const SYNTAX_THEMES: [&str; 7] = [
    "base16-ocean.dark",
    "base16-eighties.dark",
    "base16-mocha.dark",
    "base16-ocean.light",
    "InspiredGitHub",
    "Solarized (dark)",
    "Solarized (light)",
];

impl Default for Theme {
    fn default() -> Self {
        // The built-in file is tested to parse; fall back to plain colours if that ever broke.
        Theme::parse(DARK, Path::new("themes/dark.toml")).unwrap_or_else(|_| Theme {
            name: "dark".into(),
            fg: Color::Reset,
            bg: Color::Reset,
            accent: Color::Cyan,
            muted: Color::DarkGray,
            error: Color::Red,
            added: Color::Green,
            removed: Color::Red,
            warning: Color::Yellow,
            selection: Color::Blue,
            syntax: "base16-ocean.dark".into(),
        })
    }
}

impl Theme {
    /// A built-in name or a path to a theme file.
    pub fn load(name_or_path: Option<&str>) -> Result<Theme, ThemeError> {
        let name = name_or_path.unwrap_or("dark");
        let builtin = match name {
            "dark" => Some(DARK),
            "light" => Some(LIGHT),
            "high-contrast" => Some(HIGH_CONTRAST),
            _ => None,
        };
        if let Some(text) = builtin {
            return Theme::parse(text, &Path::new("themes").join(format!("{name}.toml")));
        }
        let path = Path::new(name);
        if !path.exists() {
            return Err(ThemeError::Unknown(name.to_string()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| ThemeError::Unreadable {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Theme::parse(&text, path)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Theme, ThemeError> {
        let invalid = |offset: usize, message: String| ThemeError::Invalid {
            file: file.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawTheme = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(offset, e.message().to_string())
        })?;
        let color = |field: &Spanned<String>, role: &str| {
            parse_color(field.get_ref()).ok_or_else(|| {
                invalid(
                    field.span().start,
                    format!(
                        "{role} = \"{}\" is not a colour: use a name (red, darkgray, reset, ...) or #rrggbb",
                        field.get_ref()
                    ),
                )
            })
        };
        if !SYNTAX_THEMES.contains(&raw.syntax.get_ref().as_str()) {
            return Err(invalid(
                raw.syntax.span().start,
                format!(
                    "syntax = \"{}\" is not a bundled highlighter theme; use one of: {}",
                    raw.syntax.get_ref(),
                    SYNTAX_THEMES.join(", ")
                ),
            ));
        }
        Ok(Theme {
            name: raw
                .name
                .clone()
                .unwrap_or_else(|| file.display().to_string()),
            fg: color(&raw.foreground, "foreground")?,
            bg: color(&raw.background, "background")?,
            accent: color(&raw.accent, "accent")?,
            muted: color(&raw.muted, "muted")?,
            error: color(&raw.error, "error")?,
            added: color(&raw.added, "added")?,
            removed: color(&raw.removed, "removed")?,
            warning: color(&raw.warning, "warning")?,
            selection: color(&raw.selection, "selection")?,
            syntax: raw.syntax.into_inner(),
        })
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }
    pub fn accent(&self) -> Style {
        Style::default().fg(self.accent)
    }
    pub fn muted(&self) -> Style {
        Style::default().fg(self.muted)
    }
    pub fn error(&self) -> Style {
        Style::default().fg(self.error)
    }
    pub fn added(&self) -> Style {
        Style::default().fg(self.added)
    }
    pub fn removed(&self) -> Style {
        Style::default().fg(self.removed)
    }
    pub fn warning(&self) -> Style {
        Style::default().fg(self.warning)
    }
    pub fn selected(&self) -> Style {
        Style::default()
            .bg(self.selection)
            .add_modifier(Modifier::BOLD)
    }
    pub fn title(&self, focused: bool) -> Style {
        if focused {
            self.accent().add_modifier(Modifier::BOLD)
        } else {
            self.muted()
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map(|before| before.matches('\n').count() + 1)
        .unwrap_or(1)
}

fn parse_color(value: &str) -> Option<Color> {
    if let Some(hex) = value.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let n = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((n >> 16) as u8, (n >> 8) as u8, n as u8));
    }
    value.parse::<Color>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_themes_parse() {
        for name in BUILT_IN {
            let theme = Theme::load(Some(name)).unwrap();
            assert_eq!(theme.name, name);
        }
    }

    #[test]
    fn a_bad_colour_names_file_and_line() {
        let text = DARK.replace("accent = \"#5fafff\"", "accent = \"purplish\"");
        let err = Theme::parse(&text, Path::new("my.toml")).unwrap_err();
        let line = DARK.lines().position(|l| l.starts_with("accent")).unwrap() + 1;
        assert!(
            err.to_string()
                .starts_with(&format!("my.toml:{line}: accent")),
            "{err}"
        );
    }

    #[test]
    fn a_syntax_error_names_file_and_line() {
        let err = Theme::parse("name = \"x\"\naccent = \n", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().starts_with("t.toml:2:"), "{err}");
        let err = Theme::parse("name = \"x\"\n", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }

    #[test]
    fn an_unknown_syntax_theme_is_an_error() {
        let text = DARK.replace("syntax = \"base16-ocean.dark\"", "syntax = \"monokai\"");
        let err = Theme::parse(&text, Path::new("t.toml")).unwrap_err();
        let line = DARK.lines().position(|l| l.starts_with("syntax")).unwrap() + 1;
        assert!(
            err.to_string()
                .starts_with(&format!("t.toml:{line}: syntax")),
            "{err}"
        );
    }

    #[test]
    fn unknown_name_is_an_error() {
        assert!(matches!(
            Theme::load(Some("nope-no-such")),
            Err(ThemeError::Unknown(_))
        ));
    }
}
