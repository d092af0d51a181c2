//! Every kind of configuration error, with its exact message.

use super::*;

const FILE: &str = "conf/steer.toml";

fn errors_of(text: &str) -> Vec<String> {
    match parse(Path::new(FILE), text) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn config_of(text: &str) -> Config {
    match parse(Path::new(FILE), text) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors: {errors:?}"),
    }
}

#[test]
fn minimal_file_gets_the_defaults() {
    let config = config_of("[server]\nlisten = [\"127.0.0.1:5300\"]\n");
    assert_eq!(config.file, PathBuf::from(FILE));
    assert_eq!(
        config.server.listen,
        vec!["127.0.0.1:5300".parse().expect("address")]
    );
    assert_eq!(config.server.zones, PathBuf::from("conf/zones"));
    assert_eq!(config.server.workers, default_workers());
    assert!((1..=MAX_WORKERS).contains(&config.server.workers));
    assert_eq!(config.server.tcp_idle_timeout, Duration::from_secs(10));
    assert_eq!(config.server.tcp_max_connections, 1024);
    assert_eq!(config.server.tcp_max_connections_per_client, 64);
    assert_eq!(
        config.server.journal_directory,
        PathBuf::from("conf/journal")
    );
    assert!(config.server.nsid.is_empty());
    assert!(config.server.version.is_empty());
    assert_eq!(
        config.admin,
        AdminConfig {
            listen: "127.0.0.1:8053".parse().expect("address"),
            allow_remote: false,
            token: None,
            tls: None,
            state_file: PathBuf::from("conf/steer.state.json"),
        }
    );
}

#[test]
fn full_file_is_read_as_written() {
    let config = config_of(
        r#"
[server]
listen = ["127.0.0.1:5300", "[::1]:5300", "0.0.0.0:0"]
zones = "data/zones"
workers = 3
tcp_idle_timeout = "500ms"
tcp_max_connections = 7
tcp_max_connections_per_client = 3
nsid = "fra-1"

[admin]
listen = "[::1]:0"
"#,
    );
    assert_eq!(config.server.nsid, b"fra-1");
    assert_eq!(config.server.listen.len(), 3);
    assert_eq!(
        config.server.listen[1],
        "[::1]:5300".parse().expect("address")
    );
    assert_eq!(config.server.zones, PathBuf::from("conf/data/zones"));
    assert_eq!(config.server.workers, 3);
    assert_eq!(config.server.tcp_idle_timeout, Duration::from_millis(500));
    assert_eq!(config.server.tcp_max_connections, 7);
    assert_eq!(config.server.tcp_max_connections_per_client, 3);
    assert_eq!(config.admin.listen, "[::1]:0".parse().expect("address"));
}

#[test]
fn zones_path_is_relative_to_the_config_file() {
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"z\"\n";
    let nested = parse(Path::new("a/b/steer.toml"), text).expect("valid");
    assert_eq!(nested.server.zones, PathBuf::from("a/b/z"));
    let bare = parse(Path::new("steer.toml"), text).expect("valid");
    assert_eq!(bare.server.zones, PathBuf::from("z"));
    let absolute = parse(
        Path::new("a/steer.toml"),
        "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"/srv/zones\"\n",
    )
    .expect("valid");
    assert_eq!(absolute.server.zones, PathBuf::from("/srv/zones"));
}

#[test]
fn invalid_listen_address_names_its_index() {
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:5300\", \"1.2.3.4\"]\n"),
        vec![
            "conf/steer.toml: server.listen[1]: invalid socket address \"1.2.3.4\": expected \
             IP:port, e.g. \"127.0.0.1:5300\" or \"[::1]:5300\""
        ]
    );
}

#[test]
fn empty_and_duplicate_listen_addresses() {
    assert_eq!(
        errors_of("[server]\nlisten = []\n"),
        vec!["conf/steer.toml: server.listen: must list at least one address"]
    );
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:53\", \"[::1]:53\", \"127.0.0.1:53\"]\n"),
        vec![
            "conf/steer.toml: server.listen[2]: 127.0.0.1:53 is already listed as server.listen[0]"
        ]
    );
    // Port 0 twice is two sockets on two free ports, not a clash.
    config_of("[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n");
}

#[test]
fn every_value_error_is_reported_at_once() {
    let errors = errors_of(
        r#"
[server]
listen = ["nope", "127.0.0.1:5300"]
zones = ""
workers = 0
tcp_idle_timeout = "10"
tcp_max_connections = -1
tcp_max_connections_per_client = 0
[admin]
listen = "10.0.0.1:8053"
"#,
    );
    assert_eq!(
        errors,
        vec![
            "conf/steer.toml: server.listen[0]: invalid socket address \"nope\": expected \
             IP:port, e.g. \"127.0.0.1:5300\" or \"[::1]:5300\"",
            "conf/steer.toml: server.zones: must name a directory",
            "conf/steer.toml: server.workers: must be between 1 and 256, not 0",
            "conf/steer.toml: server.tcp_idle_timeout: invalid duration \"10\": expected a whole \
             number followed by a unit (ms, s, m, h or d), e.g. \"10s\"",
            "conf/steer.toml: server.tcp_max_connections: must be at least 1, not -1",
            "conf/steer.toml: server.tcp_max_connections_per_client: must be at least 1, not 0",
            "conf/steer.toml: admin.listen: 10.0.0.1:8053 is not a loopback address; the admin \
             API can reload the server, so serving it beyond this host needs \
             admin.allow_remote = true",
        ]
    );
}

#[test]
fn nsid_is_a_short_printable_name() {
    for bad in ["", "tab\there", &"x".repeat(65)] {
        let text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\nnsid = {bad:?}\n");
        assert_eq!(
            errors_of(&text),
            vec![format!(
                "conf/steer.toml: server.nsid: must be 1 to 64 printable ASCII characters (a \
                 name operators recognise, like \"fra-1\"), not {bad:?}"
            )]
        );
    }
}

#[test]
fn version_is_one_printable_string() {
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\nversion = \"steer 1.4\"\n";
    assert_eq!(config_of(text).server.version, b"steer 1.4");
    for bad in ["", "new\nline", &"x".repeat(256)] {
        let text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\nversion = {bad:?}\n");
        assert_eq!(
            errors_of(&text),
            vec![format!(
                "conf/steer.toml: server.version: must be 1 to 255 printable ASCII characters \
                 (like \"steer 1.4\"), not {bad:?}"
            )]
        );
    }
}

#[test]
fn workers_above_the_maximum() {
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 257\n"),
        vec!["conf/steer.toml: server.workers: must be between 1 and 256, not 257"]
    );
}

#[test]
fn zero_idle_timeout_is_rejected() {
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\ntcp_idle_timeout = \"0s\"\n"),
        vec!["conf/steer.toml: server.tcp_idle_timeout: must be longer than zero"]
    );
}

#[test]
fn remote_admin_needs_allow_remote() {
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"0.0.0.0:8053\"\n";
    assert_eq!(
        errors_of(text),
        vec![
            "conf/steer.toml: admin.listen: 0.0.0.0:8053 is not a loopback address; the admin \
             API can reload the server, so serving it beyond this host needs \
             admin.allow_remote = true"
        ]
    );
    let allowed = config_of(&format!("{text}allow_remote = true\n"));
    assert!(allowed.admin.allow_remote);
    // Loopback in either family needs nothing.
    config_of("[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"[::1]:8053\"\n");
}

#[test]
fn admin_cannot_share_a_dns_address() {
    assert_eq!(
        errors_of(
            "[server]\nlisten = [\"127.0.0.1:5300\"]\n[admin]\nlisten = \"127.0.0.1:5300\"\n"
        ),
        vec![
            "conf/steer.toml: admin.listen: 127.0.0.1:5300 is also a DNS address \
             (server.listen[0]); TCP cannot share it"
        ]
    );
}

#[test]
fn unknown_key_names_its_path_and_line() {
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\nlistn = 3\n"),
        vec![
            "conf/steer.toml:3: unknown key server.listn, expected one of listen, zones, \
             workers, tcp_idle_timeout, tcp_max_connections, tcp_max_connections_per_client, \
             nsid, version, cookie_secret_file, proxy_protocol_from, tls_listen, tls_certificate, \
             tls_key, journal_directory, state_directory"
        ]
    );
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\n\n[admn]\n"),
        vec![
            "conf/steer.toml:4: unknown key admn, expected one of server, admin, geoip, ecs, \
             sites, pools, steer, probes, health, latency, peers, resolver, rate_limit, query_log, \
             dnssec, secondary, transfer, update, tsig"
        ]
    );
}

#[test]
fn missing_keys_name_their_path() {
    assert_eq!(
        errors_of("[server]\nworkers = 2\n"),
        vec!["conf/steer.toml:1: missing key server.listen"]
    );
    assert_eq!(
        errors_of("[admin]\n"),
        vec!["conf/steer.toml: missing key server"]
    );
}

#[test]
fn wrong_types_name_their_path_and_line() {
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\", 5]\n"),
        vec!["conf/steer.toml:2: server.listen[1]: invalid type: integer `5`, expected a string"]
    );
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = \"four\"\n"),
        vec!["conf/steer.toml:3: server.workers: invalid type: string \"four\", expected i64"]
    );
    assert_eq!(
        errors_of("[server]\nlisten = []\n[admin]\nallow_remote = 1\n"),
        vec![
            "conf/steer.toml:4: admin.allow_remote: invalid type: integer `1`, expected a boolean"
        ]
    );
}

#[test]
fn syntax_errors_carry_their_line() {
    let errors = errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = = 2\n");
    assert!(!errors.is_empty());
    assert!(errors[0].starts_with("conf/steer.toml:3: "), "{errors:?}");
    assert_eq!(
        errors_of("[server]\nlisten = []\n[server]\n"),
        vec!["conf/steer.toml:3: duplicate key"]
    );
}

#[test]
fn unreadable_file_is_one_error() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let missing = directory.path().join("absent.toml");
    let errors = load(&missing).expect_err("missing file");
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(
        text.starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{text}"
    );
}

#[test]
fn load_reads_from_disk() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("steer.toml");
    std::fs::write(&path, "[server]\nlisten = [\"[::1]:0\"]\n").expect("write");
    let config = load(&path).expect("valid");
    assert_eq!(config.server.zones, directory.path().join("zones"));
}

#[test]
fn bundled_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("steer.toml");
    let config = load(&path).expect("the bundled steer.toml is valid");
    assert_eq!(
        config.server.listen,
        vec![
            "127.0.0.1:5300".parse::<SocketAddr>().expect("address"),
            "[::1]:5300".parse().expect("address")
        ]
    );
    assert_eq!(
        config.server.zones,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("zones")
    );
    assert_eq!(config.admin.listen, DEFAULT_ADMIN_LISTEN);
}

#[test]
fn rate_limit_is_off_unless_configured_and_has_defaults() {
    let config = config_of("[server]\nlisten = [\"127.0.0.1:5300\"]\n");
    assert_eq!(config.rate_limit, None);
    let config = config_of(
        "[server]\nlisten = [\"127.0.0.1:5300\"]\n[rate_limit]\nresponses_per_second = 20\n",
    );
    assert_eq!(
        config.rate_limit,
        Some(RateLimitConfig {
            responses_per_second: 20,
            errors_per_second: 20,
            slip: 2,
            window_seconds: 15,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            table_size: rate_limit::DEFAULT_TABLE_SIZE,
            dry_run: false,
        })
    );
    let config = config_of(
        r#"
[server]
listen = ["127.0.0.1:5300"]
[rate_limit]
responses_per_second = 5
errors_per_second = 2
slip = 0
window = "5s"
ipv4_prefix = 32
ipv6_prefix = 64
exempt = ["10.0.0.0/8", "2001:db8::/32"]
table_size = 5000
dry_run = true
"#,
    );
    let limits = config.rate_limit.expect("configured");
    assert_eq!(limits.errors_per_second, 2);
    assert_eq!(limits.slip, 0);
    assert_eq!(limits.window_seconds, 5);
    assert_eq!((limits.ipv4_prefix, limits.ipv6_prefix), (32, 64));
    assert_eq!(limits.exempt.len(), 2);
    // Rounded up to a power of two.
    assert_eq!(limits.table_size, 8192);
    assert!(limits.dry_run);
}

#[test]
fn rate_limit_values_are_checked_with_their_key_paths() {
    let errors = errors_of(
        r#"
[server]
listen = ["127.0.0.1:5300"]
[rate_limit]
responses_per_second = 0
errors_per_second = 1000000
slip = 11
window = "500ms"
ipv4_prefix = 7
ipv6_prefix = 129
exempt = ["10.0.0.1/8", "nonsense"]
table_size = 10
"#,
    );
    assert_eq!(
        errors,
        [
            "conf/steer.toml: rate_limit.responses_per_second: must be between 1 and 100000, not 0",
            "conf/steer.toml: rate_limit.errors_per_second: must be between 1 and 100000, not 1000000",
            "conf/steer.toml: rate_limit.slip: must be between 0 and 10 (0 drops every limited response), not 11",
            "conf/steer.toml: rate_limit.ipv4_prefix: must be between 8 and 32, not 7",
            "conf/steer.toml: rate_limit.ipv6_prefix: must be between 16 and 128, not 129",
            "conf/steer.toml: rate_limit.table_size: must be between 1024 and 67108864, not 10",
            "conf/steer.toml: rate_limit.window: must be whole seconds from 1s to 60s",
            "conf/steer.toml: rate_limit.exempt[0]: prefix \"10.0.0.1/8\" has bits set beyond its length; did you mean 10.0.0.0/8?",
            "conf/steer.toml: rate_limit.exempt[1]: invalid prefix \"nonsense\": expected an address and a length, e.g. 192.0.2.0/24 or 2001:db8::/32",
        ]
    );
    let missing = errors_of("[server]\nlisten = [\"127.0.0.1:5300\"]\n[rate_limit]\nslip = 1\n");
    assert_eq!(missing.len(), 1);
    assert!(missing[0].contains("responses_per_second"), "{missing:?}");
}

#[test]
fn cookie_secrets_come_from_a_file_current_first() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("steer.toml");
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\ncookie_secret_file = \"cookie.secret\"\n";
    let write = |body: &str| {
        std::fs::write(directory.path().join("cookie.secret"), body).expect("write the secret")
    };
    write(
        "# rotated 2026-12-07\n000102030405060708090a0b0c0d0e0f\n\nF0E1D2C3B4A5968778695A4B3C2D1E0F\n",
    );
    let secrets = parse(&path, text)
        .expect("valid")
        .server
        .cookie_secrets
        .expect("read");
    assert_eq!(secrets.current, std::array::from_fn(|index| index as u8));
    assert_eq!(
        secrets.previous.map(|previous| previous[0]),
        Some(0xf0),
        "upper-case hex reads too"
    );
    // The secrets never show in a logged config.
    let shown = format!("{secrets:?}");
    assert!(
        !shown.contains("0f") && shown.contains("<hidden>"),
        "{shown}"
    );

    let only = |body: &str| {
        write(body);
        match parse(&path, text) {
            Ok(_) => panic!("{body:?} should be refused"),
            Err(errors) => errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }
    };
    let file = directory.path().join("cookie.secret").display().to_string();
    let config = path.display().to_string();
    assert_eq!(
        only("000102030405060708090a0b0c0d0e0f\nnot-a-secret\n"),
        [format!(
            "{config}: server.cookie_secret_file: {file}:2: a secret is 32 hexadecimal digits \
             (16 bytes), e.g. from `head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'`"
        )]
    );
    assert_eq!(
        only("# nothing yet\n"),
        [format!(
            "{config}: server.cookie_secret_file: {file} must hold the current secret and at \
             most the previous one, one per line; it has 0"
        )]
    );
    let three = "000102030405060708090a0b0c0d0e0f\n".repeat(3);
    assert!(only(&three)[0].ends_with("it has 3"));
    std::fs::remove_file(directory.path().join("cookie.secret")).expect("remove");
    let missing = parse(&path, text).expect_err("missing file");
    assert!(
        missing[0]
            .to_string()
            .contains("server.cookie_secret_file: cannot read"),
        "{missing:?}"
    );
}

#[test]
fn query_log_is_off_unless_configured_and_checked() {
    assert_eq!(
        config_of("[server]\nlisten = [\"127.0.0.1:0\"]\n").query_log,
        None
    );
    let config = config_of(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[query_log]\nfile = \"log/queries.log\"\n",
    );
    assert_eq!(
        config.query_log,
        Some(QueryLogConfig {
            output: QueryLogOutput::File(PathBuf::from("conf/log/queries.log")),
            sample: 1,
            format: QueryLogFormat::Json,
        })
    );
    assert_eq!(
        config_of(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[query_log]\nfile = \"q.dnstap\"\nformat = \"dnstap\"\n",
        )
        .query_log
        .map(|log| log.format),
        Some(QueryLogFormat::Dnstap)
    );
    assert_eq!(
        errors_of(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[query_log]\nfile = \"q\"\nformat = \"pcap\"\n"
        ),
        ["conf/steer.toml: query_log.format: \"pcap\" is not a format; use \"json\" or \"dnstap\""]
    );
    // A collector's socket: dnstap unless said otherwise, and only dnstap.
    let socket = |value: &str| {
        config_of(&format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[query_log]\nsocket = \"{value}\"\n"
        ))
        .query_log
        .map(|log| (log.output, log.format))
    };
    assert_eq!(
        socket("unix:run/dnstap.sock"),
        Some((
            QueryLogOutput::Unix(PathBuf::from("conf/run/dnstap.sock")),
            QueryLogFormat::Dnstap
        ))
    );
    assert_eq!(
        socket("tcp:[::1]:6000"),
        Some((
            QueryLogOutput::Tcp("[::1]:6000".parse().expect("address")),
            QueryLogFormat::Dnstap
        ))
    );
    let head = "[server]\nlisten = [\"127.0.0.1:0\"]\n[query_log]\n";
    assert_eq!(
        errors_of(&format!("{head}socket = \"tcp:collector:6000\"\n")),
        [
            "conf/steer.toml: query_log.socket: \"collector:6000\" is not an address and port \
          (for example tcp:127.0.0.1:6000 or tcp:[::1]:6000)"
        ]
    );
    assert_eq!(
        errors_of(&format!("{head}socket = \"/run/dnstap.sock\"\n")),
        [
            "conf/steer.toml: query_log.socket: \"/run/dnstap.sock\" names no kind of socket; \
          use unix:PATH or tcp:ADDRESS:PORT"
        ]
    );
    assert_eq!(
        errors_of(&format!("{head}socket = \"unix:\"\n")),
        ["conf/steer.toml: query_log.socket: unix: must be followed by the socket's path"]
    );
    assert_eq!(
        errors_of(&format!("{head}socket = \"unix:s\"\nformat = \"json\"\n")),
        [
            "conf/steer.toml: query_log.format: a socket carries dnstap only; \
          use format = \"dnstap\" or a file"
        ]
    );
    assert_eq!(
        errors_of(&format!("{head}socket = \"unix:s\"\nfile = \"q\"\n")),
        [
            "conf/steer.toml: query_log.socket: the log goes to a file or to a socket, not both; \
          remove file or socket"
        ]
    );
    assert_eq!(
        errors_of(&format!("{head}sample = 10\n")),
        ["conf/steer.toml: query_log: needs file (a log file) or socket (a dnstap collector)"]
    );
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\n[query_log]\nfile = \" \"\nsample = 0\n"),
        [
            "conf/steer.toml: query_log.file: must name a file",
            "conf/steer.toml: query_log.sample: must be between 1 and 1000000 (one query in N), not 0",
        ]
    );
}

#[test]
fn transfer_is_one_table_or_a_list_of_entries() {
    let keys = "[tsig.a]\nalgorithm = \"hmac-sha256\"\nsecret = \"c2VjcmV0\"\n";
    let one = config_of(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{keys}[transfer]\nallow = [\"192.0.2.0/24\"]\n"
    ));
    let one = one.transfer.expect("[transfer]");
    assert_eq!(one.secondaries.len(), 1);
    assert_eq!(one.secondaries[0].path, "transfer");
    assert_eq!(one.secondaries[0].zones, None);
    let many = config_of(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{keys}\
         [[transfer]]\nallow = [\"192.0.2.0/24\"]\ntsig_key = \"a\"\n\
         [[transfer]]\nallow = [\"198.51.100.7\"]\nzones = [\"Example.ORG\", \"b.test.\"]\n\
         notify = [\"198.51.100.7:5300\"]\n"
    ));
    let many = many.transfer.expect("[[transfer]]");
    assert_eq!(many.secondaries.len(), 2);
    assert_eq!(many.secondaries[1].path, "transfer[1]");
    assert_eq!(
        many.secondaries[0].key.as_ref().map(|key| key.id.as_str()),
        Some("a")
    );
    let zones = many.secondaries[1].zones.clone().expect("zones");
    assert_eq!(
        zones.iter().map(|zone| zone.to_ascii()).collect::<Vec<_>>(),
        ["example.org.", "b.test."]
    );
    assert!(many.secondaries[1].covers(&zones[0]));
    assert!(
        !many.secondaries[1].covers(&hickory_proto::rr::Name::from_ascii("c.test.").expect("name"))
    );
    assert!(
        many.secondaries[0].covers(&hickory_proto::rr::Name::from_ascii("c.test.").expect("name"))
    );
}

#[test]
fn transfer_entries_name_their_index_in_errors() {
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\n\
         [[transfer]]\nallow = [\"192.0.2.0/24\"]\n\
         [[transfer]]\nallow = [\"not an address\"]\ntsig_key = \"missing\"\n\
         zones = [\"a.test\", \"a.test.\", \"bad..name\"]\nnotify = [\"nowhere\"]\n\
         [[transfer]]\nallow = []\nzones = []\n";
    assert_eq!(
        errors_of(text),
        vec![
            "conf/steer.toml: transfer[1].allow[0]: invalid prefix \"not an address\": expected \
             an address and a length, e.g. 192.0.2.0/24 or 2001:db8::/32"
                .to_owned(),
            "conf/steer.toml: transfer[1].notify[0]: \"nowhere\" is not an address (IP or \
             IP:PORT)"
                .to_owned(),
            "conf/steer.toml: transfer[1].zones[1]: a.test. is listed twice".to_owned(),
            "conf/steer.toml: transfer[1].zones[2]: \"bad..name\" is not a domain name".to_owned(),
            "conf/steer.toml: transfer[1].tsig_key: no [tsig.missing] is defined".to_owned(),
            "conf/steer.toml: transfer[2].allow: must list the secondaries' addresses or \
             prefixes"
                .to_owned(),
            "conf/steer.toml: transfer[2].zones: must list at least one zone (or leave it \
             out: every zone)"
                .to_owned(),
        ]
    );
    assert_eq!(
        errors_of(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[[transfer]]\nallow = [\"192.0.2.1\"]\n\
             [[transfer]]\nalow = [\"192.0.2.1\"]\n"
        ),
        vec![
            "conf/steer.toml:6: unknown key transfer[1].alow, expected one of allow, tsig_key, \
             notify, zones"
        ]
    );
}

const UPDATE_KEYS: &str = "[server]\nlisten = [\"127.0.0.1:5300\"]\n\
    [tsig.acme]\nalgorithm = \"hmac-sha256\"\nsecret = \"8xR6ZPhz9rN6f0yS7pQmA1cJ2bV4kL3uW5eT9yH0gDs=\"\n";

#[test]
fn update_grants_read_as_written() {
    let config = config_of(&format!(
        "{UPDATE_KEYS}[update]\ndirectory = \"dynamic\"\n\
         [[update.grant]]\ntsig_key = \"acme\"\nzones = [\"Example.Test\"]\n\
         names = [\"_acme-challenge.example.test.\"]\ntypes = [\"txt\"]\nallow = [\"10.0.0.0/8\"]\n"
    ));
    let update = config.update.expect("[update]");
    assert_eq!(update.directory, PathBuf::from("conf/dynamic"));
    let name = |text: &str| hickory_proto::rr::Name::from_ascii(text).expect("name");
    assert_eq!(
        update.file_of(&name("example.test.")),
        PathBuf::from("conf/dynamic/example.test.updates")
    );
    let grant = &update.grants[0];
    assert_eq!(grant.zones, vec![name("example.test.")]);
    let zone = name("example.test.");
    let txt = hickory_proto::rr::RecordType::TXT;
    assert!(grant.permits(&zone, &name("_acme-challenge.example.test."), txt));
    assert!(grant.permits(&zone, &name("x._acme-challenge.example.test."), txt));
    assert!(!grant.permits(&zone, &name("www.example.test."), txt));
    assert!(!grant.permits(
        &zone,
        &name("_acme-challenge.example.test."),
        hickory_proto::rr::RecordType::A
    ));
    assert!(grant.allows("10.1.2.3".parse().expect("address")));
    assert!(!grant.allows("127.0.0.1".parse().expect("address")));
    // Without names or types: everything but what is never granted.
    let config = config_of(&format!(
        "{UPDATE_KEYS}[update]\n[[update.grant]]\ntsig_key = \"acme\"\nzones = [\"example.test.\"]\n"
    ));
    let grant = &config.update.expect("[update]").grants[0];
    assert!(grant.permits(
        &zone,
        &name("host.example.test."),
        hickory_proto::rr::RecordType::A
    ));
    assert!(grant.permits(
        &zone,
        &name("host.example.test."),
        hickory_proto::rr::RecordType::ANY
    ));
    assert!(!grant.permits(
        &zone,
        &name("example.test."),
        hickory_proto::rr::RecordType::NS
    ));
    assert!(!grant.permits(
        &zone,
        &name("example.test."),
        hickory_proto::rr::RecordType::SOA
    ));
    assert!(!grant.permits(
        &zone,
        &name("host.example.test."),
        hickory_proto::rr::RecordType::RRSIG
    ));
    assert!(!grant.permits(
        &name("other.test."),
        &name("host.other.test."),
        hickory_proto::rr::RecordType::A
    ));
}

#[test]
fn update_errors_name_their_key_paths() {
    // No grant: the kept updates are served, new ones refused.
    let config = config_of(&format!("{UPDATE_KEYS}[update]\n"));
    let update = config.update.expect("[update]");
    assert!(update.grants.is_empty());
    assert!(!update.forwards_from("127.0.0.1".parse().expect("address")));
    let config = config_of(&format!(
        "{UPDATE_KEYS}[update]\nforward_from = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"
    ));
    let update = config.update.expect("[update]");
    assert!(update.forwards_from("10.9.8.7".parse().expect("address")));
    assert!(update.forwards_from("2001:db8::1".parse().expect("address")));
    assert!(!update.forwards_from("192.0.2.1".parse().expect("address")));
    assert_eq!(
        errors_of(&format!(
            "{UPDATE_KEYS}[update]\nforward_from = [\"primary\"]\n"
        )),
        vec![
            "conf/steer.toml: update.forward_from[0]: invalid prefix \"primary\": expected an \
             address and a length, e.g. 192.0.2.0/24 or 2001:db8::/32"
        ]
    );
    assert_eq!(
        errors_of(&format!(
            "{UPDATE_KEYS}[update]\n[[update.grant]]\ntsig_key = \"nope\"\nzones = []\n\
             [[update.grant]]\ntsig_key = \"acme\"\nzones = [\"example.test.\", \"example.test\"]\n\
             names = [\"www.example.org.\"]\ntypes = [\"SOA\", \"BOGUS\", \"ANY\"]\nallow = [\"10.0.0.0/33\"]\n"
        )),
        vec![
            "conf/steer.toml: update.grant[0].tsig_key: no [tsig.nope] is defined",
            "conf/steer.toml: update.grant[0].zones: must list at least one zone",
            "conf/steer.toml: update.grant[1].zones[1]: example.test. is listed twice",
            "conf/steer.toml: update.grant[1].names[0]: www.example.org. is in none of the \
             grant's zones",
            "conf/steer.toml: update.grant[1].types[0]: SOA cannot be updated: it follows the \
             zone file and the signer",
            "conf/steer.toml: update.grant[1].types[1]: \"BOGUS\" is not a record type",
            "conf/steer.toml: update.grant[1].types[2]: ANY is not a record type a zone holds",
            "conf/steer.toml: update.grant[1].allow[0]: invalid prefix \"10.0.0.0/33\": the \
             length must be 0 to 32",
        ]
    );
}

#[test]
fn dnssec_state_file_is_named_after_the_config_unless_set() {
    let dnssec = |lines: &str| {
        config_of(&format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[dnssec]\nkeys = \"keys\"\n{lines}"
        ))
        .dnssec
        .expect("[dnssec]")
    };
    assert_eq!(
        dnssec("").state_file,
        PathBuf::from("conf/steer.signatures")
    );
    assert_eq!(
        dnssec("state_file = \"state/signatures\"\n").state_file,
        PathBuf::from("conf/state/signatures")
    );
    assert_eq!(
        errors_of(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[dnssec]\nkeys = \"keys\"\nstate_file = \" \"\n"
        ),
        vec!["conf/steer.toml: dnssec.state_file: must name a file"]
    );
}

#[test]
fn journal_directory_is_relative_to_the_config() {
    let server =
        |lines: &str| config_of(&format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{lines}")).server;
    assert_eq!(
        server("journal_directory = \"/var/lib/steer/journal\"\n").journal_directory,
        PathBuf::from("/var/lib/steer/journal")
    );
    assert_eq!(
        server("journal_directory = \"state/journal\"\n").journal_directory,
        PathBuf::from("conf/state/journal")
    );
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\njournal_directory = \"\"\n"),
        ["conf/steer.toml: server.journal_directory: must name a directory"]
    );
}

#[test]
fn state_goes_to_the_state_directory_unless_named_one_by_one() {
    let with = |server_lines: &str, lines: &str| {
        config_of(&format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n{server_lines}[dnssec]\nkeys = \"keys\"\n\
             [secondary]\n[tsig.acme]\nalgorithm = \"hmac-sha256\"\nsecret = \"c2VjcmV0\"\n\
             [update]\n{lines}"
        ))
    };
    let paths = |config: &Config| {
        [
            config.admin.state_file.clone(),
            config.steering.latency.state_file.clone(),
            config.dnssec.as_ref().expect("[dnssec]").state_file.clone(),
            config.server.journal_directory.clone(),
            config
                .secondary
                .as_ref()
                .expect("[secondary]")
                .directory
                .clone(),
            config.update.as_ref().expect("[update]").directory.clone(),
        ]
        .map(|path| path.display().to_string())
    };
    // Beside the config file, as always.
    let config = with("", "");
    assert_eq!(config.server.state_directory, None);
    assert_eq!(
        paths(&config),
        [
            "conf/steer.state.json",
            "conf/steer.latency",
            "conf/steer.signatures",
            "conf/journal",
            "conf/secondary",
            "conf/updates",
        ]
    );
    // One line for systemd's StateDirectory.
    let config = with("state_directory = \"/var/lib/steer\"\n", "");
    assert_eq!(
        config.server.state_directory,
        Some(PathBuf::from("/var/lib/steer"))
    );
    assert_eq!(
        paths(&config),
        [
            "/var/lib/steer/steer.state.json",
            "/var/lib/steer/steer.latency",
            "/var/lib/steer/steer.signatures",
            "/var/lib/steer/journal",
            "/var/lib/steer/secondary",
            "/var/lib/steer/updates",
        ]
    );
    // Relative to the config file; a path named is still the config's.
    let config = with(
        "state_directory = \"state\"\njournal_directory = \"history\"\n",
        "[admin]\nstate_file = \"admin.json\"\n",
    );
    assert_eq!(
        paths(&config),
        [
            "conf/admin.json",
            "conf/state/steer.latency",
            "conf/state/steer.signatures",
            "conf/history",
            "conf/state/secondary",
            "conf/state/updates",
        ]
    );
    assert_eq!(
        errors_of("[server]\nlisten = [\"127.0.0.1:0\"]\nstate_directory = \" \"\n"),
        ["conf/steer.toml: server.state_directory: must name a directory"]
    );
}
