//! Whether the working tree of a clone differs from a commit in what
//! flotilla reads: `validate` and `plan` check a commit, and say so when
//! the files on disk are not what they check.

use std::collections::BTreeMap;

use git2::Repository;

use super::{read_working_tree, RepoError, Snapshot, IGNORE_FILE};

/// The paths whose manifests differ between `snapshot` (read from a commit)
/// and the working tree, read as flotilla reads both: changed, added or
/// removed manifests (a changed `.flotillaignore` included, and what it
/// now selects), files that cannot be read on one side. Sorted; empty in a
/// bare repository.
pub fn working_tree_changes(
    repo: &Repository,
    snapshot: &Snapshot,
) -> Result<Vec<String>, RepoError> {
    if repo.is_bare() {
        return Ok(Vec::new());
    }
    let on_disk = read_working_tree(repo)?;
    let contents = |snapshot: &Snapshot| -> BTreeMap<String, String> {
        let mut contents: BTreeMap<String, String> = snapshot
            .files
            .iter()
            .map(|file| (file.path.clone(), file.text.clone()))
            .collect();
        for diagnostic in &snapshot.diagnostics {
            let file = diagnostic.location.file.clone();
            contents
                .entry(file)
                .or_default()
                .push_str(&diagnostic.to_string());
        }
        contents
    };
    let (committed, on_disk) = (contents(snapshot), contents(&on_disk));
    let mut paths: Vec<String> = committed
        .keys()
        .chain(on_disk.keys())
        .filter(|path| committed.get(*path) != on_disk.get(*path))
        .cloned()
        .collect();
    if ignore_file_differs(repo, snapshot, &on_disk_root(repo))? {
        paths.push(IGNORE_FILE.to_string());
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

fn on_disk_root(repo: &Repository) -> std::path::PathBuf {
    repo.workdir()
        .expect("a repository that is not bare has a work tree")
        .to_path_buf()
}

/// Whether `.flotillaignore` on disk differs from the commit's (one side
/// without it counts).
fn ignore_file_differs(
    repo: &Repository,
    snapshot: &Snapshot,
    root: &std::path::Path,
) -> Result<bool, RepoError> {
    let tree = repo
        .find_commit(git2::Oid::from_str(&snapshot.commit)?)?
        .tree()?;
    let committed = match tree.get_name(IGNORE_FILE) {
        // Only a regular file holds rules (see `tree_ignore_rules`).
        Some(entry) if matches!(entry.filemode(), 0o100644 | 0o100755) => {
            match super::read_blob(repo, entry.id(), super::MAX_IGNORE_BYTES)? {
                Ok(blob) => Some(blob.content().to_vec()),
                Err(_too_large) => return Ok(true),
            }
        }
        _ => None,
    };
    let path = root.join(IGNORE_FILE);
    // Read as `read_working_tree` reads it: never through a link, never
    // from a FIFO, never past the limit. Anything else is a difference.
    let on_disk = match super::read_regular_file(&path, super::MAX_IGNORE_BYTES) {
        Ok(Ok(bytes)) => Some(bytes),
        Ok(Err(_)) => return Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(RepoError::Io { path, source }),
    };
    Ok(committed != on_disk)
}
