//! Where the leader's age identity file is, recorded in the git config of
//! its repository (`flotilla.ageIdentity`) so the pre-receive hook, which
//! git runs on the same host, opens Secret values with the same identity.
//! The leader writes it at start (and removes it when it has none); no
//! push can change it.

use std::path::{Path, PathBuf};

use git2::Repository;

use super::RepoError;

/// `flotilla.ageIdentity`: the absolute path of the leader's identity file.
pub const AGE_IDENTITY: &str = "flotilla.ageIdentity";

/// The identity file the repository's config names, if any (the
/// repository's own config, the user's and the system's, as git reads them).
pub fn recorded_age_identity(repo: &Repository) -> Result<Option<PathBuf>, RepoError> {
    let config = repo.config()?.snapshot()?;
    match config.get_path(AGE_IDENTITY) {
        Ok(path) => Ok(Some(path)),
        Err(error) if error.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(error) => Err(RepoError::Config {
            repo: repo.path().to_path_buf(),
            setting: AGE_IDENTITY,
            reason: error.message().to_string(),
        }),
    }
}

/// Records `path` (absolute) in the repository's own config, or removes
/// the setting when `None`.
pub fn record_age_identity(repo: &Repository, path: Option<&Path>) -> Result<(), RepoError> {
    let mut config = repo.config()?.open_level(git2::ConfigLevel::Local)?;
    match path {
        Some(path) => config.set_str(AGE_IDENTITY, &path.to_string_lossy())?,
        None => match config.remove(AGE_IDENTITY) {
            Ok(()) => {}
            Err(error) if error.code() == git2::ErrorCode::NotFound => {}
            Err(error) => return Err(error.into()),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_path_is_recorded_read_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        assert_eq!(recorded_age_identity(&repo).unwrap(), None);
        // Removing what is not there is not an error.
        record_age_identity(&repo, None).unwrap();
        record_age_identity(&repo, Some(Path::new("/etc/flotilla/age.key"))).unwrap();
        assert_eq!(
            recorded_age_identity(&repo).unwrap(),
            Some(PathBuf::from("/etc/flotilla/age.key"))
        );
        record_age_identity(&repo, None).unwrap();
        assert_eq!(recorded_age_identity(&repo).unwrap(), None);
    }
}
