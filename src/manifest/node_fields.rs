//! What a Node's `address`, `user`, `identityFile` and `dockerSocket` may
//! hold. They leave flotilla verbatim (an SSH connection, a line that trust
//! on first use appends to known_hosts, a key file or a socket opened), so
//! each is held to the shape its field means: a host name or an IP address,
//! a POSIX user name, an absolute path. Pure: text in, verdict out.

// `core::net`: parsing an address literal is not I/O.
use core::net::IpAddr;

/// Why a value was refused, and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub message: String,
    pub hint: &'static str,
}

fn invalid(message: String, hint: &'static str) -> Result<(), Invalid> {
    Err(Invalid { message, hint })
}

/// The longest host name DNS can carry (RFC 1035), and the longest label.
const MAX_HOST_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// A host name (RFC 1123 labels of letters, digits and `-`, any case, no
/// trailing dot) or an IP address literal (IPv6 without brackets).
pub(crate) fn check_address(address: &str) -> Result<(), Invalid> {
    const HINT: &str =
        "write one host name (such as node-1.example.com) or one IP address (10.0.0.1, fd00::1)";
    if address.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if address.is_empty() {
        return invalid("the address is empty".into(), HINT);
    }
    if address.starts_with('[') || address.contains(':') {
        return invalid(
            format!("{address:?} is not an IP address"),
            "write an IPv6 address without brackets or zone (fd00::1); the port goes in `spec.port`",
        );
    }
    if let Some(bad) = address
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return invalid(
            format!("{address:?} is not a host name or IP address: it contains {bad:?}"),
            HINT,
        );
    }
    if address.len() > MAX_HOST_NAME {
        return invalid(
            format!(
                "the host name is {} characters long, more than {MAX_HOST_NAME}",
                address.len()
            ),
            HINT,
        );
    }
    for label in address.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return invalid(
                format!(
                    "{address:?} is not a host name: each dot-separated part must be 1 to {MAX_LABEL} characters"
                ),
                HINT,
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid(
                format!("{address:?} is not a host name: a part starts or ends with `-`"),
                HINT,
            );
        }
    }
    // `10.1` or `0x7f.1` would be read as an IPv4 address by the resolver:
    // a name's last part is never all digits.
    if address
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return invalid(
            format!("{address:?} looks like an IPv4 address but is not one"),
            HINT,
        );
    }
    Ok(())
}

/// The longest user name most systems accept (`useradd`, utmp).
const MAX_USER: usize = 32;

/// A POSIX user name: 1 to 32 of letters, digits, `.`, `_` and `-`, not
/// starting with `-` (which ssh would read as an option).
pub(crate) fn check_user(user: &str) -> Result<(), Invalid> {
    const HINT: &str =
        "write the name of the user to log in as on the node, such as `root` or `deploy`";
    if user.is_empty() {
        return invalid("the user name is empty".into(), HINT);
    }
    if user.len() > MAX_USER {
        return invalid(
            format!(
                "the user name is {} characters long, more than {MAX_USER}",
                user.len()
            ),
            HINT,
        );
    }
    if let Some(bad) = user
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(
            format!("{user:?} is not a user name: it contains {bad:?}"),
            HINT,
        );
    }
    if user.starts_with('-') {
        return invalid(
            format!("{user:?} is not a user name: it starts with `-`"),
            HINT,
        );
    }
    Ok(())
}

/// The longest path Linux opens (`PATH_MAX` less its terminating NUL), and
/// the longest path a Unix socket address holds (`sun_path` less its NUL).
const MAX_PATH: usize = 4095;
const MAX_SOCKET_PATH: usize = 107;

/// The SSH key file: an absolute path, or one under the home directory
/// (`~/`), without control characters.
pub(crate) fn check_identity_file(path: &str) -> Result<(), Invalid> {
    const HINT: &str = "write an absolute path (/etc/flotilla/id_ed25519) or one under the home directory (~/.ssh/id_ed25519)";
    check_path_text(path, HINT)?;
    if !(path.starts_with('/') || path.starts_with("~/")) {
        return invalid(
            format!("{path:?} is not an absolute path or one under `~/`"),
            HINT,
        );
    }
    Ok(())
}

/// Docker's Unix socket on the node: an absolute path that fits a socket
/// address, without control characters.
pub(crate) fn check_socket_path(path: &str) -> Result<(), Invalid> {
    const HINT: &str = "write the absolute path of the Docker socket, such as /var/run/docker.sock";
    check_path_text(path, HINT)?;
    if !path.starts_with('/') {
        return invalid(format!("{path:?} is not an absolute path"), HINT);
    }
    if path.len() > MAX_SOCKET_PATH {
        return invalid(
            format!(
                "the socket path is {} bytes long, more than the {MAX_SOCKET_PATH} a Unix socket address holds",
                path.len()
            ),
            HINT,
        );
    }
    Ok(())
}

fn check_path_text(path: &str, hint: &'static str) -> Result<(), Invalid> {
    if path.is_empty() {
        return invalid("the path is empty".into(), hint);
    }
    if let Some(bad) = path.chars().find(|c| c.is_control()) {
        return invalid(
            format!("the path contains the control character {bad:?}"),
            hint,
        );
    }
    if path.len() > MAX_PATH {
        return invalid(
            format!(
                "the path is {} bytes long, more than {MAX_PATH}",
                path.len()
            ),
            hint,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in [
            "10.0.0.1",
            "fd00::1",
            "::1",
            "node-1",
            "Node-1.Example.COM",
            "a",
            "1node.example",
            &format!("{}.example", "a".repeat(63)),
        ] {
            assert_eq!(check_address(good), Ok(()), "{good:?}");
        }
        for (bad, message) in [
            ("", "the address is empty"),
            (
                "a,b",
                "\"a,b\" is not a host name or IP address: it contains ','",
            ),
            (
                "*",
                "\"*\" is not a host name or IP address: it contains '*'",
            ),
            (
                "n?.example",
                "\"n?.example\" is not a host name or IP address: it contains '?'",
            ),
            (
                "!a",
                "\"!a\" is not a host name or IP address: it contains '!'",
            ),
            (
                "a b",
                "\"a b\" is not a host name or IP address: it contains ' '",
            ),
            (
                "a\nb",
                "\"a\\nb\" is not a host name or IP address: it contains '\\n'",
            ),
            (
                "a_b",
                "\"a_b\" is not a host name or IP address: it contains '_'",
            ),
            ("[::1]", "\"[::1]\" is not an IP address"),
            ("fe80::1%eth0", "\"fe80::1%eth0\" is not an IP address"),
            ("10.0.0.1:22", "\"10.0.0.1:22\" is not an IP address"),
            (
                "a..b",
                "\"a..b\" is not a host name: each dot-separated part must be 1 to 63 characters",
            ),
            (
                "a.",
                "\"a.\" is not a host name: each dot-separated part must be 1 to 63 characters",
            ),
            (
                "-a",
                "\"-a\" is not a host name: a part starts or ends with `-`",
            ),
            (
                "a-.b",
                "\"a-.b\" is not a host name: a part starts or ends with `-`",
            ),
            ("10.1", "\"10.1\" looks like an IPv4 address but is not one"),
            (
                "256.0.0.1",
                "\"256.0.0.1\" looks like an IPv4 address but is not one",
            ),
        ] {
            assert_eq!(
                check_address(bad).map_err(|e| e.message),
                Err(message.to_string()),
                "{bad:?}"
            );
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(check_address(&long_label).is_err());
        let long_name = ["abcdefghij"; 25].join(".");
        assert_eq!(
            check_address(&long_name).map_err(|e| e.message),
            Err("the host name is 274 characters long, more than 253".to_string())
        );
    }

    #[test]
    fn users() {
        for good in ["root", "deploy", "svc.flotilla", "a_b-c", "1000"] {
            assert_eq!(check_user(good), Ok(()), "{good:?}");
        }
        for (bad, message) in [
            ("", "the user name is empty"),
            (
                "-oProxyCommand=x",
                "\"-oProxyCommand=x\" is not a user name: it contains '='",
            ),
            ("-root", "\"-root\" is not a user name: it starts with `-`"),
            ("a b", "\"a b\" is not a user name: it contains ' '"),
            ("a\nb", "\"a\\nb\" is not a user name: it contains '\\n'"),
            ("a@b", "\"a@b\" is not a user name: it contains '@'"),
        ] {
            assert_eq!(
                check_user(bad).map_err(|e| e.message),
                Err(message.to_string()),
                "{bad:?}"
            );
        }
        assert!(check_user(&"a".repeat(33)).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(check_identity_file("/etc/flotilla/id_ed25519"), Ok(()));
        assert_eq!(check_identity_file("~/.ssh/id_ed25519"), Ok(()));
        assert_eq!(check_socket_path("/var/run/docker.sock"), Ok(()));
        for (bad, message) in [
            ("", "the path is empty"),
            (
                "id_ed25519",
                "\"id_ed25519\" is not an absolute path or one under `~/`",
            ),
            (
                "~root/.ssh/id",
                "\"~root/.ssh/id\" is not an absolute path or one under `~/`",
            ),
            ("/a\nb", "the path contains the control character '\\n'"),
            ("/a\0b", "the path contains the control character '\\0'"),
        ] {
            assert_eq!(
                check_identity_file(bad).map_err(|e| e.message),
                Err(message.to_string()),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_socket_path("~/docker.sock").map_err(|e| e.message),
            Err("\"~/docker.sock\" is not an absolute path".to_string())
        );
        assert_eq!(
            check_socket_path(&format!("/{}", "s".repeat(107))).map_err(|e| e.message),
            Err(
                "the socket path is 108 bytes long, more than the 107 a Unix socket address holds"
                    .to_string()
            )
        );
        assert!(check_identity_file(&format!("/{}", "k".repeat(4095))).is_err());
    }
}
