//! A manifest file as the text of its documents, for edits that must leave
//! everything else byte-for-byte as written (`flotilla rollback` puts one
//! object's document back as it was and touches nothing around it).
//!
//! A file is cut at its document marker lines (`---` and `...` at the start
//! of a line, which YAML forbids inside any content, so no parse is needed to
//! find them). Each piece keeps the marker line that opens it and the text up
//! to the next marker line; joining the pieces gives the file back exactly.
//! Each piece's object is read leniently, the way `load` names objects in its
//! messages, so a document with errors is still found by its kind and name.

use sha2::{Digest, Sha256};

use super::model::{Kind, ObjectKey};
use super::yaml::{self, Node, Value};
use super::{ExcludedDocument, SourceFile};

/// A file cut into its documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Documents {
    pieces: Vec<Piece>,
    /// Documents that declare no object here: `.flotillaignore` excludes them.
    excluded: Vec<ExcludedDocument>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    /// The marker line that opens the piece (`---\n`, `--- # web\n`), or
    /// only `---` when content follows it on the same line; empty for the
    /// first piece of a file.
    separator: String,
    body: String,
    /// The object the body declares, if it declares one (and is not excluded).
    key: Option<ObjectKey>,
}

impl Piece {
    fn new(separator: String, body: String, excluded: &[ExcludedDocument]) -> Piece {
        let key = body_key(&body, excluded);
        Piece {
            separator,
            body,
            key,
        }
    }
}

impl Documents {
    /// The documents of `file`, where those it excludes declare no object,
    /// as [`super::load`] reads them.
    pub(crate) fn of(file: &SourceFile) -> Documents {
        Documents::cut(&file.text, &file.excluded)
    }

    /// Cuts `text` at its marker lines. Never fails: a piece that does not
    /// parse simply declares no object.
    #[cfg(test)]
    pub(crate) fn split(text: &str) -> Documents {
        Documents::cut(text, &[])
    }

    fn cut(text: &str, excluded: &[ExcludedDocument]) -> Documents {
        let mut pieces: Vec<(String, String)> = vec![(String::new(), String::new())];
        for line in text.split_inclusive('\n') {
            match marker_rest(line) {
                Some(rest) => {
                    let content = rest.trim();
                    if content.is_empty() || content.starts_with('#') {
                        pieces.push((line.to_string(), String::new()));
                    } else {
                        pieces.push((line[..3].to_string(), line[3..].to_string()));
                    }
                }
                None => pieces
                    .last_mut()
                    .expect("there is always a first piece")
                    .1
                    .push_str(line),
            }
        }
        Documents {
            pieces: pieces
                .into_iter()
                .map(|(separator, body)| Piece::new(separator, body, excluded))
                .collect(),
            excluded: excluded.to_vec(),
        }
    }

    /// The file's text. Unchanged pieces come back byte-for-byte; a line
    /// break is added only where an edit would otherwise glue a document
    /// to a marker line.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        for piece in &self.pieces {
            if !piece.separator.is_empty() && !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&piece.separator);
            if !piece.separator.is_empty()
                && !piece.separator.ends_with('\n')
                && !piece.body.is_empty()
                && !piece.body.starts_with([' ', '\t', '\r', '\n'])
            {
                text.push('\n');
            }
            text.push_str(&piece.body);
        }
        text
    }

    /// The objects the file declares, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.pieces.iter().filter_map(|p| p.key.as_ref())
    }

    /// The index of the first document declaring `key`.
    pub(crate) fn find(&self, key: &ObjectKey) -> Option<usize> {
        self.pieces.iter().position(|p| p.key.as_ref() == Some(key))
    }

    /// Every piece: its index, the object it declares, its text (without
    /// its marker line) and the line of the file its text starts on
    /// (1-based), so what is found in the text can be named by file:line.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = (usize, Option<&ObjectKey>, &str, u32)> {
        let mut line = 1u32;
        self.pieces.iter().enumerate().map(move |(index, piece)| {
            line += count_lines(&piece.separator);
            let first = line;
            line += count_lines(&piece.body);
            (index, piece.key.as_ref(), piece.body.as_str(), first)
        })
    }

    /// The text of piece `index` (without its marker line).
    pub(crate) fn body(&self, index: usize) -> &str {
        &self.pieces[index].body
    }

    /// Puts `body` in place of piece `index`'s text, keeping its marker line.
    pub(crate) fn replace(&mut self, index: usize, body: &str) {
        let separator = std::mem::take(&mut self.pieces[index].separator);
        self.pieces[index] = Piece::new(separator, body.to_string(), &self.excluded);
    }

    /// Removes piece `index` with the marker line that opens it (or, for the
    /// first piece, the one that closes it).
    pub(crate) fn remove(&mut self, index: usize) {
        self.pieces.remove(index);
        if index == 0 {
            if let Some(first) = self.pieces.first_mut() {
                first.separator.clear();
            }
        }
    }

    /// Adds `body` as a new document after piece `index`, or at the end.
    /// A file that declares nothing yet becomes `body` alone.
    pub(crate) fn insert_after(&mut self, index: Option<usize>, body: &str) {
        if self.is_empty() {
            self.pieces = vec![Piece::new(String::new(), body.to_string(), &self.excluded)];
            return;
        }
        let at = index.map_or(self.pieces.len(), |i| i + 1);
        let piece = Piece::new("---\n".to_string(), body.to_string(), &self.excluded);
        self.pieces.insert(at, piece);
    }

    /// Whether the file holds nothing but blank lines, comments and markers.
    pub(crate) fn is_empty(&self) -> bool {
        self.pieces.iter().all(|piece| {
            piece.body.lines().all(|line| {
                let line = line.trim();
                line.is_empty() || line.starts_with('#')
            })
        })
    }
}

fn count_lines(text: &str) -> u32 {
    u32::try_from(text.bytes().filter(|b| *b == b'\n').count()).unwrap_or(u32::MAX)
}

/// What follows `---` or `...` on a marker line, or `None` for other lines.
fn marker_rest(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("---")
        .or_else(|| line.strip_prefix("..."))?;
    match rest.chars().next() {
        None | Some(' ' | '\t' | '\r' | '\n') => Some(rest),
        Some(_) => None,
    }
}

fn body_key(body: &str, excluded: &[ExcludedDocument]) -> Option<ObjectKey> {
    let parsed = yaml::parse(body);
    match parsed.documents.as_slice() {
        [document] if !excluded.iter().any(|e| e.matches(&document.root)) => {
            object_key(&document.root)
        }
        _ => None,
    }
}

/// The object a document declares, read leniently like `load` names objects
/// in its messages: `kind`, `metadata.name`, and `metadata.namespace`
/// (`default` when absent) for namespaced kinds.
pub(crate) fn object_key(root: &Node) -> Option<ObjectKey> {
    let Value::Mapping(entries) = &root.value else {
        return None;
    };
    let field = |entries: &[yaml::Entry], name: &str| -> Option<String> {
        entries
            .iter()
            .find(|e| e.key.as_scalar().is_some_and(|k| k.text == name))
            .and_then(|e| e.value.as_scalar())
            .filter(|s| !s.text.is_empty())
            .map(|s| s.text.clone())
    };
    let kind = Kind::parse(&field(entries, "kind")?)?;
    let metadata = entries
        .iter()
        .find(|e| e.key.as_scalar().is_some_and(|k| k.text == "metadata"))
        .map(|e| &e.value);
    let metadata: &[yaml::Entry] = match metadata.map(|m| &m.value) {
        Some(Value::Mapping(entries)) => entries,
        _ => &[],
    };
    let namespace = if kind.is_namespaced() {
        field(metadata, "namespace").unwrap_or_else(|| "default".to_string())
    } else {
        String::new()
    };
    Some(ObjectKey {
        kind,
        namespace,
        name: field(metadata, "name")?,
    })
}

/// The kind, namespace (`default` when absent) and name a document
/// declares, read leniently and whatever the kind: what a
/// `.flotillaignore` line's `#Kind/name` is matched against.
pub(crate) fn raw_identity(root: &Node) -> Option<(&str, &str, &str)> {
    let Value::Mapping(entries) = &root.value else {
        return None;
    };
    fn field<'n>(entries: &'n [yaml::Entry], name: &str) -> Option<&'n str> {
        entries
            .iter()
            .find(|e| e.key.as_scalar().is_some_and(|k| k.text == name))
            .and_then(|e| e.value.as_scalar())
            .map(|s| s.text.as_str())
            .filter(|text| !text.is_empty())
    }
    let kind = field(entries, "kind")?;
    let metadata: &[yaml::Entry] = entries
        .iter()
        .find(|e| e.key.as_scalar().is_some_and(|k| k.text == "metadata"))
        .and_then(|e| match &e.value.value {
            Value::Mapping(entries) => Some(entries.as_slice()),
            _ => None,
        })
        .unwrap_or(&[]);
    let namespace = field(metadata, "namespace").unwrap_or("default");
    Some((kind, namespace, field(metadata, "name")?))
}

/// One version of an object, to tell whether it changed between two
/// commits: the digest of its typed, defaulted form (so reformatting,
/// comments and key order do not count), or of its text when it does not
/// load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fingerprint {
    Valid([u8; 32]),
    Invalid([u8; 32]),
}

impl Fingerprint {
    pub fn is_valid(self) -> bool {
        matches!(self, Fingerprint::Valid(_))
    }
}

/// The fingerprint of the object `key` declared alone by `body` (a
/// document of the file `path`).
pub(crate) fn fingerprint(path: &str, key: &ObjectKey, body: &str) -> Fingerprint {
    let loaded = super::load(&[SourceFile {
        path: path.to_string(),
        text: body.to_string(),
        excluded: Vec::new(),
    }]);
    let state = &loaded.state;
    let typed = if loaded.has_errors() {
        None
    } else {
        match key.kind {
            Kind::Node => state
                .node(&key.name)
                .and_then(|n| serde_json::to_vec(n).ok()),
            Kind::Cluster => serde_json::to_vec(&state.cluster).ok(),
            _ => state.workload(key).and_then(|w| serde_json::to_vec(w).ok()),
        }
    };
    match typed {
        Some(json) => Fingerprint::Valid(Sha256::digest(&json).into()),
        None => Fingerprint::Invalid(Sha256::digest(body.as_bytes()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";
    const API: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n";

    fn key(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn deployment(name: &str) -> ObjectKey {
        key(Kind::Deployment, "default", name)
    }

    #[test]
    fn splitting_keeps_every_byte() {
        for text in [
            "",
            "\n",
            WEB,
            "---\n",
            "a: 1\n---\nb: 2\n",
            "---\na: 1\n---\nb: 2\n...\n",
            "# header\n---  # first\na: 1\n--- {b: 2}\n---\r\nc: 3\r\n",
            "a: 1",
            "a: |\n  ---x\n  text\n----\n",
        ] {
            assert_eq!(Documents::split(text).render(), text, "{text:?}");
        }
    }

    #[test]
    fn objects_are_found_by_kind_namespace_and_name() {
        let text = format!(
            "# comment only\n---\n{WEB}---\n{API}  namespace: other\n---\n\
             apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {{name: n1, namespace: x}}\n\
             ---\nkind: Unknown\nmetadata: {{name: u}}\n---\nkind: Deployment\n---\n[1, 2]\n\
             ---\nkind: Deployment\nmetadata:\n  name: broken\nspec: [\n"
        );
        let documents = Documents::split(&text);
        let keys: Vec<String> = documents.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            ["Deployment default/web", "Deployment other/api", "Node n1",]
        );
        assert_eq!(documents.find(&deployment("web")), Some(1));
        assert_eq!(documents.body(1), WEB);
        assert_eq!(documents.find(&deployment("api")), None);
    }

    /// One edit: `replace web` with a body, `remove web`, `insert after web`
    /// or `append` a body.
    enum Edit<'a> {
        Replace(&'a str, &'a str),
        Remove(&'a str),
        InsertAfter(Option<&'a str>, &'a str),
    }

    fn check(before: &str, edit: Edit<'_>, after: &str) {
        let mut documents = Documents::split(before);
        let index = |documents: &Documents, name: &str| {
            documents
                .find(&deployment(name))
                .unwrap_or_else(|| panic!("{name} not in {before:?}"))
        };
        match edit {
            Edit::Replace(name, body) => documents.replace(index(&documents, name), body),
            Edit::Remove(name) => documents.remove(index(&documents, name)),
            Edit::InsertAfter(name, body) => {
                let at = name.map(|n| index(&documents, n));
                documents.insert_after(at, body)
            }
        }
        assert_eq!(documents.render(), after, "from {before:?}");
    }

    fn doc(name: &str, image: &str) -> String {
        format!("kind: Deployment\nmetadata:\n  name: {name}\nimage: {image}\n")
    }

    #[test]
    fn edits_touch_only_their_document() {
        let web1 = doc("web", "1");
        let web2 = doc("web", "2");
        let api = doc("api", "1");
        let db = doc("db", "1");
        let cases: Vec<(String, Edit<'_>, String)> = vec![
            // Replacing keeps the marker lines and the other documents.
            (
                format!("{web2}---\n{api}"),
                Edit::Replace("web", &web1),
                format!("{web1}---\n{api}"),
            ),
            (
                format!("{api}--- # the web app\n{web2}...\n"),
                Edit::Replace("web", &web1),
                format!("{api}--- # the web app\n{web1}...\n"),
            ),
            // A body without a final line break still ends before the marker.
            (
                format!("{web2}---\n{api}"),
                Edit::Replace("web", web1.trim_end()),
                format!("{}\n---\n{api}", web1.trim_end()),
            ),
            // Content on the marker line stays apart from the new body.
            (
                format!("{api}--- {{kind: Deployment, metadata: {{name: web}}}}\n"),
                Edit::Replace("web", &web1),
                format!("{api}---\n{web1}"),
            ),
            // Removing takes the marker line that opens the document...
            (
                format!("{api}---\n{web2}---\n{db}"),
                Edit::Remove("web"),
                format!("{api}---\n{db}"),
            ),
            (
                format!("{api}---\n{web2}"),
                Edit::Remove("web"),
                api.clone(),
            ),
            // ...or, for the first, the one that closes it.
            (
                format!("{web2}---\n{api}"),
                Edit::Remove("web"),
                api.clone(),
            ),
            (
                format!("---\n{web2}---\n{api}"),
                Edit::Remove("web"),
                format!("---\n{api}"),
            ),
            // Inserting goes after the named document, or at the end.
            (
                format!("{api}---\n{db}"),
                Edit::InsertAfter(Some("api"), &web1),
                format!("{api}---\n{web1}---\n{db}"),
            ),
            (
                format!("{api}---\n{db}"),
                Edit::InsertAfter(None, &web1),
                format!("{api}---\n{db}---\n{web1}"),
            ),
            (
                api.trim_end().to_string(),
                Edit::InsertAfter(None, &web1),
                format!("{}\n---\n{web1}", api.trim_end()),
            ),
        ];
        for (before, edit, after) in cases {
            check(&before, edit, &after);
        }
    }

    #[test]
    fn inserting_into_a_file_without_documents_replaces_it() {
        let web = doc("web", "1");
        for before in ["", "\n", "# nothing yet\n---\n"] {
            let mut documents = Documents::split(before);
            assert!(documents.is_empty(), "{before:?}");
            documents.insert_after(None, &web);
            assert_eq!(documents.render(), web);
        }
    }

    #[test]
    fn a_file_of_comments_and_markers_is_empty() {
        let web = doc("web", "1");
        for (text, empty) in [
            ("", true),
            ("---\n...\n", true),
            ("# a comment\n  \n---\n", true),
            (web.as_str(), false),
            ("x\n", false),
        ] {
            assert_eq!(Documents::split(text).is_empty(), empty, "{text:?}");
        }
        let mut documents = Documents::split(&format!("---\n{web}"));
        documents.remove(documents.find(&deployment("web")).unwrap());
        assert!(documents.is_empty());
    }

    #[test]
    fn fingerprints_ignore_formatting_but_not_content() {
        let web = deployment("web");
        let manifest = |replicas: &str, extra: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n{extra}spec:\n  \
                 replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    \
                 metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        \
                 - name: web\n          image: web:1\n"
            )
        };
        let base = fingerprint("a.yaml", &web, &manifest("2", ""));
        assert!(base.is_valid());
        assert_eq!(
            base,
            fingerprint("b.yaml", &web, &format!("# moved\n{}", manifest("2", "")))
        );
        assert_ne!(base, fingerprint("a.yaml", &web, &manifest("3", "")));
        assert_ne!(
            base,
            fingerprint("a.yaml", &web, &manifest("2", "  labels: {tier: web}\n"))
        );
        let invalid = fingerprint("a.yaml", &web, &manifest("two", ""));
        assert!(!invalid.is_valid());
        assert_ne!(invalid, fingerprint("a.yaml", &web, &manifest("three", "")));
    }
}
