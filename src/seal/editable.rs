//! The form `flotilla secret edit` puts in the editor: one Secret with its
//! values in clear (`stringData` for text, `data` in base64 for the rest),
//! and the reading of it back after the edit. Only the values may change.

use base64::Engine as _;
use serde::Serialize;

use crate::manifest::model::{ObjectKey, Sensitive};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EditableSecret<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "serde_yaml::Mapping::is_empty")]
    string_data: serde_yaml::Mapping,
    #[serde(skip_serializing_if = "serde_yaml::Mapping::is_empty")]
    data: serde_yaml::Mapping,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

/// The text of the editable form of `secret` (written in `file`) with
/// `values`, in that order.
pub fn editable_text(secret: &ObjectKey, file: &str, values: &[(String, Sensitive)]) -> Sensitive {
    let mut string_data = serde_yaml::Mapping::new();
    let mut data = serde_yaml::Mapping::new();
    for (key, value) in values {
        match std::str::from_utf8(value.expose()) {
            Ok(text) => string_data.insert(key.as_str().into(), text.into()),
            Err(_) => data.insert(
                key.as_str().into(),
                base64::engine::general_purpose::STANDARD
                    .encode(value.expose())
                    .into(),
            ),
        };
    }
    let document = EditableSecret {
        api_version: "v1",
        kind: "Secret",
        metadata: Metadata {
            name: &secret.name,
            namespace: &secret.namespace,
        },
        string_data,
        data,
    };
    let yaml = serde_yaml::to_string(&document).expect("an editable Secret always serializes");
    let header = format!(
        "# {secret} of {file}, opened for editing.\n\
         # Change, add or remove values under stringData (text) or data (base64,\n\
         # for values that are not text). Save and quit to seal what changed;\n\
         # quit without saving to change nothing. This file is removed afterwards.\n"
    );
    Sensitive::new(format!("{header}{yaml}").into_bytes())
}

/// The values of the edited form, in order: `stringData`'s, then `data`'s.
/// An error never quotes a value.
pub fn read_edited(text: &[u8], secret: &ObjectKey) -> Result<Vec<(String, Sensitive)>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the file is not UTF-8 text".to_string())?;
    let document: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        // serde_yaml's message may quote the text it failed on: only its place.
        match e.location() {
            Some(at) => format!("invalid YAML at line {}, column {}", at.line(), at.column()),
            None => "invalid YAML".to_string(),
        }
    })?;
    let serde_yaml::Value::Mapping(fields) = document else {
        return Err("the file is not a Secret (a mapping of fields)".to_string());
    };
    let mut values: Vec<(String, Sensitive)> = Vec::new();
    for (field, value) in &fields {
        let field = field.as_str().unwrap_or("");
        match field {
            "apiVersion" if value.as_str() == Some("v1") => {}
            "kind" if value.as_str() == Some("Secret") => {}
            "metadata" if same_metadata(value, secret) => {}
            "stringData" | "data" => read_section(field, value, &mut values)?,
            "apiVersion" | "kind" | "metadata" => {
                return Err(format!(
                    "`{field}` was changed: only the values can be edited here (edit the file itself for the rest)"
                ))
            }
            other => {
                return Err(format!(
                    "unexpected field `{other}`: only stringData and data can be edited here"
                ))
            }
        }
    }
    Ok(values)
}

fn same_metadata(value: &serde_yaml::Value, secret: &ObjectKey) -> bool {
    let field = |name: &str| value.get(name).and_then(serde_yaml::Value::as_str);
    value.as_mapping().is_some_and(|m| m.len() == 2)
        && field("name") == Some(secret.name.as_str())
        && field("namespace") == Some(secret.namespace.as_str())
}

fn read_section(
    section: &str,
    value: &serde_yaml::Value,
    values: &mut Vec<(String, Sensitive)>,
) -> Result<(), String> {
    let entries = match value {
        serde_yaml::Value::Null => return Ok(()),
        serde_yaml::Value::Mapping(entries) => entries,
        _ => return Err(format!("`{section}` is not a mapping of keys to values")),
    };
    for (key, value) in entries {
        let Some(key) = key.as_str() else {
            return Err(format!("a key of `{section}` is not a string"));
        };
        let Some(text) = value.as_str() else {
            return Err(format!(
                "`{section}.{key}` is not a string (quote it: \"...\")"
            ));
        };
        let bytes = if section == "data" {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| format!("`data.{key}` is not base64 (put text under stringData)"))?
        } else {
            text.as_bytes().to_vec()
        };
        if values.iter().any(|(k, _)| k == key) {
            return Err(format!("key `{key}` is in both stringData and data"));
        }
        values.push((key.to_string(), Sensitive::new(bytes)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::Kind;

    fn db() -> ObjectKey {
        ObjectKey {
            kind: Kind::Secret,
            namespace: "default".to_string(),
            name: "db".to_string(),
        }
    }

    #[test]
    fn the_editable_form_reads_back_as_its_values() {
        let values = vec![
            ("password".to_string(), Sensitive::new(b"hunter2".to_vec())),
            (
                "tls.key".to_string(),
                Sensitive::new(b"-----BEGIN-----\nabc\n".to_vec()),
            ),
            ("binary".to_string(), Sensitive::new(vec![0xff, 0x00, 0x01])),
            ("port".to_string(), Sensitive::new(b"5432".to_vec())),
        ];
        let text = editable_text(&db(), "apps/db.yaml", &values);
        let shown = std::str::from_utf8(text.expose()).unwrap();
        assert!(
            shown.starts_with("# Secret default/db of apps/db.yaml, opened for editing."),
            "{shown}"
        );
        assert!(
            shown.contains("stringData:\n  password: hunter2\n"),
            "{shown}"
        );
        assert!(shown.contains("data:\n  binary: /wAB\n"), "{shown}");
        let read = read_edited(text.expose(), &db()).unwrap();
        let expected = vec![
            values[0].clone(),
            values[1].clone(),
            values[3].clone(),
            values[2].clone(),
        ];
        assert_eq!(read, expected);
    }

    #[test]
    fn only_values_may_change() {
        let check = |text: &str, expected: &str| {
            let error = read_edited(text.as_bytes(), &db()).unwrap_err();
            assert_eq!(error, expected);
        };
        let head = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\n";
        check(
            &format!("{head}immutable: true\n"),
            "unexpected field `immutable`: only stringData and data can be edited here",
        );
        check(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: other\n  namespace: default\n",
            "`metadata` was changed: only the values can be edited here (edit the file itself for the rest)",
        );
        check(
            &format!("{head}stringData:\n  port: 5432\n"),
            "`stringData.port` is not a string (quote it: \"...\")",
        );
        check(
            &format!("{head}data:\n  k: secret-value!\n"),
            "`data.k` is not base64 (put text under stringData)",
        );
        check(
            &format!("{head}stringData:\n  k: a\ndata:\n  k: YQ==\n"),
            "key `k` is in both stringData and data",
        );
        check(
            &format!("{head}stringData: [\n"),
            "invalid YAML at line 7, column 1",
        );
        assert_eq!(read_edited(head.as_bytes(), &db()).unwrap(), vec![]);
    }
}
