//! ConfigMaps and Secrets, each on its own: their keys, values, type and
//! size. What pods read from them (a missing reference, the digests of what
//! they consume) is resolved once every object is known, in
//! `manifest::config`.
//!
//! A Secret's value is never put in a message: errors name its key only,
//! and its values are read without the helpers that quote what they found.

use std::collections::BTreeSet;

use base64::Engine as _;

use super::*;

/// A ConfigMap's top level: its keys are there, not under a `spec`.
pub(super) const CONFIG_MAP: Schema = Schema {
    known: &[
        "apiVersion",
        "kind",
        "metadata",
        "data",
        "binaryData",
        "immutable",
    ],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "spec",
        "a ConfigMap has no `spec`: its keys are in `data` (text) or `binaryData` (base64), at the top level",
    )],
};

/// A Secret's top level.
pub(super) const SECRET: Schema = Schema {
    known: &[
        "apiVersion",
        "kind",
        "metadata",
        "type",
        "data",
        "stringData",
        "immutable",
    ],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "spec",
        "a Secret has no `spec`: its keys are in `data`, at the top level",
    )],
};

/// Kubernetes' limit on the data of one ConfigMap or Secret (1 MiB).
pub(crate) const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The Secret types flotilla supports, as written.
const SECRET_TYPES: [(&str, SecretType); 3] = [
    ("Opaque", SecretType::Opaque),
    ("kubernetes.io/tls", SecretType::Tls),
    (
        "kubernetes.io/dockerconfigjson",
        SecretType::DockerConfigJson,
    ),
];

/// Base64 as Kubernetes reads `[]byte` fields (Go's standard encoding,
/// padded), which skips line breaks: a long value may be folded.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let joined: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
    base64::engine::general_purpose::STANDARD
        .decode(joined.trim_end())
        .ok()
}

impl Decoder<'_> {
    /// `kind: ConfigMap`: `data` (strings), `binaryData` (base64) and
    /// `immutable`, every key once in all.
    pub(super) fn config_map(&mut self, fields: &Fields, meta: ObjectMeta) -> ConfigMap {
        let file = self.file;
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut text_keys: BTreeMap<String, u32> = BTreeMap::new();
        let mut size = 0usize;
        let mut size_reported = false;
        for field in ["data", "binaryData"] {
            let Some(node) = fields.get(field) else {
                continue;
            };
            for (key_node, key, value) in self.data_entries(node, field) {
                let path = key_path(field, &key);
                let bytes = if field == "data" {
                    text_keys.insert(key.clone(), key_node.line);
                    match self.config_map_text(value, &path) {
                        Some(text) => text.into_bytes(),
                        None => continue,
                    }
                } else {
                    if let Some(line) = text_keys.get(&key) {
                        let diagnostic = self.error(
                            key_node,
                            &path,
                            format!(
                                "key `{key}` is in both `data` and `binaryData` (first at {file}:{line})"
                            ),
                        );
                        Self::hint(diagnostic, "keep each key in one of them");
                        continue;
                    }
                    let Some(text) = self.string(value, &path) else {
                        continue;
                    };
                    match decode_base64(&text) {
                        Some(bytes) => bytes,
                        None => {
                            let diagnostic = self.error(
                                value,
                                &path,
                                format!("the value of `{key}` is not valid base64"),
                            );
                            Self::hint(
                                diagnostic,
                                "`binaryData` holds base64 (`base64 -w0 FILE`); text goes in `data`",
                            );
                            continue;
                        }
                    }
                };
                // Kubernetes counts keys and values.
                size += key.len() + bytes.len();
                if size > MAX_DATA_BYTES && !size_reported {
                    size_reported = true;
                    self.too_large(value, &path, "ConfigMap", size);
                }
                data.insert(key, bytes);
            }
        }
        let immutable = self.immutable(fields);
        ConfigMap {
            meta,
            data,
            immutable,
        }
    }

    /// `kind: Secret`: `type`, `data` (sealed, or base64 in clear),
    /// `stringData` (in clear) and `immutable`. A value in clear is an
    /// error that names its key, but the Secret is still returned, opened,
    /// so that what reads it is checked too.
    pub(super) fn secret(&mut self, fields: &Fields, meta: ObjectMeta) -> Secret {
        let file = self.file;
        let secret_type = match fields.get("type") {
            Some(node) => self.secret_type(node).unwrap_or_default(),
            None => SecretType::Opaque,
        };
        let mut data: BTreeMap<String, SecretValue> = BTreeMap::new();
        // Every key written, its value valid or not, for the type's check.
        let mut declared: BTreeSet<String> = BTreeSet::new();
        let mut sealed = false;
        if let Some(node) = fields.get("data") {
            for (_, key, value) in self.data_entries(node, "data") {
                declared.insert(key.clone());
                let path = key_path("data", &key);
                let Some(text) = self.secret_text(value, &path) else {
                    continue;
                };
                if SealedText::looks_sealed(&text) {
                    match SealedText::parse(&text) {
                        Ok(sealed_text) => {
                            sealed = true;
                            data.insert(key, SecretValue::Sealed(sealed_text));
                        }
                        Err(reason) => {
                            let diagnostic = self.error(
                                value,
                                &path,
                                format!(
                                    "the value of `{key}` is not a valid sealed value: {reason}"
                                ),
                            );
                            Self::hint(
                                diagnostic,
                                format!(
                                    "sealed values are written by `flotilla secret seal {file}` (or `edit`); do not edit them by hand"
                                ),
                            );
                        }
                    }
                    continue;
                }
                let Some(bytes) = decode_base64(&text) else {
                    let diagnostic = self.error(
                        value,
                        &path,
                        format!("the value of `{key}` is neither sealed nor valid base64"),
                    );
                    Self::hint(
                        diagnostic,
                        format!(
                            "write the value in clear under `stringData`, then seal it: flotilla secret seal {file}"
                        ),
                    );
                    continue;
                };
                self.in_clear(value, &path, &key);
                data.insert(key, SecretValue::Opened(Sensitive::new(bytes)));
            }
        }
        if let Some(node) = fields.get("stringData") {
            if sealed {
                let diagnostic = self.error(
                    node,
                    "stringData",
                    "a sealed Secret must not have `stringData`",
                );
                Self::hint(
                    diagnostic,
                    format!("seal it before committing: flotilla secret seal {file}"),
                );
                self.tolerated_errors += 1;
            }
            for (_, key, value) in self.data_entries(node, "stringData") {
                declared.insert(key.clone());
                let path = key_path("stringData", &key);
                let Some(text) = self.secret_text(value, &path) else {
                    continue;
                };
                self.in_clear(value, &path, &key);
                // As in Kubernetes, `stringData` wins over `data`.
                data.insert(key, SecretValue::Opened(Sensitive::new(text.into_bytes())));
            }
        }
        // Kubernetes counts the values; a sealed value counts as its age
        // file, a little more than the value it holds.
        let size: usize = data
            .values()
            .map(|value| match value {
                SecretValue::Sealed(sealed) => sealed.age_file().len(),
                SecretValue::Opened(opened) => opened.expose().len(),
            })
            .sum();
        if size > MAX_DATA_BYTES {
            let at = fields.get("data").or(fields.get("stringData"));
            if let Some(at) = at {
                self.too_large(at, "data", "Secret", size);
            }
        }
        self.required_keys(fields, &secret_type, &declared);
        let immutable = self.immutable(fields);
        Secret {
            meta,
            secret_type,
            data,
            immutable,
        }
    }

    /// The entries of `data`, `binaryData` or `stringData`, each key
    /// checked by Kubernetes' rule: (key node, key, value node).
    fn data_entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
    ) -> Vec<(&'n Node, String, &'n Node)> {
        let Value::Mapping(entries) = &node.value else {
            let found = node.describe();
            self.error(node, path, format!("expected a mapping, found {found}"));
            return Vec::new();
        };
        let mut checked = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(key) = entry.key.as_scalar() else {
                self.error(&entry.key, path, "mapping keys must be strings");
                continue;
            };
            let key = key.text.clone();
            if let Err(reason) = names::config_key(&key) {
                self.error(
                    &entry.key,
                    &key_path(path, &key),
                    format!("invalid key `{key}`: {reason}"),
                );
                continue;
            }
            checked.push((&entry.key, key, &entry.value));
        }
        checked
    }

    /// A ConfigMap's `data` value: a string (a number or a boolean is an
    /// error with a hint to quote it, as kubectl refuses it); null is empty.
    fn config_map_text(&mut self, node: &Node, path: &str) -> Option<String> {
        if node.is_null() {
            return Some(String::new());
        }
        self.string(node, path)
    }

    /// A Secret's value as written, without quoting it in any message.
    fn secret_text(&mut self, node: &Node, path: &str) -> Option<String> {
        if node.is_null() {
            return Some(String::new());
        }
        match &node.value {
            Value::Scalar(scalar) if scalar.plain_type() == PlainType::String => {
                Some(scalar.text.clone())
            }
            _ => {
                let found = node.describe();
                let diagnostic =
                    self.error(node, path, format!("expected a string, found {found}"));
                if node.as_scalar().is_some() {
                    Self::hint(diagnostic, "quote it");
                }
                None
            }
        }
    }

    /// A value in clear in a Secret: an error naming its key (never its
    /// value) that keeps the Secret (see [`Decoder::tolerated_errors`]).
    fn in_clear(&mut self, node: &Node, path: &str, key: &str) {
        let file = self.file;
        let diagnostic = self.error(
            node,
            path,
            format!("the value of `{key}` is in clear: a Secret in the repository must be sealed"),
        );
        Self::hint(
            diagnostic,
            format!("seal it before committing: flotilla secret seal {file}"),
        );
        self.tolerated_errors += 1;
    }

    fn secret_type(&mut self, node: &Node) -> Option<SecretType> {
        let text = self.string(node, "type")?;
        if let Some((_, secret_type)) = SECRET_TYPES.iter().find(|(name, _)| *name == text) {
            return Some(secret_type.clone());
        }
        let names: Vec<&str> = SECRET_TYPES.iter().map(|(name, _)| *name).collect();
        let suggestion = names::did_you_mean(&text, &names);
        let diagnostic = self.error(
            node,
            "type",
            format!("Secret type `{text}` is not supported yet"),
        );
        let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
        let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
        let supported = format!("flotilla supports {}", names::listed(&quoted, "and"));
        Self::hint(
            diagnostic,
            match suggestion {
                Some(suggestion) => format!("did you mean `{suggestion}`? {supported}"),
                None => supported,
            },
        );
        None
    }

    /// The keys a Secret's type requires (Kubernetes' rule).
    fn required_keys(
        &mut self,
        fields: &Fields,
        secret_type: &SecretType,
        declared: &BTreeSet<String>,
    ) {
        let required: &[&str] = match secret_type {
            SecretType::Opaque => &[],
            SecretType::Tls => &["tls.crt", "tls.key"],
            SecretType::DockerConfigJson => &[".dockerconfigjson"],
        };
        let missing: Vec<String> = required
            .iter()
            .filter(|key| !declared.contains(**key))
            .map(|key| format!("`{key}`"))
            .collect();
        if missing.is_empty() {
            return;
        }
        let Some(at) = fields.get("type") else {
            return;
        };
        let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
        let what = if missing.len() == 1 { "key" } else { "keys" };
        let type_name = secret_type.as_str();
        let diagnostic = self.error(
            at,
            "type",
            format!(
                "a `{type_name}` Secret needs the {what} {} in `data`",
                names::listed(&missing, "and")
            ),
        );
        Self::hint(
            diagnostic,
            match secret_type {
                SecretType::Tls => "`tls.crt` holds the certificate chain and `tls.key` the private key, both PEM",
                _ => "`.dockerconfigjson` holds Docker's `config.json` (`auths`), as `docker login` writes it",
            },
        );
    }

    fn immutable(&mut self, fields: &Fields) -> bool {
        fields
            .get("immutable")
            .and_then(|node| self.boolean(node, "immutable"))
            .unwrap_or(false)
    }

    fn too_large(&mut self, node: &Node, path: &str, kind: &str, size: usize) {
        let diagnostic = self.error(
            node,
            path,
            format!(
                "the {kind}'s data is larger than Kubernetes' limit of 1 MiB ({size} bytes, at most {MAX_DATA_BYTES})"
            ),
        );
        Self::hint(
            diagnostic,
            "split it into several objects, or put large files in the image",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml;

    const FILE: &str = "config.yaml";

    fn decode(text: &str) -> DecodedDocument {
        let parsed = yaml::parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.documents.len(), 1);
        decode_document(FILE, &parsed.documents[0].root)
    }

    fn rendered(document: &DecodedDocument) -> Vec<String> {
        document
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The diagnostics of a ConfigMap with `body` at its top level.
    fn config_map_errors(body: &str) -> Vec<String> {
        let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\n{body}");
        rendered(&decode(&text))
    }

    fn config_map(body: &str) -> ConfigMap {
        let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\n{body}");
        let document = decode(&text);
        assert_eq!(rendered(&document), Vec::<String>::new());
        match document.object {
            Some(Decoded::ConfigMap(config_map)) => *config_map,
            other => panic!("not a ConfigMap: {other:?}"),
        }
    }

    fn secret_document(body: &str) -> DecodedDocument {
        decode(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\n{body}"
        ))
    }

    fn secret(body: &str) -> Secret {
        let document = secret_document(body);
        assert_eq!(rendered(&document), Vec::<String>::new());
        match document.object {
            Some(Decoded::Secret(secret)) => *secret,
            other => panic!("not a Secret: {other:?}"),
        }
    }

    /// The first error's message and field path, for a table of cases.
    fn first(errors: &[String]) -> &str {
        errors.first().map_or("(no error)", String::as_str)
    }

    /// A well-formed sealed value (an age header, not a real age file).
    fn sealed(version: &str) -> String {
        let age = base64::engine::general_purpose::STANDARD
            .encode(b"age-encryption.org/v1\n-> X25519 x\n--- y\nciphertext");
        format!("AGE[{version}:{age}]")
    }

    #[test]
    fn config_map_data_and_binary_data() {
        let config_map = config_map(
            "data:\n  app.properties: |\n    a=1\n  mode: \"8080\"\n  empty:\nbinaryData:\n  logo.png: iVBORw==\nimmutable: true\n",
        );
        assert_eq!(config_map.data["app.properties"], b"a=1\n");
        assert_eq!(config_map.data["mode"], b"8080");
        assert_eq!(config_map.data["empty"], b"");
        assert_eq!(config_map.data["logo.png"], [0x89, b'P', b'N', b'G']);
        assert!(config_map.immutable);
        assert!(!self::config_map("data: {}\n").immutable);
        // A folded base64 value: Kubernetes skips the line breaks.
        let folded = self::config_map("binaryData:\n  k: |\n    aGVs\n    bG8=\n");
        assert_eq!(folded.data["k"], b"hello");
    }

    #[test]
    fn config_map_errors_name_the_key() {
        let cases = [
            (
                "data:\n  port: 8080\n",
                "error: expected a string, found an integer `8080`\n  --> config.yaml:5:9 (ConfigMap default/app: data.port)\n  = hint: quote it: \"8080\"",
            ),
            (
                "data:\n  debug: true\n",
                "error: expected a string, found a boolean `true`\n  --> config.yaml:5:10 (ConfigMap default/app: data.debug)\n  = hint: quote it: \"true\"",
            ),
            (
                "data:\n  a/b: x\n",
                "error: invalid key `a/b`: must consist of letters, digits, `-`, `_` and `.`\n  --> config.yaml:5:3 (ConfigMap default/app: data[\"a/b\"])",
            ),
            (
                "data:\n  ..data: x\n",
                "error: invalid key `..data`: must not start with `..`\n  --> config.yaml:5:3 (ConfigMap default/app: data[\"..data\"])",
            ),
            (
                "data:\n  k: x\nbinaryData:\n  k: eA==\n",
                "error: key `k` is in both `data` and `binaryData` (first at config.yaml:5)\n  --> config.yaml:7:3 (ConfigMap default/app: binaryData.k)\n  = hint: keep each key in one of them",
            ),
            (
                "binaryData:\n  k: not base64!\n",
                "error: the value of `k` is not valid base64\n  --> config.yaml:5:6 (ConfigMap default/app: binaryData.k)\n  = hint: `binaryData` holds base64 (`base64 -w0 FILE`); text goes in `data`",
            ),
            (
                "data: [a]\n",
                "error: expected a mapping, found a sequence\n  --> config.yaml:4:7 (ConfigMap default/app: data)",
            ),
            (
                "immutable: yes\n",
                "error: expected a boolean, found `yes`\n  --> config.yaml:4:12 (ConfigMap default/app: immutable)\n  = hint: write `true` or `false`",
            ),
            (
                "spec:\n  data: {}\n",
                "error: unknown field `spec`\n  --> config.yaml:4:1 (ConfigMap default/app: spec)\n  = hint: a ConfigMap has no `spec`: its keys are in `data` (text) or `binaryData` (base64), at the top level",
            ),
        ];
        for (body, expected) in cases {
            let errors = config_map_errors(body);
            assert_eq!(first(&errors), expected, "{body}");
            assert_eq!(errors.len(), 1, "{body}: {errors:#?}");
        }
    }

    #[test]
    fn data_larger_than_one_mebibyte_is_an_error() {
        let half = "x".repeat(MAX_DATA_BYTES / 2);
        let fits = format!(
            "data:\n  a: {}\n  b: {}\n",
            &half[..half.len() - 1],
            &half[..half.len() - 1]
        );
        assert_eq!(config_map_errors(&fits), Vec::<String>::new());
        let errors = config_map_errors(&format!("data:\n  a: {half}\n  b: {half}\n"));
        assert_eq!(
            first(&errors),
            "error: the ConfigMap's data is larger than Kubernetes' limit of 1 MiB (1048578 bytes, at most 1048576)\n  --> config.yaml:6:6 (ConfigMap default/app: data.b)\n  = hint: split it into several objects, or put large files in the image"
        );
        let errors = rendered(&secret_document(&format!(
            "stringData:\n  a: {half}\n  b: {half}x\n"
        )));
        assert!(
            errors.iter().any(|e| e.starts_with(
                "error: the Secret's data is larger than Kubernetes' limit of 1 MiB (1048577 bytes"
            )),
            "{errors:#?}"
        );
    }

    #[test]
    fn sealed_secret_of_every_type() {
        let version = "0123456789abcdef";
        let opaque = secret(&format!("data:\n  password: {}\n", sealed(version)));
        assert_eq!(opaque.secret_type, SecretType::Opaque);
        match &opaque.data["password"] {
            SecretValue::Sealed(sealed) => assert_eq!(sealed.version, version),
            other => panic!("{other:?}"),
        }
        assert!(!opaque.immutable);
        let tls = secret(&format!(
            "type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\nimmutable: true\n",
            sealed(version),
            sealed("fedcba9876543210")
        ));
        assert_eq!(tls.secret_type, SecretType::Tls);
        assert_eq!(tls.data.len(), 2);
        assert!(tls.immutable);
        let docker = secret(&format!(
            "type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
            sealed(version)
        ));
        assert_eq!(docker.secret_type, SecretType::DockerConfigJson);
    }

    /// A value in clear is an error at its key, never showing the value,
    /// and the Secret is kept, opened, for the checks of what reads it.
    #[test]
    fn values_in_clear_are_errors_that_keep_the_secret() {
        let document = secret_document(
            "data:\n  password: aHVudGVyMg==\nstringData:\n  token: s3cr3t-t0ken\n  port: \"5432\"\n",
        );
        let errors = rendered(&document);
        assert_eq!(
            errors,
            [
                "error: the value of `password` is in clear: a Secret in the repository must be sealed\n  --> config.yaml:5:13 (Secret default/db: data.password)\n  = hint: seal it before committing: flotilla secret seal config.yaml",
                "error: the value of `token` is in clear: a Secret in the repository must be sealed\n  --> config.yaml:7:10 (Secret default/db: stringData.token)\n  = hint: seal it before committing: flotilla secret seal config.yaml",
                "error: the value of `port` is in clear: a Secret in the repository must be sealed\n  --> config.yaml:8:9 (Secret default/db: stringData.port)\n  = hint: seal it before committing: flotilla secret seal config.yaml",
            ]
        );
        for error in &errors {
            assert!(!error.contains("hunter2") && !error.contains("aHVudGVyMg"));
            assert!(!error.contains("s3cr3t") && !error.contains("5432"));
        }
        let Some(Decoded::Secret(secret)) = document.object else {
            panic!("the Secret is kept");
        };
        assert_eq!(secret.opened("password").unwrap().expose(), b"hunter2");
        assert_eq!(secret.opened("token").unwrap().expose(), b"s3cr3t-t0ken");
        assert_eq!(secret.opened("port").unwrap().expose(), b"5432");
        // `stringData` wins over `data`, as in Kubernetes.
        let document = secret_document("data:\n  k: YQ==\nstringData:\n  k: b\n");
        let Some(Decoded::Secret(secret)) = document.object else {
            panic!("the Secret is kept");
        };
        assert_eq!(secret.opened("k").unwrap().expose(), b"b");
    }

    /// Any other error drops the Secret, like any object.
    #[test]
    fn other_errors_drop_the_secret() {
        let document = secret_document("stringData:\n  k: v\nimmutable: maybe\n");
        assert_eq!(document.diagnostics.len(), 2);
        assert!(document.object.is_none());
    }

    #[test]
    fn secret_errors_never_show_a_value() {
        let version = "0123456789abcdef";
        let cases = [
            (
                "data:\n  k: AGE[0123:abc]\n".to_string(),
                "error: the value of `k` is not a valid sealed value: the version of a sealed value is 16 lowercase hex digits\n  --> config.yaml:5:6 (Secret default/db: data.k)\n  = hint: sealed values are written by `flotilla secret seal config.yaml` (or `edit`); do not edit them by hand",
            ),
            (
                "data:\n  k: AGE[0123456789abcdef:aGk=]\n".to_string(),
                "error: the value of `k` is not a valid sealed value: the sealed part is not an age file\n  --> config.yaml:5:6 (Secret default/db: data.k)\n  = hint: sealed values are written by `flotilla secret seal config.yaml` (or `edit`); do not edit them by hand",
            ),
            (
                "data:\n  k: hunter2!\n".to_string(),
                "error: the value of `k` is neither sealed nor valid base64\n  --> config.yaml:5:6 (Secret default/db: data.k)\n  = hint: write the value in clear under `stringData`, then seal it: flotilla secret seal config.yaml",
            ),
            (
                "stringData:\n  pin: 1234\n".to_string(),
                "error: expected a string, found an integer\n  --> config.yaml:5:8 (Secret default/db: stringData.pin)\n  = hint: quote it",
            ),
            (
                format!("data:\n  k: {}\nstringData:\n  j: v\n", sealed(version)),
                "error: a sealed Secret must not have `stringData`\n  --> config.yaml:7:3 (Secret default/db: stringData)\n  = hint: seal it before committing: flotilla secret seal config.yaml",
            ),
            (
                "type: kubernetes.io/basic-auth\n".to_string(),
                "error: Secret type `kubernetes.io/basic-auth` is not supported yet\n  --> config.yaml:4:7 (Secret default/db: type)\n  = hint: flotilla supports `Opaque`, `kubernetes.io/tls` and `kubernetes.io/dockerconfigjson`",
            ),
            (
                "type: opaque\n".to_string(),
                "error: Secret type `opaque` is not supported yet\n  --> config.yaml:4:7 (Secret default/db: type)\n  = hint: did you mean `Opaque`? flotilla supports `Opaque`, `kubernetes.io/tls` and `kubernetes.io/dockerconfigjson`",
            ),
            (
                format!("type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n", sealed(version)),
                "error: a `kubernetes.io/tls` Secret needs the key `tls.key` in `data`\n  --> config.yaml:4:7 (Secret default/db: type)\n  = hint: `tls.crt` holds the certificate chain and `tls.key` the private key, both PEM",
            ),
            (
                "type: kubernetes.io/dockerconfigjson\n".to_string(),
                "error: a `kubernetes.io/dockerconfigjson` Secret needs the key `.dockerconfigjson` in `data`\n  --> config.yaml:4:7 (Secret default/db: type)\n  = hint: `.dockerconfigjson` holds Docker's `config.json` (`auths`), as `docker login` writes it",
            ),
        ];
        for (body, expected) in cases {
            let errors = rendered(&secret_document(&body));
            assert_eq!(first(&errors), expected, "{body}");
        }
        let errors = rendered(&secret_document("type: kubernetes.io/tls\n"));
        assert!(
            first(&errors).starts_with(
                "error: a `kubernetes.io/tls` Secret needs the keys `tls.crt` and `tls.key` in `data`"
            ),
            "{errors:#?}"
        );
    }
}
