//! The manifest diff section of a plan: what changed in the repository
//! between the deployed commit and the planned one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use similar::TextDiff;

use crate::manifest::SourceFile;

/// Files longer than this (either side) are not diffed line by line: a line
/// diff costs up to (lines of both) × (lines changed), so a hostile push of
/// two large, wholly different files would hold the planner for minutes.
pub(crate) const MAX_DIFF_LINES: usize = 5_000;

/// The diff stops once it is this long; the files after are counted.
pub(crate) const MAX_DIFF_BYTES: usize = 1024 * 1024;

/// A unified diff per changed, added or removed file, sorted by path,
/// Secrets' values hidden (`manifest::redact`). Empty when nothing changed. Linear in the number of files; bounded in
/// cost per file ([`MAX_DIFF_LINES`]) and in length ([`MAX_DIFF_BYTES`]).
pub fn manifest_diff(old: &[SourceFile], new: &[SourceFile]) -> String {
    let mut paths: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
    for file in old {
        paths.entry(&file.path).or_default().0 = Some(&file.text);
    }
    for file in new {
        paths.entry(&file.path).or_default().1 = Some(&file.text);
    }
    let mut out = String::new();
    let mut not_shown = 0usize;
    for (path, (before, after)) in paths {
        if before == after {
            continue;
        }
        if out.len() >= MAX_DIFF_BYTES {
            not_shown += 1;
            continue;
        }
        let (old_name, new_name) = match (before, after) {
            (None, _) => ("/dev/null".to_string(), format!("b/{path}")),
            (_, None) => (format!("a/{path}"), "/dev/null".to_string()),
            _ => (format!("a/{path}"), format!("b/{path}")),
        };
        let before = crate::manifest::redact::secret_values(before.unwrap_or_default());
        let after = crate::manifest::redact::secret_values(after.unwrap_or_default());
        let (before, after) = (before.as_str(), after.as_str());
        let (before_lines, after_lines) = (before.lines().count(), after.lines().count());
        if before_lines > MAX_DIFF_LINES || after_lines > MAX_DIFF_LINES {
            let _ = writeln!(
                out,
                "--- {old_name}\n+++ {new_name}\n@@ {before_lines} line(s) -> {after_lines} line(s): \
                 longer than {MAX_DIFF_LINES} lines, not diffed @@"
            );
            continue;
        }
        let diff = TextDiff::from_lines(before, after);
        let unified = diff
            .unified_diff()
            .context_radius(3)
            .header(&old_name, &new_name)
            .to_string();
        out.push_str(&unified);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    if not_shown > 0 {
        let _ = writeln!(
            out,
            "... {not_shown} more changed file(s) not shown: the diff is longer than {MAX_DIFF_BYTES} bytes"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
            excluded: Vec::new(),
        }
    }

    #[test]
    fn unchanged_files_give_nothing() {
        let files = [file("a.yaml", "x: 1\n")];
        assert_eq!(manifest_diff(&files, &files), "");
    }

    #[test]
    fn changed_added_and_removed_files() {
        let old = [
            file("apps/web.yaml", "replicas: 2\nimage: web:1\n"),
            file("old.yaml", "gone: true\n"),
        ];
        let new = [
            file("apps/web.yaml", "replicas: 3\nimage: web:1\n"),
            file("new.yaml", "added: true\n"),
        ];
        assert_eq!(
            manifest_diff(&old, &new),
            "--- a/apps/web.yaml\n+++ b/apps/web.yaml\n@@ -1,2 +1,2 @@\n-replicas: 2\n+replicas: 3\n image: web:1\n\
             --- /dev/null\n+++ b/new.yaml\n@@ -0,0 +1 @@\n+added: true\n\
             --- a/old.yaml\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone: true\n"
        );
    }

    /// Issue 10, item 14: each path was looked up by a scan of both lists,
    /// quadratic in the files (100,000 files took 27 s).
    #[test]
    fn many_files_are_diffed_in_linear_time() {
        let old: Vec<SourceFile> = (0..100_000)
            .map(|i| file(&format!("apps/{i:06}.yaml"), "replicas: 1\n"))
            .collect();
        let mut new = old.clone();
        new[50_000].text = "replicas: 2\n".into();
        let diff = manifest_diff(&old, &new);
        assert_eq!(
            diff,
            "--- a/apps/050000.yaml\n+++ b/apps/050000.yaml\n@@ -1 +1 @@\n-replicas: 1\n+replicas: 2\n"
        );
    }

    #[test]
    fn long_files_are_not_diffed_line_by_line() {
        let before: String = (0..MAX_DIFF_LINES + 1).map(|i| format!("a{i}\n")).collect();
        let after: String = (0..MAX_DIFF_LINES + 1).map(|i| format!("b{i}\n")).collect();
        let diff = manifest_diff(&[file("big.yaml", &before)], &[file("big.yaml", &after)]);
        assert_eq!(
            diff,
            "--- a/big.yaml\n+++ b/big.yaml\n@@ 5001 line(s) -> 5001 line(s): longer than 5000 lines, not diffed @@\n"
        );
    }

    #[test]
    fn the_diff_is_bounded_in_length() {
        let line = "x".repeat(1000);
        let old: Vec<SourceFile> = (0..3_000)
            .map(|i| file(&format!("{i:04}.yaml"), &format!("{line}\n")))
            .collect();
        let diff = manifest_diff(&old, &[]);
        assert!(diff.len() < MAX_DIFF_BYTES + 2_000, "{}", diff.len());
        let last = diff.lines().last().unwrap();
        assert!(
            last.starts_with("... ")
                && last.ends_with("not shown: the diff is longer than 1048576 bytes"),
            "{last}"
        );
    }
}
