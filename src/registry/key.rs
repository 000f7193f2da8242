//! Registry keys: `@scope/name@1.2.0` or `name@1.2.0` (a name and an exact semver version).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpertKey {
    /// `@scope/name` or `name`.
    pub name: String,
    /// An exact semver version.
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "\"{0}\" is not a registry key; write @scope/name@1.2.0 or name@1.2.0 (an exact version)"
    )]
    Malformed(String),
    #[error(
        "\"{name}\" is not a valid registry name; use lowercase letters, digits, '.', '_' and '-', as name or @scope/name"
    )]
    BadName { name: String },
    #[error("\"{version}\" in \"{key}\" is not an exact semver version such as 1.2.0")]
    BadVersion { key: String, version: String },
}

impl ExpertKey {
    pub fn parse(text: &str) -> Result<ExpertKey, KeyError> {
        let at = text
            .rfind('@')
            .filter(|&at| at > 0)
            .ok_or_else(|| KeyError::Malformed(text.to_string()))?;
        let (name, version) = (&text[..at], &text[at + 1..]);
        ExpertKey::new(name, version).map_err(|err| match err {
            KeyError::BadVersion { version, .. } => KeyError::BadVersion {
                key: text.to_string(),
                version,
            },
            other => other,
        })
    }

    pub fn new(name: &str, version: &str) -> Result<ExpertKey, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::BadName {
                name: name.to_string(),
            });
        }
        if semver::Version::parse(version).is_err() {
            return Err(KeyError::BadVersion {
                key: format!("{name}@{version}"),
                version: version.to_string(),
            });
        }
        Ok(ExpertKey {
            name: name.to_string(),
            version: version.to_string(),
        })
    }

    /// The name as an OCI repository path under a namespace: `@acme/reviewer` → `acme/reviewer`.
    pub fn repository(&self) -> &str {
        self.name.trim_start_matches('@')
    }
}

impl fmt::Display for ExpertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// True for delegate keys that name a registry Expert rather than one in the file.
pub fn is_registry_key(text: &str) -> bool {
    ExpertKey::parse(text).is_ok()
}

/// `name` or `@scope/name`, each part lowercase `[a-z0-9][a-z0-9._-]*`.
pub fn valid_name(name: &str) -> bool {
    match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, rest)) => valid_part(scope) && valid_part(rest),
            None => false,
        },
        None => valid_part(name),
    }
}

fn valid_part(part: &str) -> bool {
    let mut chars = part.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && !part.ends_with(['.', '_', '-'])
}

/// An OCI repository path: lowercase parts separated by `/`.
pub fn valid_repository_path(path: &str) -> bool {
    path.split('/').all(valid_part)
}

/// The registry name an OCI repository path stands for (the inverse of
/// [`ExpertKey::repository`]): `acme/reviewer` → `@acme/reviewer`, `reviewer` → `reviewer`.
pub fn name_of_repository(path: &str) -> Option<String> {
    let name = match path.split_once('/') {
        Some(_) => format!("@{path}"),
        None => path.to_string(),
    };
    valid_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scoped_and_plain_keys() {
        let key = ExpertKey::parse("@acme/reviewer@1.2.0").unwrap();
        assert_eq!(key.name, "@acme/reviewer");
        assert_eq!(key.version, "1.2.0");
        assert_eq!(key.repository(), "acme/reviewer");
        assert_eq!(key.to_string(), "@acme/reviewer@1.2.0");
        let plain = ExpertKey::parse("reviewer@0.1.0-beta.1").unwrap();
        assert_eq!(plain.name, "reviewer");
        assert_eq!(
            name_of_repository("acme/reviewer").as_deref(),
            Some("@acme/reviewer")
        );
    }

    #[test]
    fn refuses_what_is_not_a_pinned_key() {
        assert!(matches!(
            ExpertKey::parse("@acme/reviewer"),
            Err(KeyError::Malformed(_))
        ));
        assert!(matches!(
            ExpertKey::parse("writer"),
            Err(KeyError::Malformed(_))
        ));
        assert!(matches!(
            ExpertKey::parse("@acme/reviewer@latest"),
            Err(KeyError::BadVersion { .. })
        ));
        assert!(matches!(
            ExpertKey::parse("Big@1.0.0"),
            Err(KeyError::BadName { .. })
        ));
        assert!(matches!(
            ExpertKey::parse("@acme@1.0.0"),
            Err(KeyError::BadName { .. })
        ));
        assert!(!is_registry_key("local-helper"));
        assert!(is_registry_key("helper@1.0.0"));
    }
}
