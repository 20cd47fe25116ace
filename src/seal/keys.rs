//! age keys: the recipients values are sealed for, the identities that
//! open them, and the two operations (seal one value, open one value).
//!
//! Only X25519 keys (`age1...` recipients, `AGE-SECRET-KEY-1...`
//! identities): no passphrases, no SSH keys, no plugins, so opening a
//! value never runs a program or asks anyone anything.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;

use crate::manifest::model::{SealedText, Sensitive, Unseal};

/// The environment variable naming an identity file, when no
/// `--age-identity` is given.
pub const IDENTITY_ENV: &str = "FLOTILLA_AGE_IDENTITY";

/// Opened values kept by [`Identities`], at most: beyond it the cache starts
/// again (a leader holds far fewer; this only bounds a pathological history).
const CACHED_VALUES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("age identity file {path} does not exist")]
    IdentityMissing { path: PathBuf },
    #[error("age identity file {path} cannot be read: permission denied")]
    IdentityNotReadable { path: PathBuf },
    #[error(
        "age identity file {path} may be read by any user (mode {mode:04o}); \
         make it private: chmod 600 {path}"
    )]
    IdentityWorldReadable { path: PathBuf, mode: u32 },
    #[error("age identity file {path}: {source}")]
    IdentityIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The line's text is never quoted: it may be a key.
    #[error(
        "age identity file {path}:{line}: not an age X25519 identity \
         (each line is `AGE-SECRET-KEY-1...`, a `#` comment or blank)"
    )]
    NotAnIdentity { path: PathBuf, line: usize },
    #[error("age identity file {path} holds no identity")]
    NoIdentity { path: PathBuf },
    #[error(
        "`{text}` is not an age X25519 recipient (`age1...`, as `flotilla secret keygen` prints)"
    )]
    NotARecipient { text: String },
    #[error("sealing a value: {0}")]
    Seal(String),
}

/// A random version of a sealed value: 16 lowercase hex digits.
pub fn new_version() -> String {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("the operating system provides random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The recipients a value is sealed for, parsed from their `age1...` text.
#[derive(Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    /// Parses `texts` (the Cluster object's `spec.secrets.recipients`);
    /// an empty list is allowed here, refused by whoever needs one.
    pub fn parse(texts: &[String]) -> Result<Recipients, KeyError> {
        texts
            .iter()
            .map(|text| {
                text.trim()
                    .parse::<age::x25519::Recipient>()
                    .map_err(|_| KeyError::NotARecipient { text: text.clone() })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Recipients)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Seals `value` for `recipients` under `version` (a new one from
/// [`new_version`], or the value's own when only the recipients change).
pub fn seal(value: &[u8], recipients: &Recipients, version: &str) -> Result<SealedText, KeyError> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| KeyError::Seal(e.to_string()))?;
    let mut file = Vec::with_capacity(value.len() + 256);
    let mut writer = encryptor
        .wrap_output(&mut file)
        .map_err(|e| KeyError::Seal(e.to_string()))?;
    writer
        .write_all(value)
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| KeyError::Seal(e.to_string()))?;
    Ok(SealedText {
        version: version.to_string(),
        ciphertext: base64::engine::general_purpose::STANDARD.encode(&file),
    })
}

/// A new identity: the text of its identity file and its recipient.
pub fn generate(created: &str) -> (Sensitive, String) {
    use age::secrecy::ExposeSecret as _;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    (Sensitive::new(text.into_bytes()), recipient)
}

/// The identities of one age identity file, which open sealed values.
/// Values opened once are kept, by their ciphertext, so the leader opening
/// every value at every reconcile does the X25519 work once per value.
pub struct Identities {
    path: PathBuf,
    keys: Vec<age::x25519::Identity>,
    opened: Mutex<HashMap<String, Sensitive>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identities {{ path: {}, {} keys }}",
            self.path.display(),
            self.keys.len()
        )
    }
}

impl Identities {
    /// Reads the identity file at `path` (made absolute): `AGE-SECRET-KEY-1`
    /// lines, `#` comments and blank lines; at least one key. A file any
    /// user may read is refused, as ssh refuses such a private key.
    pub fn load(path: &Path) -> Result<Identities, KeyError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let io_error = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => KeyError::IdentityMissing { path: path.clone() },
            std::io::ErrorKind::PermissionDenied => {
                KeyError::IdentityNotReadable { path: path.clone() }
            }
            _ => KeyError::IdentityIo {
                path: path.clone(),
                source,
            },
        };
        let mut file = std::fs::File::open(&path).map_err(io_error)?;
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            file.metadata().map_err(io_error)?.permissions().mode()
        };
        if mode & 0o007 != 0 {
            return Err(KeyError::IdentityWorldReadable {
                path,
                mode: mode & 0o7777,
            });
        }
        // An identity file is a few lines; a large one is not one.
        let mut text = String::new();
        (&mut file)
            .take(1024 * 1024)
            .read_to_string(&mut text)
            .map_err(|_| KeyError::NotAnIdentity {
                path: path.clone(),
                line: 1,
            })?;
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key =
                line.parse::<age::x25519::Identity>()
                    .map_err(|_| KeyError::NotAnIdentity {
                        path: path.clone(),
                        line: index + 1,
                    })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::NoIdentity { path });
        }
        Ok(Identities {
            path,
            keys,
            opened: Mutex::new(HashMap::new()),
        })
    }

    /// The absolute path of the file the identities were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recipient of each identity, as `age1...`.
    pub fn recipients(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    fn open(&self, sealed: &SealedText) -> Result<Sensitive, String> {
        let file = sealed.age_file();
        let decryptor = age::Decryptor::new_buffered(file.as_slice())
            .map_err(|e| format!("not a readable age file ({e})"))?;
        let mut reader = decryptor
            .decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => format!(
                    "no identity of {} is among the recipients it is sealed for",
                    self.path.display()
                ),
                other => format!("it does not open ({other})"),
            })?;
        let mut value = Vec::new();
        reader
            .read_to_end(&mut value)
            .map_err(|_| "its sealed content is damaged (it fails authentication)".to_string())?;
        Ok(Sensitive::new(value))
    }
}

impl Unseal for Identities {
    fn unseal(&self, sealed: &SealedText) -> Result<Sensitive, String> {
        if let Some(value) = self
            .opened
            .lock()
            .expect("never poisoned")
            .get(&sealed.ciphertext)
        {
            return Ok(value.clone());
        }
        let value = self.open(sealed)?;
        let mut opened = self.opened.lock().expect("never poisoned");
        if opened.len() >= CACHED_VALUES {
            opened.clear();
        }
        opened.insert(sealed.ciphertext.clone(), value.clone());
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("key.txt");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn new_identity(dir: &Path) -> (Identities, Recipients) {
        let (text, recipient) = generate("now");
        let path = identity_file(dir, std::str::from_utf8(text.expose()).unwrap(), 0o600);
        (
            Identities::load(&path).unwrap(),
            Recipients::parse(&[recipient]).unwrap(),
        )
    }

    #[test]
    fn a_sealed_value_opens_with_any_recipients_identity_and_keeps_its_version() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (alice, alice_recipient) = new_identity(dir_a.path());
        let (bob, bob_recipient) = new_identity(dir_b.path());
        let both = Recipients(
            alice_recipient
                .0
                .iter()
                .chain(&bob_recipient.0)
                .cloned()
                .collect(),
        );
        let version = new_version();
        let sealed = seal(b"hunter2\n\x00bytes", &both, &version).unwrap();
        assert_eq!(sealed.version, version);
        // What is written parses back as a sealed value.
        let text = sealed.to_manifest_text();
        assert_eq!(SealedText::parse(&text).unwrap(), sealed);
        for identities in [&alice, &bob] {
            assert_eq!(
                identities.unseal(&sealed).unwrap().expose(),
                b"hunter2\n\x00bytes"
            );
        }
        // Sealing is randomised: the same value twice gives two texts.
        assert_ne!(
            seal(b"x", &both, &version).unwrap(),
            seal(b"x", &both, &version).unwrap()
        );
    }

    #[test]
    fn an_identity_not_among_the_recipients_is_told_so_without_the_value() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_, alice) = new_identity(dir_a.path());
        let (bob, _) = new_identity(dir_b.path());
        let sealed = seal(b"planted-value", &alice, &new_version()).unwrap();
        let error = bob.unseal(&sealed).unwrap_err();
        assert!(error.contains("is among the recipients"), "{error}");
        assert!(!error.contains("planted-value"));
    }

    #[test]
    fn a_damaged_value_fails_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let (identities, recipients) = new_identity(dir.path());
        let sealed = seal(b"value", &recipients, &new_version()).unwrap();
        let mut file = sealed.age_file();
        let last = file.len() - 1;
        file[last] ^= 1;
        let damaged = SealedText {
            version: sealed.version,
            ciphertext: base64::engine::general_purpose::STANDARD.encode(&file),
        };
        let error = identities.unseal(&damaged).unwrap_err();
        assert!(error.contains("damaged"), "{error}");
    }

    #[test]
    fn versions_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_version(), new_version());
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn identity_files_are_read_strictly_with_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = generate("now");
        let key = std::str::from_utf8(key.expose()).unwrap().to_string();
        let second = {
            let (other, _) = generate("now");
            std::str::from_utf8(other.expose()).unwrap().to_string()
        };
        // Several keys, comments and blank lines.
        let path = identity_file(dir.path(), &format!("{key}\n\n{second}"), 0o600);
        assert_eq!(Identities::load(&path).unwrap().recipients().len(), 2);

        let message = |text: &str, mode: u32| {
            let path = identity_file(dir.path(), text, mode);
            Identities::load(&path).unwrap_err().to_string()
        };
        let not_a_key = message("# comment\nAGE-SECRET-KEY-1NOTAKEY\n", 0o600);
        assert!(not_a_key.ends_with("key.txt:2: not an age X25519 identity (each line is `AGE-SECRET-KEY-1...`, a `#` comment or blank)"), "{not_a_key}");
        assert!(!not_a_key.contains("NOTAKEY"));
        assert!(message("# only a comment\n", 0o600).ends_with("holds no identity"));
        assert!(message(&key, 0o644)
            .contains("may be read by any user (mode 0644); make it private: chmod 600"));
        // Group access is allowed: a git group may share the leader's repository.
        assert!(Identities::load(&identity_file(dir.path(), &key, 0o640)).is_ok());
        let missing = Identities::load(&dir.path().join("absent")).unwrap_err();
        assert!(
            missing.to_string().ends_with("absent does not exist"),
            "{missing}"
        );
        assert!(matches!(
            Recipients::parse(&["age1nope".to_string()]),
            Err(KeyError::NotARecipient { .. })
        ));
    }

    #[test]
    fn opened_values_are_cached_by_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let (identities, recipients) = new_identity(dir.path());
        let sealed = seal(b"v", &recipients, &new_version()).unwrap();
        identities.unseal(&sealed).unwrap();
        assert_eq!(identities.opened.lock().unwrap().len(), 1);
        identities.unseal(&sealed).unwrap();
        assert_eq!(identities.opened.lock().unwrap().len(), 1);
    }
}
