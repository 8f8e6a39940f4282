//! Deserializers that check a value's range and say in words what a key
//! expects: "expected a port number, 1-65535", never "expected u16".

use std::fmt;
use std::path::PathBuf;

use serde::Deserializer;
use serde::de::{self, Unexpected, Visitor};

use super::MAX_SECS;

/// A whole number in `min..=max`, described as `what`.
struct Whole {
    what: &'static str,
    min: u64,
    max: u64,
}

impl Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(value), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(E::invalid_value(Unexpected::Unsigned(value), &self))
        }
    }
}

fn whole<'de, D: Deserializer<'de>>(
    deserializer: D,
    what: &'static str,
    min: u64,
    max: u64,
) -> Result<u64, D::Error> {
    deserializer.deserialize_any(Whole { what, min, max })
}

pub fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let value = whole(deserializer, "a port number, 1-65535", 1, 65535)?;
    // In range by the check above.
    Ok(u16::try_from(value).unwrap_or(u16::MAX))
}

/// A port that may be left unset (the key absent).
pub fn optional_port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    port(deserializer).map(Some)
}

pub fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    whole(deserializer, "a number of seconds, 1-86400 (a day)", 1, MAX_SECS)
}

pub fn seconds_or_zero<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    whole(deserializer, "a number of seconds, 0-86400 (a day)", 0, MAX_SECS)
}

pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = whole(deserializer, "a whole number, 1-1000", 1, 1000)?;
    Ok(usize::try_from(value).unwrap_or(1000))
}

/// Copies of a disc a hot-folder robot burns.
pub fn copies<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = whole(deserializer, "a number of copies, 1-99", 1, 99)?;
    Ok(u32::try_from(value).unwrap_or(1))
}

/// A CD's capacity in MB.
pub fn cd_mb<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    whole(deserializer, "a CD's capacity in MB, 1-900", 1, 900)
}

/// A path; the empty string means "none" (as the example config says).
pub fn optional_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    struct OptionalPath;

    impl Visitor<'_> for OptionalPath {
        type Value = Option<PathBuf>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a path in quotes (\"\" for none)")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Option<PathBuf>, E> {
            Ok((!value.trim().is_empty()).then(|| PathBuf::from(value)))
        }
    }

    deserializer.deserialize_any(OptionalPath)
}

/// A text value; the empty string means "none".
pub fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(optional_path(deserializer)?.map(|path| path.to_string_lossy().into_owned()))
}
