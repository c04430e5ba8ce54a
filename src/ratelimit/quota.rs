//! A quota: `count` requests per `period`, written `"5/minute"`, `"3/hour"`, `"100/15m"`.

use crate::duration::parse_duration;
use crate::ConfigError;
use serde::de::{Deserialize, Deserializer, Error as _};
use std::fmt;
use std::str::FromStr;

/// Smallest request count of a quota.
pub const MIN_COUNT: u32 = 1;
/// Largest request count of a quota.
pub const MAX_COUNT: u32 = 1_000_000;
/// Shortest period, in seconds.
pub const MIN_PERIOD_SECS: u64 = 1;
/// Longest period, in seconds (7 days).
pub const MAX_PERIOD_SECS: u64 = 7 * 86_400;
/// Longest quota string accepted.
pub const MAX_QUOTA_LEN: usize = 48;

const NAMED: [(&str, u64); 5] = [
    ("second", 1),
    ("minute", 60),
    ("hour", 3_600),
    ("day", 86_400),
    ("week", 604_800),
];

fn accepted() -> String {
    format!(
        "expected COUNT/PERIOD like \"5/minute\", \"3/hour\", \"200/day\", \"10/second\", \
         \"5/min\", \"5/m\", \"5/s\", \"5/h\", \"5/d\", \"1/week\" or \"100/15m\" (count \
         {MIN_COUNT} to {MAX_COUNT}, period 1s to 7d)"
    )
}

fn named_unit(unit: &str) -> Option<u64> {
    let secs = match unit {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hr" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    Some(secs)
}

/// `count` requests per `period`, both within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    count: u32,
    period_ms: u64,
}

impl Quota {
    /// A valid placeholder for code paths that cannot be reached with a non-empty limiter.
    pub(crate) const FALLBACK: Self = Self {
        count: 1,
        period_ms: 1_000,
    };

    /// A checked quota.
    ///
    /// # Errors
    /// [`ConfigError`] on field `limit` when `count` is outside
    /// [`MIN_COUNT`]..=[`MAX_COUNT`] or `period_secs` outside
    /// [`MIN_PERIOD_SECS`]..=[`MAX_PERIOD_SECS`].
    pub fn new(count: u32, period_secs: u64) -> Result<Self, ConfigError> {
        if !(MIN_COUNT..=MAX_COUNT).contains(&count)
            || !(MIN_PERIOD_SECS..=MAX_PERIOD_SECS).contains(&period_secs)
        {
            return Err(ConfigError::new("limit", accepted()));
        }
        Ok(Self {
            count,
            period_ms: period_secs * 1_000,
        })
    }

    /// Requests allowed per period (also the burst a fresh key gets at once).
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The period in milliseconds (always whole seconds).
    #[must_use]
    pub const fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// The period in seconds (the `w` of `RateLimit-Policy`).
    #[must_use]
    pub const fn period_secs(&self) -> u64 {
        self.period_ms / 1_000
    }

    /// Emission interval T in microseconds: period / count, rounded up (never admits more than
    /// `count` per period on average). At least 1 µs given the bounds.
    pub(crate) const fn interval_us(&self) -> u64 {
        (self.period_ms * 1_000).div_ceil(self.count as u64)
    }

    /// Burst tolerance τ = T × (count − 1) in microseconds: exactly `count` requests fit at once.
    pub(crate) const fn tolerance_us(&self) -> u64 {
        self.interval_us() * (self.count as u64 - 1)
    }
}

impl FromStr for Quota {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = || ConfigError::new("limit", accepted());
        if s.len() > MAX_QUOTA_LEN {
            return Err(fail());
        }
        let (count, period) = s.split_once('/').ok_or_else(fail)?;
        let count_ok =
            !count.is_empty() && count.len() <= 7 && count.bytes().all(|b| b.is_ascii_digit());
        let count: u32 = count_ok
            .then(|| count.parse().ok())
            .flatten()
            .ok_or_else(fail)?;
        let period_secs = match named_unit(period) {
            Some(secs) => secs,
            None => parse_duration(period).map_err(|_| fail())?,
        };
        Self::new(count, period_secs).map_err(|_| fail())
    }
}

impl Quota {
    /// Appends what [`Display`](fmt::Display) writes (`5/minute`, `100/15m`); a named period
    /// without the formatting machinery (the `RateLimit` header carries it on every admitted
    /// request).
    pub(crate) fn push_text(&self, out: &mut String) {
        let secs = self.period_secs();
        match NAMED.iter().find(|(_, s)| *s == secs) {
            Some((name, _)) => {
                super::push_decimal(out, u64::from(self.count));
                out.push('/');
                out.push_str(name);
            }
            None => {
                use fmt::Write;
                let _ = write!(out, "{self}");
            }
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period_secs();
        match NAMED.iter().find(|(_, s)| *s == secs) {
            Some((name, _)) => write!(f, "{}/{name}", self.count),
            None => write!(f, "{}/{}", self.count, crate::duration::Seconds(secs)),
        }
    }
}

impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse()
            .map_err(|e: ConfigError| D::Error::custom(e.message))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quota {
        s.parse().unwrap()
    }

    #[test]
    fn parse_forms_ok() {
        assert_eq!(q("5/minute"), Quota::new(5, 60).unwrap());
        assert_eq!(q("3/hour"), Quota::new(3, 3_600).unwrap());
        assert_eq!(q("200/day"), Quota::new(200, 86_400).unwrap());
        assert_eq!(q("10/second"), Quota::new(10, 1).unwrap());
        for same in ["5/min", "5/m", "5/1m", "5/60s", "5/60", "5/minutes"] {
            assert_eq!(q(same), q("5/minute"), "{same}");
        }
        assert_eq!(q("5/s").period_ms(), 1_000);
        assert_eq!(q("5/h").period_secs(), 3_600);
        assert_eq!(q("5/d").period_secs(), 86_400);
        assert_eq!(q("1/week").period_secs(), 604_800);
        assert_eq!(q("100/15m").period_secs(), 900);
        assert_eq!(q("100/15m").count(), 100);
        assert_eq!(q("1000000/7d").count(), MAX_COUNT);
    }

    #[test]
    fn display_round_trip_ok() {
        for (input, canonical) in [
            ("5/minute", "5/minute"),
            ("5/m", "5/minute"),
            ("3/h", "3/hour"),
            ("200/d", "200/day"),
            ("10/s", "10/second"),
            ("100/15m", "100/15m"),
            ("7/1h30m", "7/1h30m"),
            ("1/7d", "1/week"),
        ] {
            let parsed = q(input);
            assert_eq!(parsed.to_string(), canonical);
            assert_eq!(q(canonical), parsed);
        }
    }

    #[test]
    fn parse_bad_fails() {
        for bad in [
            "",
            "5",
            "/minute",
            "5/",
            "0/minute",
            "1000001/day",
            "5/0s",
            "5/8d",
            "5/fortnight",
            "-5/minute",
            "+5/minute",
            "5.0/minute",
            " 5/minute",
            "5/minute ",
            "5 per minute",
            "5/Minute",
            "5/1h/1",
            "99999999999/s",
            "5/500ms",
        ] {
            let e = bad.parse::<Quota>().unwrap_err();
            assert_eq!(e.field, "limit", "{bad:?}");
            assert!(e.message.contains("\"5/minute\""), "{bad:?}");
        }
        assert!(Quota::new(0, 60).is_err());
        assert!(Quota::new(5, 0).is_err());
        assert!(Quota::new(5, MAX_PERIOD_SECS + 1).is_err());
    }

    #[test]
    fn gcra_constants_ok() {
        let five = q("5/minute");
        assert_eq!(five.interval_us(), 12_000_000);
        assert_eq!(five.tolerance_us(), 48_000_000);
        // Rounds T up so `count` never over-admits; τ makes exactly `count` fit at once.
        let seven = q("7/minute");
        assert_eq!(seven.interval_us(), 8_571_429);
        assert_eq!(seven.tolerance_us(), 6 * 8_571_429);
        let max = q("1000000/second");
        assert_eq!(max.interval_us(), 1);
        assert_eq!(q("1/week").tolerance_us(), 0);
    }

    #[test]
    fn deserialize_ok() {
        let v: Quota = serde_json::from_str("\"5/minute\"").unwrap();
        assert_eq!(v, q("5/minute"));
        assert!(serde_json::from_str::<Quota>("\"5/year\"").is_err());
        assert!(serde_json::from_str::<Quota>("5").is_err());
    }

    proptest! {
        #[test]
        fn parse_arbitrary_never_panics_ok(s in "\\PC{0,40}") {
            if let Ok(v) = s.parse::<Quota>() {
                prop_assert_eq!(v.to_string().parse::<Quota>(), Ok(v));
            }
        }

        #[test]
        fn parse_soup_never_panics_ok(s in "[0-9/smhdw]{0,16}") {
            if let Ok(v) = s.parse::<Quota>() {
                prop_assert!((MIN_COUNT..=MAX_COUNT).contains(&v.count()));
                prop_assert!(v.interval_us() >= 1);
            }
        }

        #[test]
        fn round_trip_ok(count in MIN_COUNT..=MAX_COUNT, secs in MIN_PERIOD_SECS..=MAX_PERIOD_SECS) {
            let v = Quota::new(count, secs).unwrap();
            prop_assert_eq!(v.to_string().parse::<Quota>(), Ok(v));
            prop_assert!(v.interval_us() * u64::from(count) >= v.period_ms() * 1_000);
        }
    }
}
