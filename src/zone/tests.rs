//! Tests of zone loading: directives, syntax, rdata and every validation
//! error with its exact `file:line` message.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, NULL, PTR, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use proptest::prelude::*;

use super::{Zone, ZoneError, load_dir, parse_zone};

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
