//! Steer's online signing against NSD serving the same zones signed
//! offline by BIND's `dnssec-signzone` with the same keys.
//!
//! Each zone (a hand-written one with wildcards, empty non-terminals,
//! delegations with and without DS, CNAME chains, MX and TXT, and the
//! zones `random_zone` makes from fixed seeds, with CNAMEs into and out of
//! the zone and a DNAME) gets a key-signing and a zone-signing key (ECDSA
//! P-256, algorithm 13) from `dnssec-keygen`. Steer signs at load;
//! `dnssec-signzone` signs the same file for NSD as Steer signs: NSEC (no
//! NSEC3), the KSK over the DNSKEY RRset alone (`-x`), the DNSKEY TTL the
//! SOA's (`-T`). Both are then asked every name of the zones, a name below
//! each, names a wildcard matches, empty non-terminals and names below the
//! cuts, for many types, over UDP with EDNS, a large buffer and the DO
//! bit. They must agree on the response code, the AA, TC and AD flags,
//! the DO bit echoed, and every record of every section (NSD with
//! `minimal-responses`, as Steer answers), once what two signers of the
//! same data legitimately do differently is set aside: the RRSIG
//! inception, expiration and signature bytes (the rest of each RRSIG must
//! match: type covered, algorithm, labels, original TTL, key tag and
//! signer), and the order of records within a section. Where the RFCs let
//! the two servers answer differently beyond that, [`Exception`] says
//! which and why, and only there.
//!
//! Equal answers could still be equally wrong, so a sample of Steer's
//! answers, a few of every kind in every zone, is validated by `delv`,
//! BIND's validator, trusting nothing but the zone's key-signing key.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use common::differential::{Sections, Way, difference, lines, random_zone, start_nsd};
use common::tools::{dnskey_of, run_bounded};
use common::{Family, QueryOptions, TestServer, Transport};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The hand-written zone. The SOA's TTL (900) differs from `$TTL` and
/// from its MINIMUM (600), so that the DNSKEY TTL (the SOA's), the NSEC
/// TTL (the smaller of the two, RFC 9077) and the negative answers' SOA
/// TTL (the same, RFC 2308) each show. `b.c` and `c`, `deep.ent.y`,
/// `ent.y` and `y`, `_tcp`, and `y.wild` are empty non-terminals; the
/// last exists (RFC 4592 §2.2.2), so `*.wild` does not match below it. `sub` is
/// delegated without DS (an insecure child), `secure` with one. `MiXeD`
/// checks that canonical order lower-cases (RFC 4034 §6.1).
const HAND_ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@            900 SOA ns1 hostmaster 1 3600 600 86400 600
@            NS    ns1
@            NS    ns2.example.net.
@            MX    10 mail
@            TXT   \"v=spf1 -all\"
@            CAA   0 issue \"ca.example.net\"
ns1          A     192.0.2.1
mail         A     192.0.2.25
mail         AAAA  2001:db8::25
www          A     192.0.2.10
www          A     192.0.2.11
www          AAAA  2001:db8::10
www       60 TXT   \"hello\" \"world\"
MiXeD        A     192.0.2.77
alias        CNAME www
chain1       CNAME chain2
chain2       CNAME chain3
chain3       CNAME www
dangling     CNAME nothere
away         CNAME www.example.net.
to-wild      CNAME x.wild
to-sub       CNAME host.sub
to-mail      MX    0 alias
*.wild       TXT   \"wildcard\"
*.wild       A     192.0.2.40
z.y.wild     TXT   \"below an empty non-terminal\"
*.cw         CNAME www
a.b.c        A     192.0.2.30
x.deep.ent.y TXT   \"deep\"
_sip._tcp    SRV   0 5 5060 www
sub          NS    ns.sub
sub          NS    ns1.example.test.
ns.sub       A     192.0.2.53
secure       NS    ns.secure
ns.secure    A     192.0.2.54
ns.secure    AAAA  2001:db8::54
secure       DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
";

/// Names of [`HAND_ZONE`] asked beyond those every zone is asked (its
/// owners, a name below each, names under each wildcard): the empty
/// non-terminals and names below them, names below the cuts, and names
/// before the first and after the last owner in canonical order.
const HAND_NAMES: &[&str] = &[
    "b.c",
    "c",
    "q.b.c",
    "deep.ent.y",
    "ent.y",
    "y",
    "q.y",
    "_tcp",
    "_udp",
    "y.wild",
    "q.y.wild",
    "foo.cw",
    "a.b.cw",
    "host.sub",
    "x.host.sub",
    "host.secure",
    "a.b.secure",
    "0",
    "zzzz",
    "mixed",
];

/// The seeds of the random zones compared.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=12;

const TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::NS,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::DS,
    RecordType::DNSKEY,
    RecordType::NSEC,
    RecordType::RRSIG,
];

/// How many answers of each kind, in each zone, `delv` validates.
const VALIDATED_PER_KIND: usize = 2;

/// A zone to compare: its origin (absolute), its text, and the names to
/// ask beyond those [`common::differential::names`] finds in it.
struct TestZone {
    origin: String,
    text: String,
    extra_names: Vec<String>,
}

/// The hand-written zone.
fn hand_zone() -> TestZone {
    TestZone {
        origin: "example.test.".to_owned(),
        text: HAND_ZONE.to_owned(),
        extra_names: HAND_NAMES
            .iter()
            .map(|name| format!("{name}.example.test."))
            .collect(),
    }
}

/// The random zone of `seed` (its DNAME included), renamed `rSEED.test.`
/// so that all of them are served at once.
fn random_test_zone(seed: u64) -> TestZone {
    let (text, names) = random_zone(seed);
    let origin = format!("r{seed}.test.");
    let rename = |text: &str| text.replace("r.test.", &origin);
    let text = rename(&text);
    TestZone {
        extra_names: names.iter().map(|name| rename(name)).collect(),
        origin,
        text,
    }
}

/// Makes a key pair for `origin` in `keys` (a KSK when `key_signing`);
/// the DNSKEY's flags and public key (base64) as its `.key` file has
/// them.
fn keygen(keys: &Path, origin: &str, key_signing: bool) -> (u16, String) {
    let keys_path = keys.to_str().expect("UTF-8 path");
    let mut arguments = vec!["-q", "-K", keys_path, "-a", "ECDSAP256SHA256"];
    if key_signing {
        arguments.extend(["-f", "KSK"]);
    }
    arguments.push(origin);
    let output = run_bounded("dnssec-keygen", &arguments, Some(keys));
    assert!(output.success, "dnssec-keygen failed: {}", output.stderr);
    let name = output.stdout.trim().to_owned();
    let (flags, _, public_key) = dnskey_of(&keys.join(format!("{name}.key")));
    (flags, public_key)
}

/// Makes a KSK and a ZSK for `origin` in `root/keys`, writes the KSK as
/// delv's trust anchor `root/anchors/ORIGIN`, and signs
/// `root/zones/ORIGINzone` with both into `root/nsd/ORIGINsigned`.
fn sign_offline(root: &Path, origin: &str, soa_ttl: u32, nsec3: bool) {
    let keys = root.join("keys");
    let (key_signing_flags, key_signing) = keygen(&keys, origin, true);
    let (zone_signing_flags, _) = keygen(&keys, origin, false);
    assert_eq!((key_signing_flags, zone_signing_flags), (257, 256));
    std::fs::write(
        root.join(format!("anchors/{origin}")),
        format!("trust-anchors {{ {origin} static-key 257 3 13 \"{key_signing}\"; }};\n"),
    )
    .expect("anchor file");
    let unsigned = root.join(format!("zones/{origin}zone"));
    let signed = root.join(format!("nsd/{origin}signed"));
    let ttl = soa_ttl.to_string();
    let path = |path: &Path| path.to_str().expect("UTF-8 path").to_owned();
    let (keys, signed, unsigned, root_path) =
        (path(&keys), path(&signed), path(&unsigned), path(root));
    let mut arguments = vec![
        // Smart signing: the zone's keys from `-K`, the KSK signing the
        // DNSKEY RRset alone (`-x`), as Steer signs with a KSK and a ZSK.
        "-S", "-x", "-K", &keys, // Steer's DNSKEY TTL is the SOA's.
        "-T", &ttl, "-o", origin, "-f", &signed,
        // The dsset file goes here, not beside the zone file.
        "-d", &root_path,
    ];
    if nsec3 {
        // RFC 9276's NSEC3, as Steer makes it: no salt, no extra
        // iterations, no opt-out. Without `-3`: NSEC.
        arguments.extend(["-3", "-", "-H", "0"]);
    }
    arguments.push(&unsigned);
    let output = run_bounded("dnssec-signzone", &arguments, Some(root));
    assert!(
        output.success,
        "dnssec-signzone {arguments:?} failed: {}{}",
        output.stdout, output.stderr
    );
}

/// Both servers on the same zones, and what the test asks of them.
struct Served {
    /// NSD, killed when dropped.
    _nsd: common::Process,
    nsd: SocketAddr,
    /// Steer, running in the directory that holds everything: its config,
    /// zones and keys, NSD's config and signed zones, delv's anchors.
    steer: TestServer,
    /// Per zone: its origin and the names asked, sorted.
    names: Vec<(String, Vec<String>)>,
}

/// Writes `test_zones` and two keys for each, signs each offline for NSD,
/// and starts NSD and Steer (signing online) on them.
async fn serve(test_zones: &[TestZone], nsec3: bool) -> Served {
    let directory = tempfile::tempdir().expect("temporary directory");
    let root = directory.path().to_path_buf();
    // Readable by all, as in the unsigned differential test, so that NSD
    // reads its zones whichever user it runs as.
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("permissions");
    for subdirectory in ["zones", "keys", "nsd", "anchors"] {
        std::fs::create_dir(root.join(subdirectory)).expect("directory");
    }
    for zone in test_zones {
        std::fs::write(root.join(format!("zones/{}zone", zone.origin)), &zone.text)
            .expect("zone file");
    }
    let zones = steer::zone::load_dir(&root.join("zones")).expect("the zones load");
    let soa_ttls: Vec<(String, u32)> = zones
        .iter()
        .map(|zone| {
            let soa = zone
                .records
                .iter()
                .find(|zone_record| zone_record.record.record_type() == RecordType::SOA)
                .expect("the zone has a SOA");
            (zone.origin.to_ascii(), soa.record.ttl)
        })
        .collect();
    let signing_root = root.clone();
    tokio::task::spawn_blocking(move || {
        for (origin, ttl) in soa_ttls {
            sign_offline(&signing_root, &origin, ttl, nsec3);
        }
    })
    .await
    .expect("signing thread");

    let served: Vec<(String, String)> = test_zones
        .iter()
        .map(|zone| (zone.origin.clone(), format!("{}signed", zone.origin)))
        .collect();
    // Minimal responses, as Steer's: additional data for referrals only.
    let (nsd_process, nsd) =
        start_nsd(&root.join("nsd"), &served, "  minimal-responses: yes\n").await;

    std::fs::write(
        root.join("steer.toml"),
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\nworkers = 1\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\n[dnssec]\nkeys = \"keys\"\nnsec3 = {nsec3}\n"
        ),
    )
    .expect("steer.toml");
    let steer = TestServer::start_prepared(directory).await;

    let names = zones
        .iter()
        .map(|zone| {
            let origin = zone.origin.to_ascii();
            let mut names = common::differential::names(std::slice::from_ref(zone));
            if let Some(test_zone) = test_zones
                .iter()
                .find(|test_zone| test_zone.origin == origin)
            {
                names.extend(test_zone.extra_names.iter().cloned());
            }
            names.sort();
            names.dedup();
            (origin, names)
        })
        .collect();
    Served {
        _nsd: nsd_process,
        nsd,
        steer,
        names,
    }
}

/// Over UDP with EDNS, a large buffer and the DO bit, without recursion.
fn signed_way() -> Way {
    Way {
        transport: Transport::Udp,
        options: QueryOptions {
            recursion_desired: false,
            edns: true,
            payload_size: 4096,
            dnssec_ok: true,
            ..QueryOptions::default()
        },
    }
}

/// Where the RFCs let Steer answer otherwise than NSD. Nothing else is
/// set aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Exception {
    /// A question for NSEC or RRSIG at an alias. RFC 4035 §2.5 puts NSEC
    /// and RRSIG records beside a CNAME, but no current RFC says whether
    /// a question for those types follows the CNAME: RFC 1034 §4.3.2
    /// (step 3a) follows it for every type but CNAME, and Steer does;
    /// NSD answers the records at the alias itself, as RFC 2065 and RFC
    /// 2535 (§2.3.5) required of security-aware servers before RFC 4035
    /// obsoleted them. Neither answer is compared.
    AliasOfMetaType,
    /// An answer whose CNAME chain ends below a zone cut. RFC 1034
    /// §4.3.2 describes adding the referral for the last target (step
    /// 3b), which NSD does, with its DS or NSEC proof (RFC 4035 §3.1.4)
    /// and glue; Steer ends the answer at the CNAME, as it does unsigned
    /// (its positive answers are minimal), and the resolver asks for the
    /// target, which is answered with the referral and its proof (RFC
    /// 1034 §5.3.3). The answer sections and the rest of the authority
    /// section are still compared; only the referral's records (owned by
    /// the cut, and the addresses of its name servers) are set aside.
    ReferralAfterAlias,
    /// An answer of NS records. NSD adds the addresses of the name
    /// servers, and their RRSIGs, to the additional section, which RFC
    /// 1034 §4.3.2 (step 6: "other RRs which may be useful") and RFC 1035
    /// §3.3.11 leave to the server; Steer's positive answers are minimal.
    /// The answer is compared; only those addresses are set aside.
    NameServerAddresses,
}

/// What comparing the answers found, besides the differences.
#[derive(Default)]
struct Findings {
    /// How many questions each exception applied to.
    exceptions: BTreeMap<Exception, usize>,
    /// Per zone, kind of answer and whether it is negative (see
    /// [`kind`]), the questions `delv` may validate.
    candidates: Candidates,
    /// Per difference found, in order: how it differs (see [`shape`]).
    shapes: Vec<String>,
}

/// Questions for `delv`: see [`Findings`].
type Candidates = BTreeMap<(String, &'static str, bool), Vec<(String, RecordType)>>;

/// Takes from NSD's response (first) what an [`Exception`] lets Steer's
/// (second) leave out; None when it does not apply.
type Strip = fn(&Message, &Message) -> Option<Message>;

/// How Steer's response `ours` differs from NSD's `reference`: the
/// response code, the AA, TC and AD flags, the DO bit echoed, and every
/// section, once [`Exception`]s are set aside (and counted in
/// `findings`).
fn judge(reference: &Message, ours: &Message, findings: &mut Findings) -> Vec<String> {
    if alias_of_meta_type(reference, ours) {
        *findings
            .exceptions
            .entry(Exception::AliasOfMetaType)
            .or_default() += 1;
        return Vec::new();
    }
    let strips: [(Exception, Strip); 2] = [
        (Exception::ReferralAfterAlias, without_referral_after_alias),
        (
            Exception::NameServerAddresses,
            without_name_server_addresses,
        ),
    ];
    let mut reference = reference.clone();
    for (exception, strip) in strips {
        if let Some(stripped) = strip(&reference, ours) {
            *findings.exceptions.entry(exception).or_default() += 1;
            reference = stripped;
        }
    }
    let reference = &reference;
    let mut problems = difference(reference, ours, Sections::All);
    let flags = |message: &Message| {
        (
            message.metadata.truncation,
            message.metadata.authentic_data,
            message.edns.as_ref().map(|edns| edns.flags().dnssec_ok),
        )
    };
    if flags(ours) != flags(reference) {
        problems.push(format!(
            "TC, AD, DO {:?} against NSD's {:?}",
            flags(ours),
            flags(reference)
        ));
    }
    if !problems.is_empty() {
        findings.shapes.push(shape(reference, ours));
    }
    problems
}

/// How `ours` differs from `reference` in a word or two per part, to
/// group differences by their likely cause: e.g. `additional: RRSIGs
/// missing`.
fn shape(reference: &Message, ours: &Message) -> String {
    let mut parts = Vec::new();
    if ours.metadata.response_code != reference.metadata.response_code {
        parts.push("rcode".to_owned());
    }
    if ours.metadata.authoritative != reference.metadata.authoritative {
        parts.push("AA".to_owned());
    }
    let sections = [
        ("answer", &ours.answers, &reference.answers),
        ("authority", &ours.authorities, &reference.authorities),
        ("additional", &ours.additionals, &reference.additionals),
    ];
    for (section, ours, reference) in sections {
        let (ours, reference) = (lines(ours), lines(reference));
        if ours == reference {
            continue;
        }
        let missing: Vec<&String> = reference
            .iter()
            .filter(|line| !ours.contains(line))
            .collect();
        let extra: Vec<&String> = ours
            .iter()
            .filter(|line| !reference.contains(line))
            .collect();
        let signatures = |found: &[&String]| found.iter().all(|line| line.contains(" RRSIG "));
        // The lines without their TTL (the second field), sorted again.
        let without_ttl = |lines: &[String]| -> Vec<String> {
            let mut stripped: Vec<String> = lines
                .iter()
                .map(|line| {
                    let mut fields: Vec<&str> = line.split(' ').collect();
                    fields.remove(1);
                    fields.join(" ")
                })
                .collect();
            stripped.sort();
            stripped
        };
        let mut unique = ours.clone();
        unique.dedup();
        let how = if unique == reference {
            "records repeated"
        } else if extra.is_empty() && signatures(&missing) {
            "RRSIGs missing"
        } else if extra.is_empty() {
            "records missing"
        } else if missing.is_empty() {
            "records added"
        } else if without_ttl(&ours) == without_ttl(&reference) {
            "TTLs"
        } else {
            "records differ"
        };
        parts.push(format!("{section}: {how}"));
    }
    if parts.is_empty() {
        parts.push("flags".to_owned());
    }
    parts.join(", ")
}

/// The name and type asked in `message`.
fn question(message: &Message) -> (&Name, RecordType) {
    let question = message.queries.first().expect("a question");
    (question.name(), question.query_type())
}

/// The targets of the CNAME records of `records`, in order.
fn alias_targets(records: &[Record]) -> Vec<&Name> {
    records
        .iter()
        .filter_map(|record| match &record.data {
            RData::CNAME(target) => Some(&target.0),
            _ => None,
        })
        .collect()
}

/// [`Exception::AliasOfMetaType`]: a question for NSEC or RRSIG at a
/// name Steer answered with a CNAME and NSD with that type's records at
/// the name itself (and their RRSIGs).
fn alias_of_meta_type(reference: &Message, ours: &Message) -> bool {
    let (name, record_type) = question(ours);
    matches!(record_type, RecordType::NSEC | RecordType::RRSIG)
        && ours
            .answers
            .iter()
            .any(|record| record.record_type() == RecordType::CNAME && record.name == *name)
        && !reference.answers.is_empty()
        && reference.answers.iter().all(|record| {
            record.name == *name && [record_type, RecordType::RRSIG].contains(&record.record_type())
        })
}

/// [`Exception::ReferralAfterAlias`]: NSD's response without the
/// referral it added after a CNAME chain that ends below a cut, when
/// Steer's response has no referral; None when that is not the case.
/// The first label of the NSEC3 owner of `name` (RFC 9276's parameters:
/// SHA-1, no salt, no extra iterations), in lower-case base32hex.
fn nsec3_owner_label(name: &Name) -> String {
    let mut wire = Vec::new();
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    let hash = steer::dnssec::sign::nsec3_hash(&wire);
    data_encoding::BASE32HEX_NOPAD
        .encode(&hash)
        .to_ascii_lowercase()
}

fn without_referral_after_alias(reference: &Message, ours: &Message) -> Option<Message> {
    let targets = alias_targets(&reference.answers);
    let last = targets.last()?;
    let own_referral = |message: &Message| {
        message
            .authorities
            .iter()
            .any(|record| record.record_type() == RecordType::NS)
    };
    if !reference.metadata.authoritative || own_referral(ours) {
        return None;
    }
    let cut = reference
        .authorities
        .iter()
        .find(|record| record.record_type() == RecordType::NS && record.name.zone_of(last))?
        .name
        .clone();
    let servers: Vec<Name> = reference
        .authorities
        .iter()
        .filter(|record| record.name == cut)
        .filter_map(|record| match &record.data {
            RData::NS(server) => Some(server.0.clone()),
            _ => None,
        })
        .collect();
    // With NSEC3, the proof that the cut has no DS is the NSEC3 at the
    // cut's hash (RFC 5155 §7.2.7): owned by that hash, not by the cut.
    let cut_hash = nsec3_owner_label(&cut);
    let mut stripped = reference.clone();
    stripped.authorities.retain(|record| {
        record.name != cut
            && !(record.name.iter().next() == Some(cut_hash.as_bytes())
                && matches!(record.record_type(), RecordType::NSEC3 | RecordType::RRSIG))
    });
    stripped
        .additionals
        .retain(|record| !servers.contains(&record.name));
    Some(stripped)
}

/// [`Exception::NameServerAddresses`]: NSD's response to a question for
/// NS without the addresses of the name servers in its additional
/// section, when Steer's has none; None when that is not the case.
fn without_name_server_addresses(reference: &Message, ours: &Message) -> Option<Message> {
    let servers: Vec<&Name> = reference
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::NS(server) => Some(&server.0),
            _ => None,
        })
        .collect();
    let (_, record_type) = question(ours);
    let addresses = |record: &Record| servers.contains(&&record.name);
    if record_type != RecordType::NS
        || !ours.additionals.is_empty()
        || !reference.additionals.iter().any(addresses)
    {
        return None;
    }
    let mut stripped = reference.clone();
    stripped.additionals.retain(|record| !addresses(record));
    Some(stripped)
}

/// What kind of answer Steer's `ours` is, for choosing a few of each kind
/// for `delv`, and whether `delv` should call it a negative response;
/// None for the answers `delv` cannot validate from Steer alone:
/// referrals, CNAME chains that leave `origin`, end below a cut or loop,
/// and the NSEC and RRSIG types, which are no data of their own.
fn kind(origin: &Name, reference: &Message, ours: &Message) -> Option<(&'static str, bool)> {
    let (name, record_type) = question(ours);
    let targets = alias_targets(&ours.answers);
    let referral = |message: &Message| {
        message
            .authorities
            .iter()
            .any(|record| record.record_type() == RecordType::NS)
    };
    if matches!(record_type, RecordType::NSEC | RecordType::RRSIG)
        || !ours.metadata.authoritative
        || referral(reference)
        || targets.iter().any(|target| !origin.zone_of(target))
        || targets.last().is_some_and(|last| {
            ours.answers
                .iter()
                .any(|record| record.record_type() == RecordType::CNAME && record.name == **last)
        })
    {
        return None;
    }
    let wildcard_match = ours.answers.iter().any(|record| match &record.data {
        RData::Unknown { code, rdata } if *code == RecordType::RRSIG => {
            rdata.anything.get(3).copied() < Some(record.name.num_labels())
        }
        _ => false,
    });
    let nodata_proof_at_name = reference
        .authorities
        .iter()
        .any(|record| record.record_type() == RecordType::NSEC && record.name == *name);
    let empty = ours.answers.is_empty();
    Some(match ours.metadata.response_code {
        ResponseCode::NXDomain if targets.is_empty() => ("a name that does not exist", true),
        // delv validates the CNAME, then the denial of its target.
        ResponseCode::NXDomain => ("an alias of a name that does not exist", false),
        ResponseCode::NoError if !targets.is_empty() => ("an alias", false),
        ResponseCode::NoError if empty && name.is_wildcard() => {
            ("no data at a wildcard's own name", true)
        }
        ResponseCode::NoError if empty && nodata_proof_at_name => ("no data", true),
        ResponseCode::NoError if empty => (
            "no data at an empty non-terminal or a wildcard's match",
            true,
        ),
        ResponseCode::NoError if wildcard_match => ("a wildcard's match", false),
        ResponseCode::NoError if record_type == RecordType::DNSKEY => ("the keys", false),
        ResponseCode::NoError if record_type == RecordType::DS => ("a delegation signer", false),
        ResponseCode::NoError => ("data", false),
        _ => ("another response code", false),
    })
}

/// Asks both servers every name of every zone for every [`TYPES`]; the
/// differences found, how many questions were asked, and the findings.
async fn compare_all(served: &Served) -> (Vec<String>, usize, Findings) {
    let steer_udp = served.steer.dns_addr(Transport::Udp, Family::V4);
    let steer_tcp = served.steer.dns_addr(Transport::Tcp, Family::V4);
    let findings = RefCell::new(Findings::default());
    let mut differences = Vec::new();
    let mut asked = 0;
    for (origin, names) in &served.names {
        let apex = Name::from_ascii(origin).expect("origin");
        let (found, count) = common::differential::compare(
            served.nsd,
            [steer_tcp, steer_udp],
            names,
            &TYPES,
            &[signed_way()],
            |reference, ours| {
                let mut findings = findings.borrow_mut();
                if let Some((kind, negative)) = kind(&apex, reference, ours) {
                    let (name, record_type) = question(ours);
                    findings
                        .candidates
                        .entry((origin.clone(), kind, negative))
                        .or_default()
                        .push((name.to_ascii(), record_type));
                }
                judge(reference, ours, &mut findings)
            },
        )
        .await;
        differences.extend(found);
        asked += count;
    }
    (differences, asked, findings.into_inner())
}

/// `differences` grouped by their `shapes`: how many of each, and the
/// first and the last as examples.
fn grouped(differences: &[String], shapes: &[String]) -> String {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (difference, shape) in differences.iter().zip(shapes) {
        groups.entry(shape).or_default().push(difference);
    }
    let mut text = String::new();
    for (shape, members) in groups {
        text.push_str(&format!("{} × {shape}:\n", members.len()));
        let mut examples = vec![members[0]];
        examples.extend(members.last().filter(|_| members.len() > 1));
        for example in examples {
            text.push_str(&format!("    {example}\n"));
        }
    }
    text
}

/// Whether `delv`'s output says the answer validated: a verdict of
/// "fully validated" (for a negative answer, "negative response, fully
/// validated"), and no failure other than the negative answer itself.
fn validated(output: &str, negative: bool) -> bool {
    let verdict = if negative {
        "; negative response, fully validated"
    } else {
        "; fully validated"
    };
    output.lines().any(|line| line == verdict)
        && output
            .lines()
            .filter_map(|line| line.strip_prefix(";; resolution failed: "))
            .all(|reason| reason.starts_with("ncache"))
        && !output.contains("broken trust chain")
        && !output.contains("no valid RRSIG")
}

/// Has `delv` validate, from the server on `port`, up to
/// [`VALIDATED_PER_KIND`] of the `candidates` of each zone and kind
/// (spread over them), two at a time; the failures, and how many were
/// validated.
fn validate_sample(root: &Path, port: u16, candidates: &Candidates) -> (Vec<String>, usize) {
    let mut sample = Vec::new();
    for ((origin, kind, negative), questions) in candidates {
        let step = questions.len().div_ceil(VALIDATED_PER_KIND).max(1);
        for (name, record_type) in questions.iter().step_by(step) {
            sample.push((
                origin.as_str(),
                *kind,
                *negative,
                name.as_str(),
                *record_type,
            ));
        }
    }
    let failures = std::sync::Mutex::new(Vec::new());
    let port = port.to_string();
    std::thread::scope(|scope| {
        for part in sample.chunks(sample.len().div_ceil(2).max(1)) {
            let (failures, port) = (&failures, &port);
            scope.spawn(move || {
                for &(origin, kind, negative, name, record_type) in part {
                    let anchor = root.join(format!("anchors/{origin}"));
                    let arguments = [
                        "@127.0.0.1",
                        "-p",
                        port,
                        "-a",
                        anchor.to_str().expect("UTF-8 path"),
                        &format!("+root={origin}"),
                        name,
                        &record_type.to_string(),
                    ];
                    let output = run_bounded("delv", &arguments, Some(root));
                    let text = format!("{}{}", output.stdout, output.stderr);
                    if !validated(&text, negative) {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("{name} {record_type} ({kind}):\n{text}"));
                    }
                }
            });
        }
    });
    (failures.into_inner().expect("failures"), sample.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_answers_match_nsd_serving_the_same_zones_signed_offline() {
    compare_with_nsd(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsec3_signed_answers_match_nsd_serving_the_same_zones_signed_offline() {
    compare_with_nsd(true).await;
}

/// The whole comparison, with NSEC or NSEC3 on both sides.
async fn compare_with_nsd(nsec3: bool) {
    let mut test_zones = vec![hand_zone()];
    test_zones.extend(SEEDS.map(random_test_zone));
    let served = serve(&test_zones, nsec3).await;

    let (differences, asked, findings) = compare_all(&served).await;
    let root = served.steer.directory.path().to_path_buf();
    let port = served.steer.dns_addr(Transport::Udp, Family::V4).port();
    let candidates = findings.candidates;
    let kinds: std::collections::BTreeSet<&'static str> =
        candidates.keys().map(|(_, kind, _)| *kind).collect();
    let (failures, validated_count) =
        tokio::task::spawn_blocking(move || validate_sample(&root, port, &candidates))
            .await
            .expect("delv thread");
    eprintln!(
        "{} zones, {asked} questions, {} differences, exceptions {:?}; \
         {validated_count} answers for delv ({kinds:?}), {} not validated",
        served.names.len(),
        differences.len(),
        findings.exceptions,
        failures.len()
    );
    assert!(asked > 5000, "only {asked} questions");
    assert!(
        validated_count > 100,
        "only {validated_count} answers for delv"
    );
    assert_eq!(differences.len(), findings.shapes.len());
    assert!(
        differences.is_empty() && failures.is_empty(),
        "{} of {asked} answers differ from NSD's, by how they differ:\n{}\n\
         {} of {validated_count} answers delv did not validate:\n{}",
        differences.len(),
        grouped(&differences, &findings.shapes),
        failures.len(),
        failures.join("\n")
    );
    served.steer.shutdown().await;
}
