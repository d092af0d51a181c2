//! The query log (`[query_log]`): one JSON line per sampled query, or its
//! dnstap messages ([`dnstap`]), written off the query path.
//!
//! A worker that answered a query decides, by a counter of its own thread,
//! whether it is the sampled one in `sample`; if so it copies the query
//! and the response bytes (up to fixed sizes) into an entry and offers it
//! to a bounded channel whose slots were allocated when the log started:
//! no allocation, no lock (the writer never blocks on the channel, so a
//! sender never has to wake it) and no I/O on the query path. When the
//! channel is full the entry is dropped and counted: the log never slows
//! answers down. A writer thread parses the entries with hickory-proto,
//! names the steered decision from the counter registry, and appends JSON
//! lines to the file, flushing whenever the channel runs dry. When the file
//! is renamed or removed (log rotation), the writer opens a new one at the
//! configured path within a second. dnstap can go to a collector's socket
//! instead ([`collector`]).

mod collector;
mod dnstap;

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::EdnsOption;

use crate::config::{QueryLogConfig, QueryLogFormat, QueryLogOutput};
use crate::dns::{Outcome, OverLimit, Transport};
use crate::metrics::{DecisionRegistry, Metrics};

/// Query bytes kept: the question and OPT of any ordinary query.
const QUERY_BYTES: usize = 512;
/// Response bytes kept: every UDP response whole (larger TCP ones are cut,
/// and logged without their answer).
const RESPONSE_BYTES: usize = 1232;
/// Entries waiting for the writer; past this, entries are dropped.
const CAPACITY: usize = 4096;
/// How long the writer sleeps when the channel is empty.
const IDLE: Duration = Duration::from_millis(20);
/// How often the writer checks whether the file was rotated away.
const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// One sampled query, as the worker copied it.
struct Entry {
    unix_micros: u64,
    source: IpAddr,
    transport: Transport,
    outcome: Outcome,
    query: [u8; QUERY_BYTES],
    query_len: u16,
    response: [u8; RESPONSE_BYTES],
    response_len: u16,
    /// The whole response's length, for `size`.
    response_size: u32,
}

/// The workers' side of the log. Cloned into every worker.
#[derive(Clone)]
pub struct QueryLog {
    sender: SyncSender<Entry>,
    sample: u64,
    metrics: Arc<Metrics>,
}

/// The writer thread; joining it after the workers stopped flushes what
/// they logged last.
pub struct QueryLogWriter {
    thread: Option<JoinHandle<()>>,
}

thread_local! {
    /// Queries this thread answered, for sampling.
    static ANSWERED: Cell<u64> = const { Cell::new(0) };
}

impl QueryLog {
    /// Opens the file (appending) and starts the writer. A collector's
    /// socket is connected by the writer, and may be away for now.
    ///
    /// # Errors
    ///
    /// The file cannot be opened.
    pub fn start(
        config: &QueryLogConfig,
        node: &str,
        registry: Arc<DecisionRegistry>,
        metrics: Arc<Metrics>,
    ) -> io::Result<(QueryLog, QueryLogWriter)> {
        let sink = match &config.output {
            QueryLogOutput::File(path) => Sink::File(LogFile::open(path, config.format)?),
            socket => {
                metrics.query_log_connected.store(1, Ordering::Relaxed);
                Sink::Collector(collector::Collector::new(socket.clone()))
            }
        };
        let (sender, receiver) = sync_channel(CAPACITY);
        let writer_metrics = Arc::clone(&metrics);
        let identity = node.as_bytes().to_vec();
        let thread = std::thread::Builder::new()
            .name("steer-query-log".to_owned())
            .spawn(move || {
                write_entries(&receiver, sink, (&registry, &identity), &writer_metrics);
            })?;
        Ok((
            QueryLog {
                sender,
                sample: config.sample,
                metrics,
            },
            QueryLogWriter {
                thread: Some(thread),
            },
        ))
    }

    /// Logs this query if it is the sampled one: copies it and offers it
    /// to the writer, or counts it as dropped when the writer is behind.
    #[inline]
    pub fn record(
        &self,
        query: &[u8],
        response: &[u8],
        source: IpAddr,
        transport: Transport,
        outcome: Outcome,
    ) {
        let sampled = ANSWERED.with(|answered| {
            let count = answered.get().wrapping_add(1);
            answered.set(count);
            count % self.sample == 0
        });
        if !sampled || matches!(outcome, Outcome::Drop) {
            return;
        }
        let mut entry = Entry {
            unix_micros: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_micros() as u64),
            source,
            transport,
            outcome,
            query: [0; QUERY_BYTES],
            query_len: 0,
            response: [0; RESPONSE_BYTES],
            response_len: 0,
            response_size: response.len() as u32,
        };
        let query = &query[..query.len().min(QUERY_BYTES)];
        entry.query[..query.len()].copy_from_slice(query);
        entry.query_len = query.len() as u16;
        if outcome.is_sent() {
            let response = &response[..response.len().min(RESPONSE_BYTES)];
            entry.response[..response.len()].copy_from_slice(response);
            entry.response_len = response.len() as u16;
        } else {
            entry.response_size = 0;
        }
        match self.sender.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics
                    .query_log_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl QueryLogWriter {
    /// Waits for the writer to write what is left; call after every
    /// [`QueryLog`] clone is gone (the workers stopped).
    pub fn finish(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the writer puts entries.
enum Sink {
    File(LogFile),
    Collector(collector::Collector),
}

impl Sink {
    /// The channel ran dry: send what is buffered, and follow a rotated
    /// file or reconnect to a collector that was away.
    fn idle(&mut self, metrics: &Metrics) {
        match self {
            Sink::File(file) => {
                let _ = file.writer.flush();
                file.follow_rotation();
            }
            Sink::Collector(collector) => collector.idle(metrics),
        }
    }

    /// Ends the stream (every sender is gone).
    fn close(&mut self) {
        match self {
            Sink::File(file) => file.close(),
            Sink::Collector(collector) => collector.close(),
        }
    }
}

/// The open log file and what it was when opened, to notice rotation.
struct LogFile {
    path: PathBuf,
    format: QueryLogFormat,
    writer: BufWriter<File>,
    inode: u64,
    checked: Instant,
}

impl LogFile {
    /// JSON lines are appended to what the file holds. A dnstap file is
    /// one stream, begun anew (as fstrm's own writer does): a stream
    /// appended after another's STOP is not read.
    fn open(path: &Path, format: QueryLogFormat) -> io::Result<LogFile> {
        let mut options = OpenOptions::new();
        options.create(true);
        match format {
            QueryLogFormat::Json => options.append(true),
            QueryLogFormat::Dnstap => options.write(true).truncate(true),
        };
        let file = options.open(path)?;
        let inode = file.metadata()?.ino();
        let mut writer = BufWriter::with_capacity(64 * 1024, file);
        if format == QueryLogFormat::Dnstap {
            dnstap::start(&mut writer)?;
        }
        Ok(LogFile {
            path: path.to_path_buf(),
            format,
            writer,
            inode,
            checked: Instant::now(),
        })
    }

    /// Ends the file: a dnstap stream's STOP, and what is buffered.
    fn close(&mut self) {
        if self.format == QueryLogFormat::Dnstap {
            let _ = dnstap::stop(&mut self.writer);
        }
        let _ = self.writer.flush();
    }

    /// Opens the path again when the file there is no longer ours (renamed
    /// or removed by log rotation).
    fn follow_rotation(&mut self) {
        if self.checked.elapsed() < ROTATION_CHECK {
            return;
        }
        self.checked = Instant::now();
        let current = std::fs::metadata(&self.path).map(|metadata| metadata.ino());
        if current.is_ok_and(|inode| inode == self.inode) {
            return;
        }
        self.close();
        match LogFile::open(&self.path, self.format) {
            Ok(reopened) => *self = reopened,
            Err(error) => {
                tracing::warn!(file = %self.path.display(), %error, "cannot reopen the query log");
            }
        }
    }
}

/// The writer thread's loop, until every sender is gone.
fn write_entries(
    receiver: &Receiver<Entry>,
    mut sink: Sink,
    (registry, identity): (&DecisionRegistry, &[u8]),
    metrics: &Metrics,
) {
    let mut formatter = Formatter {
        registry,
        identity,
        decisions: registry.series(),
        // One line (or message) buffer for the life of the writer.
        line: String::with_capacity(1024),
        message: Vec::with_capacity(2048),
    };
    let mut failing = false;
    loop {
        let entry = match receiver.try_recv() {
            Ok(entry) => entry,
            Err(TryRecvError::Empty) => {
                sink.idle(metrics);
                std::thread::sleep(IDLE);
                continue;
            }
            Err(TryRecvError::Disconnected) => {
                sink.close();
                return;
            }
        };
        let written = match &mut sink {
            Sink::File(file) => {
                let written = formatter.write(&mut file.writer, file.format, &entry);
                match &written {
                    // Once per run of failures, not once per entry.
                    Err(error) if !failing => {
                        tracing::warn!(file = %file.path.display(), %error, "cannot write the query log");
                        failing = true;
                    }
                    Err(_) => {}
                    Ok(()) => failing = false,
                }
                file.follow_rotation();
                written.is_ok()
            }
            // Away: dropped, as when the writer is behind.
            Sink::Collector(collector) => match collector.writer(metrics) {
                None => false,
                Some(writer) => match formatter.write(writer, QueryLogFormat::Dnstap, &entry) {
                    Ok(()) => true,
                    Err(error) => {
                        collector.lost(&error, metrics);
                        false
                    }
                },
            },
        };
        let counter = if written {
            &metrics.query_log_written
        } else {
            &metrics.query_log_dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the writer needs to turn entries into lines or messages.
struct Formatter<'a> {
    registry: &'a DecisionRegistry,
    identity: &'a [u8],
    /// The registry's series as last read, to name decisions.
    decisions: Vec<(crate::metrics::DecisionKey, crate::metrics::DecisionSlot)>,
    line: String,
    message: Vec<u8>,
}

impl Formatter<'_> {
    /// Writes `entry` to `out` as a JSON line or as dnstap messages.
    fn write(
        &mut self,
        out: &mut impl Write,
        format: QueryLogFormat,
        entry: &Entry,
    ) -> io::Result<()> {
        match format {
            QueryLogFormat::Json => {
                describe(entry, &mut self.decisions, self.registry, &mut self.line);
                self.line.push('\n');
                out.write_all(self.line.as_bytes())
            }
            QueryLogFormat::Dnstap => write_dnstap(out, entry, self.identity, &mut self.message),
        }
    }
}

/// One entry as its two dnstap messages: the query, and the response when
/// one was sent and kept whole.
fn write_dnstap(
    out: &mut impl Write,
    entry: &Entry,
    identity: &[u8],
    buffer: &mut Vec<u8>,
) -> io::Result<()> {
    let protocol = match entry.transport {
        Transport::Udp => dnstap::Protocol::Udp,
        Transport::Tcp => dnstap::Protocol::Tcp,
        Transport::Tls => dnstap::Protocol::Dot,
    };
    let query = dnstap::Message {
        kind: dnstap::Kind::AuthQuery,
        protocol,
        client: entry.source,
        unix_micros: entry.unix_micros,
        bytes: Some(&entry.query[..usize::from(entry.query_len)]),
    };
    dnstap::write(out, &query, identity, buffer)?;
    if entry.response_size == 0 {
        return Ok(());
    }
    let whole = usize::from(entry.response_len) == entry.response_size as usize;
    let response = dnstap::Message {
        kind: dnstap::Kind::AuthResponse,
        bytes: whole.then(|| &entry.response[..usize::from(entry.response_len)]),
        ..query
    };
    dnstap::write(out, &response, identity, buffer)
}

/// One entry as a JSON object, written into `out` (cleared first) in a
/// fixed key order. Written by hand rather than through a map of values:
/// the writer formats every logged query, and this keeps it to one reused
/// buffer.
fn describe(
    entry: &Entry,
    decisions: &mut Vec<(crate::metrics::DecisionKey, crate::metrics::DecisionSlot)>,
    registry: &DecisionRegistry,
    out: &mut String,
) {
    use std::fmt::Write as _;
    out.clear();
    out.push_str("{\"time\":\"");
    out.push_str(&rfc3339(entry.unix_micros));
    let _ = write!(out, "\",\"client\":\"{}\",\"transport\":", entry.source);
    out.push_str(match entry.transport {
        Transport::Udp => "\"udp\"",
        Transport::Tcp => "\"tcp\"",
        Transport::Tls => "\"tls\"",
    });
    match Message::from_vec(&entry.query[..usize::from(entry.query_len)]) {
        Ok(query) => {
            if let Some(question) = query.queries.first() {
                out.push_str(",\"name\":");
                push_string(out, &question.name().to_ascii());
                let _ = write!(out, ",\"type\":\"{}\"", question.query_type());
            }
            if let Some(subnet) = subnet_of(&query) {
                let _ = write!(
                    out,
                    ",\"ecs\":\"{}/{}\"",
                    subnet.addr(),
                    subnet.source_prefix()
                );
            }
        }
        Err(_) => out.push_str(",\"query\":\"unreadable\""),
    }
    let (rcode, decision, limited) = match entry.outcome {
        Outcome::Reply {
            rcode, decision, ..
        } => (rcode, decision, None),
        Outcome::OverLimit {
            rcode,
            decision,
            action,
            ..
        } => (rcode, decision, Some(action)),
        Outcome::Drop => (0, None, None),
    };
    match crate::metrics::COUNTED_RCODES
        .iter()
        .find(|(code, _)| *code == rcode)
    {
        Some((_, name)) => {
            let _ = write!(out, ",\"rcode\":\"{name}\"");
        }
        None => {
            let _ = write!(out, ",\"rcode\":\"{rcode}\"");
        }
    }
    if let Some(action) = limited {
        let _ = write!(out, ",\"rate_limited\":\"{}\"", action.name());
    }
    if entry.response_size > 0 {
        let _ = write!(out, ",\"size\":{}", entry.response_size);
    }
    let whole = usize::from(entry.response_len) == entry.response_size as usize;
    if whole
        && limited != Some(OverLimit::Slipped)
        && let Ok(response) = Message::from_vec(&entry.response[..usize::from(entry.response_len)])
    {
        if let Some(subnet) = subnet_of(&response) {
            let _ = write!(out, ",\"scope\":{}", subnet.scope_prefix());
        }
        for (index, record) in response.answers.iter().enumerate() {
            out.push_str(if index == 0 { ",\"answer\":[" } else { "," });
            push_string(out, &format!("{} {}", record.record_type(), record.data));
        }
        if !response.answers.is_empty() {
            out.push(']');
        }
    }
    if let Some(slot) = decision {
        if !decisions.iter().any(|(_, known)| *known == slot) {
            *decisions = registry.series();
        }
        if let Some((key, _)) = decisions.iter().find(|(_, known)| *known == slot) {
            out.push_str(",\"steered\":{\"pool\":");
            push_string(out, &key.pool);
            let _ = write!(out, ",\"reason\":\"{}\"}}", key.reason.label());
        }
    }
    out.push('}');
}

/// `text` as a JSON string: quotes, backslashes and control characters
/// escaped (names and TXT data can hold any of them).
fn push_string(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// `unix_micros` as an RFC 3339 UTC timestamp with microseconds
/// (`2026-12-07T09:49:32.084105Z`), the form log collectors parse.
fn rfc3339(unix_micros: u64) -> String {
    let seconds = unix_micros / 1_000_000;
    let of_day = seconds % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}.{:06}Z",
        crate::utc_date(seconds),
        of_day / 3_600,
        of_day / 60 % 60,
        of_day % 60,
        unix_micros % 1_000_000
    )
}

/// The Client Subnet option of a message.
fn subnet_of(message: &Message) -> Option<&hickory_proto::rr::rdata::opt::ClientSubnet> {
    message
        .edns
        .as_ref()?
        .options()
        .options
        .iter()
        .find_map(|(_, option)| match option {
            EdnsOption::Subnet(subnet) => Some(subnet),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(query: &[u8], response: &[u8], outcome: Outcome) -> Entry {
        let mut entry = Entry {
            unix_micros: 1_796_636_972_084_105,
            source: "192.0.2.7".parse().expect("address"),
            transport: Transport::Udp,
            outcome,
            query: [0; QUERY_BYTES],
            query_len: query.len().min(QUERY_BYTES) as u16,
            response: [0; RESPONSE_BYTES],
            response_len: response.len().min(RESPONSE_BYTES) as u16,
            response_size: response.len() as u32,
        };
        entry.query[..usize::from(entry.query_len)]
            .copy_from_slice(&query[..usize::from(entry.query_len)]);
        entry.response[..usize::from(entry.response_len)]
            .copy_from_slice(&response[..usize::from(entry.response_len)]);
        entry
    }

    proptest! {
        /// Whatever bytes a client sent and whatever came back, the writer
        /// makes a line of it (the query marked unreadable when it is),
        /// never a panic.
        #[test]
        fn any_entry_becomes_a_json_object(
            query in proptest::collection::vec(any::<u8>(), 0..600),
            response in proptest::collection::vec(any::<u8>(), 0..1400),
            rcode in 0u16..24,
        ) {
            let registry = DecisionRegistry::default();
            let outcome = Outcome::Reply { rcode, decision: None, zone: None };
            let mut text = String::new();
            describe(&entry(&query, &response, outcome), &mut Vec::new(), &registry, &mut text);
            // Written by hand, so check it is JSON for every input.
            let line: serde_json::Value = serde_json::from_str(&text)
                .map_err(|error| TestCaseError::fail(format!("{error}: {text}")))?;
            prop_assert!(line.is_object());
            prop_assert_eq!(&line["client"], "192.0.2.7");
            prop_assert!(line["rcode"].is_string());
            // A query hickory cannot read is marked so, not dropped.
            if Message::from_vec(&query[..query.len().min(QUERY_BYTES)]).is_err() {
                prop_assert_eq!(&line["query"], "unreadable");
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_json_wants() {
        let mut out = String::new();
        push_string(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(out, r#""a\"b\\c\n\u0001é""#);
        let parsed: String = serde_json::from_str(&out).expect("JSON");
        assert_eq!(parsed, "a\"b\\c\n\u{1}é");
    }

    #[test]
    fn timestamps_are_rfc_3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_796_636_972_084_105),
            "2026-12-07T09:49:32.084105Z"
        );
        // Leap days, in a century year divisible by 400 and in 2024.
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_709_164_800_000_000),
            "2024-02-29T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339(1_735_689_599_999_999),
            "2024-12-31T23:59:59.999999Z"
        );
    }
}
