//! One UPDATE message, from bytes to a decision: the TSIG (RFC 8945), the
//! zone section, the grant, the prerequisites and the update section
//! (RFC 2136 §3), and, when the zone changes, the new kept updates written
//! to disk. Blocking (it reads the zone file); the control plane runs it
//! off the async threads and then reloads to serve the change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::OPCODE_UPDATE;
use super::apply;
use super::overlay::{self, Overlay};
use crate::config::steering::SteeringConfig;
use crate::config::update::UpdateConfig;
use crate::dns::wire::{self, HEADER_LEN, ParseError};
use crate::transfer::tsig::{self, TsigKey};

/// What an update is checked against: the configuration in force.
pub struct Context {
    /// `[update]`.
    pub update: Arc<UpdateConfig>,
    /// The zones directory.
    pub zones_dir: PathBuf,
    /// The steered names, which updates may not shadow.
    pub steering: Arc<SteeringConfig>,
    /// The zones served now and their files.
    pub served: Vec<(Name, PathBuf)>,
    /// With `update.forward`: the secondary zones and their primaries.
    pub secondaries: Vec<(Name, Vec<std::net::SocketAddr>)>,
    /// The zone files parsed so far with this context.
    pub files: ParsedFiles,
}

/// Zones read for the updates of one batch (one [`Context`]), so that a
/// burst of updates to a large zone reads and checks it once, not once
/// each (a million records take seconds): each zone file as parsed, and
/// each zone as the last update left it. Checked against the zone file's
/// size and modification time, and the kept updates against those the
/// zone was made with. The reload that serves the batch takes them
/// ([`ParsedFiles::take_file`], [`ParsedFiles::take_updated`]) rather
/// than parse and check the same zones again; what it leaves is dropped
/// with it.
#[derive(Default)]
pub struct ParsedFiles {
    /// By zone file.
    files: Mutex<HashMap<PathBuf, (Stamp, crate::zone::Zone)>>,
    /// By kept updates' file: the zone file's stamp, the updates, and the
    /// zone they make of it.
    updated: Mutex<HashMap<PathBuf, (Stamp, Overlay, crate::zone::Zone)>>,
}

/// A file's size and modification time.
type Stamp = (u64, Option<SystemTime>);

fn stamp(file: &Path) -> Result<Stamp, String> {
    let metadata = std::fs::metadata(file).map_err(|error| error.to_string())?;
    Ok((metadata.len(), metadata.modified().ok()))
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ParsedFiles {
    /// The zone `file` holds, with apex `zone`; the first error otherwise.
    fn load(&self, file: &Path, zone: &Name) -> Result<crate::zone::Zone, String> {
        let stamp = stamp(file)?;
        if let Some((kept, parsed)) = locked(&self.files).get(file)
            && *kept == stamp
        {
            return Ok(parsed.clone());
        }
        let text = std::fs::read_to_string(file).map_err(|error| error.to_string())?;
        let loaded = crate::zone::parse_zone(&text, file, zone).map_err(first_error)?;
        locked(&self.files).insert(file.to_path_buf(), (stamp, loaded.clone()));
        Ok(loaded)
    }

    /// The zone `updates` (kept at `path`) made of `file`, as an update of
    /// this batch left it, when one did and nothing changed since.
    fn updated(&self, file: &Path, path: &Path, updates: &Overlay) -> Option<crate::zone::Zone> {
        let stamp = stamp(file).ok()?;
        let updated = locked(&self.updated);
        let (kept, made_with, zone) = updated.get(path)?;
        (*kept == stamp && made_with == updates).then(|| zone.clone())
    }

    /// The zone `file` holds, as this batch parsed it, if the file has not
    /// changed since; taken, not copied.
    pub fn take_file(&self, file: &Path) -> Option<crate::zone::Zone> {
        let stamp = stamp(file).ok()?;
        let (kept, zone) = locked(&self.files).remove(file)?;
        (kept == stamp).then_some(zone)
    }

    /// The zone `updates` (kept at `path`) make of `file`, as the batch's
    /// last update to it left it (and checked it), if neither changed
    /// since; taken, not copied.
    pub fn take_updated(
        &self,
        file: &Path,
        path: &Path,
        updates: &Overlay,
    ) -> Option<crate::zone::Zone> {
        let stamp = stamp(file).ok()?;
        let (kept, made_with, zone) = locked(&self.updated).remove(path)?;
        (kept == stamp && made_with == *updates).then_some(zone)
    }

    /// Remembers `zone`, which `updates` (kept at `path`) make of `file`.
    fn remember(&self, file: &Path, path: &Path, updates: &Overlay, zone: crate::zone::Zone) {
        if let Ok(stamp) = stamp(file) {
            locked(&self.updated).insert(path.to_path_buf(), (stamp, updates.clone(), zone));
        }
    }
}

/// Writes an update's response: the header, the zone section, and the
/// TSIG when the request was signed with a known key.
pub struct Responder {
    id: u16,
    zone_section: Vec<u8>,
    signer: Option<(TsigKey, Vec<u8>)>,
    now: u64,
}

impl Responder {
    /// The response with `rcode`.
    pub fn respond(&self, rcode: ResponseCode) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.zone_section.len() + 64);
        out.extend_from_slice(&self.id.to_be_bytes());
        let flags = 0x8000 | OPCODE_UPDATE | (u16::from(rcode) & 0x000F);
        out.extend_from_slice(&flags.to_be_bytes());
        let zones = u16::from(!self.zone_section.is_empty());
        for count in [zones, 0, 0, 0] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(&self.zone_section);
        if let Some((key, request_mac)) = &self.signer {
            // Fails only past 65,535 bytes, which a header and one name
            // never reach.
            let _ = tsig::sign_response(key, request_mac, &mut out, self.now);
        }
        out
    }
}

/// What became of an update.
pub enum Outcome {
    /// Answered without changing anything.
    Answered(Vec<u8>, Summary),
    /// The zone changes: the kept updates are written; serve them by a
    /// reload, then answer, or put `previous` back and answer SERVFAIL.
    Changed(Box<Change>),
    /// For a secondary zone with `update.forward`: relay the message as it
    /// came to these primaries, in order, and their answer back; SERVFAIL
    /// (from the responder) when none answers.
    Forward(Box<Forward>),
}

/// An update for a secondary zone, to relay.
pub struct Forward {
    /// The zone's primaries, in order.
    pub primaries: Vec<std::net::SocketAddr>,
    /// Writes the SERVFAIL when none answers.
    pub responder: Responder,
    /// For the log and the counters.
    pub summary: Summary,
}

/// An update applied on disk, waiting to be served.
pub struct Change {
    /// The kept updates' file.
    pub path: PathBuf,
    /// The zone.
    pub zone: Name,
    /// The kept updates before this one (`None`: there were none).
    pub previous: Option<Overlay>,
    /// The serial the zone is served with now.
    pub serial: u32,
    /// Writes the response.
    pub responder: Responder,
    /// For the log and the counters.
    pub summary: Summary,
}

impl Change {
    /// Puts the kept updates back as they were (the change could not be
    /// served).
    pub fn undo(&self) -> std::io::Result<()> {
        match &self.previous {
            Some(previous) => overlay::write(&self.path, &self.zone, previous),
            None => match std::fs::remove_file(&self.path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
        }
    }
}

/// Who asked for what, for the log and `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The zone asked for (`None` before the zone section is read).
    pub zone: Option<Name>,
    /// The key that signed it.
    pub key: Option<String>,
    /// The records of its update section.
    pub updates: usize,
    /// The response code, or why nothing was done.
    pub rcode: u16,
    /// In words, for the log, when refused or failed.
    pub detail: Option<String>,
}

/// Checks `message` from `client` against `context` at time `now` and
/// applies it (to disk) when it changes the zone.
pub fn handle(context: &Context, message: &[u8], client: IpAddr, now: u64) -> Outcome {
    let id = u16::from_be_bytes([message[0], message[1]]);
    let mut responder = Responder {
        id,
        zone_section: Vec::new(),
        signer: None,
        now,
    };
    let mut summary = Summary::default();
    let answer =
        |responder: &Responder, summary: &mut Summary, rcode: ResponseCode, detail: String| {
            summary.rcode = u16::from(rcode);
            summary.detail = Some(detail);
            Outcome::Answered(responder.respond(rcode), summary.clone())
        };
    // The zone section, as the query parser reads a question.
    match wire::parse_query(message) {
        Err(ParseError::NotImplemented {
            question_end: Some(end),
            ..
        }) => responder.zone_section = message[HEADER_LEN..end].to_vec(),
        _ => {
            return answer(
                &responder,
                &mut summary,
                ResponseCode::FormErr,
                "no zone section".to_owned(),
            );
        }
    }
    // A secondary zone's updates are its primary's to check, with its keys.
    if context.update.forwards_from(client)
        && let Ok(parsed) = Message::from_vec(&tsig::without_tsig(message))
        && let [zone_query] = parsed.queries.as_slice()
        && let Some((zone, primaries)) = context
            .secondaries
            .iter()
            .find(|(zone, _)| *zone == zone_query.name().to_lowercase())
    {
        summary.zone = Some(zone.clone());
        summary.updates = parsed.authorities.len();
        return Outcome::Forward(Box::new(Forward {
            primaries: primaries.clone(),
            responder,
            summary,
        }));
    }
    let keys: Vec<TsigKey> = context
        .update
        .grants
        .iter()
        .map(|grant| (*grant.key.key).clone())
        .collect();
    let key = match tsig::verify_request(&keys, message, now) {
        Ok(tsig::RequestCheck::NotSigned) => {
            return answer(
                &responder,
                &mut summary,
                ResponseCode::Refused,
                "not signed with a TSIG key".to_owned(),
            );
        }
        Err(rejection) => {
            let rcode = ResponseCode::from(0, rejection.rcode());
            let mut response = responder.respond(rcode);
            let _ = rejection.append_tsig(&mut response, now);
            summary.rcode = u16::from(rcode);
            summary.detail = Some("its TSIG does not verify".to_owned());
            return Outcome::Answered(response, summary);
        }
        Ok(tsig::RequestCheck::Verified {
            key, request_mac, ..
        }) => {
            responder.signer = Some((key.clone(), request_mac.as_bytes().to_vec()));
            key.clone()
        }
    };
    summary.key = Some(key.name());
    let Ok(parsed) = Message::from_vec(&tsig::without_tsig(message)) else {
        return answer(
            &responder,
            &mut summary,
            ResponseCode::FormErr,
            "does not parse".to_owned(),
        );
    };
    let [zone_query] = parsed.queries.as_slice() else {
        return answer(
            &responder,
            &mut summary,
            ResponseCode::FormErr,
            "needs one zone".to_owned(),
        );
    };
    if zone_query.query_type() != RecordType::SOA || zone_query.query_class() != DNSClass::IN {
        return answer(
            &responder,
            &mut summary,
            ResponseCode::FormErr,
            "the zone section must ask for SOA IN".to_owned(),
        );
    }
    let zone = zone_query.name().to_lowercase();
    summary.zone = Some(zone.clone());
    summary.updates = parsed.authorities.len();
    let file = context
        .zones_dir
        .join(format!("{}.zone", zone.to_ascii().trim_end_matches('.')));
    if !context
        .served
        .iter()
        .any(|(served, served_file)| *served == zone && *served_file == file)
    {
        return answer(
            &responder,
            &mut summary,
            ResponseCode::NotAuth,
            "not a zone Steer serves from its zones directory".to_owned(),
        );
    }
    let grants: Vec<_> = context
        .update
        .grants
        .iter()
        .filter(|grant| grant.key.key.name() == key.name() && grant.zones.contains(&zone))
        .filter(|grant| grant.allows(client))
        .collect();
    if grants.is_empty() {
        return answer(
            &responder,
            &mut summary,
            ResponseCode::Refused,
            format!("no grant lets key {} change it from {client}", key.name()),
        );
    }
    // The zone as served: its file and the updates kept over it.
    let path = context.update.file_of(&zone);
    let loaded = context.files.load(&file, &zone).and_then(|file_zone| {
        let previous = overlay::read(&path, &zone).map_err(first_error)?;
        let current = match &previous {
            Some(kept) => match context.files.updated(&file, &path, kept) {
                Some(updated) => updated,
                None => kept
                    .apply_to(file_zone.clone(), &path)
                    .map_err(first_error)?,
            },
            None => file_zone.clone(),
        };
        Ok((file_zone, previous, current))
    });
    let (file_zone, previous, current) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            return answer(
                &responder,
                &mut summary,
                ResponseCode::ServFail,
                format!("the zone does not load now: {error}"),
            );
        }
    };
    // Moved out, not copied (twice, as before): the change is made on them.
    let current_serial = current.serial;
    let records: Vec<Record> = current
        .records
        .into_iter()
        .map(|kept| kept.record)
        .collect();
    if let Err(rcode) = apply::prerequisites(&zone, &records, &parsed.answers) {
        return answer(
            &responder,
            &mut summary,
            rcode,
            "a prerequisite does not hold".to_owned(),
        );
    }
    let permits = |name: &Name, record_type: RecordType| {
        grants
            .iter()
            .any(|grant| grant.permits(&zone, name, record_type))
    };
    if let Err(rcode) = apply::prescan(&zone, &parsed.authorities, permits) {
        let detail = if rcode == ResponseCode::Refused {
            "a name or type its grant does not allow".to_owned()
        } else {
            "a malformed update record".to_owned()
        };
        return answer(&responder, &mut summary, rcode, detail);
    }
    if let Some(steered) = parsed.authorities.iter().find_map(|update| {
        (update.dns_class == DNSClass::IN)
            .then(|| steered_conflict(&context.steering, update))
            .flatten()
    }) {
        return answer(&responder, &mut summary, ResponseCode::Refused, steered);
    }
    let mut changed = records;
    if !apply::apply(&zone, &mut changed, &parsed.authorities) {
        summary.rcode = 0;
        return Outcome::Answered(responder.respond(ResponseCode::NoError), summary);
    }
    // Serial arithmetic (RFC 1982): one more than served, 0 never used.
    let serial = match current_serial.wrapping_add(1) {
        0 => 1,
        serial => serial,
    };
    for record in &mut changed {
        if let RData::SOA(soa) = &mut record.data {
            soa.serial = serial;
        }
    }
    let file_records: Vec<Record> = file_zone
        .records
        .iter()
        .map(|kept| kept.record.clone())
        .collect();
    // An update changes only the names it names (and the apex's SOA,
    // which the difference leaves out).
    let mut touched: Vec<&Name> = parsed
        .authorities
        .iter()
        .map(|update| &update.name)
        .collect();
    touched.sort();
    touched.dedup();
    let next = Overlay::after_change(
        previous.as_ref(),
        (&file_records, &changed),
        &touched,
        file_zone.serial,
        serial,
    );
    // What would be served must load, or nothing is written.
    let updated = match next.apply_to(file_zone, &path) {
        Ok(updated) => updated,
        Err(errors) => {
            let detail = errors
                .first()
                .map_or_else(|| "does not load".to_owned(), |error| error.message.clone());
            return answer(
                &responder,
                &mut summary,
                ResponseCode::Refused,
                format!("the zone would not load: {detail}"),
            );
        }
    };
    if let Err(error) = overlay::write(&path, &zone, &next) {
        return answer(
            &responder,
            &mut summary,
            ResponseCode::ServFail,
            format!("cannot write {}: {error}", path.display()),
        );
    }
    context.files.remember(&file, &path, &next, updated);
    Outcome::Changed(Box::new(Change {
        path,
        zone,
        previous,
        serial,
        responder,
        summary,
    }))
}

/// The first of a zone's errors, with its file and line, for the log.
fn first_error(errors: Vec<crate::zone::ZoneError>) -> String {
    errors
        .first()
        .map_or_else(|| "does not load".to_owned(), ToString::to_string)
}

/// Why an added record would stand where a steered name answers, if it
/// would.
fn steered_conflict(steering: &SteeringConfig, update: &Record) -> Option<String> {
    let name = update.name.to_lowercase();
    let record_type = update.record_type();
    steering
        .steered
        .iter()
        .find(|steered| {
            steered.name.to_lowercase() == name
                && (steered.record_type.record_type() == record_type
                    || record_type == RecordType::CNAME
                    || steered.record_type.record_type() == RecordType::CNAME)
        })
        .map(|steered| {
            format!(
                "{} {} is steered ({}); a name cannot be both static and steered",
                steered.name, steered.record_type, steered.key_path
            )
        })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, CNAME, NS, TXT};
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "8xR6ZPhz9rN6f0yS7pQmA1cJ2bV4kL3uW5eT9yH0gDs=";
    const ZONE: &str = "$ORIGIN example.test.\n$TTL 300\n\
        @ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n\
        www A 192.0.2.10\nalias CNAME www\nsub NS ns.sub\nns.sub A 192.0.2.53\n";

    /// A zones directory with `example.test`, and `[update]` granting key
    /// `acme` every type of it.
    fn context(directory: &std::path::Path) -> Context {
        std::fs::create_dir_all(directory.join("zones")).expect("zones");
        std::fs::write(directory.join("zones/example.test.zone"), ZONE).expect("zone");
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\
             [tsig.acme]\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
             [update]\n[[update.grant]]\ntsig_key = \"acme\"\nzones = [\"example.test.\"]\n"
        );
        let config = crate::config::parse(&directory.join("steer.toml"), &text).expect("config");
        Context {
            update: Arc::new(config.update.expect("[update]")),
            zones_dir: directory.join("zones"),
            steering: Arc::new(SteeringConfig::default()),
            served: vec![(
                Name::from_str("example.test.").expect("name"),
                directory.join("zones/example.test.zone"),
            )],
            secondaries: Vec::new(),
            files: ParsedFiles::default(),
        }
    }

    fn key() -> TsigKey {
        TsigKey::new("acme", "hmac-sha256", SECRET).expect("key")
    }

    /// An arbitrary record of an update or prerequisite section: owners in
    /// and out of the zone, every class the RFC gives meaning to and some
    /// it does not, data of several types or none.
    fn record() -> impl Strategy<Value = Record> {
        let owners = prop::sample::select(vec![
            "example.test.",
            "www.example.test.",
            "alias.example.test.",
            "sub.example.test.",
            "x.sub.example.test.",
            "new.example.test.",
            "example.org.",
        ]);
        let classes = prop::sample::select(vec![
            DNSClass::IN,
            DNSClass::ANY,
            DNSClass::NONE,
            DNSClass::CH,
        ]);
        let data = prop::sample::select(vec![
            RData::A(A::new(192, 0, 2, 99)),
            RData::TXT(TXT::new(vec!["token".to_owned()])),
            RData::CNAME(CNAME(Name::from_str("www.example.test.").expect("name"))),
            RData::NS(NS(Name::from_str("ns1.example.test.").expect("name"))),
            RData::Update0(RecordType::ANY),
            RData::Update0(RecordType::A),
            RData::Update0(RecordType::NS),
            RData::Update0(RecordType::SOA),
        ]);
        (owners, classes, data, prop::sample::select(vec![0u32, 60])).prop_map(
            |(owner, class, data, ttl)| {
                let mut record =
                    Record::from_rdata(Name::from_str(owner).expect("name"), ttl, data);
                record.dns_class = class;
                record
            },
        )
    }

    fn signed_update(prerequisites: Vec<Record>, updates: Vec<Record>) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = 7;
        message.metadata.message_type = MessageType::Query;
        message.metadata.op_code = OpCode::Update;
        message.add_query(Query::query(
            Name::from_str("example.test.").expect("name"),
            RecordType::SOA,
        ));
        message.answers = prerequisites;
        message.authorities = updates;
        let mut bytes = message.to_vec().expect("encoded");
        tsig::sign_request(&key(), &mut bytes, crate::unix_now()).expect("signed");
        bytes
    }

    #[test]
    fn a_signed_addition_changes_the_zone_and_an_unsigned_one_is_refused() {
        let directory = tempfile::tempdir().expect("directory");
        let context = context(directory.path());
        let client = "127.0.0.1".parse().expect("address");
        let addition = Record::from_rdata(
            Name::from_str("new.example.test.").expect("name"),
            60,
            RData::A(A::new(192, 0, 2, 99)),
        );
        let message = signed_update(Vec::new(), vec![addition]);
        let Outcome::Changed(change) = handle(&context, &message, client, crate::unix_now()) else {
            panic!("not applied");
        };
        assert_eq!(change.serial, 2);
        let response = change.responder.respond(ResponseCode::NoError);
        let parsed = Message::from_vec(&tsig::without_tsig(&response)).expect("response");
        assert_eq!(parsed.metadata.op_code, OpCode::Update);
        assert_eq!(parsed.metadata.message_type, MessageType::Response);
        assert_eq!(parsed.queries.len(), 1);
        // Unsigned: REFUSED, and nothing written.
        change.undo().expect("undone");
        let unsigned = tsig::without_tsig(&message).into_owned();
        let Outcome::Answered(response, summary) =
            handle(&context, &unsigned, client, crate::unix_now())
        else {
            panic!("applied unsigned");
        };
        assert_eq!(summary.rcode, u16::from(ResponseCode::Refused));
        assert_eq!(response[3] & 0x0F, 5);
        assert!(!change.path.exists());
    }

    #[test]
    fn a_zone_file_is_parsed_once_per_batch_unless_it_changes() {
        let directory = tempfile::tempdir().expect("directory");
        let file = directory.path().join("example.test.zone");
        let apex = Name::from_str("example.test.").expect("name");
        std::fs::write(&file, ZONE).expect("zone");
        let files = ParsedFiles::default();
        let first = files.load(&file, &apex).expect("loads");
        assert_eq!(
            files.load(&file, &apex).expect("loads").records.len(),
            first.records.len()
        );
        // Edited meanwhile (another size): read again.
        std::fs::write(&file, format!("{ZONE}extra A 192.0.2.99\n")).expect("zone");
        let edited = files.load(&file, &apex).expect("loads");
        assert_eq!(edited.records.len(), first.records.len() + 1);
        // A zone as an update left it is used for the same updates over
        // the same file only.
        let path = directory.path().join("example.test.updates");
        let updates = Overlay {
            base_serial: 1,
            serial: 2,
            ..Overlay::default()
        };
        files.remember(&file, &path, &updates, edited.clone());
        let found = files.updated(&file, &path, &updates).expect("remembered");
        assert_eq!(found.records.len(), edited.records.len());
        let other = Overlay {
            serial: 3,
            ..updates.clone()
        };
        assert!(files.updated(&file, &path, &other).is_none());
        // The reload takes them, once, for the same file and updates.
        assert!(files.take_updated(&file, &path, &other).is_none());
        files.remember(&file, &path, &updates, edited.clone());
        let taken = files.take_updated(&file, &path, &updates).expect("taken");
        assert_eq!(taken.records.len(), edited.records.len());
        assert!(files.take_updated(&file, &path, &updates).is_none());
        assert_eq!(
            files.take_file(&file).map(|zone| zone.records.len()),
            Some(edited.records.len())
        );
        assert!(files.take_file(&file).is_none());
        files.load(&file, &apex).expect("loads");
        files.remember(&file, &path, &updates, edited.clone());
        std::fs::write(&file, "not a zone\n").expect("zone");
        assert!(files.take_file(&file).is_none());
        assert!(files.take_updated(&file, &path, &updates).is_none());
        assert!(files.load(&file, &apex).is_err());
        assert!(files.updated(&file, &path, &updates).is_none());
    }

    #[test]
    fn a_secondary_zone_is_forwarded_only_for_forward_from() {
        let directory = tempfile::tempdir().expect("directory");
        let mut context = context(directory.path());
        let mut update = (*context.update).clone();
        update.forward_from =
            vec![crate::config::steering::IpNet::parse("10.0.0.0/8").expect("prefix")];
        context.update = Arc::new(update);
        let primary: std::net::SocketAddr = "192.0.2.53:53".parse().expect("address");
        context.secondaries = vec![(Name::from_str("sec.test.").expect("name"), vec![primary])];
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.add_query(Query::query(
            Name::from_str("sec.test.").expect("name"),
            RecordType::SOA,
        ));
        let bytes = message.to_vec().expect("encoded");
        let now = crate::unix_now();
        match handle(&context, &bytes, "10.1.2.3".parse().expect("address"), now) {
            Outcome::Forward(forward) => assert_eq!(forward.primaries, vec![primary]),
            _ => panic!("not forwarded"),
        }
        // From elsewhere: not ours to change, not ours to relay.
        let Outcome::Answered(response, _) =
            handle(&context, &bytes, "192.0.2.1".parse().expect("address"), now)
        else {
            panic!("forwarded for a client outside forward_from");
        };
        assert_eq!(response[3] & 0x0F, 5, "REFUSED: unsigned");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Whatever a key holder sends, nothing panics, and what is kept
        /// always loads as a zone.
        #[test]
        fn signed_updates_never_panic_and_keep_a_zone_that_loads(
            prerequisites in prop::collection::vec(record(), 0..3),
            updates in prop::collection::vec(record(), 0..6),
        ) {
            let directory = tempfile::tempdir().expect("directory");
            let context = context(directory.path());
            let message = signed_update(prerequisites, updates);
            let outcome = handle(&context, &message, "127.0.0.1".parse().expect("address"), crate::unix_now());
            if let Outcome::Changed(change) = outcome {
                let kept = overlay::read(&change.path, &change.zone).expect("kept file reads").expect("kept");
                let file = crate::zone::parse_zone(ZONE, &directory.path().join("zones/example.test.zone"), &change.zone).expect("zone");
                let served = kept.apply_to(file, &change.path);
                prop_assert!(served.is_ok(), "{served:?}");
                prop_assert_eq!(served.expect("zone").serial, change.serial);
            }
        }

        /// Bytes that only look like an UPDATE: never a panic.
        #[test]
        fn any_bytes_with_an_update_header_never_panic(
            mut bytes in prop::collection::vec(any::<u8>(), 12..300),
        ) {
            bytes[2] = (bytes[2] & 0x87) | 0x28;
            let directory = tempfile::tempdir().expect("directory");
            let context = context(directory.path());
            let _ = handle(&context, &bytes, "127.0.0.1".parse().expect("address"), crate::unix_now());
        }
    }
}
