//! Untrusted text on its way into logs and records: cut to a size, and made unable to pass for
//! more than one line.

use std::borrow::Cow;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` with every control character written as an escape (`\n`, `\u{1b}`), so what a plugin
/// logs stays one line of the daemon's log and cannot forge another, move the cursor of the
/// terminal reading it, or colour it. Unicode's line and paragraph separators and its
/// direction overrides, which break or reorder a line on display, are escaped too.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("short", 64), "short");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(
            escape_controls("ok\n2026-12-03T00:00:00Z ERROR forged\r\u{1b}[31m"),
            "ok\\n2026-12-03T00:00:00Z ERROR forged\\r\\u{1b}[31m"
        );
        assert!(matches!(
            escape_controls("plain — ünïcode"),
            Cow::Borrowed(_)
        ));
    }
}
