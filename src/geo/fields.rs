//! Reading the location fields out of one mmdb record.
//!
//! Databases disagree on layout and types: MaxMind's City nests
//! `country.iso_code` and stores coordinates as doubles; the flat
//! ip-location-db files have `country_code` at the top and their coordinates
//! as single-precision floats; other files store numbers as strings. So each
//! configured path is decoded into a [`Raw`] value whatever its type, and
//! the conversion to a [`Location`] field accepts every sensible form.

use std::fmt;

use maxminddb::{LookupResult, PathElement};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Location;
use super::continents::continent_of;
use crate::config::steering::GeoFields;

/// A field value as the database stores it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Raw {
    Text(String),
    /// Single precision: kept apart so that `37.751` stays `37.751` instead
    /// of becoming `37.750999450683594`.
    Float(f32),
    Double(f64),
    Unsigned(u128),
    Signed(i64),
    Boolean(bool),
    /// A map, array or byte string: not a field value.
    Container(&'static str),
}

impl Raw {
    /// The value for `steer explain`, as the database holds it.
    pub(super) fn render(&self) -> String {
        match self {
            Raw::Text(text) => text.clone(),
            Raw::Float(number) => number.to_string(),
            Raw::Double(number) => number.to_string(),
            Raw::Unsigned(number) => number.to_string(),
            Raw::Signed(number) => number.to_string(),
            Raw::Boolean(flag) => flag.to_string(),
            Raw::Container(kind) => format!("({kind})"),
        }
    }

    /// A non-empty code, upper case (`"gb "` → `GB`).
    fn code(&self) -> Option<String> {
        match self {
            Raw::Text(text) if !text.trim().is_empty() => Some(text.trim().to_ascii_uppercase()),
            _ => None,
        }
    }

    /// Degrees, from a number or a numeric string.
    fn degrees(&self) -> Option<f64> {
        let degrees = match self {
            // Through the shortest decimal form: what the file's author wrote.
            Raw::Float(number) => number.to_string().parse().ok()?,
            Raw::Double(number) => *number,
            Raw::Unsigned(number) => u32::try_from(*number).ok().map(f64::from)?,
            Raw::Signed(number) => i32::try_from(*number).ok().map(f64::from)?,
            Raw::Text(text) => text.trim().parse().ok()?,
            Raw::Boolean(_) | Raw::Container(_) => return None,
        };
        degrees.is_finite().then_some(degrees)
    }

    /// An AS number, from a number or a string (`"15169"`, `"AS15169"`).
    fn asn(&self) -> Option<u32> {
        match self {
            Raw::Unsigned(number) => u32::try_from(*number).ok(),
            Raw::Signed(number) => u32::try_from(*number).ok(),
            Raw::Text(text) => {
                let text = text.trim();
                let digits = text
                    .strip_prefix("AS")
                    .or_else(|| text.strip_prefix("as"))
                    .unwrap_or(text);
                digits.parse().ok()
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any MaxMind DB value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Raw, E> {
        Ok(Raw::Boolean(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Raw, E> {
        Ok(Raw::Signed(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Raw, E> {
        Ok(Raw::Unsigned(u128::from(value)))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Raw, E> {
        Ok(Raw::Unsigned(value))
    }

    fn visit_f32<E: de::Error>(self, value: f32) -> Result<Raw, E> {
        Ok(Raw::Float(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Raw, E> {
        Ok(Raw::Double(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Raw, E> {
        Ok(Raw::Text(value.to_owned()))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Container("bytes"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Container("map"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Raw, A::Error> {
        while sequence.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::Container("array"))
    }
}

/// Which location field a path feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Country,
    Continent,
    Subdivision,
    Latitude,
    Longitude,
    Asn,
}

/// One configured field path.
#[derive(Clone, Debug)]
pub(super) struct FieldPath {
    pub(super) field: Field,
    /// `country.iso_code`, for messages and `steer explain`.
    pub(super) name: String,
    elements: Vec<String>,
}

impl FieldPath {
    /// Path elements with numbers as array indexes (`subdivisions.0`), or,
    /// with `numbers_as_keys`, every element as a map key (a map may have
    /// the key `"0"`).
    fn elements(&self, numbers_as_keys: bool) -> Vec<PathElement<'_>> {
        self.elements
            .iter()
            .map(|element| match element.parse::<usize>() {
                Ok(index) if !numbers_as_keys => PathElement::Index(index),
                _ => PathElement::Key(element),
            })
            .collect()
    }

    fn has_number(&self) -> bool {
        self.elements
            .iter()
            .any(|element| element.parse::<usize>().is_ok())
    }

    /// The value at this path in the record, if any.
    pub(super) fn decode<S: AsRef<[u8]>>(&self, record: &LookupResult<'_, S>) -> Option<Raw> {
        match record.decode_path::<Raw>(&self.elements(false)) {
            Ok(found) => found,
            // An index into what turned out to be a map: try it as a key.
            Err(_) if self.has_number() => record
                .decode_path::<Raw>(&self.elements(true))
                .ok()
                .flatten(),
            // A malformed record reads as one without this field.
            Err(_) => None,
        }
    }
}

/// The paths to read from a location database (every field) or an ASN
/// database (`asn` only).
pub(super) fn paths(fields: &GeoFields, location: bool, asn: bool) -> Vec<FieldPath> {
    let mut paths = Vec::new();
    let mut add = |field, path: &Option<Vec<String>>| {
        if let Some(elements) = path {
            paths.push(FieldPath {
                field,
                name: elements.join("."),
                elements: elements.clone(),
            });
        }
    };
    if location {
        add(Field::Country, &fields.country);
        add(Field::Continent, &fields.continent);
        add(Field::Subdivision, &fields.subdivision);
        add(Field::Latitude, &fields.latitude);
        add(Field::Longitude, &fields.longitude);
    }
    if asn {
        add(Field::Asn, &fields.asn);
    }
    paths
}

/// Reads `paths` from one record into a location. With `shown`, every field
/// found is listed there with its raw value, its name prefixed by `label`.
pub(super) fn extract<S: AsRef<[u8]>>(
    record: &LookupResult<'_, S>,
    paths: &[FieldPath],
    label: &str,
    mut shown: Option<&mut Vec<(String, String)>>,
) -> Location {
    let mut location = Location::default();
    let mut latitude = None;
    let mut longitude = None;
    for path in paths {
        let Some(raw) = path.decode(record) else {
            continue;
        };
        if let Some(shown) = shown.as_deref_mut() {
            shown.push((format!("{label}{}", path.name), raw.render()));
        }
        match path.field {
            Field::Country => location.country = raw.code(),
            Field::Continent => location.continent = raw.code(),
            Field::Subdivision => location.subdivision = raw.code(),
            Field::Latitude => latitude = raw.degrees().filter(|degrees| degrees.abs() <= 90.0),
            Field::Longitude => longitude = raw.degrees().filter(|degrees| degrees.abs() <= 180.0),
            Field::Asn => location.asn = raw.asn(),
        }
    }
    if let (Some(latitude), Some(longitude)) = (latitude, longitude) {
        location.coordinates = Some((millionths(latitude), millionths(longitude)));
    }
    finish(&mut location);
    location
}

/// Fills in what follows from the fields read: the continent of the
/// country when the database gives none, and the subdivision without a
/// repeated country (`US-CA` → `CA`).
pub(super) fn finish(location: &mut Location) {
    if location.continent.is_none() {
        location.continent = location
            .country
            .as_deref()
            .and_then(continent_of)
            .map(str::to_owned);
    }
    if let (Some(country), Some(subdivision)) = (&location.country, &location.subdivision)
        && let Some(rest) = subdivision
            .strip_prefix(country.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
        && !rest.is_empty()
    {
        location.subdivision = Some(rest.to_owned());
    }
}

/// Degrees (at most ±180) in millionths, rounded.
fn millionths(degrees: f64) -> i32 {
    // |degrees| ≤ 180, so the product fits an i32 (±180,000,000).
    (degrees * 1e6).round() as i32
}
