//! Steer against NSD, a reference authoritative server (Debian's package):
//! both serve the golden fixture zones, and every owner name of them, a
//! name below each, and names under each wildcard are asked for every
//! common type, over TCP without EDNS and over UDP with EDNS and the DO
//! bit. Both must give the same response code, AA flag
//! and answer section; negative answers and referrals the same authority
//! section, and referrals the same glue. NSD adds the zone's NS RRset and
//! addresses to positive answers where Steer answers minimally, so those
//! sections are not compared there.
//!
//! Where Steer differs from NSD by design it is listed in [`DIFFERENT`]
//! with the reason, and only there.
//!
//! A second test does the same on zones made at random (from fixed seeds,
//! so a failure can be run again): names a few labels deep, wildcards,
//! CNAMEs in and out of the zone, MX targets, empty non-terminals and a
//! delegation, where the interplay of wildcards, CNAMEs and non-terminals
//! hides the cases a hand-written fixture misses.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::differential::{Sections, difference, names, random_zone, start_nsd, ways};
use common::{Family, TestServer, Transport};
use hickory_proto::rr::RecordType;

/// Questions answered differently on purpose, and why.
const DIFFERENT: &[(&str, &str)] = &[(
    "d1.example.test.",
    "a chain of nine CNAMEs: Steer follows eight links (README, How Steer answers), NSD more",
)];

const TYPES: [RecordType; 11] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::NS,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::SRV,
    RecordType::TXT,
    RecordType::CAA,
    RecordType::DS,
];

/// Compares every question of `names` (but those in [`DIFFERENT`]) ×
/// [`TYPES`], both [`ways`]; the differences found, and how many
/// questions were asked.
async fn compare(
    nsd: SocketAddr,
    steer: [SocketAddr; 2],
    names: &[String],
) -> (Vec<String>, usize) {
    let names: Vec<String> = names
        .iter()
        .filter(|name| !DIFFERENT.iter().any(|(different, _)| different == name))
        .cloned()
        .collect();
    common::differential::compare(nsd, steer, &names, &TYPES, &ways(), |reference, ours| {
        difference(reference, ours, Sections::Minimal)
    })
    .await
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/zones")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_answers_as_nsd_does() {
    let zones = steer::zone::load_dir(&fixture()).expect("fixture zones");
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::set_permissions(
        directory.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("permissions");
    let mut served = Vec::new();
    for zone in &zones {
        let file = zone.file.file_name().expect("zone file name");
        std::fs::copy(&zone.file, directory.path().join(file)).expect("copy zone");
        served.push((zone.origin.to_ascii(), file.to_string_lossy().into_owned()));
    }
    let (_nsd, nsd) = start_nsd(directory.path(), &served, "").await;
    let files: Vec<(String, String)> = zones
        .iter()
        .map(|zone| {
            (
                zone.file
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read_to_string(&zone.file).expect("zone text"),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    let server = TestServer::start(&files).await;
    let steer = [
        server.dns_addr(Transport::Tcp, Family::V4),
        server.dns_addr(Transport::Udp, Family::V4),
    ];

    let (differences, asked) = compare(nsd, steer, &names(&zones)).await;
    assert!(asked > 2000, "only {asked} questions");
    assert!(
        differences.is_empty(),
        "{} of {asked} answers differ from NSD's:\n{}",
        differences.len(),
        differences.join("\n")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_zones_are_answered_as_nsd_does() {
    let mut asked = 0;
    for seed in 1..=20u64 {
        let (text, names) = random_zone(seed);
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::set_permissions(
            directory.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("permissions");
        std::fs::write(directory.path().join("r.test.zone"), &text).expect("zone");
        let (nsd_process, nsd) = start_nsd(
            directory.path(),
            &[("r.test.".to_owned(), "r.test.zone".to_owned())],
            "",
        )
        .await;
        let server = TestServer::start(&[("r.test.zone", &text)]).await;
        let steer = [
            server.dns_addr(Transport::Tcp, Family::V4),
            server.dns_addr(Transport::Udp, Family::V4),
        ];
        let (differences, count) = compare(nsd, steer, &names).await;
        asked += count;
        assert!(
            differences.is_empty(),
            "seed {seed}: {} of {count} answers differ from NSD's:\n{}\nzone:\n{text}",
            differences.len(),
            differences.join("\n")
        );
        server.shutdown().await;
        drop(nsd_process);
    }
    assert!(asked > 1000, "only {asked} questions");
}
