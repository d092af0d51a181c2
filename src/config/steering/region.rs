//! Region keys of `geo` and `geofence` → [`Region`].
//!
//! Continent and country codes share the two-letter space (NA is North
//! America and Namibia, AS is Asia and American Samoa), so a bare code that
//! is a continent's means the continent, any other bare two-letter code is a
//! country, and `country:XX` / `continent:XX` say which explicitly.
//! `CC-SUB` is an ISO 3166-2 subdivision (`US-CA`, `GB-ENG`). Keys are
//! case-insensitive and kept in upper case, the way GeoIP databases write
//! codes, so that matching at compile time is a plain comparison.

use std::fmt;

use super::{CONTINENTS, Region};

/// What a region key may look like, for error messages.
const EXPECTED: &str = "expected a continent (AF AN AS EU NA OC SA), a country (DE), a \
                        subdivision (US-CA), continent:XX or country:XX";

impl Region {
    /// Reads one region key as written in `geo` or `geofence`.
    ///
    /// The error quotes the key and says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid region \"{text}\": {EXPECTED}");
        let upper = text.to_ascii_uppercase();
        if let Some(code) = upper.strip_prefix("COUNTRY:") {
            return if is_letter_pair(code) {
                Ok(Self::Country(code.to_string()))
            } else {
                Err(format!(
                    "invalid region \"{text}\": country:XX needs a two-letter country code"
                ))
            };
        }
        if let Some(code) = upper.strip_prefix("CONTINENT:") {
            return if CONTINENTS.contains(&code) {
                Ok(Self::Continent(code.to_string()))
            } else {
                Err(format!(
                    "invalid region \"{text}\": unknown continent \"{code}\", expected one of {}",
                    CONTINENTS.join(", ")
                ))
            };
        }
        if let Some((country, subdivision)) = upper.split_once('-') {
            // ISO 3166-2 subdivision codes are one to three letters or digits.
            let subdivision_ok = (1..=3).contains(&subdivision.len())
                && subdivision.bytes().all(|byte| byte.is_ascii_alphanumeric());
            return if is_letter_pair(country) && subdivision_ok {
                Ok(Self::Subdivision(
                    country.to_string(),
                    subdivision.to_string(),
                ))
            } else {
                Err(invalid())
            };
        }
        if CONTINENTS.contains(&upper.as_str()) {
            Ok(Self::Continent(upper))
        } else if is_letter_pair(&upper) {
            Ok(Self::Country(upper))
        } else {
            Err(invalid())
        }
    }
}

impl fmt::Display for Region {
    /// The shortest key that reads back as the same region.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Continent(code) => formatter.write_str(code),
            Self::Country(code) if CONTINENTS.contains(&code.as_str()) => {
                write!(formatter, "country:{code}")
            }
            Self::Country(code) => formatter.write_str(code),
            Self::Subdivision(country, subdivision) => write!(formatter, "{country}-{subdivision}"),
        }
    }
}

/// Two ASCII letters: the shape of an ISO 3166-1 alpha-2 code.
pub(super) fn is_letter_pair(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_alphabetic())
}
