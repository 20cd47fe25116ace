//! `flotilla secret keygen|seal|edit|rekey`: Secret values sealed with age
//! in the repository (docs/secrets.md). Values are never printed: what is
//! shown is key names and counts.

use std::io::{BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use git2::Repository;

use super::{exit, Output};
use crate::manifest::model::{ObjectKey, Sensitive, Unseal};
use crate::manifest::{self, SourceFile};
use crate::repo;
use crate::seal::{self, Identities, NewValue, Recipients, SecretFile, Written};

#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create an age identity (the leader's, or a person's) and print its recipient.
    Keygen(KeygenArgs),
    /// Seal every value in clear of every Secret of FILEs, in place.
    Seal(SealArgs),
    /// Open a Secret in $VISUAL/$EDITOR, and seal what changed on save.
    Edit(EditArgs),
    /// Seal every Secret of the working tree again for the Cluster's current recipients.
    Rekey(RekeyArgs),
}

/// The age identity that opens Secret values.
#[derive(Debug, Args)]
pub struct AgeIdentityArgs {
    /// An age identity file (`AGE-SECRET-KEY-1...` lines; several keys
    /// allowed) that opens Secret values (default: the repository's git
    /// config `flotilla.ageIdentity`).
    #[arg(long, env = seal::IDENTITY_ENV, value_name = "FILE")]
    pub age_identity: Option<PathBuf>,
}

impl AgeIdentityArgs {
    /// `--age-identity` (or its variable), else the git config of `repository`.
    pub(crate) fn path(&self, repository: Option<&Repository>) -> anyhow::Result<Option<PathBuf>> {
        if let Some(path) = &self.age_identity {
            return Ok(Some(path.clone()));
        }
        match repository {
            Some(repository) => Ok(repo::recorded_age_identity(repository)?),
            None => Ok(None),
        }
    }

    /// The identities of [`AgeIdentityArgs::path`], read; `None` when none is named.
    pub(crate) fn load(
        &self,
        repository: Option<&Repository>,
    ) -> anyhow::Result<Option<Identities>> {
        match self.path(repository)? {
            Some(path) => Ok(Some(Identities::load(&path)?)),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to FILE (created with mode 0600; an existing
    /// file is never overwritten) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Manifest files; each is rewritten in place, its other documents
    /// and its values already sealed left as they are.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The manifest file that holds the Secret.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The Secret's name (or NAMESPACE/NAME), when the file holds several.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub identity: AgeIdentityArgs,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The repository whose working tree to re-seal (any directory inside it).
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    #[command(flatten)]
    pub identity: AgeIdentityArgs,
}

pub(super) fn run(args: &SecretArgs, out: &mut Output) -> anyhow::Result<u8> {
    match &args.command {
        SecretCommand::Keygen(args) => keygen(args, out),
        SecretCommand::Seal(args) => seal_files(args, out),
        SecretCommand::Edit(args) => edit(args, out),
        SecretCommand::Rekey(args) => rekey(args, out),
    }
}

fn keygen(args: &KeygenArgs, out: &mut Output) -> anyhow::Result<u8> {
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let (identity, recipient) = seal::generate(&created);
    let Some(path) = &args.output else {
        // As age-keygen: the identity on standard output, its recipient on
        // standard error.
        out.text(String::from_utf8_lossy(identity.expose()))?;
        eprintln!("public key: {recipient}");
        return Ok(exit::OK);
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} exists: an identity file is never overwritten (values sealed for it would no longer open)\n\
                 hint: choose another --output, or remove the file yourself",
                path.display()
            ),
            _ => anyhow::Error::new(error).context(format!("creating {}", path.display())),
        })?;
    file.write_all(identity.expose())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    out.line(format_args!(
        "wrote a new age identity to {} (mode 0600)",
        path.display()
    ))?;
    out.line(format_args!("recipient: {recipient}"))?;
    out.line(
        "next: add the recipient to the Cluster object's spec.secrets.recipients; \
         for the leader's identity, run it with --age-identity FILE (docs/secrets.md)",
    )?;
    Ok(exit::OK)
}

/// The recipients the Cluster object of `repository`'s working tree
/// declares; refused when there are none.
fn working_tree_recipients(repository: &Repository) -> anyhow::Result<Recipients> {
    let snapshot = repo::read_working_tree(repository)?;
    let loaded = manifest::load(&snapshot.files);
    let texts = &loaded.state.cluster.secret_recipients;
    if texts.is_empty() {
        anyhow::bail!(
            "no recipients to seal for: the Cluster object of {} declares no spec.secrets.recipients\n\
             hint: add the leader's recipient (and whoever else may read the values), as \
             `flotilla secret keygen` prints it:\n  spec:\n    secrets:\n      recipients:\n        - age1...",
            repository.workdir().unwrap_or(repository.path()).display()
        );
    }
    Ok(Recipients::parse(texts)?)
}

/// The repository a manifest file is in.
fn repository_of(file: &Path) -> anyhow::Result<Repository> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    repo::open(dir).with_context(|| {
        format!(
            "{}: the recipients are those of the Cluster object of the git repository the file is in",
            file.display()
        )
    })
}

fn read_source(path: &Path) -> anyhow::Result<SourceFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(SourceFile::new(path.display().to_string(), text))
}

/// Replaces the file at `path` with `text` at once (a file beside it,
/// renamed over it), keeping its mode.
fn write_in_place(path: &Path, text: &str) -> anyhow::Result<()> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".flotilla-{}", seal::new_version()));
    let temporary = path.with_file_name(name);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o7777)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

fn seal_files(args: &SealArgs, out: &mut Output) -> anyhow::Result<u8> {
    // Each repository's working tree is read once, however many files.
    let mut by_repository: std::collections::HashMap<PathBuf, Recipients> =
        std::collections::HashMap::new();
    for path in &args.files {
        let file = read_source(path)?;
        let repository = repository_of(path)?;
        let recipients = match by_repository.get(repository.path()) {
            Some(recipients) => recipients.clone(),
            None => {
                let recipients = working_tree_recipients(&repository)?;
                by_repository.insert(repository.path().to_path_buf(), recipients.clone());
                recipients
            }
        };
        match seal::seal_clear_values(&file, &recipients)? {
            Some((text, sealed)) => {
                write_in_place(path, &text)?;
                for secret in sealed {
                    out.line(format_args!(
                        "{}: {}: sealed {} for {} recipient{}",
                        path.display(),
                        secret.secret,
                        secret.keys.join(", "),
                        recipients.len(),
                        if recipients.len() == 1 { "" } else { "s" }
                    ))?;
                }
            }
            None => {
                let secrets = SecretFile::read(&file).map_or(0, |f| f.secrets.len());
                let what = if secrets == 0 {
                    "declares no Secret"
                } else {
                    "has no value in clear"
                };
                out.line(format_args!("{}: {what}; left as it was", path.display()))?;
            }
        }
    }
    Ok(exit::OK)
}

/// A private directory for the file in clear, removed with everything in
/// it (an editor's swap and backup files too) however the edit ends.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> anyhow::Result<PrivateDir> {
        // A memory file system when the session has one.
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("flotilla-secret-{}", seal::new_version()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(PrivateDir(dir))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn edit(args: &EditArgs, out: &mut Output) -> anyhow::Result<u8> {
    let path = &args.file;
    let source = read_source(path)?;
    let repository = repository_of(path)?;
    let mut file = SecretFile::read(&source).map_err(seal::SealError::from)?;
    let index = choose_secret(&file, args.name.as_deref(), path)?;
    let secret = file.secrets[index].clone();

    // The values in clear; a sealed one must open.
    let identities = args.identity.load(Some(&repository))?;
    let mut current: Vec<(String, Sensitive)> = Vec::new();
    let mut unopened = Vec::new();
    for written in &secret.values {
        match &written.value {
            Written::Clear(value) => current.push((written.key.clone(), value.clone())),
            Written::Sealed(sealed) => match identities.as_ref().map(|i| i.unseal(sealed)) {
                Some(Ok(value)) => current.push((written.key.clone(), value)),
                Some(Err(reason)) => {
                    unopened.push(format!("{}: `{}`: {reason}", written.location, written.key))
                }
                None => anyhow::bail!(
                    "{}: {} has sealed values and no age identity is given to open them\n\
                     hint: --age-identity FILE (or {}, or git config flotilla.ageIdentity)",
                    path.display(),
                    secret.secret,
                    seal::IDENTITY_ENV
                ),
            },
        }
    }
    if !unopened.is_empty() {
        anyhow::bail!(
            "{} cannot be edited: values do not open with the identity:\n  {}\n\
             hint: use an identity among the Secret's recipients (--age-identity FILE)",
            secret.secret,
            unopened.join("\n  ")
        );
    }

    let edited = edit_in_editor(&secret.secret, path, &current, out)?;
    let Some(edited) = edited else {
        out.line(format_args!(
            "{}: {} unchanged; the file is left as it was",
            path.display(),
            secret.secret
        ))?;
        return Ok(exit::OK);
    };

    // What changed: an unchanged value keeps its sealed text exactly.
    let unchanged = edited.len() == current.len()
        && edited.iter().all(|(key, value)| {
            current.iter().any(|(k, v)| k == key && v == value) && secret.sealed(key).is_some()
        });
    if unchanged {
        out.line(format_args!(
            "{}: {} unchanged; the file is left as it was",
            path.display(),
            secret.secret
        ))?;
        return Ok(exit::OK);
    }
    let recipients = working_tree_recipients(&repository)?;
    let (mut changed, mut added) = (Vec::new(), Vec::new());
    let mut values = Vec::new();
    for (key, value) in &edited {
        let before = current.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let new_value = match (before, secret.sealed(key)) {
            (Some(before), Some(sealed)) if before == value => NewValue::Unchanged(sealed.clone()),
            _ => {
                if before.is_some() {
                    changed.push(key.as_str());
                } else {
                    added.push(key.as_str());
                }
                NewValue::Sealed(seal::seal(
                    value.expose(),
                    &recipients,
                    &seal::new_version(),
                )?)
            }
        };
        values.push((key.clone(), new_value));
    }
    let removed: Vec<&str> = current
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !edited.iter().any(|(key, _)| key == k))
        .collect();
    file.set_values(index, &values)
        .map_err(seal::SealError::from)?;
    write_in_place(path, &file.text())?;
    let mut what = Vec::new();
    for (word, keys) in [
        ("changed", &changed),
        ("added", &added),
        ("removed", &removed),
    ] {
        if !keys.is_empty() {
            what.push(format!("{word} {}", keys.join(", ")));
        }
    }
    out.line(format_args!(
        "{}: {}: {} (for {} recipient{})",
        path.display(),
        secret.secret,
        what.join("; "),
        recipients.len(),
        if recipients.len() == 1 { "" } else { "s" }
    ))?;
    Ok(exit::OK)
}

/// The index of the Secret `name` names (`NAME` or `NAMESPACE/NAME`), or
/// of the file's only one.
fn choose_secret(file: &SecretFile, name: Option<&str>, path: &Path) -> anyhow::Result<usize> {
    let names = || {
        file.secrets
            .iter()
            .map(|s| format!("{}/{}", s.secret.namespace, s.secret.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let matching: Vec<usize> = file
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, s)| match name {
            None => true,
            Some(name) => match name.split_once('/') {
                Some((namespace, name)) => s.secret.namespace == namespace && s.secret.name == name,
                None => s.secret.name == name,
            },
        })
        .map(|(i, _)| i)
        .collect();
    match (matching.as_slice(), name) {
        ([index], _) => Ok(*index),
        ([], _) if file.secrets.is_empty() => {
            anyhow::bail!("{} declares no Secret", path.display())
        }
        ([], Some(name)) => anyhow::bail!(
            "{} declares no Secret `{name}` (it declares {})",
            path.display(),
            names()
        ),
        _ => anyhow::bail!(
            "{} declares several Secrets ({}): name one with --name",
            path.display(),
            names()
        ),
    }
}

/// Opens the editor on the Secret's values in clear, in a private file,
/// until what is saved reads back (or the user gives up). `None` when the
/// file was saved unchanged.
fn edit_in_editor(
    secret: &ObjectKey,
    path: &Path,
    values: &[(String, Sensitive)],
    out: &mut Output,
) -> anyhow::Result<Option<Vec<(String, Sensitive)>>> {
    let dir = PrivateDir::create()?;
    let file = dir.0.join(format!("{}.yaml", secret.name));
    let text = seal::editable::editable_text(secret, &path.display().to_string(), values);
    {
        let mut handle = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        handle.write_all(text.expose())?;
    }
    loop {
        run_editor(&file)?;
        let saved = Sensitive::new(
            std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
        );
        if saved == text {
            return Ok(None);
        }
        match seal::editable::read_edited(saved.expose(), secret) {
            Ok(values) => return Ok(Some(values)),
            Err(problem) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                out.flush()?;
                eprint!("error: {problem}\npress Enter to edit again, or q and Enter to leave {} as it was: ", path.display());
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if answer.trim() == "q" {
                    anyhow::bail!("edit abandoned; {} is left as it was", path.display());
                }
            }
            Err(problem) => anyhow::bail!(
                "the edited Secret cannot be read: {problem}; {} is left as it was",
                path.display()
            ),
        }
    }
}

/// Runs $VISUAL, else $EDITOR, else vi on `file`, through the shell as
/// git does (so `EDITOR="code --wait"` works).
fn run_editor(file: &Path) -> anyhow::Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .into_iter()
        .filter_map(std::env::var_os)
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} \"$@\"", editor.to_string_lossy()))
        .arg(&editor)
        .arg(file)
        .status()
        .with_context(|| format!("running the editor `{}`", editor.to_string_lossy()))?;
    if !status.success() {
        anyhow::bail!(
            "the editor `{}` failed ({status}); nothing was changed",
            editor.to_string_lossy()
        );
    }
    Ok(())
}

fn rekey(args: &RekeyArgs, out: &mut Output) -> anyhow::Result<u8> {
    let repository = repo::open(&args.path)?;
    let root = repository
        .workdir()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: rekey re-seals a working tree; this repository is bare",
                args.path.display()
            )
        })?
        .to_path_buf();
    let recipients = working_tree_recipients(&repository)?;
    let Some(identities) = args.identity.load(Some(&repository))? else {
        anyhow::bail!(
            "rekey opens every value, so it needs an identity among the current recipients\n\
             hint: --age-identity FILE (or {}, or git config flotilla.ageIdentity)",
            seal::IDENTITY_ENV
        );
    };
    let snapshot = repo::read_working_tree(&repository)?;
    let mut rewritten = Vec::new();
    let mut problems = Vec::new();
    for file in &snapshot.files {
        match seal::rekey(file, &identities, &recipients) {
            Ok(Some((text, secrets))) => rewritten.push((file.path.clone(), text, secrets)),
            Ok(None) => {}
            Err(seal::SealError::File(errors)) => {
                problems.extend(errors.iter().map(ToString::to_string))
            }
            Err(error) => return Err(error.into()),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "nothing was re-sealed:\n  {}\nhint: rekey with an identity that opens every value (--age-identity FILE)",
            problems.join("\n  ")
        );
    }
    if rewritten.is_empty() {
        out.line("no Secret in the working tree; nothing to re-seal")?;
        return Ok(exit::OK);
    }
    let (mut secrets, mut values) = (0, 0);
    for (path, text, sealed) in &rewritten {
        write_in_place(&root.join(path), text)?;
        secrets += sealed.len();
        values += sealed.iter().map(|s| s.keys.len()).sum::<usize>();
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.line(format_args!(
        "re-sealed {} of {} in {} for {} (versions kept: no pod rolls)",
        plural(values, "value"),
        plural(secrets, "Secret"),
        plural(rewritten.len(), "file"),
        plural(recipients.len(), "recipient"),
    ))?;
    out.line("commit and push them together: git commit -am 'Re-seal Secrets for the new recipients' && git push")?;
    Ok(exit::OK)
}
