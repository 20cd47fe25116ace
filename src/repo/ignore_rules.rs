//! `.flotillaignore`: gitignore syntax, matched against paths relative to the
//! repository's root.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::RepoError;

#[derive(Default)]
pub(super) struct IgnoreRules {
    matcher: Option<Gitignore>,
}

impl IgnoreRules {
    pub(super) fn parse(text: &str) -> Result<Self, RepoError> {
        let mut builder = GitignoreBuilder::new("");
        for (index, line) in text.lines().enumerate() {
            builder
                .add_line(None, line)
                .map_err(|e| RepoError::IgnorePattern {
                    path: super::IGNORE_FILE.to_string(),
                    line: index + 1,
                    message: e.to_string(),
                })?;
        }
        let matcher = builder.build().map_err(|e| RepoError::IgnorePattern {
            path: super::IGNORE_FILE.to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        Ok(IgnoreRules {
            matcher: Some(matcher),
        })
    }

    /// Whether `path` (relative, `/`-separated) is ignored. Parents are
    /// checked by the tree walk, which skips ignored directories whole.
    pub(super) fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        match &self.matcher {
            Some(matcher) => matches!(matcher.matched(path, is_dir), Match::Ignore(_)),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rules: &str, path: &str, is_dir: bool, expected: bool) {
        let rules = IgnoreRules::parse(rules).expect("valid rules");
        assert_eq!(
            rules.is_ignored(path, is_dir),
            expected,
            "{path} against {rules:?}",
            rules = ()
        );
    }

    #[test]
    fn gitignore_syntax() {
        check("drafts/\n", "drafts", true, true);
        check("drafts/\n", "drafts", false, false);
        check("*.tmpl.yaml\n", "apps/web.tmpl.yaml", false, true);
        check("/top.yaml\n", "top.yaml", false, true);
        check("/top.yaml\n", "sub/top.yaml", false, false);
        check("*.yaml\n!keep.yaml\n", "keep.yaml", false, false);
        check("# comment\n\n", "a.yaml", false, false);
    }
}
