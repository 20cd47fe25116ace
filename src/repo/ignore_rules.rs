//! `.flotillaignore`: gitignore syntax, matched against paths relative to the
//! repository's root, plus lines that exclude single documents of a file:
//! `path#Kind/name` or `path#Kind/namespace/name` (in gitignore itself a
//! `#` inside a pattern is an ordinary character, so such a line means a
//! file no repository holds; here it names a document).

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::{RepoError, IGNORE_FILE};
use crate::manifest::model::SourceLocation;
use crate::manifest::ExcludedDocument;

#[derive(Default)]
pub(super) struct IgnoreRules {
    matcher: Option<Gitignore>,
    /// The `path#Kind/name` lines: the file's path and the document.
    documents: Vec<(String, ExcludedDocument)>,
}

impl IgnoreRules {
    pub(super) fn parse(text: &str) -> Result<Self, RepoError> {
        let mut builder = GitignoreBuilder::new("");
        let mut documents = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let pattern_error = |message: String| RepoError::IgnorePattern {
                path: IGNORE_FILE.to_string(),
                line: index + 1,
                message,
            };
            if let Some((path, selector)) = document_line(line) {
                let rule = SourceLocation {
                    file: IGNORE_FILE.to_string(),
                    line: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    column: 1,
                };
                let excluded = parse_selector(selector, rule).ok_or_else(|| {
                    pattern_error(format!(
                        "`{selector}` names no document: write `{path}#Kind/name` or `{path}#Kind/namespace/name`"
                    ))
                })?;
                documents.push((path.trim_start_matches('/').to_string(), excluded));
                continue;
            }
            builder
                .add_line(None, line)
                .map_err(|e| pattern_error(e.to_string()))?;
        }
        let matcher = builder.build().map_err(|e| RepoError::IgnorePattern {
            path: IGNORE_FILE.to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        Ok(IgnoreRules {
            matcher: Some(matcher),
            documents,
        })
    }

    /// Whether `path` (relative, `/`-separated) is ignored. Parents are
    /// checked by the tree walk, which skips ignored directories whole.
    ///
    /// A path with a component starting with `.` (`.github/`,
    /// `.gitlab-ci.yml`) is ignored unless a `!` line includes it: such
    /// files belong to other tools. The walk sees the components one by one,
    /// so only the last one is checked here.
    pub(super) fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let decision = self.matcher.as_ref().map(|m| m.matched(path, is_dir));
        let name = path.rsplit('/').next().unwrap_or(path);
        match decision {
            Some(Match::Ignore(_)) => true,
            Some(Match::Whitelist(_)) => false,
            _ => name.starts_with('.'),
        }
    }

    /// The documents of the file `path` not to read.
    pub(super) fn excluded_documents(&self, path: &str) -> Vec<ExcludedDocument> {
        self.documents
            .iter()
            .filter(|(file, _)| file == path)
            .map(|(_, excluded)| excluded.clone())
            .collect()
    }

    /// Every `path#Kind/name` line, with its path.
    pub(super) fn document_rules(&self) -> impl Iterator<Item = (&str, &ExcludedDocument)> {
        self.documents.iter().map(|(path, e)| (path.as_str(), e))
    }
}

/// `(path, selector)` when `line` excludes documents: a path to a YAML file,
/// `#`, and what follows. Comments and negations are gitignore lines.
fn document_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.starts_with('#') || line.starts_with('!') {
        return None;
    }
    let (path, selector) = line.split_once('#')?;
    (path.ends_with(".yaml") || path.ends_with(".yml")).then_some((path, selector))
}

/// `Kind/name` or `Kind/namespace/name`.
fn parse_selector(selector: &str, rule: SourceLocation) -> Option<ExcludedDocument> {
    let parts: Vec<&str> = selector.split('/').collect();
    let valid_part = |part: &str| !part.is_empty() && !part.contains(char::is_whitespace);
    if !parts.iter().all(|p| valid_part(p))
        || !parts[0].starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return None;
    }
    let (kind, namespace, name) = match parts.as_slice() {
        [kind, name] => (kind, None, name),
        [kind, namespace, name] => (kind, Some(namespace.to_string()), name),
        _ => return None,
    };
    Some(ExcludedDocument {
        kind: kind.to_string(),
        namespace,
        name: name.to_string(),
        rule,
    })
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

    /// Issue 12, item 5: other tools' files, under a dot-directory or named
    /// with a dot, are not read unless a `!` line includes them.
    #[test]
    fn dot_paths_are_ignored_unless_included() {
        check("", ".github", true, true);
        check("", "apps/.hidden", true, true);
        check("", ".gitlab-ci.yml", false, true);
        check("", "apps", true, false);
        check("!.deploy/\n", ".deploy", true, false);
        check("!.deploy/\n", ".github", true, true);
        check("!/.kube.yaml\n", ".kube.yaml", false, false);
    }

    /// Issue 12, item 5: a line can exclude one document of a file.
    #[test]
    fn document_lines() {
        let rules = IgnoreRules::parse(
            "# a comment with # inside.yaml#X/y\n\
             apps/all.yaml#Service/web\n\
             /apps/all.yaml#Ingress/shop/web\n\
             drafts/\n",
        )
        .expect("valid rules");
        let excluded: Vec<(String, u32)> = rules
            .excluded_documents("apps/all.yaml")
            .iter()
            .map(|e| (e.selector(), e.rule.line))
            .collect();
        assert_eq!(
            excluded,
            [
                ("Service/web".to_string(), 2),
                ("Ingress/shop/web".to_string(), 3)
            ]
        );
        assert!(rules.excluded_documents("apps/other.yaml").is_empty());
        assert!(!rules.is_ignored("apps/all.yaml", false));
        assert!(rules.is_ignored("drafts", true));

        for bad in [
            "a.yaml#Service",
            "a.yaml#Service/",
            "a.yaml#/web",
            "a.yaml#a/b/c/d",
        ] {
            let error = IgnoreRules::parse(bad).err().expect(bad).to_string();
            assert!(error.contains("names no document"), "{bad}: {error}");
        }
    }
}
