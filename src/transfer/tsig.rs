//! TSIG (RFC 8945): HMAC signatures on the raw bytes of DNS messages,
//! shared by a secondary and its primaries.
//!
//! Control plane only. The transfer client signs its SOA and AXFR requests
//! with [`sign_request`] and checks every message of the answer, an AXFR
//! stream included, with a [`ResponseVerifier`]; the NOTIFY handler checks
//! a primary's signed NOTIFY with [`verify_request`] and signs its reply
//! with [`sign_response`]. That NOTIFY, rare, is the only time TSIG runs on
//! the query path: ordinary queries never reach this module. Messages are
//! read where they lie, without copying them; hashing streams through
//! `ring::hmac`, so a multi-message transfer is never buffered to be
//! verified. A message is never trusted before its MAC is: the record
//! counts, names and lengths of every message are read with bounds checks,
//! and a message that lies about them is [`TsigError::Malformed`].

use std::fmt;

use ring::hmac;
use thiserror::Error;

/// The fudge Steer signs with: how many seconds the peer's clock may be
/// off ours. RFC 8945 §10 recommends 300.
pub const FUDGE: u16 = 300;

/// How many messages of a stream may come unsigned in a row (RFC 8945
/// §5.3.1): a signer must sign at least every hundredth message.
pub const MAX_UNSIGNED_RUN: usize = 99;

/// TSIG error BADSIG: the MAC does not verify (RFC 8945 §3).
pub const BADSIG: u16 = 16;
/// TSIG error BADKEY: the key (name and algorithm) is not known.
pub const BADKEY: u16 = 17;
/// TSIG error BADTIME: signed outside the time window.
pub const BADTIME: u16 = 18;
/// TSIG error BADTRUNC: the MAC is truncated below what is accepted.
pub const BADTRUNC: u16 = 22;

/// RCODE of a reply to a request whose TSIG is refused (RFC 8945 §5.2).
pub const RCODE_NOTAUTH: u8 = 9;
/// RCODE of a reply to a request that does not parse.
pub const RCODE_FORMERR: u8 = 1;

/// The TSIG record type.
const TSIG_TYPE: u16 = 250;
/// The class a TSIG record must have.
const CLASS_ANY: u16 = 255;
/// The length of a DNS message header.
const HEADER_LENGTH: usize = 12;
/// The largest MAC of a supported algorithm (HMAC-SHA512).
const MAX_MAC: usize = 64;
/// The most pointers a name may follow; more is a loop.
const MAX_POINTERS: usize = 128;
/// The length of the server's time in a BADTIME reply's other data.
const BADTIME_OTHER: usize = 6;

/// A TSIG algorithm Steer implements, named as in RFC 8945 §6.
/// hmac-sha224 (not in ring) and hmac-md5 (broken) are not among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `hmac-sha256.`: the one to use.
    HmacSha256,
    /// `hmac-sha384.`.
    HmacSha384,
    /// `hmac-sha512.`.
    HmacSha512,
    /// `hmac-sha1.`: legacy, for primaries that offer nothing better.
    HmacSha1,
}

/// Every supported algorithm, in the order error messages list them.
const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::HmacSha256,
    Algorithm::HmacSha384,
    Algorithm::HmacSha512,
    Algorithm::HmacSha1,
];

impl Algorithm {
    /// The algorithm's name without the trailing dot, as configuration
    /// files spell it (`hmac-sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
            Algorithm::HmacSha1 => "hmac-sha1",
        }
    }

    /// The length of the algorithm's full MAC in bytes.
    pub fn mac_length(self) -> usize {
        match self {
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha384 => 48,
            Algorithm::HmacSha512 => 64,
            Algorithm::HmacSha1 => 20,
        }
    }

    /// The name in canonical wire form, as the TSIG RR and its digest
    /// carry it.
    fn wire(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
            Algorithm::HmacSha1 => b"\x09hmac-sha1\x00",
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
            Algorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        }
    }
}

/// A shared secret: the key's name, its algorithm and the secret, as an
/// operator configures it on both ends (BIND's `key` clause, NSD's `key:`).
/// Cloning copies no heap memory; `Debug` never shows the secret.
#[derive(Clone)]
pub struct TsigKey {
    /// The key name, lower-cased, absolute, in wire form.
    name: WireName,
    algorithm: Algorithm,
    key: hmac::Key,
}

impl TsigKey {
    /// A key from configuration text: `name` like `transfer-key` or
    /// `transfer-key.` (always absolute), `algorithm` like `hmac-sha256`
    /// (any letter case, trailing dot optional), `secret_base64` the
    /// secret in base64 as BIND's `secret "...";` and NSD's `secret:` hold
    /// it (white space is ignored). The error is a sentence fragment
    /// naming what to fix, for the caller to prefix with where the key is
    /// configured.
    pub fn new(name: &str, algorithm: &str, secret_base64: &str) -> Result<TsigKey, String> {
        let name = parse_key_name(name)?;
        let algorithm_text = algorithm.trim();
        let bare = algorithm_text.strip_suffix('.').unwrap_or(algorithm_text);
        let Some(algorithm) = ALGORITHMS
            .into_iter()
            .find(|known| known.name().eq_ignore_ascii_case(bare))
        else {
            let supported: Vec<&str> = ALGORITHMS.iter().map(|known| known.name()).collect();
            return Err(format!(
                "unknown TSIG algorithm {algorithm_text:?} (supported: {})",
                supported.join(", ")
            ));
        };
        let compact: Vec<u8> = secret_base64
            .bytes()
            .filter(|byte| !byte.is_ascii_whitespace())
            .collect();
        let secret = data_encoding::BASE64
            .decode(&compact)
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(&compact))
            .map_err(|_| "secret is not valid base64".to_owned())?;
        if secret.is_empty() {
            return Err("secret is empty".to_owned());
        }
        Ok(TsigKey {
            name,
            algorithm,
            key: hmac::Key::new(algorithm.ring(), &secret),
        })
    }

    /// The key name in presentation form, with its trailing dot
    /// (`transfer-key.`).
    pub fn name(&self) -> String {
        self.name.presentation()
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether a TSIG RR's key name and algorithm (both lower-cased wire
    /// form) name this key.
    fn is(&self, name: &WireName, algorithm: &WireName) -> bool {
        self.name.as_bytes() == name.as_bytes() && self.algorithm.wire() == algorithm.as_bytes()
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TsigKey")
            .field("name", &self.name())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A key name from configuration, lower-cased in wire form. Escapes
/// (`\.`, `\032`) are not supported: key names are plain hostnames.
fn parse_key_name(text: &str) -> Result<WireName, String> {
    let trimmed = text.trim();
    let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let problem = |reason: &str| format!("key name {trimmed:?} {reason}");
    if bare.is_empty() {
        return Err(problem("is empty"));
    }
    let mut name = WireName::default();
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(problem("has an empty label"));
        }
        if label.len() > 63 {
            return Err(problem("has a label longer than 63 bytes"));
        }
        if !label
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b'\\')
        {
            return Err(problem(
                "may hold only printable ASCII without spaces or backslashes",
            ));
        }
        if !name.push_label(label.as_bytes()) {
            return Err(problem("is longer than 255 bytes"));
        }
    }
    if !name.push_label(b"") {
        return Err(problem("is longer than 255 bytes"));
    }
    Ok(name)
}

/// A MAC: a TSIG's signature, kept to sign or check the next message (the
/// answer to a request, the next signed message of a stream). Fixed size,
/// on the stack.
#[derive(Clone, Copy)]
pub struct Mac {
    bytes: [u8; MAX_MAC],
    length: u8,
}

impl Mac {
    /// `bytes` as a MAC, when it is no longer than any supported
    /// algorithm's.
    fn new(bytes: &[u8]) -> Option<Mac> {
        let mut mac = Mac {
            bytes: [0; MAX_MAC],
            length: u8::try_from(bytes.len()).ok()?,
        };
        mac.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(mac)
    }

    fn from_tag(tag: &hmac::Tag) -> Mac {
        // Every supported algorithm's MAC fits.
        Mac::new(tag.as_ref()).unwrap_or(Mac {
            bytes: [0; MAX_MAC],
            length: 0,
        })
    }

    /// The MAC's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.length)]
    }
}

impl std::ops::Deref for Mac {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Mac {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.as_bytes() {
            write!(formatter, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Why a message's TSIG was refused, or why one could not be added.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TsigError {
    /// The message carries no TSIG where one is required: a reply to a
    /// signed request, the first or the last message of a stream.
    #[error("the message carries no TSIG")]
    Unsigned,
    /// More than [`MAX_UNSIGNED_RUN`] messages of a stream came unsigned
    /// in a row.
    #[error("more than {MAX_UNSIGNED_RUN} messages in a row carry no TSIG")]
    TooManyUnsigned,
    /// Signed with a key of another name (BADKEY).
    #[error("signed with key {name}, not one configured here (BADKEY)")]
    UnknownKey {
        /// The key name the TSIG carries, in presentation form.
        name: String,
    },
    /// The key name matches but the algorithm is not the key's (BADKEY).
    #[error("signed with algorithm {name}, not the key's (BADKEY)")]
    BadAlgorithm {
        /// The algorithm name the TSIG carries, in presentation form.
        name: String,
    },
    /// The MAC does not verify: another secret, or the message was changed
    /// on the way (BADSIG).
    #[error("the TSIG MAC does not verify: another secret, or the message was altered (BADSIG)")]
    BadSignature,
    /// Signed at a time further from ours than the fudge allows; the MAC
    /// itself verified (BADTIME).
    #[error(
        "signed at {signed}, {} s from our clock ({now}), beyond the fudge of {fudge} s: are both clocks right? (BADTIME)",
        signed.abs_diff(*now)
    )]
    BadTime {
        /// The time signed (Unix seconds).
        signed: u64,
        /// Our time (Unix seconds).
        now: u64,
        /// The fudge the TSIG allows.
        fudge: u16,
    },
    /// The MAC is shorter than the algorithm's: truncated MACs (RFC 8945
    /// §5.2.2.1) are never accepted (BADTRUNC).
    #[error("the TSIG MAC is truncated to {length} bytes, where {full} are required (BADTRUNC)")]
    Truncated {
        /// The length received.
        length: usize,
        /// The algorithm's full length.
        full: usize,
    },
    /// The peer answered with a TSIG error: it refused our signature.
    #[error("the peer refused our TSIG with error {} ({code})", error_name(*code))]
    Reported {
        /// The TSIG error code (16 BADSIG, 17 BADKEY, 18 BADTIME, 22
        /// BADTRUNC, or another).
        code: u16,
    },
    /// The message does not parse, or its TSIG is not the last record of
    /// the additional section (FORMERR); or a message to sign is not a
    /// complete DNS message with room for a TSIG.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// An earlier message of the stream failed: the stream is abandoned.
    #[error("an earlier message of the stream failed TSIG verification")]
    StreamFailed,
}

impl TsigError {
    /// The TSIG error code a reply should carry for this failure (BADSIG,
    /// BADKEY, BADTIME, BADTRUNC), or None where there is none (an
    /// unsigned or malformed message, an error the peer reported).
    pub fn code(&self) -> Option<u16> {
        match self {
            TsigError::UnknownKey { .. } | TsigError::BadAlgorithm { .. } => Some(BADKEY),
            TsigError::BadSignature => Some(BADSIG),
            TsigError::BadTime { .. } => Some(BADTIME),
            TsigError::Truncated { .. } => Some(BADTRUNC),
            _ => None,
        }
    }
}

/// The mnemonic of a TSIG error code.
fn error_name(code: u16) -> &'static str {
    match code {
        BADSIG => "BADSIG",
        BADKEY => "BADKEY",
        BADTIME => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        BADTRUNC => "BADTRUNC",
        _ => "unknown",
    }
}

/// Signs a request: appends a TSIG RR to `message` (a complete DNS
/// message; ARCOUNT is incremented) with time signed `now` (Unix
/// seconds), fudge [`FUDGE`] and the message's ID as original ID. Returns
/// the request MAC, which verifies the reply ([`ResponseVerifier::new`]).
/// Fails, leaving `message` as it was, when it is shorter than a header,
/// its ARCOUNT is at its maximum, or it would outgrow 65535 bytes.
pub fn sign_request(key: &TsigKey, message: &mut Vec<u8>, now: u64) -> Result<Mac, TsigError> {
    sign(key, None, message, now)
}

/// Signs a response: appends a TSIG RR to `message`, the answer to a
/// request that carried `request_mac` and was verified with `key`
/// ([`verify_request`]). The digest covers the request MAC, so the reply
/// proves it answers that request (RFC 8945 §4.3.1). Returns the
/// response's MAC; fails as [`sign_request`] does.
pub fn sign_response(
    key: &TsigKey,
    request_mac: &[u8],
    message: &mut Vec<u8>,
    now: u64,
) -> Result<Mac, TsigError> {
    sign(key, Some(request_mac), message, now)
}

fn sign(
    key: &TsigKey,
    request_mac: Option<&[u8]>,
    message: &mut Vec<u8>,
    now: u64,
) -> Result<Mac, TsigError> {
    let id = message_id(message)?;
    let variables = Variables {
        key_name: key.name.as_bytes(),
        ttl: 0,
        algorithm: key.algorithm.wire(),
        time_signed: now,
        fudge: FUDGE,
        error: 0,
        other: &[],
    };
    let mut context = hmac::Context::with_key(&key.key);
    if let Some(request_mac) = request_mac {
        digest_mac(&mut context, request_mac);
    }
    context.update(message);
    variables.digest(&mut context);
    let mac = Mac::from_tag(&context.sign());
    append_record(message, &variables, mac.as_bytes(), id)?;
    Ok(mac)
}

/// Signs every message of a multi-message response (an AXFR stream),
/// as NSD does and RFC 8945 §5.3.1 allows: the first with the request's
/// MAC in its digest and the full TSIG variables, each later one with the
/// prior MAC and its timers only.
pub struct StreamSigner {
    key: TsigKey,
    /// The request's MAC, then each message's.
    prior: Mac,
    first: bool,
}

impl StreamSigner {
    /// A signer of the answer to a request verified with `key`, whose MAC
    /// was `request_mac` ([`verify_request`]).
    pub fn new(key: &TsigKey, request_mac: Mac) -> Self {
        StreamSigner {
            key: key.clone(),
            prior: request_mac,
            first: true,
        }
    }

    /// Appends the TSIG RR of the next message to `message`; fails as
    /// [`sign_request`] does.
    pub fn sign(&mut self, message: &mut Vec<u8>, now: u64) -> Result<(), TsigError> {
        if self.first {
            self.first = false;
            self.prior = sign_response(&self.key, self.prior.as_bytes(), message, now)?;
            return Ok(());
        }
        let id = message_id(message)?;
        let variables = Variables {
            key_name: self.key.name.as_bytes(),
            ttl: 0,
            algorithm: self.key.algorithm.wire(),
            time_signed: now,
            fudge: FUDGE,
            error: 0,
            other: &[],
        };
        let mut context = hmac::Context::with_key(&self.key.key);
        digest_mac(&mut context, self.prior.as_bytes());
        context.update(message);
        context.update(&time_bytes(now));
        context.update(&FUDGE.to_be_bytes());
        let mac = Mac::from_tag(&context.sign());
        append_record(message, &variables, mac.as_bytes(), id)?;
        self.prior = mac;
        Ok(())
    }
}

/// What [`ResponseVerifier::verify`] found in a message that passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageCheck {
    /// It carried a valid TSIG RR, which starts at `tsig_at`: the
    /// message proper is the bytes before it, with one record fewer than
    /// ARCOUNT says. [`MessageCheck::strip`] makes it so, for a parser
    /// that must not see the TSIG.
    Signed {
        /// Where the TSIG RR starts.
        tsig_at: usize,
    },
    /// It carried no TSIG, which the middle of a stream may do; its
    /// records are authenticated by the next signed message's MAC, so
    /// they must not be acted on before [`ResponseVerifier::finish`].
    Unsigned,
}

impl MessageCheck {
    /// Removes the TSIG RR from `message`, the message this check is of:
    /// truncates it where the TSIG starts and decrements ARCOUNT. Does
    /// nothing to an unsigned message.
    pub fn strip(self, message: &mut Vec<u8>) {
        if let MessageCheck::Signed { tsig_at } = self {
            remove_record(message, tsig_at);
        }
    }
}

/// `message` without its TSIG RR, for a parser that must not see it: a
/// copy, truncated where the TSIG starts and with ARCOUNT decremented,
/// when it has one; else (no TSIG, or not a message that parses) the
/// message as it is. Reads the message again: call it on a message
/// already verified, or use [`MessageCheck::strip`] to cut in place.
pub fn without_tsig(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match find_tsig(message) {
        Ok(Some(record)) => {
            let mut copy = message[..record.start].to_vec();
            // find_tsig found the TSIG counted in ARCOUNT.
            let additional = u16::from_be_bytes([copy[10], copy[11]]).saturating_sub(1);
            copy[10..12].copy_from_slice(&additional.to_be_bytes());
            std::borrow::Cow::Owned(copy)
        }
        Ok(None) | Err(_) => std::borrow::Cow::Borrowed(message),
    }
}

/// Where a stream of responses stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    /// No message yet: the next must be signed.
    Start,
    /// The last message was signed.
    Signed,
    /// The last messages, this many, were unsigned.
    Unsigned(usize),
    /// A message failed: nothing more is accepted.
    Failed,
}

/// Verifies the response to a signed request, message by message: one
/// message for a query over UDP, a stream of them for an AXFR over TCP.
///
/// RFC 8945 §5.3.1: the first message must be signed, with the request's
/// MAC in its digest; later messages may be unsigned, up to
/// [`MAX_UNSIGNED_RUN`] in a row, and are then covered by the next signed
/// message, whose digest holds the prior MAC, the unsigned messages as
/// received and only the timers of its own TSIG; the last must be signed.
/// Unsigned messages are hashed as they come, never kept. Only full-length
/// MACs are accepted ([`TsigError::Truncated`]).
pub struct ResponseVerifier {
    key: TsigKey,
    /// The digest so far: the prior MAC and the unsigned messages since.
    context: hmac::Context,
    stream: Stream,
}

impl ResponseVerifier {
    /// A verifier of the answer to a request signed with `key`, whose MAC
    /// ([`sign_request`]) was `request_mac`.
    pub fn new(key: &TsigKey, request_mac: &[u8]) -> Self {
        let mut context = hmac::Context::with_key(&key.key);
        digest_mac(&mut context, request_mac);
        ResponseVerifier {
            key: key.clone(),
            context,
            stream: Stream::Start,
        }
    }

    /// Checks the next message of the response, in the order received;
    /// `now` is the time (Unix seconds). A message that is signed is
    /// [`MessageCheck::Signed`] and authentic, together with the unsigned
    /// ones before it. After an error the stream is abandoned: every
    /// further call fails with [`TsigError::StreamFailed`]. A TSIG error
    /// in a signed message's TSIG is [`TsigError::Reported`], checked
    /// before its MAC: the peer refused our request either way.
    pub fn verify(&mut self, message: &[u8], now: u64) -> Result<MessageCheck, TsigError> {
        if self.stream == Stream::Failed {
            return Err(TsigError::StreamFailed);
        }
        let checked = self.check(message, now);
        if checked.is_err() {
            self.stream = Stream::Failed;
        }
        checked
    }

    fn check(&mut self, message: &[u8], now: u64) -> Result<MessageCheck, TsigError> {
        let Some(record) = find_tsig(message)? else {
            self.stream = match self.stream {
                Stream::Signed => Stream::Unsigned(1),
                Stream::Unsigned(run) if run < MAX_UNSIGNED_RUN => Stream::Unsigned(run + 1),
                Stream::Unsigned(_) => return Err(TsigError::TooManyUnsigned),
                Stream::Start | Stream::Failed => return Err(TsigError::Unsigned),
            };
            self.context.update(message);
            return Ok(MessageCheck::Unsigned);
        };
        if !self.key.is(&record.key_name, &record.algorithm) {
            return Err(identity_error(&self.key, &record));
        }
        if record.error != 0 {
            return Err(TsigError::Reported { code: record.error });
        }
        check_mac_length(self.key.algorithm, record.mac)?;
        let fresh = hmac::Context::with_key(&self.key.key);
        let mut context = std::mem::replace(&mut self.context, fresh);
        record.digest_message(&mut context, message);
        if self.stream == Stream::Start {
            record.variables().digest(&mut context);
        } else {
            // RFC 8945 §5.3.1: later messages digest the timers only.
            context.update(&time_bytes(record.time_signed));
            context.update(&record.fudge.to_be_bytes());
        }
        if !same_mac(context.sign().as_ref(), record.mac) {
            return Err(TsigError::BadSignature);
        }
        check_time(&record, now)?;
        digest_mac(&mut self.context, record.mac);
        self.stream = Stream::Signed;
        Ok(MessageCheck::Signed {
            tsig_at: record.start,
        })
    }

    /// Call after the last message: fails unless it was signed (RFC 8945
    /// §5.3.1), when no message was verified, and when a message failed.
    pub fn finish(&self) -> Result<(), TsigError> {
        match self.stream {
            Stream::Signed => Ok(()),
            Stream::Start | Stream::Unsigned(_) => Err(TsigError::Unsigned),
            Stream::Failed => Err(TsigError::StreamFailed),
        }
    }
}

/// What [`verify_request`] found in a request that did not fail.
#[derive(Clone, Debug)]
pub enum RequestCheck<'keys> {
    /// The request carries no TSIG: whether that is acceptable is the
    /// caller's policy.
    NotSigned,
    /// The request carries a valid TSIG: sign the reply with
    /// `sign_response(key, &request_mac, reply, now)`.
    Verified {
        /// The key that signed it.
        key: &'keys TsigKey,
        /// The key's index in the slice given to [`verify_request`].
        key_index: usize,
        /// The request's MAC, part of the reply's digest.
        request_mac: Mac,
        /// When the request was signed (Unix seconds).
        time_signed: u64,
        /// Where the TSIG RR starts: the request proper is the bytes
        /// before, with one record fewer than ARCOUNT says ([`without_tsig`]
        /// makes it so).
        tsig_at: usize,
    },
}

/// A request refused by [`verify_request`]: why, and what the reply must
/// carry (RFC 8945 §5.2 and §5.3.2). The reply's RCODE is [`Rejection::rcode`]
/// and [`Self::append_tsig`] adds its TSIG RR:
///
/// - malformed (the TSIG is not last, the message does not parse):
///   FORMERR and no TSIG;
/// - unknown key or algorithm (BADKEY), MAC that does not verify (BADSIG),
///   truncated MAC (BADTRUNC): NOTAUTH and an unsigned TSIG (MAC size 0)
///   naming the request's key and algorithm, carrying the error;
/// - time outside the fudge (BADTIME), the MAC having verified: NOTAUTH
///   and a TSIG signed with the key, as BIND does: time signed is the
///   request's, other data our time (48 bits), so that the client can
///   see how far off its clock is.
///
/// Not done: RFC 8945 §5.2.3's cache of the last time signed per key,
/// which refuses a replay within the fudge.
#[derive(Clone, Debug)]
pub struct Rejection<'keys> {
    error: TsigError,
    /// What the TSIG RR of the reply echoes; None for a malformed request.
    /// Boxed: two names make it large, and refusals are rare.
    echo: Option<Box<Echo<'keys>>>,
}

/// What a refused request's reply echoes back.
#[derive(Clone, Debug)]
struct Echo<'keys> {
    key_name: WireName,
    algorithm: WireName,
    /// For BADTIME: the key, the request's MAC and time signed.
    signed: Option<(&'keys TsigKey, Mac, u64)>,
}

impl Rejection<'_> {
    /// Why the request was refused.
    pub fn error(&self) -> &TsigError {
        &self.error
    }

    /// The RCODE of the reply: NOTAUTH ([`RCODE_NOTAUTH`]) for a TSIG
    /// refused, FORMERR ([`RCODE_FORMERR`]) for a message that does not
    /// parse.
    pub fn rcode(&self) -> u8 {
        if self.echo.is_some() {
            RCODE_NOTAUTH
        } else {
            RCODE_FORMERR
        }
    }

    /// Appends the TSIG RR the reply carries (see [`Rejection`]) to
    /// `message`, the reply, its RCODE already set; nothing for a
    /// malformed request. `now` is the time (Unix seconds). Fails as
    /// [`sign_request`] does.
    pub fn append_tsig(&self, message: &mut Vec<u8>, now: u64) -> Result<(), TsigError> {
        let Some(echo) = &self.echo else {
            return Ok(());
        };
        let id = message_id(message)?;
        let code = self.error.code().unwrap_or(BADSIG);
        match echo.signed {
            Some((key, request_mac, time_signed)) if code == BADTIME => {
                let server_time: [u8; BADTIME_OTHER] = time_bytes(now);
                let variables = Variables {
                    key_name: key.name.as_bytes(),
                    ttl: 0,
                    algorithm: key.algorithm.wire(),
                    time_signed,
                    fudge: FUDGE,
                    error: BADTIME,
                    other: &server_time,
                };
                let mut context = hmac::Context::with_key(&key.key);
                digest_mac(&mut context, request_mac.as_bytes());
                context.update(message);
                variables.digest(&mut context);
                let mac = context.sign();
                append_record(message, &variables, mac.as_ref(), id)
            }
            _ => {
                let variables = Variables {
                    key_name: echo.key_name.as_bytes(),
                    ttl: 0,
                    algorithm: echo.algorithm.as_bytes(),
                    time_signed: now,
                    fudge: FUDGE,
                    error: code,
                    other: &[],
                };
                append_record(message, &variables, &[], id)
            }
        }
    }
}

impl fmt::Display for Rejection<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(formatter)
    }
}

impl std::error::Error for Rejection<'_> {}

/// Checks the TSIG of a received request (a NOTIFY) against `keys`, found
/// by key name and algorithm; `now` is the time (Unix seconds). In RFC
/// 8945 §5.2's order: the key (BADKEY), the MAC (BADSIG; a truncated MAC
/// is BADTRUNC, never checked), then the time (BADTIME). Only full-length
/// MACs are accepted. A refusal says what the reply must carry.
pub fn verify_request<'keys>(
    keys: &'keys [TsigKey],
    message: &[u8],
    now: u64,
) -> Result<RequestCheck<'keys>, Rejection<'keys>> {
    let malformed = |error| Rejection { error, echo: None };
    let Some(record) = find_tsig(message).map_err(malformed)? else {
        return Ok(RequestCheck::NotSigned);
    };
    let mut echo = Echo {
        key_name: record.key_name,
        algorithm: record.algorithm,
        signed: None,
    };
    let Some((key_index, key)) = keys
        .iter()
        .enumerate()
        .find(|(_, key)| key.is(&record.key_name, &record.algorithm))
    else {
        let error = match keys.iter().find(|key| key.name == record.key_name) {
            Some(key) => identity_error(key, &record),
            None => TsigError::UnknownKey {
                name: record.key_name.presentation(),
            },
        };
        return Err(Rejection {
            error,
            echo: Some(Box::new(echo)),
        });
    };
    if let Err(error) = check_mac_length(key.algorithm, record.mac) {
        let echo = matches!(error, TsigError::Truncated { .. }).then(|| Box::new(echo));
        return Err(Rejection { error, echo });
    }
    let mut context = hmac::Context::with_key(&key.key);
    record.digest_message(&mut context, message);
    record.variables().digest(&mut context);
    if !same_mac(context.sign().as_ref(), record.mac) {
        return Err(Rejection {
            error: TsigError::BadSignature,
            echo: Some(Box::new(echo)),
        });
    }
    let mac = Mac::new(record.mac).ok_or(TsigError::Malformed("TSIG MAC too long"));
    let mac = mac.map_err(malformed)?;
    if let Err(error) = check_time(&record, now) {
        echo.signed = Some((key, mac, record.time_signed));
        return Err(Rejection {
            error,
            echo: Some(Box::new(echo)),
        });
    }
    Ok(RequestCheck::Verified {
        key,
        key_index,
        request_mac: mac,
        time_signed: record.time_signed,
        tsig_at: record.start,
    })
}

/// The error for a TSIG whose key name or algorithm is not `key`'s.
fn identity_error(key: &TsigKey, record: &Record<'_>) -> TsigError {
    if key.name == record.key_name {
        TsigError::BadAlgorithm {
            name: record.algorithm.presentation(),
        }
    } else {
        TsigError::UnknownKey {
            name: record.key_name.presentation(),
        }
    }
}

/// Accepts a MAC of the algorithm's full length only. Longer cannot be
/// (FORMERR, RFC 8945 §5.2.2.1); shorter is truncated, which Steer never
/// asks for.
fn check_mac_length(algorithm: Algorithm, mac: &[u8]) -> Result<(), TsigError> {
    let full = algorithm.mac_length();
    match mac.len().cmp(&full) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => {
            Err(TsigError::Malformed("TSIG MAC longer than the algorithm's"))
        }
        std::cmp::Ordering::Less => Err(TsigError::Truncated {
            length: mac.len(),
            full,
        }),
    }
}

fn check_time(record: &Record<'_>, now: u64) -> Result<(), TsigError> {
    if record.time_signed.abs_diff(now) > u64::from(record.fudge) {
        return Err(TsigError::BadTime {
            signed: record.time_signed,
            now,
            fudge: record.fudge,
        });
    }
    Ok(())
}

/// Compares a computed MAC with a received one in time that does not
/// depend on where they differ. (The lengths are public.) ring offers
/// this only with `hmac::verify`, which wants the data in one piece.
fn same_mac(computed: &[u8], received: &[u8]) -> bool {
    if computed.len() != received.len() {
        return false;
    }
    let difference = computed
        .iter()
        .zip(received)
        .fold(0u8, |difference, (left, right)| difference | (left ^ right));
    std::hint::black_box(difference) == 0
}

/// Feeds a MAC as a digest holds it: length on two bytes, then the MAC.
fn digest_mac(context: &mut hmac::Context, mac: &[u8]) {
    // A MAC is at most 64 bytes: the length fits.
    context.update(&(mac.len() as u16).to_be_bytes());
    context.update(mac);
}

/// A time as TSIG carries it: 48 bits, big-endian.
fn time_bytes(time: u64) -> [u8; 6] {
    let bytes = time.to_be_bytes();
    [bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]
}

/// The TSIG variables (RFC 8945 §4.3.3), also the fields of the TSIG RR
/// written, with the MAC and the original ID.
struct Variables<'a> {
    key_name: &'a [u8],
    ttl: u32,
    algorithm: &'a [u8],
    time_signed: u64,
    fudge: u16,
    error: u16,
    other: &'a [u8],
}

impl Variables<'_> {
    fn digest(&self, context: &mut hmac::Context) {
        context.update(self.key_name);
        context.update(&CLASS_ANY.to_be_bytes());
        context.update(&self.ttl.to_be_bytes());
        context.update(self.algorithm);
        context.update(&time_bytes(self.time_signed));
        context.update(&self.fudge.to_be_bytes());
        context.update(&self.error.to_be_bytes());
        // Other data is empty or a BADTIME's six bytes.
        context.update(&(self.other.len() as u16).to_be_bytes());
        context.update(self.other);
    }
}

/// The ID of a message to sign, when it has a header.
fn message_id(message: &[u8]) -> Result<u16, TsigError> {
    match message {
        [high, low, _, _, _, _, _, _, _, _, _, _, ..] => Ok(u16::from_be_bytes([*high, *low])),
        _ => Err(TsigError::Malformed("shorter than a DNS header")),
    }
}

/// Appends a TSIG RR and counts it in ARCOUNT; fails, changing nothing,
/// when ARCOUNT or the message length would overflow.
fn append_record(
    message: &mut Vec<u8>,
    variables: &Variables<'_>,
    mac: &[u8],
    original_id: u16,
) -> Result<(), TsigError> {
    let Some(count) = message.get(10..12) else {
        return Err(TsigError::Malformed("shorter than a DNS header"));
    };
    let additional = u16::from_be_bytes([count[0], count[1]])
        .checked_add(1)
        .ok_or(TsigError::Malformed("ARCOUNT at its maximum"))?;
    let rdata_length = variables.algorithm.len() + 16 + mac.len() + variables.other.len();
    let record_length = variables.key_name.len() + 10 + rdata_length;
    if message.len() + record_length > usize::from(u16::MAX) {
        return Err(TsigError::Malformed(
            "no room for a TSIG within 65535 bytes",
        ));
    }
    message[10..12].copy_from_slice(&additional.to_be_bytes());
    message.reserve(record_length);
    message.extend_from_slice(variables.key_name);
    message.extend_from_slice(&TSIG_TYPE.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&variables.ttl.to_be_bytes());
    // Bounded by the 65535-byte check above.
    message.extend_from_slice(&(rdata_length as u16).to_be_bytes());
    message.extend_from_slice(variables.algorithm);
    message.extend_from_slice(&time_bytes(variables.time_signed));
    message.extend_from_slice(&variables.fudge.to_be_bytes());
    message.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    message.extend_from_slice(mac);
    message.extend_from_slice(&original_id.to_be_bytes());
    message.extend_from_slice(&variables.error.to_be_bytes());
    message.extend_from_slice(&(variables.other.len() as u16).to_be_bytes());
    message.extend_from_slice(variables.other);
    Ok(())
}

/// Truncates `message` at `start`, the last record, and decrements
/// ARCOUNT. Does nothing when `start` is not within the message after
/// its header or ARCOUNT is zero.
fn remove_record(message: &mut Vec<u8>, start: usize) {
    if start < HEADER_LENGTH || start > message.len() {
        return;
    }
    let count = u16::from_be_bytes([message[10], message[11]]);
    if let Some(less) = count.checked_sub(1) {
        message[10..12].copy_from_slice(&less.to_be_bytes());
        message.truncate(start);
    }
}

/// A domain name in wire form, at most 255 bytes, kept on the stack.
#[derive(Clone, Copy)]
struct WireName {
    bytes: [u8; 255],
    length: u8,
}

impl Default for WireName {
    fn default() -> Self {
        WireName {
            bytes: [0; 255],
            length: 0,
        }
    }
}

impl PartialEq for WireName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for WireName {}

impl fmt::Debug for WireName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.presentation())
    }
}

impl WireName {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.length)]
    }

    /// Adds a label (its length byte, then the label lower-cased); false,
    /// adding nothing, when the name would outgrow 255 bytes.
    fn push_label(&mut self, label: &[u8]) -> bool {
        let at = usize::from(self.length);
        let end = at + 1 + label.len();
        if label.len() > 63 || end > self.bytes.len() {
            return false;
        }
        self.bytes[at] = label.len() as u8;
        for (to, from) in self.bytes[at + 1..end].iter_mut().zip(label) {
            *to = from.to_ascii_lowercase();
        }
        // At most 255, checked above.
        self.length = end as u8;
        true
    }

    /// The name in presentation form with its trailing dot; bytes other
    /// than printable ASCII, and dots and backslashes within labels, as
    /// `\DDD`.
    fn presentation(&self) -> String {
        crate::table::display_wire_name(self.as_bytes())
    }
}

/// A TSIG RR as received, its fields borrowed from the message.
struct Record<'message> {
    /// Where the RR starts in the message.
    start: usize,
    /// Lower-cased, uncompressed.
    key_name: WireName,
    ttl: u32,
    /// Lower-cased, uncompressed.
    algorithm: WireName,
    time_signed: u64,
    fudge: u16,
    mac: &'message [u8],
    original_id: u16,
    error: u16,
    other: &'message [u8],
}

impl Record<'_> {
    /// Feeds the message proper as its digest holds it (RFC 8945 §4.3.2):
    /// the original ID in place of the ID, ARCOUNT one less, the bytes
    /// up to the TSIG RR.
    fn digest_message(&self, context: &mut hmac::Context, message: &[u8]) {
        // find_tsig checked the header and that the TSIG is counted.
        let additional = u16::from_be_bytes([message[10], message[11]]).saturating_sub(1);
        context.update(&self.original_id.to_be_bytes());
        context.update(&message[2..10]);
        context.update(&additional.to_be_bytes());
        context.update(&message[HEADER_LENGTH..self.start]);
    }

    fn variables(&self) -> Variables<'_> {
        Variables {
            key_name: self.key_name.as_bytes(),
            ttl: self.ttl,
            algorithm: self.algorithm.as_bytes(),
            time_signed: self.time_signed,
            fudge: self.fudge,
            error: self.error,
            other: self.other,
        }
    }
}

/// Finds a message's TSIG RR, reading every section: None when there is
/// none. A TSIG anywhere but last in the additional section, bytes after
/// it, or a message that does not parse is malformed.
fn find_tsig(message: &[u8]) -> Result<Option<Record<'_>>, TsigError> {
    let mut reader = Reader {
        message,
        at: HEADER_LENGTH,
    };
    let header = message
        .get(..HEADER_LENGTH)
        .ok_or(TsigError::Malformed("shorter than a DNS header"))?;
    let count = |index: usize| u16::from_be_bytes([header[index], header[index + 1]]);
    let (questions, answers, authorities, additional) = (count(4), count(6), count(8), count(10));
    for _ in 0..questions {
        reader.skip_name()?;
        reader.take(4)?;
    }
    let records = u32::from(answers) + u32::from(authorities) + u32::from(additional);
    let first_additional = u32::from(answers) + u32::from(authorities);
    for index in 0..records {
        let start = reader.at;
        reader.skip_name()?;
        let record_type = reader.u16()?;
        if record_type != TSIG_TYPE {
            reader.take(6)?;
            let length = reader.u16()?;
            reader.take(usize::from(length))?;
            continue;
        }
        if index < first_additional {
            return Err(TsigError::Malformed("TSIG outside the additional section"));
        }
        if index + 1 != records {
            return Err(TsigError::Malformed(
                "TSIG not the last record of the additional section",
            ));
        }
        let record = read_tsig(message, start)?;
        return Ok(Some(record));
    }
    Ok(None)
}

/// Reads the TSIG RR at `start`, which must end the message.
fn read_tsig(message: &[u8], start: usize) -> Result<Record<'_>, TsigError> {
    let mut reader = Reader { message, at: start };
    let key_name = reader.name()?;
    reader.u16()?;
    if reader.u16()? != CLASS_ANY {
        return Err(TsigError::Malformed("TSIG class not ANY"));
    }
    let ttl = reader.u32()?;
    let length = usize::from(reader.u16()?);
    let rdata_end = reader.at + length;
    if rdata_end != message.len() {
        return Err(TsigError::Malformed(
            "TSIG RDATA length does not end the message",
        ));
    }
    let algorithm = reader.name()?;
    let time_signed = reader.u48()?;
    let fudge = reader.u16()?;
    let mac_length = usize::from(reader.u16()?);
    let mac = reader.take(mac_length)?;
    let original_id = reader.u16()?;
    let error = reader.u16()?;
    let other_length = usize::from(reader.u16()?);
    let other = reader.take(other_length)?;
    if reader.at != rdata_end {
        return Err(TsigError::Malformed("TSIG fields do not fill its RDATA"));
    }
    Ok(Record {
        start,
        key_name,
        ttl,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// Reads a message from `at` on, every read checked against its end.
struct Reader<'message> {
    message: &'message [u8],
    at: usize,
}

const TRUNCATED: TsigError = TsigError::Malformed("message ends early");

impl<'message> Reader<'message> {
    fn take(&mut self, count: usize) -> Result<&'message [u8], TsigError> {
        let end = self.at.checked_add(count).ok_or(TRUNCATED)?;
        let bytes = self.message.get(self.at..end).ok_or(TRUNCATED)?;
        self.at = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, TsigError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, TsigError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u48(&mut self) -> Result<u64, TsigError> {
        let bytes = self.take(6)?;
        Ok(bytes
            .iter()
            .fold(0u64, |time, &byte| time << 8 | u64::from(byte)))
    }

    /// Steps over a name, compressed or not, without following pointers.
    fn skip_name(&mut self) -> Result<(), TsigError> {
        loop {
            let length = self.take(1)?[0];
            match length & 0xC0 {
                0x00 if length == 0 => return Ok(()),
                0x00 => {
                    self.take(usize::from(length))?;
                }
                0xC0 => {
                    self.take(1)?;
                    return Ok(());
                }
                _ => return Err(TsigError::Malformed("unknown label type")),
            }
        }
    }

    /// Reads a name, following compression pointers (which must point
    /// back), lower-cased and uncompressed; leaves the reader after it.
    fn name(&mut self) -> Result<WireName, TsigError> {
        let mut name = WireName::default();
        let mut at = self.at;
        let mut after = None;
        let mut pointers = 0;
        loop {
            let length = *self.message.get(at).ok_or(TRUNCATED)?;
            match length & 0xC0 {
                0x00 => {
                    let label_end = at + 1 + usize::from(length);
                    let label = self.message.get(at + 1..label_end).ok_or(TRUNCATED)?;
                    if !name.push_label(label) {
                        return Err(TsigError::Malformed("name longer than 255 bytes"));
                    }
                    at = label_end;
                    if length == 0 {
                        break;
                    }
                }
                0xC0 => {
                    let low = *self.message.get(at + 1).ok_or(TRUNCATED)?;
                    let target = usize::from(length & 0x3F) << 8 | usize::from(low);
                    pointers += 1;
                    if target >= at || pointers > MAX_POINTERS {
                        return Err(TsigError::Malformed("bad compression pointer"));
                    }
                    after.get_or_insert(at + 2);
                    at = target;
                }
                _ => return Err(TsigError::Malformed("unknown label type")),
            }
        }
        self.at = after.unwrap_or(at);
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secret of the known-answer vectors: bytes 0 to 31.
    const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// The time of the known-answer vectors.
    const TIME: u64 = 1_700_000_000;

    fn key(algorithm: &str) -> TsigKey {
        TsigKey::new("transfer-key", algorithm, SECRET).expect("key")
    }

    fn other_key() -> TsigKey {
        TsigKey::new(
            "transfer-key",
            "hmac-sha256",
            "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        )
        .expect("key")
    }

    /// `name` in wire form, uncompressed.
    fn wire(name: &str) -> Vec<u8> {
        let mut wire = Vec::new();
        for label in name.trim_end_matches('.').split('.') {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire.push(0);
        wire
    }

    /// A header with `id`, `flags` and the four counts.
    fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(&id.to_be_bytes());
        message.extend_from_slice(&flags.to_be_bytes());
        for count in counts {
            message.extend_from_slice(&count.to_be_bytes());
        }
        message
    }

    /// `example.test. SOA IN` asked with `id` and `flags`, then `records`
    /// (already encoded) in the answer section.
    fn message(id: u16, flags: u16, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut message = header(id, flags, [1, answers.len() as u16, 0, 0]);
        message.extend_from_slice(&wire("example.test."));
        message.extend_from_slice(&[0, 6, 0, 1]);
        for answer in answers {
            message.extend_from_slice(answer);
        }
        message
    }

    /// A TXT record owned by the question's name (a compression pointer
    /// to offset 12) holding `text`.
    fn txt(text: &str) -> Vec<u8> {
        let mut record = vec![0xC0, 12, 0, 16, 0, 1, 0, 0, 1, 44];
        record.extend_from_slice(&((text.len() + 1) as u16).to_be_bytes());
        record.push(text.len() as u8);
        record.extend_from_slice(text.as_bytes());
        record
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Signs a request, and the response to it as a primary would.
    fn exchange(key: &TsigKey, now: u64) -> (Mac, Vec<u8>) {
        let mut request = message(0x1234, 0, &[]);
        let request_mac = sign_request(key, &mut request, now).expect("sign request");
        let mut response = message(0x1234, 0x8400, &[txt("answer")]);
        sign_response(key, request_mac.as_bytes(), &mut response, now).expect("sign response");
        (request_mac, response)
    }

    // Computed independently with Python 3's hmac and hashlib: the
    // request `message(0x1234, 0, &[])`, then the TSIG variables
    // `\x0ctransfer-key\x00`, class 255, TTL 0, the algorithm's wire
    // name, time 1700000000 on 48 bits, fudge 300, error 0, other length
    // 0; the response `message(0x1234, 0x8400, &[])` signed at
    // 1700000001, its digest opening with the request MAC's length (two
    // bytes) and the request MAC. Secret: bytes 0 to 31.
    const VECTORS: [(&str, &str, &str); 4] = [
        (
            "hmac-sha256",
            "921e9f4e8c80ca71560f2681335b38096f69ff689e7dcc4d6f84be93b18daffe",
            "f5a7fe9df6e6cf286c536bb59a6c820ed82328542401309880e64022913c111b",
        ),
        (
            "hmac-sha384",
            "ec22bbbe46a6ea52f823b02f446c684256929c5f98ea0676d3012fdf89d038d5\
             26665f091a16ac2896c7d3535322539e",
            "dc17716c7e400e1a4665028f4a8c743d688c14781bb10d7f57c99883682551ad\
             d09188763320353a1007f9aaaf21bc4c",
        ),
        (
            "hmac-sha512",
            "040b5374057eebd23cee0f535d85f60387a35113f9157ec35dbfee8f9796ff2c\
             bfb50a798c3f3e20d93cd1eb71a89f2afe9214b83872eeea469ac2112be4d353",
            "80d8138683aa46626897cffcf805a8d8fc3acfee30500b8c5f3287de5cc58080\
             3c8cddb45f0623908cb3e99dabd7dad1ded91b2074f6ee592af3f44e70ab9130",
        ),
        (
            "hmac-sha1",
            "6d3afef055bc547c5fc4e54eba0737d4791f7463",
            "95524cad89c5ef6d4123212d3b3ea31b6afdcd91",
        ),
    ];

    #[test]
    fn macs_match_independently_computed_vectors() {
        for (algorithm, request_hex, response_hex) in VECTORS {
            let key = key(algorithm);
            let mut request = message(0x1234, 0, &[]);
            let request_mac = sign_request(&key, &mut request, TIME).expect("sign");
            assert_eq!(hex(request_mac.as_bytes()), request_hex, "{algorithm}");
            let mut response = message(0x1234, 0x8400, &[]);
            let response_mac =
                sign_response(&key, request_mac.as_bytes(), &mut response, TIME + 1).expect("sign");
            assert_eq!(hex(response_mac.as_bytes()), response_hex, "{algorithm}");
        }
    }

    #[test]
    fn the_record_written_is_rfc_8945s_layout() {
        let key = key("hmac-sha256");
        let mut request = message(0x1234, 0, &[]);
        let unsigned_length = request.len();
        let mac = sign_request(&key, &mut request, TIME).expect("sign");
        assert_eq!(&request[10..12], &[0, 1], "ARCOUNT counts the TSIG");
        let mut expected = wire("transfer-key.");
        expected.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
        expected.extend_from_slice(&(13u16 + 16 + 32).to_be_bytes());
        expected.extend_from_slice(&wire("hmac-sha256."));
        expected.extend_from_slice(&TIME.to_be_bytes()[2..]);
        expected.extend_from_slice(&[1, 44, 0, 32]);
        expected.extend_from_slice(mac.as_bytes());
        expected.extend_from_slice(&[0x12, 0x34, 0, 0, 0, 0]);
        assert_eq!(hex(&request[unsigned_length..]), hex(&expected));
    }

    #[test]
    fn a_signed_response_verifies_and_strips_to_the_message() {
        for (algorithm, _, _) in VECTORS {
            let key = key(algorithm);
            let (request_mac, mut response) = exchange(&key, TIME);
            let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
            let check = verifier.verify(&response, TIME + 10).expect("verifies");
            assert!(matches!(check, MessageCheck::Signed { .. }), "{check:?}");
            verifier.finish().expect("finished");
            let unsigned = message(0x1234, 0x8400, &[txt("answer")]);
            assert_eq!(&*without_tsig(&response), &unsigned[..]);
            check.strip(&mut response);
            assert_eq!(response, unsigned);
            assert!(matches!(
                without_tsig(&unsigned),
                std::borrow::Cow::Borrowed(_)
            ));
            MessageCheck::Unsigned.strip(&mut response);
            assert_eq!(response, unsigned);
        }
    }

    #[test]
    fn a_signed_request_verifies_and_its_reply_verifies() {
        let stranger = TsigKey::new("stranger", "hmac-sha256", SECRET).expect("key");
        let keys = [stranger, key("hmac-sha512"), key("hmac-sha256")];
        let mut request = message(0x4321, 0x2000, &[]);
        let request_mac = sign_request(&keys[2], &mut request, TIME).expect("sign");
        let Ok(RequestCheck::Verified {
            key,
            key_index,
            request_mac: received_mac,
            time_signed,
            tsig_at,
        }) = verify_request(&keys, &request, TIME + 299)
        else {
            panic!("the request verifies");
        };
        assert_eq!(key_index, 2);
        assert_eq!(key.name(), "transfer-key.");
        assert_eq!(received_mac.as_bytes(), request_mac.as_bytes());
        assert_eq!(time_signed, TIME);
        assert_eq!(tsig_at, message(0x4321, 0x2000, &[]).len());
        assert_eq!(&*without_tsig(&request), &message(0x4321, 0x2000, &[])[..]);
        let mut reply = message(0x4321, 0xA400, &[]);
        sign_response(key, &received_mac, &mut reply, TIME + 299).expect("sign reply");
        let mut verifier = ResponseVerifier::new(&keys[2], request_mac.as_bytes());
        verifier.verify(&reply, TIME).expect("the reply verifies");
        verifier.finish().expect("finished");
    }

    #[test]
    fn an_unsigned_request_is_not_signed() {
        let keys = [key("hmac-sha256")];
        let check = verify_request(&keys, &message(1, 0, &[]), TIME);
        assert!(matches!(check, Ok(RequestCheck::NotSigned)), "{check:?}");
    }

    #[test]
    fn a_flipped_bit_anywhere_before_the_mac_fails() {
        let key = key("hmac-sha256");
        let (request_mac, response) = exchange(&key, TIME);
        let mac_at = response.len() - 6 - 32;
        // The ID (bytes 0 and 1) is not signed: the original ID in the
        // TSIG stands for it, so that a forwarder may change it.
        for index in 2..mac_at + 32 {
            let mut altered = response.clone();
            altered[index] ^= 0x01;
            let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
            // Some flips break the structure or the key name first.
            assert!(verifier.verify(&altered, TIME).is_err(), "byte {index}");
        }
        // A flip within the message proper is the MAC's to catch.
        let mut altered = response.clone();
        altered[14] ^= 0x01; // "example" becomes "eyample"

        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        assert_eq!(
            verifier.verify(&altered, TIME),
            Err(TsigError::BadSignature)
        );
        assert_eq!(verifier.finish(), Err(TsigError::StreamFailed));
        assert_eq!(
            verifier.verify(&response, TIME),
            Err(TsigError::StreamFailed)
        );
    }

    #[test]
    fn a_wrong_secret_is_badsig_and_a_wrong_name_badkey() {
        let key = key("hmac-sha256");
        let (request_mac, response) = exchange(&other_key(), TIME);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        assert_eq!(
            verifier.verify(&response, TIME),
            Err(TsigError::BadSignature)
        );

        let renamed = TsigKey::new("Other-Key.", "HMAC-SHA256.", SECRET).expect("key");
        assert_eq!(renamed.name(), "other-key.");
        let (request_mac, response) = exchange(&renamed, TIME);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        assert_eq!(
            verifier.verify(&response, TIME),
            Err(TsigError::UnknownKey {
                name: "other-key.".to_owned()
            })
        );

        let (request_mac, response) = exchange(&self::key("hmac-sha512"), TIME);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        assert_eq!(
            verifier.verify(&response, TIME),
            Err(TsigError::BadAlgorithm {
                name: "hmac-sha512.".to_owned()
            })
        );
    }

    #[test]
    fn a_response_must_answer_this_request() {
        let key = key("hmac-sha256");
        let (_, response) = exchange(&key, TIME);
        let (other_request_mac, _) = exchange(&key, TIME + 1);
        let mut verifier = ResponseVerifier::new(&key, other_request_mac.as_bytes());
        assert_eq!(
            verifier.verify(&response, TIME),
            Err(TsigError::BadSignature)
        );
    }

    #[test]
    fn a_time_outside_the_fudge_is_badtime() {
        let key = key("hmac-sha256");
        let (request_mac, response) = exchange(&key, TIME);
        for (now, passes) in [
            (TIME + 300, true),
            (TIME - 300, true),
            (TIME + 301, false),
            (TIME - 301, false),
        ] {
            let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
            let verified = verifier.verify(&response, now);
            if passes {
                assert!(verified.is_ok(), "{now}: {verified:?}");
            } else {
                assert_eq!(
                    verified,
                    Err(TsigError::BadTime {
                        signed: TIME,
                        now,
                        fudge: FUDGE
                    })
                );
            }
        }
    }

    /// A stream of `count` responses signed as a primary does, signing
    /// the messages `signed` says.
    fn stream(
        key: &TsigKey,
        request_mac: &Mac,
        count: usize,
        signed: &dyn Fn(usize) -> bool,
    ) -> Vec<Vec<u8>> {
        let mut prior = *request_mac;
        let mut first = true;
        let mut context = hmac::Context::with_key(&key.key);
        digest_mac(&mut context, prior.as_bytes());
        let mut messages = Vec::new();
        for index in 0..count {
            let mut response = message(7, 0x8400, &[txt(&format!("record {index}"))]);
            if !signed(index) {
                context.update(&response);
                messages.push(response);
                continue;
            }
            let variables = Variables {
                key_name: key.name.as_bytes(),
                ttl: 0,
                algorithm: key.algorithm.wire(),
                time_signed: TIME + index as u64,
                fudge: FUDGE,
                error: 0,
                other: &[],
            };
            context.update(&response);
            if first {
                variables.digest(&mut context);
                first = false;
            } else {
                context.update(&time_bytes(variables.time_signed));
                context.update(&FUDGE.to_be_bytes());
            }
            let finished = std::mem::replace(&mut context, hmac::Context::with_key(&key.key));
            prior = Mac::from_tag(&finished.sign());
            digest_mac(&mut context, prior.as_bytes());
            append_record(&mut response, &variables, prior.as_bytes(), 7).expect("append");
            messages.push(response);
        }
        messages
    }

    #[test]
    fn a_stream_with_unsigned_middle_messages_verifies() {
        let key = key("hmac-sha256");
        let request_mac = sign_request(&key, &mut message(7, 0, &[]), TIME).expect("sign");
        // Signed: the first, every hundredth (99 unsigned between), the last.
        let count = 250;
        let messages = stream(&key, &request_mac, count, &|index| {
            index % 100 == 0 || index == count - 1
        });
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        let mut signed = 0;
        for response in &messages {
            match verifier.verify(response, TIME).expect("verifies") {
                MessageCheck::Signed { .. } => signed += 1,
                MessageCheck::Unsigned => {}
            }
        }
        assert_eq!(signed, 4);
        verifier.finish().expect("the last message is signed");
    }

    #[test]
    fn a_stream_signer_signs_what_the_verifier_accepts() {
        let key = key("hmac-sha256");
        let request_mac = sign_request(&key, &mut message(7, 0, &[]), TIME).expect("sign");
        let mut signer = StreamSigner::new(&key, request_mac);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        for index in 0..5 {
            let mut response = message(7, 0x8400, &[txt(&format!("record {index}"))]);
            signer.sign(&mut response, TIME + index).expect("signs");
            assert!(matches!(
                verifier.verify(&response, TIME + index),
                Ok(MessageCheck::Signed { .. })
            ));
        }
        verifier.finish().expect("every message signed");
        // A message changed after signing breaks the chain.
        let mut signer = StreamSigner::new(&key, request_mac);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        let mut first = message(7, 0x8400, &[txt("one")]);
        signer.sign(&mut first, TIME).expect("signs");
        let mut second = message(7, 0x8400, &[txt("two")]);
        signer.sign(&mut second, TIME).expect("signs");
        let last = second.len() - 40;
        second[last] ^= 1;
        verifier.verify(&first, TIME).expect("the first verifies");
        assert!(verifier.verify(&second, TIME).is_err());
    }

    #[test]
    fn a_stream_ending_unsigned_fails_in_finish() {
        let key = key("hmac-sha256");
        let request_mac = sign_request(&key, &mut message(7, 0, &[]), TIME).expect("sign");
        let messages = stream(&key, &request_mac, 5, &|index| index < 3);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        for response in &messages {
            verifier.verify(response, TIME).expect("verifies so far");
        }
        assert_eq!(verifier.finish(), Err(TsigError::Unsigned));
    }

    #[test]
    fn a_stream_must_start_signed_and_sign_every_hundredth() {
        let key = key("hmac-sha256");
        let request_mac = sign_request(&key, &mut message(7, 0, &[]), TIME).expect("sign");
        let messages = stream(&key, &request_mac, 3, &|index| index > 0);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        assert_eq!(
            verifier.verify(&messages[0], TIME),
            Err(TsigError::Unsigned)
        );
        assert_eq!(
            ResponseVerifier::new(&key, &[]).finish(),
            Err(TsigError::Unsigned)
        );

        let messages = stream(&key, &request_mac, 102, &|index| index == 0 || index == 101);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        for response in &messages[..100] {
            verifier
                .verify(response, TIME)
                .expect("99 unsigned in a row pass");
        }
        assert_eq!(
            verifier.verify(&messages[100], TIME),
            Err(TsigError::TooManyUnsigned)
        );
    }

    #[test]
    fn a_dropped_middle_message_fails_the_next_signed_one() {
        let key = key("hmac-sha256");
        let request_mac = sign_request(&key, &mut message(7, 0, &[]), TIME).expect("sign");
        let messages = stream(&key, &request_mac, 4, &|index| index != 1 && index != 2);
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        verifier.verify(&messages[0], TIME).expect("first");
        verifier.verify(&messages[2], TIME).expect("unsigned");
        assert_eq!(
            verifier.verify(&messages[3], TIME),
            Err(TsigError::BadSignature)
        );
    }

    #[test]
    fn a_tsig_not_last_is_malformed() {
        let key = key("hmac-sha256");
        let (_, signed) = exchange(&key, TIME);
        let tsig_at = message(0x1234, 0x8400, &[txt("answer")]).len();
        // An OPT record after the TSIG.
        let mut reordered = signed.clone();
        reordered[11] += 1;
        reordered.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        // The TSIG in the answer section, before the TXT.
        let mut answered = header(0x1234, 0x8400, [1, 2, 0, 0]);
        answered.extend_from_slice(&signed[12..tsig_at - txt("answer").len()]);
        answered.extend_from_slice(&signed[tsig_at..]);
        answered.extend_from_slice(&txt("answer"));
        for malformed in [reordered, answered] {
            let mut verifier = ResponseVerifier::new(&key, &[0; 32]);
            assert!(
                matches!(
                    verifier.verify(&malformed, TIME),
                    Err(TsigError::Malformed(_))
                ),
                "{}",
                hex(&malformed)
            );
            let rejection = verify_request(std::slice::from_ref(&key), &malformed, TIME)
                .expect_err("malformed");
            assert!(matches!(rejection.error(), TsigError::Malformed(_)));
            assert_eq!(rejection.rcode(), RCODE_FORMERR);
            let mut reply = message(0x1234, 0x8401, &[]);
            let before = reply.clone();
            rejection
                .append_tsig(&mut reply, TIME)
                .expect("nothing to append");
            assert_eq!(reply, before, "a FORMERR reply carries no TSIG");
        }
    }

    #[test]
    fn every_prefix_of_a_signed_message_is_refused_without_panicking() {
        let key = key("hmac-sha256");
        let keys = std::slice::from_ref(&key);
        let (request_mac, response) = exchange(&key, TIME);
        let mut request = message(0x1234, 0, &[txt("question")]);
        sign_request(&key, &mut request, TIME).expect("sign");
        for length in 0..response.len() {
            let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
            assert!(
                verifier.verify(&response[..length], TIME).is_err(),
                "{length}"
            );
        }
        for length in 0..request.len() {
            // A prefix may end where a record does: then it is unsigned.
            if let Ok(check) = verify_request(keys, &request[..length], TIME) {
                assert!(matches!(check, RequestCheck::NotSigned), "{length}");
            }
        }
    }

    #[test]
    fn compressed_key_names_and_pointer_loops() {
        let key = key("hmac-sha256");
        // The TSIG owner compressed to the question name, which is the
        // key name: accepted, as the digest holds the name uncompressed.
        let mut request = header(9, 0, [1, 0, 0, 0]);
        request.extend_from_slice(&wire("transfer-key."));
        request.extend_from_slice(&[0, 6, 0, 1]);
        let mut signed = request.clone();
        sign_request(&key, &mut signed, TIME).expect("sign");
        let tsig_at = request.len();
        let mut compressed = signed[..tsig_at].to_vec();
        compressed.extend_from_slice(&[0xC0, 12]);
        compressed.extend_from_slice(&signed[tsig_at + wire("transfer-key.").len()..]);
        let check = verify_request(std::slice::from_ref(&key), &compressed, TIME);
        assert!(
            matches!(check, Ok(RequestCheck::Verified { .. })),
            "{check:?}"
        );
        // A pointer to itself, and one pointing forward.
        for pointer in [tsig_at as u8, tsig_at as u8 + 2] {
            let mut looped = compressed.clone();
            looped[tsig_at + 1] = pointer;
            let check = verify_request(std::slice::from_ref(&key), &looped, TIME);
            assert!(
                matches!(
                    check.as_ref().map_err(Rejection::error),
                    Err(TsigError::Malformed(_))
                ),
                "{check:?}"
            );
        }
    }

    #[test]
    fn request_refusals_say_what_the_reply_carries() {
        let key = key("hmac-sha256");
        let keys = std::slice::from_ref(&key);
        let refused = |signer: &TsigKey, now: u64| {
            let mut request = message(0x55AA, 0x2000, &[]);
            let mac = sign_request(signer, &mut request, TIME).expect("sign");
            let rejection = verify_request(keys, &request, now).expect_err("refused");
            let mut reply = message(0x55AA, 0xA409, &[]);
            rejection.append_tsig(&mut reply, now).expect("append");
            let record = find_tsig(&reply).expect("parses").expect("has a TSIG");
            (
                rejection.error().clone(),
                rejection.rcode(),
                mac,
                record.error,
                record.mac.len(),
                reply,
            )
        };

        let (error, rcode, _, code, mac_length, reply) = refused(
            &TsigKey::new("stranger", "hmac-sha256", SECRET).expect("key"),
            TIME,
        );
        assert_eq!(
            error,
            TsigError::UnknownKey {
                name: "stranger.".to_owned()
            }
        );
        assert_eq!((rcode, code, mac_length), (RCODE_NOTAUTH, BADKEY, 0));
        let echoed = find_tsig(&reply).expect("parses").expect("TSIG");
        assert_eq!(echoed.key_name.presentation(), "stranger.");

        let (error, _, _, code, _, _) = refused(&self::key("hmac-sha1"), TIME);
        assert_eq!(
            error,
            TsigError::BadAlgorithm {
                name: "hmac-sha1.".to_owned()
            }
        );
        assert_eq!(code, BADKEY);

        let (error, rcode, _, code, mac_length, _) = refused(&other_key(), TIME);
        assert_eq!(error, TsigError::BadSignature);
        assert_eq!((rcode, code, mac_length), (RCODE_NOTAUTH, BADSIG, 0));

        // BADTIME: signed, with the request's time and ours in other data,
        // which the client verifies and reads as the peer's refusal.
        let now = TIME + 1000;
        let (error, rcode, request_mac, code, mac_length, reply) = refused(&key, now);
        assert_eq!(
            error,
            TsigError::BadTime {
                signed: TIME,
                now,
                fudge: FUDGE
            }
        );
        assert_eq!((rcode, code, mac_length), (RCODE_NOTAUTH, BADTIME, 32));
        let record = find_tsig(&reply).expect("parses").expect("TSIG");
        assert_eq!(record.time_signed, TIME);
        assert_eq!(record.other, &time_bytes(now));
        let mut context = hmac::Context::with_key(&key.key);
        digest_mac(&mut context, request_mac.as_bytes());
        record.digest_message(&mut context, &reply);
        record.variables().digest(&mut context);
        assert!(
            same_mac(context.sign().as_ref(), record.mac),
            "BADTIME reply is signed"
        );
        let mut verifier = ResponseVerifier::new(&key, request_mac.as_bytes());
        assert_eq!(
            verifier.verify(&reply, TIME),
            Err(TsigError::Reported { code: BADTIME })
        );
    }

    #[test]
    fn truncated_macs_are_refused() {
        let key = key("hmac-sha256");
        let mut request = message(3, 0, &[]);
        sign_request(&key, &mut request, TIME).expect("sign");
        // Cut the MAC to 16 bytes: shorten MAC size and RDLENGTH.
        let mac_at = request.len() - 6 - 32;
        let mut truncated = request[..mac_at - 2].to_vec();
        truncated.extend_from_slice(&16u16.to_be_bytes());
        truncated.extend_from_slice(&request[mac_at..mac_at + 16]);
        truncated.extend_from_slice(&request[mac_at + 32..]);
        let rdlength_at = message(3, 0, &[]).len() + wire("transfer-key.").len() + 8;
        let rdlength = u16::from_be_bytes([truncated[rdlength_at], truncated[rdlength_at + 1]]);
        truncated[rdlength_at..rdlength_at + 2].copy_from_slice(&(rdlength - 16).to_be_bytes());
        let rejection =
            verify_request(std::slice::from_ref(&key), &truncated, TIME).expect_err("refused");
        assert_eq!(
            rejection.error(),
            &TsigError::Truncated {
                length: 16,
                full: 32
            }
        );
        assert_eq!(rejection.error().code(), Some(BADTRUNC));
        assert_eq!(rejection.rcode(), RCODE_NOTAUTH);
    }

    #[test]
    fn keys_from_configuration_text() {
        let key = TsigKey::new(" Transfer-Key. ", "hmac-sha256.", " AAEC AwQF ").expect("key");
        assert_eq!(key.name(), "transfer-key.");
        assert_eq!(key.algorithm(), Algorithm::HmacSha256);
        assert!(!format!("{key:?}").contains("AAEC"));
        assert_eq!(
            TsigKey::new("k", "hmac-md5", SECRET).expect_err("md5"),
            "unknown TSIG algorithm \"hmac-md5\" (supported: hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha1)"
        );
        assert_eq!(
            TsigKey::new("k", "hmac-sha256", "not base64!").expect_err("base64"),
            "secret is not valid base64"
        );
        assert_eq!(
            TsigKey::new("k", "hmac-sha256", "").expect_err("empty"),
            "secret is empty"
        );
        assert_eq!(
            TsigKey::new("a..b", "hmac-sha256", SECRET).expect_err("label"),
            "key name \"a..b\" has an empty label"
        );
        assert!(TsigKey::new("", "hmac-sha256", SECRET).is_err());
        assert!(TsigKey::new(&"a".repeat(64), "hmac-sha256", SECRET).is_err());
        assert!(TsigKey::new("with space", "hmac-sha256", SECRET).is_err());
    }

    #[test]
    fn signing_needs_a_header_and_room() {
        let key = key("hmac-sha256");
        let mut short = vec![0; 11];
        assert!(matches!(
            sign_request(&key, &mut short, TIME),
            Err(TsigError::Malformed(_))
        ));
        assert_eq!(short, vec![0; 11]);
        let mut full = message(1, 0, &[]);
        full[10..12].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(sign_request(&key, &mut full, TIME).is_err());
        let mut large = message(1, 0, &[]);
        large.resize(65_500, 0);
        assert!(sign_request(&key, &mut large, TIME).is_err());
        assert_eq!(large.len(), 65_500);
    }
}
