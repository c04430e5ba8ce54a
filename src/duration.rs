//! Durations in configuration: integer seconds (`900`) or strings (`"30s"`, `"15m"`, `"1h30m"`,
//! `"2d"`).
//!
//! One grammar for every duration field: `[Nd][Nh][Nm][Ns]` with units in that order, each at
//! most once, at least one present; or a bare run of digits meaning seconds. Values are bounded
//! by [`MAX_SECONDS`] so arithmetic on them cannot overflow.

use crate::ConfigError;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use std::str::FromStr;

/// The longest duration accepted anywhere in config: ten 365-day years.
pub const MAX_SECONDS: u64 = 10 * 365 * 86_400;

/// The longest duration string accepted (`"3650d23h59m59s"` is 14).
pub const MAX_DURATION_LEN: usize = 32;

const ACCEPTED: &str = "expected seconds as an integer or a string like \"30s\", \"15m\", \"1h\", \
                        \"1h30m\" or \"2d\" (units d, h, m, s in that order, at most 10 years)";

const UNITS: [(u8, u64); 4] = [(b'd', 86_400), (b'h', 3_600), (b'm', 60), (b's', 1)];

/// Parses a duration string into seconds.
///
/// # Errors
/// A [`ConfigError`] on field `duration` (callers rename it to their field) when `s` is empty,
/// too long, not of the form described in the module docs, or longer than [`MAX_SECONDS`].
pub fn parse_duration(s: &str) -> Result<u64, ConfigError> {
    let fail = || ConfigError::new("duration", ACCEPTED);
    if s.is_empty() || s.len() > MAX_DURATION_LEN {
        return Err(fail());
    }
    let bytes = s.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        return bounded(digits_value(bytes).ok_or_else(fail)?).ok_or_else(fail);
    }
    let mut total: u64 = 0;
    let mut next_unit = 0usize; // index into UNITS: units must appear in descending order
    let mut rest = bytes;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (number, tail) = rest.split_at(digits);
        let (&unit, tail) = tail.split_first().ok_or_else(fail)?;
        if number.is_empty() {
            return Err(fail());
        }
        let pos = UNITS
            .iter()
            .skip(next_unit)
            .position(|&(u, _)| u == unit)
            .ok_or_else(fail)?;
        let (_, scale) = UNITS.get(next_unit + pos).copied().ok_or_else(fail)?;
        next_unit += pos + 1;
        let part = digits_value(number)
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(fail)?;
        total = total.checked_add(part).ok_or_else(fail)?;
        rest = tail;
    }
    bounded(total).ok_or_else(fail)
}

fn digits_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?
            .checked_add(u64::from(d.checked_sub(b'0')?))
    })
}

fn bounded(secs: u64) -> Option<u64> {
    (secs <= MAX_SECONDS).then_some(secs)
}

/// A duration in whole seconds, as written in config.
///
/// Deserializes from an integer or a duration string; displays canonically (`5400` →
/// `"1h30m"`, `0` → `"0s"`), and `FromStr` reads that back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seconds(pub u64);

impl Seconds {
    /// The number of seconds.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for Seconds {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Seconds)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, scale) in UNITS {
            let n = rest / scale;
            rest %= scale;
            if n > 0 {
                write!(f, "{n}{}", char::from(unit))?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;

        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // serde writes "expected " before this.
                f.write_str(ACCEPTED.strip_prefix("expected ").unwrap_or(ACCEPTED))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                bounded(v).map(Seconds).ok_or_else(|| E::custom(ACCEPTED))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .ok()
                    .and_then(bounded)
                    .map(Seconds)
                    .ok_or_else(|| E::custom(ACCEPTED))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                v.parse().map_err(|_| E::custom(ACCEPTED))
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_units_ok() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h"), Ok(3_600));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("1h30m"), Ok(5_400));
        assert_eq!(parse_duration("1d2h3m4s"), Ok(93_784));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("90m"), Ok(5_400));
    }

    #[test]
    fn parse_malformed_fails() {
        for bad in [
            "", "s", "h1", "1x", "1H", "30m1h", "1h1h", " 1h", "1h ", "-1s", "+1s", "1.5h", "1h30",
            "1hm", "1 h", "１h",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e.field, "duration", "{bad:?}");
            assert!(e.message.contains("\"15m\""), "{bad:?}");
        }
    }

    #[test]
    fn parse_overflow_fails() {
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("213503982334601d").is_err());
        assert!(parse_duration(&format!("{}", MAX_SECONDS + 1)).is_err());
        assert_eq!(parse_duration(&MAX_SECONDS.to_string()), Ok(MAX_SECONDS));
        assert!(parse_duration("3651d").is_err());
        assert!(parse_duration(&"1".repeat(MAX_DURATION_LEN + 1)).is_err());
    }

    #[test]
    fn display_canonical_ok() {
        assert_eq!(Seconds(0).to_string(), "0s");
        assert_eq!(Seconds(30).to_string(), "30s");
        assert_eq!(Seconds(900).to_string(), "15m");
        assert_eq!(Seconds(5_400).to_string(), "1h30m");
        assert_eq!(Seconds(90_000).to_string(), "1d1h");
        assert_eq!(Seconds(93_784).to_string(), "1d2h3m4s");
    }

    #[test]
    fn deserialize_int_or_string_ok() {
        let s: Seconds = serde_json::from_str("900").unwrap();
        assert_eq!(s, Seconds(900));
        let s: Seconds = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(s.get(), 5_400);
    }

    #[test]
    fn deserialize_bad_fails() {
        for bad in ["-1", "1.5", "\"1x\"", "true", "null", "[]", "315360001"] {
            assert!(serde_json::from_str::<Seconds>(bad).is_err(), "{bad}");
        }
        let e = serde_json::from_str::<Seconds>("\"soon\"").unwrap_err();
        assert!(e.to_string().contains("\"15m\""));
    }

    proptest! {
        #[test]
        fn parse_arbitrary_never_panics_ok(s in "\\PC{0,40}") {
            if let Ok(v) = parse_duration(&s) {
                prop_assert!(v <= MAX_SECONDS);
            }
        }

        #[test]
        fn parse_unit_soup_never_panics_ok(s in "[0-9dhms]{0,32}") {
            if let Ok(v) = s.parse::<Seconds>() {
                prop_assert!(v.get() <= MAX_SECONDS);
                prop_assert_eq!(v.to_string().parse::<Seconds>(), Ok(v));
            }
        }

        #[test]
        fn display_round_trip_ok(v in 0..=MAX_SECONDS) {
            let text = Seconds(v).to_string();
            prop_assert_eq!(text.parse::<Seconds>(), Ok(Seconds(v)));
        }
    }
}
