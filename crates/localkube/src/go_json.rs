//! JSON text that serde_json refuses but Go's encoding/json (so kube-apiserver) reads: an
//! escaped lone UTF-16 surrogate (`"\ud800"`), which Go reads as U+FFFD. (Invalid UTF-8, which
//! Go also reads as U+FFFD, is `String::from_utf8_lossy`'s.)

use std::borrow::Cow;

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

const HIGH: std::ops::Range<u32> = 0xD800..0xDC00;
const LOW: std::ops::Range<u32> = 0xDC00..0xE000;

/// `text` with each escape of a surrogate that is not half of a pair (a high one followed by
/// an escaped low one) replaced by `\ufffd`; borrowed when there is none. Escapes outside
/// strings, and malformed ones, are left for the parser to refuse.
pub fn replace_lone_surrogates(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (false, b'"') => in_string = true,
            (true, b'"') => in_string = false,
            (true, b'\\') if bytes.get(i + 1) == Some(&b'u') => {
                let unit = hex4(bytes, i + 2);
                let paired = unit.is_some_and(|u| HIGH.contains(&u))
                    && bytes.get(i + 6..i + 8) == Some(b"\\u")
                    && hex4(bytes, i + 8).is_some_and(|u| LOW.contains(&u));
                if paired {
                    i += 12;
                    continue;
                }
                if unit.is_some_and(|u| HIGH.contains(&u) || LOW.contains(&u)) {
                    let s = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    s.push_str(&text[copied..i]);
                    s.push_str("\\ufffd");
                    i += 6;
                    copied = i;
                    continue;
                }
                i += 2;
                continue;
            }
            // Any other escape: its second character is not the string's end.
            (true, b'\\') => {
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut s) => {
            s.push_str(&text[copied..]);
            Cow::Owned(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_the_replacement_character_as_in_go() {
        for (text, want) in [
            (r#"{"a": "\ud800"}"#, r#"{"a": "\ufffd"}"#),
            (r#"{"a": "\udc00x"}"#, r#"{"a": "\ufffdx"}"#),
            (r#"{"a": "\uD800\u0041"}"#, r#"{"a": "\ufffd\u0041"}"#),
            (
                r#"{"a": "\ud800\ud800\udc00"}"#,
                r#"{"a": "\ufffd\ud800\udc00"}"#,
            ),
            (r#"{"\ud800": 1}"#, r#"{"\ufffd": 1}"#),
        ] {
            assert_eq!(replace_lone_surrogates(text), want, "{text}");
            let v: serde_json::Value = serde_json::from_str(want).unwrap();
            assert!(v.to_string().contains('\u{fffd}'), "{v}");
        }
    }

    #[test]
    fn pairs_other_escapes_and_text_outside_strings_are_left_alone() {
        for text in [
            r#"{"a": "\ud83d\ude00"}"#,
            r#"{"a": "\\ud800"}"#,
            r#"{"a": "\"\ud83d\ude00"}"#,
            r#"{"a": "\u00e9\n"}"#,
            r#"{"a": "\u12"}"#,
            r#"\ud800"#,
        ] {
            assert!(
                matches!(replace_lone_surrogates(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }
}
