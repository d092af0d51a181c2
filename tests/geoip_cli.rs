//! `steer geoip build` end to end: the built binary turns a CSV into an mmdb
//! that the reader locates addresses in, and reports bad lines by
//! `file:line` with exit status 1, writing nothing.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use steer::config::steering::{GeoConfig, GeoFields};
use steer::geo::GeoDatabase;

fn geoip_build(source: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steer"))
        .args(["geoip", "build", "--source"])
        .arg(source)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(Stdio::null())
        .output()
        .expect("run steer")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn geoip_build_writes_a_database_the_reader_uses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("places.csv");
    let out = dir.path().join("places.mmdb");
    std::fs::write(
        &source,
        "network,country,continent,subdivision,latitude,longitude,asn\n\
         192.0.2.0/24,FR,EU,IDF,48.8566,2.3522,64496\n\
         2001:db8::/32,JP,AS,13,35.6895,139.6917,\n",
    )
    .expect("write");
    let output = geoip_build(&source, &out, &["--database-type", "Test-Places"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with(&format!(
            "ok: {}: 1 IPv4 and 1 IPv6 networks, ",
            out.display()
        )),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(" bytes"), "{stdout}");

    let database = GeoDatabase::open(&GeoConfig {
        databases: vec![out.clone()],
        asn_database: None,
        fields: GeoFields::default(),
    })
    .expect("open the built database");
    let paris = database.locate("192.0.2.9".parse().expect("address"));
    assert_eq!(paris.location.country.as_deref(), Some("FR"));
    assert_eq!(paris.location.subdivision.as_deref(), Some("IDF"));
    assert_eq!(paris.location.asn, Some(64_496));
    assert_eq!(paris.prefix_len, 24);
    let tokyo = database.locate("2001:db8::1".parse().expect("address"));
    assert_eq!(tokyo.location.country.as_deref(), Some("JP"));
    assert!(
        database
            .describe()
            .contains("(Test-Places, IPv6, built 2023-11-14 (epoch 1700000000), "),
        "{}",
        database.describe()
    );
}

#[test]
fn geoip_build_reports_bad_lines_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("bad.csv");
    let out = dir.path().join("bad.mmdb");
    std::fs::write(
        &source,
        "network,country,continent,subdivision,latitude,longitude,asn\n\
         192.0.2.1/24,FR,EU,,,,\n\
         198.51.100.0/24,FR,EU,,48.8,,\n",
    )
    .expect("write");
    let output = geoip_build(&source, &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "{0}:2: network: 192.0.2.1/24 has host bits set; the network is 192.0.2.0/24\n\
             {0}:3: latitude and longitude must be given together\n",
            source.display()
        )
    );
    assert!(text(&output.stdout).is_empty());
    assert!(!out.exists(), "nothing is written when a line is bad");

    let missing = dir.path().join("missing.csv");
    let output = geoip_build(&missing, &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with(&format!("{}: ", missing.display())),
        "{}",
        text(&output.stderr)
    );
}
