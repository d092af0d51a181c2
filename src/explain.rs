//! Why a query gets the answer it gets: `steer explain` and `GET /explain`.
//!
//! One implementation for both. [`explain`] takes a generation as
//! [`Serving`] holds it (the CLI builds one like `check`; the admin API
//! takes the live one, with current health and admin state) and a question
//! as an operator types it: name, type, and the client as `ADDR` or
//! `ADDR/LEN`. It reports the client network the table decides on (an
//! `ADDR/LEN` is treated as an EDNS Client Subnet and truncated to the
//! `[ecs]` maximum, as the data plane does; a bare address is a query's
//! source address, used whole), where the GeoIP database places it, each
//! policy step with its input and output pools, and the answer itself.
//! The answer is not predicted: a real query packet is built and passed
//! through [`crate::dns::respond`], the data plane's own code, and the
//! response is decoded, so explain cannot drift from what is served. A
//! `weighted` step is random, so that answer is one draw among many, and
//! the explanation says so. Nothing here is on the query path.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record, RecordType};
use serde::Serialize;

use crate::control::Serving;
use crate::dns::{Outcome as Reply, Transport};
use crate::health::Forced;
use crate::latency::explain::{LatencyTrace, client_sources};
use crate::table::{CompiledPolicy, Lookup, wire_lower};

/// Why a question could not be explained.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The name is not a valid domain name.
    #[error("invalid name {0:?}: {1}")]
    BadName(String, String),
    /// The type is neither a known mnemonic nor `TYPEnnn`.
    #[error(
        "unknown record type {0:?}: use a mnemonic such as A, AAAA, CNAME, MX, TXT, or TYPE<number>"
    )]
    UnknownType(String),
    /// The client is not `ADDR` or `ADDR/LEN`.
    #[error("invalid client {0:?}: {1}")]
    BadClient(String, String),
    /// The data plane gave no readable response; a bug, not an input error.
    #[error("the query for the explanation got no readable response: {0}")]
    NoResponse(String),
}

impl ExplainError {
    /// True when the question was wrong (HTTP 400), false for a server fault.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Self::NoResponse(_))
    }
}

/// How the table treats the name and type asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// Answered per query by a `[[steer]]` policy.
    Steered,
    /// Answered from the zone files, the same for every client.
    Static,
    /// In none of the zones served: REFUSED.
    NotServed,
    /// A type no name is answered for (zone transfers, OPT, MAILA/MAILB).
    UnsupportedType,
}

/// The whole explanation; serialized as `/explain`'s JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The name asked about, absolute.
    pub name: String,
    /// The type asked about.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Generation of the table that answered.
    pub generation: u64,
    /// How the name is served.
    pub served: Served,
    /// One sentence saying so.
    pub summary: String,
    /// The client network the table decided on.
    pub client: ClientNetwork,
    /// Where the GeoIP database places the client (steered names with a
    /// `[geoip]` database only).
    pub location: Option<LocationFound>,
    /// The policy, step by step (steered names only).
    pub policy: Option<PolicyTrace>,
    /// The response the data plane gives.
    pub answer: AnswerFound,
    /// Drains and overrides in force.
    pub admin: AdminOverrides,
    /// Anything else worth knowing.
    pub notes: Vec<String>,
}

/// The client as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientNetwork {
    /// As given.
    pub given: String,
    /// `81.2.69.0/24`: the network address and the bits used.
    pub network: String,
    /// The network address the table is searched with.
    pub address: IpAddr,
    /// Bits of it that are used.
    pub prefix_len: u8,
    /// True when sent as an EDNS Client Subnet option; false when used as
    /// the query's source address.
    pub ecs: bool,
    /// How the network was derived.
    pub detail: String,
    /// The query's ECS option (address masked to its source prefix), or
    /// the source address with all its bits.
    #[serde(skip)]
    ecs_source: (IpAddr, u8),
}

/// Where the GeoIP database places the client's network address.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocationFound {
    /// The database files, with type and build date.
    pub database: String,
    /// False when the database has nothing for the address.
    pub found: bool,
    /// ISO country code.
    pub country: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// ISO 3166-2 subdivision code, without the country.
    pub subdivision: Option<String>,
    /// Latitude and longitude in degrees.
    pub coordinates: Option<[f64; 2]>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Prefix length of the database network that holds the address.
    pub prefix_len: u8,
    /// That network, `81.2.69.0/24`.
    pub database_network: String,
    /// The database fields read and their raw values.
    pub fields: Vec<FieldValue>,
}

/// One database field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldValue {
    /// Its path in the record (`country.iso_code`).
    pub path: String,
    /// Its raw value.
    pub value: String,
}

/// A steered name's policy for this client.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyTrace {
    /// `www.example.test. A`.
    pub label: String,
    /// Candidate pools, in order.
    pub pools: Vec<String>,
    /// What `healthy` falls back to when it leaves nothing.
    pub when_all_down: String,
    /// Location steps, which run first wherever they are written (their
    /// results are compiled into the table's prefix maps).
    pub location_steps: Vec<LocationStep>,
    /// Per-query steps with the current health, and the answer pools.
    pub per_query: DynamicTrace,
}

/// One location step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocationStep {
    /// Step name as written.
    pub step: String,
    /// What it matched (`continent EU`, `prefix 10.0.0.0/8`, `no match`;
    /// for `latency`, the source that decided: `matrix 100.64.0.0/16 (line
    /// 2)`, or `no latency data: by distance`).
    pub matched: String,
    /// Pools before the step.
    pub input: Vec<String>,
    /// Pools after it.
    pub output: Vec<String>,
    /// A `latency` step's data: the RTT of each pool at the source that
    /// decided, with samples and age or matrix line, and the sources
    /// passed over (absent for other steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyTrace>,
}

/// The response, decoded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnswerFound {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, ...
    pub rcode: String,
    /// The AA flag.
    pub authoritative: bool,
    /// Answer section.
    pub records: Vec<RecordFound>,
    /// Authority section (SOA of a negative answer, NS of a referral).
    pub authority: Vec<RecordFound>,
    /// Additional section (glue), without the OPT record.
    pub additional: Vec<RecordFound>,
    /// The ECS scope prefix the answer is valid for (0: every client).
    pub scope: Option<u8>,
    /// TTL of the first answer record, else of the first authority record.
    pub ttl: Option<u32>,
    /// True when the answer is one random draw (a `weighted` step).
    pub random: bool,
}

/// One record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordFound {
    /// Owner name.
    pub name: String,
    /// Type mnemonic.
    #[serde(rename = "type")]
    pub record_type: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Record data in zone-file form.
    pub data: String,
}

/// Drains and overrides in force when the question was explained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AdminOverrides {
    /// Drained pools.
    pub drained: Vec<String>,
    /// Addresses forced up or down.
    pub forced: Vec<ForcedAddress>,
}

/// One forced address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForcedAddress {
    /// The address.
    pub address: IpAddr,
    /// `up` or `down`.
    pub forced: Forced,
}

/// What [`CompiledPolicy::explain_dynamic`] predicts `select` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Records from the answer pools.
    Records,
    /// The zone's NODATA.
    #[serde(rename = "nodata")]
    NoData,
    /// SERVFAIL (`when_all_down = "servfail"`).
    #[serde(rename = "servfail")]
    ServFail,
}

/// The per-query steps for one client, step by step (explain's view).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DynamicTrace {
    /// The compiled decision for the client's network: the ordered
    /// candidates the location steps left, as the prefix map holds them.
    pub decision: Vec<String>,
    /// Each per-query step, in order.
    pub steps: Vec<DynamicStepTrace>,
    /// The pools the answer is taken from, with every endpoint.
    pub answer_pools: Vec<PoolTrace>,
    /// Most records answered, when a `first` step limits them.
    pub limit: Option<usize>,
    /// What `select` answers.
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: String,
    /// True when a `weighted` step chose: another query may get another
    /// pool and another order.
    pub random: bool,
}

/// One per-query step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DynamicStepTrace {
    /// Step name as written in the config.
    pub step: &'static str,
    /// Pools before the step.
    pub input: Vec<String>,
    /// Pools after it.
    pub output: Vec<String>,
    /// What it did and why.
    pub detail: String,
    /// True when the output is a random draw (this one, not the answer's).
    pub random: bool,
}

/// A pool the answer is taken from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolTrace {
    /// Pool id.
    pub pool: String,
    /// Its endpoints in configured order.
    pub endpoints: Vec<EndpointTrace>,
}

/// One endpoint of an answer pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointTrace {
    /// The address, or the CNAME target.
    pub value: String,
    /// Weight among the pool's endpoints.
    pub weight: u32,
    /// Whether health lets answers use it now.
    pub up: bool,
    /// Whether the answer includes it (in configured order; a `weighted`
    /// step shuffles the order, so with `first` the subset varies).
    pub answered: bool,
}

// Record types the data plane answers without looking at names
// (`dns::respond` refuses or rejects them first).
use crate::dns::wire::{TYPE_ANY, TYPE_AXFR, TYPE_IXFR, TYPE_MAILA, TYPE_MAILB, TYPE_OPT};
use crate::unix_now;

/// EDNS payload size of the query explain sends; only the OPT record's
/// presence matters (the query goes "over TCP", which is never truncated).
const EXPLAIN_PAYLOAD: u16 = 1232;

/// Explains how `serving` answers `name` `record_type` for `client`
/// (`ADDR` or `ADDR/LEN`).
pub fn explain(
    serving: &Serving,
    name: &str,
    record_type: &str,
    client: &str,
) -> Result<Explanation, ExplainError> {
    let owner = parse_name(name)?;
    let (type_name, qtype) = parse_type(record_type)?;
    let table = &*serving.table;
    let client = parse_client(client, table.ecs_limits())?;
    let mut notes = Vec::new();

    let answer = query(serving, &owner, qtype, &client)?;
    let owner_text = owner.to_string();
    let mut served = Served::Static;
    let mut location = None;
    let mut policy = None;
    let mut scope = Some(0);
    let summary;
    if matches!(
        qtype,
        TYPE_OPT | TYPE_IXFR | TYPE_AXFR | TYPE_MAILA | TYPE_MAILB
    ) {
        served = Served::UnsupportedType;
        scope = None;
        summary = format!(
            "{type_name} is answered {} for every name: {}",
            answer.rcode,
            match qtype {
                TYPE_AXFR | TYPE_IXFR => "zone transfers are not offered",
                TYPE_OPT => "OPT is not a question type",
                _ => "MAILA and MAILB are obsolete",
            }
        );
    } else {
        match table.lookup(&wire_lower(&owner), qtype, Transport::Tcp, false) {
            Lookup::Refused => {
                served = Served::NotServed;
                scope = None;
                summary = format!(
                    "{owner_text} is not served: it is in none of the zones this server \
                     answers for, so every query for it is REFUSED"
                );
            }
            Lookup::Answer(_) => {
                summary = format!(
                    "{owner_text} {type_name} is not steered: it is answered from the zone \
                     files, the same for every client ({})",
                    answer.rcode
                );
                let steered_types: Vec<&str> = table
                    .policies()
                    .iter()
                    .filter(|steered| steered.name().eq_ignore_ascii_case(&owner_text))
                    .map(CompiledPolicy::type_name)
                    .collect();
                if !steered_types.is_empty() {
                    notes.push(format!(
                        "{owner_text} is steered for {} only",
                        steered_types.join(", ")
                    ));
                }
            }
            Lookup::Dname(_) => {
                summary = format!(
                    "{owner_text} is below a DNAME: it is answered by substitution (RFC 6672), \
                     the same for every client ({})",
                    answer.rcode
                );
            }
            Lookup::Steered(steered) => {
                served = Served::Steered;
                let (trace, found_scope) = trace_policy(
                    serving,
                    steered.policy,
                    steered.health,
                    &client,
                    &mut location,
                    &mut notes,
                );
                scope = Some(found_scope);
                summary = format!(
                    "{} is steered: {}",
                    steered.policy.label, trace.per_query.reason
                );
                policy = Some(trace);
            }
        }
    }
    if qtype == TYPE_ANY {
        notes.push(
            "ANY is shown as over TCP (every RRset); over UDP only one RRset is sent (RFC 8482)"
                .to_owned(),
        );
    }
    let random = policy
        .as_ref()
        .is_some_and(|policy| policy.per_query.random);
    if random {
        notes.push(
            "a weighted step chooses at random on every query: this answer is one draw, and \
             the next query may get another pool or order"
                .to_owned(),
        );
    }
    Ok(Explanation {
        name: owner_text,
        record_type: type_name,
        generation: table.generation(),
        served,
        summary,
        client,
        location,
        policy,
        answer: AnswerFound {
            scope,
            random,
            ..answer
        },
        admin: AdminOverrides {
            drained: serving.admin.drained.iter().cloned().collect(),
            forced: serving
                .admin
                .forced
                .iter()
                .map(|(&address, &forced)| ForcedAddress { address, forced })
                .collect(),
        },
        notes,
    })
}

/// Locates the client and runs the policy's steps for it.
fn trace_policy(
    serving: &Serving,
    policy: &CompiledPolicy,
    health: &crate::health::HealthView,
    client: &ClientNetwork,
    location: &mut Option<LocationFound>,
    notes: &mut Vec<String>,
) -> (PolicyTrace, u8) {
    let located = match serving.geo.as_deref() {
        Some(geo) => {
            let found = geo.locate(client.address);
            *location = Some(LocationFound {
                database: geo.describe(),
                found: found.location != crate::geo::Location::default(),
                country: found.location.country.clone(),
                continent: found.location.continent.clone(),
                subdivision: found.location.subdivision.clone(),
                coordinates: found
                    .location
                    .degrees()
                    .map(|(latitude, longitude)| [latitude, longitude]),
                asn: found.location.asn,
                prefix_len: found.prefix_len,
                database_network: format!(
                    "{}/{}",
                    masked(client.address, found.prefix_len),
                    found.prefix_len
                ),
                fields: found
                    .fields
                    .iter()
                    .map(|(path, value)| FieldValue {
                        path: path.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            });
            found.location
        }
        None => {
            notes.push(
                "no [geoip] database is configured: every client is located nowhere".to_owned(),
            );
            crate::geo::Location::default()
        }
    };
    let latency = policy.uses_latency().then(|| {
        let empty = crate::latency::matrix::LatencyMatrix::default();
        let sites: Vec<String> = serving
            .steering
            .sites
            .iter()
            .map(|site| site.id.clone())
            .collect();
        client_sources(
            serving
                .inputs
                .as_deref()
                .map_or(&empty, |inputs| &inputs.matrix),
            serving.latency.as_deref(),
            &sites,
            client.address,
            &located,
            unix_now(),
        )
    });
    let (location_steps, located_pools, scope) =
        policy.trace(client.address, &located, latency.as_ref());
    let pool_names: Vec<String> = serving
        .steering
        .pools
        .iter()
        .map(|pool| pool.id.clone())
        .collect();
    let per_query = policy.explain_dynamic(health, client.address, &pool_names);
    // A policy whose answer is its first pool compiles only that one.
    let located_pools = if policy.only_first_pool {
        located_pools.into_iter().take(1).collect()
    } else {
        located_pools
    };
    if per_query.decision != located_pools && latency.is_some() && serving.latency.is_some() {
        // Measurements posted since the last compile are read here but
        // reach the table only at the next recompile.
        notes.push(format!(
            "the table's compiled decision for this network ({}) differs from the location \
             steps run on the latency data of now ({}); the table's is what is served. \
             Measurements reach the table at the next latency recompile (every {} s); a \
             difference that persists is a bug",
            list_or_none(&per_query.decision),
            list_or_none(&located_pools),
            serving.steering.latency.compile_interval.as_secs_f64()
        ));
    } else if per_query.decision != located_pools {
        // The table's prefix maps and this lookup come from the same
        // database file, so this is a bug worth reporting.
        notes.push(format!(
            "the table's compiled decision for this network ({}) differs from the location \
             steps run on this lookup ({}); the table's is what is served",
            list_or_none(&per_query.decision),
            list_or_none(&located_pools)
        ));
    }
    (
        PolicyTrace {
            label: policy.label.clone(),
            pools: policy.pool_ids(),
            when_all_down: policy.when_all_down_label(&pool_names),
            location_steps,
            per_query,
        },
        scope,
    )
}

/// Sends the question through the data plane and decodes the response.
fn query(
    serving: &Serving,
    owner: &Name,
    qtype: u16,
    client: &ClientNetwork,
) -> Result<AnswerFound, ExplainError> {
    let packet = query_packet(owner, qtype, client);
    let mut out = Vec::with_capacity(512);
    // TCP: never truncated, so every record is shown.
    let outcome = crate::dns::respond(
        &serving.table,
        &packet,
        Transport::Tcp,
        client.address,
        &mut out,
    );
    let Reply::Reply { rcode, .. } = outcome else {
        return Err(ExplainError::NoResponse("the query was dropped".to_owned()));
    };
    let message =
        Message::from_vec(&out).map_err(|error| ExplainError::NoResponse(error.to_string()))?;
    let records = decode(&message.answers);
    let authority = decode(&message.authorities);
    let ttl = records
        .first()
        .or(authority.first())
        .map(|record| record.ttl);
    Ok(AnswerFound {
        rcode: crate::dns::rcode_text(rcode),
        authoritative: message.metadata.authoritative,
        records,
        authority,
        additional: decode(&message.additionals),
        scope: None,
        ttl,
        random: false,
    })
}

/// A query as a resolver would send it: the name with its letter case,
/// and, for a client network, an EDNS Client Subnet option.
fn query_packet(owner: &Name, qtype: u16, client: &ClientNetwork) -> Vec<u8> {
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&0x5e3du16.to_be_bytes());
    packet.extend_from_slice(&0u16.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    packet.extend_from_slice(&0u16.to_be_bytes());
    packet.extend_from_slice(&0u16.to_be_bytes());
    packet.extend_from_slice(&u16::from(client.ecs).to_be_bytes());
    for label in owner.iter() {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label);
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    if client.ecs {
        let (source_address, source_prefix) = client.ecs_source;
        let (family, octets): (u16, Vec<u8>) = match source_address {
            IpAddr::V4(address) => (1, address.octets().to_vec()),
            IpAddr::V6(address) => (2, address.octets().to_vec()),
        };
        let address_len = usize::from(source_prefix).div_ceil(8);
        let option_len = 4 + address_len;
        packet.push(0);
        packet.extend_from_slice(&TYPE_OPT.to_be_bytes());
        packet.extend_from_slice(&EXPLAIN_PAYLOAD.to_be_bytes());
        packet.extend_from_slice(&0u32.to_be_bytes());
        packet.extend_from_slice(&((4 + option_len) as u16).to_be_bytes());
        // RFC 7871 option 8: family, source prefix, scope 0, address.
        packet.extend_from_slice(&8u16.to_be_bytes());
        packet.extend_from_slice(&(option_len as u16).to_be_bytes());
        packet.extend_from_slice(&family.to_be_bytes());
        packet.push(source_prefix);
        packet.push(0);
        packet.extend_from_slice(&octets[..address_len]);
    }
    packet
}

fn parse_name(text: &str) -> Result<Name, ExplainError> {
    let bad = |why: String| ExplainError::BadName(text.to_owned(), why);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad("the name is empty".to_owned()));
    }
    // hickory's message for an empty label is terse; say which rule broke.
    if trimmed != "." && trimmed.trim_end_matches('.').split('.').any(str::is_empty)
        || trimmed.ends_with("..")
    {
        return Err(bad(
            "a label is empty (a leading dot, or two dots in a row)".to_owned(),
        ));
    }
    let mut name = Name::from_ascii(trimmed).map_err(|error| bad(error.to_string()))?;
    // Operators write names with or without the final dot; both mean the
    // absolute name, as in `dig`.
    name.set_fqdn(true);
    Ok(name)
}

fn parse_type(text: &str) -> Result<(String, u16), ExplainError> {
    let upper = text.trim().to_ascii_uppercase();
    // RFC 3597 generic form.
    if let Some(number) = upper.strip_prefix("TYPE")
        && let Ok(code) = number.parse::<u16>()
    {
        return Ok((type_text(RecordType::from(code)), code));
    }
    match RecordType::from_str(&upper) {
        Ok(record_type) => Ok((type_text(record_type), u16::from(record_type))),
        Err(_) => Err(ExplainError::UnknownType(text.to_owned())),
    }
}

fn type_text(record_type: RecordType) -> String {
    match record_type {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// `ADDR` (a source address, used whole) or `ADDR/LEN` (a Client Subnet,
/// truncated to the table's ECS maximum as the data plane does).
fn parse_client(text: &str, (max_v4, max_v6): (u8, u8)) -> Result<ClientNetwork, ExplainError> {
    let bad = |why: String| ExplainError::BadClient(text.to_owned(), why);
    let trimmed = text.trim();
    let (address_text, length_text) = match trimmed.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (trimmed, None),
    };
    let address: IpAddr = address_text.parse().map_err(|_| {
        bad(format!(
            "{address_text:?} is not an IP address; write ADDR or ADDR/LEN, e.g. 81.2.69.0/24"
        ))
    })?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let Some(length_text) = length_text else {
        // A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d, and
        // the data plane treats it as the IPv4 address.
        if let IpAddr::V6(v6) = address
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Ok(ClientNetwork {
                given: text.to_owned(),
                network: format!("{v4}/32"),
                address: IpAddr::V4(v4),
                prefix_len: 32,
                ecs: false,
                detail: "an IPv4-mapped source address, used as the IPv4 address it maps"
                    .to_owned(),
                ecs_source: (IpAddr::V4(v4), 32),
            });
        }
        return Ok(ClientNetwork {
            given: text.to_owned(),
            network: format!("{address}/{bits}"),
            address,
            prefix_len: bits,
            ecs: false,
            detail: "a bare address: used whole, as the source address of a query without \
                     EDNS Client Subnet"
                .to_owned(),
            ecs_source: (address, bits),
        });
    };
    let length: u8 = length_text
        .parse()
        .ok()
        .filter(|length| *length <= bits)
        .ok_or_else(|| {
            bad(format!(
                "prefix length {length_text:?} is not a number from 0 to {bits}"
            ))
        })?;
    let maximum = if address.is_ipv4() { max_v4 } else { max_v6 };
    let used = length.min(maximum);
    let network_address = masked(address, used);
    let detail = if used < length {
        format!(
            "sent as EDNS Client Subnet /{length}; Steer uses at most /{maximum} of an IPv{} \
             source prefix ([ecs] max_source_v{}), so /{used} is used",
            if address.is_ipv4() { 4 } else { 6 },
            if address.is_ipv4() { 4 } else { 6 },
        )
    } else {
        format!("sent as EDNS Client Subnet /{length}, used as it is")
    };
    Ok(ClientNetwork {
        given: text.to_owned(),
        network: format!("{network_address}/{used}"),
        address: network_address,
        prefix_len: used,
        ecs: true,
        detail,
        // A resolver sends no bits beyond its source prefix (RFC 7871 §6).
        ecs_source: (masked(address, length), length),
    })
}

/// `address` with the bits beyond `prefix_len` cleared.
fn masked(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(address) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(address) & keep))
        }
        IpAddr::V6(address) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(address) & keep))
        }
    }
}

fn decode(records: &[Record]) -> Vec<RecordFound> {
    records
        .iter()
        .filter(|record| record.record_type() != RecordType::OPT)
        .map(|record| RecordFound {
            name: record.name.to_string(),
            record_type: type_text(record.record_type()),
            ttl: record.ttl,
            data: record.data.to_string(),
        })
        .collect()
}

fn list_or_none(pools: &[String]) -> String {
    if pools.is_empty() {
        "no pool".to_owned()
    } else {
        pools.join(", ")
    }
}

impl Explanation {
    /// The explanation for a terminal: one section per stage, indented.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{} {} (generation {})",
            self.name, self.record_type, self.generation
        );
        let _ = writeln!(out, "  {}", self.summary);
        let _ = writeln!(out);
        let _ = writeln!(out, "client    {}", self.client.network);
        let _ = writeln!(
            out,
            "          {} (given {})",
            self.client.detail, self.client.given
        );
        if let Some(location) = &self.location {
            let _ = writeln!(out);
            if location.found {
                let mut parts = Vec::new();
                if let Some(country) = &location.country {
                    parts.push(format!("country {country}"));
                }
                if let Some(continent) = &location.continent {
                    parts.push(format!("continent {continent}"));
                }
                if let Some(subdivision) = &location.subdivision {
                    parts.push(format!("subdivision {subdivision}"));
                }
                if let Some([latitude, longitude]) = location.coordinates {
                    parts.push(format!("at {latitude},{longitude}"));
                }
                if let Some(asn) = location.asn {
                    parts.push(format!("AS{asn}"));
                }
                let _ = writeln!(out, "location  {}", parts.join(", "));
            } else {
                let _ = writeln!(out, "location  not in the database: located nowhere");
            }
            let _ = writeln!(
                out,
                "          database network {} in {}",
                location.database_network, location.database
            );
            for field in &location.fields {
                let _ = writeln!(out, "          {} = {}", field.path, field.value);
            }
        }
        if let Some(policy) = &self.policy {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "policy    {}: pools {}; when all are down: {}",
                policy.label,
                list_or_none(&policy.pools),
                policy.when_all_down
            );
            if !policy.location_steps.is_empty() {
                let _ = writeln!(
                    out,
                    "  location steps (compiled into the table; they run first):"
                );
                for step in &policy.location_steps {
                    let _ = writeln!(
                        out,
                        "    {:<9} {}: {} -> {}",
                        step.step,
                        step.matched,
                        list_or_none(&step.input),
                        list_or_none(&step.output)
                    );
                    for line in step.latency.iter().flat_map(LatencyTrace::text_lines) {
                        let _ = writeln!(out, "              {line}");
                    }
                }
            }
            let per_query = &policy.per_query;
            let _ = writeln!(
                out,
                "  per-query steps (current health), from {}:",
                list_or_none(&per_query.decision)
            );
            if per_query.steps.is_empty() {
                let _ = writeln!(out, "    (none: the first pool answers)");
            }
            for step in &per_query.steps {
                let _ = writeln!(
                    out,
                    "    {:<9} {} -> {}{}",
                    step.step,
                    list_or_none(&step.input),
                    list_or_none(&step.output),
                    if step.random { " (random)" } else { "" }
                );
                let _ = writeln!(out, "              {}", step.detail);
            }
            for pool in &per_query.answer_pools {
                let endpoints: Vec<String> = pool
                    .endpoints
                    .iter()
                    .map(|endpoint| {
                        let mut text = endpoint.value.clone();
                        text.push_str(if endpoint.up { " up" } else { " down" });
                        if !endpoint.answered {
                            text.push_str(", not answered");
                        }
                        text
                    })
                    .collect();
                let _ = writeln!(out, "  answer pool {}: {}", pool.pool, endpoints.join("; "));
            }
            let _ = writeln!(out, "  => {}", per_query.reason);
        }
        let _ = writeln!(out);
        let answer = &self.answer;
        let mut head = format!("answer    {}", answer.rcode);
        if answer.rcode == "NOERROR" && answer.records.is_empty() && !answer.authoritative {
            head.push_str(" (referral)");
        } else if answer.rcode == "NOERROR" && answer.records.is_empty() {
            head.push_str(" (NODATA)");
        }
        if answer.authoritative {
            head.push_str(", aa");
        }
        if let Some(scope) = answer.scope {
            let _ = write!(head, ", ECS scope /{scope}");
            if self.served == Served::Steered {
                let _ = write!(
                    head,
                    " (the choice holds for {}/{scope})",
                    masked(self.client.address, scope)
                );
            }
        }
        if let Some(ttl) = answer.ttl {
            let _ = write!(head, ", TTL {ttl}");
            if answer.records.is_empty() && answer.authoritative {
                head.push_str(" (negative caching, from the SOA)");
            }
        }
        if answer.random {
            head.push_str(", random (one draw)");
        }
        let _ = writeln!(out, "{head}");
        for (section, records) in [
            ("", &answer.records),
            ("authority: ", &answer.authority),
            ("additional: ", &answer.additional),
        ] {
            for record in records {
                let _ = writeln!(
                    out,
                    "  {section}{} {} IN {} {}",
                    record.name, record.ttl, record.record_type, record.data
                );
            }
        }
        if !self.admin.drained.is_empty() || !self.admin.forced.is_empty() {
            let _ = writeln!(out);
            let mut parts: Vec<String> = self
                .admin
                .drained
                .iter()
                .map(|pool| format!("pool {pool} drained"))
                .collect();
            parts.extend(self.admin.forced.iter().map(|forced| {
                format!(
                    "{} forced {}",
                    forced.address,
                    match forced.forced {
                        Forced::Up => "up",
                        Forced::Down => "down",
                    }
                )
            }));
            let _ = writeln!(out, "admin     {}", parts.join("; "));
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out);
            for note in &self.notes {
                let _ = writeln!(out, "note: {note}");
            }
        }
        out
    }
}
