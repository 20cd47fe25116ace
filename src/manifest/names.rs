//! Kubernetes' rules for names, label keys and values, and "did you mean".
//!
//! Each check returns `Err(reason)` with a lowercase reason that completes a
//! sentence such as "invalid name `Web`: ...".

/// Object names (Deployments, Nodes): a DNS-1123 subdomain, at most 253
/// characters of lowercase letters, digits, `-` and `.`.
pub(crate) fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > 253 {
        return Err(format!(
            "must be at most 253 characters (has {})",
            name.len()
        ));
    }
    for part in name.split('.') {
        label_chars(part).map_err(|_| {
            "must consist of lowercase letters, digits, `-` and `.`, \
             and start and end with a letter or digit"
                .to_string()
        })?;
    }
    Ok(())
}

/// A Service's name: a DNS-1035 label (a DNS-1123 label that starts with
/// a letter), since it is a name in DNS and in environment variables.
pub(crate) fn dns1035_label(name: &str) -> Result<(), String> {
    dns1123_label(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".to_string());
    }
    Ok(())
}

/// Container names and namespaces: a DNS-1123 label, at most 63 characters
/// of lowercase letters, digits and `-`.
pub(crate) fn dns1123_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > 63 {
        return Err(format!(
            "must be at most 63 characters (has {})",
            name.len()
        ));
    }
    label_chars(name).map_err(|_| {
        "must consist of lowercase letters, digits and `-`, \
         and start and end with a letter or digit"
            .to_string()
    })
}

fn label_chars(part: &str) -> Result<(), ()> {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if alnum(first) && alnum(last) => {}
        _ => return Err(()),
    }
    if bytes.iter().all(|b| alnum(b) || *b == b'-') {
        Ok(())
    } else {
        Err(())
    }
}

/// Port names: an IANA service name, at most 15 characters of lowercase
/// letters, digits and `-`, with at least one letter and no `--`.
pub(crate) fn port_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > 15 {
        return Err(format!(
            "must be at most 15 characters (has {})",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must consist of lowercase letters, digits and `-`".to_string());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must contain at least one letter".to_string());
    }
    if name.contains("--") {
        return Err("must not contain `--`".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must not start or end with `-`".to_string());
    }
    Ok(())
}

/// Label and annotation keys: an optional DNS-1123 subdomain prefix and `/`,
/// then a name of at most 63 characters.
pub(crate) fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix before `/` must not be empty".to_string());
        }
        dns1123_subdomain(prefix).map_err(|reason| format!("prefix `{prefix}` {reason}"))?;
    }
    if name.is_empty() {
        return Err("name part must not be empty".to_string());
    }
    if name.len() > 63 {
        return Err(format!(
            "name part must be at most 63 characters (has {})",
            name.len()
        ));
    }
    if !label_value_chars(name) {
        return Err(
            "name part must consist of letters, digits, `-`, `_` and `.`, \
                    and start and end with a letter or digit"
                .to_string(),
        );
    }
    Ok(())
}

/// Label values: empty, or at most 63 characters of letters, digits, `-`,
/// `_` and `.`, starting and ending with a letter or digit.
pub(crate) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(format!(
            "must be at most 63 characters (has {})",
            value.len()
        ));
    }
    if !label_value_chars(value) {
        return Err("must consist of letters, digits, `-`, `_` and `.`, \
                    and start and end with a letter or digit"
            .to_string());
    }
    Ok(())
}

fn label_value_chars(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if alnum(first) && alnum(last) => {}
        _ => return false,
    }
    bytes
        .iter()
        .all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
}

/// Environment variable names: letters, digits, `_`, `-` and `.`, not
/// starting with a digit.
pub(crate) fn env_var_name(name: &str) -> Result<(), String> {
    let Some(first) = name.bytes().next() else {
        return Err("must not be empty".to_string());
    };
    if first.is_ascii_digit() {
        return Err("must not start with a digit".to_string());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err("must consist of letters, digits, `_`, `-` and `.`".to_string());
    }
    Ok(())
}

/// The closest candidate to a misspelt word, if one is close enough to be a
/// likely typo: same letters in another case, or a small edit distance.
/// `a, b and c` (with `conjunction` "and"), `a or b`, `a`: a list in a
/// message.
pub(crate) fn listed(items: &[&str], conjunction: &str) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{} {conjunction} {last}", rest.join(", "))
        }
        _ => items.join(""),
    }
}

pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if let Some(same) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(same);
    }
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, case-insensitive.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: fn(&str) -> Result<(), String>, cases: &[(&str, Result<(), &str>)]) {
        for (input, expected) in cases {
            let actual = rule(input);
            assert_eq!(
                actual.as_ref().map_err(String::as_str),
                expected.as_ref().map_err(|e| *e),
                "for {input:?}"
            );
        }
    }

    const SUBDOMAIN_CHARS: &str =
        "must consist of lowercase letters, digits, `-` and `.`, and start and end with a letter or digit";
    const LABEL_CHARS: &str =
        "must consist of lowercase letters, digits and `-`, and start and end with a letter or digit";

    #[test]
    fn subdomains() {
        let long = "a".repeat(254);
        let longest = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        check(
            dns1123_subdomain,
            &[
                ("web", Ok(())),
                ("web-1.example.com", Ok(())),
                ("0", Ok(())),
                (&longest, Ok(())),
                ("", Err("must not be empty")),
                ("Web", Err(SUBDOMAIN_CHARS)),
                ("web_1", Err(SUBDOMAIN_CHARS)),
                ("-web", Err(SUBDOMAIN_CHARS)),
                ("web.", Err(SUBDOMAIN_CHARS)),
                ("a..b", Err(SUBDOMAIN_CHARS)),
                (&long, Err("must be at most 253 characters (has 254)")),
            ],
        );
    }

    #[test]
    fn labels() {
        let long = "a".repeat(64);
        check(
            dns1123_label,
            &[
                ("nginx", Ok(())),
                ("a-1", Ok(())),
                (&"a".repeat(63), Ok(())),
                ("a.b", Err(LABEL_CHARS)),
                ("A", Err(LABEL_CHARS)),
                ("a-", Err(LABEL_CHARS)),
                (&long, Err("must be at most 63 characters (has 64)")),
            ],
        );
    }

    #[test]
    fn port_names() {
        check(
            port_name,
            &[
                ("http", Ok(())),
                ("http-alt2", Ok(())),
                ("8080", Err("must contain at least one letter")),
                ("a--b", Err("must not contain `--`")),
                ("-http", Err("must not start or end with `-`")),
                (
                    "Http",
                    Err("must consist of lowercase letters, digits and `-`"),
                ),
                (
                    "a-very-long-port-name",
                    Err("must be at most 15 characters (has 21)"),
                ),
            ],
        );
    }

    #[test]
    fn qualified_names() {
        let long = "a".repeat(64);
        check(
            qualified_name,
            &[
                ("app", Ok(())),
                ("app.kubernetes.io/name", Ok(())),
                ("Tier_1.x", Ok(())),
                ("/app", Err("prefix before `/` must not be empty")),
                ("example.com/", Err("name part must not be empty")),
                ("Example.com/app", Err(&format!("prefix `Example.com` {SUBDOMAIN_CHARS}"))),
                ("a/b/c", Err("name part must consist of letters, digits, `-`, `_` and `.`, and start and end with a letter or digit")),
                (&long, Err("name part must be at most 63 characters (has 64)")),
                ("-app", Err("name part must consist of letters, digits, `-`, `_` and `.`, and start and end with a letter or digit")),
            ],
        );
    }

    #[test]
    fn label_values() {
        let long = "v".repeat(64);
        check(
            label_value,
            &[
                ("", Ok(())),
                ("v1.2_3-rc", Ok(())),
                ("has space", Err("must consist of letters, digits, `-`, `_` and `.`, and start and end with a letter or digit")),
                ("-x", Err("must consist of letters, digits, `-`, `_` and `.`, and start and end with a letter or digit")),
                (&long, Err("must be at most 63 characters (has 64)")),
            ],
        );
    }

    #[test]
    fn env_var_names() {
        check(
            env_var_name,
            &[
                ("PATH", Ok(())),
                ("my.var-1", Ok(())),
                ("1X", Err("must not start with a digit")),
                (
                    "A B",
                    Err("must consist of letters, digits, `_`, `-` and `.`"),
                ),
                ("", Err("must not be empty")),
            ],
        );
    }

    #[test]
    fn suggestions() {
        let fields = ["replicas", "selector", "template", "strategy", "paused"];
        let cases = [
            ("replica", Some("replicas")),
            ("Replicas", Some("replicas")),
            ("selecter", Some("selector")),
            ("templates", Some("template")),
            ("pause", Some("paused")),
            ("image", None),
            ("x", None),
        ];
        for (word, expected) in cases {
            assert_eq!(did_you_mean(word, &fields), expected, "for {word:?}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
