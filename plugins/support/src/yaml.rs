//! A small YAML writer: block style, every string double-quoted with JSON escapes (a JSON string
//! is a valid YAML double-quoted scalar), so no value can change the document's structure.
//! Works on wasm32 and has no dependencies beyond `serde_json`'s string escaping.

/// A YAML value. Maps keep their insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    Str(String),
    Bool(bool),
    Int(i64),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub fn str(text: impl Into<String>) -> Self {
        Yaml::Str(text.into())
    }

    /// A sequence of strings.
    pub fn strs<S: AsRef<str>>(items: &[S]) -> Self {
        Yaml::Seq(items.iter().map(|s| Yaml::str(s.as_ref())).collect())
    }

    /// The value as a block-style document body (no `---`), ending in a newline.
    pub fn to_document(&self) -> String {
        let mut out = String::new();
        match self {
            Yaml::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
            Yaml::Seq(items) if !items.is_empty() => write_seq(&mut out, items, 0),
            scalar => {
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
        out
    }
}

fn write_map(out: &mut String, entries: &[(String, Yaml)], indent: usize) {
    for (key, value) in entries {
        out.push_str(&" ".repeat(indent));
        write_entry(out, key, value, indent);
    }
}

/// `key: value` with the cursor already indented; nested blocks go below, two spaces deeper.
fn write_entry(out: &mut String, key: &str, value: &Yaml, indent: usize) {
    out.push_str(&key_text(key));
    out.push(':');
    match value {
        Yaml::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(out, entries, indent + 2);
        }
        Yaml::Seq(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Yaml], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        if !matches!(item, Yaml::Seq(inner) if !inner.is_empty()) {
            out.push(' ');
        }
        match item {
            Yaml::Map(entries) if !entries.is_empty() => {
                // The first entry shares the dash's line; the rest align under it.
                let mut rest = entries.iter();
                if let Some((key, value)) = rest.next() {
                    write_entry(out, key, value, indent + 2);
                }
                for (key, value) in rest {
                    out.push_str(&" ".repeat(indent + 2));
                    write_entry(out, key, value, indent + 2);
                }
            }
            Yaml::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            scalar => {
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// Scalars and empty collections.
fn inline(value: &Yaml) -> String {
    match value {
        Yaml::Str(text) => quote(text),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Int(n) => n.to_string(),
        Yaml::Seq(_) => "[]".to_owned(),
        Yaml::Map(_) => "{}".to_owned(),
    }
}

/// Keys we write are plain identifiers; anything else is quoted like a value.
fn key_text(key: &str) -> String {
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { key.to_owned() } else { quote(key) }
}

fn quote(text: &str) -> String {
    // Serializing a str cannot fail.
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_block_style() {
        let doc = Yaml::Map(vec![
            ("hostname".into(), Yaml::str("vm1")),
            (
                "users".into(),
                Yaml::Seq(vec![Yaml::Map(vec![
                    ("name".into(), Yaml::str("alice")),
                    ("lock_passwd".into(), Yaml::Bool(true)),
                    (
                        "ssh_authorized_keys".into(),
                        Yaml::strs(&["ssh-ed25519 AAA a@b"]),
                    ),
                ])]),
            ),
            ("packages".into(), Yaml::Seq(vec![])),
            ("port".into(), Yaml::Int(22)),
        ]);
        assert_eq!(
            doc.to_document(),
            "hostname: \"vm1\"\nusers:\n  - name: \"alice\"\n    lock_passwd: true\n    ssh_authorized_keys:\n      - \"ssh-ed25519 AAA a@b\"\npackages: []\nport: 22\n"
        );
    }

    #[test]
    fn strings_cannot_break_out_of_their_scalar() {
        let doc = Yaml::Map(vec![("a".into(), Yaml::str("x\"\n  evil: true\n#"))]);
        assert_eq!(doc.to_document(), "a: \"x\\\"\\n  evil: true\\n#\"\n");
        let odd_key = Yaml::Map(vec![("a: b".into(), Yaml::Bool(false))]);
        assert_eq!(odd_key.to_document(), "\"a: b\": false\n");
    }
}
