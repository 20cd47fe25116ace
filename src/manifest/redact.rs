//! Secret values kept out of what flotilla prints: of a manifest's text
//! (the plan's manifest diff, [`secret_values`]), and of text from
//! elsewhere that may quote one (a container's log lines, Docker's error
//! messages: [`hide_values`]).
//!
//! Line by line, erring towards hiding: in a document that declares
//! `kind: Secret`, the lines of `apiVersion`, `kind`, `metadata`, `type` and
//! `immutable` are kept; under `data` and `stringData` each key is kept
//! with its value replaced by `(sensitive value)` (a sealed value, public,
//! is shortened to its version); every other line of the document
//! (continuations of block scalars, flow style, JSON) becomes
//! `(sensitive value)` at its indentation.

use super::model::{SealedText, SENSITIVE};

/// `text` with the values of its Secret documents hidden; other documents
/// unchanged, byte for byte.
pub fn secret_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut document: Vec<&str> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") && !document.is_empty() {
            redact_document(&document, &mut out);
            document.clear();
        }
        document.push(line);
    }
    redact_document(&document, &mut out);
    out
}

/// Whether the lines declare a Secret, in any style.
fn is_secret(lines: &[&str]) -> bool {
    lines.iter().any(|line| {
        let compact: String = line
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
            .collect();
        compact.starts_with("kind:Secret") && compact.len() == "kind:Secret".len()
            || compact.contains("kind:Secret,")
            || compact.contains("kind:Secret}")
    })
}

fn redact_document(lines: &[&str], out: &mut String) {
    if !is_secret(lines) {
        lines.iter().for_each(|line| out.push_str(line));
        return;
    }
    /// Which top-level key the line is under.
    #[derive(PartialEq)]
    enum Section {
        Shown,
        Values,
        Hidden,
    }
    let mut section = Section::Shown;
    for line in lines {
        let ending = if line.ends_with('\n') { "\n" } else { "" };
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = content.len() - content.trim_start().len();
        let trimmed = content.trim_start();
        if content.starts_with("---")
            || trimmed.is_empty()
            || trimmed.starts_with('#') && indent == 0
        {
            out.push_str(line);
            continue;
        }
        if indent == 0 {
            let key = trimmed.split(':').next().unwrap_or_default().trim();
            let has_value = trimmed
                .split_once(':')
                .is_some_and(|(_, rest)| !rest.trim().is_empty() && !rest.trim().starts_with('#'));
            section = match key {
                "apiVersion" | "kind" | "metadata" | "type" | "immutable" => Section::Shown,
                "data" | "stringData" if !has_value => Section::Values,
                _ => Section::Hidden,
            };
            if section == Section::Hidden && (key == "data" || key == "stringData") {
                // `data: {…}` on one line: keep the key only.
                out.push_str(&format!("{key}: {SENSITIVE}{ending}"));
                continue;
            }
            if section != Section::Hidden {
                out.push_str(line);
                continue;
            }
        }
        match section {
            Section::Shown => out.push_str(line),
            Section::Values => {
                // `  key: value` at the first level: the key stays.
                match trimmed.split_once(':') {
                    Some((key, value)) if !key.contains(' ') && !key.is_empty() => {
                        let value = value.trim();
                        let shown = match SealedText::parse(value) {
                            Ok(sealed) => format!("AGE[{}:…]", sealed.version),
                            Err(_) => SENSITIVE.to_string(),
                        };
                        out.push_str(&format!("{}{key}: {shown}{ending}", &content[..indent]));
                    }
                    _ => out.push_str(&format!("{}{SENSITIVE}{ending}", &content[..indent])),
                }
            }
            Section::Hidden => out.push_str(&format!("{}{SENSITIVE}{ending}", &content[..indent])),
        }
    }
}

/// The shortest piece of a value that is hidden: shorter ones (`app`,
/// `1`) would hide ordinary words without protecting anything.
const SHORTEST_HIDDEN: usize = 4;

/// `text` with every occurrence of each of `values` replaced by
/// `(sensitive value)`: each value's runs of printable characters (a value
/// is cut at its control characters and line breaks, since logs and error
/// messages quote or escape those), longest first, from 4 characters.
pub fn hide_values<'a>(text: &str, values: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut needles: Vec<String> = values
        .into_iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value)
                .split(|c: char| c.is_control())
                .map(|piece| piece.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|piece| piece.chars().count() >= SHORTEST_HIDDEN)
        .collect();
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    let mut text = text.to_string();
    for needle in needles {
        if text.contains(&needle) {
            text = text.replace(&needle, SENSITIVE);
        }
    }
    text
}

/// Every opened Secret value of `desired`, for [`hide_values`].
pub fn opened_values(desired: &super::DesiredState) -> impl Iterator<Item = &[u8]> {
    desired.secrets.iter().flat_map(|s| {
        s.data.values().filter_map(|v| match v {
            super::model::SecretValue::Opened(value) => Some(value.expose()),
            super::model::SecretValue::Sealed(_) => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_secrets_are_hidden_and_the_rest_kept() {
        let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data:
  LEVEL: debug
---
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: hunter2
  cert: |
    -----BEGIN hunter2-----
data:
  token: aHVudGVyMg==
";
        let redacted = secret_values(text);
        assert_eq!(
            redacted,
            "\
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data:
  LEVEL: debug
---
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: (sensitive value)
  cert: (sensitive value)
    (sensitive value)
data:
  token: (sensitive value)
"
        );
    }

    #[test]
    fn other_styles_of_secret_are_hidden_whole() {
        let json = "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"stringData\": {\"a\": \"hunter2\"}}\n";
        assert!(!secret_values(json).contains("hunter2"));
        let flow = "kind: Secret\nmetadata: {name: x}\nstringData: {a: hunter2}\n";
        assert_eq!(
            secret_values(flow),
            "kind: Secret\nmetadata: {name: x}\nstringData: (sensitive value)\n"
        );
        let quoted = "\"kind\": \"Secret\"\nunknown:\n  a: hunter2\n";
        assert!(!secret_values(quoted).contains("hunter2"));
    }

    #[test]
    fn values_quoted_in_logs_and_errors_are_hidden() {
        let values: [&[u8]; 3] = [
            b"LEAKMEsecret42\0x",
            b"app",
            b"-----BEGIN KEY-----\nMIIEvQIBADANBg\n",
        ];
        let text = "starting with token LEAKMEsecret42 as app\n\
                    init: value can't contain null: \"API_TOKEN=LEAKMEsecret42\\x00x\"\n\
                    key line MIIEvQIBADANBg";
        assert_eq!(
            hide_values(text, values),
            "starting with token (sensitive value) as app\n\
             init: value can't contain null: \"API_TOKEN=(sensitive value)\\x00x\"\n\
             key line (sensitive value)"
        );
    }

    #[test]
    fn sealed_values_show_their_version_only() {
        use base64::Engine as _;
        let age = base64::engine::general_purpose::STANDARD
            .encode(b"age-encryption.org/v1\n-> X25519 x\n");
        let text = format!("kind: Secret\ndata:\n  password: AGE[0123456789abcdef:{age}]\n");
        assert_eq!(
            secret_values(&text),
            "kind: Secret\ndata:\n  password: AGE[0123456789abcdef:…]\n"
        );
    }
}
