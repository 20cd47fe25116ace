//! The manifest diff section of a plan: what changed in the repository
//! between the deployed commit and the planned one.

use similar::TextDiff;

use crate::manifest::SourceFile;

/// A unified diff per changed, added or removed file, sorted by path.
/// Empty when nothing changed.
pub fn manifest_diff(old: &[SourceFile], new: &[SourceFile]) -> String {
    let mut paths: Vec<&str> = old.iter().chain(new).map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let find = |files: &[SourceFile], path: &str| -> Option<String> {
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.text.clone())
    };
    let mut out = String::new();
    for path in paths {
        let before = find(old, path);
        let after = find(new, path);
        if before == after {
            continue;
        }
        let (old_name, new_name) = match (&before, &after) {
            (None, _) => ("/dev/null".to_string(), format!("b/{path}")),
            (_, None) => (format!("a/{path}"), "/dev/null".to_string()),
            _ => (format!("a/{path}"), format!("b/{path}")),
        };
        let before = before.unwrap_or_default();
        let after = after.unwrap_or_default();
        let diff = TextDiff::from_lines(&before, &after);
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
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
}
