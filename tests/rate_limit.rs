//! Response rate limiting (`[rate_limit]`) over real sockets: past the rate
//! a client network gets nothing back, except every `slip`-th response,
//! which comes truncated (TC, no records, OPT kept) so that a real resolver
//! retries over TCP; TCP itself is never limited nor charged. Each response
//! has its own bucket (another name, another network), but NXDOMAIN shares
//! one per zone and errors one per network, so floods of random names
//! collapse. A flood stays limited until it has been quiet for its
//! window. Exempt networks, a dry run and a valid server cookie get
//! everything whole; `/metrics` counts what became of each limited
//! response; and a reload without the section lifts the limit, one with
//! other limits applies them.
//!
//! Every burst is sent back to back from one socket and the replies are
//! collected by id afterwards, so a burst takes well under a second. A
//! second boundary may still fall inside one, which can credit a bucket
//! once more: with a rate r, a burst to a fresh bucket gets between r and
//! 2r whole answers, and its first r always are.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{Family, QueryOptions, SILENCE_TIMEOUT, TestServer, Transport, build_query};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout};

/// The names of `limits.test`, a zone of our own beside
/// [`common::EXAMPLE_ZONE`]: two names with different data, so two static
/// answers.
const LIMITS_RECORDS: &str = "a IN A 192.0.2.1\nb IN A 192.0.2.2\n";

/// The static answer most tests flood.
const FLOODED: &str = "a.limits.test.";

/// Queries per burst: far more than any rate used here, so a burst is over
/// the limit whichever second it starts in.
const BURST: usize = 30;

const CLIENT_COOKIE: [u8; 8] = [0x5a, 0x17, 0x03, 0xe2, 0x91, 0x4c, 0x6d, 0x08];

/// The steered test config of `common` with `[rate_limit]` holding
/// `rate_limit` (no section when None).
fn config(rate_limit: Option<&str>) -> String {
    let mut config = common::cidr_steered_config("");
    if let Some(rate_limit) = rate_limit {
        config.push_str("\n[rate_limit]\n");
        config.push_str(rate_limit);
        config.push('\n');
    }
    config
}

/// Starts a server whose config has `[rate_limit]` holding `rate_limit`,
/// serving `example.test` and `limits.test`.
async fn start(rate_limit: &str) -> TestServer {
    let directory = common::example_directory(&config(Some(rate_limit)));
    common::write_zone(directory.path(), "limits.test", LIMITS_RECORDS);
    TestServer::start_prepared(directory).await
}

/// Starts a node with `[rate_limit]` holding `rate_limit` whose
/// `server.cookie_secret_file` lists `secrets` (current first).
async fn start_node(rate_limit: &str, secrets: &[&str]) -> TestServer {
    let mut text = common::cidr_steered_config("cookie_secret_file = \"cookie.secret\"\n");
    text.push_str("\n[rate_limit]\n");
    text.push_str(rate_limit);
    text.push('\n');
    let directory = common::example_directory(&text);
    common::write_zone(directory.path(), "limits.test", LIMITS_RECORDS);
    let file = format!("# current, then previous\n{}\n", secrets.join("\n"));
    std::fs::write(directory.path().join("cookie.secret"), file).expect("writing the secret");
    TestServer::start_prepared(directory).await
}

/// A query for `name` `record_type`, with EDNS when `edns`.
fn query(name: &str, record_type: RecordType, edns: bool) -> Message {
    let options = QueryOptions {
        edns,
        ..QueryOptions::default()
    };
    build_query(name, record_type, &options)
}

/// `count` identical queries (each with its own id) for `name` A.
fn same_queries(name: &str, count: usize, edns: bool) -> Vec<Message> {
    (0..count)
        .map(|_| query(name, RecordType::A, edns))
        .collect()
}

/// A query for `name` A whose COOKIE option holds `cookie`.
fn cookie_query(name: &str, cookie: &[u8]) -> Message {
    let mut query = query(name, RecordType::A, true);
    query
        .edns
        .as_mut()
        .expect("EDNS")
        .options_mut()
        .insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Cookie),
            cookie.to_vec(),
        ));
    query
}

/// The COOKIE option's data in a response.
fn cookie_of(response: &Message) -> Option<Vec<u8>> {
    match response.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        other => panic!("COOKIE read as {other:?}"),
    }
}

/// What became of one query of a burst.
#[derive(Debug)]
enum Fate {
    /// A response without TC.
    Whole(Message),
    /// A truncated response (already checked to be a proper slip).
    Truncated(Message),
    /// Nothing came back.
    Silent,
}

/// The fates of a burst, in the order its queries were sent.
#[derive(Debug)]
struct Burst(Vec<Fate>);

impl Burst {
    fn whole(&self) -> usize {
        self.0
            .iter()
            .filter(|fate| matches!(fate, Fate::Whole(_)))
            .count()
    }

    fn truncated(&self) -> usize {
        self.0
            .iter()
            .filter(|fate| matches!(fate, Fate::Truncated(_)))
            .count()
    }

    fn silent(&self) -> usize {
        self.0
            .iter()
            .filter(|fate| matches!(fate, Fate::Silent))
            .count()
    }

    /// The whole responses.
    fn responses(&self) -> impl Iterator<Item = &Message> {
        self.0.iter().filter_map(|fate| match fate {
            Fate::Whole(response) => Some(response),
            _ => None,
        })
    }

    /// The truncated responses.
    fn slips(&self) -> impl Iterator<Item = &Message> {
        self.0.iter().filter_map(|fate| match fate {
            Fate::Truncated(response) => Some(response),
            _ => None,
        })
    }

    /// One letter per query, for failure messages: W(hole), T(runcated),
    /// or . (silence).
    fn pattern(&self) -> String {
        self.0
            .iter()
            .map(|fate| match fate {
                Fate::Whole(_) => 'W',
                Fate::Truncated(_) => 'T',
                Fate::Silent => '.',
            })
            .collect()
    }

    /// Every response came back whole.
    fn assert_all_whole(&self, what: &str) {
        assert_eq!(
            self.whole(),
            self.0.len(),
            "{what}: every response should be whole: {}",
            self.pattern()
        );
    }

    /// A fresh bucket of `rate` was flooded: its first `rate` responses are
    /// whole, and at most one more second's worth (a second boundary inside
    /// the burst), never the whole burst.
    fn assert_limited_to(&self, rate: usize, what: &str) {
        let pattern = self.pattern();
        assert!(
            pattern[..rate].chars().all(|fate| fate == 'W'),
            "{what}: the first {rate} should be whole: {pattern}"
        );
        assert!(
            self.whole() <= 2 * rate,
            "{what}: at most {} whole responses at rate {rate}, got {}: {pattern}",
            2 * rate,
            self.whole()
        );
    }
}

/// Sends every query back to back over UDP from one socket of `family`,
/// then collects the replies by id until all came or the line has been
/// quiet for [`SILENCE_TIMEOUT`]. Checks that each reply answers its query
/// (id and question) and that every truncated one is a proper slip: TC,
/// no answer or authority records, and the OPT record kept exactly when
/// the query had one.
async fn burst(server: &TestServer, family: Family, queries: &[Message]) -> Burst {
    let address = server.dns_addr(Transport::Udp, family);
    let local: SocketAddr = match family {
        Family::V4 => "127.0.0.1:0",
        Family::V6 => "[::1]:0",
    }
    .parse()
    .expect("loopback address");
    let socket = UdpSocket::bind(local).await.expect("binding UDP client");
    socket
        .connect(address)
        .await
        .expect("connecting UDP client");
    let positions: HashMap<u16, usize> = queries
        .iter()
        .enumerate()
        .map(|(index, query)| (query.metadata.id, index))
        .collect();
    assert_eq!(positions.len(), queries.len(), "query ids must differ");
    for query in queries {
        let packet = query.to_vec().expect("encoding query");
        socket.send(&packet).await.expect("sending query");
    }
    let mut fates: Vec<Fate> = queries.iter().map(|_| Fate::Silent).collect();
    let mut received = 0;
    let mut buffer = vec![0u8; 65535];
    while received < queries.len() {
        let Ok(Ok(length)) = timeout(SILENCE_TIMEOUT, socket.recv(&mut buffer)).await else {
            break;
        };
        let raw = &buffer[..length];
        let response = Message::from_vec(raw)
            .unwrap_or_else(|error| panic!("reply does not parse ({error}): {raw:02x?}"));
        let index = *positions
            .get(&response.metadata.id)
            .unwrap_or_else(|| panic!("reply with an id never sent: {response:?}"));
        assert!(
            matches!(fates[index], Fate::Silent),
            "two replies to query {index}"
        );
        let query = &queries[index];
        assert_eq!(
            response.queries, query.queries,
            "the reply should echo the question"
        );
        fates[index] = if response.metadata.truncation {
            check_slip(query, raw, &response);
            Fate::Truncated(response)
        } else {
            Fate::Whole(response)
        };
        received += 1;
    }
    Burst(fates)
}

/// A slipped reply: TC, no answer or authority records, and the OPT record
/// (with nothing else in the additional section) kept when the query had
/// EDNS, so the client keeps our payload size and its cookie.
fn check_slip(query: &Message, raw: &[u8], response: &Message) {
    let count = |at: usize| u16::from_be_bytes([raw[at], raw[at + 1]]);
    let with_edns = query.edns.is_some();
    assert_eq!(
        (count(6), count(8), count(10)),
        (0, 0, u16::from(with_edns)),
        "a slip carries no records but OPT: {raw:02x?}"
    );
    assert!(response.answers.is_empty() && response.authorities.is_empty());
    assert!(response.additionals.is_empty());
    assert_eq!(response.edns.is_some(), with_edns, "OPT kept iff asked");
}

/// Sends every query pipelined on one TCP connection and reads all the
/// responses.
async fn tcp_burst(server: &TestServer, queries: &[Message]) -> Vec<Message> {
    let address = server.dns_addr(Transport::Tcp, Family::V4);
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.expect("connecting");
        for query in queries {
            let packet = query.to_vec().expect("encoding query");
            common::write_frame(&mut stream, &packet)
                .await
                .expect("writing a query");
        }
        let mut responses = Vec::new();
        for query in queries {
            let raw = common::read_frame(&mut stream)
                .await
                .expect("reading a response");
            let response = Message::from_vec(&raw).expect("response parses");
            assert_eq!(response.metadata.id, query.metadata.id, "in order");
            responses.push(response);
        }
        responses
    };
    timeout(common::REPLY_TIMEOUT, exchange)
        .await
        .expect("every TCP response within the timeout")
}

/// The counters of `/metrics` these tests look at.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counters {
    /// `steer_rate_limited_total` by action.
    dropped: u64,
    slipped: u64,
    exempt: u64,
    dry_run: u64,
    /// `steer_dropped_total{transport="udp"}`.
    udp_dropped: u64,
    /// `steer_queries_total` over UDP, all rcodes.
    udp_answered: u64,
}

impl Counters {
    fn parse(body: &str) -> Counters {
        let mut counters = Counters::default();
        for line in body.lines().filter(|line| !line.starts_with('#')) {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let counter = match key {
                "steer_rate_limited_total{action=\"dropped\"}" => &mut counters.dropped,
                "steer_rate_limited_total{action=\"slipped\"}" => &mut counters.slipped,
                "steer_rate_limited_total{action=\"exempt\"}" => &mut counters.exempt,
                "steer_rate_limited_total{action=\"dry_run\"}" => &mut counters.dry_run,
                "steer_dropped_total{transport=\"udp\"}" => &mut counters.udp_dropped,
                _ if key.starts_with("steer_queries_total{transport=\"udp\",") => {
                    &mut counters.udp_answered
                }
                // Other series, some of them not integers.
                _ => continue,
            };
            *counter += value
                .parse::<u64>()
                .unwrap_or_else(|error| panic!("{line:?}: {error}"));
        }
        counters
    }
}

/// The counters once the server has counted all `udp_queries` UDP queries
/// sent to it (a worker counts a reply just after sending it, so the last
/// ones may lag the client by a moment).
async fn counters(server: &TestServer, udp_queries: usize) -> Counters {
    let deadline = Instant::now() + common::REPLY_TIMEOUT;
    loop {
        let response = common::http_request(server.admin_addr(), "GET", "/metrics").await;
        assert_eq!(response.status, 200, "GET /metrics: {}", response.body);
        let counters = Counters::parse(&response.body);
        let counted = counters.udp_answered + counters.udp_dropped;
        if counted >= udp_queries as u64 || Instant::now() >= deadline {
            assert_eq!(
                counted, udp_queries as u64,
                "every UDP query answered or dropped once: {counters:?}"
            );
            return counters;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn over_the_rate_responses_are_dropped_and_every_second_is_truncated() {
    let server = start("responses_per_second = 5\nslip = 2").await;
    let queries = same_queries(FLOODED, BURST, true);
    let seen = burst(&server, Family::V4, &queries).await;
    let pattern = seen.pattern();
    seen.assert_limited_to(5, "rate 5");
    for response in seen.responses() {
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(response.answers.len(), 1, "{response:?}");
        assert_eq!(response.answers[0].data.to_string(), "192.0.2.1");
    }
    // Past the rate the limited responses alternate, dropped then slipped
    // (the slip count carries over a second boundary).
    let limited = BURST - seen.whole();
    assert_eq!(seen.truncated(), limited / 2, "{pattern}");
    assert_eq!(seen.silent(), limited - limited / 2, "{pattern}");
    let tail: String = pattern.chars().filter(|&fate| fate != 'W').collect();
    assert!(
        tail.chars()
            .enumerate()
            .all(|(index, fate)| fate == if index % 2 == 0 { '.' } else { 'T' }),
        "limited responses should go dropped, truncated, dropped...: {pattern}"
    );

    // What the client saw is what the server counted.
    let counters = counters(&server, BURST).await;
    assert_eq!(counters.slipped, seen.truncated() as u64, "{counters:?}");
    assert_eq!(counters.dropped, seen.silent() as u64, "{counters:?}");
    assert_eq!(counters.udp_dropped, seen.silent() as u64, "{counters:?}");
    assert_eq!((counters.exempt, counters.dry_run), (0, 0), "{counters:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_is_never_limited_nor_charged() {
    let server = start("responses_per_second = 5\nslip = 1").await;
    let responses = tcp_burst(&server, &same_queries(FLOODED, BURST, true)).await;
    for response in &responses {
        assert!(!response.metadata.truncation, "{response:?}");
        assert_eq!(response.answers.len(), 1, "{response:?}");
    }
    // Had TCP been charged, the UDP bucket of the same answer would now be
    // deep in debt; it is still full.
    let seen = burst(&server, Family::V4, &same_queries(FLOODED, 5, true)).await;
    seen.assert_all_whole("UDP after a TCP burst");
    // And it is limited over UDP.
    let seen = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    assert!(seen.whole() < BURST, "{}", seen.pattern());
    let counters = counters(&server, 5 + BURST).await;
    assert_eq!(
        counters.slipped + counters.dropped,
        (BURST - seen.whole()) as u64,
        "{counters:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_flood_stays_limited_through_its_window_then_recovers() {
    // Rate 2, window 2 s: a flood runs the bucket down to -4, which one
    // second's credit does not pay back, and a quiet window does.
    let server = start("responses_per_second = 2\nslip = 1\nwindow = \"2s\"").await;
    burst(&server, Family::V4, &same_queries(FLOODED, BURST, true))
        .await
        .assert_limited_to(2, "the flood");
    // One or two seconds later (coarse seconds): -4 + 2 or + 4, minus the
    // probe, is still below zero. A plain token bucket would answer it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let probe = burst(&server, Family::V4, &same_queries(FLOODED, 1, true)).await;
    assert_eq!(probe.truncated(), 1, "still in debt: {}", probe.pattern());
    // Two or three more seconds: paid back, a full second's worth again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = burst(&server, Family::V4, &same_queries(FLOODED, 1, true)).await;
    later.assert_all_whole("after a quiet window");
    server.shutdown().await;
}

#[tokio::test]
async fn another_answer_or_another_network_is_another_bucket() {
    let server = start("responses_per_second = 5\nslip = 2").await;
    let flooded = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    flooded.assert_limited_to(5, FLOODED);

    // Another name with other data, the steered name and the zone's NS
    // set: each a full bucket of its own.
    let other = burst(
        &server,
        Family::V4,
        &same_queries("b.limits.test.", 5, true),
    )
    .await;
    other.assert_all_whole("b.limits.test. while a.limits.test. is limited");
    let steered = burst(
        &server,
        Family::V4,
        &same_queries("www.example.test.", 5, true),
    )
    .await;
    steered.assert_all_whole("a steered name while a.limits.test. is limited");
    let ns: Vec<Message> = (0..5)
        .map(|_| query("limits.test.", RecordType::NS, true))
        .collect();
    burst(&server, Family::V4, &ns)
        .await
        .assert_all_whole("limits.test. NS while a.limits.test. is limited");

    // ::1 is another client network.
    let v6 = burst(&server, Family::V6, &same_queries(FLOODED, 5, true)).await;
    v6.assert_all_whole("a.limits.test. from ::1");

    // While a.limits.test. from 127.0.0.1 is still in debt: a second's
    // credit cannot pay back 25 over.
    let again = burst(&server, Family::V4, &same_queries(FLOODED, 4, true)).await;
    assert_eq!(again.whole(), 0, "still limited: {}", again.pattern());
    server.shutdown().await;
}

#[tokio::test]
async fn nxdomain_shares_a_bucket_per_zone_and_errors_one_per_network() {
    let server = start("responses_per_second = 100\nerrors_per_second = 2\nslip = 2").await;
    // A random-subdomain flood: every name differs, the bucket does not.
    let random: Vec<Message> = (0..BURST)
        .map(|index| query(&format!("r{index}x7q.limits.test."), RecordType::A, true))
        .collect();
    let seen = burst(&server, Family::V4, &random).await;
    seen.assert_limited_to(2, "distinct nonexistent names in limits.test.");
    for response in seen.responses() {
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    }

    // Another zone's NXDOMAIN is another bucket; so is an answer, at the
    // other rate.
    let other_zone: Vec<Message> = (0..2)
        .map(|index| query(&format!("r{index}.example.test."), RecordType::A, true))
        .collect();
    burst(&server, Family::V4, &other_zone)
        .await
        .assert_all_whole("NXDOMAIN in example.test.");
    burst(&server, Family::V4, &same_queries(FLOODED, 20, true))
        .await
        .assert_all_whole("answers at 100 per second");

    // REFUSED for names in no zone of ours: one bucket for the network,
    // whatever the name, apart from the NXDOMAIN ones.
    let refused: Vec<Message> = (0..BURST)
        .map(|index| {
            query(
                &format!("n{index}.example{index}.org."),
                RecordType::A,
                true,
            )
        })
        .collect();
    let seen = burst(&server, Family::V4, &refused).await;
    seen.assert_limited_to(2, "REFUSED for distinct names");
    for response in seen.responses() {
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    }
    let counters = counters(&server, 2 * BURST + 2 + 20).await;
    assert!(counters.slipped > 0 && counters.dropped > 0, "{counters:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn slip_zero_drops_everything_over_the_limit() {
    let server = start("responses_per_second = 2\nslip = 0").await;
    let seen = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    seen.assert_limited_to(2, "slip 0");
    assert_eq!(seen.truncated(), 0, "{}", seen.pattern());
    assert_eq!(seen.silent(), BURST - seen.whole(), "{}", seen.pattern());
    let counters = counters(&server, BURST).await;
    assert_eq!(counters.slipped, 0, "{counters:?}");
    assert_eq!(counters.dropped, seen.silent() as u64, "{counters:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn slip_one_truncates_everything_over_the_limit() {
    let server = start("responses_per_second = 2\nslip = 1").await;
    // Without EDNS: a slip then has no OPT to keep, nothing additional.
    let seen = burst(&server, Family::V4, &same_queries(FLOODED, BURST, false)).await;
    seen.assert_limited_to(2, "slip 1");
    assert_eq!(seen.silent(), 0, "{}", seen.pattern());
    assert_eq!(seen.truncated(), BURST - seen.whole(), "{}", seen.pattern());
    let counters = counters(&server, BURST).await;
    assert_eq!(counters.slipped, seen.truncated() as u64, "{counters:?}");
    assert_eq!(
        (counters.dropped, counters.udp_dropped),
        (0, 0),
        "{counters:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn exempt_networks_are_answered_whole_and_counted() {
    let server =
        start("responses_per_second = 2\nslip = 1\nexempt = [\"192.0.2.0/24\", \"127.0.0.0/8\"]")
            .await;
    let seen = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    seen.assert_all_whole("127.0.0.1 is exempt");
    let counters = counters(&server, BURST).await;
    // Only the responses past the rate count as exempt: all but the first
    // two, or four across a second boundary.
    assert!(
        (BURST as u64 - 4..=BURST as u64 - 2).contains(&counters.exempt),
        "{counters:?}"
    );
    assert_eq!((counters.dropped, counters.slipped), (0, 0), "{counters:?}");
    // ::1 is not in the list.
    let v6 = burst(&server, Family::V6, &same_queries(FLOODED, BURST, true)).await;
    v6.assert_limited_to(2, "::1 is not exempt");
    // /status shows the limits in force, networks as written.
    let status = common::http_request(server.admin_addr(), "GET", "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).expect("JSON");
    assert_eq!(
        status["rate_limit"],
        serde_json::json!({
            "responses_per_second": 2,
            "errors_per_second": 2,
            "slip": 1,
            "window_seconds": 15,
            "ipv4_prefix": 24,
            "ipv6_prefix": 56,
            "exempt": ["192.0.2.0/24", "127.0.0.0/8"],
            "table_size": 262144,
            "dry_run": false,
        })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_dry_run_sends_everything_and_counts_what_it_would_limit() {
    let server = start("responses_per_second = 2\nslip = 1\ndry_run = true").await;
    let seen = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    seen.assert_all_whole("dry run");
    let counters = counters(&server, BURST).await;
    assert!(
        (BURST as u64 - 4..=BURST as u64 - 2).contains(&counters.dry_run),
        "{counters:?}"
    );
    assert_eq!(
        (counters.dropped, counters.slipped, counters.exempt),
        (0, 0, 0),
        "{counters:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_valid_server_cookie_exempts_and_a_forged_one_does_not() {
    let server = start("responses_per_second = 2\nslip = 2").await;
    let first = common::ask(
        Transport::Udp,
        server.dns_addr(Transport::Udp, Family::V4),
        &cookie_query(FLOODED, &CLIENT_COOKIE),
    )
    .await;
    let cookie = cookie_of(&first).expect("a COOKIE option in the response");
    assert_eq!(cookie.len(), 24, "client and server cookie");
    assert_eq!(cookie[..8], CLIENT_COOKIE);

    // Showing it back proves the address is ours: answered past the rate.
    let valid: Vec<Message> = (0..BURST).map(|_| cookie_query(FLOODED, &cookie)).collect();
    let seen = burst(&server, Family::V4, &valid).await;
    seen.assert_all_whole("with the server cookie");
    for response in seen.responses() {
        assert_eq!(response.answers.len(), 1, "{response:?}");
    }
    let counters_after_valid = counters(&server, 1 + BURST).await;
    // The first query and one or three more were within the rate.
    assert!(
        (BURST as u64 - 3..=BURST as u64 - 1).contains(&counters_after_valid.exempt),
        "{counters_after_valid:?}"
    );

    // One bit of the server cookie's hash flipped: not one we issued. And
    // a client cookie alone proves nothing either.
    let mut forged = cookie.clone();
    forged[23] ^= 1;
    for (what, sent) in [("forged", forged), ("client only", CLIENT_COOKIE.to_vec())] {
        let queries: Vec<Message> = (0..BURST).map(|_| cookie_query(FLOODED, &sent)).collect();
        let seen = burst(&server, Family::V4, &queries).await;
        assert!(
            seen.whole() <= 4 && seen.truncated() > 0 && seen.silent() > 0,
            "{what} cookie should be limited: {}",
            seen.pattern()
        );
    }
    let counters = counters(&server, 1 + 3 * BURST).await;
    assert_eq!(
        counters.exempt, counters_after_valid.exempt,
        "only the valid cookie exempts: {counters:?}"
    );

    // What a real resolver does with a slip: it keeps the OPT record, so
    // the fresh server cookie in it, and showing that one back gets whole
    // answers again despite the debt.
    let slip_queries: Vec<Message> = (0..6)
        .map(|_| cookie_query(FLOODED, &CLIENT_COOKIE))
        .collect();
    let seen = burst(&server, Family::V4, &slip_queries).await;
    let slip = seen
        .slips()
        .next()
        .unwrap_or_else(|| panic!("a slip among limited responses: {}", seen.pattern()));
    let fresh = cookie_of(slip).expect("the slip keeps the COOKIE option");
    assert_eq!(fresh.len(), 24);
    assert_eq!(fresh[..8], CLIENT_COOKIE);
    let retried: Vec<Message> = (0..5).map(|_| cookie_query(FLOODED, &fresh)).collect();
    burst(&server, Family::V4, &retried)
        .await
        .assert_all_whole("with the cookie from a slip");
    server.shutdown().await;
}

/// Rewrites the test server's `steer.toml` with `rate_limit` and reloads
/// it through the admin API.
async fn reload(server: &TestServer, rate_limit: Option<&str>) {
    std::fs::write(
        server.directory.path().join("steer.toml"),
        config(rate_limit),
    )
    .expect("rewriting steer.toml");
    let reload = common::http_request(server.admin_addr(), "POST", "/reload").await;
    assert_eq!(reload.status, 200, "POST /reload: {}", reload.body);
}

#[tokio::test]
async fn a_reload_lifts_the_limit_and_another_brings_new_limits() {
    let server = start("responses_per_second = 2\nslip = 2").await;
    let before = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    before.assert_limited_to(2, "before the reload");

    // The bucket is as deep in debt as before, but nothing looks at it.
    reload(&server, None).await;
    let status = common::http_request(server.admin_addr(), "GET", "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).expect("JSON");
    assert_eq!(
        status["rate_limit"],
        serde_json::Value::Null,
        "no limits in force"
    );
    let lifted = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    lifted.assert_all_whole("after a reload without [rate_limit]");
    let counters_lifted = counters(&server, 2 * BURST).await;
    assert_eq!(
        counters_lifted.dropped + counters_lifted.slipped,
        (BURST - before.whole()) as u64,
        "nothing limited after the reload: {counters_lifted:?}"
    );

    // Back, with slip 1: limited again, and every limited response now a
    // slip rather than every second one.
    reload(&server, Some("responses_per_second = 2\nslip = 1")).await;
    let again = burst(&server, Family::V4, &same_queries(FLOODED, BURST, true)).await;
    assert!(again.whole() <= 4, "limited again: {}", again.pattern());
    assert_eq!(again.silent(), 0, "slip 1 drops none: {}", again.pattern());
    let counters = counters(&server, 3 * BURST).await;
    assert_eq!(
        counters.slipped - counters_lifted.slipped,
        again.truncated() as u64,
        "{counters:?}"
    );
    assert_eq!(counters.dropped, counters_lifted.dropped, "{counters:?}");
    server.shutdown().await;
}

/// The cookie `server` answers a query for `name` with.
async fn cookie_from(server: &TestServer, name: &str) -> Vec<u8> {
    let address = server.dns_addr(Transport::Udp, Family::V4);
    let response = common::ask(Transport::Udp, address, &cookie_query(name, &CLIENT_COOKIE)).await;
    cookie_of(&response).expect("a COOKIE option in the response")
}

/// A burst past the rate, each query showing `cookie`.
async fn passes(server: &TestServer, cookie: Vec<u8>) -> Burst {
    let queries: Vec<Message> = (0..BURST).map(|_| cookie_query(FLOODED, &cookie)).collect();
    burst(server, Family::V4, &queries).await
}

#[tokio::test]
async fn nodes_sharing_a_cookie_secret_accept_each_others_cookies_through_a_rotation() {
    const OLD: &str = "000102030405060708090a0b0c0d0e0f";
    const NEW: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
    let limits = "responses_per_second = 2\nslip = 2";
    // A fleet halfway through a rotation: one node still on the old
    // secret, one signing with the new and accepting the old, one done.
    let old_only = start_node(limits, &[OLD]).await;
    let rotating = start_node(limits, &[NEW, OLD]).await;
    let new_only = start_node(limits, &[NEW]).await;
    // A cookie the old-secret node issued is good at the rotating node
    // (it still accepts the old secret) but not at the finished one.
    let old_cookie = cookie_from(&old_only, FLOODED).await;
    passes(&rotating, old_cookie.clone())
        .await
        .assert_all_whole("the old secret is still accepted");
    passes(&new_only, old_cookie)
        .await
        .assert_limited_to(2, "the old secret is no longer accepted");

    // The rotating node signs with the new secret, which the finished
    // node accepts; within one second both issue the very same cookie
    // (asked for a name not flooded, so that nothing is limited).
    let mut same = false;
    for _ in 0..3 {
        let (rotated, finished) = (
            cookie_from(&rotating, "b.limits.test.").await,
            cookie_from(&new_only, "b.limits.test.").await,
        );
        if rotated[12..16] == finished[12..16] {
            same = rotated == finished;
            break;
        }
    }
    assert!(same, "nodes with one current secret issue one cookie");
    let new_cookie = cookie_from(&rotating, "b.limits.test.").await;
    let fresh = start_node(limits, &[NEW]).await;
    passes(&fresh, new_cookie)
        .await
        .assert_all_whole("another node with the new secret accepts it");
    for server in [old_only, rotating, new_only, fresh] {
        server.shutdown().await;
    }
}
