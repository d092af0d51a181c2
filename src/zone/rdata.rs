//! Record data: tokens of one record → hickory `RData`.
//!
//! The common types (A, AAAA, NS, CNAME, PTR, ANAME, DNAME, MX, SRV, SOA,
//! TXT, DS) are built directly: that is the fast path for large zones, and it
//! keeps RFC 1035 semantics where hickory 0.26's text parser differs (it
//! reads `\DDD` as octal in names and mis-decodes it in quoted strings, and
//! without its DNSSEC feature it cannot parse DNAME or DS at all). Every other
//! type hickory can parse goes through `RData::try_from_str`, after names in
//! the rdata are made absolute here, because that entry point has no origin.
//!
//! Any accepted type may also be written by number (`TYPE1`) and its data in
//! the RFC 3597 generic form, `\# length hex`, which is decoded by hickory's
//! wire decoder into the same value as the type's own syntax (DS and DNAME
//! stay opaque wire data, checked). Generic data must not compress names:
//! there is no message for a pointer to point into.
//!
//! Also home to the shared name, TTL and escape parsers. Every error is a
//! sentence fragment an operator can act on; the caller adds file and line.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, ANAME, CNAME, MX, NS, NULL, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError, Restrict};

use super::lexer::Token;

/// Largest TTL allowed (RFC 2181 §8: the top bit must be zero).
pub(super) const MAX_TTL: u32 = 0x7fff_ffff;

/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// Looks up a record type by name (case-insensitive) or by RFC 3597 §5
/// number (`TYPE1` is A), and rejects the types that cannot be written in a
/// zone file served by Steer.
pub(super) fn record_type(text: &str) -> Result<RecordType, String> {
    if let Some(number) = type_number(text) {
        let code = u16::try_from(number)
            .map_err(|_| format!("unknown record type \"{text}\" (type numbers end at 65535)"))?;
        let record_type = RecordType::from(code);
        return match record_type {
            _ if supported(record_type) => Ok(record_type),
            RecordType::Unknown(_) => {
                Err(format!("record type {text} is not supported in zone files"))
            }
            known => Err(format!(
                "record type {text} ({known}) is not supported in zone files"
            )),
        };
    }
    let parsed = if text.bytes().all(|byte| !byte.is_ascii_lowercase()) {
        RecordType::from_str(text)
    } else {
        RecordType::from_str(&text.to_ascii_uppercase())
    };
    let Ok(record_type) = parsed else {
        return Err(format!("unknown record type \"{text}\""));
    };
    if supported(record_type) {
        Ok(record_type)
    } else {
        Err(format!(
            "record type {record_type} is not supported in zone files"
        ))
    }
}

/// The number of an RFC 3597 `TYPEnnn` mnemonic (any case), unbounded.
fn type_number(text: &str) -> Option<u64> {
    let (prefix, digits) = text.split_at_checked(4)?;
    if !prefix.eq_ignore_ascii_case("TYPE")
        || digits.is_empty()
        || !digits.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}

/// Whether records of `record_type` can be written in a zone file (and so
/// whether [`super::write`] may use its mnemonic).
pub(super) fn supported(record_type: RecordType) -> bool {
    direct(record_type) || via_hickory(record_type)
}

/// Types whose data this module builds itself.
fn direct(record_type: RecordType) -> bool {
    use RecordType::*;
    matches!(
        record_type,
        A | AAAA | NS | CNAME | PTR | ANAME | DNAME | MX | SRV | SOA | TXT | DS
    )
}

/// Types passed to hickory's text parser (all it parses without DNSSEC support).
fn via_hickory(record_type: RecordType) -> bool {
    use RecordType::*;
    matches!(
        record_type,
        CAA | CERT | CSYNC | HINFO | HTTPS | NAPTR | OPENPGPKEY | SMIMEA | SSHFP | SVCB | TLSA
    )
}

/// Parses the data fields of one record of `record_type` (a type accepted by
/// [`record_type`]). Relative names are completed with `origin`.
pub(super) fn parse_rdata(
    record_type: RecordType,
    tokens: &[Token<'_>],
    origin: &Name,
) -> Result<RData, String> {
    let result = match tokens.split_first() {
        Some((first, rest)) if !first.quoted && first.text == r"\#" => generic(record_type, rest),
        _ => presentation(record_type, tokens, origin),
    };
    result.map_err(|reason| format!("invalid {record_type} record data: {reason}"))
}

/// The data of a record written in its type's own syntax.
fn presentation(
    record_type: RecordType,
    tokens: &[Token<'_>],
    origin: &Name,
) -> Result<RData, String> {
    match record_type {
        RecordType::A => single(tokens, "an IPv4 address").and_then(|token| {
            Ipv4Addr::from_str(token.text)
                .map(|address| RData::A(A::from(address)))
                .map_err(|_| format!("\"{}\" is not an IPv4 address", token.text))
        }),
        RecordType::AAAA => single(tokens, "an IPv6 address").and_then(|token| {
            Ipv6Addr::from_str(token.text)
                .map(|address| RData::AAAA(AAAA::from(address)))
                .map_err(|_| format!("\"{}\" is not an IPv6 address", token.text))
        }),
        RecordType::NS => target(tokens, origin).map(|name| RData::NS(NS(name))),
        RecordType::CNAME => target(tokens, origin).map(|name| RData::CNAME(CNAME(name))),
        RecordType::PTR => target(tokens, origin).map(|name| RData::PTR(PTR(name))),
        RecordType::ANAME => target(tokens, origin).map(|name| RData::ANAME(ANAME(name))),
        // hickory has no DNAME rdata type: keep the RFC 6672 wire form (an
        // uncompressed name) as opaque data under the DNAME type code.
        RecordType::DNAME => target(tokens, origin).map(|name| RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(name_wire(&name)),
        }),
        RecordType::MX => mx(tokens, origin),
        RecordType::SRV => srv(tokens, origin),
        RecordType::SOA => soa(tokens, origin),
        RecordType::TXT => txt(tokens),
        RecordType::DS => ds(tokens),
        _ => hickory(record_type, tokens, origin),
    }
}

/// RFC 3597 §5 generic data (`\# length hex...`, after the `\#`), decoded
/// into the same value the type's own syntax gives: what a transferred
/// zone is written in for types without a faithful text form.
fn generic(record_type: RecordType, tokens: &[Token<'_>]) -> Result<RData, String> {
    let Some((length, data)) = tokens.split_first() else {
        return Err("expected the data length after \\#".to_owned());
    };
    let length = integer(length.text, "generic data length", u16::MAX.into())?;
    let mut wire = Vec::with_capacity(usize::try_from(length).unwrap_or_default());
    decode_hex(data, "generic data", &mut wire)?;
    if u32::try_from(wire.len()) != Ok(length) {
        return Err(format!(
            "generic data is {} bytes but its length says {length}",
            wire.len()
        ));
    }
    uncompressed_names(record_type, &wire)?;
    match record_type {
        RecordType::DNAME => {
            wire_name(&wire)
                .map_err(|reason| format!("generic data is not one domain name: {reason}"))?;
            Ok(RData::Unknown {
                code: RecordType::DNAME,
                rdata: NULL::with(wire),
            })
        }
        RecordType::DS if wire.len() < 4 => Err(format!(
            "generic data of {} bytes is too short for DS (key tag, algorithm and digest type \
             take 4)",
            wire.len()
        )),
        RecordType::DS => Ok(RData::Unknown {
            code: RecordType::DS,
            rdata: NULL::with(wire),
        }),
        _ => {
            let mut decoder = BinDecoder::new(&wire);
            // The length fits: it was checked against a u16 above.
            let restrict = Restrict::new(u16::try_from(wire.len()).unwrap_or(u16::MAX));
            RData::read(&mut decoder, record_type, restrict).map_err(|error| match error {
                // The check after decoding, against the whole data (some
                // types use this error for their own fields too).
                DecodeError::IncorrectRDataLengthRead { read, len, .. }
                    if len == wire.len() && read < len =>
                {
                    let trailing = len.saturating_sub(read);
                    let plural = if trailing == 1 { "" } else { "s" };
                    format!(
                        "generic data has {trailing} trailing byte{plural} after the \
                         {read} bytes of {record_type} data"
                    )
                }
                error => format!("generic data is not valid {record_type} data: {error}"),
            })
        }
    }
}

/// Rejects compression pointers in the names of `wire`, the data of a
/// `record_type` record: generic data is copied around on its own (RFC 3597
/// §4 and §5), with no message for a pointer to point into. Stops quietly where the data is too short or a label
/// type is unknown, which decoding then reports.
fn uncompressed_names(record_type: RecordType, wire: &[u8]) -> Result<(), String> {
    let (mut position, names) = match record_type {
        RecordType::NS
        | RecordType::CNAME
        | RecordType::PTR
        | RecordType::ANAME
        | RecordType::DNAME => (0, 1),
        RecordType::SOA => (0, 2),
        RecordType::MX | RecordType::SVCB | RecordType::HTTPS => (2, 1),
        RecordType::SRV => (6, 1),
        RecordType::NAPTR => {
            // Order and preference, then flags, services and regexp.
            let mut position = 4;
            for _ in 0..3 {
                match wire.get(position) {
                    Some(&length) => position += 1 + usize::from(length),
                    None => return Ok(()),
                }
            }
            (position, 1)
        }
        _ => return Ok(()),
    };
    for _ in 0..names {
        loop {
            let Some(&length) = wire.get(position) else {
                return Ok(());
            };
            match length & 0b1100_0000 {
                0b1100_0000 => {
                    return Err(format!(
                        "generic data cannot use name compression (there is no message \
                         for a pointer to point into), but offset {position} holds a \
                         compression pointer"
                    ));
                }
                0 if length == 0 => {
                    position += 1;
                    break;
                }
                0 => position += 1 + usize::from(length),
                _ => return Ok(()),
            }
        }
    }
    Ok(())
}

/// The one uncompressed name that makes up `wire` (DNAME data).
pub(super) fn wire_name(wire: &[u8]) -> Result<Name, String> {
    uncompressed_names(RecordType::DNAME, wire)?;
    let mut decoder = BinDecoder::new(wire);
    let name = Name::read(&mut decoder).map_err(|error| format!("not a domain name: {error}"))?;
    match wire.len() - decoder.index() {
        0 => Ok(name),
        1 => Err("1 byte after the domain name".to_owned()),
        trailing => Err(format!("{trailing} bytes after the domain name")),
    }
}

/// The only token of a one-field record.
fn single<'t, 'a>(tokens: &'t [Token<'a>], what: &str) -> Result<&'t Token<'a>, String> {
    match tokens {
        [token] => Ok(token),
        _ => Err(format!("expected 1 field ({what}), found {}", tokens.len())),
    }
}

fn target(tokens: &[Token<'_>], origin: &Name) -> Result<Name, String> {
    single(tokens, "a domain name").and_then(|token| parse_name(token.text, origin))
}

fn count(tokens: &[Token<'_>], expected: usize, what: &str) -> Result<(), String> {
    if tokens.len() == expected {
        Ok(())
    } else {
        Err(format!(
            "expected {expected} fields ({what}), found {}",
            tokens.len()
        ))
    }
}

fn mx(tokens: &[Token<'_>], origin: &Name) -> Result<RData, String> {
    count(tokens, 2, "preference and exchange")?;
    let preference = integer(tokens[0].text, "preference", u16::MAX.into())?;
    let exchange = parse_name(tokens[1].text, origin)?;
    Ok(RData::MX(MX::new(narrow(preference)?, exchange)))
}

fn srv(tokens: &[Token<'_>], origin: &Name) -> Result<RData, String> {
    count(tokens, 4, "priority, weight, port and target")?;
    let priority = integer(tokens[0].text, "priority", u16::MAX.into())?;
    let weight = integer(tokens[1].text, "weight", u16::MAX.into())?;
    let port = integer(tokens[2].text, "port", u16::MAX.into())?;
    let target = parse_name(tokens[3].text, origin)?;
    Ok(RData::SRV(SRV::new(
        narrow(priority)?,
        narrow(weight)?,
        narrow(port)?,
        target,
    )))
}

fn soa(tokens: &[Token<'_>], origin: &Name) -> Result<RData, String> {
    count(
        tokens,
        7,
        "mname, rname, serial, refresh, retry, expire and minimum",
    )?;
    let mname = parse_name(tokens[0].text, origin)?;
    let rname = parse_name(tokens[1].text, origin)?;
    let serial = integer(tokens[2].text, "serial", u32::MAX)?;
    // The timers accept TTL units (`1h`), as in BIND; MAX_TTL fits in i32.
    let timer = |token: &Token<'_>, field: &str| -> Result<i32, String> {
        parse_ttl(token.text)
            .and_then(|value| i32::try_from(value).map_err(|_| String::new()))
            .map_err(|_| format!("{field} \"{}\" is not a valid time", token.text))
    };
    let refresh = timer(&tokens[3], "refresh")?;
    let retry = timer(&tokens[4], "retry")?;
    let expire = timer(&tokens[5], "expire")?;
    let minimum = parse_ttl(tokens[6].text)
        .map_err(|_| format!("minimum \"{}\" is not a valid time", tokens[6].text))?;
    Ok(RData::SOA(SOA::new(
        mname, rname, serial, refresh, retry, expire, minimum,
    )))
}

fn txt(tokens: &[Token<'_>]) -> Result<RData, String> {
    if tokens.is_empty() {
        return Err("expected at least one string".to_owned());
    }
    let mut strings = Vec::with_capacity(tokens.len());
    for token in tokens {
        let bytes = decode_escapes(token.text)?;
        if bytes.len() > 255 {
            return Err(format!(
                "a string of {} bytes is longer than 255 bytes; split it into several strings",
                bytes.len()
            ));
        }
        strings.push(bytes);
    }
    Ok(RData::TXT(TXT::from_bytes(
        strings.iter().map(AsRef::as_ref).collect(),
    )))
}

/// DS (RFC 4034 §5.3): key tag, algorithm, digest type, hex digest (which
/// may be split into several fields). Kept as opaque data: hickory parses DS
/// only with its DNSSEC feature.
fn ds(tokens: &[Token<'_>]) -> Result<RData, String> {
    if tokens.len() < 4 {
        return Err(format!(
            "expected 4 or more fields (key tag, algorithm, digest type and digest), found {}",
            tokens.len()
        ));
    }
    let key_tag = integer(tokens[0].text, "key tag", u16::MAX.into())?;
    let algorithm = integer(tokens[1].text, "algorithm", u8::MAX.into())?;
    let digest_type = integer(tokens[2].text, "digest type", u8::MAX.into())?;
    let mut wire = Vec::with_capacity(4 + 64);
    wire.extend_from_slice(&narrow::<u16>(key_tag)?.to_be_bytes());
    wire.push(narrow(algorithm)?);
    wire.push(narrow(digest_type)?);
    decode_hex(&tokens[3..], "digest", &mut wire)?;
    Ok(RData::Unknown {
        code: RecordType::DS,
        rdata: NULL::with(wire),
    })
}

/// Appends the bytes of hex digits split over `tokens` (any case) to `wire`.
fn decode_hex(tokens: &[Token<'_>], what: &str, wire: &mut Vec<u8>) -> Result<(), String> {
    let mut high: Option<u8> = None;
    for token in tokens {
        for byte in token.text.bytes() {
            let value = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                b'A'..=b'F' => byte - b'A' + 10,
                _ => return Err(format!("{what} \"{}\" is not hexadecimal", token.text)),
            };
            match high.take() {
                Some(high) => wire.push(high << 4 | value),
                None => high = Some(value),
            }
        }
    }
    if high.is_some() {
        return Err(format!("{what} has an odd number of hex digits"));
    }
    Ok(())
}

/// Rebuilds the rdata text with absolute names and hands it to hickory.
fn hickory(record_type: RecordType, tokens: &[Token<'_>], origin: &Name) -> Result<RData, String> {
    let name_field = match record_type {
        RecordType::NAPTR => Some(5),
        RecordType::SVCB | RecordType::HTTPS => Some(1),
        _ => None,
    };
    let mut text = String::with_capacity(tokens.iter().map(|token| token.text.len() + 3).sum());
    for (index, token) in tokens.iter().enumerate() {
        if index > 0 {
            text.push(' ');
        }
        if Some(index) == name_field {
            // hickory writes and reads its own escapes consistently, so its
            // rendering of the name round-trips through its parser.
            text.push_str(&parse_name(token.text, origin)?.to_ascii());
        } else if !token.quoted && !token.text.contains('\\') && !token.text.starts_with(['@', '$'])
        {
            // As written: hickory keeps unquoted text verbatim too.
            text.push_str(token.text);
        } else {
            // Decode escapes here (hickory's quoted-string `\DDD` decoding is
            // wrong) and hand over the exact characters as a quoted string,
            // in which hickory only interprets `\"` and `\\`.
            let bytes = decode_escapes(token.text)?;
            let content = std::str::from_utf8(&bytes).map_err(|_| {
                format!(
                    "\"{}\" decodes to bytes that are not UTF-8 text (allowed only in TXT records)",
                    token.text
                )
            })?;
            text.push('"');
            for character in content.chars() {
                if matches!(character, '"' | '\\') {
                    text.push('\\');
                }
                text.push(character);
            }
            text.push('"');
        }
    }
    RData::try_from_str(record_type, &text).map_err(|error| error.to_string())
}

/// Parses a decimal field no larger than `max`.
fn integer(text: &str, field: &str, max: u32) -> Result<u32, String> {
    let out_of_range = || format!("{field} \"{text}\" is not a number from 0 to {max}");
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(out_of_range());
    }
    match text.parse::<u64>() {
        Ok(value) if value <= u64::from(max) => u32::try_from(value).map_err(|_| out_of_range()),
        _ => Err(out_of_range()),
    }
}

/// Narrows a value [`integer`] already bounded.
fn narrow<T: TryFrom<u32>>(value: u32) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("{value} is out of range"))
}

/// Parses a TTL: seconds, or numbers with units `s m h d w` (`1h30m`,
/// case-insensitive; a trailing bare number counts seconds).
pub(super) fn parse_ttl(text: &str) -> Result<u32, String> {
    let invalid =
        || format!("\"{text}\" is not a valid TTL (seconds, or units s m h d w as in 1h30m)");
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for byte in text.bytes() {
        if byte.is_ascii_digit() {
            let digit = u64::from(byte - b'0');
            number = Some(number.unwrap_or(0).saturating_mul(10).saturating_add(digit));
            continue;
        }
        let multiplier: u64 = match byte.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3_600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return Err(invalid()),
        };
        let value = number.take().ok_or_else(invalid)?;
        total = total.saturating_add(value.saturating_mul(multiplier));
    }
    total = total.saturating_add(number.unwrap_or(0));
    u32::try_from(total)
        .ok()
        .filter(|&ttl| ttl <= MAX_TTL)
        .ok_or_else(|| format!("TTL \"{text}\" is larger than {MAX_TTL} seconds"))
}

/// Parses a domain name as written in a zone file: `@` is `origin`, a name
/// without a trailing dot is relative to `origin`, `\X` and decimal `\DDD`
/// escape label bytes (RFC 1035 §5.1). Non-ASCII must be written as
/// punycode, which avoids guessing an IDNA mapping.
pub(super) fn parse_name(text: &str, origin: &Name) -> Result<Name, String> {
    match text {
        "@" => return Ok(origin.clone()),
        "." => return Ok(Name::root()),
        "" => return Err("empty domain name".to_owned()),
        _ => {}
    }
    let invalid = |reason: &str| format!("\"{text}\" is not a valid domain name ({reason})");
    let bytes = text.as_bytes();
    let mut name = Name::new();
    let mut label = [0u8; MAX_LABEL];
    let mut length = 0;
    let mut index = 0;
    let mut absolute = false;
    while index < bytes.len() {
        let byte = match bytes[index] {
            b'.' => {
                if length == 0 {
                    return Err(invalid("empty label"));
                }
                name = name
                    .append_label(&label[..length])
                    .map_err(|error| invalid(&error.to_string()))?;
                length = 0;
                index += 1;
                absolute = index == bytes.len();
                continue;
            }
            b'\\' => {
                let (value, used) = escape(bytes, index).map_err(invalid)?;
                index += used;
                value
            }
            byte if byte.is_ascii() => {
                index += 1;
                byte
            }
            _ => {
                return Err(invalid(
                    "non-ASCII characters must be written as punycode, xn--",
                ));
            }
        };
        if length == MAX_LABEL {
            return Err(invalid("a label is longer than 63 bytes"));
        }
        label[length] = byte;
        length += 1;
    }
    if length > 0 {
        name = name
            .append_label(&label[..length])
            .map_err(|error| invalid(&error.to_string()))?;
    }
    if absolute {
        name.set_fqdn(true);
        Ok(name)
    } else {
        name.append_domain(origin)
            .map_err(|error| invalid(&error.to_string()))
    }
}

/// Decodes one escape at `bytes[index] == b'\\'`: the byte and how many
/// input bytes it used.
fn escape(bytes: &[u8], index: usize) -> Result<(u8, usize), &'static str> {
    match bytes.get(index + 1) {
        None => Err("'\\' at the end"),
        Some(digit) if digit.is_ascii_digit() => {
            let digits = bytes
                .get(index + 1..index + 4)
                .filter(|digits| digits.iter().all(u8::is_ascii_digit))
                .ok_or("a \\DDD escape needs three decimal digits")?;
            let value = digits
                .iter()
                .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'));
            u8::try_from(value)
                .map(|byte| (byte, 4))
                .map_err(|_| "a \\DDD escape is larger than 255")
        }
        Some(&byte) => Ok((byte, 2)),
    }
}

/// Decodes `\X` and `\DDD` escapes of a character string into bytes.
pub(super) fn decode_escapes(text: &str) -> Result<Cow<'_, [u8]>, String> {
    if !text.contains('\\') {
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' {
            let (value, used) =
                escape(bytes, index).map_err(|reason| format!("\"{text}\": {reason}"))?;
            decoded.push(value);
            index += used;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    Ok(Cow::Owned(decoded))
}

/// Uncompressed wire form of a name (RFC 1035 §3.1).
fn name_wire(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        // Labels are at most 63 bytes, so the length always fits.
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    wire
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn tokens(texts: &[&'static str]) -> Vec<Token<'static>> {
        texts
            .iter()
            .map(|text| Token {
                text,
                quoted: false,
            })
            .collect()
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("1h30m"), Ok(5400));
        assert_eq!(
            parse_ttl("1W2d3H4M5s"),
            Ok(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5)
        );
        assert_eq!(parse_ttl("1h30"), Ok(3630));
        assert_eq!(parse_ttl("2147483647"), Ok(MAX_TTL));
        assert!(parse_ttl("2147483648").is_err());
        assert!(parse_ttl("99999999999999999999999w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("1x").is_err());
        assert!(parse_ttl("").is_err());
    }

    #[test]
    fn names() {
        let origin = name("example.test.");
        assert_eq!(parse_name("@", &origin), Ok(origin.clone()));
        assert_eq!(parse_name("www", &origin), Ok(name("www.example.test.")));
        assert_eq!(parse_name("www.other.", &origin), Ok(name("www.other.")));
        assert_eq!(parse_name(".", &origin), Ok(Name::root()));
        assert!(parse_name("www.other.", &origin).is_ok_and(|parsed| parsed.is_fqdn()));
        // Decimal \DDD (RFC 1035), not octal: \046 is '.' inside a label.
        let escaped = parse_name(r"a\046b", &origin).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(escaped.iter().next(), Some(&b"a.b"[..]));
        assert_eq!(escaped.iter().count(), 3);
        assert!(parse_name("a..b", &origin).is_err());
        assert!(parse_name(&"x".repeat(64), &origin).is_err());
        assert!(parse_name("bücher", &origin).is_err());
        assert!(parse_name(r"a\25", &origin).is_err());
        assert!(parse_name(r"a\256", &origin).is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(
            decode_escapes(r#"a\"b\\c\065\010"#).as_deref(),
            Ok(&b"a\"b\\cA\n"[..])
        );
        assert!(decode_escapes("a\\").is_err());
    }

    #[test]
    fn record_types() {
        assert_eq!(record_type("a"), Ok(RecordType::A));
        assert_eq!(record_type("Https"), Ok(RecordType::HTTPS));
        assert_eq!(
            record_type("FOO"),
            Err("unknown record type \"FOO\"".to_owned())
        );
        assert_eq!(
            record_type("RRSIG"),
            Err("record type RRSIG is not supported in zone files".to_owned())
        );
    }

    #[test]
    fn wrong_field_counts_and_values() {
        let origin = name("example.test.");
        assert_eq!(
            parse_rdata(RecordType::A, &tokens(&["192.0.2.1", "x"]), &origin),
            Err("invalid A record data: expected 1 field (an IPv4 address), found 2".to_owned())
        );
        assert_eq!(
            parse_rdata(RecordType::MX, &tokens(&["70000", "mail"]), &origin),
            Err(
                "invalid MX record data: preference \"70000\" is not a number from 0 to 65535"
                    .to_owned()
            )
        );
        assert!(parse_rdata(RecordType::DS, &tokens(&["1", "8", "2", "abc"]), &origin).is_err());
        assert!(parse_rdata(RecordType::CAA, &tokens(&["0", "issue"]), &origin).is_err());
    }

    #[test]
    fn dname_and_ds_wire_forms() {
        let origin = name("example.test.");
        let dname = parse_rdata(RecordType::DNAME, &tokens(&["other"]), &origin);
        let expected = b"\x05other\x07example\x04test\x00".to_vec();
        assert_eq!(
            dname,
            Ok(RData::Unknown {
                code: RecordType::DNAME,
                rdata: NULL::with(expected)
            })
        );
        let ds = parse_rdata(
            RecordType::DS,
            &tokens(&["60485", "5", "1", "2BB183AF", "5F22588179A5"]),
            &origin,
        );
        let expected = b"\xec\x45\x05\x01\x2b\xb1\x83\xaf\x5f\x22\x58\x81\x79\xa5".to_vec();
        assert_eq!(
            ds,
            Ok(RData::Unknown {
                code: RecordType::DS,
                rdata: NULL::with(expected)
            })
        );
    }
}
