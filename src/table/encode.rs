//! Pre-encoding of response sections at compile time.
//!
//! A response is `header + question + section bytes + OPT`. The section
//! bytes are built here once, for an *assumed* question name at offset 12,
//! with names compressed against that question and against earlier names
//! in the section. At query time the real question may be longer than the
//! assumed one (a name below the apex for an NXDOMAIN, a name below a zone
//! cut for a referral, a name matched by a wildcard), so every compression
//! pointer is recorded as a *fixup*: the data plane adds
//! `real question length − assumed length` to each. That is sound because
//! each pointer targets either a suffix of the assumed question that is also
//! a suffix of every real question using the section, or an earlier part of
//! the section itself, and both move by exactly that delta. The one pointer
//! that must not move is the owner of synthesized records (`0xC00C`, the
//! question itself), which is written without a fixup.
//!
//! Compile-time only: allocation here is fine.

use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::{Section, Sections};

/// Pointers above this offset are not recorded as compression targets, so
/// that adding a fixup delta (under 256) can never overflow 14 bits.
const MAX_POINTER_TARGET: usize = 0x3FFF - 256;

/// Lower-cased wire form of an absolute name.
pub fn wire_lower(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

/// Offsets at which each label of a wire name starts (root label included).
fn label_starts(wire: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        starts.push(at);
        if wire[at] == 0 {
            break;
        }
        at += 1 + usize::from(wire[at]);
    }
    starts
}

/// Builds one section for an assumed question.
pub struct SectionEncoder<'question> {
    bytes: Vec<u8>,
    fixups: Vec<u16>,
    /// Absolute offset of the section's first byte in the response.
    base: usize,
    assumed_question_len: usize,
    /// Known names: lower-cased wire suffix → absolute offset. Filled on
    /// the first name written, since most sections (an A RRset owned by the
    /// question) never need it.
    dictionary: Vec<(Vec<u8>, usize)>,
    pending_question: Option<(&'question [u8], usize)>,
    counts: [u16; 3],
    /// False for a section that goes wherever the data plane puts it (an
    /// NSEC proof): names point into the question only, never into the
    /// section itself, whose place in the response is not known.
    self_reference: bool,
}

/// Which section a record goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Answer section.
    Answer = 0,
    /// Authority section.
    Authority = 1,
    /// Additional section.
    Additional = 2,
}

/// How to write a record's owner name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    /// The question name itself (`0xC00C`, never moved): exact matches and
    /// wildcard synthesis.
    Question,
    /// Any other name, compressed where possible.
    Name(&'a Name),
}

impl<'question> SectionEncoder<'question> {
    /// Starts a section for `assumed_question` (lower-cased wire form).
    /// `reusable_from_label`: suffixes of the question starting at this label
    /// or later may be pointed to (1 for a wildcard owner `*.x`, whose first
    /// label is not part of the real question; 0 otherwise).
    pub fn new(assumed_question: &'question [u8], reusable_from_label: usize) -> Self {
        let base = super::HEADER_LEN + assumed_question.len() + 4;
        Self {
            bytes: Vec::new(),
            fixups: Vec::new(),
            base,
            assumed_question_len: assumed_question.len(),
            dictionary: Vec::new(),
            pending_question: Some((assumed_question, reusable_from_label)),
            counts: [0; 3],
            self_reference: true,
        }
    }

    /// Starts a section that can be appended after any other (NSEC proofs
    /// chosen at query time): its names are compressed against the
    /// question only, assumed to be `apex`, a suffix of every real one, so
    /// the usual fixups move them.
    pub fn against_question(apex: &'question [u8]) -> Self {
        Self {
            self_reference: false,
            ..Self::new(apex, 0)
        }
    }

    fn seed_dictionary(&mut self) {
        if let Some((question, reusable_from_label)) = self.pending_question.take() {
            for start in label_starts(question).into_iter().skip(reusable_from_label) {
                if question[start] != 0 {
                    self.dictionary
                        .push((question[start..].to_vec(), super::HEADER_LEN + start));
                }
            }
        }
    }

    fn write_pointer(&mut self, target: usize) {
        self.fixups.push(self.bytes.len() as u16);
        self.bytes
            .extend_from_slice(&(0xC000 | target as u16).to_be_bytes());
    }

    /// Writes `name` with compression (original letter case for new labels).
    fn write_name(&mut self, name: &Name) {
        self.seed_dictionary();
        let lower = wire_lower(name);
        let starts = label_starts(&lower);
        let mut labels = name.iter();
        for &start in &starts {
            let suffix = &lower[start..];
            if suffix == [0] {
                self.bytes.push(0);
                return;
            }
            if let Some(&(_, target)) = self.dictionary.iter().find(|(known, _)| known == suffix) {
                self.write_pointer(target);
                return;
            }
            let here = self.base + self.bytes.len();
            if here <= MAX_POINTER_TARGET && self.self_reference {
                self.dictionary.push((suffix.to_vec(), here));
            }
            let label = labels.next().unwrap_or_default();
            self.bytes.push(label.len() as u8);
            self.bytes.extend_from_slice(label);
        }
    }

    /// Writes a name without compression (RFC 3597 §4: only the RFC 1035
    /// types may compress names in their RDATA).
    fn write_rdata_uncompressed(&mut self, data: &RData) -> Result<(), String> {
        let mut buffer = Vec::new();
        let mut encoder = BinEncoder::new(&mut buffer);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        data.emit(&mut encoder).map_err(|error| error.to_string())?;
        self.bytes.extend_from_slice(&buffer);
        Ok(())
    }

    /// Appends one record.
    pub fn push(
        &mut self,
        part: Part,
        owner: Owner<'_>,
        record: &Record,
        ttl: u32,
    ) -> Result<(), String> {
        match owner {
            Owner::Question => {
                // 0xC00C: the question name; it never moves, so no fixup.
                self.bytes
                    .extend_from_slice(&[0xC0, super::HEADER_LEN as u8]);
            }
            Owner::Name(name) => self.write_name(name),
        }
        let record_type = record.record_type();
        self.bytes
            .extend_from_slice(&u16::from(record_type).to_be_bytes());
        self.bytes.extend_from_slice(&1u16.to_be_bytes());
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        let length_at = self.bytes.len();
        self.bytes.extend_from_slice(&[0, 0]);
        match &record.data {
            RData::A(address) => self.bytes.extend_from_slice(&address.0.octets()),
            RData::AAAA(address) => self.bytes.extend_from_slice(&address.0.octets()),
            RData::CNAME(target) => self.write_name(&target.0),
            RData::NS(target) => self.write_name(&target.0),
            RData::PTR(target) => self.write_name(&target.0),
            RData::MX(mx) => {
                self.bytes.extend_from_slice(&mx.preference.to_be_bytes());
                self.write_name(&mx.exchange);
            }
            RData::SOA(soa) => {
                self.write_name(&soa.mname);
                self.write_name(&soa.rname);
                for value in [
                    soa.serial,
                    soa.refresh as u32,
                    soa.retry as u32,
                    soa.expire as u32,
                    soa.minimum,
                ] {
                    self.bytes.extend_from_slice(&value.to_be_bytes());
                }
            }
            other => self.write_rdata_uncompressed(other)?,
        }
        let rdata_len = self.bytes.len() - length_at - 2;
        let rdata_len = u16::try_from(rdata_len)
            .map_err(|_| format!("{record_type} record data too long ({rdata_len} bytes)"))?;
        self.bytes[length_at..length_at + 2].copy_from_slice(&rdata_len.to_be_bytes());
        self.counts[part as usize] += 1;
        Ok(())
    }

    /// Appends a whole RRset with one owner and TTL.
    pub fn push_set(
        &mut self,
        part: Part,
        owner: Owner<'_>,
        records: &[&Record],
        ttl: u32,
    ) -> Result<(), String> {
        for &record in records {
            self.push(part, owner, record, ttl)?;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.bytes.len()
    }

    /// Records written so far: answer, authority, additional.
    pub fn counts(&self) -> [u16; 3] {
        self.counts
    }

    /// Stores the finished section in the table's arenas.
    pub fn finish(self, sections: &mut Sections) -> Result<u32, String> {
        let length = u16::try_from(self.bytes.len())
            .map_err(|_| format!("response section too large ({} bytes)", self.bytes.len()))?;
        let section = Section {
            start: u32::try_from(sections.bytes.len()).map_err(|_| "table too large")?,
            length,
            fixup_start: u32::try_from(sections.fixups.len()).map_err(|_| "table too large")?,
            fixup_count: u16::try_from(self.fixups.len()).map_err(|_| "too many names")?,
            counts: self.counts,
            assumed_question_len: self.assumed_question_len as u8,
        };
        sections.bytes.extend_from_slice(&self.bytes);
        sections.fixups.extend_from_slice(&self.fixups);
        let id = u32::try_from(sections.list.len()).map_err(|_| "too many sections")?;
        sections.list.push(section);
        Ok(id)
    }
}
