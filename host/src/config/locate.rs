//! Finds where a key lives in the configuration text, for errors found after deserialization.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, line_of};

/// Renders a `serde_path_to_error` path the way an operator reads TOML: `clusters[0].tls.ca_file`.
pub(super) fn display_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => push_key(&mut out, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&mut out, variant),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

fn push_key(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
}

/// One step of a key path.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Answers "which line is this key on?" for the validation pass.
pub(super) struct Locator<'i> {
    file: &'i str,
    text: &'i str,
    root: Spanned<DeTable<'i>>,
}

impl<'i> Locator<'i> {
    pub(super) fn new(file: &'i str, text: &'i str, root: Spanned<DeTable<'i>>) -> Self {
        Self { file, text, root }
    }

    /// An error at `path`, located at the value's line when the path exists in the text (or at
    /// its nearest existing parent, for a missing key).
    pub(super) fn error(&self, path: &[Step<'_>], message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.line(path),
            key: Some(render(path)),
            message: message.into(),
        }
    }

    pub(super) fn line(&self, path: &[Step<'_>]) -> Option<usize> {
        let mut table = self.root.get_ref();
        let mut span = None;
        let mut current: Option<&Spanned<DeValue<'i>>> = None;
        for step in path {
            let next = match (step, current.map(Spanned::get_ref)) {
                (Step::Key(key), None) => table.get(*key),
                (Step::Key(key), Some(DeValue::Table(inner))) => {
                    table = inner;
                    table.get(*key)
                }
                (Step::Index(index), Some(DeValue::Array(items))) => items.get(*index),
                _ => None,
            };
            match next {
                Some(value) => {
                    span = Some(value.span());
                    current = Some(value);
                }
                None => break,
            }
        }
        span.map(|span| line_of(self.text, span.start))
    }
}

pub(super) fn render(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => push_key(&mut out, key),
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}
