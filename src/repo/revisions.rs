//! The deploy history of a branch: the commits of its first-parent history
//! that changed the manifests (or one object's manifest), each with the
//! rollout outcome its note records (`flotilla history`), and the versions
//! `flotilla rollback` chooses from.
//!
//! Walking a long history stays cheap: a commit whose tree equals its
//! parent's is skipped without reading anything, each tree's manifest list
//! is read once, and each manifest blob is parsed once, whatever number of
//! commits share it.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use git2::{Oid, Repository};

use super::{RepoError, NOTES_REF};
use crate::manifest::documents::{self, Documents, Fingerprint};
use crate::manifest::model::{ObjectKey, SourceLocation};
use crate::manifest::ExcludedDocument;
use crate::reconcile::record::{Outcome, RolloutRecord};

/// One commit that changed the manifests, or the object asked about.
#[derive(Clone, Debug)]
pub struct Revision {
    pub commit: Oid,
    pub author_name: String,
    pub author_email: String,
    pub author_time: git2::Time,
    /// The first line of the message.
    pub subject: String,
    /// Whether the commit's manifests load without errors (the leader
    /// refuses a commit that does not).
    pub valid: bool,
    /// The object's version after this commit: `None` when this commit
    /// removed it. Always `None` when not asking about one object.
    pub fingerprint: Option<Fingerprint>,
    /// The latest rollout recorded for this revision, in the notes of this
    /// commit or of the later commits that left the manifests (or the
    /// object) as they were.
    pub rollout: Option<RecordedRollout>,
    /// Whether any of those records says the object (or, when not asking
    /// about one, the whole rollout) succeeded.
    pub ever_succeeded: bool,
}

/// A rollout record and the commit whose note holds it.
#[derive(Clone, Debug)]
pub struct RecordedRollout {
    pub commit: Oid,
    pub record: RolloutRecord,
    /// The object's outcome in it, or the record's when not asking about
    /// one object.
    pub outcome: Outcome,
}

impl Revision {
    /// Whether the object exists after this commit.
    pub fn present(&self) -> bool {
        self.fingerprint.is_some()
    }
}

/// Reads a branch's history, remembering what it parsed; one per command.
pub struct HistoryReader<'r> {
    repo: &'r Repository,
    trees: HashMap<Oid, Rc<TreeManifests>>,
    blobs: HashMap<ManifestEntry, Rc<BlobManifests>>,
    /// Commit to the blob of its note.
    notes: Option<HashMap<Oid, Oid>>,
}

/// A manifest's blob and the documents of it `.flotillaignore` excludes
/// (their lines' places left out: moving a line changes nothing read).
#[derive(Clone, PartialEq, Eq, Hash)]
struct ManifestEntry {
    blob: Oid,
    excluded: Vec<ExcludedDocument>,
}

/// The manifests of one tree.
struct TreeManifests {
    /// Path and manifest of every file read, in tree order: equal lists
    /// mean equal manifests.
    entries: Vec<(String, ManifestEntry)>,
    /// Whether `.flotillaignore` could be read.
    readable: bool,
    /// Computed on first use: whether everything loads.
    valid: std::cell::OnceCell<bool>,
}

/// The documents of one manifest blob.
struct BlobManifests {
    objects: Vec<(ObjectKey, Fingerprint)>,
    /// UTF-8, not too large, and every document loads on its own.
    valid: bool,
}

/// What is compared between a commit and its parent.
#[derive(PartialEq)]
enum Version {
    Manifests(Rc<TreeManifests>),
    Object(Option<Fingerprint>),
}

impl PartialEq for TreeManifests {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.readable == other.readable
    }
}

impl<'r> HistoryReader<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        HistoryReader {
            repo,
            trees: HashMap::new(),
            blobs: HashMap::new(),
            notes: None,
        }
    }

    /// The commits of `tip`'s first-parent history (newest first) that
    /// changed the manifests, or, with `object`, that object (added,
    /// changed or removed); at most `limit` of them.
    pub fn revisions(
        &mut self,
        tip: Oid,
        object: Option<&ObjectKey>,
        limit: Option<usize>,
    ) -> Result<Vec<Revision>, RepoError> {
        let mut revisions = Vec::new();
        // Commits since the last change found, newest first: they share
        // the version of the next change found, so their notes count for it.
        let mut same_version: Vec<Oid> = Vec::new();
        let mut commit = self.repo.find_commit(tip)?;
        let mut version = self.version(&commit, object)?;
        loop {
            if limit.is_some_and(|limit| revisions.len() >= limit) {
                break;
            }
            same_version.push(commit.id());
            let parent = commit.parent(0).ok();
            let parent_version = match &parent {
                Some(parent) if parent.tree_id() == commit.tree_id() => None,
                Some(parent) => Some(self.version(parent, object)?),
                None => Some(match object {
                    Some(_) => Version::Object(None),
                    None => Version::Manifests(Rc::new(TreeManifests {
                        entries: Vec::new(),
                        readable: true,
                        valid: std::cell::OnceCell::new(),
                    })),
                }),
            };
            let changed = parent_version.as_ref().is_some_and(|p| *p != version);
            if changed {
                revisions.push(self.revision(&commit, &version, object, &same_version)?);
                same_version.clear();
            }
            let Some(parent) = parent else {
                break;
            };
            if let Some(parent_version) = parent_version {
                version = parent_version;
            }
            commit = parent;
        }
        Ok(revisions)
    }

    /// The object declared at `commit` whose name is closest to
    /// `object`'s (same kind and namespace), for "did you mean".
    pub fn closest_object(
        &mut self,
        commit: Oid,
        object: &ObjectKey,
    ) -> Result<Option<ObjectKey>, RepoError> {
        let commit = self.repo.find_commit(commit)?;
        let tree = self.tree(&commit)?;
        let mut names = Vec::new();
        for (_, entry) in &tree.entries {
            let blob = self.blob(entry)?;
            names.extend(
                blob.objects
                    .iter()
                    .filter(|(k, _)| k.kind == object.kind && k.namespace == object.namespace)
                    .map(|(k, _)| k.name.clone()),
            );
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(
            crate::manifest::names::did_you_mean(&object.name, &names).map(|name| ObjectKey {
                name: name.to_string(),
                ..object.clone()
            }),
        )
    }

    /// Whether the commits `a` and `b` declare the same manifests (paths
    /// and contents, as each one's `.flotillaignore` selects them).
    pub fn same_manifests(&mut self, a: Oid, b: Oid) -> Result<bool, RepoError> {
        let a = self.repo.find_commit(a)?;
        let b = self.repo.find_commit(b)?;
        Ok(self.tree(&a)? == self.tree(&b)?)
    }

    /// The version of `object` in the tree of `commit`.
    pub fn fingerprint(
        &mut self,
        commit: Oid,
        object: &ObjectKey,
    ) -> Result<Option<Fingerprint>, RepoError> {
        let commit = self.repo.find_commit(commit)?;
        match self.version(&commit, Some(object))? {
            Version::Object(fingerprint) => Ok(fingerprint),
            Version::Manifests(_) => unreachable!("asked about an object"),
        }
    }

    fn revision(
        &mut self,
        commit: &git2::Commit<'_>,
        version: &Version,
        object: Option<&ObjectKey>,
        same_version: &[Oid],
    ) -> Result<Revision, RepoError> {
        let tree = self.tree(commit)?;
        let valid = self.tree_valid(&tree)?;
        let mut rollout = None;
        let mut ever_succeeded = false;
        for &candidate in same_version {
            let records = self.records(candidate)?;
            for record in records.iter().rev() {
                let outcome = match object {
                    Some(key) => {
                        match record.object(key.kind.as_str(), &key.namespace, &key.name) {
                            Some(line) => line.outcome,
                            None => continue,
                        }
                    }
                    None => record.outcome,
                };
                ever_succeeded |= outcome == Outcome::Succeeded;
                if rollout.is_none() {
                    rollout = Some(RecordedRollout {
                        commit: candidate,
                        record: record.clone(),
                        outcome,
                    });
                }
            }
        }
        let author = commit.author();
        Ok(Revision {
            commit: commit.id(),
            author_name: author.name().unwrap_or("").to_string(),
            author_email: author.email().unwrap_or("").to_string(),
            author_time: author.when(),
            subject: commit.summary().unwrap_or("").to_string(),
            valid,
            fingerprint: match version {
                Version::Object(fingerprint) => *fingerprint,
                Version::Manifests(_) => None,
            },
            rollout,
            ever_succeeded,
        })
    }

    fn version(
        &mut self,
        commit: &git2::Commit<'_>,
        object: Option<&ObjectKey>,
    ) -> Result<Version, RepoError> {
        let tree = self.tree(commit)?;
        let Some(key) = object else {
            return Ok(Version::Manifests(tree));
        };
        for (_, entry) in &tree.entries {
            let blob = self.blob(entry)?;
            if let Some((_, fingerprint)) = blob.objects.iter().find(|(k, _)| k == key) {
                return Ok(Version::Object(Some(*fingerprint)));
            }
        }
        Ok(Version::Object(None))
    }

    fn tree(&mut self, commit: &git2::Commit<'_>) -> Result<Rc<TreeManifests>, RepoError> {
        let id = commit.tree_id();
        if let Some(tree) = self.trees.get(&id) {
            return Ok(Rc::clone(tree));
        }
        let tree = self.repo.find_tree(id)?;
        let manifests = match super::tree_ignore_rules(self.repo, &tree) {
            Ok(rules) => TreeManifests {
                entries: super::manifest_entries_under(self.repo, &tree, &rules)?
                    .0
                    .into_iter()
                    .map(|(path, blob)| {
                        let excluded = rules
                            .excluded_documents(&path)
                            .into_iter()
                            .map(|e| ExcludedDocument {
                                rule: SourceLocation::default(),
                                ..e
                            })
                            .collect();
                        (path, ManifestEntry { blob, excluded })
                    })
                    .collect(),
                readable: true,
                valid: std::cell::OnceCell::new(),
            },
            Err(RepoError::IgnorePattern { .. }) => TreeManifests {
                entries: Vec::new(),
                readable: false,
                valid: std::cell::OnceCell::new(),
            },
            Err(error) => return Err(error),
        };
        let manifests = Rc::new(manifests);
        self.trees.insert(id, Rc::clone(&manifests));
        Ok(manifests)
    }

    /// Whether the tree loads: every blob on its own, and no object
    /// declared twice across files.
    fn tree_valid(&mut self, tree: &TreeManifests) -> Result<bool, RepoError> {
        if let Some(valid) = tree.valid.get() {
            return Ok(*valid);
        }
        let mut valid = tree.readable;
        let mut seen = HashSet::new();
        let mut clusters = 0;
        for (_, entry) in &tree.entries {
            let blob = self.blob(entry)?;
            valid &= blob.valid;
            for (key, _) in &blob.objects {
                valid &= seen.insert(key.clone());
                if key.kind == crate::manifest::model::Kind::Cluster {
                    clusters += 1;
                }
            }
        }
        valid &= clusters <= 1;
        let _ = tree.valid.set(valid);
        Ok(valid)
    }

    fn blob(&mut self, entry: &ManifestEntry) -> Result<Rc<BlobManifests>, RepoError> {
        if let Some(blob) = self.blobs.get(entry) {
            return Ok(Rc::clone(blob));
        }
        // The path only names the file in diagnostics, which are not kept.
        let read = super::manifest_blob(self.repo, "manifest.yaml".to_string(), entry.blob)?;
        let manifests = match read {
            Ok(mut file) => {
                file.excluded = entry.excluded.clone();
                let loaded = crate::manifest::load_alone(&file);
                let documents = Documents::of(&file);
                let objects = documents
                    .keys()
                    .map(|key| {
                        let index = documents.find(key).expect("a key comes from a document");
                        let fingerprint =
                            documents::fingerprint(&file.path, key, documents.body(index));
                        (key.clone(), fingerprint)
                    })
                    .collect();
                BlobManifests {
                    objects,
                    valid: !loaded.has_errors(),
                }
            }
            Err(_) => BlobManifests {
                objects: Vec::new(),
                valid: false,
            },
        };
        let manifests = Rc::new(manifests);
        self.blobs.insert(entry.clone(), Rc::clone(&manifests));
        Ok(manifests)
    }

    /// The rollout records in the note of `commit`, oldest first.
    fn records(&mut self, commit: Oid) -> Result<Vec<RolloutRecord>, RepoError> {
        if self.notes.is_none() {
            let mut notes = HashMap::new();
            match self.repo.notes(Some(NOTES_REF)) {
                Ok(iterator) => {
                    for pair in iterator {
                        let (note, annotated) = pair?;
                        notes.insert(annotated, note);
                    }
                }
                Err(e) if e.code() == git2::ErrorCode::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.notes = Some(notes);
        }
        let notes = self.notes.as_ref().expect("just read");
        let Some(note) = notes.get(&commit) else {
            return Ok(Vec::new());
        };
        // Only the leader writes notes, but a note is read whatever wrote it.
        match super::read_blob(self.repo, *note, super::MAX_NOTE_BYTES)? {
            Ok(blob) => Ok(RolloutRecord::parse_all(&String::from_utf8_lossy(
                blob.content(),
            ))),
            Err(size) => Err(RepoError::NoteTooLarge {
                commit: commit.to_string(),
                size,
            }),
        }
    }
}
