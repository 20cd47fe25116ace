//! The leader host operator's policy, read from the git config of the
//! leader's repository (`flotilla.*`): what a push cannot widen on its own,
//! since no push can change git config. docs/security.md lists the settings.

use git2::Repository;

use crate::manifest::policy::{parse_host_paths, PortRanges, DEFAULT_HOST_PORTS};
use crate::manifest::OperatorPolicy;

use super::RepoError;

/// `flotilla.allowLocalTransport`.
pub const ALLOW_LOCAL_TRANSPORT: &str = "flotilla.allowLocalTransport";
/// `flotilla.hostPorts`.
pub const HOST_PORTS: &str = "flotilla.hostPorts";
/// `flotilla.hostPaths`.
pub(super) const HOST_PATHS: &str = "flotilla.hostPaths";
/// `flotilla.shipImages` (several values, or one list).
pub const SHIP_IMAGES: &str = "flotilla.shipImages";

/// The operator's policy for `repo`: its git config (with the user's and
/// the system's, as `git config` reads them), the restrictive default for
/// what is not set. A value that does not parse is an error naming the
/// setting, never ignored.
pub fn operator_policy(repo: &Repository) -> Result<OperatorPolicy, RepoError> {
    let config = repo.config()?.snapshot()?;
    let invalid = |setting: &'static str, reason: String| RepoError::Config {
        repo: repo.path().to_path_buf(),
        setting,
        reason,
    };
    let mut policy = OperatorPolicy::default();
    if config.get_entry(ALLOW_LOCAL_TRANSPORT).is_ok() {
        policy.allow_local_transport = config
            .get_bool(ALLOW_LOCAL_TRANSPORT)
            .map_err(|e| invalid(ALLOW_LOCAL_TRANSPORT, e.message().to_string()))?;
    }
    if let Ok(text) = config.get_string(HOST_PORTS) {
        policy.host_ports = PortRanges::parse(&text).map_err(|reason| {
            invalid(
                HOST_PORTS,
                format!("{reason} (write ports and ranges such as `{DEFAULT_HOST_PORTS}`)"),
            )
        })?;
    }
    if let Ok(text) = config.get_string(HOST_PATHS) {
        policy.host_paths = Some(parse_host_paths(&text).map_err(|reason| {
            invalid(
                HOST_PATHS,
                format!("{reason} (write absolute paths such as `/srv/data,/var/log`)"),
            )
        })?);
    }
    let mut values = config.multivar(SHIP_IMAGES, None)?;
    while let Some(entry) = values.next() {
        let entry = entry?;
        let value = entry
            .value()
            .ok_or_else(|| invalid(SHIP_IMAGES, "a value is not UTF-8".to_string()))?;
        policy.ship_images.extend(
            value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|pattern| !pattern.is_empty())
                .map(str::to_string),
        );
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(settings: &[(&str, &str)]) -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init_bare(dir.path()).expect("init");
        let mut config = repo.config().expect("config");
        for (name, value) in settings {
            config.set_multivar(name, "^$", value).expect("set");
        }
        (dir, repo)
    }

    #[test]
    fn unset_is_the_restrictive_default() {
        let (_dir, repo) = repo_with(&[]);
        assert_eq!(operator_policy(&repo).unwrap(), OperatorPolicy::default());
    }

    #[test]
    fn settings_are_read() {
        let (_dir, repo) = repo_with(&[
            (ALLOW_LOCAL_TRANSPORT, "true"),
            (HOST_PORTS, "22,80-90"),
            (HOST_PATHS, "/srv/data, /var/log"),
            (SHIP_IMAGES, "flotilla-test:*"),
            (SHIP_IMAGES, "a:1, b:2"),
        ]);
        let policy = operator_policy(&repo).unwrap();
        assert!(policy.allow_local_transport);
        assert_eq!(policy.host_ports.to_string(), "22,80-90");
        assert_eq!(policy.ship_images, ["flotilla-test:*", "a:1", "b:2"]);
        assert_eq!(
            policy.host_paths,
            Some(vec!["/srv/data".to_string(), "/var/log".to_string()])
        );
        // Set and empty: no host path at all.
        let (_dir, repo) = repo_with(&[(HOST_PATHS, "")]);
        assert_eq!(operator_policy(&repo).unwrap().host_paths, Some(Vec::new()));
    }

    #[test]
    fn a_bad_value_names_the_setting() {
        let (_dir, repo) = repo_with(&[(HOST_PORTS, "http")]);
        let error = operator_policy(&repo).unwrap_err().to_string();
        assert!(error.contains("git config flotilla.hostPorts"), "{error}");
        assert!(error.contains("`http` is not a port"), "{error}");
        let (_dir, repo) = repo_with(&[(HOST_PATHS, "/srv/../etc")]);
        let error = operator_policy(&repo).unwrap_err().to_string();
        assert!(error.contains("git config flotilla.hostPaths"), "{error}");
        assert!(
            error.contains("`/srv/../etc` must not contain a `..` element"),
            "{error}"
        );
        let (_dir, repo) = repo_with(&[(ALLOW_LOCAL_TRANSPORT, "maybe")]);
        let error = operator_policy(&repo).unwrap_err().to_string();
        assert!(
            error.contains("git config flotilla.allowLocalTransport"),
            "{error}"
        );
    }
}
