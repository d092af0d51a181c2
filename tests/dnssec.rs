//! DNSSEC online signing (`[dnssec]`), end to end: keys are made by BIND's
//! `dnssec-keygen` exactly as an operator makes them, the real server runs
//! on loopback, and its answers are checked twice: by `delv`, BIND's
//! validator, trusting only the zone's key-signing key (so a signature,
//! a denial proof or a key tag that is wrong makes it fail), and by
//! `dig +dnssec`, for the shape of each response (which records carry
//! signatures, which NSEC records prove what, and that nothing DNSSEC is
//! added for a query without the DO bit).
//!
//! Also here: the errors `steer check` reports for keys and zones Steer
//! cannot sign, a zone without a key served unsigned beside a signed one,
//! a key added while the server runs taking effect on reload, and a zone
//! transferred from a primary (NSD) signed as it is served.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::tools::{dnskey_of, run_bounded};
use common::{Family, TestServer, Transport};

/// The signed zone: an apex with MX, addresses, a CNAME to an in-zone
/// name, a wildcard, an empty non-terminal (`b.c` and `c`, above
/// `a.b.c`), a delegation without DS (`sub`, insecure) and one with DS
/// (`secure`), each with glue.
const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@          SOA   ns1 hostmaster 1 3600 600 86400 300
@          NS    ns1
@          MX    10 mail
ns1        A     192.0.2.1
mail       A     192.0.2.25
www        A     192.0.2.10
www        AAAA  2001:db8::10
alias      CNAME www
*.wild     TXT   \"wildcard\"
a.b.c      A     192.0.2.30
sub        NS    ns.sub
ns.sub     A     192.0.2.53
secure     NS    ns.secure
ns.secure  A     192.0.2.54
secure     DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
";

/// A zone served beside [`ZONE`] that has no key.
const OTHER_ZONE: &str = "\
$ORIGIN other.test.
$TTL 300
@    SOA   ns1 hostmaster 1 3600 600 86400 300
@    NS    ns1
ns1  A     192.0.2.1
www  A     192.0.2.80
";

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// `steer.toml`: loopback on ephemeral ports, the admin API for reloads,
/// and `[dnssec]` with the `keys` directory and `dnssec_lines`.
fn config(dnssec_lines: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\nworkers = 1\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [dnssec]\nkeys = \"keys\"\n{dnssec_lines}"
    )
}

/// A fresh directory with `steer.toml` (`config`), `zones/ORIGIN.zone` for
/// each (origin, text) of `zones`, and an empty `keys` directory.
fn prepare(config: &str, zones: &[(&str, &str)]) -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path();
    std::fs::create_dir(path.join("zones")).expect("zones directory");
    std::fs::create_dir(path.join("keys")).expect("keys directory");
    for (origin, text) in zones {
        std::fs::write(path.join(format!("zones/{origin}.zone")), text).expect("zone file");
    }
    std::fs::write(path.join("steer.toml"), config).expect("config");
    directory
}

/// Whether a key signs the DNSKEY RRset (flags 257) or the rest (256).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    KeySigning,
    ZoneSigning,
}

/// A key pair `dnssec-keygen` made.
struct Key {
    /// The name both files share, e.g. `Kexample.test.+013+12345`.
    name: String,
    /// The key tag, as the file name has it.
    tag: u16,
    /// 257 or 256.
    flags: u16,
    /// The DNSSEC algorithm number.
    algorithm: u8,
    /// The public key in base64, without the spaces the file may have.
    public_key: String,
}

/// Makes a key pair for `zone` in `directory/keys` with `dnssec-keygen`,
/// as an operator would; `extra` adds options (e.g. an RSA key size).
fn keygen(directory: &Path, zone: &str, algorithm: &str, role: Role, extra: &[&str]) -> Key {
    let keys = directory.join("keys");
    let keys = keys.to_str().expect("UTF-8 path");
    let mut arguments = vec!["-K", keys, "-a", algorithm];
    if role == Role::KeySigning {
        arguments.extend(["-f", "KSK"]);
    }
    arguments.extend(extra);
    arguments.push(zone);
    let output = run_bounded("dnssec-keygen", &arguments, None);
    assert!(output.success, "dnssec-keygen failed: {}", output.stderr);
    let name = output
        .stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with('K'))
        .unwrap_or_else(|| panic!("no key name from dnssec-keygen: {}", output.stdout))
        .to_owned();
    // The name is `K<zone>.+<algorithm>+<tag>`.
    let tag = name
        .rsplit('+')
        .next()
        .and_then(|tag| tag.parse().ok())
        .unwrap_or_else(|| panic!("no key tag in {name}"));
    let (flags, algorithm, public_key) = dnskey_of(&directory.join(format!("keys/{name}.key")));
    Key {
        tag,
        flags,
        algorithm,
        public_key,
        name,
    }
}

/// A KSK (ECDSA P-256) for `example.test`, made as an operator makes it.
fn key_signing_key(directory: &Path) -> Key {
    keygen(
        directory,
        "example.test",
        "ECDSAP256SHA256",
        Role::KeySigning,
        &[],
    )
}

/// Runs `steer check` on the prepared `directory` and asserts it passes;
/// its standard output.
fn check_passes(directory: &Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(["check", "--config"])
        .arg(directory.join("steer.toml"))
        .output()
        .expect("steer check");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A KSK and a ZSK of `algorithm` for `example.test`, made as an operator
/// makes them.
fn key_pair(directory: &Path, algorithm: &str) -> (Key, Key) {
    let key_signing = keygen(directory, "example.test", algorithm, Role::KeySigning, &[]);
    let zone_signing = keygen(directory, "example.test", algorithm, Role::ZoneSigning, &[]);
    (key_signing, zone_signing)
}

/// Writes `directory/anchor.conf`, trusting `key` for `example.test`
/// alone, as `delv -a` reads it; its path.
fn write_anchor(directory: &Path, key: &Key) -> PathBuf {
    let path = directory.join("anchor.conf");
    std::fs::write(
        &path,
        format!(
            "trust-anchors {{ example.test. static-key {} 3 {} \"{}\"; }};\n",
            key.flags, key.algorithm, key.public_key
        ),
    )
    .expect("anchor file");
    path
}

/// The UDP (and TCP: the same) port the server answers DNS on.
fn port_of(server: &TestServer) -> u16 {
    server.dns_addr(Transport::Udp, Family::V4).port()
}

/// One resource record as dig or delv prints it, TTL and class left out.
#[derive(Clone, Debug)]
struct Record {
    /// Lowercase, absolute.
    owner: String,
    /// E.g. `RRSIG`.
    record_type: String,
    /// The RDATA's fields, split on white space.
    data: Vec<String>,
}

impl Record {
    /// Reads `owner TTL CLASS TYPE RDATA` (a trailing `;` comment
    /// dropped), or None for a line that is not a record.
    fn parse(line: &str) -> Option<Record> {
        if line.starts_with(';') {
            return None;
        }
        let fields: Vec<&str> = without_comment(line).split_whitespace().collect();
        if fields.len() < 4 {
            return None;
        }
        Some(Record {
            owner: fields[0].to_ascii_lowercase(),
            record_type: fields[3].to_owned(),
            data: fields[4..]
                .iter()
                .map(|field| (*field).to_owned())
                .collect(),
        })
    }

    /// `owner TYPE RDATA`, one space between fields.
    fn line(&self) -> String {
        format!(
            "{} {} {}",
            self.owner,
            self.record_type,
            self.data.join(" ")
        )
    }

    /// For an RRSIG, its field at `index`: 0 type covered, 1 algorithm,
    /// 2 labels, 3 original TTL, 4 expiration, 5 inception, 6 key tag,
    /// 7 signer.
    fn signature_field(&self, index: usize) -> &str {
        assert_eq!(self.record_type, "RRSIG", "{}", self.line());
        self.data
            .get(index)
            .unwrap_or_else(|| panic!("short RRSIG: {}", self.line()))
    }

    fn key_tag(&self) -> u16 {
        self.signature_field(6).parse().expect("RRSIG key tag")
    }
}

/// `line` up to a `;` comment outside quotes (dig and delv comment on
/// DNSKEYs: `; KSK; alg = ...`).
fn without_comment(line: &str) -> &str {
    let mut quoted = false;
    for (index, character) in line.char_indices() {
        match character {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..index],
            _ => {}
        }
    }
    line
}

/// A response as `dig` printed it.
struct Dig {
    /// dig's whole output, for failure messages.
    text: String,
    /// E.g. `NOERROR`, `NXDOMAIN`.
    status: String,
    /// The header flags: `qr`, `aa`, `ad`, ...
    flags: Vec<String>,
    answer: Vec<Record>,
    authority: Vec<Record>,
    additional: Vec<Record>,
}

impl Dig {
    fn parse(text: String) -> Dig {
        let status = text
            .lines()
            .find_map(|line| line.split("status: ").nth(1))
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no response from the server:\n{text}"))
            .to_owned();
        let flags = text
            .lines()
            .find_map(|line| line.strip_prefix(";; flags:"))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no header flags in\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let (mut answer, mut authority, mut additional) = (Vec::new(), Vec::new(), Vec::new());
        let mut section: Option<&mut Vec<Record>> = None;
        for line in text.lines() {
            if line.starts_with(";; ANSWER SECTION:") {
                section = Some(&mut answer);
            } else if line.starts_with(";; AUTHORITY SECTION:") {
                section = Some(&mut authority);
            } else if line.starts_with(";; ADDITIONAL SECTION:") {
                section = Some(&mut additional);
            } else if line.trim().is_empty() || line.starts_with(";;") {
                section = None;
            } else if let Some(records) = section.as_mut() {
                records.extend(Record::parse(line));
            }
        }
        Dig {
            text,
            status,
            flags,
            answer,
            authority,
            additional,
        }
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|present| present == flag)
    }

    /// Every record of the three sections.
    fn all(&self) -> impl Iterator<Item = &Record> {
        self.answer
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
    }
}

/// The records of `records` of `record_type`.
fn of_type<'a>(records: &'a [Record], record_type: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|record| record.record_type == record_type)
        .collect()
}

/// The RRSIGs of `records` that cover `covered`.
fn signatures<'a>(records: &'a [Record], covered: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|record| {
            record.record_type == "RRSIG"
                && record.data.first().map(String::as_str) == Some(covered)
        })
        .collect()
}

/// The sorted owners of `records`.
fn owners(records: &[&Record]) -> Vec<String> {
    let mut owners: Vec<String> = records.iter().map(|record| record.owner.clone()).collect();
    owners.sort();
    owners
}

/// `dig` without recursion to the server on `port`, over UDP with EDNS;
/// `arguments` add e.g. `+dnssec` and give the question.
async fn dig(port: u16, arguments: &[&str]) -> Dig {
    let mut command: Vec<String> = vec![
        "@127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "+time=2".to_owned(),
        "+tries=2".to_owned(),
        "+norec".to_owned(),
    ];
    command.extend(arguments.iter().map(ToString::to_string));
    let output = tokio::task::spawn_blocking(move || {
        let arguments: Vec<&str> = command.iter().map(String::as_str).collect();
        run_bounded("dig", &arguments, None)
    })
    .await
    .expect("dig thread");
    Dig::parse(output.stdout)
}

/// `delv` asking the server on `port` for `name` and `record_type`,
/// validating from the trust anchor in `anchor` at `example.test`: what
/// it printed, stdout (the verdict and the records) then stderr (why a
/// validation failed).
async fn delv(port: u16, anchor: &Path, name: &str, record_type: &str) -> String {
    delv_from(port, anchor, None, name, record_type).await
}

/// [`delv`], asking from the address `source` when given (`delv -b`).
async fn delv_from(
    port: u16,
    anchor: &Path,
    source: Option<&str>,
    name: &str,
    record_type: &str,
) -> String {
    let mut command: Vec<String> = source
        .map(|source| vec!["-b".to_owned(), source.to_owned()])
        .unwrap_or_default();
    command.extend([
        "@127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-a".to_owned(),
        anchor.to_str().expect("UTF-8 path").to_owned(),
        "+root=example.test".to_owned(),
        name.to_owned(),
        record_type.to_owned(),
    ]);
    let output = tokio::task::spawn_blocking(move || {
        let arguments: Vec<&str> = command.iter().map(String::as_str).collect();
        run_bounded("delv", &arguments, None)
    })
    .await
    .expect("delv thread");
    format!("{}{}", output.stdout, output.stderr)
}

/// Asserts that delv fully validated the answer and that it holds each of
/// `expected` (`owner TYPE RDATA`, RDATA possibly cut short), each with an
/// RRSIG of its owner and type.
fn assert_validated(output: &str, expected: &[&str]) {
    assert!(
        output.contains("; fully validated") && !output.contains("resolution failed"),
        "not validated:\n{output}"
    );
    let records: Vec<Record> = output.lines().filter_map(Record::parse).collect();
    for wanted in expected {
        let record = records
            .iter()
            .find(|record| record.line().starts_with(wanted))
            .unwrap_or_else(|| panic!("no {wanted:?} in\n{output}"));
        assert!(
            records
                .iter()
                .any(|signature| signature.owner == record.owner
                    && signature.record_type == "RRSIG"
                    && signature.data.first() == Some(&record.record_type)),
            "no RRSIG over {wanted:?} in\n{output}"
        );
    }
}

/// Asserts that delv validated a negative answer: `NXDOMAIN` or, for no
/// data at the name, `NXRRSET`.
fn assert_denied(output: &str, kind: &str) {
    assert!(
        output.contains("; negative response, fully validated"),
        "the denial is not validated:\n{output}"
    );
    assert!(
        output.contains(&format!(";-${kind}")),
        "not {kind}:\n{output}"
    );
}

/// Seconds since the epoch of an RRSIG time as dig prints it
/// (`YYYYMMDDHHMMSS`, UTC).
fn signature_time(stamp: &str) -> i64 {
    assert_eq!(stamp.len(), 14, "RRSIG time {stamp:?}");
    let field = |range: std::ops::Range<usize>| -> i64 {
        stamp[range]
            .parse()
            .unwrap_or_else(|_| panic!("RRSIG time {stamp:?}"))
    };
    let (year, month, day) = (field(0..4), field(4..6), field(6..8));
    // Days from 1970-01-01 to the date (the proleptic Gregorian calendar,
    // years counted from March so that leap days come last).
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * DAY + field(8..10) * HOUR + field(10..12) * 60 + field(12..14)
}

fn now() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(elapsed.as_secs()).expect("a sane clock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_validates_every_kind_of_answer_from_a_zone_with_one_combined_key() {
    validate_every_kind_of_answer("", "ECDSAP256SHA256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_validates_every_kind_of_answer_signed_with_rsasha512() {
    validate_every_kind_of_answer("", "RSASHA512").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_validates_every_kind_of_answer_with_nsec3() {
    validate_every_kind_of_answer("nsec3 = true\n", "ECDSAP256SHA256").await;
    // NSEC3PARAM says how (RFC 9276: SHA-1, no flags, no extra
    // iterations, no salt), and no NSEC is left.
    let directory = prepare(&config("nsec3 = true\n"), &[("example.test", ZONE)]);
    let path = directory.path().to_path_buf();
    key_signing_key(&path);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);
    let parameters = dig(port, &["+dnssec", "example.test", "NSEC3PARAM"]).await;
    let records = of_type(&parameters.answer, "NSEC3PARAM");
    assert_eq!(records.len(), 1, "{}", parameters.text);
    assert_eq!(records[0].data, ["1", "0", "0", "-"], "{}", parameters.text);
    let denied = dig(port, &["+dnssec", "nope.example.test", "A"]).await;
    assert!(
        of_type(&denied.authority, "NSEC").is_empty(),
        "{}",
        denied.text
    );
    // Closest encloser, next closer name, wildcard: three NSEC3s at most.
    let proofs = of_type(&denied.authority, "NSEC3");
    assert!((1..=3).contains(&proofs.len()), "{}", denied.text);
    // An NSEC3 owner name is not a name of the zone (RFC 5155 §7.2.8).
    let hashed = dig(port, &["+dnssec", &proofs[0].owner, "A"]).await;
    assert_eq!(hashed.status, "NXDOMAIN", "{}", hashed.text);
    server.shutdown().await;
}

/// delv validates answers of every kind from `example.test` signed by one
/// KSK of `algorithm`, with `dnssec_lines` added to `[dnssec]`.
async fn validate_every_kind_of_answer(dnssec_lines: &str, algorithm: &str) {
    let directory = prepare(&config(dnssec_lines), &[("example.test", ZONE)]);
    // One key-signing key and nothing else: it signs every RRset.
    let key = keygen(
        directory.path(),
        "example.test",
        algorithm,
        Role::KeySigning,
        &[],
    );
    let dnskey = format!("example.test. DNSKEY 257 3 {} ", key.algorithm);
    let anchor = write_anchor(directory.path(), &key);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    let positive: [(&str, &str, &[&str]); 8] = [
        ("www.example.test", "A", &["www.example.test. A 192.0.2.10"]),
        (
            "www.example.test",
            "AAAA",
            &["www.example.test. AAAA 2001:db8::10"],
        ),
        (
            "example.test",
            "MX",
            &["example.test. MX 10 mail.example.test."],
        ),
        (
            "example.test",
            "SOA",
            &["example.test. SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300"],
        ),
        ("example.test", "DNSKEY", &[dnskey.as_str()]),
        // The CNAME and its in-zone target, each signed.
        (
            "alias.example.test",
            "A",
            &[
                "alias.example.test. CNAME www.example.test.",
                "www.example.test. A 192.0.2.10",
            ],
        ),
        // Synthesized from *.wild: the signature is the wildcard's, and
        // the NSEC that no closer name exists must come with it.
        (
            "foo.wild.example.test",
            "TXT",
            &["foo.wild.example.test. TXT \"wildcard\""],
        ),
        // The parent signs the DS at a cut.
        (
            "secure.example.test",
            "DS",
            &["secure.example.test. DS 12345 13 2 "],
        ),
    ];
    for (name, record_type, expected) in positive {
        let output = delv(port, &anchor, name, record_type).await;
        assert_validated(&output, expected);
        if record_type == "DNSKEY" {
            // delv splits the key's base64 with spaces.
            let squeezed: String = output.split_whitespace().collect();
            assert!(squeezed.contains(&key.public_key), "{output}");
        }
    }

    let negative = [
        ("nope.example.test", "A", "NXDOMAIN"),
        ("www.example.test", "TXT", "NXRRSET"),
        // An empty non-terminal: a name with nothing but names below it.
        ("b.c.example.test", "A", "NXRRSET"),
        // The wildcard matches, but has no A.
        ("bar.wild.example.test", "A", "NXRRSET"),
        // No DS at an insecure delegation: the cut's NSEC proves it.
        ("sub.example.test", "DS", "NXRRSET"),
    ];
    for (name, record_type, kind) in negative {
        let output = delv(port, &anchor, name, record_type).await;
        assert_denied(&output, kind);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_key_signing_key_signs_only_the_keys_and_the_zone_signing_key_the_rest() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let (key_signing, zone_signing) = key_pair(directory.path(), "ED25519");
    let anchor = write_anchor(directory.path(), &key_signing);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    assert_answer_and_denial_validate(port, &anchor).await;

    let keys = dig(port, &["+dnssec", "example.test", "DNSKEY"]).await;
    let mut flags: Vec<&str> = of_type(&keys.answer, "DNSKEY")
        .iter()
        .map(|record| record.data[0].as_str())
        .collect();
    flags.sort_unstable();
    assert_eq!(flags, ["256", "257"], "{}", keys.text);
    let key_signatures = signatures(&keys.answer, "DNSKEY");
    assert!(!key_signatures.is_empty(), "{}", keys.text);
    for signature in &key_signatures {
        assert_eq!(signature.key_tag(), key_signing.tag, "{}", keys.text);
        assert_eq!(signature.signature_field(1), "15", "{}", keys.text);
    }

    let address = dig(port, &["+dnssec", "www.example.test", "A"]).await;
    let address_signatures = signatures(&address.answer, "A");
    assert_eq!(address_signatures.len(), 1, "{}", address.text);
    assert_eq!(
        address_signatures[0].key_tag(),
        zone_signing.tag,
        "{}",
        address.text
    );
    assert_eq!(address_signatures[0].signature_field(1), "15");

    // The denial's SOA and NSEC records are zone data too.
    let missing = dig(port, &["+dnssec", "nope.example.test", "A"]).await;
    let denial_signatures: Vec<&Record> = missing
        .authority
        .iter()
        .filter(|record| record.record_type == "RRSIG")
        .collect();
    assert!(!denial_signatures.is_empty(), "{}", missing.text);
    for signature in denial_signatures {
        assert_eq!(signature.key_tag(), zone_signing.tag, "{}", missing.text);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_its_private_half_is_published_but_never_signs() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path();
    let key_signing = key_signing_key(path);
    let zone_signing = keygen(
        path,
        "example.test",
        "ECDSAP256SHA256",
        Role::ZoneSigning,
        &[],
    );
    // The next zone-signing key of a rollover: published ahead, its
    // private half kept elsewhere.
    let standby = keygen(
        path,
        "example.test",
        "ECDSAP256SHA256",
        Role::ZoneSigning,
        &[],
    );
    std::fs::remove_file(path.join(format!("keys/{}.private", standby.name)))
        .expect("removing the private half");
    let anchor = write_anchor(path, &key_signing);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    let keys = dig(port, &["+dnssec", "example.test", "DNSKEY"]).await;
    let published: Vec<String> = of_type(&keys.answer, "DNSKEY")
        .iter()
        .map(|record| record.data[3..].concat())
        .collect();
    assert_eq!(published.len(), 3, "{}", keys.text);
    assert!(published.contains(&standby.public_key), "{}", keys.text);

    let address = dig(port, &["+dnssec", "www.example.test", "A"]).await;
    let tags: Vec<u16> = keys
        .all()
        .chain(address.all())
        .filter(|record| record.record_type == "RRSIG")
        .map(Record::key_tag)
        .collect();
    assert!(!tags.is_empty(), "{}\n{}", keys.text, address.text);
    assert!(
        !tags.contains(&standby.tag),
        "signed with a key that has no private half:\n{}\n{}",
        keys.text,
        address.text
    );
    assert_eq!(
        signatures(&address.answer, "A")
            .iter()
            .map(|signature| signature.key_tag())
            .collect::<Vec<_>>(),
        [zone_signing.tag],
        "{}",
        address.text
    );
    assert_validated(
        &delv(port, &anchor, "www.example.test", "A").await,
        &["www.example.test. A 192.0.2.10"],
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_and_denials_come_only_with_the_do_bit_and_in_their_place() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let key = key_signing_key(directory.path());
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    // Without DO: the data alone, DNSKEY included, nothing to validate it.
    let plain = dig(port, &["www.example.test", "A"]).await;
    assert_eq!(plain.status, "NOERROR", "{}", plain.text);
    assert_eq!(of_type(&plain.answer, "A").len(), 1, "{}", plain.text);
    assert!(
        plain.all().all(|record| record.record_type != "RRSIG"),
        "{}",
        plain.text
    );
    let missing = dig(port, &["nope.example.test", "A"]).await;
    assert_eq!(missing.status, "NXDOMAIN", "{}", missing.text);
    assert_eq!(
        of_type(&missing.authority, "SOA").len(),
        1,
        "{}",
        missing.text
    );
    assert!(
        missing
            .all()
            .all(|record| record.record_type != "NSEC" && record.record_type != "RRSIG"),
        "{}",
        missing.text
    );
    let keys = dig(port, &["example.test", "DNSKEY"]).await;
    assert_eq!(of_type(&keys.answer, "DNSKEY").len(), 1, "{}", keys.text);
    assert!(
        keys.all().all(|record| record.record_type != "RRSIG"),
        "{}",
        keys.text
    );

    // With DO: signed, authoritative, and never AD (Steer validates
    // nothing; dig asks with AD set).
    let signed = dig(port, &["+dnssec", "www.example.test", "A"]).await;
    assert!(signed.has_flag("aa"), "{}", signed.text);
    assert!(!signed.has_flag("ad"), "{}", signed.text);
    let address_signatures = signatures(&signed.answer, "A");
    assert_eq!(address_signatures.len(), 1, "{}", signed.text);
    let signature = address_signatures[0];
    assert_eq!(signature.owner, "www.example.test.");
    assert_eq!(signature.signature_field(1), "13");
    assert_eq!(signature.signature_field(2), "3", "labels: {}", signed.text);
    assert_eq!(signature.signature_field(3), "300", "original TTL");
    assert_eq!(signature.key_tag(), key.tag);
    assert_eq!(signature.signature_field(7), "example.test.");

    // NXDOMAIN: the SOA, the NSEC covering the name (mail -> ns1) and the
    // one covering the wildcard at the closest encloser, *.example.test
    // (the apex's), each signed.
    let missing = dig(port, &["+dnssec", "nope.example.test", "A"]).await;
    assert_eq!(missing.status, "NXDOMAIN", "{}", missing.text);
    assert!(missing.has_flag("aa"), "{}", missing.text);
    assert!(missing.answer.is_empty(), "{}", missing.text);
    assert_eq!(
        of_type(&missing.authority, "SOA").len(),
        1,
        "{}",
        missing.text
    );
    assert_eq!(
        signatures(&missing.authority, "SOA").len(),
        1,
        "{}",
        missing.text
    );
    assert_eq!(
        owners(&of_type(&missing.authority, "NSEC")),
        ["example.test.", "mail.example.test."],
        "{}",
        missing.text
    );
    assert_eq!(
        owners(&signatures(&missing.authority, "NSEC")),
        ["example.test.", "mail.example.test."],
        "{}",
        missing.text
    );

    // NODATA: the SOA and the name's own NSEC, whose type map lacks TXT.
    let no_text = dig(port, &["+dnssec", "www.example.test", "TXT"]).await;
    assert_eq!(no_text.status, "NOERROR", "{}", no_text.text);
    assert!(no_text.answer.is_empty(), "{}", no_text.text);
    assert_eq!(
        signatures(&no_text.authority, "SOA").len(),
        1,
        "{}",
        no_text.text
    );
    let denials = of_type(&no_text.authority, "NSEC");
    assert_eq!(owners(&denials), ["www.example.test."], "{}", no_text.text);
    let type_map = &denials[0].data[1..];
    for present in ["A", "AAAA", "RRSIG", "NSEC"] {
        assert!(
            type_map.iter().any(|listed| listed == present),
            "{}",
            no_text.text
        );
    }
    assert!(
        type_map.iter().all(|listed| listed != "TXT"),
        "{}",
        no_text.text
    );
    assert_eq!(
        signatures(&no_text.authority, "NSEC").len(),
        1,
        "{}",
        no_text.text
    );

    // A wildcard answer: signed with the wildcard's label count less its
    // `*` (wild.example.test, 3), and the NSEC that foo.wild does not
    // exist (the one at *.wild covers it).
    let wildcard = dig(port, &["+dnssec", "foo.wild.example.test", "TXT"]).await;
    let wildcard_signatures = signatures(&wildcard.answer, "TXT");
    assert_eq!(wildcard_signatures.len(), 1, "{}", wildcard.text);
    assert_eq!(wildcard_signatures[0].owner, "foo.wild.example.test.");
    assert_eq!(
        wildcard_signatures[0].signature_field(2),
        "3",
        "{}",
        wildcard.text
    );
    assert_eq!(
        owners(&of_type(&wildcard.authority, "NSEC")),
        ["*.wild.example.test."],
        "{}",
        wildcard.text
    );
    assert_eq!(
        signatures(&wildcard.authority, "NSEC").len(),
        1,
        "{}",
        wildcard.text
    );

    // A referral to an unsigned child: not authoritative, the NS and the
    // cut's signed NSEC (no DS in its type map), the glue unsigned.
    let insecure = dig(port, &["+dnssec", "host.sub.example.test", "A"]).await;
    assert_eq!(insecure.status, "NOERROR", "{}", insecure.text);
    assert!(!insecure.has_flag("aa"), "{}", insecure.text);
    assert!(insecure.answer.is_empty(), "{}", insecure.text);
    assert_eq!(
        owners(&of_type(&insecure.authority, "NS")),
        ["sub.example.test."],
        "{}",
        insecure.text
    );
    let cut = of_type(&insecure.authority, "NSEC");
    assert_eq!(owners(&cut), ["sub.example.test."], "{}", insecure.text);
    assert!(
        cut[0].data[1..].iter().any(|listed| listed == "NS"),
        "{}",
        insecure.text
    );
    assert!(
        cut[0].data[1..].iter().all(|listed| listed != "DS"),
        "{}",
        insecure.text
    );
    assert_eq!(
        signatures(&insecure.authority, "NSEC").len(),
        1,
        "{}",
        insecure.text
    );
    assert!(
        of_type(&insecure.authority, "DS").is_empty(),
        "{}",
        insecure.text
    );
    // The NS RRset at a cut is the child's: the parent does not sign it.
    assert!(
        signatures(&insecure.authority, "NS").is_empty(),
        "{}",
        insecure.text
    );
    assert_eq!(
        of_type(&insecure.additional, "A")
            .iter()
            .map(|record| record.line())
            .collect::<Vec<_>>(),
        ["ns.sub.example.test. A 192.0.2.53"],
        "{}",
        insecure.text
    );
    assert!(
        of_type(&insecure.additional, "RRSIG").is_empty(),
        "glue is never signed: {}",
        insecure.text
    );

    // A referral to a signed child: the NS, the DS and its signature.
    let secure = dig(port, &["+dnssec", "host.secure.example.test", "A"]).await;
    assert_eq!(secure.status, "NOERROR", "{}", secure.text);
    assert!(!secure.has_flag("aa"), "{}", secure.text);
    assert_eq!(
        owners(&of_type(&secure.authority, "NS")),
        ["secure.example.test."],
        "{}",
        secure.text
    );
    let delegation_signer = of_type(&secure.authority, "DS");
    assert_eq!(delegation_signer.len(), 1, "{}", secure.text);
    assert_eq!(delegation_signer[0].data[..3], ["12345", "13", "2"]);
    assert_eq!(
        signatures(&secure.authority, "DS").len(),
        1,
        "{}",
        secure.text
    );
    assert!(
        of_type(&secure.authority, "NSEC").is_empty(),
        "{}",
        secure.text
    );
    assert!(
        signatures(&secure.authority, "NS").is_empty(),
        "{}",
        secure.text
    );
    assert!(
        of_type(&secure.additional, "RRSIG").is_empty(),
        "glue is never signed: {}",
        secure.text
    );
    server.shutdown().await;
}

/// Asserts the signature times of `www.example.test A` and of the DNSKEY
/// RRset from the server on `port`: made an hour back (for resolvers whose
/// clocks are behind), and lasting `validity` from now.
async fn assert_signature_times(port: u16, validity: i64) {
    for (name, record_type) in [("www.example.test", "A"), ("example.test", "DNSKEY")] {
        let response = dig(port, &["+dnssec", name, record_type]).await;
        let found = signatures(&response.answer, record_type);
        assert!(!found.is_empty(), "{}", response.text);
        let now = now();
        for signature in found {
            let expiration = signature_time(signature.signature_field(4));
            let inception = signature_time(signature.signature_field(5));
            assert!(
                (inception - (now - HOUR)).abs() <= 10 * 60,
                "inception {} is not an hour before now: {}",
                inception - now,
                response.text
            );
            assert_eq!(expiration - inception, HOUR + validity, "{}", response.text);
            let left = expiration - now;
            assert!(
                (validity - DAY..=validity + DAY).contains(&left),
                "expires in {left} s, not about {validity} s: {}",
                response.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_last_fourteen_days_unless_configured() {
    for (dnssec_lines, validity) in [("", 14 * DAY), ("signature_validity = \"2d\"\n", 2 * DAY)] {
        let directory = prepare(&config(dnssec_lines), &[("example.test", ZONE)]);
        key_signing_key(directory.path());
        let server = TestServer::start_prepared(directory).await;
        assert_signature_times(port_of(&server), validity).await;
        server.shutdown().await;
    }
}

#[test]
fn a_key_of_an_unsupported_algorithm_is_named_with_its_algorithm() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    // RSASHA1: RFC 8624 says not to sign with it.
    let key = keygen(
        directory.path(),
        "example.test",
        "RSASHA1",
        Role::KeySigning,
        &["-b", "2048"],
    );
    let errors = common::check_errors(directory.path());
    assert!(errors.contains(&key.name), "{errors}");
    assert!(errors.contains("algorithm 5 is not supported"), "{errors}");
}

#[test]
fn an_rsa_key_too_small_to_sign_with_is_refused_but_may_stay_published() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path();
    key_signing_key(path);
    let small = keygen(
        path,
        "example.test",
        "RSASHA256",
        Role::ZoneSigning,
        &["-b", "1024"],
    );
    let errors = common::check_errors(path);
    assert!(
        errors.contains(&format!("{}.private", small.name)),
        "{errors}"
    );
    assert!(errors.contains("1024 bits"), "{errors}");
    // Without its private half it only sits in the DNSKEY RRset, as a
    // retired key does until it is deleted.
    std::fs::remove_file(path.join(format!("keys/{}.private", small.name)))
        .expect("removing the private half");
    check_passes(path);
}

#[test]
fn an_rsa_private_key_of_another_key_is_named() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path();
    let first = keygen(path, "example.test", "RSASHA256", Role::KeySigning, &[]);
    let second = keygen(path, "example.test", "RSASHA256", Role::ZoneSigning, &[]);
    check_passes(path);
    // The second key's private half, under the first key's name.
    let keys = path.join("keys");
    std::fs::copy(
        keys.join(format!("{}.private", second.name)),
        keys.join(format!("{}.private", first.name)),
    )
    .expect("copying the private half");
    let errors = common::check_errors(path);
    assert!(
        errors.contains(&format!(
            "{}.private: the private key is not the pair of the public key",
            first.name
        )),
        "{errors}"
    );
    // A component missing is named too.
    let private = keys.join(format!("{}.private", second.name));
    let text = std::fs::read_to_string(&private).expect("private key file");
    let without: String = text
        .lines()
        .filter(|line| !line.starts_with("Prime2:"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&private, without).expect("private key file");
    let errors = common::check_errors(path);
    assert!(
        errors.contains(&format!("{}.private: no Prime2 line", second.name)),
        "{errors}"
    );
}

#[test]
fn a_private_key_that_does_not_decode_is_named() {
    // Not base64, and base64 of the wrong length for a P-256 scalar.
    for garbage in ["!!not a key!!", "bm90IGEga2V5"] {
        let directory = prepare(&config(""), &[("example.test", ZONE)]);
        let key = key_signing_key(directory.path());
        let private = directory.path().join(format!("keys/{}.private", key.name));
        let text = std::fs::read_to_string(&private).expect("private key file");
        let garbled: String = text
            .lines()
            .map(|line| {
                if line.starts_with("PrivateKey:") {
                    format!("PrivateKey: {garbage}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert_ne!(garbled, text, "no PrivateKey line in {text}");
        std::fs::write(&private, garbled).expect("private key file");
        let errors = common::check_errors(directory.path());
        assert!(
            errors.contains(&format!("{}.private", key.name)),
            "{garbage:?}: {errors}"
        );
    }
}

/// Steered names for the signed-zone tests: `steered` answers web-fra to
/// 127.0.0.2 and web-iad to everyone else; `gone` has one pool whose
/// address the test forces down, and answers NODATA then; `cdn` is a
/// steered CNAME.
const STEERED: &str = r#"
[pools.down]
site = "fra"
addresses = ["192.0.2.77"]

[pools.cdn]
site = "fra"
cname = "edge.cdn.example.net."

[[steer]]
name = "steered.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = [{ cidr = { "127.0.0.2/32" = ["web-fra"] } }, "priority"]

[[steer]]
name = "gone.example.test."
type = "A"
pools = ["down"]
policy = ["healthy"]
when_all_down = "nodata"

[[steer]]
name = "cdn.example.test."
type = "CNAME"
pools = ["cdn"]
"#;

/// delv validates an answer (`www.example.test A`) and a denial
/// (`nope.example.test`, NXDOMAIN) of the server on `port`.
async fn assert_answer_and_denial_validate(port: u16, anchor: &Path) {
    assert_validated(
        &delv(port, anchor, "www.example.test", "A").await,
        &["www.example.test. A 192.0.2.10"],
    );
    assert_denied(
        &delv(port, anchor, "nope.example.test", "A").await,
        "NXDOMAIN",
    );
}

/// A fresh directory (see [`prepare`]) serving `example.test` signed,
/// with the steered names of [`STEERED`]; keys are the test's to make.
fn prepare_steered() -> tempfile::TempDir {
    prepare(
        &config(&format!("{}{STEERED}", common::WEB_POOLS)),
        &[("example.test", ZONE)],
    )
}

/// delv validates `steered.example.test A` (of [`STEERED`]) as the server
/// on `port` answers it to each client: web-iad's address to 127.0.0.1,
/// web-fra's to 127.0.0.2.
async fn assert_steered_answers_validate(port: u16, anchor: &Path) {
    assert_validated(
        &delv(port, anchor, "steered.example.test", "A").await,
        &["steered.example.test. A 198.51.100.10"],
    );
    assert_validated(
        &delv_from(port, anchor, Some("127.0.0.2"), "steered.example.test", "A").await,
        &["steered.example.test. A 192.0.2.10"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steered_answers_in_a_signed_zone_validate_for_every_client() {
    let directory = prepare_steered();
    let path = directory.path().to_path_buf();
    let (key_signing, zone_signing) = key_pair(&path, "ECDSAP256SHA256");
    let anchor = write_anchor(&path, &key_signing);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    // Each client's answer is signed, by the ZSK, and validates.
    assert_steered_answers_validate(port, &anchor).await;
    let first = dig(port, &["+dnssec", "steered.example.test", "A"]).await;
    let signed: Vec<&Record> = signatures(&first.answer, "A");
    assert_eq!(signed.len(), 1, "{}", first.text);
    assert_eq!(
        signed[0].data[6],
        zone_signing.tag.to_string(),
        "{}",
        first.text
    );
    // ECDSA signatures differ each time they are made: the same bytes
    // again mean the answer's signature came from the cache.
    let again = dig(port, &["+dnssec", "steered.example.test", "A"]).await;
    assert_eq!(signatures(&again.answer, "A")[0].data, signed[0].data);
    // Without DO, no signature.
    let plain = dig(port, &["steered.example.test", "A"]).await;
    assert!(signatures(&plain.answer, "A").is_empty(), "{}", plain.text);

    // Types the name is not steered for: NODATA, proven.
    assert_denied(
        &delv(port, &anchor, "steered.example.test", "AAAA").await,
        "NXRRSET",
    );
    // A steered CNAME is signed like a static one.
    assert_validated(
        &delv(port, &anchor, "cdn.example.test", "CNAME").await,
        &["cdn.example.test. CNAME edge.cdn.example.net."],
    );
    // With every address down and `when_all_down = "nodata"`, the name's
    // NODATA carries an NSEC without A, which validates.
    assert_validated(
        &delv(port, &anchor, "gone.example.test", "A").await,
        &["gone.example.test. A 192.0.2.77"],
    );
    let forced =
        common::http_request(server.admin_addr(), "POST", "/endpoints/192.0.2.77/down").await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_denied(
        &delv(port, &anchor, "gone.example.test", "A").await,
        "NXRRSET",
    );
    let nodata = dig(port, &["+dnssec", "gone.example.test", "A"]).await;
    let nsec: Vec<&Record> = of_type(&nodata.authority, "NSEC");
    assert_eq!(nsec.len(), 1, "{}", nodata.text);
    assert!(
        !nsec[0].data.iter().any(|field| field == "A"),
        "the NSEC must not list A: {}",
        nodata.text
    );
    // A name beside the steered ones does not exist, provably: the NSEC
    // chain has the steered names in it.
    assert_denied(
        &delv(port, &anchor, "steered2.example.test", "A").await,
        "NXDOMAIN",
    );
    server.shutdown().await;
}

/// The base64 signature of an RRSIG, without the spaces dig splits it
/// with, decoded: its length is the key's modulus for RSA.
fn signature_bytes(signature: &Record) -> usize {
    let text: String = signature.data[8..].concat();
    // Four base64 characters carry three bytes, less the padding.
    text.len() / 4 * 3 - text.matches('=').count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsasha256_keys_sign_static_and_steered_answers_that_validate() {
    let directory = prepare_steered();
    let path = directory.path().to_path_buf();
    // dnssec-keygen's default RSA size: 2048 bits.
    let (key_signing, zone_signing) = key_pair(&path, "RSASHA256");
    assert_eq!(key_signing.algorithm, 8);
    let anchor = write_anchor(&path, &key_signing);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    assert_answer_and_denial_validate(port, &anchor).await;
    // Steered answers are signed when answered, with the RSA ZSK.
    assert_steered_answers_validate(port, &anchor).await;
    for (name, signer) in [
        ("www.example.test", &zone_signing),
        ("steered.example.test", &zone_signing),
    ] {
        let answer = dig(port, &["+dnssec", name, "A"]).await;
        let signed = signatures(&answer.answer, "A");
        assert_eq!(signed.len(), 1, "{}", answer.text);
        assert_eq!(signed[0].signature_field(1), "8", "{}", answer.text);
        assert_eq!(signed[0].key_tag(), signer.tag, "{}", answer.text);
        assert_eq!(signature_bytes(signed[0]), 256, "{}", answer.text);
    }
    let keys = dig(port, &["+dnssec", "example.test", "DNSKEY"]).await;
    let key_signatures = signatures(&keys.answer, "DNSKEY");
    assert_eq!(key_signatures.len(), 1, "{}", keys.text);
    assert_eq!(
        key_signatures[0].key_tag(),
        key_signing.tag,
        "{}",
        keys.text
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_an_algorithm_rollover_every_rrset_is_signed_by_both_algorithms() {
    let directory = prepare_steered();
    let path = directory.path().to_path_buf();
    // The zone is on RSASHA256 (a KSK and a ZSK) and moves to
    // ECDSAP256SHA256, which has only its KSK so far: that KSK must sign
    // everything of its algorithm, or validators that trust only it fail.
    let (old_key_signing, old_zone_signing) = key_pair(&path, "RSASHA256");
    let new_key_signing = key_signing_key(&path);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    for (name, record_type, signers) in [
        (
            "www.example.test",
            "A",
            [&old_zone_signing, &new_key_signing],
        ),
        (
            "steered.example.test",
            "A",
            [&old_zone_signing, &new_key_signing],
        ),
        (
            "example.test",
            "DNSKEY",
            [&old_key_signing, &new_key_signing],
        ),
    ] {
        let answer = dig(port, &["+dnssec", name, record_type]).await;
        let mut tags: Vec<u16> = signatures(&answer.answer, record_type)
            .iter()
            .map(|signature| signature.key_tag())
            .collect();
        tags.sort_unstable();
        let mut expected: Vec<u16> = signers.iter().map(|key| key.tag).collect();
        expected.sort_unstable();
        assert_eq!(tags, expected, "{}", answer.text);
    }
    // Whichever key a validator trusts, the answers validate.
    for trusted in [&old_key_signing, &new_key_signing] {
        let anchor = write_anchor(&path, trusted);
        for name in ["www.example.test", "steered.example.test"] {
            let output = delv(port, &anchor, name, "A").await;
            assert!(output.contains("; fully validated"), "{output}");
        }
        assert_denied(
            &delv(port, &anchor, "nope.example.test", "A").await,
            "NXDOMAIN",
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dname_in_a_signed_zone_is_signed_and_its_cname_is_not() {
    // The target's letter case must not matter to the signature (RFC 4034
    // §6.2 lowers DNAME targets before signing).
    let zone = format!("{ZONE}legacy     DNAME New.Example.Test.\nwww.new    A 192.0.2.44\n");
    let directory = prepare(&config(""), &[("example.test", &zone)]);
    let path = directory.path().to_path_buf();
    let key = key_signing_key(&path);
    let anchor = write_anchor(&path, &key);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    // delv checks the DNAME's signature, makes the CNAME from it, and
    // follows it to the new name, whose A is signed too. (delv prints the
    // DNAME under the name it asked for; dig below shows the owner sent.)
    assert_validated(
        &delv(port, &anchor, "www.legacy.example.test", "A").await,
        &[
            "www.legacy.example.test. DNAME New.Example.Test.",
            "www.new.example.test. A 192.0.2.44",
        ],
    );
    let answer = dig(port, &["+dnssec", "www.legacy.example.test", "A"]).await;
    assert_eq!(
        owners(&signatures(&answer.answer, "DNAME")),
        ["legacy.example.test."],
        "{}",
        answer.text
    );
    assert_eq!(of_type(&answer.answer, "CNAME").len(), 1, "{}", answer.text);
    assert!(
        signatures(&answer.answer, "CNAME").is_empty(),
        "the synthesized CNAME is never signed: {}",
        answer.text
    );
    let plain = dig(port, &["www.legacy.example.test", "A"]).await;
    assert!(
        signatures(&plain.answer, "DNAME").is_empty(),
        "{}",
        plain.text
    );
    // The owner itself, and a name beside it that does not exist.
    assert_validated(
        &delv(port, &anchor, "legacy.example.test", "DNAME").await,
        &["legacy.example.test. DNAME New.Example.Test."],
    );
    assert_denied(
        &delv(port, &anchor, "legacz.example.test", "A").await,
        "NXDOMAIN",
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_a_key_stays_unsigned_beside_a_signed_one() {
    let directory = prepare(
        &config(""),
        &[("example.test", ZONE), ("other.test", OTHER_ZONE)],
    );
    key_signing_key(directory.path());
    let check = common::run_steer(&["check", "--config", "steer.toml"], directory.path()).await;
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.starts_with("ok: 2 zones (1 signed), "), "{said}");
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    let signed = dig(port, &["+dnssec", "example.test", "SOA"]).await;
    assert_eq!(
        signatures(&signed.answer, "SOA").len(),
        1,
        "{}",
        signed.text
    );

    let unsigned = dig(port, &["+dnssec", "other.test", "SOA"]).await;
    assert_eq!(unsigned.status, "NOERROR", "{}", unsigned.text);
    assert_eq!(
        of_type(&unsigned.answer, "SOA").len(),
        1,
        "{}",
        unsigned.text
    );
    assert!(
        unsigned.all().all(|record| record.record_type != "RRSIG"),
        "{}",
        unsigned.text
    );
    let keys = dig(port, &["+dnssec", "other.test", "DNSKEY"]).await;
    assert_eq!(keys.status, "NOERROR", "{}", keys.text);
    assert!(keys.answer.is_empty(), "{}", keys.text);
    let missing = dig(port, &["+dnssec", "nope.other.test", "A"]).await;
    assert_eq!(missing.status, "NXDOMAIN", "{}", missing.text);
    assert!(
        missing
            .all()
            .all(|record| record.record_type != "NSEC" && record.record_type != "RRSIG"),
        "{}",
        missing.text
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_added_while_serving_signs_the_zone_from_the_next_reload() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path().to_path_buf();
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    let before = dig(port, &["+dnssec", "example.test", "DNSKEY"]).await;
    assert_eq!(before.status, "NOERROR", "{}", before.text);
    assert!(
        before.answer.is_empty(),
        "unsigned at first: {}",
        before.text
    );
    let address = dig(port, &["+dnssec", "www.example.test", "A"]).await;
    assert!(
        signatures(&address.answer, "A").is_empty(),
        "{}",
        address.text
    );

    let key = tokio::task::spawn_blocking({
        let path = path.clone();
        move || key_signing_key(&path)
    })
    .await
    .expect("dnssec-keygen thread");
    let anchor = write_anchor(&path, &key);
    let reload = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);

    let after = dig(port, &["+dnssec", "example.test", "DNSKEY"]).await;
    let published: Vec<String> = of_type(&after.answer, "DNSKEY")
        .iter()
        .map(|record| record.data[3..].concat())
        .collect();
    assert_eq!(published, [key.public_key.as_str()], "{}", after.text);
    assert_validated(
        &delv(port, &anchor, "www.example.test", "A").await,
        &["www.example.test. A 192.0.2.10"],
    );
    server.shutdown().await;
}

/// The key tags of the RRSIGs over `www.example.test. A`.
async fn address_signers(port: u16) -> Vec<u16> {
    let answer = dig(port, &["+dnssec", "www.example.test", "A"]).await;
    signatures(&answer.answer, "A")
        .iter()
        .map(|record| record.data[6].parse().expect("key tag"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_signing_key_takes_over_when_its_activate_time_comes_without_a_reload() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path().to_path_buf();
    let key_signing = key_signing_key(&path);
    // Published now, signing in a few seconds: until then the KSK signs
    // everything, from then on the ZSK signs the data.
    let zone_signing = keygen(
        &path,
        "example.test",
        "ECDSAP256SHA256",
        Role::ZoneSigning,
        &["-P", "now", "-A", "+4"],
    );
    let anchor = write_anchor(&path, &key_signing);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);
    assert_eq!(address_signers(port).await, [key_signing.tag]);

    let status = common::http_request(server.admin_addr(), "GET", "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).expect("status JSON");
    let signing = &status["zones"][0]["dnssec"];
    let keys = signing["keys"].as_array().expect("keys in /status");
    assert_eq!(keys.len(), 2, "{signing}");
    let expires = signing["expires"].as_i64().expect("expires");
    assert!((expires - now() - 14 * DAY).abs() < 600, "{signing}");
    assert!(
        signing["resign_at"].as_i64().expect("resign_at") <= now() + 5,
        "the ZSK's activation is the next event: {signing}"
    );
    let metrics = common::http_request(server.admin_addr(), "GET", "/metrics").await;
    assert!(
        metrics.body.contains(&format!(
            "steer_dnssec_signatures_expire_timestamp_seconds{{zone=\"example.test.\"}} {expires}"
        )),
        "{}",
        metrics.body
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let signers = address_signers(port).await;
        if signers == [zone_signing.tag] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ZSK never took over: {signers:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_validated(
        &delv(port, &anchor, "www.example.test", "A").await,
        &["www.example.test. A 192.0.2.10"],
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cds_and_cdnskey_tell_the_parent_about_the_keys_whose_sync_time_came() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path().to_path_buf();
    // Two KSKs (a rollover): only the one marked for the parent is listed.
    let syncing = keygen(
        &path,
        "example.test",
        "ECDSAP256SHA256",
        Role::KeySigning,
        &["-P", "sync", "now"],
    );
    let silent = key_signing_key(&path);
    keygen(
        &path,
        "example.test",
        "ECDSAP256SHA256",
        Role::ZoneSigning,
        &[],
    );
    let anchor = write_anchor(&path, &syncing);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);

    // The CDS is the DS BIND's own tool makes from the key file.
    let keys = path.join("keys");
    let key_file = keys.join(format!("{}.key", syncing.name));
    let dsfromkey = run_bounded(
        "dnssec-dsfromkey",
        &["-2", key_file.to_str().expect("UTF-8 path")],
        None,
    );
    assert!(dsfromkey.success, "{}", dsfromkey.stderr);
    let expected: Vec<String> = dsfromkey
        .stdout
        .split_whitespace()
        .skip_while(|field| *field != "DS")
        .skip(1)
        .map(str::to_owned)
        .collect();
    let cds = dig(port, &["+dnssec", "example.test", "CDS"]).await;
    let records = of_type(&cds.answer, "CDS");
    assert_eq!(records.len(), 1, "{}", cds.text);
    assert_eq!(
        records[0].data.concat().to_uppercase(),
        expected.concat().to_uppercase(),
        "{}",
        cds.text
    );
    assert_ne!(records[0].data[0], silent.tag.to_string());
    // Signed by the KSKs, like the DNSKEY RRset, and valid.
    let signers: Vec<&str> = signatures(&cds.answer, "CDS")
        .iter()
        .map(|record| record.data[6].as_str())
        .collect();
    assert!(
        signers.contains(&syncing.tag.to_string().as_str()),
        "{}",
        cds.text
    );
    assert_validated(
        &delv(port, &anchor, "example.test", "CDS").await,
        &["example.test. CDS"],
    );
    let cdnskey = dig(port, &["+dnssec", "example.test", "CDNSKEY"]).await;
    let published: Vec<String> = of_type(&cdnskey.answer, "CDNSKEY")
        .iter()
        .map(|record| record.data[3..].concat())
        .collect();
    assert_eq!(published, [syncing.public_key.as_str()], "{}", cdnskey.text);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_a_zone_not_served_is_a_warning_naming_its_file() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path().to_path_buf();
    // A typo in the zone name: example.test would be served unsigned.
    let key = keygen(
        &path,
        "exampel.test",
        "ECDSAP256SHA256",
        Role::KeySigning,
        &[],
    );
    let output = common::run_steer(&["check", "--config", "steer.toml"], &path).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "a warning, not an error: {stderr}");
    assert!(stderr.contains("warning:"), "{stderr}");
    assert!(stderr.contains(&format!("{}.key", key.name)), "{stderr}");
    assert!(stderr.contains("exampel.test."), "{stderr}");
    assert!(stderr.contains("not served"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_transferred_from_a_primary_is_signed_and_validates() {
    // NSD serves the unsigned zone; Steer transfers it and signs it.
    let primary = tempfile::tempdir().expect("temporary directory");
    std::fs::set_permissions(
        primary.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("permissions");
    std::fs::write(primary.path().join("example.test.zone"), ZONE).expect("zone");
    let (_nsd, nsd) = common::differential::start_nsd_with(
        primary.path(),
        &[("example.test.".to_owned(), "example.test.zone".to_owned())],
        "",
        "  provide-xfr: 127.0.0.1 NOKEY\n",
        "",
    )
    .await;
    let secondary = format!(
        "\n[secondary]\n[[secondary.zone]]\nname = \"example.test\"\nprimaries = [\"{nsd}\"]\n"
    );
    let directory = prepare(&config(&secondary), &[]);
    let key = key_signing_key(directory.path());
    let anchor = write_anchor(directory.path(), &key);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while dig(port, &["example.test", "SOA"]).await.status != "NOERROR" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "example.test was not transferred"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = delv(port, &anchor, "www.example.test", "A").await;
    assert_validated(&answer, &["www.example.test. A 192.0.2.10"]);
    assert_denied(
        &delv(port, &anchor, "nope.example.test", "A").await,
        "NXDOMAIN",
    );
    server.shutdown().await;
}

/// The RRSIGs over `name` `record_type`, one line each, sorted.
async fn rrsig_lines(port: u16, name: &str, record_type: &str) -> Vec<String> {
    let answer = dig(port, &["+dnssec", name, record_type]).await;
    let mut lines: Vec<String> = signatures(&answer.answer, record_type)
        .iter()
        .map(|record| record.line())
        .collect();
    assert!(!lines.is_empty(), "no RRSIG: {}", answer.text);
    lines.sort();
    lines
}

/// The signed zone's `(signatures, reused)` in `/status`.
async fn signing_counts(server: &TestServer) -> (u64, u64) {
    let status = common::http_request(server.admin_addr(), "GET", "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).expect("JSON");
    let dnssec = &status["zones"][0]["dnssec"];
    let count = |key: &str| {
        dnssec[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {dnssec}"))
    };
    (count("signatures"), count("reused"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_signatures_of_what_did_not_change() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let path = directory.path().to_path_buf();
    let (key_signing, _) = tokio::task::spawn_blocking({
        let path = path.clone();
        move || key_pair(&path, "ECDSAP256SHA256")
    })
    .await
    .expect("dnssec-keygen thread");
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);
    let (signatures, reused) = signing_counts(&server).await;
    assert_eq!(reused, 0, "nothing to reuse at start");
    assert!(signatures > 20, "{signatures} signatures");

    // ECDSA signatures are random: the same bytes again are the same
    // signature, kept.
    let www = rrsig_lines(port, "www.example.test", "A").await;
    let mail = rrsig_lines(port, "mail.example.test", "A").await;
    let soa = rrsig_lines(port, "example.test", "SOA").await;
    let reload = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert_eq!(signing_counts(&server).await, (signatures, signatures));
    assert_eq!(rrsig_lines(port, "www.example.test", "A").await, www);
    assert_eq!(rrsig_lines(port, "example.test", "SOA").await, soa);

    // A changed address and serial: those two RRsets are signed again,
    // the rest kept.
    let changed = ZONE
        .replace("www        A     192.0.2.10", "www        A     192.0.2.11")
        .replace("hostmaster 1 ", "hostmaster 2 ");
    std::fs::write(path.join("zones/example.test.zone"), changed).expect("zone file");
    let reload = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert_eq!(signing_counts(&server).await, (signatures, signatures - 2));
    assert_ne!(rrsig_lines(port, "www.example.test", "A").await, www);
    assert_ne!(rrsig_lines(port, "example.test", "SOA").await, soa);
    assert_eq!(rrsig_lines(port, "mail.example.test", "A").await, mail);

    // What is served validates, kept and new alike.
    let anchor = write_anchor(&path, &key_signing);
    assert_validated(
        &delv(port, &anchor, "www.example.test", "A").await,
        &["www.example.test. A 192.0.2.11"],
    );
    assert_validated(
        &delv(port, &anchor, "mail.example.test", "A").await,
        &["mail.example.test. A 192.0.2.25"],
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_update_to_a_signed_zone_is_signed_and_validates() {
    let secret = "8xR6ZPhz9rN6f0yS7pQmA1cJ2bV4kL3uW5eT9yH0gDs=";
    let update = format!(
        "\n[tsig.acme]\nalgorithm = \"hmac-sha256\"\nsecret = \"{secret}\"\n\n\
         [update]\n[[update.grant]]\ntsig_key = \"acme\"\nzones = [\"example.test.\"]\n\
         types = [\"TXT\"]\n"
    );
    let directory = prepare(&config(&update), &[("example.test", ZONE)]);
    let key = key_signing_key(directory.path());
    let anchor = write_anchor(directory.path(), &key);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);
    let address = server.dns_addr(Transport::Udp, Family::V4);
    let key = format!("acme:{secret}");
    let name = "_acme-challenge.example.test.";

    let (ok, output) = common::tools::nsupdate(
        address,
        "example.test.",
        Some(&key),
        false,
        &format!("update add {name} 60 TXT \"token\""),
    )
    .await;
    assert!(ok, "{output}");
    // Signed, and in the NSEC chain: it validates, and so does its absence
    // for another type.
    assert_validated(
        &delv(port, &anchor, name, "TXT").await,
        &["_acme-challenge.example.test. TXT \"token\""],
    );
    assert_denied(&delv(port, &anchor, name, "A").await, "NXRRSET");

    let (ok, output) = common::tools::nsupdate(
        address,
        "example.test.",
        Some(&key),
        true,
        &format!("update delete {name} TXT"),
    )
    .await;
    assert!(ok, "{output}");
    assert_denied(&delv(port, &anchor, name, "TXT").await, "NXDOMAIN");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apex_alias_in_a_signed_zone_is_signed_and_validates() {
    // The alias target, served unsigned by another Steer standing in for
    // the resolver.
    let upstream = TestServer::start(&[(
        "cdn.test.zone",
        "$ORIGIN cdn.test.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n\
         @ NS ns1\nns1 A 192.0.2.53\nlb A 198.51.100.80\nlb A 198.51.100.81\n",
    )])
    .await;
    let resolver = upstream.dns_addr(Transport::Udp, Family::V4);
    let steering = format!(
        "\n[resolver]\nservers = [\"{resolver}\"]\ntimeout = \"500ms\"\n\n\
         [sites.edge]\n[pools.lb]\nsite = \"edge\"\nalias = \"lb.cdn.test.\"\n\n\
         [[steer]]\nname = \"example.test.\"\ntype = \"A\"\nttl = 60\npools = [\"lb\"]\n\
         policy = [{{ first = 8 }}]\n"
    );
    let directory = prepare(&config(&steering), &[("example.test", ZONE)]);
    let key = key_signing_key(directory.path());
    let anchor = write_anchor(directory.path(), &key);
    let server = TestServer::start_prepared(directory).await;
    let port = port_of(&server);
    assert_validated(
        &delv(port, &anchor, "example.test", "A").await,
        &[
            "example.test. A 198.51.100.80",
            "example.test. A 198.51.100.81",
        ],
    );
    // The apex's NSEC lists A: a type the alias does not answer is a
    // validated NODATA.
    assert_denied(
        &delv(port, &anchor, "example.test", "AAAA").await,
        "NXRRSET",
    );
    server.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_signatures_kept_at_the_stop() {
    let directory = prepare(&config(""), &[("example.test", ZONE)]);
    let (key_signing, _) = key_pair(directory.path(), "ECDSAP256SHA256");
    let anchor = write_anchor(directory.path(), &key_signing);
    let server = TestServer::start_prepared(directory).await;
    let first = dig(port_of(&server), &["+dnssec", "www.example.test", "A"]).await;
    let signed = signatures(&first.answer, "A")[0].data.clone();
    let (count, reused) = signing_counts(&server).await;
    assert_eq!(reused, 0, "nothing to reuse at the first start");
    // Kept right after the first signing, before any stop (a crash).
    let kept = server.directory.path().join("steer.signatures");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !kept.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no signatures kept after the start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let directory = server.stop().await;
    assert!(kept.exists(), "no signatures kept at the stop");

    // ECDSA signatures differ each time they are made: the same bytes
    // after the restart are the kept ones, and every one was reused.
    let restarted = TestServer::start_prepared(directory).await;
    let port = port_of(&restarted);
    let again = dig(port, &["+dnssec", "www.example.test", "A"]).await;
    assert_eq!(
        signatures(&again.answer, "A")[0].data,
        signed,
        "{}",
        again.text
    );
    assert_eq!(signing_counts(&restarted).await, (count, count));
    assert_validated(
        &delv(port, &anchor, "www.example.test", "A").await,
        &["www.example.test. A 192.0.2.10"],
    );

    // A file that is not one is set aside: the zone is signed anew.
    let directory = restarted.stop().await;
    std::fs::write(&kept, "not signatures").expect("file");
    let fresh = TestServer::start_prepared(directory).await;
    let port = port_of(&fresh);
    let third = dig(port, &["+dnssec", "www.example.test", "A"]).await;
    assert_ne!(
        signatures(&third.answer, "A")[0].data,
        signed,
        "{}",
        third.text
    );
    assert_eq!(signing_counts(&fresh).await.1, 0);
    assert_validated(
        &delv(port, &anchor, "www.example.test", "A").await,
        &["www.example.test. A 192.0.2.10"],
    );
    fresh.shutdown().await;
}
