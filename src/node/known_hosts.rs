//! OpenSSH's known_hosts format: which key a host is known by.
//!
//! Supports plain and `[host]:port` patterns, comma-separated lists,
//! negation (`!pattern`), wildcards (`*`, `?`), hashed entries
//! (`|1|salt|hash`, HMAC-SHA1 of the pattern) and the `@revoked` marker.
//! `@cert-authority` lines are skipped: flotilla does not accept host
//! certificates. The verdict is a pure function of the file's text.

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey};
use sha1::Sha1;

/// What known_hosts says of a host's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// An entry for the host has this key.
    Known,
    /// No entry for the host at all.
    Unknown,
    /// The host has entries, none with this key: the first of them is on
    /// (1-based) `line`. A key of another algorithm than the recorded ones
    /// is changed too, never unknown: a host once recorded is never trusted
    /// on first use again.
    Changed { line: usize },
    /// The key is marked `@revoked` on `line`.
    Revoked { line: usize },
}

/// How a host appears in known_hosts: `host` on port 22, `[host]:port` otherwise.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks `key` for `host:port` against the text of a known_hosts file.
pub fn check(known_hosts: &str, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    let wanted = host_pattern(host, port);
    let mut changed = None;
    for (index, line) in known_hosts.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut marker = None;
        let Some(mut hosts) = fields.next() else {
            continue;
        };
        if hosts.starts_with('@') {
            marker = Some(hosts);
            let Some(next) = fields.next() else { continue };
            hosts = next;
        }
        let (Some(_algorithm), Some(encoded)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(hosts, &wanted) {
            continue;
        }
        let Ok(recorded) = russh::keys::parse_public_key_base64(encoded) else {
            continue;
        };
        match marker {
            Some("@revoked") if recorded == *key => {
                return HostKeyStatus::Revoked { line: line_number }
            }
            Some(_) => continue,
            None => {}
        }
        if recorded == *key {
            return HostKeyStatus::Known;
        }
        if changed.is_none() {
            changed = Some(line_number);
        }
    }
    match changed {
        Some(line) => HostKeyStatus::Changed { line },
        None => HostKeyStatus::Unknown,
    }
}

/// The algorithms of the keys recorded for `host:port` (not `@revoked` or
/// `@cert-authority` lines), in file order without repeats: what the client
/// offers to accept in key exchange, as OpenSSH does, so that a host with
/// several keys shows the recorded one.
pub fn recorded_algorithms(known_hosts: &str, host: &str, port: u16) -> Vec<Algorithm> {
    let wanted = host_pattern(host, port);
    let mut algorithms = Vec::new();
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_), Some(encoded)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !hosts_match(hosts, &wanted) {
            continue;
        }
        if let Ok(recorded) = russh::keys::parse_public_key_base64(encoded) {
            let algorithm = recorded.algorithm();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
    }
    algorithms
}

/// The line to append to record `key` for `host:port`.
pub fn entry(host: &str, port: u16, key: &PublicKey) -> String {
    let openssh = key.to_openssh().unwrap_or_default();
    // `to_openssh` may append the key's comment; known_hosts wants two fields.
    let key_fields: Vec<&str> = openssh.split_whitespace().take(2).collect();
    format!("{} {}", host_pattern(host, port), key_fields.join(" "))
}

/// A comma-separated pattern list matches when one pattern matches and no
/// negated pattern does.
fn hosts_match(patterns: &str, wanted: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if pattern_matches(negated, wanted) {
                return false;
            }
        } else if pattern_matches(pattern, wanted) {
            matched = true;
        }
    }
    matched
}

fn pattern_matches(pattern: &str, wanted: &str) -> bool {
    if let Some(hashed) = pattern.strip_prefix("|1|") {
        return hashed_matches(hashed, wanted);
    }
    glob_matches(pattern.as_bytes(), wanted.as_bytes())
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`.
fn hashed_matches(hashed: &str, wanted: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(wanted.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// OpenSSH's host glob: `*` any run, `?` one character; case-insensitive.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_matches(rest, &text[1..]),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, text)| t.eq_ignore_ascii_case(c) && glob_matches(rest, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(encoded: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(encoded).expect("test key parses")
    }

    fn hashed(host: &str) -> String {
        let salt = [7u8; 20];
        let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt)
            .expect("any salt length")
            .chain_update(host.as_bytes())
            .finalize()
            .into_bytes();
        format!("|1|{}|{}", BASE64.encode(&salt), BASE64.encode(&mac))
    }

    fn check_case(file: &str, host: &str, port: u16, encoded: &str, expected: HostKeyStatus) {
        assert_eq!(
            check(file, host, port, &key(encoded)),
            expected,
            "file:\n{file}\nhost {host}:{port}"
        );
    }

    #[test]
    fn verdicts() {
        let plain = format!("# comment\n\n10.0.0.1 ssh-ed25519 {KEY_A}\n");
        check_case(&plain, "10.0.0.1", 22, KEY_A, HostKeyStatus::Known);
        check_case(
            &plain,
            "10.0.0.1",
            22,
            KEY_B,
            HostKeyStatus::Changed { line: 3 },
        );
        check_case(&plain, "10.0.0.2", 22, KEY_A, HostKeyStatus::Unknown);
        // A non-default port is recorded as [host]:port and matched only so.
        check_case(&plain, "10.0.0.1", 2222, KEY_A, HostKeyStatus::Unknown);
        let ported = format!("[10.0.0.1]:2222 ssh-ed25519 {KEY_A}\n");
        check_case(&ported, "10.0.0.1", 2222, KEY_A, HostKeyStatus::Known);
        check_case(&ported, "10.0.0.1", 22, KEY_A, HostKeyStatus::Unknown);

        let list = format!("a.example,10.0.0.1 ssh-ed25519 {KEY_A}\n");
        check_case(&list, "10.0.0.1", 22, KEY_A, HostKeyStatus::Known);
        let glob = format!("*.example,!bad.example ssh-ed25519 {KEY_A}\n");
        check_case(&glob, "n1.example", 22, KEY_A, HostKeyStatus::Known);
        check_case(&glob, "bad.example", 22, KEY_A, HostKeyStatus::Unknown);

        let hashed_file = format!("{} ssh-ed25519 {KEY_A}\n", hashed("10.0.0.1"));
        check_case(&hashed_file, "10.0.0.1", 22, KEY_A, HostKeyStatus::Known);
        check_case(
            &hashed_file,
            "10.0.0.1",
            22,
            KEY_B,
            HostKeyStatus::Changed { line: 1 },
        );
        check_case(&hashed_file, "10.0.0.9", 22, KEY_A, HostKeyStatus::Unknown);
        let hashed_port = format!("{} ssh-ed25519 {KEY_A}\n", hashed("[10.0.0.1]:2222"));
        check_case(&hashed_port, "10.0.0.1", 2222, KEY_A, HostKeyStatus::Known);

        // The matching key wins over an older mismatching line.
        let both = format!("h ssh-ed25519 {KEY_B}\nh ssh-ed25519 {KEY_A}\n");
        check_case(&both, "h", 22, KEY_A, HostKeyStatus::Known);
        let revoked = format!("@revoked * ssh-ed25519 {KEY_A}\nh ssh-ed25519 {KEY_A}\n");
        check_case(&revoked, "h", 22, KEY_A, HostKeyStatus::Revoked { line: 1 });
        let ca = format!("@cert-authority h ssh-ed25519 {KEY_A}\n");
        check_case(&ca, "h", 22, KEY_A, HostKeyStatus::Unknown);
    }

    const KEY_ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOIA0EfWo64hS+3Z+Vo3oEfvltD709t6fcQ3L4yeTcR8D8qvDOkJSjAfQ7HX6ZC8gOlHlqFe+4aMyTqn5r1ln/Q=";

    #[test]
    fn a_recorded_host_offering_a_key_of_another_algorithm_is_changed() {
        // Only an ed25519 key recorded: an ECDSA key is not "unknown" (which
        // trust on first use would accept and record) but changed.
        let file = format!("other ssh-ed25519 {KEY_B}\nh ssh-ed25519 {KEY_A}\n");
        check_case(
            &file,
            "h",
            22,
            KEY_ECDSA,
            HostKeyStatus::Changed { line: 2 },
        );
        let hashed_file = format!("{} ssh-ed25519 {KEY_A}\n", hashed("10.0.0.1"));
        check_case(
            &hashed_file,
            "10.0.0.1",
            22,
            KEY_ECDSA,
            HostKeyStatus::Changed { line: 1 },
        );
        // A host with no entry is still unknown, whatever the algorithm.
        check_case(&file, "new", 22, KEY_ECDSA, HostKeyStatus::Unknown);
        // Both recorded: each is known.
        let both = format!("h ssh-ed25519 {KEY_A}\nh ecdsa-sha2-nistp256 {KEY_ECDSA}\n");
        check_case(&both, "h", 22, KEY_ECDSA, HostKeyStatus::Known);
        check_case(&both, "h", 22, KEY_A, HostKeyStatus::Known);
    }

    #[test]
    fn recorded_algorithms_of_a_host() {
        let file = format!(
            "h ecdsa-sha2-nistp256 {KEY_ECDSA}\n@revoked h ssh-ed25519 {KEY_B}\nh,g ssh-ed25519 {KEY_A}\nh ssh-ed25519 {KEY_B}\nother ssh-ed25519 {KEY_A}\n"
        );
        assert_eq!(
            recorded_algorithms(&file, "h", 22),
            [
                Algorithm::Ecdsa {
                    curve: russh::keys::EcdsaCurve::NistP256
                },
                Algorithm::Ed25519
            ]
        );
        assert_eq!(recorded_algorithms(&file, "g", 22), [Algorithm::Ed25519]);
        assert_eq!(recorded_algorithms(&file, "new", 22), []);
    }

    #[test]
    fn recorded_entry_is_checked_as_known() {
        let line = entry("10.0.0.1", 2222, &key(KEY_A));
        assert_eq!(line, format!("[10.0.0.1]:2222 ssh-ed25519 {KEY_A}"));
        check_case(&line, "10.0.0.1", 2222, KEY_A, HostKeyStatus::Known);
    }
}
