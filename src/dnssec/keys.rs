//! DNSSEC key pairs in BIND's file format.
//!
//! `dnssec-keygen -K DIR -a ECDSAP256SHA256 example.test` writes
//! `Kexample.test.+013+12345.key` (the DNSKEY record, as zone-file text)
//! and `Kexample.test.+013+12345.private` (the private key and the key's
//! timing). Steer reads those files as they are, so that keys are made,
//! rolled and retired with the tools operators already use. The
//! algorithms RFC 8624 says to sign with are read, all signed with
//! `ring`: 8 (RSASHA256, what most signed zones still use, so that they
//! move here without an algorithm rollover), 10 (RSASHA512), 13
//! (ECDSAP256SHA256) and 15 (ED25519). A `.key` without its `.private` is
//! published, never used to sign: that is how a key is introduced before
//! it signs, or kept after it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaEncoding, RsaKeyPair,
};

/// RSA with SHA-256 (RFC 5702).
pub const RSASHA256: u8 = 8;
/// RSA with SHA-512 (RFC 5702).
pub const RSASHA512: u8 = 10;
/// ECDSA Curve P-256 with SHA-256 (RFC 6605).
pub const ECDSAP256SHA256: u8 = 13;
/// Ed25519 (RFC 8080).
pub const ED25519: u8 = 15;
/// DNSKEY flags: a zone key (bit 7).
pub const FLAG_ZONE: u16 = 0x0100;
/// DNSKEY flags: secure entry point (bit 15), what a KSK carries.
pub const FLAG_SEP: u16 = 0x0001;
/// DNSKEY flags: revoked (RFC 5011).
const FLAG_REVOKE: u16 = 0x0080;

/// What signs with a key.
pub enum Signer {
    /// Algorithm 13.
    Ecdsa(EcdsaKeyPair),
    /// Algorithm 15.
    Ed25519(Ed25519KeyPair),
    /// Algorithms 8 and 10: PKCS #1 v1.5 padding over the algorithm's
    /// digest (RFC 5702 §3).
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
}

impl Signer {
    /// Signs `data`: 64 bytes for ECDSA and Ed25519 (RFC 6605 §4 `r | s`,
    /// RFC 8080 §4), the modulus' length for RSA (RFC 5702 §3).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Signer::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), data)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
            Signer::Ed25519(pair) => Ok(pair.sign(data).as_ref().to_vec()),
            Signer::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &SystemRandom::new(), data, &mut signature)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(signature)
            }
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Signer::Ecdsa(_) => "Signer::Ecdsa",
            Signer::Ed25519(_) => "Signer::Ed25519",
            Signer::Rsa(..) => "Signer::Rsa",
        })
    }
}

/// The key's timing from the `.private` file (Unix seconds); `None`:
/// not set, which Steer reads as "already" for `publish` and `activate`
/// and "never" for `inactive` and `delete`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// When the DNSKEY appears.
    pub publish: Option<u64>,
    /// When the key starts signing.
    pub activate: Option<u64>,
    /// When the key stops signing.
    pub inactive: Option<u64>,
    /// When the DNSKEY goes.
    pub delete: Option<u64>,
    /// When the parent is told, by CDS and CDNSKEY (RFC 7344), to publish
    /// a DS for this key (`dnssec-settime -P sync`).
    pub sync_publish: Option<u64>,
    /// When CDS and CDNSKEY for this key go (`dnssec-settime -D sync`).
    pub sync_delete: Option<u64>,
}

/// One key of a zone.
#[derive(Debug)]
pub struct ZoneKey {
    /// The `.key` file, for messages.
    pub file: PathBuf,
    /// The zone, lower-cased wire form.
    pub zone: Vec<u8>,
    /// DNSKEY flags (256: ZSK, 257: KSK).
    pub flags: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// The public key as the DNSKEY carries it.
    pub public: Vec<u8>,
    /// The key tag (RFC 4034 Appendix B).
    pub tag: u16,
    /// The private half; `None` for a key that is only published.
    pub signer: Option<std::sync::Arc<Signer>>,
    /// Publish, activate, inactive and delete times.
    pub timing: Timing,
}

impl ZoneKey {
    /// A fresh combined signing key (KSK flags, Ed25519) for `zone`
    /// (lower-cased wire form), signing from now on, named
    /// `generated.key`: for tests and tools that need a key without
    /// files.
    pub fn generate_ed25519(zone: Vec<u8>) -> Result<ZoneKey, String> {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| "cannot make an Ed25519 key".to_owned())?;
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
            .map_err(|_| "cannot read back an Ed25519 key".to_owned())?;
        let public = pair.public_key().as_ref().to_vec();
        let flags = FLAG_ZONE | FLAG_SEP;
        let mut rdata = flags.to_be_bytes().to_vec();
        rdata.extend_from_slice(&[3, ED25519]);
        rdata.extend_from_slice(&public);
        Ok(ZoneKey {
            file: PathBuf::from("generated.key"),
            zone,
            flags,
            algorithm: ED25519,
            tag: key_tag(&rdata),
            public,
            signer: Some(std::sync::Arc::new(Signer::Ed25519(pair))),
            timing: Timing::default(),
        })
    }

    /// The DNSKEY RDATA.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        let mut rdata = Vec::with_capacity(4 + self.public.len());
        rdata.extend_from_slice(&self.flags.to_be_bytes());
        rdata.push(3);
        rdata.push(self.algorithm);
        rdata.extend_from_slice(&self.public);
        rdata
    }

    /// True for a KSK (the SEP flag).
    pub fn is_key_signing(&self) -> bool {
        self.flags & FLAG_SEP != 0
    }

    /// Whether the DNSKEY is in the zone at `now`.
    pub fn is_published(&self, now: u64) -> bool {
        let Timing {
            publish, delete, ..
        } = self.timing;
        publish.is_none_or(|at| at <= now) && delete.is_none_or(|at| at > now)
    }

    /// Whether the key signs at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        let Timing {
            activate, inactive, ..
        } = self.timing;
        self.signer.is_some()
            && self.is_published(now)
            && activate.is_none_or(|at| at <= now)
            && inactive.is_none_or(|at| at > now)
    }

    /// Whether CDS and CDNSKEY for this key are in the zone at `now`:
    /// a published KSK whose `SyncPublish` time has come (never without
    /// one: telling the parent to change its DS is the operator's call).
    pub fn is_sync_published(&self, now: u64) -> bool {
        let Timing {
            sync_publish,
            sync_delete,
            ..
        } = self.timing;
        self.is_key_signing()
            && self.is_published(now)
            && sync_publish.is_some_and(|at| at <= now)
            && sync_delete.is_none_or(|at| at > now)
    }

    /// The next moment after `now` at which the key's role changes.
    pub fn next_event(&self, now: u64) -> Option<u64> {
        let Timing {
            publish,
            activate,
            inactive,
            delete,
            sync_publish,
            sync_delete,
        } = self.timing;
        [
            publish,
            activate,
            inactive,
            delete,
            sync_publish,
            sync_delete,
        ]
        .into_iter()
        .flatten()
        .filter(|&at| at > now)
        .min()
    }
}

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B).
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (index, &byte) in rdata.iter().enumerate() {
        sum += if index % 2 == 0 {
            u32::from(byte) << 8
        } else {
            u32::from(byte)
        };
    }
    sum += (sum >> 16) & 0xFFFF;
    (sum & 0xFFFF) as u16
}

/// Every zone's keys, by zone (lower-cased wire form).
#[derive(Debug, Default)]
pub struct KeyRing {
    zones: BTreeMap<Vec<u8>, Vec<ZoneKey>>,
}

impl KeyRing {
    /// The keys of the zone `apex` (lower-cased wire form).
    pub fn keys_of(&self, apex: &[u8]) -> &[ZoneKey] {
        self.zones.get(apex).map_or(&[], Vec::as_slice)
    }

    /// Zones that have keys, as wire names.
    pub fn zones(&self) -> impl Iterator<Item = &[u8]> {
        self.zones.keys().map(Vec::as_slice)
    }
}

/// Reads every `K*.key` file of `directory` and its `.private`. Errors name
/// the file and say what is wrong; every error of every file is returned.
pub fn load_keys(directory: &Path) -> Result<KeyRing, Vec<String>> {
    let entries = std::fs::read_dir(directory).map_err(|error| {
        vec![format!(
            "{}: cannot read the key directory: {error}",
            directory.display()
        )]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|extension| extension == "key")
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with('K'))
        })
        .collect();
    files.sort();
    let mut ring = KeyRing::default();
    let mut errors = Vec::new();
    for file in files {
        match load_key(&file) {
            Ok(key) => ring.zones.entry(key.zone.clone()).or_default().push(key),
            Err(message) => errors.push(message),
        }
    }
    for keys in ring.zones.values() {
        for (index, key) in keys.iter().enumerate() {
            if let Some(other) = keys[..index]
                .iter()
                .find(|other| other.tag == key.tag && other.algorithm == key.algorithm)
            {
                errors.push(format!(
                    "{}: key tag {} is also the tag of {}; make one of them again",
                    key.file.display(),
                    key.tag,
                    other.file.display()
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(ring)
    } else {
        Err(errors)
    }
}

fn load_key(file: &Path) -> Result<ZoneKey, String> {
    let at = |message: String| format!("{}: {message}", file.display());
    let text =
        std::fs::read_to_string(file).map_err(|error| at(format!("cannot read: {error}")))?;
    let (line_number, zone, rdata) = dnskey_line(&text).map_err(at)?;
    let at_line = |message: String| format!("{}:{line_number}: {message}", file.display());
    let flags = u16::from_be_bytes([rdata[0], rdata[1]]);
    let algorithm = rdata[3];
    let public = rdata[4..].to_vec();
    if flags & FLAG_ZONE == 0 {
        return Err(at_line(format!(
            "flags {flags} lack the zone key bit (256); this is not a zone signing key"
        )));
    }
    if flags & FLAG_REVOKE != 0 {
        return Err(at_line(
            "the key is revoked (flag 128); revoked keys are not supported".to_owned(),
        ));
    }
    match algorithm {
        ECDSAP256SHA256 if public.len() != 64 => {
            return Err(at_line(format!(
                "an algorithm 13 public key is 64 bytes, not {}",
                public.len()
            )));
        }
        ED25519 if public.len() != 32 => {
            return Err(at_line(format!(
                "an algorithm 15 public key is 32 bytes, not {}",
                public.len()
            )));
        }
        ECDSAP256SHA256 | ED25519 => {}
        RSASHA256 | RSASHA512 => {
            rsa_public(&public).map_err(at_line)?;
        }
        other => {
            return Err(at_line(format!(
                "algorithm {other} is not supported; make keys with algorithm 13 \
                 (ECDSAP256SHA256), 15 (ED25519), 8 (RSASHA256) or 10 (RSASHA512)"
            )));
        }
    }
    let tag = key_tag(&rdata);
    let private_file = file.with_extension("private");
    let (signer, timing) = if private_file.exists() {
        let (signer, timing) = load_private(&private_file, algorithm, &public)?;
        (Some(std::sync::Arc::new(signer)), timing)
    } else {
        (None, Timing::default())
    };
    Ok(ZoneKey {
        file: file.to_path_buf(),
        zone,
        flags,
        algorithm,
        public,
        tag,
        signer,
        timing,
    })
}

/// The DNSKEY record of a `.key` file: its line, owner (wire, lower case)
/// and RDATA.
fn dnskey_line(text: &str) -> Result<(usize, Vec<u8>, Vec<u8>), String> {
    for (index, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(type_at) = fields
            .iter()
            .position(|field| field.eq_ignore_ascii_case("DNSKEY"))
        else {
            return Err(format!("{}: expected a DNSKEY record", index + 1));
        };
        let number = |at: usize, what: &str, max: u32| -> Result<u32, String> {
            fields
                .get(at)
                .and_then(|field| field.parse::<u32>().ok())
                .filter(|&value| value <= max)
                .ok_or_else(|| {
                    format!(
                        "{}: the DNSKEY's {what} is missing or not a number",
                        index + 1
                    )
                })
        };
        let flags = number(type_at + 1, "flags", 0xFFFF)? as u16;
        let protocol = number(type_at + 2, "protocol", 0xFF)?;
        if protocol != 3 {
            return Err(format!("{}: the DNSKEY's protocol must be 3", index + 1));
        }
        let algorithm = number(type_at + 3, "algorithm", 0xFF)? as u8;
        let encoded: String = fields[type_at + 4..].concat();
        let public = BASE64
            .decode(encoded.as_bytes())
            .map_err(|_| format!("{}: the public key is not valid base64", index + 1))?;
        let owner = fields[0];
        if !owner.ends_with('.') {
            return Err(format!(
                "{}: the owner \"{owner}\" is not absolute",
                index + 1
            ));
        }
        let mut rdata = Vec::with_capacity(4 + public.len());
        rdata.extend_from_slice(&flags.to_be_bytes());
        rdata.push(3);
        rdata.push(algorithm);
        rdata.extend_from_slice(&public);
        return Ok((index + 1, wire_of(owner)?, rdata));
    }
    Err("no DNSKEY record in the file".to_owned())
}

/// The lower-cased wire form of an absolute name in presentation form
/// without escapes (key files never have them).
fn wire_of(name: &str) -> Result<Vec<u8>, String> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    if name != "." {
        for label in name.trim_end_matches('.').split('.') {
            if label.is_empty() || label.len() > 63 || label.contains('\\') {
                return Err(format!("\"{name}\" is not a plain domain name"));
            }
            wire.push(label.len() as u8);
            wire.extend(label.bytes().map(|byte| byte.to_ascii_lowercase()));
        }
    }
    wire.push(0);
    Ok(wire)
}

/// The base64 fields of a `.private` file: `PrivateKey` for ECDSA and
/// Ed25519, the RSA components (RFC 3447 names in BIND's spelling).
const PRIVATE_FIELDS: [&str; 9] = [
    "PrivateKey",
    "Modulus",
    "PublicExponent",
    "PrivateExponent",
    "Prime1",
    "Prime2",
    "Exponent1",
    "Exponent2",
    "Coefficient",
];

fn load_private(file: &Path, algorithm: u8, public: &[u8]) -> Result<(Signer, Timing), String> {
    let at = |line: usize, message: String| format!("{}:{line}: {message}", file.display());
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("{}: cannot read: {error}", file.display()))?;
    let mut fields: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut timing = Timing::default();
    let mut declared_algorithm = None;
    for (index, line) in text.lines().enumerate() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let number = index + 1;
        match field.trim() {
            "Algorithm" => {
                declared_algorithm = value
                    .split_whitespace()
                    .next()
                    .and_then(|code| code.parse::<u8>().ok());
            }
            name if PRIVATE_FIELDS.contains(&name) => {
                let decoded = BASE64.decode(value.as_bytes()).map_err(|_| {
                    at(
                        number,
                        if name == "PrivateKey" {
                            "the private key is not valid base64".to_owned()
                        } else {
                            format!("{name} is not valid base64")
                        },
                    )
                })?;
                fields.insert(name, decoded);
            }
            name @ ("Publish" | "Activate" | "Inactive" | "Delete" | "SyncPublish"
            | "SyncDelete") => {
                let when = parse_time(value).ok_or_else(|| {
                    at(
                        number,
                        format!("{name}: \"{value}\" is not a time of the form YYYYMMDDHHMMSS"),
                    )
                })?;
                match name {
                    "Publish" => timing.publish = Some(when),
                    "Activate" => timing.activate = Some(when),
                    "Inactive" => timing.inactive = Some(when),
                    "Delete" => timing.delete = Some(when),
                    "SyncPublish" => timing.sync_publish = Some(when),
                    _ => timing.sync_delete = Some(when),
                }
            }
            _ => {}
        }
    }
    if declared_algorithm != Some(algorithm) {
        return Err(format!(
            "{}: the Algorithm line does not say {algorithm}, the algorithm of the .key file",
            file.display()
        ));
    }
    let signer = match algorithm {
        RSASHA256 | RSASHA512 => rsa_signer(file, algorithm, public, &fields)?,
        _ => curve_signer(file, algorithm, public, fields.remove("PrivateKey"))?,
    };
    Ok((signer, timing))
}

fn mismatch(file: &Path) -> String {
    format!(
        "{}: the private key is not the pair of the public key in the .key file",
        file.display()
    )
}

/// An ECDSA P-256 or Ed25519 signer from the `PrivateKey` value.
fn curve_signer(
    file: &Path,
    algorithm: u8,
    public: &[u8],
    private: Option<Vec<u8>>,
) -> Result<Signer, String> {
    let Some(mut private) = private else {
        return Err(format!("{}: no PrivateKey line", file.display()));
    };
    // BIND writes the private value as a number, without its leading zero
    // bytes (one key in 256 has 31 bytes); ring wants all 32.
    if private.len() < 32 {
        let mut padded = vec![0; 32 - private.len()];
        padded.extend_from_slice(&private);
        private = padded;
    }
    match algorithm {
        ECDSAP256SHA256 => {
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(public);
            EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &private,
                &point,
                &SystemRandom::new(),
            )
            .map(Signer::Ecdsa)
            .map_err(|_| mismatch(file))
        }
        _ => Ed25519KeyPair::from_seed_and_public_key(&private, public)
            .map(Signer::Ed25519)
            .map_err(|_| mismatch(file)),
    }
}

/// The exponent and modulus of an RSA DNSKEY's public key (RFC 3110 §2:
/// the exponent's length in one byte, or in two after a zero byte; the
/// exponent; the modulus), without leading zero bytes.
pub fn rsa_public(public: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (length, rest) = match public {
        [0, high, low, rest @ ..] => (usize::from(u16::from_be_bytes([*high, *low])), rest),
        [length, rest @ ..] => (usize::from(*length), rest),
        [] => return Err("the RSA public key is empty".to_owned()),
    };
    if length == 0 || rest.len() <= length {
        return Err(format!(
            "the RSA public key is cut short: an exponent of {length} bytes and no modulus after it"
        ));
    }
    let (exponent, modulus) = rest.split_at(length);
    Ok((
        without_leading_zeros(exponent),
        without_leading_zeros(modulus),
    ))
}

fn without_leading_zeros(number: &[u8]) -> &[u8] {
    let first = number
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(number.len());
    &number[first..]
}

/// Bits of a big-endian number without leading zero bytes.
fn bit_length(number: &[u8]) -> usize {
    number.first().map_or(0, |&first| {
        number.len() * 8 - first.leading_zeros() as usize
    })
}

/// An RSA signer from the components of a `.private` file, checked
/// against the `.key`'s public key by signing and verifying once (ring
/// checks the CRT values only when it signs).
fn rsa_signer(
    file: &Path,
    algorithm: u8,
    public: &[u8],
    fields: &BTreeMap<&str, Vec<u8>>,
) -> Result<Signer, String> {
    use ring::rsa::{KeyPairComponents, PublicKeyComponents};
    let field = |name: &str| {
        fields
            .get(name)
            .map(|value| without_leading_zeros(value))
            .ok_or_else(|| format!("{}: no {name} line", file.display()))
    };
    let (exponent, modulus) =
        rsa_public(public).map_err(|error| format!("{}: {error}", file.display()))?;
    if field("Modulus")? != modulus || field("PublicExponent")? != exponent {
        return Err(mismatch(file));
    }
    let bits = bit_length(modulus);
    if !(2048..=4096).contains(&bits) {
        return Err(format!(
            "{}: the RSA key has {bits} bits; Steer signs with RSA keys of 2048 to 4096 bits \
             (RFC 8624); a smaller key can stay published without its .private file",
            file.display()
        ));
    }
    let components = KeyPairComponents {
        public_key: PublicKeyComponents {
            n: modulus,
            e: exponent,
        },
        d: field("PrivateExponent")?,
        p: field("Prime1")?,
        q: field("Prime2")?,
        dP: field("Exponent1")?,
        dQ: field("Exponent2")?,
        qInv: field("Coefficient")?,
    };
    let pair = RsaKeyPair::from_components(&components).map_err(|rejected| {
        format!(
            "{}: the RSA private key is not usable: {rejected} (ring wants a public exponent \
             of at least 65537)",
            file.display()
        )
    })?;
    let (encoding, verification): (&'static dyn RsaEncoding, _) = if algorithm == RSASHA256 {
        (
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        )
    } else {
        (
            &ring::signature::RSA_PKCS1_SHA512,
            &ring::signature::RSA_PKCS1_2048_8192_SHA512,
        )
    };
    let signer = Signer::Rsa(pair, encoding);
    let probe = b"steer checks the key pair";
    let signature = signer.sign(probe).map_err(|_| mismatch(file))?;
    ring::signature::RsaPublicKeyComponents {
        n: modulus,
        e: exponent,
    }
    .verify(verification, probe, &signature)
    .map_err(|_| mismatch(file))?;
    Ok(signer)
}

/// `YYYYMMDDHHMMSS` in UTC → Unix seconds.
pub fn parse_time(text: &str) -> Option<u64> {
    if text.len() != 14 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| text[range].parse::<u64>().ok();
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day)? * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm); `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tag_matches_rfc_4034_example() {
        // The DNSKEY of RFC 4034 §5.4's example: key tag 60485.
        let public = BASE64
            .decode(
                b"AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==",
            )
            .expect("base64");
        let mut rdata = vec![1, 0, 3, 5];
        rdata.extend_from_slice(&public);
        assert_eq!(key_tag(&rdata), 60485);
    }

    /// A P-256 key pair from ring whose private value starts with a zero
    /// byte: (private, public as the DNSKEY carries it).
    fn key_with_leading_zero() -> (Vec<u8>, Vec<u8>) {
        let random = SystemRandom::new();
        loop {
            let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
                .expect("generate");
            let bytes = document.as_ref();
            // The private key is the first 32-byte OCTET STRING (04 20);
            // the public point (04 X Y) ends the document.
            let at = bytes
                .windows(2)
                .position(|pair| pair == [0x04, 0x20])
                .expect("private key")
                + 2;
            let private = bytes[at..at + 32].to_vec();
            let public = bytes[bytes.len() - 64..].to_vec();
            if private[0] == 0 {
                return (private, public);
            }
        }
    }

    #[test]
    fn a_private_key_written_without_its_leading_zero_loads() {
        let (private, public) = key_with_leading_zero();
        let directory = tempfile::tempdir().expect("directory");
        let mut rdata = vec![1, 1, 3, ECDSAP256SHA256];
        rdata.extend_from_slice(&public);
        let name = format!("Kexample.test.+013+{:05}", key_tag(&rdata));
        std::fs::write(
            directory.path().join(format!("{name}.key")),
            format!(
                "example.test. IN DNSKEY 257 3 13 {}\n",
                BASE64.encode(&public)
            ),
        )
        .expect("write .key");
        // As BIND writes it: the number without its leading zero byte.
        std::fs::write(
            directory.path().join(format!("{name}.private")),
            format!(
                "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: {}\n",
                BASE64.encode(&private[1..])
            ),
        )
        .expect("write .private");
        let ring = load_keys(directory.path()).unwrap_or_else(|errors| panic!("{errors:?}"));
        let key = &ring.keys_of(b"\x07example\x04test\x00")[0];
        let signature = key
            .signer
            .as_ref()
            .expect("a signer")
            .sign(b"data")
            .expect("signs");
        let mut point = vec![4];
        point.extend_from_slice(&public);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
            .verify(b"data", &signature)
            .expect("the signature verifies with the public key");
    }

    #[test]
    fn rsa_public_keys_read_both_exponent_length_forms() {
        // One length byte: exponent 65537, a modulus with a leading zero.
        let short = [3, 1, 0, 1, 0, 0xC5, 0x01];
        assert_eq!(
            rsa_public(&short),
            Ok((&[1u8, 0, 1][..], &[0xC5u8, 0x01][..]))
        );
        // A zero byte, then two length bytes (RFC 3110 §2).
        let long = [0, 0, 3, 1, 0, 1, 0xC5, 0x01];
        assert_eq!(
            rsa_public(&long),
            Ok((&[1u8, 0, 1][..], &[0xC5u8, 0x01][..]))
        );
        for cut in [
            &[][..],
            &[3, 1, 0, 1],
            &[0, 1],
            &[0, 0, 3, 1, 0, 1],
            &[0, 0, 0, 1],
        ] {
            assert!(rsa_public(cut).is_err(), "{cut:?}");
        }
        assert_eq!(bit_length(&[0xC5, 0x01]), 16);
        assert_eq!(bit_length(&[0x01, 0x00]), 9);
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(parse_time("19700101000000"), Some(0));
        assert_eq!(parse_time("20000301000000"), Some(951_868_800));
        assert_eq!(parse_time("20261207145458"), Some(1_796_655_298));
        assert_eq!(parse_time("2026120714545"), None);
        assert_eq!(parse_time("20261307145458"), None);
    }
}
