//! Golden scenarios: every `tests/golden/*.scn` file lists queries and the
//! exact response the real server must give, over real UDP and TCP sockets
//! on loopback, against the zones in `tests/fixtures/golden/zones/`.
//!
//! # Scenario format
//!
//! ```text
//! # A comment. Blank lines are ignored.
//! === two A records, minimal response       <- starts a scenario (title)
//! query: www.example.test. A +edns          <- name (case kept), type, options
//! flags: qr aa rd                           <- the exact set of header flags
//! rcode: NOERROR                            <- name or number (16 = BADVERS)
//! opt: payload=1232 version=0               <- OPT in the response ("none" if absent)
//! answer:                                   <- records, one per indented line:
//!     www.example.test. 300 IN A 192.0.2.1  <- owner TTL class type rdata
//! authority:
//! additional:
//! ```
//!
//! Instead of `query:`, `raw: HEX...` sends bytes as written (malformed
//! packets); options may precede the hex. `reply: none` expects no reply at
//! all (the packet is dropped). Omitted parts default to "nothing": no
//! records in a section, no OPT, and the question is expected to be the
//! query's own (`question: none` or `question: NAME CLASS TYPE` to say
//! otherwise; a raw packet has no default question). `opcode:` is checked
//! always and defaults to the query's opcode. `size: N` checks the
//! response's length in bytes (for the size limits). The response id must
//! always equal the query id. TXT data renders as quoted strings; other
//! data as hickory-proto displays it.
//!
//! Options: `+udp` / `+tcp` (default: both, and the response must be the
//! same on each), `+v6` (query over ::1 instead of 127.0.0.1), `+edns`,
//! `+bufsize=N`, `+ednsversion=N`, `+do` (each implies `+edns`), `+norec`
//! (RD clear; set by default like dig), `+cd`, `+class=CH`,
//! `+subnet=ADDRESS/LENGTH` (EDNS Client Subnet; the response's option
//! renders in `opt:` as `ecs=ADDRESS/SOURCE/SCOPE`, and an Extended DNS
//! Error as `ede=CODE` or `ede=CODE:"text"`),
//! `+opcode=STATUS|NOTIFY|UPDATE|N`.
//!
//! Owner names are compared case-insensitively unless the scenario says
//! `case: exact` (the case-preservation scenarios); the question and record
//! data are always compared exactly. A failure prints a diff naming the
//! file, line, scenario and transport; all failures of a file are listed.
//!
//! # Steering scenarios
//!
//! `tests/golden_steering/*.scn` run the same way against a second fixture,
//! `tests/fixtures/steering/`: its `steer.toml`, zones and map files are
//! copied to a temporary directory and its `geo.csv` is built there into the
//! `geo.mmdb` the config names, with `steer::geo::build` (the code behind
//! `steer geoip build`), so the database is always in step with its source.
//! Steered answers depend on who asks and on health, so these scenarios may
//! also say:
//!
//! ```text
//! drain: web-lon web-fra          <- pools drained for this scenario only
//! force: 198.51.100.11 down       <- an endpoint forced down (or up) for it
//! repeat: 40                      <- send the query 40 times per transport
//! answer-or:                      <- another acceptable answer section
//!     geo.steer.test. 30 IN A 198.51.100.21
//! ```
//!
//! Drains and overrides go through `steer::control::Control`, as the admin
//! API's do, and are undone after the scenario. With `answer-or:` blocks a
//! response may carry any one of the listed answer sections (everything
//! else must still match exactly); with `repeat: N` every one of the N
//! responses must, and each listed answer must come back at least once, so
//! a scenario shows both what can be answered and that it is.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use common::{Family, QueryOptions, SILENCE_TIMEOUT, TestServer, Transport};
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use steer::health::Forced;

/// A scenario directory and the server its scenarios run against.
struct FixtureSet {
    /// Where the `.scn` files are, relative to the crate root.
    scenario_dir: &'static str,
    /// What the server serves.
    server: ServerFixture,
}

enum ServerFixture {
    /// Only the `*.zone` files of this directory, with the default config.
    Zones(&'static str),
    /// This directory's `steer.toml`, zones and maps, and `geo.csv` built
    /// into `geo.mmdb`.
    Steering(&'static str),
}

/// The static zones: no steering.
const STATIC: FixtureSet = FixtureSet {
    scenario_dir: "tests/golden",
    server: ServerFixture::Zones("tests/fixtures/golden/zones"),
};

/// Steered names, located with a database built from a CSV.
const STEERING: FixtureSet = FixtureSet {
    scenario_dir: "tests/golden_steering",
    server: ServerFixture::Steering("tests/fixtures/steering"),
};

/// Header flags in the order they are rendered.
const FLAG_NAMES: [&str; 7] = ["qr", "aa", "tc", "rd", "ra", "ad", "cd"];

/// What a scenario sends.
#[derive(Clone, Debug)]
enum Request {
    /// A well-formed query built with hickory-proto.
    Query {
        name: String,
        record_type: RecordType,
    },
    /// Bytes sent as written.
    Raw(Vec<u8>),
}

/// One scenario as read from a file.
#[derive(Clone, Debug)]
struct Scenario {
    line: usize,
    title: String,
    request: Request,
    transports: Vec<Transport>,
    family: Family,
    query_options: QueryOptions,
    exact_case: bool,
    expected: Expected,
    /// Pools drained while the scenario runs.
    drained: Vec<String>,
    /// Endpoints forced up or down while the scenario runs.
    forced: Vec<(IpAddr, Forced)>,
    /// Times the query is sent per transport.
    repeat: usize,
}

/// The expected response, as written.
#[derive(Clone, Debug, Default)]
struct Expected {
    no_reply: bool,
    flags: Option<BTreeSet<usize>>,
    rcode: Option<u16>,
    opcode: Option<u8>,
    question: Option<Vec<String>>,
    opt: Option<String>,
    size: Option<usize>,
    sections: [Vec<String>; 3],
    /// `answer-or:` sections: answers accepted instead of `answer:`.
    alternative_answers: Vec<Vec<String>>,
}

/// Where an indented record line goes.
#[derive(Clone, Copy, Debug)]
enum RecordTarget {
    /// Answer, authority or additional (index into [`SECTION_NAMES`]).
    Section(usize),
    /// The last `answer-or:` block.
    Alternative,
}

const SECTION_NAMES: [&str; 3] = ["answer", "authority", "additional"];

fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        16 => "BADVERS".into(),
        other => other.to_string(),
    }
}

fn parse_rcode(text: &str) -> Result<u16, String> {
    (0..=4095u16)
        .find(|&code| rcode_name(code) == text.to_ascii_uppercase())
        .ok_or_else(|| format!("unknown rcode {text:?}"))
}

fn opcode_name(opcode: u8) -> String {
    match opcode {
        0 => "QUERY".into(),
        2 => "STATUS".into(),
        4 => "NOTIFY".into(),
        5 => "UPDATE".into(),
        other => other.to_string(),
    }
}

fn parse_opcode(text: &str) -> Result<u8, String> {
    (0..16u8)
        .find(|&code| opcode_name(code) == text.to_ascii_uppercase())
        .ok_or_else(|| format!("unknown opcode {text:?}"))
}

fn parse_record_type(text: &str) -> Result<RecordType, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("TYPE") {
        let code: u16 = number.parse().map_err(|_| format!("bad type {text:?}"))?;
        return Ok(RecordType::from(code));
    }
    // hickory-proto displays IXFR but does not parse the name.
    if upper == "IXFR" {
        return Ok(RecordType::IXFR);
    }
    RecordType::from_str(&upper).map_err(|error| format!("bad type {text:?}: {error}"))
}

fn parse_class(text: &str) -> Result<DNSClass, String> {
    if let Ok(number) = text.parse::<u16>() {
        return Ok(DNSClass::from(number));
    }
    DNSClass::from_str(&text.to_ascii_uppercase())
        .map_err(|error| format!("bad class {text:?}: {error}"))
}

/// Applies one `+option`; returns an error for an unknown one.
fn apply_option(scenario: &mut Scenario, option: &str) -> Result<(), String> {
    let (key, value) = match option.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (option, None),
    };
    let number = |value: Option<&str>| -> Result<u16, String> {
        value
            .ok_or_else(|| format!("{key} needs a value"))?
            .parse()
            .map_err(|_| format!("bad value in {option}"))
    };
    let options = &mut scenario.query_options;
    match key {
        "+udp" => scenario.transports = vec![Transport::Udp],
        "+tcp" => scenario.transports = vec![Transport::Tcp],
        "+v6" => scenario.family = Family::V6,
        "+edns" => options.edns = true,
        "+bufsize" => {
            options.edns = true;
            options.payload_size = number(value)?;
        }
        "+ednsversion" => {
            options.edns = true;
            options.edns_version =
                u8::try_from(number(value)?).map_err(|_| format!("bad value in {option}"))?;
        }
        "+do" => {
            options.edns = true;
            options.dnssec_ok = true;
        }
        "+subnet" => {
            let value = value.ok_or("+subnet needs ADDRESS/LENGTH")?;
            let (address, length) = value
                .split_once('/')
                .ok_or_else(|| format!("+subnet={value}: expected ADDRESS/LENGTH"))?;
            let address = address
                .parse()
                .map_err(|error| format!("+subnet={value}: {error}"))?;
            let length = length
                .parse()
                .map_err(|error| format!("+subnet={value}: {error}"))?;
            options.client_subnet = Some((address, length));
            options.edns = true;
        }
        "+norec" => options.recursion_desired = false,
        "+cd" => options.checking_disabled = true,
        "+class" => options.class = parse_class(value.ok_or("+class needs a value")?)?,
        "+opcode" => {
            options.op_code = OpCode::from_u8(parse_opcode(value.ok_or("+opcode needs a value")?)?);
        }
        _ => return Err(format!("unknown option {option:?}")),
    }
    Ok(())
}

fn parse_hex(tokens: &[&str]) -> Result<Vec<u8>, String> {
    let digits: String = tokens.concat();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {digits:?}"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|at| {
            u8::from_str_radix(&digits[at..at + 2], 16).map_err(|_| format!("bad hex {digits:?}"))
        })
        .collect()
}

/// Normalizes a written record line: single spaces between owner, TTL,
/// class and type; rdata kept as written (trimmed).
fn normalize_record(line: &str) -> Result<String, String> {
    let mut rest = line.trim();
    let mut fields = Vec::new();
    for _ in 0..4 {
        let (field, tail) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("record needs owner, TTL, class, type and data: {line:?}"))?;
        fields.push(field);
        rest = tail.trim_start();
    }
    fields[1]
        .parse::<u32>()
        .map_err(|_| format!("bad TTL in {line:?}"))?;
    Ok(format!("{} {}", fields.join(" "), rest))
}

fn parse_file(text: &str) -> Result<Vec<Scenario>, String> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut section: Option<RecordTarget> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line_number = index + 1;
        let error = |message: String| format!("line {line_number}: {message}");
        if raw_line.trim().is_empty() || raw_line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(title) = raw_line.strip_prefix("===") {
            let title = title.trim();
            if title.is_empty() {
                return Err(error("scenario without a title".into()));
            }
            if scenarios.iter().any(|known| known.title == title) {
                return Err(error(format!("duplicate scenario title {title:?}")));
            }
            scenarios.push(Scenario {
                line: line_number,
                title: title.to_owned(),
                request: Request::Raw(Vec::new()),
                transports: vec![Transport::Udp, Transport::Tcp],
                family: Family::V4,
                query_options: QueryOptions::default(),
                exact_case: false,
                expected: Expected::default(),
                drained: Vec::new(),
                forced: Vec::new(),
                repeat: 1,
            });
            section = None;
            continue;
        }
        let Some(scenario) = scenarios.last_mut() else {
            return Err(error("text before the first === scenario".into()));
        };
        if raw_line.starts_with(char::is_whitespace) {
            let Some(target) = section else {
                return Err(error(
                    "indented record outside answer/authority/additional".into(),
                ));
            };
            let record = normalize_record(raw_line).map_err(error)?;
            match target {
                RecordTarget::Section(part) => scenario.expected.sections[part].push(record),
                RecordTarget::Alternative => {
                    if let Some(alternative) = scenario.expected.alternative_answers.last_mut() {
                        alternative.push(record);
                    }
                }
            }
            continue;
        }
        section = None;
        let (directive, value) = raw_line
            .split_once(':')
            .ok_or_else(|| error(format!("expected \"directive: value\", got {raw_line:?}")))?;
        let value = value.trim();
        let tokens: Vec<&str> = value.split_whitespace().collect();
        match directive.trim() {
            "query" => {
                let (options, words): (Vec<&str>, Vec<&str>) =
                    tokens.iter().partition(|token| token.starts_with('+'));
                let [name, record_type] = words[..] else {
                    return Err(error(format!("query needs a name and a type: {value:?}")));
                };
                if !name.ends_with('.') {
                    return Err(error(format!(
                        "query name {name:?} must be absolute (end in a dot)"
                    )));
                }
                scenario.request = Request::Query {
                    name: name.to_owned(),
                    record_type: parse_record_type(record_type).map_err(error)?,
                };
                for option in options {
                    apply_option(scenario, option).map_err(error)?;
                }
            }
            "raw" => {
                let (options, hex): (Vec<&str>, Vec<&str>) =
                    tokens.iter().partition(|token| token.starts_with('+'));
                scenario.request = Request::Raw(parse_hex(&hex).map_err(error)?);
                for option in options {
                    apply_option(scenario, option).map_err(error)?;
                }
            }
            "reply" if value == "none" => scenario.expected.no_reply = true,
            "flags" => {
                let mut flags = BTreeSet::new();
                for token in tokens {
                    let position = FLAG_NAMES
                        .iter()
                        .position(|flag| *flag == token)
                        .ok_or_else(|| error(format!("unknown flag {token:?}")))?;
                    flags.insert(position);
                }
                scenario.expected.flags = Some(flags);
            }
            "rcode" => scenario.expected.rcode = Some(parse_rcode(value).map_err(error)?),
            "opcode" => scenario.expected.opcode = Some(parse_opcode(value).map_err(error)?),
            "question" => {
                let question = if value == "none" {
                    Vec::new()
                } else {
                    let [name, class, record_type] = tokens[..] else {
                        return Err(error(format!("question needs NAME CLASS TYPE: {value:?}")));
                    };
                    let class = parse_class(class).map_err(error)?;
                    let record_type = parse_record_type(record_type).map_err(error)?;
                    vec![format!("{name} {class} {record_type}")]
                };
                scenario.expected.question = Some(question);
            }
            "opt" => scenario.expected.opt = Some(tokens.join(" ")),
            "size" => {
                let size = value
                    .parse()
                    .map_err(|_| error(format!("size needs a byte count: {value:?}")))?;
                scenario.expected.size = Some(size);
            }
            "case" if value == "exact" => scenario.exact_case = true,
            name if SECTION_NAMES.contains(&name) && value.is_empty() => {
                section = SECTION_NAMES
                    .iter()
                    .position(|known| *known == name)
                    .map(RecordTarget::Section);
            }
            "answer-or" if value.is_empty() => {
                scenario.expected.alternative_answers.push(Vec::new());
                section = Some(RecordTarget::Alternative);
            }
            "drain" if !tokens.is_empty() => {
                scenario
                    .drained
                    .extend(tokens.iter().map(|pool| (*pool).to_owned()));
            }
            "force" => {
                let [address, state] = tokens[..] else {
                    return Err(error(format!("force needs ADDRESS up|down: {value:?}")));
                };
                let address: IpAddr = address
                    .parse()
                    .map_err(|_| error(format!("force: bad address {address:?}")))?;
                let forced = match state {
                    "up" => Forced::Up,
                    "down" => Forced::Down,
                    other => return Err(error(format!("force: {other:?} is not up or down"))),
                };
                scenario.forced.push((address, forced));
            }
            "repeat" => {
                scenario.repeat = value
                    .parse()
                    .ok()
                    .filter(|&count| count > 0)
                    .ok_or_else(|| error(format!("repeat needs a count above 0: {value:?}")))?;
            }
            other => {
                return Err(error(format!(
                    "unknown directive {other:?} (value {value:?})"
                )));
            }
        }
    }
    for scenario in &scenarios {
        let missing = |what: &str| {
            format!(
                "line {}: scenario {:?} has no {what}",
                scenario.line, scenario.title
            )
        };
        if matches!(&scenario.request, Request::Raw(bytes) if bytes.is_empty()) {
            return Err(missing("query: or raw:"));
        }
        if !scenario.expected.no_reply {
            if scenario.expected.flags.is_none() {
                return Err(missing("flags:"));
            }
            if scenario.expected.rcode.is_none() {
                return Err(missing("rcode:"));
            }
        }
    }
    Ok(scenarios)
}

/// Renders TXT data as zone-file strings; other data as hickory shows it.
fn render_rdata(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|string| {
                let text = String::from_utf8_lossy(string);
                format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
            })
            .collect::<Vec<_>>()
            .join(" "),
        // hickory has no DNAME type: its data is the target, uncompressed
        // (RFC 6672 §2.5), shown as a name.
        RData::Unknown { code, rdata } if *code == hickory_proto::rr::RecordType::DNAME => {
            steer::table::display_wire_name(&rdata.anything)
        }
        other => other.to_string(),
    }
}

fn render_record(record: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        record.name.to_ascii(),
        record.ttl,
        record.dns_class,
        record.record_type(),
        render_rdata(&record.data)
    )
}

/// The response (or the expectation) in the scenario format, one item per
/// line, so that a mismatch reads as a diff.
fn render(
    flags: &BTreeSet<usize>,
    rcode: u16,
    opcode: u8,
    question: &[String],
    opt: &str,
    sections: &[Vec<String>; 3],
    exact_case: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    let flag_names: Vec<&str> = flags.iter().map(|&flag| FLAG_NAMES[flag]).collect();
    lines.push(format!("flags: {}", flag_names.join(" ")));
    lines.push(format!("rcode: {}", rcode_name(rcode)));
    lines.push(format!("opcode: {}", opcode_name(opcode)));
    if question.is_empty() {
        lines.push("question: none".into());
    }
    for entry in question {
        lines.push(format!("question: {entry}"));
    }
    lines.push(format!("opt: {opt}"));
    for (part, records) in sections.iter().enumerate() {
        lines.push(format!("{}:", SECTION_NAMES[part]));
        for record in records {
            let record = match (exact_case, record.split_once(' ')) {
                (false, Some((owner, rest))) => format!("{} {rest}", owner.to_ascii_lowercase()),
                _ => record.clone(),
            };
            lines.push(format!("    {record}"));
        }
    }
    lines
}

fn render_response(response: &Message, exact_case: bool) -> Vec<String> {
    let metadata = &response.metadata;
    let set = [
        metadata.message_type == hickory_proto::op::MessageType::Response,
        metadata.authoritative,
        metadata.truncation,
        metadata.recursion_desired,
        metadata.recursion_available,
        metadata.authentic_data,
        metadata.checking_disabled,
    ];
    let flags = (0..FLAG_NAMES.len()).filter(|&flag| set[flag]).collect();
    let question: Vec<String> = response
        .queries
        .iter()
        .map(|query| {
            format!(
                "{} {} {}",
                query.name().to_ascii(),
                query.query_class(),
                query.query_type()
            )
        })
        .collect();
    let opt = match &response.edns {
        None => "none".to_owned(),
        Some(edns) => {
            let mut text = format!("payload={} version={}", edns.max_payload(), edns.version());
            if edns.flags().dnssec_ok {
                text.push_str(" do");
            }
            for (_, option) in &edns.options().options {
                match option {
                    hickory_proto::rr::rdata::opt::EdnsOption::Subnet(subnet) => {
                        let _ = write!(
                            text,
                            " ecs={}/{}/{}",
                            subnet.addr(),
                            subnet.source_prefix(),
                            subnet.scope_prefix()
                        );
                    }
                    // Extended DNS Error (RFC 8914): INFO-CODE, then text.
                    hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data)
                        if data.len() >= 2 =>
                    {
                        let _ = write!(text, " ede={}", u16::from_be_bytes([data[0], data[1]]));
                        if data.len() > 2 {
                            let _ = write!(text, ":{:?}", String::from_utf8_lossy(&data[2..]));
                        }
                    }
                    other => {
                        let _ = write!(text, " option={other:?}");
                    }
                }
            }
            text
        }
    };
    let sections = [
        response.answers.iter().map(render_record).collect(),
        response.authorities.iter().map(render_record).collect(),
        response.additionals.iter().map(render_record).collect(),
    ];
    render(
        &flags,
        u16::from(metadata.response_code),
        u8::from(metadata.op_code),
        &question,
        &opt,
        &sections,
        exact_case,
    )
}

/// A line diff (longest common subsequence) of expected and actual.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (rows, columns) = (expected.len(), actual.len());
    let mut common = vec![vec![0usize; columns + 1]; rows + 1];
    for row in (0..rows).rev() {
        for column in (0..columns).rev() {
            common[row][column] = if expected[row] == actual[column] {
                common[row + 1][column + 1] + 1
            } else {
                common[row + 1][column].max(common[row][column + 1])
            };
        }
    }
    let mut output = String::from("    --- expected\n    +++ actual\n");
    let (mut row, mut column) = (0, 0);
    while row < rows || column < columns {
        if row < rows && column < columns && expected[row] == actual[column] {
            let _ = writeln!(output, "      {}", expected[row]);
            row += 1;
            column += 1;
        } else if column < columns
            && (row == rows || common[row][column + 1] > common[row + 1][column])
        {
            let _ = writeln!(output, "    + {}", actual[column]);
            column += 1;
        } else {
            let _ = writeln!(output, "    - {}", expected[row]);
            row += 1;
        }
    }
    output
}

/// Builds the packet for one run of a scenario; returns it with its id,
/// opcode and the question the response should echo by default.
fn packet_for(scenario: &Scenario) -> (Vec<u8>, u16, u8, Vec<String>) {
    match &scenario.request {
        Request::Query { name, record_type } => {
            let message = common::build_query(name, *record_type, &scenario.query_options);
            let packet = message.to_vec().expect("scenario query encodes");
            let question = format!("{name} {} {record_type}", scenario.query_options.class);
            (
                packet,
                message.metadata.id,
                u8::from(scenario.query_options.op_code),
                vec![question],
            )
        }
        Request::Raw(bytes) => {
            let id = match bytes[..] {
                [high, low, ..] => u16::from_be_bytes([high, low]),
                _ => 0,
            };
            let opcode = bytes.get(2).map_or(0, |byte| (byte >> 3) & 0x0F);
            (bytes.clone(), id, opcode, Vec::new())
        }
    }
}

/// Runs one scenario over one transport; returns a failure report.
async fn run_one(
    server: &TestServer,
    scenario_dir: &str,
    file: &str,
    scenario: &Scenario,
    transport: Transport,
) -> Option<String> {
    let (packet, id, opcode, default_question) = packet_for(scenario);
    let address = server.dns_addr(transport, scenario.family);
    let heading = format!(
        "{scenario_dir}/{file}:{}: scenario {:?} over {transport}/{}",
        scenario.line, scenario.title, scenario.family
    );
    let expected = &scenario.expected;
    if expected.no_reply {
        return common::exchange(transport, address, &packet, SILENCE_TIMEOUT)
            .await
            .map(|reply| format!("{heading}: expected no reply, got {reply:02x?}"));
    }
    // Every acceptable response: the answer section as written, then each
    // `answer-or:` block in its place.
    let mut sections = expected.sections.clone();
    let mut accepted = Vec::new();
    for answer in std::iter::once(&expected.sections[0]).chain(&expected.alternative_answers) {
        sections[0].clone_from(answer);
        accepted.push(render(
            expected.flags.as_ref().expect("checked at parse time"),
            expected.rcode.expect("checked at parse time"),
            expected.opcode.unwrap_or(opcode),
            expected.question.as_ref().unwrap_or(&default_question),
            expected.opt.as_deref().unwrap_or("none"),
            &sections,
            scenario.exact_case,
        ));
    }
    let mut seen = vec![false; accepted.len()];
    for attempt in 1..=scenario.repeat {
        let heading = if scenario.repeat > 1 {
            format!("{heading}, query {attempt} of {}", scenario.repeat)
        } else {
            heading.clone()
        };
        let mut reply = None;
        // Loopback UDP hardly ever loses a datagram, but a retry keeps a
        // loaded CI machine from failing the suite.
        for _ in 0..3 {
            reply = common::exchange(transport, address, &packet, common::REPLY_TIMEOUT).await;
            if reply.is_some() {
                break;
            }
        }
        let Some(reply) = reply else {
            return Some(format!("{heading}: no reply"));
        };
        let response = match Message::from_vec(&reply) {
            Ok(response) => response,
            Err(error) => {
                return Some(format!(
                    "{heading}: reply does not parse ({error}): {reply:02x?}"
                ));
            }
        };
        let mut problems = String::new();
        if let Some(size) = expected.size
            && reply.len() != size
        {
            let _ = writeln!(
                problems,
                "    size: expected {size} bytes, got {}",
                reply.len()
            );
        }
        if response.metadata.id != id {
            let _ = writeln!(
                problems,
                "    id {} does not echo the query id {id}",
                response.metadata.id
            );
        }
        let actual_lines = render_response(&response, scenario.exact_case);
        match accepted.iter().position(|lines| *lines == actual_lines) {
            Some(index) => seen[index] = true,
            None => {
                if accepted.len() > 1 {
                    let _ = writeln!(
                        problems,
                        "    none of the {} accepted answers; the diff is against the first",
                        accepted.len()
                    );
                }
                problems.push_str(&diff(&accepted[0], &actual_lines));
            }
        }
        if !problems.is_empty() {
            return Some(format!("{heading}:\n{problems}"));
        }
    }
    if scenario.repeat > 1
        && let Some(unseen) = seen.iter().position(|seen| !seen)
    {
        let answer = if unseen == 0 {
            &expected.sections[0]
        } else {
            &expected.alternative_answers[unseen - 1]
        };
        return Some(format!(
            "{heading}: this answer never came back in {} queries:\n    {}",
            scenario.repeat,
            answer.join("\n    ")
        ));
    }
    None
}

/// Starts the server a fixture set's scenarios run against.
async fn start_server(set: &FixtureSet) -> TestServer {
    match set.server {
        ServerFixture::Zones(zones) => TestServer::start_with_fixture(zones).await,
        ServerFixture::Steering(fixture) => start_steering(fixture).await,
    }
}

/// Copies the steering fixture to a temporary directory, builds its
/// database there and starts the server on its config.
async fn start_steering(fixture: &str) -> TestServer {
    let directory = tempfile::tempdir().expect("temporary directory");
    common::copy_steering_fixture(fixture, directory.path());
    let config = directory.path().join("steer.toml");
    let running = tokio::time::timeout(Duration::from_secs(20), steer::server::start(&config))
        .await
        .expect("server started within 20 s")
        .unwrap_or_else(|error| panic!("server failed to start: {error}"));
    TestServer {
        directory,
        running: Some(running),
    }
}

/// Applies (or, with `undo`, clears) a scenario's drains and overrides.
async fn set_health(server: &TestServer, scenario: &Scenario, undo: bool) {
    let control = &server.running().control;
    for pool in &scenario.drained {
        control
            .set_drained(pool, !undo)
            .await
            .unwrap_or_else(|error| panic!("scenario {:?}: drain: {error}", scenario.title));
    }
    for &(address, forced) in &scenario.forced {
        control
            .force_endpoint(address, (!undo).then_some(forced))
            .await
            .unwrap_or_else(|error| panic!("scenario {:?}: force: {error}", scenario.title));
    }
}

/// Runs every scenario of one file against a fresh server.
async fn run_file(set: &FixtureSet, file: &str) {
    let scenario_dir = set.scenario_dir;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(scenario_dir)
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let scenarios =
        parse_file(&text).unwrap_or_else(|error| panic!("{scenario_dir}/{file}: {error}"));
    assert!(
        !scenarios.is_empty(),
        "{scenario_dir}/{file} has no scenarios"
    );
    let server = start_server(set).await;
    let mut failures = Vec::new();
    for scenario in &scenarios {
        set_health(&server, scenario, false).await;
        for &transport in &scenario.transports {
            if let Some(failure) = run_one(&server, scenario_dir, file, scenario, transport).await {
                failures.push(failure);
            }
        }
        set_health(&server, scenario, true).await;
    }
    server.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} of {} scenario runs in {scenario_dir}/{file} failed:\n\n{}",
        failures.len(),
        scenarios
            .iter()
            .map(|scenario| scenario.transports.len())
            .sum::<usize>(),
        failures.join("\n")
    );
}

/// One test per scenario file, so a failure names its topic.
macro_rules! golden_files {
    ($set:ident, $list:ident: $($test:ident => $file:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run_file(&$set, $file).await;
            }
        )*

        const $list: &[&str] = &[$($file),*];
    };
}

golden_files! {
    STATIC, SCENARIO_FILES:
    positive => "positive.scn",
    negative => "negative.scn",
    cname => "cname.scn",
    wildcard => "wildcard.scn",
    delegation => "delegation.scn",
    refused => "refused.scn",
    errors => "errors.scn",
    edns => "edns.scn",
    truncation => "truncation.scn",
    any => "any.scn",
    case_preservation => "case.scn",
    ipv6 => "ipv6.scn",
    client_subnet => "ecs.scn",
}

golden_files! {
    STEERING, STEERING_SCENARIO_FILES:
    steering_geo => "geo.scn",
    steering_geofence => "geofence.scn",
    steering_cidr => "cidr.scn",
    steering_asn => "asn.scn",
    steering_nearest => "nearest.scn",
    steering_health => "health.scn",
    steering_selection => "selection.scn",
    steering_cname => "cname.scn",
    steering_types => "types.scn",
    steering_client_subnet => "ecs.scn",
    steering_route53 => "route53.scn",
}

/// A new `.scn` file that is not listed above would silently never run.
#[test]
fn every_scenario_file_is_run() {
    for (set, files) in [
        (&STATIC, SCENARIO_FILES),
        (&STEERING, STEERING_SCENARIO_FILES),
    ] {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join(set.scenario_dir);
        let mut on_disk: Vec<String> = std::fs::read_dir(&directory)
            .expect("scenario directory")
            .map(|entry| {
                entry
                    .expect("directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".scn"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = files.iter().map(|name| (*name).to_owned()).collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "{}/*.scn and its golden_files! list differ",
            set.scenario_dir
        );
    }
}

/// The parser must reject what it does not understand, or a typo in a
/// scenario would silently expect nothing.
#[test]
fn scenario_parser_rejects_mistakes() {
    let valid = "=== ok\nquery: www.example.test. A +edns\nflags: qr aa rd\nrcode: NOERROR\nanswer:\n    www.example.test. 300 IN A 192.0.2.1\n";
    let scenarios = parse_file(valid).expect("valid scenario parses");
    assert_eq!(scenarios.len(), 1);
    assert_eq!(
        scenarios[0].expected.sections[0],
        ["www.example.test. 300 IN A 192.0.2.1"]
    );
    assert!(scenarios[0].query_options.edns);
    for (broken, why) in [
        (
            "=== a\nquery: www.example.test. A +bogus\nflags: qr\nrcode: NOERROR\n",
            "unknown option",
        ),
        (
            "=== a\nquery: www.example.test. A\nflag: qr\nrcode: NOERROR\n",
            "unknown directive",
        ),
        (
            "=== a\nquery: www.example.test. A\nflags: qr xx\nrcode: NOERROR\n",
            "unknown flag",
        ),
        (
            "=== a\nquery: www.example.test. A\nrcode: NOERROR\n",
            "missing flags",
        ),
        (
            "=== a\nquery: www.example.test. A\nflags: qr\nrcode: NOERROR\n    www.example.test. 1 IN A 192.0.2.1\n",
            "record outside a section",
        ),
        (
            "=== a\nquery: www.example.test. A\nflags: qr\nrcode: NOERROR\nanswer:\n    www.example.test. IN A 192.0.2.1\n",
            "record without TTL",
        ),
        (
            "=== a\nquery: www.example.test A\nflags: qr\nrcode: NOERROR\n",
            "relative name",
        ),
        ("=== a\nraw: 12 3\nflags: qr\nrcode: FORMERR\n", "odd hex"),
        (
            "=== a\nquery: a. A\nflags: qr\nrcode: NOERROR\n=== a\nquery: a. A\nflags: qr\nrcode: NOERROR\n",
            "duplicate title",
        ),
        (
            "=== a\nquery: a. A\nflags: qr\nrcode: NOERROR\nforce: 192.0.2.1 sideways\n",
            "force state other than up or down",
        ),
        (
            "=== a\nquery: a. A\nflags: qr\nrcode: NOERROR\nforce: web-lon down\n",
            "force without an address",
        ),
        (
            "=== a\nquery: a. A\nflags: qr\nrcode: NOERROR\nrepeat: 0\n",
            "repeat of zero",
        ),
        (
            "=== a\nquery: a. A\nflags: qr\nrcode: NOERROR\ndrain:\n",
            "drain without a pool",
        ),
    ] {
        assert!(
            parse_file(broken).is_err(),
            "{why}: {broken:?} was accepted"
        );
    }
}

/// The steering directives: drains, overrides, repeats and alternative
/// answers all reach the scenario.
#[test]
fn scenario_parser_reads_the_steering_directives() {
    let text = "=== weighted\nquery: w.steer.test. A +subnet=20.2.0.0/24\nflags: qr aa rd\nrcode: NOERROR\n\
                drain: blue green\nforce: 203.0.113.9 up\nrepeat: 40\nanswer:\n    w.steer.test. 30 IN A 203.0.113.1\n\
                answer-or:\n    w.steer.test. 30 IN A 203.0.113.2\nanswer-or:\n    w.steer.test. 30 IN A 203.0.113.3\n\
                authority:\n";
    let scenarios = parse_file(text).expect("valid scenario parses");
    let scenario = &scenarios[0];
    assert_eq!(scenario.drained, ["blue", "green"]);
    assert_eq!(
        scenario.forced,
        [(
            "203.0.113.9".parse::<IpAddr>().expect("address"),
            Forced::Up
        )]
    );
    assert_eq!(scenario.repeat, 40);
    assert_eq!(
        scenario.expected.sections[0],
        ["w.steer.test. 30 IN A 203.0.113.1"]
    );
    assert_eq!(
        scenario.expected.alternative_answers,
        [
            vec!["w.steer.test. 30 IN A 203.0.113.2".to_owned()],
            vec!["w.steer.test. 30 IN A 203.0.113.3".to_owned()],
        ]
    );
    assert!(scenario.expected.sections[1].is_empty());
}

/// The diff must show what differs, or a failure would be unreadable.
#[test]
fn diff_marks_missing_and_extra_lines() {
    let expected: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let actual: Vec<String> = ["a", "x", "c"].map(String::from).to_vec();
    let text = diff(&expected, &actual);
    assert!(text.contains("    - b\n"), "{text}");
    assert!(text.contains("    + x\n"), "{text}");
    assert!(
        text.contains("      a\n") && text.contains("      c\n"),
        "{text}"
    );
}
