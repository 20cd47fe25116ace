//! Docker's image reference grammar (distribution/reference, which the
//! Docker daemon parses every image name with):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component { "/" path-component }
//! domain     := host [ ":" port ]
//! host       := domain-component { "." domain-component } | "[" ipv6 "]"
//! path-component := [a-z0-9]+ { separator [a-z0-9]+ },  separator := "." | "_" | "__" | "-"+
//! tag        := [\w][\w.-]{0,127}
//! digest     := algorithm ":" hex   (sha256, sha384 or sha512, lowercase hex of their length)
//! ```
//!
//! A name as Docker normalizes it (`busybox` is `docker.io/library/busybox`)
//! is at most 255 characters, and a 64-digit hexadecimal string is an image
//! ID, not a name. Whatever passes here is made only of characters that
//! need no escaping in a URL path (no `?`, `#`, `%`, space, no `..`
//! segment), so the node seam can put it in a Docker API path as it is.

/// Docker's limit on a repository name (distribution/reference's
/// `RepositoryNameTotalLengthMax`), applied to the normalized name.
pub(crate) const NAME_MAX: usize = 255;

/// The digest algorithms the Docker daemon knows, with their hex length.
const DIGEST_ALGORITHMS: [(&str, usize); 3] = [("sha256", 64), ("sha384", 96), ("sha512", 128)];

/// Checks `image` against Docker's reference grammar. The reason completes
/// "invalid image `...`: ".
pub(crate) fn check(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("must not be empty".to_string());
    }
    if image.len() == 64
        && image
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("a 64-digit hexadecimal string is an image ID, not a reference".to_string());
    }
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (image, None),
    };
    // A tag follows the last `:` after the last `/`; a `:` before a `/` is
    // the registry's port.
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    check_name(name)?;
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the repository name is empty".to_string());
    }
    // The first component is the registry's when it cannot be a path
    // component (`localhost:5000`, `Registry`, `[::1]`); one that can be
    // either (`localhost`, `example.com`) is valid either way.
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if path_component(first).is_err() => {
            check_domain(first)?;
            (Some(first), rest)
        }
        _ => (None, name),
    };
    for component in path.split('/') {
        path_component(component).map_err(|reason| {
            if path_component(&component.to_ascii_lowercase()).is_ok() {
                format!("repository name `{path}` must be lowercase")
            } else {
                format!("path component `{component}` {reason}")
            }
        })?;
    }
    // docker.io/library/busybox: the length Docker checks after it adds
    // the default registry and, for one-component names, `library/`.
    // Docker takes a first component with a dot or a port, or
    // `localhost`, as the registry.
    let first = name.split('/').next().unwrap_or(name);
    let has_registry = domain.is_some()
        || (name.contains('/') && (first == "localhost" || first.contains(['.', ':'])));
    let normalized = if has_registry {
        name.len()
    } else if name.contains('/') {
        "docker.io/".len() + name.len()
    } else {
        "docker.io/library/".len() + name.len()
    };
    if normalized > NAME_MAX {
        return Err(format!(
            "the repository name must be at most {NAME_MAX} characters as Docker \
             normalizes it (has {normalized})"
        ));
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn path_component(component: &str) -> Result<(), &'static str> {
    const RULE: &str = "must be lowercase letters and digits, separated by one `.`, \
                        one or two `_`, or `-`s";
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if alnum(first) && alnum(last) => {}
        (None, _) => return Err("must not be empty"),
        _ => return Err(RULE),
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        match &component[start..i] {
            "." | "_" | "__" => {}
            run if run.bytes().all(|b| b == b'-') => {}
            _ => return Err(RULE),
        }
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    let invalid = || {
        format!(
            "registry `{domain}` must be a host name, an IPv4 address or an IPv6 address \
             in brackets, with an optional `:port`"
        )
    };
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or_else(invalid)?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid());
        }
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or_else(invalid)?),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let bytes = c.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last))
                    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() =>
                {
                    bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                }
                _ => false,
            }
        };
        if !host.split('.').all(component_ok) {
            return Err(invalid());
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = tag.len() <= 128
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` must be at most 128 letters, digits, `_`, `.` and `-`, \
             not starting with `.` or `-`"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let known = DIGEST_ALGORITHMS
        .iter()
        .map(|(algorithm, _)| *algorithm)
        .collect::<Vec<_>>()
        .join(", ");
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!(
            "digest `{digest}` must be `algorithm:hex` ({known})"
        ));
    };
    let Some((_, length)) = DIGEST_ALGORITHMS.iter().find(|(a, _)| *a == algorithm) else {
        return Err(format!(
            "digest algorithm `{algorithm}` is not one Docker knows ({known})"
        ));
    };
    if hex.len() != *length || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "a {algorithm} digest is {length} lowercase hexadecimal digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    /// Cases from distribution/reference's own tests (reference_test.go,
    /// normalize_test.go), plus flotilla's.
    #[test]
    fn docker_reference_grammar() {
        let valid = [
            "busybox".to_string(),
            "busybox:1.36".into(),
            "library/busybox:latest".into(),
            "test_com".into(),
            "test.com:tag".into(),
            "test.com:5000".into(),
            "test.com/repo:tag".into(),
            "test:5000/repo".into(),
            "test:5000/repo:tag".into(),
            format!("test:5000/repo@sha256:{SHA256}"),
            format!("test:5000/repo:tag@sha256:{SHA256}"),
            "lowercase:Uppercase".into(),
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            "xn--n3h.com/myimage:xn--n3h.com".into(),
            "foo_bar.com:8080".into(),
            "foo/foo_bar.com:8080".into(),
            "foo_bar.com/x".into(),
            "192.168.1.1".into(),
            "192.168.1.1:5000/repo:5050".into(),
            "[2001:db8::1]/repo".into(),
            "[2001:db8::1]:5000/repo:tag".into(),
            "[::1]:5000/repo".into(),
            "localhost/app".into(),
            "localhost:5000/app:2".into(),
            "Registry.Example/team/app".into(),
            "a__b/c---d/e.f:1".into(),
            format!("{}a:tag-puts-this-over-max", "a/".repeat(100)),
            format!("app:{}", "t".repeat(128)),
            format!("app@sha512:{}", "0".repeat(128)),
            // 255 characters as Docker normalizes it.
            "a".repeat(NAME_MAX - "docker.io/library/".len()),
            format!(
                "example.com/{}",
                "a".repeat(NAME_MAX - "example.com/".len())
            ),
        ];
        for image in &valid {
            assert_eq!(check(image), Ok(()), "{image}");
        }
        let invalid = [
            ("", "must not be empty".to_string()),
            (":justtag", "the repository name is empty".into()),
            ("x/../../containers/json?", "path component `..` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("app:1?x", "tag `1?x` must be at most 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`".into()),
            ("app#frag", "path component `app#frag` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("app%2F..", "path component `app%2F..` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("Uppercase:tag", "repository name `Uppercase` must be lowercase".into()),
            ("test:5000/Uppercase/lowercase:tag", "repository name `Uppercase/lowercase` must be lowercase".into()),
            ("aa/asdf$$^/aa", "path component `asdf$$^` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("a//b", "path component `` must not be empty".into()),
            ("app/", "path component `` must not be empty".into()),
            ("-app", "path component `-app` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("a___b", "path component `a___b` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("a.-b", "path component `a.-b` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("[2001:db8::1]", "path component `[2001:db8:` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("[2001:db8::1]:5000", "path component `[2001:db8::1]` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
            ("[fe80::1%eth0]:5000/repo", "registry `[fe80::1%eth0]:5000` must be a host name, an IPv4 address or an IPv6 address in brackets, with an optional `:port`".into()),
            ("exa_mple.com:5000/app", "registry `exa_mple.com:5000` must be a host name, an IPv4 address or an IPv6 address in brackets, with an optional `:port`".into()),
            ("localhost:/app", "registry `localhost:` must be a host name, an IPv4 address or an IPv6 address in brackets, with an optional `:port`".into()),
            ("app:.x", "tag `.x` must be at most 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`".into()),
            ("app:", "tag `` must be at most 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`".into()),
            ("@sha256:ffff", "the repository name is empty".into()),
            ("repo@sha256:ffffffffffffffffffffffffffffffffff", "a sha256 digest is 64 lowercase hexadecimal digits".into()),
            (&*format!("repo@sha256:{}", SHA256.to_uppercase()), "a sha256 digest is 64 lowercase hexadecimal digits".into()),
            (&*format!("validname@invaliddigest:{SHA256}"), "digest algorithm `invaliddigest` is not one Docker knows (sha256, sha384, sha512)".into()),
            ("app@sha256", "digest `sha256` must be `algorithm:hex` (sha256, sha384, sha512)".into()),
            (&*format!("app@sha256:{SHA256}@x"), "a sha256 digest is 64 lowercase hexadecimal digits".into()),
            (SHA256, "a 64-digit hexadecimal string is an image ID, not a reference".into()),
            ("has space", "path component `has space` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s".into()),
        ];
        for (image, reason) in &invalid {
            assert_eq!(check(image), Err(reason.clone()), "{image}");
        }
        let long_tag = format!("app:{}", "t".repeat(129));
        assert!(check(&long_tag).is_err());
        let long = "a".repeat(NAME_MAX - "docker.io/library/".len() + 1);
        assert_eq!(
            check(&long),
            Err("the repository name must be at most 255 characters as Docker normalizes it (has 256)".to_string())
        );
        let long_path = format!("domain/{}:tag", "a".repeat(256));
        assert!(check(&long_path).is_err());
    }

    /// Whatever passes is safe as it is in a URL path: no character that
    /// ends a path or needs escaping, and no `..` segment.
    #[test]
    fn a_valid_reference_needs_no_escaping_in_a_path() {
        for image in [
            "busybox".to_string(),
            format!("[::1]:5000/a.b/c__d/e---f:T_1.x-y@sha256:{SHA256}"),
        ] {
            assert_eq!(check(&image), Ok(()));
            assert!(!image
                .split('/')
                .any(|segment| segment == ".." || segment == "."));
            assert!(image
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:@[]".contains(&b)));
        }
    }
}
