//! OpenSSH's known_hosts format: which key a host is known by.
//!
//! Matches as `ssh` does (OpenSSH's `hostfile.c` and `match.c`): the host is
//! looked up lower-cased, as `host` on port 22 and `[host]:port` otherwise;
//! a plain entry is a comma-separated list of case-insensitive patterns with
//! negation (`!pattern`) and wildcards (`*`, `?`); a hashed entry
//! (`|1|salt|hash`, HMAC-SHA1 of the lower-cased lookup name, as
//! `ssh-keygen -H` writes it) is one name and the whole field. An
//! `@revoked` key is refused whatever the order of the lines.
//! `@cert-authority` lines are skipped: flotilla does not accept host
//! certificates. The verdict is a pure function of the file's text.

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey};
use sha1::Sha1;

/// What known_hosts says of a host's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostKeyStatus {
    /// An entry for the host has this key.
    Known,
    /// No entry for the host at all.
    Unknown,
    /// The host has entries, none with this key: the first of them is on
    /// (1-based) `line`. A key of another algorithm than the recorded ones
    /// is changed too, never unknown: a host once recorded is never trusted
    /// on first use again.
    Changed { line: usize },
    /// The key is marked `@revoked` on `line`, for this host (or a pattern
    /// matching it), wherever that line is in the file.
    Revoked { line: usize },
}

/// The name a host is looked up (and recorded) by in known_hosts, as `ssh`
/// forms it: the host lower-cased, `[host]:port` on a port other than 22.
pub(crate) fn host_pattern(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// One line of known_hosts that names a key: its marker (`@revoked`...),
/// its host field and the key, still encoded.
struct Entry<'a> {
    line: usize,
    marker: Option<&'a str>,
    hosts: &'a str,
    encoded: &'a str,
}

fn entries(known_hosts: &str) -> impl Iterator<Item = Entry<'_>> {
    known_hosts.lines().enumerate().filter_map(|(index, line)| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut hosts = fields.next()?;
        let mut marker = None;
        if hosts.starts_with('@') {
            marker = Some(hosts);
            hosts = fields.next()?;
        }
        let (Some(_algorithm), Some(encoded)) = (fields.next(), fields.next()) else {
            return None;
        };
        Some(Entry {
            line: index + 1,
            marker,
            hosts,
            encoded,
        })
    })
}

/// Checks `key` for `host:port` against the text of a known_hosts file.
pub(crate) fn check(known_hosts: &str, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    let wanted = host_pattern(host, port);
    let for_host = || {
        entries(known_hosts)
            .filter(|entry| hosts_match(entry.hosts, &wanted))
            .filter_map(|entry| {
                let recorded = russh::keys::parse_public_key_base64(entry.encoded).ok()?;
                Some((entry.line, entry.marker, recorded))
            })
    };
    // As OpenSSH's `check_key_not_revoked`: a revocation counts wherever it
    // is, before or after a line that accepts the key.
    if let Some((line, _, _)) =
        for_host().find(|(_, marker, recorded)| *marker == Some("@revoked") && recorded == key)
    {
        return HostKeyStatus::Revoked { line };
    }
    let mut changed = None;
    for (line, marker, recorded) in for_host() {
        if marker.is_some() {
            continue;
        }
        if recorded == *key {
            return HostKeyStatus::Known;
        }
        changed.get_or_insert(line);
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
pub(crate) fn recorded_algorithms(known_hosts: &str, host: &str, port: u16) -> Vec<Algorithm> {
    let wanted = host_pattern(host, port);
    let mut algorithms = Vec::new();
    for entry in entries(known_hosts) {
        if entry.marker.is_some() || !hosts_match(entry.hosts, &wanted) {
            continue;
        }
        if let Ok(recorded) = russh::keys::parse_public_key_base64(entry.encoded) {
            let algorithm = recorded.algorithm();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
    }
    algorithms
}

/// The line to append to record `key` for `host:port`; `None` when `host`
/// is not a host name or IP address (manifest validation refuses such an
/// address first): a `,`, a wildcard, a space or a newline written into
/// known_hosts would make the entry vouch for other hosts, or add lines.
pub(crate) fn entry(host: &str, port: u16, key: &PublicKey) -> Option<String> {
    if crate::manifest::node_fields::check_address(host).is_err() {
        return None;
    }
    let openssh = key.to_openssh().unwrap_or_default();
    // `to_openssh` may append the key's comment; known_hosts wants two fields.
    let key_fields: Vec<&str> = openssh.split_whitespace().take(2).collect();
    Some(format!(
        "{} {}",
        host_pattern(host, port),
        key_fields.join(" ")
    ))
}

/// Whether the host field of a line names `wanted` (a lookup name from
/// [`host_pattern`]), as OpenSSH's `match_maybe_hashed`: a field that
/// starts with `|` is one hashed name; any other is a pattern list.
fn hosts_match(field: &str, wanted: &str) -> bool {
    if field.starts_with('|') {
        return hashed_matches(field, wanted);
    }
    pattern_list_matches(field, wanted)
}

/// A comma-separated pattern list matches when one pattern matches and no
/// negated pattern does (OpenSSH's `match_hostname`: both sides compared
/// lower-cased).
fn pattern_list_matches(patterns: &str, wanted: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_matches(negated.as_bytes(), wanted.as_bytes()) {
                return false;
            }
        } else if glob_matches(pattern.as_bytes(), wanted.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, the whole field.
fn hashed_matches(field: &str, wanted: &str) -> bool {
    let Some(hashed) = field.strip_prefix("|1|") else {
        return false;
    };
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
        let line = entry("10.0.0.1", 2222, &key(KEY_A)).unwrap();
        assert_eq!(line, format!("[10.0.0.1]:2222 ssh-ed25519 {KEY_A}"));
        check_case(&line, "10.0.0.1", 2222, KEY_A, HostKeyStatus::Known);
        // Recorded as ssh records it: lower case.
        let line = entry("Node-1.Example", 22, &key(KEY_A)).unwrap();
        assert_eq!(line, format!("node-1.example ssh-ed25519 {KEY_A}"));
        check_case(&line, "NODE-1.example", 22, KEY_A, HostKeyStatus::Known);
    }

    /// Regression (issue 10, item 4): trust on first use wrote the address
    /// verbatim, so `a,*` recorded a key for every host and a newline added
    /// lines of its own.
    #[test]
    fn an_address_that_is_not_a_host_is_never_recorded() {
        for address in [
            "a,b",
            "*",
            "n?.example",
            "!a",
            "a b",
            "a\nb ssh-ed25519 AAAA",
            "a\tb",
            "",
            "[::1]",
            "|1|x|y",
        ] {
            assert_eq!(entry(address, 22, &key(KEY_A)), None, "{address:?}");
        }
        assert!(entry("::1", 2222, &key(KEY_A))
            .unwrap()
            .starts_with("[::1]:2222 ssh-ed25519 "));
    }

    /// Regression (issue 10, item 4): a revocation appended after the line
    /// that accepts the key had no effect.
    #[test]
    fn a_revocation_counts_wherever_it_is() {
        let after = format!("h ssh-ed25519 {KEY_A}\n@revoked h ssh-ed25519 {KEY_A}\n");
        check_case(&after, "h", 22, KEY_A, HostKeyStatus::Revoked { line: 2 });
        let hashed_after = format!(
            "{} ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_A}\n",
            hashed("10.0.0.1")
        );
        check_case(
            &hashed_after,
            "10.0.0.1",
            22,
            KEY_A,
            HostKeyStatus::Revoked { line: 2 },
        );
        // A revocation for other hosts, or of another key, does not count.
        let elsewhere = format!(
            "h ssh-ed25519 {KEY_A}\n@revoked other ssh-ed25519 {KEY_A}\n@revoked h ssh-ed25519 {KEY_B}\n"
        );
        check_case(&elsewhere, "h", 22, KEY_A, HostKeyStatus::Known);
        // A revoked key with no other line for the host is still revoked.
        let only = format!("@revoked h ssh-ed25519 {KEY_A}\n");
        check_case(&only, "h", 22, KEY_A, HostKeyStatus::Revoked { line: 1 });
    }

    /// Regression (issue 10, item 4): a hashed entry was matched against the
    /// address as written, so `Node-1` was unknown where ssh finds it (ssh
    /// lower-cases the host before hashing it).
    #[test]
    fn hosts_are_looked_up_lower_cased() {
        let file = format!("{} ssh-ed25519 {KEY_A}\n", hashed("node-1.example"));
        check_case(&file, "Node-1.EXAMPLE", 22, KEY_A, HostKeyStatus::Known);
        check_case(
            &file,
            "NODE-1.example",
            22,
            KEY_B,
            HostKeyStatus::Changed { line: 1 },
        );
        let ported = format!("{} ssh-ed25519 {KEY_A}\n", hashed("[node-1.example]:2222"));
        check_case(&ported, "Node-1.example", 2222, KEY_A, HostKeyStatus::Known);
        let plain = format!("Node-1.Example ssh-ed25519 {KEY_A}\n");
        check_case(&plain, "node-1.example", 22, KEY_A, HostKeyStatus::Known);
        assert_eq!(
            recorded_algorithms(&file, "NODE-1.EXAMPLE", 22),
            [Algorithm::Ed25519]
        );
    }

    /// Runs the real `ssh-keygen` with `args`; its stdout.
    fn ssh_keygen(args: &[&str]) -> std::process::Output {
        std::process::Command::new("ssh-keygen")
            .args(args)
            .output()
            .expect("ssh-keygen runs (install openssh-client)")
    }

    /// The lines `ssh-keygen -F name` finds in `path`.
    fn openssh_found_lines(path: &std::path::Path, name: &str) -> Vec<usize> {
        let output = ssh_keygen(&["-F", name, "-f", path.to_str().unwrap()]);
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("# Host {name} found: line ")))
            .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    }

    fn our_found_lines(file: &str, host: &str, port: u16) -> Vec<usize> {
        let wanted = host_pattern(host, port);
        entries(file)
            .filter(|entry| hosts_match(entry.hosts, &wanted))
            .map(|entry| entry.line)
            .collect()
    }

    /// Which lines name a host, against OpenSSH's own `ssh-keygen -F` (given
    /// the name as `ssh` forms it: lower-cased, `[host]:port` off port 22),
    /// on plain entries, entries hashed by `ssh-keygen -H`, and odd fields.
    #[test]
    fn lines_naming_a_host_agree_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let plain_path = dir.path().join("plain");
        let plain = format!(
            "Node-1.Example ssh-ed25519 {KEY_A}\n\
             [Node-1.Example]:2222 ssh-ed25519 {KEY_A}\n\
             *.EXAMPLE,!bad.example ssh-ed25519 {KEY_B}\n\
             n?.example ssh-ed25519 {KEY_B}\n\
             @revoked NODE-1.example ssh-ed25519 {KEY_B}\n\
             10.0.0.1,[10.0.0.1]:2222 ssh-ed25519 {KEY_A}\n\
             ::1 ssh-ed25519 {KEY_A}\n\
             [::1]:2222 ssh-ed25519 {KEY_A}\n"
        );
        std::fs::write(&plain_path, &plain).unwrap();
        // ssh-keygen -H rewrites the file with every name hashed as ssh
        // looks it up.
        let hashed_path = dir.path().join("hashed");
        let names = "Node-1.Example ssh-ed25519 KEY\n[Node-1.Example]:2222 ssh-ed25519 KEY\n10.0.0.1,[10.0.0.1]:2222 ssh-ed25519 KEY\n::1 ssh-ed25519 KEY\n"
            .replace("KEY", KEY_A);
        std::fs::write(&hashed_path, names).unwrap();
        let output = ssh_keygen(&["-H", "-f", hashed_path.to_str().unwrap()]);
        assert!(output.status.success(), "{output:?}");
        let hashed_file = std::fs::read_to_string(&hashed_path).unwrap();
        assert!(hashed_file.lines().all(|line| line.starts_with("|1|")));
        // Odd fields: a hashed name inside a list, or negated, is not a
        // hashed entry for OpenSSH.
        let odd_path = dir.path().join("odd");
        let first_hash = hashed_file.split_whitespace().next().unwrap();
        let odd = format!(
            "{first_hash},x.example ssh-ed25519 {KEY_A}\nx.example,{first_hash} ssh-ed25519 {KEY_A}\n!{first_hash} ssh-ed25519 {KEY_A}\n"
        );
        std::fs::write(&odd_path, &odd).unwrap();

        let hosts: &[(&str, u16)] = &[
            ("node-1.example", 22),
            ("NODE-1.EXAMPLE", 22),
            ("Node-1.example", 2222),
            ("n1.example", 22),
            ("bad.example", 22),
            ("x.example", 22),
            ("10.0.0.1", 22),
            ("10.0.0.1", 2222),
            ("::1", 22),
            ("::1", 2222),
            ("other", 22),
        ];
        for (path, file) in [
            (&plain_path, &plain),
            (&hashed_path, &hashed_file),
            (&odd_path, &odd),
        ] {
            for &(host, port) in hosts {
                let name = host_pattern(host, port);
                assert_eq!(
                    our_found_lines(file, host, port),
                    openssh_found_lines(path, &name),
                    "{host}:{port} (looked up as {name}) in\n{file}"
                );
            }
        }
        // And the hashed file gives the verdict its plain form gives.
        check_case(
            &hashed_file,
            "NODE-1.example",
            22,
            KEY_A,
            HostKeyStatus::Known,
        );
        check_case(
            &hashed_file,
            "node-1.EXAMPLE",
            2222,
            KEY_A,
            HostKeyStatus::Known,
        );
        check_case(&hashed_file, "::1", 22, KEY_A, HostKeyStatus::Known);
        check_case(
            &hashed_file,
            "10.0.0.1",
            2222,
            KEY_B,
            HostKeyStatus::Changed { line: 4 },
        );
    }
}
