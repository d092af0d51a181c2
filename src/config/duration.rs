//! Durations as operators write them in `steer.toml`: `"500ms"`, `"10s"`,
//! `"2m"`, `"1h"`, `"14d"`.
//!
//! A bare number is rejected on purpose: `timeout = 10` could mean seconds or
//! milliseconds, and a guess is worse than an error.

use std::time::Duration;

/// Units accepted after the number, longest first so that `ms` wins over `m`.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses a duration such as `"10s"`, `"500ms"`, `"2m"` or `"1h"`.
///
/// The number is a whole number of the unit. The error is a sentence that
/// quotes the input, ready to follow a key path.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a whole number followed by a unit (ms, s, m, h or d), e.g. \"10s\"";
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(format!("invalid duration \"{text}\": {expected}"));
    }
    let Some(&(_, milliseconds_per_unit)) = UNITS.iter().find(|(name, _)| *name == unit.trim())
    else {
        return Err(format!("invalid duration \"{text}\": {expected}"));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(milliseconds_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration \"{text}\": the number is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 3 s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn rejects_a_number_without_a_unit() {
        assert_eq!(
            parse_duration("10"),
            Err(
                "invalid duration \"10\": expected a whole number followed by a unit \
                 (ms, s, m, h or d), e.g. \"10s\""
                    .to_string()
            )
        );
    }

    #[test]
    fn days_are_a_unit() {
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn rejects_unknown_units_and_fractions() {
        for text in ["10w", "s", "", "1.5s", "-1s", "10 seconds", "ms10"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err("invalid duration \"99999999999999999999h\": the number is too large".to_string())
        );
    }
}
