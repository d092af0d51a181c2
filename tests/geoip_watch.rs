//! Replacing the GeoIP database file under a running server reloads it:
//! no SIGHUP, and the new locations take effect (issue: "the database
//! reloads ... when its file is replaced").

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::op::{Edns, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

const ZONE: &str = "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 300\n@ NS ns1\nns1 A 192.0.2.53\n";

fn write_database(directory: &Path, country: &str, continent: &str) {
    let source = directory.join("geo.csv");
    std::fs::write(
        &source,
        format!("network,country,continent,subdivision,latitude,longitude,asn\n81.2.69.0/24,{country},{continent},,,,\n"),
    )
    .expect("writing the CSV");
    // Built beside the live file, then renamed over it, as an operator's
    // cron job would.
    let staged = directory.join("geo.mmdb.new");
    steer::geo::build::build(&source, &staged, "Test-City", 1).expect("building the database");
    std::fs::rename(&staged, directory.join("geo.mmdb")).expect("replacing the database");
}

async fn ask(server: SocketAddr) -> Option<IpAddr> {
    let mut message = Message::query();
    message.add_query(Query::query(
        Name::from_ascii("www.example.test.").ok()?,
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            "81.2.69.0".parse().ok()?,
            24,
            0,
        )));
    message.edns = Some(edns);
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.send_to(&message.to_vec().ok()?, server).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let (length, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
        .await
        .ok()?
        .ok()?;
    let response = Message::from_vec(&buffer[..length]).ok()?;
    response
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::A(address) => Some(IpAddr::V4(address.0)),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_database_is_picked_up_without_a_signal() {
    let directory = tempfile::tempdir().expect("temp dir");
    let zones = directory.path().join("zones");
    std::fs::create_dir(&zones).expect("zones dir");
    std::fs::write(zones.join("example.test.zone"), ZONE).expect("zone");
    write_database(directory.path(), "GB", "EU");
    let config = directory.path().join("steer.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1
[admin]
listen = "127.0.0.1:0"
[geoip]
database = "geo.mmdb"
[sites.fra]
[sites.iad]
[pools.fra]
site = "fra"
addresses = ["192.0.2.10"]
[pools.iad]
site = "iad"
addresses = ["198.51.100.10"]
[[steer]]
name = "www.example.test."
type = "A"
pools = ["fra", "iad"]
policy = [{ geo = { EU = ["fra"], NA = ["iad"] } }]
"#,
    )
    .expect("config");
    let server = steer::server::start(&config).await.expect("server starts");
    let address = server.dns_udp[0];
    assert_eq!(
        ask(address).await,
        Some("192.0.2.10".parse().expect("ip")),
        "GB → fra"
    );
    let generation = server.control.status().generation;

    // The same network now says US.
    write_database(directory.path(), "US", "NA");
    let deadline = Instant::now() + steer::server::DATABASE_POLL * 4;
    let mut answer = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        answer = ask(address).await;
        if answer == Some("198.51.100.10".parse().expect("ip")) {
            break;
        }
    }
    assert_eq!(
        answer,
        Some("198.51.100.10".parse().expect("ip")),
        "US → iad after the file was replaced"
    );
    assert!(
        server.control.status().generation > generation,
        "a reload happened"
    );
    server.shutdown().await;
}
