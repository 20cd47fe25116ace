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

/// Linux's limit on a host name is 64 bytes (HOST_NAME_MAX; runc refuses a
/// longer one, moby#36402); a DNS label, what Kubernetes keeps a pod's
/// host name to, is 63.
pub const HOSTNAME_MAX: usize = 63;

/// The replica's host name: `<name>-<slot>`, cut to [`HOSTNAME_MAX`] the way
/// Kubernetes cuts a generated pod name: the name is shortened so that the
/// `-<slot>` suffix is kept (replicas keep distinct host names), and a `-`
/// or `.` the cut leaves at its end is dropped, so the result is always a
/// valid host name. Object names start and end with a letter or digit, so
/// something is always left of the name.
pub fn pod_hostname(name: &str, slot: u32) -> String {
    let suffix = format!("-{slot}");
    let room = HOSTNAME_MAX - suffix.len();
    let base = if name.len() > room {
        // Names are ASCII (DNS-1123), so any byte index is a boundary.
        name[..room].trim_end_matches(['-', '.'])
    } else {
        name
    };
    format!("{base}{suffix}")
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

/// A key of a ConfigMap's or a Secret's data (Kubernetes' IsConfigMapKey):
/// at most 253 letters, digits, `-`, `_` and `.`, neither `.` nor starting
/// with `..` (a key is also a file name in a volume).
pub(crate) fn config_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("must not be empty".to_string());
    }
    if key.len() > 253 {
        return Err(format!(
            "must be at most 253 characters, found {}",
            key.len()
        ));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("must consist of letters, digits, `-`, `_` and `.`".to_string());
    }
    if key == "." {
        return Err("must not be `.`".to_string());
    }
    if key.starts_with("..") {
        return Err("must not start with `..`".to_string());
    }
    Ok(())
}

/// A path inside a volume (`items[].path`, `subPath`): relative, without a
/// `..` element, so it cannot leave the volume (Kubernetes' rule).
pub(crate) fn relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_string());
    }
    if path.starts_with('/') {
        return Err("must be relative".to_string());
    }
    if path.split('/').any(|element| element == "..") {
        return Err("must not contain a `..` element".to_string());
    }
    Ok(())
}

/// A path on a node (`hostPath.path`, `allowedHostPaths[].pathPrefix`,
/// `git config flotilla.hostPaths`): absolute and normalized, without `.`,
/// `..` or empty elements, so that the path written is the path matched
/// against the policy (`/srv/data/../../etc` would pass a prefix check on
/// its text).
pub(crate) fn host_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_string());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must be absolute".to_string());
    };
    if rest.is_empty() {
        return Ok(());
    }
    for element in rest.split('/') {
        match element {
            "" => return Err("must not contain `//` or end with `/`".to_string()),
            "." => return Err("must not contain a `.` element".to_string()),
            ".." => return Err("must not contain a `..` element".to_string()),
            _ => {}
        }
    }
    if path.contains('\0') {
        return Err("must not contain a NUL character".to_string());
    }
    Ok(())
}

/// Whether `path` is `prefix` or below it, by whole elements (`/srv/data`
/// holds `/srv/data/x`, not `/srv/database`); both as [`host_path`] wants
/// them.
pub(crate) fn host_path_under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// An age X25519 recipient (`age1...`): Bech32 (BIP 173) with the
/// human-readable part `age`, lowercase, 62 characters holding a 32-byte
/// key, its checksum right. A syntax check: whether it is a point on the
/// curve is for age itself.
pub(crate) fn age_recipient(text: &str) -> Result<(), String> {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const LENGTH: usize = 62;
    let lowercase = text.to_ascii_lowercase();
    if !lowercase.starts_with("age1") {
        return Err("must start with `age1`".to_string());
    }
    if text.len() != LENGTH {
        return Err(format!(
            "must be {LENGTH} characters, found {}",
            text.chars().count()
        ));
    }
    if lowercase != text {
        return Err("must be lowercase".to_string());
    }
    let mut values = Vec::with_capacity(LENGTH);
    for byte in text[4..].bytes() {
        let Some(value) = CHARSET.iter().position(|&c| c == byte) else {
            return Err(format!(
                "`{}` is not a Bech32 character",
                char::from(byte).escape_default()
            ));
        };
        values.push(value as u8);
    }
    // The human-readable part expanded, then the data with its checksum.
    let hrp = b"age";
    let expanded = hrp
        .iter()
        .map(|c| c >> 5)
        .chain([0])
        .chain(hrp.iter().map(|c| c & 31));
    if bech32_polymod(expanded.chain(values.iter().copied())) != 1 {
        return Err("its checksum is wrong (a character is mistyped or missing)".to_string());
    }
    // 52 five-bit groups hold the 256-bit key and 4 zero bits.
    if values[51] & 0x0f != 0 {
        return Err("its last character before the checksum has padding bits set".to_string());
    }
    Ok(())
}

/// Bech32's checksum: 1 for a valid string (BIP 173).
fn bech32_polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GENERATOR: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut checksum: u32 = 1;
    for value in values {
        let top = checksum >> 25;
        checksum = ((checksum & 0x01ff_ffff) << 5) ^ u32::from(value);
        for (i, generator) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                checksum ^= generator;
            }
        }
    }
    checksum
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
    fn config_keys() {
        check(
            config_key,
            &[
                ("app.properties", Ok(())),
                ("tls.crt", Ok(())),
                (".dockerconfigjson", Ok(())),
                ("A_b-1", Ok(())),
                ("", Err("must not be empty")),
                (".", Err("must not be `.`")),
                ("..", Err("must not start with `..`")),
                ("..data", Err("must not start with `..`")),
                (
                    "a/b",
                    Err("must consist of letters, digits, `-`, `_` and `.`"),
                ),
                (
                    "a b",
                    Err("must consist of letters, digits, `-`, `_` and `.`"),
                ),
            ],
        );
        assert_eq!(config_key(&"k".repeat(253)), Ok(()));
        assert_eq!(
            config_key(&"k".repeat(254)),
            Err("must be at most 253 characters, found 254".to_string())
        );
    }

    #[test]
    fn relative_paths() {
        check(
            relative_path,
            &[
                ("app.conf", Ok(())),
                ("conf/app.conf", Ok(())),
                ("..a/b", Ok(())),
                ("", Err("must not be empty")),
                ("/etc/app.conf", Err("must be relative")),
                ("../x", Err("must not contain a `..` element")),
                ("a/../../x", Err("must not contain a `..` element")),
                ("a/..", Err("must not contain a `..` element")),
            ],
        );
    }

    #[test]
    fn host_paths() {
        check(
            host_path,
            &[
                ("/srv/data", Ok(())),
                ("/", Ok(())),
                ("/srv/..data", Ok(())),
                ("", Err("must not be empty")),
                ("srv/data", Err("must be absolute")),
                ("/srv//data", Err("must not contain `//` or end with `/`")),
                ("/srv/data/", Err("must not contain `//` or end with `/`")),
                ("/srv/./data", Err("must not contain a `.` element")),
                (
                    "/srv/data/../../etc",
                    Err("must not contain a `..` element"),
                ),
            ],
        );
        for (path, prefix, under) in [
            ("/srv/data", "/srv/data", true),
            ("/srv/data/x", "/srv/data", true),
            ("/srv/database", "/srv/data", false),
            ("/srv", "/srv/data", false),
            ("/anything", "/", true),
        ] {
            assert_eq!(
                host_path_under(path, prefix),
                under,
                "{path} under {prefix}"
            );
        }
    }

    #[test]
    fn age_recipients() {
        // The recipient of age's README.
        let valid = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        assert_eq!(age_recipient(valid), Ok(()));
        let mistyped = valid.replace("ql3z", "ql3y");
        let upper = valid.to_ascii_uppercase();
        let bad_char = valid.replace("ql3z", "ql3b");
        let cases = [
            (
                mistyped.as_str(),
                "its checksum is wrong (a character is mistyped or missing)",
            ),
            (upper.as_str(), "must be lowercase"),
            (bad_char.as_str(), "`b` is not a Bech32 character"),
            ("age1ql3z", "must be 62 characters, found 8"),
            ("AGE-SECRET-KEY-1QQ", "must start with `age1`"),
            ("ssh-ed25519 AAAA", "must start with `age1`"),
        ];
        for (text, expected) in cases {
            assert_eq!(age_recipient(text), Err(expected.to_string()), "{text}");
        }
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
