//! Records → zone file text that [`super::parse_zone`] loads back exactly.
//!
//! This is how a transferred (secondary) zone is kept on disk: the file must
//! give back the same records in the same order, with the same data bytes
//! and the same case in every name, and an operator must be able to read it.
//! Each record is one line with its owner (relative to `$ORIGIN` where it is
//! inside it, `@` at the apex), an explicit TTL, the class and the type.
//! The data of the types [`super::rdata`] builds itself is written in their
//! usual syntax with every name absolute; every other type, and any value
//! that syntax cannot express, is written in the RFC 3597 generic form
//! (`\# length hex`). hickory's `Display` is never used for data: it does
//! not round-trip (TXT strings come out unquoted, for one).
//!
//! Nothing is silently changed: a record the parser would refuse (a TTL
//! above 2^31 - 1, a class other than IN, an unsupported type, malformed DS
//! or DNAME data) is written as it is, so that loading the file fails and
//! says why, instead of serving something other than what was transferred.
//!
//! Writes into one `String` with no allocation per record, so that a zone of
//! a million records is written in well under a second.

use std::fmt::Write as _;

use hickory_proto::rr::rdata::{ANAME, CNAME, NS, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::rdata::{MAX_TTL, supported, wire_name};

/// Writes `records` (SOA first, owners absolute, class IN, as they come from
/// a zone transfer) as a zone file for the zone `origin`: a `$ORIGIN` line,
/// then one line per record. [`super::parse_zone`] with the same origin
/// loads it back to the same records, in the same order.
///
/// The caller adds any header comment in front. A record the parser would
/// refuse is written as it is (see the module documentation), so check the
/// file loads before replacing a good one with it.
pub fn write_zone(origin: &Name, records: &[Record]) -> String {
    let mut writer = Writer {
        // Most lines of a real zone are 30 to 60 bytes long.
        out: String::with_capacity(64 + records.len() * 48),
        wire: Vec::new(),
        origin,
        origin_labels: origin.iter().len(),
    };
    writer.out.push_str("$ORIGIN ");
    push_name(&mut writer.out, origin);
    writer.out.push('\n');
    for record in records {
        writer.record(record);
    }
    writer.out
}

struct Writer<'a> {
    out: String,
    /// Scratch buffer for the wire form of generic data, reused.
    wire: Vec<u8>,
    origin: &'a Name,
    /// Labels of the origin, wildcard included (hickory's `num_labels`
    /// leaves out a leading `*`).
    origin_labels: usize,
}

impl Writer<'_> {
    fn record(&mut self, record: &Record) {
        self.owner(&record.name);
        self.out.push(' ');
        push_decimal(&mut self.out, record.ttl);
        if record.dns_class == DNSClass::IN {
            self.out.push_str(" IN ");
        } else {
            // The parser refuses this with a message that names the class.
            self.out.push_str(" CLASS");
            push_decimal(&mut self.out, u16::from(record.dns_class).into());
            self.out.push(' ');
        }
        let record_type = record.record_type();
        if supported(record_type) {
            self.out.push_str(record_type.into());
        } else {
            self.out.push_str("TYPE");
            push_decimal(&mut self.out, u16::from(record_type).into());
        }
        self.out.push(' ');
        if !self.presentation(&record.data) {
            self.generic(&record.data);
        }
        self.out.push('\n');
    }

    /// The owner, relative to the origin when it ends in the origin's labels
    /// byte for byte (a different case must be written out, since the
    /// parser takes the origin's case for a relative name).
    fn owner(&mut self, name: &Name) {
        let labels = name.iter().len();
        let inside = labels >= self.origin_labels
            && name
                .iter()
                .rev()
                .zip(self.origin.iter().rev())
                .all(|(label, origin_label)| label == origin_label);
        if !inside {
            push_name(&mut self.out, name);
        } else if labels == self.origin_labels {
            self.out.push('@');
        } else {
            for (index, label) in name.iter().take(labels - self.origin_labels).enumerate() {
                if index > 0 {
                    self.out.push('.');
                }
                push_label(&mut self.out, label);
            }
        }
    }

    /// Writes `data` in its type's own syntax, or returns false (having
    /// written nothing) when that syntax is not [`super::rdata`]'s or cannot
    /// express the value.
    fn presentation(&mut self, data: &RData) -> bool {
        let out = &mut self.out;
        match data {
            RData::A(address) => {
                let _ = write!(out, "{}", address.0);
            }
            RData::AAAA(address) => {
                let _ = write!(out, "{}", address.0);
            }
            RData::NS(NS(name))
            | RData::CNAME(CNAME(name))
            | RData::PTR(PTR(name))
            | RData::ANAME(ANAME(name)) => push_name(out, name),
            RData::MX(mx) => {
                push_decimal(out, mx.preference.into());
                out.push(' ');
                push_name(out, &mx.exchange);
            }
            RData::SRV(srv) => {
                for number in [srv.priority, srv.weight, srv.port] {
                    push_decimal(out, number.into());
                    out.push(' ');
                }
                push_name(out, &srv.target);
            }
            RData::SOA(soa) if soa_expressible(soa) => {
                push_name(out, &soa.mname);
                out.push(' ');
                push_name(out, &soa.rname);
                out.push(' ');
                push_decimal(out, soa.serial);
                for timer in [soa.refresh, soa.retry, soa.expire] {
                    out.push(' ');
                    push_decimal(out, timer.unsigned_abs());
                }
                out.push(' ');
                push_decimal(out, soa.minimum);
            }
            // The text form needs at least one string.
            RData::TXT(txt) if !txt.txt_data.is_empty() => {
                for (index, string) in txt.txt_data.iter().enumerate() {
                    if index > 0 {
                        out.push(' ');
                    }
                    push_quoted(out, string);
                }
            }
            RData::Unknown {
                code: RecordType::DNAME,
                rdata,
            } => match wire_name(&rdata.anything) {
                Ok(name) => push_name(out, &name),
                // Malformed: written generic, which the parser refuses.
                Err(_) => return false,
            },
            // The text form needs at least one digest digit.
            RData::Unknown {
                code: RecordType::DS,
                rdata,
            } if rdata.anything.len() > 4 => {
                let wire = &rdata.anything;
                push_decimal(out, u16::from_be_bytes([wire[0], wire[1]]).into());
                for byte in &wire[2..4] {
                    out.push(' ');
                    push_decimal(out, (*byte).into());
                }
                out.push(' ');
                push_hex(out, &wire[4..]);
            }
            _ => return false,
        }
        true
    }

    /// RFC 3597 §5: `\# length hex`, the data's wire form without name
    /// compression and with names in their own case.
    fn generic(&mut self, data: &RData) {
        self.wire.clear();
        let mut encoder = BinEncoder::new(&mut self.wire);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        if let Err(error) = data.emit(&mut encoder) {
            // Not expected for data that was decoded from the wire; the
            // parser stops at the missing length, and the comment says why.
            self.out.push_str("\\# ; cannot encode this record: ");
            let reason = error.to_string();
            self.out.extend(reason.chars().map(|character| {
                if character.is_control() {
                    ' '
                } else {
                    character
                }
            }));
            return;
        }
        self.out.push_str("\\# ");
        // Wire data of a record is at most 65535 bytes, so this fits.
        push_decimal(
            &mut self.out,
            u32::try_from(self.wire.len()).unwrap_or(u32::MAX),
        );
        if !self.wire.is_empty() {
            self.out.push(' ');
            push_hex(&mut self.out, &self.wire);
        }
    }
}

/// Whether the SOA's timers fit the parser's TTL syntax (0 to 2^31 - 1).
fn soa_expressible(soa: &SOA) -> bool {
    [soa.refresh, soa.retry, soa.expire]
        .iter()
        .all(|&timer| timer >= 0)
        && soa.minimum <= MAX_TTL
}

/// An absolute name with its trailing dot (`.` for the root).
fn push_name(out: &mut String, name: &Name) {
    if name.iter().len() == 0 {
        out.push('.');
        return;
    }
    for label in name.iter() {
        push_label(out, label);
        out.push('.');
    }
}

/// One label with RFC 1035 §5.1 escapes: `\c` for the bytes that mean
/// something in a zone file, `\DDD` for bytes that are not printable ASCII.
fn push_label(out: &mut String, label: &[u8]) {
    for &byte in label {
        match byte {
            b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b'!'..=b'~' => out.push(char::from(byte)),
            _ => push_decimal_escape(out, byte),
        }
    }
}

/// A character string in quotes: `\"` and `\\` escaped, bytes that are not
/// printable ASCII (space is printable here) as `\DDD`.
fn push_quoted(out: &mut String, string: &[u8]) {
    out.push('"');
    for &byte in string {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b' '..=b'~' => out.push(char::from(byte)),
            _ => push_decimal_escape(out, byte),
        }
    }
    out.push('"');
}

/// `\DDD`: three decimal digits, as RFC 1035 §5.1 (and the parser) read them.
fn push_decimal_escape(out: &mut String, byte: u8) {
    out.push('\\');
    for digit in [byte / 100, byte / 10 % 10, byte % 10] {
        out.push(char::from(b'0' + digit));
    }
}

/// Upper-case hex digits, as one token.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// A decimal number, without going through `fmt`.
fn push_decimal(out: &mut String, value: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        // A remainder of 10 is always below 10, so it fits a digit.
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_bytes_and_quoted_strings() {
        let mut out = String::new();
        push_label(&mut out, b"a.b\\c\"d e;(f)@$\x00\xffZ*-_");
        assert_eq!(out, r#"a\.b\\c\"d\032e\;\(f\)\@\$\000\255Z*-_"#);
        out.clear();
        push_quoted(&mut out, b"say \"hi\"\\ \n\x7f;(");
        assert_eq!(out, r#""say \"hi\"\\ \010\127;(""#);
    }

    #[test]
    fn decimals_and_hex() {
        let mut out = String::new();
        for value in [0, 7, 10, 65535, u32::MAX] {
            push_decimal(&mut out, value);
            out.push(' ');
        }
        push_hex(&mut out, &[0x00, 0x0f, 0xa0, 0xff]);
        assert_eq!(out, "0 7 10 65535 4294967295 000FA0FF");
    }
}
