//! Steer against NSD, a reference authoritative server (Debian's
//! package): what the differential tests share. NSD started on zone files
//! (killed when dropped), every question of a list put to both servers in
//! the same way and the two responses judged, records turned into lines
//! that compare (an RRSIG without what differs between two signings of
//! the same data), the names of a zone worth asking about, and zones made
//! at random from a seed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, Record, RecordType};

use super::{Process, QueryOptions, Transport};

/// How long either server may take to answer one question.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts NSD on `zones` (origin, file name in `directory`) and waits
/// until it answers; started again on another port if it exits. Its rate
/// limiting is off: thousands of questions come from one address.
/// `server_lines` (each `  option: value\n`) are added to its `server:`
/// clause.
pub async fn start_nsd(
    directory: &Path,
    zones: &[(String, String)],
    server_lines: &str,
) -> (Process, SocketAddr) {
    start_nsd_with(directory, zones, server_lines, "", "").await
}

/// [`start_nsd`], with `zone_options` (each `  option: value\n`) added
/// to every `zone:` clause and `clauses` (e.g. a `key:`) to the file.
pub async fn start_nsd_with(
    directory: &Path,
    zones: &[(String, String)],
    server_lines: &str,
    zone_options: &str,
    clauses: &str,
) -> (Process, SocketAddr) {
    let mut zone_lines = clauses.to_owned();
    for (origin, file) in zones {
        zone_lines.push_str(&format!(
            "zone:\n  name: {origin}\n  zonefile: {file}\n{zone_options}"
        ));
    }
    let root = directory.display();
    for _ in 0..5 {
        let port = super::free_port();
        let config = directory.join("nsd.conf");
        std::fs::write(
            &config,
            format!(
                "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  \
                 zonesdir: {root}\n  database: \"\"\n  pidfile: {root}/nsd.pid\n  \
                 xfrdfile: {root}/xfrd.state\n  zonelistfile: {root}/zone.list\n  \
                 username: \"\"\n  verbosity: 0\n  rrl-ratelimit: 0\n  \
                 rrl-whitelist-ratelimit: 0\n{server_lines}remote-control:\n  \
                 control-enable: no\n{zone_lines}"
            ),
        )
        .expect("nsd.conf");
        let mut nsd = Process(
            Command::new("nsd")
                .args(["-d", "-c"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nsd (Debian's package) starts"),
        );
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let apex = &zones[0].0;
        let query = super::build_query(apex, RecordType::SOA, &QueryOptions::default())
            .to_vec()
            .expect("query");
        for _ in 0..50 {
            if super::exchange_tcp(address, &query, Duration::from_millis(200))
                .await
                .is_some()
            {
                return (nsd, address);
            }
            if nsd.0.try_wait().expect("nsd status").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("nsd did not start");
}

/// One way of putting a question: the transport and the query's options.
#[derive(Clone, Debug)]
pub struct Way {
    pub transport: Transport,
    pub options: QueryOptions,
}

/// The two ways the differential tests ask: over TCP without EDNS, and
/// over UDP with EDNS (1232 bytes) and the DO bit.
pub fn ways() -> [Way; 2] {
    let options = |edns| QueryOptions {
        recursion_desired: false,
        edns,
        dnssec_ok: edns,
        ..QueryOptions::default()
    };
    [
        Way {
            transport: Transport::Tcp,
            options: options(false),
        },
        Way {
            transport: Transport::Udp,
            options: options(true),
        },
    ]
}

/// Asks `server` (`who`, for the message) for `name` and `record_type` in
/// `way`, `tries` times at most; panics when no answer comes within 5 s
/// of the last.
pub async fn ask(
    (server, who): (SocketAddr, &str),
    way: &Way,
    (name, record_type): (&str, RecordType),
    tries: usize,
) -> Message {
    let query = super::build_query(name, record_type, &way.options);
    let packet = query.to_vec().expect("query");
    for _ in 1..tries {
        if let Some(reply) = super::exchange(way.transport, server, &packet, ANSWER_TIMEOUT).await {
            return Message::from_vec(&reply).expect("the answer parses");
        }
    }
    let reply = super::exchange(way.transport, server, &packet, ANSWER_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("{who} at {server}: no answer to {name} {record_type}"));
    Message::from_vec(&reply).expect("the answer parses")
}

/// Puts every question of `names` × `types` to NSD and to Steer (its TCP
/// and UDP addresses, in that order) each way of `ways`, and has `judge`
/// say how Steer's response differs from NSD's (NSD's first). The
/// differences found, each naming its question, and how many questions
/// were asked.
pub async fn compare(
    nsd: SocketAddr,
    steer: [SocketAddr; 2],
    names: &[String],
    types: &[RecordType],
    ways: &[Way],
    judge: impl Fn(&Message, &Message) -> Vec<String>,
) -> (Vec<String>, usize) {
    let mut asked = 0;
    let mut differences = Vec::new();
    for name in names {
        for way in ways {
            let steer = steer[usize::from(way.transport == Transport::Udp)];
            for &record_type in types {
                asked += 1;
                // NSD may miss a UDP query while it restarts its server
                // processes to load a transferred zone: asked twice. Steer,
                // never losing one on loopback, once.
                let reference = ask((nsd, "NSD"), way, (name, record_type), 2).await;
                let ours = ask((steer, "Steer"), way, (name, record_type), 1).await;
                let problems = judge(&reference, &ours);
                if !problems.is_empty() {
                    differences.push(format!(
                        "{name} {record_type} over {:?}: {}",
                        way.transport,
                        problems.join("; ")
                    ));
                }
            }
        }
    }
    (differences, asked)
}

/// Which sections [`difference`] compares beyond the response code, the
/// AA flag and the answer section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sections {
    /// What a minimal response must carry: the authority section of
    /// negative answers and referrals, and the additional section of
    /// referrals. NSD adds the zone's NS RRset and addresses to positive
    /// answers (unless `minimal-responses` is set), where Steer answers
    /// minimally.
    Minimal,
    /// Every section of every response (NSD with `minimal-responses`).
    All,
}

/// How `ours` differs from NSD's `reference` in the response code, the AA
/// flag and `sections`.
pub fn difference(reference: &Message, ours: &Message, sections: Sections) -> Vec<String> {
    let mut problems = Vec::new();
    let (rcode, aa) = (
        reference.metadata.response_code,
        reference.metadata.authoritative,
    );
    if ours.metadata.response_code != rcode {
        problems.push(format!(
            "rcode {} against NSD's {rcode}",
            ours.metadata.response_code
        ));
    }
    if ours.metadata.authoritative != aa {
        problems.push(format!(
            "AA {} against NSD's {aa}",
            ours.metadata.authoritative
        ));
    }
    if lines(&ours.answers) != lines(&reference.answers) {
        problems.push(format!(
            "answer {:?} against NSD's {:?}",
            lines(&ours.answers),
            lines(&reference.answers)
        ));
    }
    let all = sections == Sections::All;
    let negative_or_referral = reference.answers.is_empty() || !aa;
    if (all || negative_or_referral) && lines(&ours.authorities) != lines(&reference.authorities) {
        problems.push(format!(
            "authority {:?} against NSD's {:?}",
            lines(&ours.authorities),
            lines(&reference.authorities)
        ));
    }
    if (all || !aa) && lines(&ours.additionals) != lines(&reference.additionals) {
        problems.push(format!(
            "additional {:?} against NSD's {:?}",
            lines(&ours.additionals),
            lines(&reference.additionals)
        ));
    }
    problems
}

/// The names to ask about in `zones`: every owner, a name below it, and
/// names under each wildcard.
pub fn names(zones: &[steer::zone::Zone]) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for zone in zones {
        for zone_record in &zone.records {
            let owner = zone_record.record.name.to_lowercase().to_ascii();
            names.insert(format!("nx-x.{owner}"));
            if let Some(base) = owner.strip_prefix("*.") {
                names.insert(format!("foo.{base}"));
                names.insert(format!("a.b.{base}"));
            }
            names.insert(owner);
        }
    }
    names.into_iter().collect()
}

/// `records` as sorted lines `owner TTL TYPE DATA` (owner lower-cased),
/// so that two sections compare whatever order their records came in.
/// The data of DNSSEC records, which hickory-proto reads as opaque bytes
/// here, is spelled out as a zone file would; an RRSIG's only as far as
/// two signings of the same RRset with the same key agree (see
/// [`signature_text`]).
pub fn lines(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records
        .iter()
        .map(|record| {
            format!(
                "{} {} {} {}",
                record.name.to_lowercase(),
                record.ttl,
                record.record_type(),
                data_text(record)
            )
        })
        .collect();
    lines.sort();
    lines
}

/// The data of `record` as text.
fn data_text(record: &Record) -> String {
    let RData::Unknown { code, rdata } = &record.data else {
        return record.data.to_string();
    };
    let bytes = &rdata.anything;
    let text = match *code {
        RecordType::RRSIG => signature_text(bytes),
        RecordType::NSEC => denial_text(bytes),
        RecordType::DNSKEY => key_text(bytes),
        RecordType::DS => key_text(bytes),
        _ => None,
    };
    text.unwrap_or_else(|| format!("\\# {} {}", bytes.len(), hex(bytes)))
}

/// An RRSIG's type covered, algorithm, labels, original TTL, key tag and
/// signer (RFC 4034 §3.1). Left out: the expiration and inception times,
/// which are the moment each server signed, and the signature, which
/// differs on every signing with ECDSA (a random nonce) and is checked by
/// a validator instead of by comparison.
fn signature_text(bytes: &[u8]) -> Option<String> {
    let fixed = bytes.get(..18)?;
    let covered = RecordType::from(u16::from_be_bytes([fixed[0], fixed[1]]));
    let original_ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let key_tag = u16::from_be_bytes([fixed[16], fixed[17]]);
    let (signer, _) = wire_name(&bytes[18..])?;
    Some(format!(
        "{covered} {} {} {original_ttl} {key_tag} {signer}",
        fixed[2], fixed[3]
    ))
}

/// An NSEC's next owner name and the types of its bitmap (RFC 4034 §4.1).
fn denial_text(bytes: &[u8]) -> Option<String> {
    let (next, mut rest) = wire_name(bytes)?;
    let mut text = next;
    while let [window, length, tail @ ..] = rest {
        let bitmap = tail.get(..usize::from(*length))?;
        for (index, byte) in bitmap.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    let code = u16::from(*window) << 8 | (index * 8 + bit) as u16;
                    text.push_str(&format!(" {}", RecordType::from(code)));
                }
            }
        }
        rest = &tail[usize::from(*length)..];
    }
    Some(text)
}

/// A DNSKEY's flags, protocol, algorithm and public key (RFC 4034 §2.2),
/// or a DS's key tag, algorithm, digest type and digest (§5.3): both a
/// 16-bit number, two 8-bit ones, then bytes.
fn key_text(bytes: &[u8]) -> Option<String> {
    let fixed = bytes.get(..4)?;
    Some(format!(
        "{} {} {} {}",
        u16::from_be_bytes([fixed[0], fixed[1]]),
        fixed[2],
        fixed[3],
        hex(&bytes[4..])
    ))
}

/// The uncompressed wire name at the start of `bytes` (lower-cased, with
/// its trailing dot) and what follows it.
fn wire_name(bytes: &[u8]) -> Option<(String, &[u8])> {
    let mut name = String::new();
    let mut at = 0;
    loop {
        let length = usize::from(*bytes.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        let label = bytes.get(at..at + length)?;
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        name.push('.');
        at += length;
    }
    if name.is_empty() {
        name.push('.');
    }
    Some((name, &bytes[at..]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// xorshift64*: a fixed sequence per seed, so a failing zone can be made
/// again.
pub struct Random(u64);

impl Random {
    pub fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % bound
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A zone `r.test.` made from `seed`: names one to three labels deep
/// (some wildcards), each with addresses, text, an MX or a CNAME (to
/// another name of the zone, one that does not exist, one below the
/// delegation `sub`, one below the DNAME at `dn`, or one outside), never
/// a CNAME beside other data.
/// Returns the zone text and the names to ask about.
pub fn random_zone(seed: u64) -> (String, Vec<String>) {
    const LABELS: [&str; 5] = ["a", "b", "c", "www", "mail"];
    let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut owners: Vec<String> = Vec::new();
    for _ in 0..14 {
        let depth = 1 + random.below(3);
        let mut labels: Vec<&str> = (0..depth).map(|_| random.pick(&LABELS)).collect();
        if random.below(5) == 0 {
            labels[0] = "*";
        }
        let name = labels.join(".");
        if !owners.contains(&name) {
            owners.push(name);
        }
    }
    let mut text = String::from(
        "$ORIGIN r.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n\
         @ IN NS ns1\nns1 IN A 192.0.2.53\n\
         sub IN NS ns.sub\nsub IN NS ns1.r.test.\nns.sub IN A 192.0.2.99\n\
         dn IN DNAME elsewhere.example.net.\n",
    );
    let mut targets: Vec<String> = owners.clone();
    targets.extend(
        ["nothere", "q.sub", "www.example.net.", "q.dn"]
            .iter()
            .map(ToString::to_string),
    );
    for (index, owner) in owners.iter().enumerate() {
        let target = targets[random.below(targets.len())].replace('*', "w");
        match random.below(8) {
            0..=2 => {
                text.push_str(&format!("{owner} IN A 192.0.2.{}\n", 10 + index));
                if random.below(2) == 0 {
                    text.push_str(&format!("{owner} IN A 198.51.100.{}\n", 10 + index));
                }
            }
            3 => text.push_str(&format!("{owner} IN AAAA 2001:db8::{index:x}\n")),
            4 => text.push_str(&format!("{owner} IN TXT \"t{index}\"\n")),
            5 => text.push_str(&format!("{owner} IN MX 10 {target}\n")),
            _ => text.push_str(&format!("{owner} 60 IN CNAME {target}\n")),
        }
        if random.below(3) == 0 && !text.contains(&format!("\n{owner} 60 IN CNAME")) {
            text.push_str(&format!("{owner} IN TXT \"more\"\n"));
        }
    }
    let mut names = vec![
        "r.test.".to_owned(),
        "sub.r.test.".to_owned(),
        "x.sub.r.test.".to_owned(),
        "nothere.r.test.".to_owned(),
        "dn.r.test.".to_owned(),
        "x.dn.r.test.".to_owned(),
        "a.b.dn.r.test.".to_owned(),
    ];
    for owner in &owners {
        names.push(format!("{owner}.r.test."));
        names.push(format!("q.{owner}.r.test."));
        if let Some(base) = owner.strip_prefix("*.") {
            names.push(format!("foo.{base}.r.test."));
            names.push(format!("a.b.{base}.r.test."));
        }
        // The parent of every owner: an empty non-terminal or not.
        if let Some((_, parent)) = owner.split_once('.') {
            names.push(format!("{parent}.r.test."));
        }
    }
    names.sort();
    names.dedup();
    (text, names)
}
