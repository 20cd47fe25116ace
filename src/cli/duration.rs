//! Durations on the command line: with units as people write them (`90s`,
//! `5m`, `1h30m`, `500ms`, through humantime), or a bare number of seconds,
//! as every duration flag took before units, so existing scripts keep
//! working.

use std::time::Duration;

/// Parses `text` as a duration: a bare number is seconds, anything else
/// goes to humantime (`90s`, `5m`, `1h 30m`, `1h30m`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|error| {
        format!("{error}; write a duration such as 90s, 5m, 1h30m or a number of seconds")
    })
}

/// Parses `text` as [`parse`] does, into whole seconds (rounded up, so
/// that `500ms` is not 0).
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    let duration = parse(text)?;
    let whole = duration.as_secs();
    Ok(if duration.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, item 10: durations rejected `5m`; a bare number stays
    /// seconds.
    #[test]
    fn durations_take_units_and_bare_seconds() {
        let check = |text: &str, seconds: u64| {
            assert_eq!(parse(text), Ok(Duration::from_secs(seconds)), "{text}");
        };
        check("10", 10);
        check("0", 0);
        check("90s", 90);
        check("5m", 300);
        check("1h", 3600);
        check("1h30m", 5400);
        check("1h 30m", 5400);
        check(" 15m ", 900);
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn a_duration_that_is_not_one_says_how_to_write_one() {
        for text in ["", "5 minutes please", "-3", "1.5", "m5"] {
            let error = parse(text).expect_err(text);
            assert!(error.contains("such as 90s, 5m, 1h30m"), "{text}: {error}");
        }
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(parse_seconds("900"), Ok(900));
        assert_eq!(parse_seconds("15m"), Ok(900));
        assert_eq!(parse_seconds("500ms"), Ok(1));
        assert_eq!(parse_seconds("1s 1ms"), Ok(2));
    }
}
