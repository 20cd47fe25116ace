//! The Secret documents of one manifest file: their values as written
//! (sealed, or in clear), and the file rewritten with new values.
//!
//! A rewrite changes only what it must: the other documents of the file
//! stay byte-for-byte (`manifest::documents`), and in the Secret itself
//! every line but those of a changed value and of `stringData` (whose
//! values move, sealed, to `data`) is kept as written, comments and key
//! order included. A value left as it was keeps its exact text, so
//! re-sealing a file changes nothing that was already sealed.
//!
//! Pure text in, text out: reading and writing the file is the caller's.

use base64::Engine as _;

use crate::manifest::documents::Documents;
use crate::manifest::model::{Kind, ObjectKey, SealedText, Sensitive, SourceLocation};
use crate::manifest::yaml::{self, Entry, Node, PlainType, Value};
use crate::manifest::SourceFile;

/// One value of a Secret, as written.
#[derive(Clone, Debug)]
pub enum Written {
    Sealed(SealedText),
    /// In clear: a `stringData` value, or a base64 `data` value.
    Clear(Sensitive),
}

#[derive(Clone, Debug)]
pub struct WrittenValue {
    pub key: String,
    pub value: Written,
    /// Where the value is written (the `stringData` one, when both are).
    pub location: SourceLocation,
}

/// One Secret document.
#[derive(Clone, Debug)]
pub struct SecretDocument {
    pub secret: ObjectKey,
    /// Where its document starts.
    pub location: SourceLocation,
    /// Its values as Kubernetes reads them: `data`'s in order (a key
    /// `stringData` also sets takes that value), then `stringData`'s others.
    pub values: Vec<WrittenValue>,
    /// The piece of the file ([`Documents`]) the Secret is.
    piece: usize,
}

impl SecretDocument {
    /// The keys whose values are in clear.
    pub fn clear_keys(&self) -> Vec<&str> {
        self.values
            .iter()
            .filter(|v| matches!(v.value, Written::Clear(_)))
            .map(|v| v.key.as_str())
            .collect()
    }

    /// The sealed value of `key`, when it is written sealed.
    pub fn sealed(&self, key: &str) -> Option<&SealedText> {
        self.values.iter().find_map(|v| match &v.value {
            Written::Sealed(sealed) if v.key == key => Some(sealed),
            _ => None,
        })
    }
}

/// What a Secret's value becomes in a rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewValue {
    /// The value stays as written, byte-for-byte (it must be sealed).
    Unchanged(SealedText),
    /// A value sealed anew.
    Sealed(SealedText),
}

impl NewValue {
    fn sealed(&self) -> &SealedText {
        match self {
            NewValue::Unchanged(sealed) | NewValue::Sealed(sealed) => sealed,
        }
    }
}

/// Why a Secret cannot be read or rewritten. The message never holds a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {secret}: {message}")]
pub struct SecretFileError {
    pub location: SourceLocation,
    pub secret: ObjectKey,
    pub message: String,
}

/// A manifest file with its Secret documents read.
#[derive(Debug)]
pub struct SecretFile {
    pub path: String,
    documents: Documents,
    pub secrets: Vec<SecretDocument>,
}

impl SecretFile {
    /// Reads every Secret document of `file` (those `.flotillaignore`
    /// excludes are not read); every problem is reported, not the first.
    pub fn read(file: &SourceFile) -> Result<SecretFile, Vec<SecretFileError>> {
        let documents = Documents::of(file);
        let mut secrets = Vec::new();
        let mut errors = Vec::new();
        for (piece, key, body, first_line) in documents.pieces() {
            let Some(key) = key.filter(|k| k.kind == Kind::Secret) else {
                continue;
            };
            let place = Place {
                file: &file.path,
                first_line,
                secret: key,
            };
            match read_secret(body, &place) {
                Ok(values) => secrets.push(SecretDocument {
                    secret: key.clone(),
                    location: SourceLocation {
                        file: file.path.clone(),
                        line: first_line,
                        column: 1,
                    },
                    values,
                    piece,
                }),
                Err(found) => errors.extend(found),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SecretFile {
            path: file.path.clone(),
            documents,
            secrets,
        })
    }

    /// Gives Secret `index` (of [`SecretFile::secrets`]) exactly the
    /// values `values`, in that order for new keys; its `stringData` goes.
    pub fn set_values(
        &mut self,
        index: usize,
        values: &[(String, NewValue)],
    ) -> Result<(), SecretFileError> {
        let secret = &self.secrets[index];
        let body = self.documents.body(secret.piece);
        let rewritten = rewrite(body, values).map_err(|message| SecretFileError {
            location: SourceLocation {
                file: self.path.clone(),
                line: self
                    .documents
                    .pieces()
                    .nth(secret.piece)
                    .map_or(1, |(_, _, _, line)| line),
                column: 1,
            },
            secret: secret.secret.clone(),
            message,
        })?;
        self.documents.replace(secret.piece, &rewritten);
        Ok(())
    }

    /// The file's text, as rewritten so far.
    pub fn text(&self) -> String {
        self.documents.render()
    }
}

/// Where a document's nodes are in the file.
struct Place<'a> {
    file: &'a str,
    first_line: u32,
    secret: &'a ObjectKey,
}

impl Place<'_> {
    fn location(&self, node: &Node) -> SourceLocation {
        SourceLocation {
            file: self.file.to_string(),
            line: self.first_line + node.line.saturating_sub(1),
            column: node.column,
        }
    }

    fn error(&self, node: &Node, message: String) -> SecretFileError {
        SecretFileError {
            location: self.location(node),
            secret: self.secret.clone(),
            message,
        }
    }
}

fn root_entries(body: &str) -> Result<Vec<Entry>, String> {
    let parsed = yaml::parse(body);
    if let Some(error) = parsed.errors.first() {
        return Err(format!("invalid YAML: {}", error.message));
    }
    match parsed.documents.into_iter().next().map(|d| d.root.value) {
        Some(Value::Mapping(entries)) => Ok(entries),
        _ => Err("the document is not a mapping".to_string()),
    }
}

fn field<'e>(entries: &'e [Entry], name: &str) -> Option<&'e Entry> {
    entries
        .iter()
        .find(|e| e.key.as_scalar().is_some_and(|k| k.text == name))
}

fn read_secret(body: &str, place: &Place) -> Result<Vec<WrittenValue>, Vec<SecretFileError>> {
    let entries = root_entries(body).map_err(|message| {
        vec![SecretFileError {
            location: SourceLocation {
                file: place.file.to_string(),
                line: place.first_line,
                column: 1,
            },
            secret: place.secret.clone(),
            message,
        }]
    })?;
    let mut values: Vec<WrittenValue> = Vec::new();
    let mut errors = Vec::new();
    for (section, entry) in ["data", "stringData"]
        .into_iter()
        .filter_map(|name| field(&entries, name).map(|e| (name, e)))
    {
        let pairs = match &entry.value.value {
            Value::Mapping(pairs) => pairs.as_slice(),
            _ if entry.value.is_null() => &[],
            _ => {
                errors.push(place.error(
                    &entry.value,
                    format!(
                        "`{section}` is {}, not a mapping of keys to values",
                        entry.value.describe()
                    ),
                ));
                continue;
            }
        };
        for pair in pairs {
            let Some(key) = pair.key.as_scalar().map(|k| k.text.clone()) else {
                errors
                    .push(place.error(&pair.key, format!("a key of `{section}` is not a string")));
                continue;
            };
            let value = match read_value(section, &key, &pair.value) {
                Ok(value) => value,
                Err(message) => {
                    let at = match pair.value.as_scalar() {
                        Some(_) if !pair.value.is_null() => &pair.value,
                        _ => &pair.key,
                    };
                    errors.push(place.error(at, message));
                    continue;
                }
            };
            let written = WrittenValue {
                key: key.clone(),
                value,
                location: place.location(&pair.value),
            };
            match values.iter_mut().find(|v| v.key == key) {
                Some(existing) => *existing = written,
                None => values.push(written),
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

fn read_value(section: &str, key: &str, node: &Node) -> Result<Written, String> {
    let Some(scalar) = node.as_scalar().filter(|_| !node.is_null()) else {
        // Reported at the key: a missing value has no place of its own.
        return Err(format!(
            "`{section}.{key}` is {}, not a value",
            node.describe()
        ));
    };
    if section == "stringData" {
        return Ok(Written::Clear(Sensitive::new(
            scalar.text.clone().into_bytes(),
        )));
    }
    if SealedText::looks_sealed(&scalar.text) {
        return SealedText::parse(&scalar.text)
            .map(Written::Sealed)
            .map_err(|e| format!("`data.{key}`: {e}"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(scalar.text.trim())
        .map(|bytes| Written::Clear(Sensitive::new(bytes)))
        .map_err(|_| {
            format!("`data.{key}` is neither sealed (`AGE[...]`) nor base64; write a value in clear under `stringData`")
        })
}

/// A line that ends a block without belonging to it: blank, or a comment.
fn is_trailer(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// The body of a Secret document with `values` as its values: `data`
/// rewritten where it is (or put where `stringData` was, or at the end),
/// `stringData` removed. Lines are numbered from 1, as the YAML tree's.
fn rewrite(body: &str, values: &[(String, NewValue)]) -> Result<String, String> {
    let entries = root_entries(body)?;
    if entries.iter().any(|e| e.key.column != 1) {
        return Err(
            "write the Secret in block style, one top-level field a line, so its values can be sealed in place"
                .to_string(),
        );
    }
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    let end_of_body = lines.len() + 1;
    // Each top-level field's lines: from its key to the next field's,
    // less the blank lines and unindented comments before that one.
    let blocks: Vec<(usize, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let start = entry.key.line as usize;
            let mut end = entries
                .get(i + 1)
                .map_or(end_of_body, |next| next.key.line as usize);
            while end - 1 > start && {
                let line = lines[end - 2];
                line.trim().is_empty() || line.starts_with('#')
            } {
                end -= 1;
            }
            (start, end)
        })
        .collect();
    let data = entries
        .iter()
        .position(|e| e.key.as_scalar().is_some_and(|k| k.text == "data"));
    let string_data = entries
        .iter()
        .position(|e| e.key.as_scalar().is_some_and(|k| k.text == "stringData"));

    let new_data = match data {
        Some(i) if is_block_mapping(&entries[i], &lines) => {
            rewrite_block(&entries[i], blocks[i], &lines, values)
        }
        _ => generated_block(values),
    };
    // Where the new data goes: in place of the old, else of stringData.
    let data_at = data.or(string_data);
    let mut text = String::with_capacity(body.len() + new_data.len());
    let mut line = 1;
    for (i, &(start, end)) in blocks.iter().enumerate() {
        if Some(i) != data && Some(i) != string_data {
            continue;
        }
        for kept in &lines[line - 1..start - 1] {
            text.push_str(kept);
        }
        if Some(i) == data_at {
            text.push_str(&new_data);
        }
        line = end;
    }
    for kept in &lines[line - 1..] {
        text.push_str(kept);
    }
    if data_at.is_none() && !new_data.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&new_data);
    }
    Ok(text)
}

/// Whether `data` is a block mapping with entries (else it is written anew).
fn is_block_mapping(entry: &Entry, lines: &[&str]) -> bool {
    let Value::Mapping(pairs) = &entry.value.value else {
        return false;
    };
    let first_char = lines
        .get(entry.value.line as usize - 1)
        .and_then(|l| l.get(entry.value.column as usize - 1..))
        .and_then(|rest| rest.chars().next());
    !pairs.is_empty() && pairs[0].key.line > entry.key.line && first_char != Some('{')
}

/// A block `data` mapping with `values`: each entry left as it is
/// written, replaced by its new sealed value or removed; new keys after
/// the last entry; comments between entries kept.
fn rewrite_block(
    entry: &Entry,
    (_, block_end): (usize, usize),
    lines: &[&str],
    values: &[(String, NewValue)],
) -> String {
    let Value::Mapping(pairs) = &entry.value.value else {
        unreachable!("checked by is_block_mapping");
    };
    let new_value = |key: &str| values.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let indent = " ".repeat(pairs[0].key.column as usize - 1);
    let first = pairs[0].key.line as usize;
    let mut text = String::new();
    for line in &lines[entry.key.line as usize - 1..first - 1] {
        text.push_str(line);
    }
    let mut written = 0;
    for (j, pair) in pairs.iter().enumerate() {
        let start = pair.key.line as usize;
        let next = pairs.get(j + 1).map_or(block_end, |p| p.key.line as usize);
        let mut end = next;
        while end - 1 > start && is_trailer(lines[end - 2]) {
            end -= 1;
        }
        let key = pair.key.as_scalar().map_or("", |k| k.text.as_str());
        match new_value(key) {
            Some(NewValue::Unchanged(_)) => {
                written += 1;
                for line in &lines[start - 1..end - 1] {
                    text.push_str(line);
                }
            }
            Some(NewValue::Sealed(sealed)) => {
                written += 1;
                text.push_str(&entry_line(&indent, key, sealed));
            }
            None => {}
        }
        if j + 1 == pairs.len() {
            for (key, value) in values {
                if !pairs
                    .iter()
                    .any(|p| p.key.as_scalar().is_some_and(|k| &k.text == key))
                {
                    written += 1;
                    text.push_str(&entry_line(&indent, key, value.sealed()));
                }
            }
        }
        for line in &lines[end - 1..next - 1] {
            text.push_str(line);
        }
    }
    if written == 0 {
        return String::new();
    }
    text
}

/// `data:` with every value of `values` on a line; nothing when there is none.
fn generated_block(values: &[(String, NewValue)]) -> String {
    if values.is_empty() {
        return String::new();
    }
    let mut text = "data:\n".to_string();
    for (key, value) in values {
        text.push_str(&entry_line("  ", key, value.sealed()));
    }
    text
}

fn entry_line(indent: &str, key: &str, sealed: &SealedText) -> String {
    format!("{indent}{}: {}\n", yaml_key(key), sealed.to_manifest_text())
}

/// A key as YAML: plain when it reads back as the same string, else
/// double-quoted (JSON's escapes are YAML's).
fn yaml_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !key.starts_with('-')
        && yaml::plain_type(key) == PlainType::String;
    if plain {
        key.to_string()
    } else {
        serde_json::to_string(key).expect("a string always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(version: char) -> SealedText {
        let file = b"age-encryption.org/v1\n-> X25519 abc\n";
        SealedText {
            version: version.to_string().repeat(16),
            ciphertext: base64::engine::general_purpose::STANDARD.encode(file),
        }
    }

    fn read(text: &str) -> SecretFile {
        SecretFile::read(&SourceFile::new("s.yaml", text)).unwrap()
    }

    fn written(file: &SecretFile) -> Vec<(String, String)> {
        file.secrets[0]
            .values
            .iter()
            .map(|v| {
                let what = match &v.value {
                    Written::Sealed(s) => format!("sealed {}", s.version),
                    Written::Clear(c) => format!("clear {}", String::from_utf8_lossy(c.expose())),
                };
                (v.key.clone(), format!("{what} at {}", v.location))
            })
            .collect()
    }

    /// `check(input, values, expected)`: the Secret of `input` rewritten.
    fn check(input: &str, values: &[(&str, NewValue)], expected: &str) {
        let mut file = read(input);
        let values: Vec<(String, NewValue)> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        file.set_values(0, &values).unwrap();
        assert_eq!(file.text(), expected);
        // The result reads back with exactly those values.
        let again = read(&file.text());
        let keys: Vec<&str> = again.secrets[0]
            .values
            .iter()
            .map(|v| v.key.as_str())
            .collect();
        let mut expected_keys: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
        expected_keys.sort();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, expected_keys);
    }

    const HEAD: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n";

    #[test]
    fn values_are_read_with_kubernetes_precedence_and_their_places() {
        let a = sealed('a').to_manifest_text();
        let file = read(&format!(
            "kind: Service\nmetadata: {{name: s}}\n---\n{HEAD}data:\n  sealed: {a}\n  both: aWdub3JlZA==\n  b64: aGVsbG8=\nstringData:\n  both: wins\n  text: plain\n"
        ));
        assert_eq!(
            written(&file),
            [
                (
                    "sealed".to_string(),
                    "sealed aaaaaaaaaaaaaaaa at s.yaml:9:11".to_string()
                ),
                ("both".to_string(), "clear wins at s.yaml:13:9".to_string()),
                ("b64".to_string(), "clear hello at s.yaml:11:8".to_string()),
                ("text".to_string(), "clear plain at s.yaml:14:9".to_string()),
            ]
        );
        assert_eq!(file.secrets[0].clear_keys(), ["both", "b64", "text"]);
    }

    #[test]
    fn unreadable_values_are_all_reported_with_their_place_and_never_their_value() {
        let errors = SecretFile::read(&SourceFile::new(
            "s.yaml",
            format!("{HEAD}data:\n  bad: not base64!\n  broken: AGE[xyz:abc]\nstringData:\n  nested: {{a: b}}\n  empty:\n"),
        ))
        .unwrap_err();
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "s.yaml:6:8: Secret default/db: `data.bad` is neither sealed (`AGE[...]`) nor base64; write a value in clear under `stringData`",
                "s.yaml:7:11: Secret default/db: `data.broken`: the version of a sealed value is 16 lowercase hex digits",
                "s.yaml:9:3: Secret default/db: `stringData.nested` is a mapping, not a value",
                "s.yaml:10:3: Secret default/db: `stringData.empty` is null, not a value",
            ]
        );
        assert!(!rendered.concat().contains("not base64!"));
    }

    #[test]
    fn sealing_string_data_moves_it_to_data_and_keeps_the_rest_byte_for_byte() {
        let (a, b) = (sealed('a'), sealed('b'));
        let (at, bt) = (a.to_manifest_text(), b.to_manifest_text());
        // stringData after data: data keeps its sealed entry and comment,
        // the new value is appended, stringData and its lines go.
        check(
            &format!("# the database\n{HEAD}type: Opaque\ndata:\n  # kept\n  old:   {at}  # as written\nstringData:\n  new: |\n    multi\n    line\n# trailing comment\nimmutable: false\n"),
            &[("old", NewValue::Unchanged(a.clone())), ("new", NewValue::Sealed(b.clone()))],
            &format!("# the database\n{HEAD}type: Opaque\ndata:\n  # kept\n  old:   {at}  # as written\n  new: {bt}\n# trailing comment\nimmutable: false\n"),
        );
        // Only stringData: data takes its place.
        check(
            &format!("{HEAD}stringData:\n  password: x\nimmutable: true\n"),
            &[("password", NewValue::Sealed(a.clone()))],
            &format!("{HEAD}data:\n  password: {at}\nimmutable: true\n"),
        );
        // A clear data value is replaced where it is; the others stay.
        check(
            &format!("{HEAD}data:\n    one: {at}\n    two: aGVsbG8=\n    three: {bt}\n"),
            &[
                ("one", NewValue::Unchanged(a.clone())),
                ("two", NewValue::Sealed(b.clone())),
                ("three", NewValue::Unchanged(b.clone())),
            ],
            &format!("{HEAD}data:\n    one: {at}\n    two: {bt}\n    three: {bt}\n"),
        );
    }

    #[test]
    fn keys_are_removed_and_empty_or_flow_data_is_written_anew() {
        let (a, b) = (sealed('a'), sealed('b'));
        let (at, bt) = (a.to_manifest_text(), b.to_manifest_text());
        check(
            &format!("{HEAD}data:\n  one: {at}\n  two: {bt}\n"),
            &[("two", NewValue::Unchanged(b.clone()))],
            &format!("{HEAD}data:\n  two: {bt}\n"),
        );
        check(
            &format!("{HEAD}data:\n  one: {at}\nimmutable: true\n"),
            &[],
            &format!("{HEAD}immutable: true\n"),
        );
        check(
            // In flow style a sealed value must be quoted (`[` opens a list).
            &format!("{HEAD}data: {{one: \"{at}\"}}\nstringData: {{two: x}}\n"),
            &[
                ("one", NewValue::Unchanged(a.clone())),
                ("2", NewValue::Sealed(b.clone())),
            ],
            &format!("{HEAD}data:\n  one: {at}\n  \"2\": {bt}\n"),
        );
        // No data at all, and no final newline.
        check(
            HEAD.trim_end(),
            &[("tls.crt", NewValue::Sealed(a.clone()))],
            &format!("{HEAD}data:\n  tls.crt: {at}\n"),
        );
    }

    #[test]
    fn other_documents_are_kept_byte_for_byte() {
        let a = sealed('a');
        let before = "kind: ConfigMap   # odd spacing\nmetadata: {name: c}\n---   \n";
        let after = "--- # next\nkind: Service\nmetadata:\n  name: s\n";
        let mut file = read(&format!("{before}{HEAD}stringData:\n  k: v\n{after}"));
        file.set_values(0, &[("k".to_string(), NewValue::Sealed(a.clone()))])
            .unwrap();
        assert_eq!(
            file.text(),
            format!(
                "{before}{HEAD}data:\n  k: {}\n{after}",
                a.to_manifest_text()
            )
        );
    }

    #[test]
    fn a_secret_in_flow_style_is_refused_with_a_hint() {
        let mut file = read("{kind: Secret, metadata: {name: db}, stringData: {k: v}}\n");
        let error = file
            .set_values(0, &[("k".to_string(), NewValue::Sealed(sealed('a')))])
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("s.yaml:1:1: Secret default/db: write the Secret in block style"),
            "{error}"
        );
    }
}
