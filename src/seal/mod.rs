//! Secret values sealed in Git with age: sealing a value for the
//! repository's recipients, opening it with an identity, and the Secret
//! documents of a manifest file rewritten with sealed values.
//!
//! Part of the shell: it holds keys and reads identity files, so the pure
//! core never sees a key. `manifest` reads a sealed value (`SealedText`)
//! and a revision depends on its version only; this module is the one
//! place that encrypts or decrypts. It never prints and never logs a value:
//! opened values are `Sensitive`, and no error message quotes one.
//!
//! `keys.rs`: recipients, identities (an `Unseal` for
//! `DesiredState::open_secrets`), seal and open; `secret_file.rs`: a file's
//! Secret documents read and rewritten in place; `editable.rs`: the form
//! `flotilla secret edit` opens in the editor.

pub mod editable;
pub mod keys;
pub mod secret_file;

pub use keys::{generate, new_version, seal, Identities, KeyError, Recipients, IDENTITY_ENV};
pub use secret_file::{NewValue, SecretDocument, SecretFile, SecretFileError, Written};

use crate::manifest::model::{ObjectKey, SourceLocation, Unseal};
use crate::manifest::{Diagnostic, SourceFile};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Each problem on its line, with its file:line:col.
    #[error("{}", render(.0))]
    File(Vec<SecretFileError>),
    #[error(transparent)]
    Key(#[from] KeyError),
}

fn render(errors: &[SecretFileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl From<SecretFileError> for SealError {
    fn from(error: SecretFileError) -> Self {
        SealError::File(vec![error])
    }
}

impl From<Vec<SecretFileError>> for SealError {
    fn from(errors: Vec<SecretFileError>) -> Self {
        SealError::File(errors)
    }
}

/// One Secret of a file and the keys an operation sealed in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedKeys {
    pub secret: ObjectKey,
    pub keys: Vec<String>,
}

/// `file` with every value in clear of every Secret sealed for
/// `recipients` under a new version (`stringData` moved to `data`), and
/// what was sealed; `None` when there was nothing to seal.
pub fn seal_clear_values(
    file: &SourceFile,
    recipients: &Recipients,
) -> Result<Option<(String, Vec<SealedKeys>)>, SealError> {
    let mut secrets = SecretFile::read(file)?;
    let mut sealed = Vec::new();
    for index in 0..secrets.secrets.len() {
        let secret = &secrets.secrets[index];
        if secret.clear_keys().is_empty() {
            continue;
        }
        let mut values = Vec::new();
        let mut keys = Vec::new();
        for written in &secret.values {
            let value = match &written.value {
                Written::Sealed(text) => NewValue::Unchanged(text.clone()),
                Written::Clear(value) => {
                    keys.push(written.key.clone());
                    NewValue::Sealed(seal(value.expose(), recipients, &new_version())?)
                }
            };
            values.push((written.key.clone(), value));
        }
        sealed.push(SealedKeys {
            secret: secret.secret.clone(),
            keys,
        });
        secrets.set_values(index, &values)?;
    }
    Ok((!sealed.is_empty()).then(|| (secrets.text(), sealed)))
}

/// `file` with every value of every Secret sealed again for `recipients`
/// under its own version (so no pod rolls), and how many values of how
/// many Secrets; `None` when the file has no Secret. Every value must be
/// sealed and open with `unseal`; every one that does not is reported.
pub fn rekey(
    file: &SourceFile,
    unseal: &dyn Unseal,
    recipients: &Recipients,
) -> Result<Option<(String, Vec<SealedKeys>)>, SealError> {
    let mut secrets = SecretFile::read(file)?;
    if secrets.secrets.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut rekeyed = Vec::new();
    let mut new_values = Vec::new();
    for secret in &secrets.secrets {
        let mut values = Vec::new();
        for written in &secret.values {
            let problem = |message: String| SecretFileError {
                location: written.location.clone(),
                secret: secret.secret.clone(),
                message,
            };
            match &written.value {
                Written::Clear(_) => problems.push(problem(format!(
                    "`{}` is in clear: seal it first (`flotilla secret seal {}`)",
                    written.key, file.path
                ))),
                Written::Sealed(sealed) => match unseal.unseal(sealed) {
                    Ok(value) => values.push((
                        written.key.clone(),
                        NewValue::Sealed(seal(value.expose(), recipients, &sealed.version)?),
                    )),
                    Err(reason) => problems.push(problem(format!(
                        "`{}` does not open: {reason}",
                        written.key
                    ))),
                },
            }
        }
        rekeyed.push(SealedKeys {
            secret: secret.secret.clone(),
            keys: values.iter().map(|(k, _)| k.clone()).collect(),
        });
        new_values.push(values);
    }
    if !problems.is_empty() {
        return Err(SealError::File(problems));
    }
    for (index, values) in new_values.iter().enumerate() {
        secrets.set_values(index, values)?;
    }
    Ok(Some((secrets.text(), rekeyed)))
}

/// A sealed value that does not open, and why (never the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unopened {
    pub location: SourceLocation,
    pub secret: ObjectKey,
    pub key: String,
    pub reason: String,
}

/// What [`open_every_value`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// The first Secret, and where it is declared.
    pub first: Option<(ObjectKey, SourceLocation)>,
    pub secrets: usize,
    pub values: usize,
    pub unopened: Vec<Unopened>,
}

/// Opens every sealed value of every Secret of `files` with `unseal`
/// (`None`: no identity, only counted). A Secret that cannot be read is
/// left out: validation reports it, with the values in clear.
pub fn open_every_value(files: &[SourceFile], unseal: Option<&dyn Unseal>) -> Opened {
    let mut opened = Opened::default();
    for file in files {
        // Cheap test first: most files hold no Secret.
        if !file.text.contains("Secret") {
            continue;
        }
        let Ok(secrets) = SecretFile::read(file) else {
            continue;
        };
        for secret in &secrets.secrets {
            opened.secrets += 1;
            opened
                .first
                .get_or_insert_with(|| (secret.secret.clone(), secret.location.clone()));
            for written in &secret.values {
                let Written::Sealed(sealed) = &written.value else {
                    continue;
                };
                opened.values += 1;
                if let Some(Err(reason)) = unseal.map(|u| u.unseal(sealed)) {
                    opened.unopened.push(Unopened {
                        location: written.location.clone(),
                        secret: secret.secret.clone(),
                        key: written.key.clone(),
                        reason,
                    });
                }
            }
        }
    }
    opened
}

/// The errors that make a pushed revision undeployable for want of a key:
/// every sealed value of `files` that `unseal` (the leader's identity)
/// does not open, or, when the leader has no identity, its Secrets.
pub fn unopened_diagnostics(files: &[SourceFile], unseal: Option<&dyn Unseal>) -> Vec<Diagnostic> {
    let opened = open_every_value(files, unseal);
    if unseal.is_none() {
        return opened
            .first
            .map(|(secret, location)| {
                Diagnostic::error(
                    format!(
                        "the leader has no age identity to open the values of the {} Secret{} of this revision",
                        opened.secrets,
                        if opened.secrets == 1 { "" } else { "s" }
                    ),
                    location,
                )
                .with_object(secret.to_string())
                .with_hint(
                    "run the leader with `flotilla leader --age-identity FILE` (an identity among \
                     the Cluster object's spec.secrets.recipients), then push again",
                )
            })
            .into_iter()
            .collect();
    }
    opened
        .unopened
        .into_iter()
        .map(|unopened| {
            Diagnostic::error(
                format!("`{}` cannot be opened: {}", unopened.key, unopened.reason),
                unopened.location,
            )
            .with_object(unopened.secret.to_string())
            .with_field_path(format!("data.{}", unopened.key))
            .with_hint(
                "re-seal it for the leader: `flotilla secret rekey` with an identity that \
                 can read it; and check that the leader's identity is among the Cluster \
                 object's spec.secrets.recipients",
            )
        })
        .collect()
}
