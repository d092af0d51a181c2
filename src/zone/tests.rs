//! Tests of zone loading: directives, syntax, rdata and every validation
//! error with its exact `file:line` message.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hickory_proto::rr::rdata::{A, AAAA, ANAME, CNAME, MX, NS, NULL, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};

use proptest::prelude::*;

use super::{Zone, ZoneError, load_dir, parse_zone, parser, write_zone};

const FILE: &str = "zones/example.test.zone";

/// SOA, NS and glue-less in-zone name server: 4 lines, so a test's own
/// records start at line 5.
const HEAD: &str =
    "$TTL 3600\n@ IN SOA ns1 hostmaster 1 2h 1h 2w 5m\n@ IN NS ns1\nns1 IN A 192.0.2.1\n";

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn parse(text: &str) -> Result<Zone, Vec<ZoneError>> {
    parse_zone(text, Path::new(FILE), &name("example.test."))
}

fn zone(text: &str) -> Zone {
    match parse(text) {
        Ok(zone) => zone,
        Err(errors) => panic!("unexpected errors: {}", render(&errors).join("\n")),
    }
}

fn render(errors: &[ZoneError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// The errors of a zone that must fail.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("zone unexpectedly valid:\n{text}"),
        Err(errors) => render(&errors),
    }
}

/// Data of every record at `owner` with `record_type`, with TTLs.
fn find(zone: &Zone, owner: &str, record_type: RecordType) -> Vec<(u32, RData)> {
    let owner = name(owner);
    zone.records
        .iter()
        .filter(|zone_record| {
            zone_record.record.name == owner && zone_record.record.record_type() == record_type
        })
        .map(|zone_record| (zone_record.record.ttl, zone_record.record.data.clone()))
        .collect()
}

fn a(address: &str) -> RData {
    RData::A(A::from(
        address
            .parse::<Ipv4Addr>()
            .unwrap_or_else(|error| panic!("{error}")),
    ))
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|error| panic!("{error}"));
    }
    fs::write(path, text).unwrap_or_else(|error| panic!("{error}"));
}

fn temporary_directory() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn happy_path_with_every_listed_type() {
    let text = r#"; the example zone
$ORIGIN example.test.
$TTL 1h
@       IN SOA  ns1 hostmaster (
                2024010101 ; serial
                2h         ; refresh
                1h         ; retry
                2w         ; expire
                5m )       ; minimum
        IN NS   ns1
        IN NS   ns2.example.test.
ns1     IN A    192.0.2.1
ns2     IN A    192.0.2.2
www     IN A    192.0.2.10
        IN AAAA 2001:db8::10
web     IN CNAME www
@       IN MX   10 mail
mail    IN A    192.0.2.20
@       IN TXT  "v=spf1 mx -all" "second string"
_sip._tcp IN SRV 10 60 5060 sip
sip     IN A    192.0.2.30
@       IN CAA  0 issue "ca.example.net"
1.2     IN PTR  www
old     IN DNAME new.example.
@       IN HTTPS 1 . alpn=h2
svc     IN HTTPS 1 www port=8443
sub     IN NS   ns1.sub
        IN DS   60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118
ns1.sub IN A    192.0.2.53
"#;
    let zone = zone(text);
    assert_eq!(zone.origin, name("example.test."));
    assert_eq!(zone.serial, 2024010101);
    assert_eq!(zone.file, Path::new(FILE));
    assert_eq!(zone.records.len(), 21);
    assert!(
        zone.records
            .iter()
            .all(|zone_record| zone_record.record.dns_class == DNSClass::IN)
    );
    assert!(
        zone.records
            .iter()
            .all(|zone_record| zone_record.record.name.is_fqdn())
    );
    // File order, each record at the line it starts on (the SOA spans 4-9).
    let lines: Vec<u32> = zone
        .records
        .iter()
        .map(|zone_record| zone_record.location.line)
        .collect();
    assert_eq!(lines, std::iter::once(4).chain(10..=29).collect::<Vec<_>>());

    let RData::SOA(soa) = &find(&zone, "example.test.", RecordType::SOA)[0].1 else {
        panic!("no SOA")
    };
    assert_eq!(soa.mname, name("ns1.example.test."));
    assert_eq!(soa.rname, name("hostmaster.example.test."));
    assert_eq!(
        (soa.refresh, soa.retry, soa.expire, soa.minimum),
        (7200, 3600, 1_209_600, 300)
    );
    assert_eq!(
        find(&zone, "example.test.", RecordType::NS),
        vec![
            (3600, RData::NS(NS(name("ns1.example.test.")))),
            (3600, RData::NS(NS(name("ns2.example.test."))))
        ]
    );
    assert_eq!(
        find(&zone, "www.example.test.", RecordType::A),
        vec![(3600, a("192.0.2.10"))]
    );
    let v6 = "2001:db8::10"
        .parse::<Ipv6Addr>()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        find(&zone, "www.example.test.", RecordType::AAAA),
        vec![(3600, RData::AAAA(AAAA::from(v6)))]
    );
    assert_eq!(
        find(&zone, "web.example.test.", RecordType::CNAME),
        vec![(3600, RData::CNAME(CNAME(name("www.example.test."))))]
    );
    assert_eq!(
        find(&zone, "example.test.", RecordType::MX),
        vec![(3600, RData::MX(MX::new(10, name("mail.example.test."))))]
    );
    assert_eq!(
        find(&zone, "example.test.", RecordType::TXT),
        vec![(
            3600,
            RData::TXT(TXT::new(vec![
                "v=spf1 mx -all".into(),
                "second string".into()
            ]))
        )]
    );
    assert_eq!(
        find(&zone, "_sip._tcp.example.test.", RecordType::SRV),
        vec![(
            3600,
            RData::SRV(SRV::new(10, 60, 5060, name("sip.example.test.")))
        )]
    );
    let caa = find(&zone, "example.test.", RecordType::CAA);
    assert_eq!(caa.len(), 1);
    let RData::CAA(caa) = &caa[0].1 else {
        panic!("not CAA")
    };
    assert_eq!(caa.tag.as_str(), "issue");
    assert_eq!(
        find(&zone, "1.2.example.test.", RecordType::PTR),
        vec![(3600, RData::PTR(PTR(name("www.example.test."))))]
    );
    assert_eq!(
        find(&zone, "old.example.test.", RecordType::DNAME),
        vec![(
            3600,
            RData::Unknown {
                code: RecordType::DNAME,
                rdata: NULL::with(b"\x03new\x07example\x00".to_vec())
            }
        )]
    );
    let https = find(&zone, "svc.example.test.", RecordType::HTTPS);
    let RData::HTTPS(https) = &https[0].1 else {
        panic!("not HTTPS")
    };
    assert_eq!(https.0.target_name, name("www.example.test."));
    assert_eq!(find(&zone, "sub.example.test.", RecordType::DS).len(), 1);
}

#[test]
fn directives_origin_ttl_and_units() {
    let text = format!(
        "{HEAD}$ORIGIN sub2.example.test.\nhost A 192.0.2.5\n$ORIGIN deeper\nx 90m A 192.0.2.6\n$TTL 1d\ny A 192.0.2.7\n@ A 192.0.2.8\n"
    );
    let zone = zone(&text);
    assert_eq!(
        find(&zone, "host.sub2.example.test.", RecordType::A),
        vec![(3600, a("192.0.2.5"))]
    );
    assert_eq!(
        find(&zone, "x.deeper.sub2.example.test.", RecordType::A),
        vec![(5400, a("192.0.2.6"))]
    );
    assert_eq!(
        find(&zone, "y.deeper.sub2.example.test.", RecordType::A),
        vec![(86_400, a("192.0.2.7"))]
    );
    assert_eq!(
        find(&zone, "deeper.sub2.example.test.", RecordType::A),
        vec![(86_400, a("192.0.2.8"))]
    );
}

#[test]
fn ttl_and_class_in_either_order_and_previous_ttl() {
    let text = "@ 300 IN SOA ns1 hostmaster 1 2h 1h 2w 5m\n@ IN 600 NS ns1\nns1 A 192.0.2.1\nwww in 1H a 192.0.2.2\n";
    let zone = zone(text);
    assert_eq!(find(&zone, "example.test.", RecordType::NS)[0].0, 600);
    // No $TTL: the previous record's TTL carries over.
    assert_eq!(
        find(&zone, "ns1.example.test.", RecordType::A),
        vec![(600, a("192.0.2.1"))]
    );
    assert_eq!(
        find(&zone, "www.example.test.", RecordType::A),
        vec![(3600, a("192.0.2.2"))]
    );
}

#[test]
fn owner_is_inherited_by_blank_started_lines() {
    let zone = zone(&format!(
        "{HEAD}www A 192.0.2.10\n  A 192.0.2.11\n\tTXT hello\n"
    ));
    assert_eq!(find(&zone, "www.example.test.", RecordType::A).len(), 2);
    assert_eq!(find(&zone, "www.example.test.", RecordType::TXT).len(), 1);
}

#[test]
fn relative_names_in_rdata() {
    let text = format!(
        "{HEAD}\
alias CNAME www\n\
@ MX 5 @\n\
@ MX 10 mail.other.test.\n\
_x._udp SRV 0 0 53 ns1\n\
naptr NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp\n\
svc SVCB 1 www\n\
p PTR @\n\
www A 192.0.2.9\n"
    );
    let zone = zone(&text);
    assert_eq!(
        find(&zone, "alias.example.test.", RecordType::CNAME),
        vec![(3600, RData::CNAME(CNAME(name("www.example.test."))))]
    );
    assert_eq!(
        find(&zone, "example.test.", RecordType::MX),
        vec![
            (3600, RData::MX(MX::new(5, name("example.test.")))),
            (3600, RData::MX(MX::new(10, name("mail.other.test."))))
        ]
    );
    assert_eq!(
        find(&zone, "_x._udp.example.test.", RecordType::SRV),
        vec![(
            3600,
            RData::SRV(SRV::new(0, 0, 53, name("ns1.example.test.")))
        )]
    );
    let RData::NAPTR(naptr) = &find(&zone, "naptr.example.test.", RecordType::NAPTR)[0].1 else {
        panic!("not NAPTR")
    };
    assert_eq!(naptr.replacement, name("_sip._udp.example.test."));
    let RData::SVCB(svcb) = &find(&zone, "svc.example.test.", RecordType::SVCB)[0].1 else {
        panic!("not SVCB")
    };
    assert_eq!(svcb.target_name, name("www.example.test."));
    assert_eq!(
        find(&zone, "p.example.test.", RecordType::PTR),
        vec![(3600, RData::PTR(PTR(name("example.test."))))]
    );
}

#[test]
fn quoted_strings_and_escapes() {
    let text = format!(
        "{HEAD}t TXT \"say \\\"hi\\\"; ok\" \\065\\066 \"\\200\\255\" \"(not a paren)\"\ne\\.x A 192.0.2.4\n\
c CAA 0 iodef \"mailto:a\\064example.test\"\n"
    );
    let zone = zone(&text);
    let expected = RData::TXT(TXT::from_bytes(vec![
        b"say \"hi\"; ok",
        b"AB",
        b"\xc8\xff",
        b"(not a paren)",
    ]));
    assert_eq!(
        find(&zone, "t.example.test.", RecordType::TXT),
        vec![(3600, expected)]
    );
    let escaped = zone
        .records
        .iter()
        .find(|zone_record| {
            zone_record.record.record_type() == RecordType::A && zone_record.location.line == 6
        })
        .map(|zone_record| zone_record.record.name.clone());
    assert_eq!(
        escaped.as_ref().and_then(|name| name.iter().next()),
        Some(&b"e.x"[..])
    );
    let RData::CAA(caa) = &find(&zone, "c.example.test.", RecordType::CAA)[0].1 else {
        panic!("not CAA")
    };
    assert_eq!(caa.value, b"mailto:a@example.test");
}

#[test]
fn duplicates_are_merged_and_ttls_aligned() {
    let mut text = format!(
        "{HEAD}www 300 A 192.0.2.10\nwww 300 A 192.0.2.10\nwww 900 A 192.0.2.11\nWWW 300 A 192.0.2.10\n"
    );
    // A large RRset exercises the hashed duplicate check.
    for host in 0..40 {
        text.push_str(&format!(
            "big A 198.51.100.{host}\nbig A 198.51.100.{host}\n"
        ));
    }
    let zone = zone(&text);
    assert_eq!(
        find(&zone, "www.example.test.", RecordType::A),
        vec![(300, a("192.0.2.10")), (300, a("192.0.2.11"))]
    );
    assert_eq!(find(&zone, "big.example.test.", RecordType::A).len(), 40);
}

#[test]
fn include_with_origin_and_nested_directories() {
    let directory = temporary_directory();
    let zone_file = directory.path().join("example.test.zone");
    write(
        &directory.path().join("hosts/web.inc"),
        "www A 192.0.2.10\n$INCLUDE more/db.inc\n$ORIGIN elsewhere.example.test.\n",
    );
    write(
        &directory.path().join("hosts/more/db.inc"),
        "db A 192.0.2.11\n",
    );
    write(
        &directory.path().join("lab.inc"),
        "@ A 192.0.2.12\nbox A 192.0.2.13\n",
    );
    let text = format!("{HEAD}$INCLUDE hosts/web.inc\nafter A 192.0.2.14\n$INCLUDE lab.inc lab\n");
    let zone = parse_zone(&text, &zone_file, &name("example.test."))
        .unwrap_or_else(|errors| panic!("{:?}", render(&errors)));
    assert_eq!(find(&zone, "www.example.test.", RecordType::A).len(), 1);
    assert_eq!(find(&zone, "db.example.test.", RecordType::A).len(), 1);
    // The $ORIGIN inside the include did not leak back.
    assert_eq!(find(&zone, "after.example.test.", RecordType::A).len(), 1);
    assert_eq!(find(&zone, "lab.example.test.", RecordType::A).len(), 1);
    assert_eq!(find(&zone, "box.lab.example.test.", RecordType::A).len(), 1);
    let db = zone
        .records
        .iter()
        .find(|zone_record| zone_record.record.name == name("db.example.test."));
    let location = db.map(|zone_record| zone_record.location.to_string());
    assert_eq!(
        location,
        Some(
            directory
                .path()
                .join("hosts/more/db.inc:1")
                .display()
                .to_string()
        )
    );
}

#[test]
fn include_errors_name_the_included_file() {
    let directory = temporary_directory();
    let zone_file = directory.path().join("example.test.zone");
    write(
        &directory.path().join("bad.inc"),
        "ok A 192.0.2.1\nbroken A 192.0.2.300\n",
    );
    let text = format!("{HEAD}$INCLUDE bad.inc\n$INCLUDE missing.inc\n");
    let errors = render(
        &parse_zone(&text, &zone_file, &name("example.test."))
            .err()
            .unwrap_or_default(),
    );
    let shown = |file: &str| directory.path().join(file).display().to_string();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        format!(
            "{}:2: invalid A record data: \"192.0.2.300\" is not an IPv4 address",
            shown("bad.inc")
        )
    );
    assert!(errors[1].starts_with(&format!(
        "{}:6: cannot read $INCLUDE file {}: ",
        shown("example.test.zone"),
        shown("missing.inc")
    )));
}

#[test]
fn include_cycle_is_an_error() {
    let directory = temporary_directory();
    let zone_file = directory.path().join("example.test.zone");
    write(
        &directory.path().join("a.inc"),
        "a A 192.0.2.1\n$INCLUDE b.inc\n",
    );
    write(
        &directory.path().join("b.inc"),
        "b A 192.0.2.2\n$INCLUDE a.inc\n",
    );
    let text = format!("{HEAD}$INCLUDE a.inc\n");
    write(&zone_file, &text);
    let errors = render(
        &parse_zone(&text, &zone_file, &name("example.test."))
            .err()
            .unwrap_or_default(),
    );
    let shown = |file: &str| directory.path().join(file).display().to_string();
    assert_eq!(
        errors,
        vec![format!(
            "{}:2: $INCLUDE cycle: {} -> {} -> {}",
            shown("b.inc"),
            shown("a.inc"),
            shown("b.inc"),
            shown("a.inc")
        )]
    );

    // A file including itself, including the zone file.
    write(
        &directory.path().join("self.inc"),
        "$INCLUDE example.test.zone\n",
    );
    let text = format!("{HEAD}$INCLUDE self.inc\n");
    let errors = render(
        &parse_zone(&text, &zone_file, &name("example.test."))
            .err()
            .unwrap_or_default(),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("$INCLUDE cycle"), "{errors:?}");
}

#[test]
fn include_depth_is_limited() {
    let directory = temporary_directory();
    let zone_file = directory.path().join("example.test.zone");
    for level in 0..12 {
        write(
            &directory.path().join(format!("level{level}.inc")),
            &format!("$INCLUDE level{}.inc\n", level + 1),
        );
    }
    write(&directory.path().join("level12.inc"), "deep A 192.0.2.1\n");
    let text = format!("{HEAD}$INCLUDE level0.inc\n");
    let errors = render(
        &parse_zone(&text, &zone_file, &name("example.test."))
            .err()
            .unwrap_or_default(),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            &directory
                .path()
                .join("level7.inc:1: $INCLUDE ")
                .display()
                .to_string()
        ),
        "{errors:?}"
    );
    assert!(
        errors[0].ends_with("nests deeper than 8 files"),
        "{errors:?}"
    );
}

#[test]
fn parse_errors_are_all_reported_with_lines() {
    let text = format!(
        "{HEAD}\
a A 192.0.2.300\n\
b FOO 1\n\
c CH A 192.0.2.1\n\
d TXT \"unterminated\n\
e A (192.0.2.1\n\
f A 192.0.2.2 )\n\
g A 192.0.2.3 )\n\
$FOO 1-2 x A 192.0.2.$\n\
h IN\n\
i 1x A 192.0.2.4\n\
j MX mail\n\
k..l A 192.0.2.5\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "zones/example.test.zone:5: invalid A record data: \"192.0.2.300\" is not an IPv4 address",
            "zones/example.test.zone:6: unknown record type \"FOO\"",
            "zones/example.test.zone:7: class CH is not supported (only IN)",
            "zones/example.test.zone:8: quoted string is not closed on this line",
            // The parenthesis joins lines 9 and 10 into one record.
            "zones/example.test.zone:9: invalid A record data: expected 1 field (an IPv4 address), found 4",
            "zones/example.test.zone:11: ')' without a matching '('",
            "zones/example.test.zone:12: unknown directive $FOO (expected $ORIGIN, $TTL, $INCLUDE or $GENERATE)",
            "zones/example.test.zone:13: missing record type",
            "zones/example.test.zone:14: \"1x\" is not a valid TTL (seconds, or units s m h d w as in 1h30m)",
            "zones/example.test.zone:15: invalid MX record data: expected 2 fields (preference and exchange), found 1",
            "zones/example.test.zone:16: \"k..l\" is not a valid domain name (empty label)",
        ]
    );
}

#[test]
fn generate_stands_for_a_run_of_records() {
    let zone = zone(&format!(
        "{HEAD}\
$GENERATE 1-3 host-$ A 192.0.2.$\n\
$GENERATE 0-20/10 ${{100,4}} 60 IN PTR host-${{0,2,x}}.example.test.\n\
$GENERATE 10-11 @ TXT \"item $ \\$\"\n\
after A 192.0.2.99\n"
    ));
    for value in 1..=3 {
        assert_eq!(
            find(&zone, &format!("host-{value}.example.test."), RecordType::A),
            [(3600, a(&format!("192.0.2.{value}")))]
        );
    }
    for (owner, target) in [
        ("0100", "host-00"),
        ("0110", "host-0a"),
        ("0120", "host-14"),
    ] {
        assert_eq!(
            find(&zone, &format!("{owner}.example.test."), RecordType::PTR),
            [(
                60,
                RData::PTR(PTR(name(&format!("{target}.example.test."))))
            )]
        );
    }
    let texts: Vec<String> = find(&zone, "example.test.", RecordType::TXT)
        .into_iter()
        .map(|(_, data)| data.to_string())
        .collect();
    assert_eq!(texts, ["item 10 $", "item 11 $"]);
    // The owner of the records after it is their own, the TTL the $TTL.
    assert_eq!(
        find(&zone, "after.example.test.", RecordType::A),
        [(3600, a("192.0.2.99"))]
    );
    // Generated records are located at the directive's line.
    let line_of = |owner: &str| {
        zone.records
            .iter()
            .find(|record| record.record.name == name(owner))
            .map(|record| record.location.line)
    };
    assert_eq!(line_of("host-2.example.test."), Some(5));
    assert_eq!(line_of("0110.example.test."), Some(6));
}

#[test]
fn generate_errors_name_the_line_and_the_value() {
    assert_eq!(
        errors(&format!(
            "{HEAD}\
$GENERATE 250-260 h$ A 192.0.2.$\n\
$GENERATE 5-1 x A 192.0.2.1\n\
$GENERATE 1-2\n\
$GENERATE 1-2 x${{0,3,q}} A 192.0.2.1\n\
$GENERATE 0-2000000 x$ A 192.0.2.1\n\
$GENERATE 1-2 x$ FOO 1\n"
        )),
        vec![
            "zones/example.test.zone:5: $GENERATE at 256: invalid A record data: \"192.0.2.256\" is not an IPv4 address",
            "zones/example.test.zone:6: \"5-1\" is not a $GENERATE range (start-stop or start-stop/step, 0 <= start <= stop)",
            "zones/example.test.zone:7: $GENERATE takes a range, an owner, an optional TTL and class, a type and record data",
            "zones/example.test.zone:8: $GENERATE at 1: \"x${0,3,q}\": base \"q\" is not one of d, o, x, X, n, N",
            "zones/example.test.zone:9: $GENERATE range 0-2000000 stands for 2000001 records, more than the 1000000 allowed",
            "zones/example.test.zone:10: unknown record type \"FOO\"",
        ]
    );
}

#[test]
fn names_below_a_dname_are_refused() {
    assert_eq!(
        errors(&format!(
            "{HEAD}\
legacy DNAME example.net.\n\
legacy TXT \"the owner may have other data\"\n\
www.legacy A 192.0.2.1\n"
        )),
        vec![
            "zones/example.test.zone:7: A at www.legacy.example.test. is below the DNAME at \
             legacy.example.test. (line 5); RFC 6672 allows no names below a DNAME, whose whole \
             subtree is answered by substitution"
        ]
    );
}

#[test]
fn unclosed_parenthesis_at_end_of_file() {
    assert_eq!(
        errors(&format!("{HEAD}www A ( 192.0.2.1\n\nnext A 192.0.2.2\n")),
        vec!["zones/example.test.zone:5: '(' opened at line 5 is never closed"]
    );
}

#[test]
fn missing_ttl_is_an_error() {
    let text = "@ SOA ns1 hostmaster 1 2h 1h 2w 5m\n@ 3600 NS ns1\nns1 A 192.0.2.1\n";
    assert_eq!(
        errors(text),
        vec![
            "zones/example.test.zone:1: no TTL: give this record a TTL or put a $TTL directive before it"
        ]
    );
}

#[test]
fn first_record_cannot_inherit_an_owner() {
    assert_eq!(
        errors(&format!("  A 192.0.2.1\n{HEAD}")),
        vec![
            "zones/example.test.zone:1: record starts with a blank but there is no previous owner name to repeat"
        ]
    );
}

#[test]
fn missing_soa_and_ns() {
    assert_eq!(
        errors("$TTL 300\nwww A 192.0.2.1\n"),
        vec![
            "zones/example.test.zone: no SOA record at the zone apex example.test.",
            "zones/example.test.zone: no NS record at the zone apex example.test.",
        ]
    );
}

#[test]
fn soa_rules() {
    assert_eq!(
        errors(&format!(
            "{HEAD}@ SOA ns1 hostmaster 2 2h 1h 2w 5m\nwww SOA ns1 hostmaster 1 2h 1h 2w 5m\n"
        )),
        vec![
            "zones/example.test.zone:5: second SOA record at the zone apex example.test. (the first is at line 2)",
            "zones/example.test.zone:6: SOA at www.example.test. is not at the zone apex example.test.",
        ]
    );
    // An identical SOA repeated is a harmless duplicate.
    assert!(parse(&format!("{HEAD}@ SOA ns1 hostmaster 1 2h 1h 2w 5m\n")).is_ok());
}

#[test]
fn out_of_zone_owner() {
    assert_eq!(
        errors(&format!(
            "{HEAD}www.other.test. A 192.0.2.1\n$ORIGIN test.\nfoo A 192.0.2.2\n"
        )),
        vec![
            "zones/example.test.zone:5: owner www.other.test. is outside the zone example.test.",
            "zones/example.test.zone:7: owner foo.test. is outside the zone example.test.",
        ]
    );
}

#[test]
fn cname_rules() {
    assert_eq!(
        errors(&format!("{HEAD}www A 192.0.2.1\nwww CNAME web\n")),
        vec![
            "zones/example.test.zone:6: CNAME at www.example.test. cannot coexist with other data (A at line 5)"
        ]
    );
    assert_eq!(
        errors(&format!("{HEAD}www CNAME web\nwww TXT \"x\"\n")),
        vec![
            "zones/example.test.zone:5: CNAME at www.example.test. cannot coexist with other data (TXT at line 6)"
        ]
    );
    assert_eq!(
        errors(&format!(
            "{HEAD}www CNAME web\nwww CNAME web2\nwww CNAME web\n"
        )),
        vec![
            "zones/example.test.zone:6: more than one CNAME at www.example.test. (the first is at line 5)"
        ]
    );
    assert_eq!(
        errors(&format!("{HEAD}@ CNAME web\n")),
        vec![
            "zones/example.test.zone:5: CNAME at the zone apex example.test. is not allowed (the apex has SOA and NS records)"
        ]
    );
}

#[test]
fn delegation_rules() {
    // Valid: NS + DS + glue at and below the cut, out-of-bailiwick target.
    let valid = format!(
        "{HEAD}sub NS ns1.sub\nsub NS ns.elsewhere.test.\nsub DS 1 8 2 ABCDEF\nns1.sub A 192.0.2.53\nns1.sub AAAA 2001:db8::53\n"
    );
    assert!(parse(&valid).is_ok(), "{:?}", parse(&valid).err());

    assert_eq!(
        errors(&format!(
            "{HEAD}sub NS ns1.sub\nsub NS ns2.sub\nns1.sub A 192.0.2.53\n"
        )),
        vec![
            "zones/example.test.zone:6: delegation sub.example.test.: NS target ns2.sub.example.test. has no glue (no A or AAAA record at that name)"
        ]
    );
    assert_eq!(
        errors(&format!(
            "{HEAD}sub NS ns.elsewhere.test.\nsub MX 10 mail\nwww.sub TXT \"hidden\"\ndeep.sub NS ns.elsewhere.test.\n"
        )),
        vec![
            "zones/example.test.zone:6: MX at sub.example.test. is not allowed at a delegation point (NS at line 5); only NS, DS and glue A/AAAA records may be there",
            "zones/example.test.zone:7: TXT at www.sub.example.test. is below the delegation sub.example.test. (NS at line 5); only glue A/AAAA records may be there",
            "zones/example.test.zone:8: NS at deep.sub.example.test. is below the delegation sub.example.test. (NS at line 5); only glue A/AAAA records may be there",
        ]
    );
}

#[test]
fn missing_checks_are_skipped_when_lines_failed_to_parse() {
    // The SOA line is broken: report it, not a confusing "no SOA" as well.
    assert_eq!(
        errors("$TTL 1h\n@ SOA ns1 hostmaster x 2h 1h 2w 5m\n@ NS ns1\nns1 A 192.0.2.1\n"),
        vec![
            "zones/example.test.zone:2: invalid SOA record data: serial \"x\" is not a number from 0 to 4294967295"
        ]
    );
}

#[test]
fn load_dir_loads_sorted_zones_with_lower_case_apex() {
    let directory = temporary_directory();
    write(&directory.path().join("B.Example.zone"), HEAD);
    write(&directory.path().join("a.example.zone"), HEAD);
    write(&directory.path().join("notes.txt"), "not a zone");
    fs::create_dir(directory.path().join("dir.zone")).unwrap_or_else(|error| panic!("{error}"));
    let zones = load_dir(directory.path()).unwrap_or_else(|errors| panic!("{:?}", render(&errors)));
    let apexes: Vec<String> = zones.iter().map(|zone| zone.origin.to_ascii()).collect();
    // Sorted by file name (upper case sorts first), apex lower-cased.
    assert_eq!(apexes, vec!["b.example.", "a.example."]);
    assert_eq!(zones[0].file, directory.path().join("B.Example.zone"));
    assert!(zones.iter().all(|zone| zone.serial == 1));
}

#[test]
fn load_dir_reports_every_error_of_every_file() {
    let directory = temporary_directory();
    write(
        &directory.path().join("a.example.zone"),
        &format!("{HEAD}x A 1.2.3\n"),
    );
    write(
        &directory.path().join("b.example.zone"),
        &format!("{HEAD}y FOO 1\n"),
    );
    write(&directory.path().join("c.example.zone"), HEAD);
    write(&directory.path().join("C.EXAMPLE.zone"), HEAD);
    let errors = render(&load_dir(directory.path()).err().unwrap_or_default());
    let shown = |file: &str| directory.path().join(file).display().to_string();
    assert_eq!(
        errors,
        vec![
            format!(
                "{}:5: invalid A record data: \"1.2.3\" is not an IPv4 address",
                shown("a.example.zone")
            ),
            format!("{}:5: unknown record type \"FOO\"", shown("b.example.zone")),
            format!(
                "{}: zone c.example. is already loaded from {}",
                shown("c.example.zone"),
                shown("C.EXAMPLE.zone")
            ),
        ]
    );
}

#[test]
fn load_dir_requires_a_directory_with_zone_files() {
    let directory = temporary_directory();
    let missing = directory.path().join("missing");
    let errors = render(&load_dir(&missing).err().unwrap_or_default());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(&format!(
            "{}: cannot read the zones directory: ",
            missing.display()
        )),
        "{errors:?}"
    );
    write(&directory.path().join("readme.txt"), "no zones here");
    assert_eq!(
        render(&load_dir(directory.path()).err().unwrap_or_default()),
        vec![format!(
            "{}: no .zone files in the zones directory",
            directory.path().display()
        )]
    );
}

#[test]
fn bundled_example_zone_loads() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones");
    let zones =
        load_dir(&directory).unwrap_or_else(|errors| panic!("{}", render(&errors).join("\n")));
    let example = zones
        .iter()
        .find(|zone| zone.origin == name("example.test."));
    assert!(example.is_some_and(|zone| zone.records.len() > 10));
}

#[test]
fn bad_zone_fixtures_fail_with_their_expected_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-zones");
    let mut cases = fs::read_dir(&root)
        .unwrap_or_else(|error| panic!("{}: {error}", root.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect::<Vec<_>>();
    cases.sort();
    assert!(cases.len() >= 8);
    for case in cases {
        let expected =
            fs::read_to_string(case.join("expected.txt")).unwrap_or_else(|error| panic!("{error}"));
        let mut lines = expected.lines();
        let message = lines.next().unwrap_or_default();
        let line = lines
            .next()
            .and_then(|line| line.strip_prefix("line="))
            .unwrap_or_default();
        let errors = load_dir(&case).err().unwrap_or_default();
        assert_eq!(errors.len(), 1, "{}: {:?}", case.display(), render(&errors));
        let shown_line = if line == "none" {
            None
        } else {
            line.parse().ok()
        };
        assert_eq!(errors[0].line, shown_line, "{}", case.display());
        assert_eq!(errors[0].message, message, "{}", case.display());
    }
}

/// Pieces of zone syntax that random texts are assembled from.
const FRAGMENTS: &[&str] = &[
    "@",
    " ",
    "\t",
    "\n",
    "\r\n",
    "(",
    ")",
    "; c",
    "\"",
    "\\",
    "\\0",
    "\\255",
    "\\.",
    "IN",
    "CH",
    "3600",
    "1h30m",
    "A",
    "AAAA",
    "NS",
    "CNAME",
    "MX",
    "TXT",
    "SRV",
    "SOA",
    "CAA",
    "HTTPS",
    "SVCB",
    "NAPTR",
    "DS",
    "DNAME",
    "PTR",
    "SSHFP",
    "TLSA",
    "HINFO",
    "192.0.2.1",
    "2001:db8::1",
    "www",
    "sub",
    "ns1.sub",
    "*",
    ".",
    "..",
    "10",
    "0",
    "65536",
    "issue",
    "alpn=h2",
    "port=1",
    "$TTL",
    "$ORIGIN",
    "$INCLUDE",
    "x.example.test.",
    "other.",
    "é",
    "AB12",
    "\\#",
    "\\# 4 C0000201",
    "\\# 0",
    "C000",
    "TYPE1",
    "TYPE65280",
    "CLASS1",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The fuzz target's property: any text gives a zone or errors, never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n\"();\\\\$@é]{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn token_soup_never_panics(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80)) {
        let _ = parse(&format!("{HEAD}{}", parts.concat()));
    }

    /// Every error of a broken text names the file and a line within it.
    #[test]
    fn errors_point_into_the_text(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80)) {
        let text = format!("{HEAD}{}", parts.concat());
        let lines = u32::try_from(text.lines().count() + 1).unwrap_or(u32::MAX);
        if let Err(errors) = parse(&text) {
            for error in errors {
                if error.file == Path::new(FILE) {
                    prop_assert!(error.line.is_none_or(|line| line >= 1 && line <= lines), "{error}");
                }
            }
        }
    }
}

/// Records of `text` straight from the parser, without whole-zone
/// validation (so a text may hold two SOAs or owners outside the zone).
fn parse_records(text: &str, origin: &Name) -> Vec<Record> {
    let parsed = parser::parse(text, Path::new(FILE), origin);
    assert!(
        parsed.errors.is_empty(),
        "{}\n{text}",
        render(&parsed.errors).join("\n")
    );
    parsed
        .records
        .into_iter()
        .map(|zone_record| zone_record.record)
        .collect()
}

/// Uncompressed wire form of record data, names in their own case.
fn data_wire(data: &RData) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut encoder = BinEncoder::new(&mut wire);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut encoder)
        .unwrap_or_else(|error| panic!("{data:?}: {error}"));
    wire
}

/// Everything of a record that a written zone must give back, with the
/// exact bytes (and so the case) of the owner and of the data.
#[derive(Debug, PartialEq)]
struct Exact {
    owner: Vec<Vec<u8>>,
    owner_absolute: bool,
    ttl: u32,
    class: DNSClass,
    record_type: RecordType,
    wire: Vec<u8>,
    data: RData,
}

fn exact(record: &Record) -> Exact {
    Exact {
        owner: record.name.iter().map(<[u8]>::to_vec).collect(),
        owner_absolute: record.name.is_fqdn(),
        ttl: record.ttl,
        class: record.dns_class,
        record_type: record.record_type(),
        wire: data_wire(&record.data),
        data: record.data.clone(),
    }
}

fn exact_all(records: &[Record]) -> Vec<Exact> {
    records.iter().map(exact).collect()
}

// RFC 3597 §5: generic record data.

#[test]
fn generic_data_gives_the_same_data_as_the_type_syntax() {
    let origin = name("example.test.");
    let soa_generic = "\\# 63 ( 036E7331076578616D706C650474657374 00 ; mname\n\
        0A686F73746D6173746572076578616D706C6504746573740078A3F175\n\
        00001C2000000E10001275000000012C )";
    // (type, the type's own syntax, the same data in generic form)
    let cases: &[(&str, &str, &str)] = &[
        ("A", "192.0.2.1", r"\# 4 C0000201"),
        ("A", "192.0.2.1", r"\# 4 c0 00 02 01"),
        ("A", "192.0.2.1", r"\# 4 C 0000 201"),
        (
            "AAAA",
            "2001:db8::1",
            r"\# 16 20010DB8 00000000 00000000 00000001",
        ),
        ("NS", "ns1", r"\# 18 036E7331076578616D706C65047465737400"),
        (
            "CNAME",
            "www",
            r"\# 18 03777777076578616D706C65047465737400",
        ),
        ("PTR", "www", r"\# 18 03777777076578616D706C65047465737400"),
        (
            "MX",
            "10 mail",
            r"\# 21 000A046D61696C076578616D706C65047465737400",
        ),
        ("TXT", r#""hello" "a b""#, r"\# 10 0568656C6C6F03612062"),
        (
            "CAA",
            r#"0 issue "ca.example.net""#,
            r"\# 21 0005697373756563612E6578616D706C652E6E6574",
        ),
        (
            "SRV",
            "10 60 5060 sip",
            r"\# 24 000A003C13C403736970076578616D706C65047465737400",
        ),
        ("DNAME", "new.example.", r"\# 13 036E6577076578616D706C6500"),
        ("SOA", "ns1 hostmaster 2024010101 2h 1h 2w 5m", soa_generic),
        ("HTTPS", "1 . alpn=h2", r"\# 10 00010000010003026832"),
        (
            "HTTPS",
            "1 www port=8443",
            r"\# 26 000103777777076578616D706C650474657374000003000220FB",
        ),
        (
            "TLSA",
            "3 1 1 0123456789abcdef",
            r"\# 11 0301010123456789ABCDEF",
        ),
        ("DS", "60485 5 1 2BB183AF", r"\# 8 EC4505012BB183AF"),
        (
            "SSHFP",
            "2 1 123456789abcdef67890123456789abcdef67890",
            r"\# 22 0201123456789ABCDEF67890123456789ABCDEF67890",
        ),
        (
            "NAPTR",
            r#"100 10 "S" "SIP+D2U" "" _sip._udp"#,
            r"\# 39 0064000A0153075349502B44325500045F736970045F756470076578616D706C65047465737400",
        ),
        ("HINFO", "CPU OS", r"\# 7 03435055024F53"),
    ];
    for (record_type, presentation, generic) in cases {
        let text = format!("$TTL 1h\np {record_type} {presentation}\ng {record_type} {generic}\n");
        let records = parse_records(&text, &origin);
        assert_eq!(records.len(), 2, "{text}");
        // RData equality includes whether every name in it is absolute.
        assert_eq!(records[1].data, records[0].data, "{text}");
        assert_eq!(
            data_wire(&records[1].data),
            data_wire(&records[0].data),
            "{text}"
        );
    }
}

#[test]
fn generic_data_may_be_empty_when_the_type_allows_it() {
    let records = parse_records("$TTL 1h\nt TXT \\# 0\n", &name("example.test."));
    assert_eq!(records[0].data, RData::TXT(TXT::from_bytes(Vec::new())));
    // Quoted, `\#` is just a string.
    let records = parse_records("$TTL 1h\nt TXT \"\\#\" 0\n", &name("example.test."));
    assert_eq!(
        records[0].data,
        RData::TXT(TXT::from_bytes(vec![b"#", b"0"]))
    );
}

#[test]
fn generic_data_errors_name_the_line_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            r"x A \# 4 C00002",
            "invalid A record data: generic data is 3 bytes but its length says 4",
        ),
        (
            r"x A \# 4 C000020101",
            "invalid A record data: generic data is 5 bytes but its length says 4",
        ),
        (
            r"x A \# 5 C000020101",
            "invalid A record data: generic data has 1 trailing byte after the 4 bytes of A data",
        ),
        (
            r"x A \# 4 C00002GG",
            "invalid A record data: generic data \"C00002GG\" is not hexadecimal",
        ),
        (
            r"x A \# 4 C000020",
            "invalid A record data: generic data has an odd number of hex digits",
        ),
        (
            r"x A \#",
            r"invalid A record data: expected the data length after \#",
        ),
        (
            r"x A \# 70000",
            "invalid A record data: generic data length \"70000\" is not a number from 0 to 65535",
        ),
        (
            r"x A \# 0",
            "invalid A record data: generic data is not valid A data: unexpected end of input reached",
        ),
        (
            r"x CNAME \# 6 03777777C000",
            "invalid CNAME record data: generic data cannot use name compression (there is no \
             message for a pointer to point into), but offset 4 holds a compression pointer",
        ),
        (
            r"x MX \# 4 000AC000",
            "invalid MX record data: generic data cannot use name compression (there is no \
             message for a pointer to point into), but offset 2 holds a compression pointer",
        ),
        (
            r"x SOA \# 27 00 03616263C000 0000000100000001000000010000000100000001",
            "invalid SOA record data: generic data cannot use name compression (there is no \
             message for a pointer to point into), but offset 5 holds a compression pointer",
        ),
        (
            r"x DNAME \# 6 036162630000",
            "invalid DNAME record data: generic data is not one domain name: 1 byte after \
             the domain name",
        ),
        (
            r"x DNAME \# 3 036162",
            "invalid DNAME record data: generic data is not one domain name: not a domain \
             name: unexpected end of input reached",
        ),
        (
            r"x DS \# 3 EC4505",
            "invalid DS record data: generic data of 3 bytes is too short for DS (key tag, \
             algorithm and digest type take 4)",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(
            errors(&format!("{HEAD}{line}\n")),
            vec![format!("{FILE}:5: {message}")],
            "{line}"
        );
    }
}

// RFC 3597 §5: TYPEnnn and CLASSnn.

#[test]
fn type_and_class_numbers() {
    let text = format!(
        "{HEAD}a CLASS1 TYPE1 192.0.2.1\nmx type15 10 mail\nt TYPE16 \\# 3 026869\nd Type39 \\# 13 036E6577076578616D706C6500\n"
    );
    let zone = zone(&text);
    assert_eq!(
        find(&zone, "a.example.test.", RecordType::A),
        vec![(3600, a("192.0.2.1"))]
    );
    assert_eq!(
        find(&zone, "mx.example.test.", RecordType::MX),
        vec![(3600, RData::MX(MX::new(10, name("mail.example.test."))))]
    );
    assert_eq!(
        find(&zone, "t.example.test.", RecordType::TXT),
        vec![(3600, RData::TXT(TXT::new(vec!["hi".into()])))]
    );
    assert_eq!(find(&zone, "d.example.test.", RecordType::DNAME).len(), 1);

    let cases: &[(&str, &str)] = &[
        (
            r"x TYPE65280 \# 0",
            "record type TYPE65280 is not supported in zone files",
        ),
        (
            r"x TYPE46 \# 0",
            "record type TYPE46 (RRSIG) is not supported in zone files",
        ),
        (
            r"x TYPE65536 \# 0",
            "unknown record type \"TYPE65536\" (type numbers end at 65535)",
        ),
        ("x TYPE 192.0.2.1", "unknown record type \"TYPE\""),
        (
            "x CLASS3 A 192.0.2.1",
            "class CLASS3 is not supported (only IN)",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(
            errors(&format!("{HEAD}{line}\n")),
            vec![format!("{FILE}:5: {message}")],
            "{line}"
        );
    }
}

// The zone file writer.

/// parse → write → parse gives back the same records, byte for byte.
fn assert_round_trip(origin: &Name, records: &[Record]) -> String {
    let text = write_zone(origin, records);
    let parsed = parser::parse(&text, Path::new(FILE), origin);
    assert!(
        parsed.errors.is_empty(),
        "{}\n{text}",
        render(&parsed.errors).join("\n")
    );
    let again: Vec<Record> = parsed
        .records
        .into_iter()
        .map(|zone_record| zone_record.record)
        .collect();
    assert_eq!(exact_all(&again), exact_all(records), "{text}");
    text
}

#[test]
fn written_zone_files_read_back_to_the_same_records() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pending = vec![root.join("zones"), root.join("tests")];
    let mut files = Vec::new();
    while let Some(directory) = pending.pop() {
        for entry in fs::read_dir(&directory).unwrap_or_else(|error| panic!("{error}")) {
            let path = entry.unwrap_or_else(|error| panic!("{error}")).path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "zone")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut loaded = 0;
    for path in &files {
        let text = fs::read_to_string(path).unwrap_or_else(|error| panic!("{error}"));
        let stem = path
            .file_name()
            .and_then(|file_name| file_name.to_str())
            .and_then(|file_name| file_name.strip_suffix(".zone"))
            .unwrap_or_else(|| panic!("{}", path.display()));
        let origin = name(&format!("{stem}."));
        // The bad-zone fixtures are meant not to load.
        let Ok(zone) = parse_zone(&text, path, &origin) else {
            continue;
        };
        let records: Vec<Record> = zone
            .records
            .iter()
            .map(|zone_record| zone_record.record.clone())
            .collect();
        let written = write_zone(&origin, &records);
        let again = parse_zone(&written, path, &origin)
            .unwrap_or_else(|errors| panic!("{}\n{written}", render(&errors).join("\n")));
        let again: Vec<Record> = again
            .records
            .into_iter()
            .map(|zone_record| zone_record.record)
            .collect();
        assert_eq!(exact_all(&again), exact_all(&records), "{}", path.display());
        loaded += 1;
    }
    assert!(
        loaded >= 7,
        "only {loaded} of {} zone files loaded",
        files.len()
    );
}

#[test]
fn written_zone_is_readable() {
    let text = r#"$ORIGIN example.test.
$TTL 1h
@       IN SOA  ns1 hostmaster 2024010101 2h 1h 2w 5m
        IN NS   ns1
ns1     IN A    192.0.2.1
www     IN AAAA 2001:db8::10
Web     IN CNAME www
@       IN MX   10 mail
@       IN TXT  "v=spf1 mx -all" "say \"hi\"\\" "\009\255"
_sip._tcp IN SRV 10 60 5060 sip
@       IN CAA  0 issue "ca.example.net"
1.2     IN PTR  www
old     IN DNAME new.example.
a\.b\ c IN ANAME www.other.
sub     IN NS   ns1.sub
        IN DS   60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118
@       IN HTTPS 1 . alpn=h2
naptr   IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp
svc     IN SVCB 1 www port=8443
_443._tcp IN TLSA 3 1 1 0123456789abcdef
@       IN SSHFP 2 1 123456789abcdef67890123456789abcdef67890
h       IN HINFO "CPU" "OS"
"#;
    let origin = name("example.test.");
    let records = parse_records(text, &origin);
    let written = assert_round_trip(&origin, &records);
    let expected = r#"$ORIGIN example.test.
@ 3600 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 300
@ 3600 IN NS ns1.example.test.
ns1 3600 IN A 192.0.2.1
www 3600 IN AAAA 2001:db8::10
Web 3600 IN CNAME www.example.test.
@ 3600 IN MX 10 mail.example.test.
@ 3600 IN TXT "v=spf1 mx -all" "say \"hi\"\\" "\009\255"
_sip._tcp 3600 IN SRV 10 60 5060 sip.example.test.
@ 3600 IN CAA \# 21 0005697373756563612E6578616D706C652E6E6574
1.2 3600 IN PTR www.example.test.
old 3600 IN DNAME new.example.
a\.b\032c 3600 IN ANAME www.other.
sub 3600 IN NS ns1.sub.example.test.
sub 3600 IN DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118
@ 3600 IN HTTPS \# 10 00010000010003026832
naptr 3600 IN NAPTR \# 39 0064000A0153075349502B44325500045F736970045F756470076578616D706C65047465737400
svc 3600 IN SVCB \# 26 000103777777076578616D706C650474657374000003000220FB
_443._tcp 3600 IN TLSA \# 11 0301010123456789ABCDEF
@ 3600 IN SSHFP \# 22 0201123456789ABCDEF67890123456789ABCDEF67890
h 3600 IN HINFO \# 7 03435055024F53
"#;
    assert_eq!(written, expected);
}

#[test]
fn owners_outside_the_origin_are_written_absolute() {
    let origin = name("example.test.");
    let records = vec![
        Record::from_rdata(name("example.test."), 60, a("192.0.2.1")),
        Record::from_rdata(name("www.other."), 60, a("192.0.2.2")),
        Record::from_rdata(name("."), 60, a("192.0.2.3")),
        Record::from_rdata(name("test."), 60, a("192.0.2.4")),
        // Inside, but in another case: relative would take the origin's case.
        Record::from_rdata(name("www.EXAMPLE.test."), 60, a("192.0.2.5")),
        Record::from_rdata(name("*.example.test."), 60, a("192.0.2.6")),
        Record::from_rdata(name("a.*.example.test."), 60, a("192.0.2.7")),
    ];
    let written = assert_round_trip(&origin, &records);
    let owners: Vec<&str> = written
        .lines()
        .skip(1)
        .filter_map(|line| line.split(' ').next())
        .collect();
    assert_eq!(
        owners,
        vec![
            "@",
            "www.other.",
            ".",
            "test.",
            "www.EXAMPLE.test.",
            "*",
            "a.*"
        ]
    );
    // The root zone: every name is inside it.
    let written = assert_round_trip(&Name::root(), &records);
    assert!(
        written.starts_with("$ORIGIN .\nexample.test 60 IN A"),
        "{written}"
    );
}

#[test]
fn values_without_a_text_form_are_written_generic() {
    let origin = name("example.test.");
    let soa = |refresh: i32, minimum: u32| {
        RData::SOA(SOA::new(
            name("ns1.example.test."),
            name("hostmaster.example.test."),
            u32::MAX,
            refresh,
            1,
            2,
            minimum,
        ))
    };
    let records = vec![
        Record::from_rdata(origin.clone(), 60, soa(-1, 0)),
        Record::from_rdata(origin.clone(), 60, soa(1, u32::MAX)),
        Record::from_rdata(origin.clone(), 60, soa(i32::MAX, 0x7fff_ffff)),
        Record::from_rdata(origin.clone(), 60, RData::TXT(TXT::from_bytes(Vec::new()))),
        Record::from_rdata(
            origin.clone(),
            60,
            RData::TXT(TXT::from_bytes(vec![b"", b"\x00"])),
        ),
        Record::from_rdata(
            origin.clone(),
            60,
            RData::Unknown {
                code: RecordType::DS,
                rdata: NULL::with(vec![0xec, 0x45, 5, 1]),
            },
        ),
        Record::from_rdata(origin.clone(), 0x7fff_ffff, a("192.0.2.1")),
    ];
    let written = assert_round_trip(&origin, &records);
    let lines: Vec<&str> = written.lines().collect();
    assert!(lines[1].starts_with(r"@ 60 IN SOA \# 63 "), "{written}");
    assert!(lines[2].starts_with(r"@ 60 IN SOA \# 63 "), "{written}");
    assert!(
        lines[3].starts_with("@ 60 IN SOA ns1.example.test."),
        "{written}"
    );
    assert_eq!(lines[4], r"@ 60 IN TXT \# 0");
    assert_eq!(lines[5], r#"@ 60 IN TXT "" "\000""#);
    assert_eq!(lines[6], r"@ 60 IN DS \# 4 EC450501");
}

#[test]
fn records_the_parser_refuses_are_written_so_that_loading_fails() {
    let origin = name("example.test.");
    let unsupported = Record::from_rdata(
        name("x.example.test."),
        60,
        RData::Unknown {
            code: RecordType::Unknown(65280),
            rdata: NULL::with(vec![1, 2, 3]),
        },
    );
    let mut chaos = Record::from_rdata(name("y.example.test."), 60, a("192.0.2.1"));
    chaos.dns_class = DNSClass::CH;
    let long_ttl = Record::from_rdata(name("z.example.test."), 0x8000_0000, a("192.0.2.1"));
    let written = write_zone(&origin, &[unsupported, chaos, long_ttl]);
    assert_eq!(
        written,
        "$ORIGIN example.test.\nx 60 IN TYPE65280 \\# 3 010203\ny 60 CLASS3 A 192.0.2.1\n\
         z 2147483648 IN A 192.0.2.1\n"
    );
    let parsed = parser::parse(&written, Path::new(FILE), &origin);
    assert_eq!(
        render(&parsed.errors),
        vec![
            format!("{FILE}:2: record type TYPE65280 is not supported in zone files"),
            format!("{FILE}:3: class CLASS3 is not supported (only IN)"),
            format!("{FILE}:4: TTL \"2147483648\" is larger than 2147483647 seconds"),
        ]
    );
}

/// A label of any bytes, often the ones a zone file must escape.
fn label_strategy() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => prop::sample::select(b".\\\" ()@$;*\x00\x7f\xff\n\tAZaz-_09".to_vec()),
        1 => any::<u8>(),
    ];
    prop_oneof![
        4 => prop::collection::vec(byte.clone(), 1..=8),
        1 => prop::collection::vec(byte, 60..=63),
    ]
}

/// Absolute names inside and outside `example.test.`, in varied case.
fn name_strategy() -> impl Strategy<Value = Name> {
    let suffixes = vec![
        "example.test.",
        "sub.example.test.",
        "EXAMPLE.Test.",
        "other.",
        ".",
    ];
    (
        prop::collection::vec(label_strategy(), 0..=3),
        prop::sample::select(suffixes),
    )
        .prop_map(|(labels, suffix)| {
            let mut relative = Name::new();
            for label in &labels {
                relative = relative
                    .append_label(label.as_slice())
                    .unwrap_or_else(|error| panic!("{error}"));
            }
            relative
                .append_domain(&name(suffix))
                .unwrap_or_else(|error| panic!("{error}"))
        })
}

/// Data decoded from the wire, as a zone transfer gives it.
fn decoded(record_type: RecordType, wire: &[u8]) -> Option<RData> {
    let length = Restrict::new(u16::try_from(wire.len()).ok()?);
    RData::read(&mut BinDecoder::new(wire), record_type, length).ok()
}

fn character_string(bytes: &[u8]) -> Vec<u8> {
    let mut wire = vec![u8::try_from(bytes.len()).unwrap_or(u8::MAX)];
    wire.extend_from_slice(&bytes[..bytes.len().min(255)]);
    wire
}

fn name_bytes(name: &Name) -> Vec<u8> {
    data_wire(&RData::NS(NS(name.clone())))
}

fn rdata_strategy() -> impl Strategy<Value = RData> {
    let bytes = |range: std::ops::Range<usize>| prop::collection::vec(any::<u8>(), range);
    let names = prop_oneof![
        name_strategy().prop_map(|target| RData::NS(NS(target))),
        name_strategy().prop_map(|target| RData::CNAME(CNAME(target))),
        name_strategy().prop_map(|target| RData::PTR(PTR(target))),
        name_strategy().prop_map(|target| RData::ANAME(ANAME(target))),
        name_strategy().prop_map(|target| RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(name_bytes(&target)),
        }),
        (any::<u16>(), name_strategy())
            .prop_map(|(preference, exchange)| RData::MX(MX::new(preference, exchange))),
        (any::<u16>(), any::<u16>(), any::<u16>(), name_strategy()).prop_map(
            |(priority, weight, port, target)| RData::SRV(SRV::new(priority, weight, port, target))
        ),
        (
            name_strategy(),
            name_strategy(),
            any::<u32>(),
            any::<[i32; 3]>(),
            any::<u32>()
        )
            .prop_map(
                |(mname, rname, serial, [refresh, retry, expire], minimum)| {
                    RData::SOA(SOA::new(
                        mname, rname, serial, refresh, retry, expire, minimum,
                    ))
                }
            ),
    ];
    let text = prop_oneof![
        any::<[u8; 4]>().prop_map(|octets| RData::A(A::from(std::net::Ipv4Addr::from(octets)))),
        any::<[u8; 16]>()
            .prop_map(|octets| RData::AAAA(AAAA::from(std::net::Ipv6Addr::from(octets)))),
        prop::collection::vec(prop_oneof![bytes(0..20), bytes(250..256)], 0..4).prop_map(
            |strings| RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        ),
        bytes(4..40).prop_map(|wire| RData::Unknown {
            code: RecordType::DS,
            rdata: NULL::with(wire),
        }),
        (
            any::<u8>(),
            prop::sample::select(vec!["issue", "issuewild", "iodef", "tbs", "Issue"]),
            prop_oneof![
                prop::sample::select(vec!["ca.example.net", "ca.net; account=1", ""])
                    .prop_map(|value| value.as_bytes().to_vec()),
                bytes(0..30),
            ]
        )
            .prop_filter_map("hickory refuses this CAA", |(flags, tag, value)| {
                let mut wire = vec![flags, u8::try_from(tag.len()).unwrap_or(0)];
                wire.extend_from_slice(tag.as_bytes());
                wire.extend_from_slice(&value);
                decoded(RecordType::CAA, &wire)
            }),
        (any::<[u8; 3]>(), bytes(0..40)).prop_filter_map(
            "hickory refuses this TLSA",
            |(fields, data)| decoded(RecordType::TLSA, &[&fields[..], &data].concat())
        ),
        (any::<[u8; 2]>(), bytes(0..40)).prop_filter_map(
            "hickory refuses this SSHFP",
            |(fields, data)| decoded(RecordType::SSHFP, &[&fields[..], &data].concat())
        ),
    ];
    let other = prop_oneof![
        (any::<u16>(), name_strategy(), bytes(0..3)).prop_filter_map(
            "hickory refuses this HTTPS",
            |(priority, target, alpn)| {
                let mut wire = priority.to_be_bytes().to_vec();
                wire.extend(name_bytes(&target));
                if priority != 0 && !alpn.is_empty() {
                    // alpn: one protocol id made of the bytes.
                    let length = u16::try_from(alpn.len() + 1).unwrap_or(0);
                    wire.extend([0, 1]);
                    wire.extend(length.to_be_bytes());
                    wire.extend(character_string(&alpn));
                }
                decoded(RecordType::HTTPS, &wire)
            }
        ),
        (
            any::<[u8; 4]>(),
            [bytes(0..8), bytes(0..8), bytes(0..12)],
            name_strategy()
        )
            .prop_filter_map(
                "hickory refuses this NAPTR",
                |(order, [flags, services, regexp], replacement)| {
                    let mut wire = order.to_vec();
                    for string in [&flags, &services, &regexp] {
                        wire.extend(character_string(string));
                    }
                    wire.extend(name_bytes(&replacement));
                    decoded(RecordType::NAPTR, &wire)
                }
            ),
        (bytes(0..10), bytes(0..10)).prop_filter_map("hickory refuses this HINFO", |(cpu, os)| {
            decoded(
                RecordType::HINFO,
                &[character_string(&cpu), character_string(&os)].concat(),
            )
        }),
    ];
    prop_oneof![3 => names, 3 => text, 1 => other]
}

fn record_strategy() -> impl Strategy<Value = Record> {
    (name_strategy(), 0..=0x7fff_ffffu32, rdata_strategy())
        .prop_map(|(owner, ttl, data)| Record::from_rdata(owner, ttl, data))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Whatever the names and data, the written file reads back exactly.
    #[test]
    fn written_records_read_back_exactly(
        origin in prop::sample::select(vec!["example.test.", "EXAMPLE.test.", "."]),
        records in prop::collection::vec(record_strategy(), 1..20),
    ) {
        assert_round_trip(&name(origin), &records);
    }
}
