//! Record content between Porthole's form and PowerDNS's zone-file form: CNAME targets are
//! absolute with a trailing dot, TXT data is quoted character-strings of at most 255 bytes.

use porthole_plugin_support::dns::RecordKind;
use porthole_plugin_support::dns_name::canonical;

/// Porthole's content → PowerDNS's.
pub fn to_zone_file(kind: RecordKind, content: &str) -> String {
    match kind {
        RecordKind::A | RecordKind::Aaaa => content.to_owned(),
        RecordKind::Cname => canonical(content),
        RecordKind::Txt => quote_txt(content),
    }
}

/// PowerDNS's content → Porthole's.
pub fn from_zone_file(kind: RecordKind, content: &str) -> String {
    match kind {
        RecordKind::A | RecordKind::Aaaa => content.to_owned(),
        RecordKind::Cname => content.trim_end_matches('.').to_owned(),
        RecordKind::Txt => unquote_txt(content),
    }
}

/// Splits into 255-byte character-strings (on char boundaries) and escapes `"` and `\`.
fn quote_txt(text: &str) -> String {
    let mut parts = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if current.len() + c.len_utf8() > 255 {
            parts.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .iter()
        .map(|part| format!("\"{}\"", part.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Joins the quoted character-strings back, undoing `\"`, `\\` and `\DDD` escapes. Unquoted
/// text is returned as it is.
fn unquote_txt(content: &str) -> String {
    if !content.starts_with('"') {
        return content.to_owned();
    }
    let mut bytes = Vec::new();
    let mut chars = content.bytes().peekable();
    let mut quoted = false;
    while let Some(b) = chars.next() {
        match (b, quoted) {
            (b'"', _) => quoted = !quoted,
            (b'\\', true) => {
                let digits: Vec<u8> = std::iter::from_fn(|| chars.next_if(u8::is_ascii_digit))
                    .take(3)
                    .collect();
                match std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse::<u8>().ok())
                {
                    Some(value) if digits.len() == 3 => bytes.push(value),
                    _ => {
                        bytes.extend(&digits);
                        if digits.is_empty() {
                            bytes.extend(chars.next());
                        }
                    }
                }
            }
            (other, true) => bytes.push(other),
            (_, false) => {} // whitespace between character-strings
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_round_trips_through_quoting() {
        for text in ["v=spf1 -all", "say \"hi\" \\ bye", &"x".repeat(600)] {
            let quoted = to_zone_file(RecordKind::Txt, text);
            assert_eq!(from_zone_file(RecordKind::Txt, &quoted), text);
        }
        assert_eq!(
            to_zone_file(RecordKind::Txt, &"y".repeat(300))
                .matches('"')
                .count(),
            4
        );
    }

    #[test]
    fn decodes_decimal_escapes() {
        assert_eq!(from_zone_file(RecordKind::Txt, "\"a\\059b\""), "a;b");
    }

    #[test]
    fn cname_targets_gain_and_lose_the_dot() {
        assert_eq!(
            to_zone_file(RecordKind::Cname, "t.cfargotunnel.com"),
            "t.cfargotunnel.com."
        );
        assert_eq!(
            from_zone_file(RecordKind::Cname, "t.cfargotunnel.com."),
            "t.cfargotunnel.com"
        );
    }
}
