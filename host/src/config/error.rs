use std::fmt;

/// A configuration problem, located by key and line so the operator can go straight to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the text came from, as the operator named it.
    pub file: String,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending key, e.g. `clusters[1].tls.fingerprint`.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub(super) fn from_toml(
        file: &str,
        text: &str,
        key: Option<String>,
        err: &toml::de::Error,
    ) -> Self {
        Self {
            file: file.to_owned(),
            line: err.span().map(|span| line_of(text, span.start)),
            key: key.filter(|key| !key.is_empty()),
            message: err.message().trim_end().to_owned(),
        }
    }
}

/// The 1-based line holding byte `offset` of `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}
