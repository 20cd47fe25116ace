//! Text that comes from a repository (commit subjects and authors, file
//! names, notes) or goes into one (a failing container's log lines), made
//! safe to show on a terminal and to commit: a control character (C0, DEL,
//! C1: terminal escape sequences, a bell, a carriage return that hides what
//! came before) is shown as a visible escape, `\x1b` or `\u{9b}`, never
//! passed through. Every place that prints such text uses these two
//! functions; JSON output needs neither (serde escapes control characters).

use std::borrow::Cow;

/// `text` as one line: every control character escaped, line breaks and
/// tabs included (subjects, authors, file names).
pub fn printable_line(text: &str) -> Cow<'_, str> {
    escape_controls(text, |_| false)
}

/// `text` as lines: every control character escaped except line breaks
/// and tabs (note text, diagnostics, diffs, error messages).
pub fn printable_text(text: &str) -> Cow<'_, str> {
    escape_controls(text, |c| c == '\n' || c == '\t')
}

fn escape_controls(text: &str, keep: fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !c.is_control() || keep(c) {
            escaped.push(c);
        } else if c.is_ascii() {
            escaped.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_passed_through() {
        let check = |text: &str, line: &str, lines: &str| {
            assert_eq!(printable_line(text), line, "{text:?}");
            assert_eq!(printable_text(text), lines, "{text:?}");
        };
        check(
            "plain: é, ✓, \\x1b",
            "plain: é, ✓, \\x1b",
            "plain: é, ✓, \\x1b",
        );
        check(
            "\x1b[31mred\x1b[0m\x07",
            "\\x1b[31mred\\x1b[0m\\x07",
            "\\x1b[31mred\\x1b[0m\\x07",
        );
        check("a\nb\tc", "a\\x0ab\\x09c", "a\nb\tc");
        check("ok\rhidden", "ok\\x0dhidden", "ok\\x0dhidden");
        check(
            "\0\x7f\u{9b}2J\u{85}",
            "\\x00\\x7f\\u{9b}2J\\u{85}",
            "\\x00\\x7f\\u{9b}2J\\u{85}",
        );
        assert!(matches!(printable_line("clean"), Cow::Borrowed(_)));
    }
}
