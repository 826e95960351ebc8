//! Durations written the way operators write them in YAML: `90s`, `15m`, `36h`, `7d`, `2w`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration parsed from `<number><unit>` with unit `s`, `m`, `h`, `d` or `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid duration {input:?}: expected a whole number followed by s, m, h, d or w (e.g. \"7d\")"
)]
pub struct DurationError {
    pub input: String,
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || DurationError {
            input: input.to_string(),
        };
        let trimmed = input.trim();
        let split_at = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(error)?;
        let (digits, unit) = trimmed.split_at(split_at);
        let count: u64 = digits.parse().map_err(|_| error())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(error()),
        };
        let seconds = count.checked_mul(unit_seconds).ok_or_else(error)?;
        Ok(HumanDuration(Duration::from_secs(seconds)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if seconds != 0 && seconds.is_multiple_of(size) {
                return write!(f, "{}{unit}", seconds / size);
            }
        }
        write!(f, "{seconds}s")
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        for (text, seconds) in [
            ("90s", 90),
            ("15m", 900),
            ("36h", 129_600),
            ("7d", 604_800),
            ("2w", 1_209_600),
        ] {
            assert_eq!(
                text.parse::<HumanDuration>().unwrap().0.as_secs(),
                seconds,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage_with_a_helpful_message() {
        for text in ["", "7", "d", "7x", "-1d", "1.5h", "99999999999999999999w"] {
            let error = text.parse::<HumanDuration>().unwrap_err();
            assert!(
                error.to_string().contains("expected a whole number"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(
            HumanDuration(Duration::from_secs(604_800)).to_string(),
            "1w"
        );
        assert_eq!(
            HumanDuration(Duration::from_secs(86_400 * 3)).to_string(),
            "3d"
        );
        assert_eq!(HumanDuration(Duration::from_secs(61)).to_string(), "61s");
    }
}
