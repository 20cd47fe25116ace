//! Who the commits and notes flotilla writes are by: as `git commit` decides
//! it. `GIT_AUTHOR_NAME`/`_EMAIL`/`_DATE` and `GIT_COMMITTER_NAME`/`_EMAIL`/
//! `_DATE` (which CI bots set) win over the repository's `user.name` and
//! `user.email`; without either, `flotilla <flotilla@localhost>`, now.

use git2::{Repository, Signature, Time};

use super::RepoError;

/// The identity when neither the environment nor git config names one.
const FALLBACK_NAME: &str = "flotilla";
const FALLBACK_EMAIL: &str = "flotilla@localhost";

/// The author and the committer of a commit (or note) written now.
pub(crate) struct Signatures {
    pub author: Signature<'static>,
    pub committer: Signature<'static>,
}

/// The author and committer of what flotilla writes into `repo`, read from
/// the process's environment and the repository's config.
pub(crate) fn signatures(repo: &Repository) -> Result<Signatures, RepoError> {
    let config = repo.config().ok();
    signatures_from(
        |key| config.as_ref().and_then(|c| c.get_string(key).ok()),
        |name| std::env::var(name).ok(),
    )
}

/// [`signatures`] with git config and the environment passed in.
fn signatures_from(
    config: impl Fn(&str) -> Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Signatures, RepoError> {
    let configured = |key: &str| config(key).filter(|v| !v.is_empty());
    let name = configured("user.name").unwrap_or_else(|| FALLBACK_NAME.to_string());
    let email = configured("user.email").unwrap_or_else(|| FALLBACK_EMAIL.to_string());
    let one = |role: &str| -> Result<Signature<'static>, RepoError> {
        let variable = |field: &str| {
            let variable = format!("GIT_{role}_{field}");
            env(&variable)
                .filter(|v| !v.is_empty())
                .map(|value| (variable, value))
        };
        let name = variable("NAME").map_or(name.clone(), |(_, v)| v);
        let email = variable("EMAIL").map_or(email.clone(), |(_, v)| v);
        let signature = match variable("DATE") {
            Some((variable, value)) => {
                let time = parse_git_date(&value).ok_or(RepoError::Date {
                    variable,
                    value: value.clone(),
                })?;
                Signature::new(&name, &email, &time)?
            }
            None => Signature::now(&name, &email)?,
        };
        Ok(signature.to_owned())
    };
    Ok(Signatures {
        author: one("AUTHOR")?,
        committer: one("COMMITTER")?,
    })
}

/// A date as git reads `GIT_AUTHOR_DATE`: its own format (`@1700000000
/// +0100`, also without the `@`), or ISO 8601 (`2026-11-24T01:02:03+01:00`,
/// `2026-11-24 01:02:03 +0100`, `...Z`). `None` for anything else.
fn parse_git_date(text: &str) -> Option<Time> {
    let text = text.trim();
    if let Some((seconds, offset)) = text.trim_start_matches('@').split_once(' ') {
        if let (Ok(seconds), Some(offset)) = (seconds.parse::<i64>(), parse_offset(offset)) {
            return Some(Time::new(seconds, offset));
        }
    }
    parse_iso_8601(text)
}

/// `2026-11-24T01:02:03+01:00`, `2026-11-24 01:02:03 +0100`, `...Z`.
fn parse_iso_8601(text: &str) -> Option<Time> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || !matches!(bytes[10], b'T' | b' ') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let offset = parse_offset(text[19..].trim_start())?;
    let local = crate::reconcile::time::days_from_civil(year, month, day) * 86_400
        + hour * 3600
        + minute * 60
        + second;
    Some(Time::new(local - i64::from(offset) * 60, offset))
}

/// `+0100`, `-05:30`, `Z`: minutes east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    if text == "Z" {
        return Some(0);
    }
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = match digits.len() {
        4 => digits.to_string(),
        5 if digits.as_bytes()[2] == b':' => digits.replace(':', ""),
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 60 + minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_dates() {
        for (text, expected) in [
            ("@1795395723 +0000", Some((1_795_395_723, 0))),
            ("1795395723 -0530", Some((1_795_395_723, -330))),
            ("2026-11-23T01:02:03Z", Some((1_795_395_723, 0))),
            ("2026-11-23T02:02:03+01:00", Some((1_795_395_723, 60))),
            ("2026-11-23 02:02:03 +0100", Some((1_795_395_723, 60))),
            ("2000-02-29T00:00:00Z", Some((951_782_400, 0))),
            ("1970-01-01T00:00:00Z", Some((0, 0))),
            ("yesterday", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-23T01:02:03", None),
            ("@17 0100", None),
        ] {
            let parsed = parse_git_date(text).map(|t| (t.seconds(), t.offset_minutes()));
            assert_eq!(parsed, expected, "{text}");
        }
    }

    fn who(signature: &Signature<'_>) -> (String, String) {
        (
            signature.name().unwrap().to_string(),
            signature.email().unwrap().to_string(),
        )
    }

    /// Issue 12, item 10: the environment's identity wins, field by field,
    /// over git config, which wins over flotilla's own.
    #[test]
    fn the_environment_wins_over_config_which_wins_over_the_fallback() {
        let none = signatures_from(|_| None, |_| None).unwrap();
        assert_eq!(
            who(&none.author),
            ("flotilla".into(), "flotilla@localhost".into())
        );
        assert_eq!(who(&none.committer), who(&none.author));

        let configured = |key: &str| match key {
            "user.name" => Some("Ops".to_string()),
            "user.email" => Some("ops@example.com".to_string()),
            _ => None,
        };
        let env = |name: &str| match name {
            "GIT_AUTHOR_NAME" => Some("CI Bot".to_string()),
            "GIT_COMMITTER_EMAIL" => Some("bot@ci.example".to_string()),
            "GIT_COMMITTER_DATE" => Some("@1795395723 +0100".to_string()),
            "GIT_AUTHOR_EMAIL" => Some(String::new()),
            _ => None,
        };
        let both = signatures_from(configured, env).unwrap();
        assert_eq!(
            who(&both.author),
            ("CI Bot".into(), "ops@example.com".into())
        );
        assert_eq!(
            who(&both.committer),
            ("Ops".into(), "bot@ci.example".into())
        );
        assert_eq!(both.committer.when().seconds(), 1_795_395_723);
        assert_eq!(both.committer.when().offset_minutes(), 60);

        let bad = |name: &str| (name == "GIT_AUTHOR_DATE").then(|| "last tuesday".to_string());
        let error = signatures_from(configured, bad).err().unwrap();
        assert_eq!(
            error.to_string(),
            "GIT_AUTHOR_DATE=`last tuesday`: not a date in git's format or ISO 8601 \
             (use `@<seconds> <+hhmm>` or `2026-11-24T01:02:03+01:00`)"
        );
    }
}
