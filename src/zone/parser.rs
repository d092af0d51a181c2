//! Master-file parser: entries → records with locations.
//!
//! Applies the directives (`$ORIGIN`, `$TTL`, `$INCLUDE`, `$GENERATE`), resolves owner
//! names (`@`, relative, inherited from the previous record when an entry
//! starts with a blank), reads TTL and class in either order, and turns the
//! data fields into hickory `RData` through [`super::rdata`]. A bad entry
//! is reported with its `file:line` and skipped, so one pass finds every
//! syntax error of a file.
//!
//! `$INCLUDE` paths are relative to the including file's directory. An
//! included file starts with the includer's origin (or the one given on the
//! `$INCLUDE` line), `$TTL` and previous TTL; none of its changes leak back,
//! as RFC 1035 §5.1 prescribes for the origin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};

use super::generate;
use super::lexer::{Entry, Lexer, Token};
use super::rdata::{parse_name, parse_rdata, parse_ttl, record_type};
use super::{Location, ZoneError, ZoneRecord};

/// How many files deep `$INCLUDE` may nest (the zone file itself is depth 0).
pub(super) const MAX_INCLUDE_DEPTH: usize = 8;

/// Records and errors of one zone file and everything it includes.
pub(super) struct Parsed {
    /// Records in file order (an included file's records where it is included).
    pub records: Vec<ZoneRecord>,
    /// Every error found, in file order.
    pub errors: Vec<ZoneError>,
}

/// The owner name a blank-started entry inherits.
#[derive(Clone)]
enum Owner {
    /// No record yet.
    Unset,
    /// The previous owner could not be parsed (already reported): records
    /// inheriting it are skipped without repeating the error.
    Invalid,
    /// The previous record's owner.
    Name(Name),
}

/// Parser state that `$INCLUDE` saves and restores.
#[derive(Clone)]
struct State {
    origin: Name,
    /// From `$TTL`.
    default_ttl: Option<u32>,
    /// TTL of the previous record, used when there is no `$TTL`.
    previous_ttl: Option<u32>,
    owner: Owner,
}

/// One file on the include stack.
struct Frame {
    /// The path as shown in messages.
    shown: PathBuf,
    /// The canonical path, to detect cycles; `None` when the file is not on
    /// disk (text passed to `parse_zone` directly).
    canonical: Option<PathBuf>,
}

/// Parses `text` (the zone file `file`) with `origin` as its initial origin.
pub(super) fn parse(text: &str, file: &Path, origin: &Name) -> Parsed {
    // One record per line is the common shape; reserving up front avoids
    // copying large records while the vector grows.
    let lines = text.bytes().filter(|&byte| byte == b'\n').count();
    let mut parser = Parser {
        parsed: Parsed {
            records: Vec::with_capacity(lines + 1),
            errors: Vec::new(),
        },
        stack: vec![Frame {
            shown: file.to_path_buf(),
            canonical: std::fs::canonicalize(file).ok(),
        }],
    };
    let mut state = State {
        origin: origin.clone(),
        default_ttl: None,
        previous_ttl: None,
        owner: Owner::Unset,
    };
    parser.parse_text(text, &Arc::from(file), &mut state);
    parser.parsed
}

struct Parser {
    parsed: Parsed,
    stack: Vec<Frame>,
}

impl Parser {
    fn parse_text(&mut self, text: &str, file: &Arc<Path>, state: &mut State) {
        let mut lexer = Lexer::new(text);
        let mut tokens: Vec<Token<'_>> = Vec::with_capacity(16);
        while let Some(entry) = lexer.next_entry(&mut tokens) {
            if let Some((line, message)) = entry.error {
                self.error(file, line, message);
                // A broken record may have been meant to set the owner; do not
                // let the next blank-started record silently take an older one.
                let directive = tokens
                    .first()
                    .is_some_and(|token| token.text.starts_with('$'));
                if !entry.starts_with_blank && !directive {
                    state.owner = Owner::Invalid;
                }
                continue;
            }
            let directive =
                !entry.starts_with_blank && !tokens[0].quoted && tokens[0].text.starts_with('$');
            let result = if directive {
                self.directive(&tokens, entry.line, file, state)
            } else {
                self.record(&entry, &tokens, file, state)
            };
            if let Err(message) = result {
                self.error(file, entry.line, message);
            }
        }
    }

    fn error(&mut self, file: &Arc<Path>, line: u32, message: String) {
        self.parsed.errors.push(ZoneError {
            file: file.to_path_buf(),
            line: Some(line),
            message,
        });
    }

    fn directive(
        &mut self,
        tokens: &[Token<'_>],
        line: u32,
        file: &Arc<Path>,
        state: &mut State,
    ) -> Result<(), String> {
        let keyword = tokens[0].text;
        let arguments = &tokens[1..];
        if keyword.eq_ignore_ascii_case("$ORIGIN") {
            let [name] = arguments else {
                return Err("$ORIGIN takes exactly one domain name".to_owned());
            };
            state.origin = parse_name(name.text, &state.origin)?;
            Ok(())
        } else if keyword.eq_ignore_ascii_case("$TTL") {
            let [ttl] = arguments else {
                return Err("$TTL takes exactly one TTL".to_owned());
            };
            state.default_ttl = Some(parse_ttl(ttl.text)?);
            Ok(())
        } else if keyword.eq_ignore_ascii_case("$INCLUDE") {
            let (path, origin) = match arguments {
                [path] => (path, state.origin.clone()),
                [path, origin] => (path, parse_name(origin.text, &state.origin)?),
                _ => return Err("$INCLUDE takes a file name and an optional origin".to_owned()),
            };
            self.include(path.text, origin, file, state)
        } else if keyword.eq_ignore_ascii_case("$GENERATE") {
            self.generate(arguments, line, file, state)
        } else {
            Err(format!(
                "unknown directive {keyword} (expected $ORIGIN, $TTL, $INCLUDE or $GENERATE)"
            ))
        }
    }

    /// `$GENERATE range owner [ttl] [class] type rdata...` (see
    /// [`super::generate`]): every record it stands for, each located at
    /// the directive's line. The first bad one stops it, and the error
    /// says for which value.
    fn generate(
        &mut self,
        arguments: &[Token<'_>],
        line: u32,
        file: &Arc<Path>,
        state: &mut State,
    ) -> Result<(), String> {
        let [range, owner, rest @ ..] = arguments else {
            return Err(
                "$GENERATE takes a range, an owner, an optional TTL and class, a type and \
                 record data"
                    .to_owned(),
            );
        };
        let values = generate::range(range.text)?;
        let (ttl, rest) = ttl_and_class(rest)?;
        let Some((type_token, data)) = rest.split_first() else {
            return Err("$GENERATE: missing record type".to_owned());
        };
        let record_type = type_of(type_token)?;
        let ttl = ttl
            .or(state.default_ttl)
            .or(state.previous_ttl)
            .ok_or("no TTL: give $GENERATE a TTL or put a $TTL directive before it")?;
        state.previous_ttl = Some(ttl);
        let location = Location {
            file: Arc::clone(file),
            line,
        };
        for value in values {
            let at = |message: String| format!("$GENERATE at {value}: {message}");
            let name = generate::expand(owner.text, value)
                .and_then(|text| parse_name(&text, &state.origin))
                .map_err(at)?;
            let texts = data
                .iter()
                .map(|token| generate::expand(token.text, value))
                .collect::<Result<Vec<String>, String>>()
                .map_err(at)?;
            let tokens: Vec<Token<'_>> = texts
                .iter()
                .zip(data)
                .map(|(text, token)| Token {
                    text,
                    quoted: token.quoted,
                })
                .collect();
            let rdata = parse_rdata(record_type, &tokens, &state.origin).map_err(at)?;
            self.parsed.records.push(ZoneRecord {
                record: Record::from_rdata(name, ttl, rdata),
                location: location.clone(),
            });
        }
        Ok(())
    }

    fn include(
        &mut self,
        path: &str,
        origin: Name,
        file: &Arc<Path>,
        state: &State,
    ) -> Result<(), String> {
        let shown = match file.parent() {
            Some(directory) => directory.join(path),
            None => PathBuf::from(path),
        };
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            return Err(format!(
                "$INCLUDE {} nests deeper than {MAX_INCLUDE_DEPTH} files",
                shown.display()
            ));
        }
        let canonical = std::fs::canonicalize(&shown)
            .map_err(|error| format!("cannot read $INCLUDE file {}: {error}", shown.display()))?;
        if let Some(start) = self
            .stack
            .iter()
            .position(|frame| frame.canonical.as_ref() == Some(&canonical))
        {
            let chain: Vec<String> = self.stack[start..]
                .iter()
                .map(|frame| frame.shown.display().to_string())
                .chain(std::iter::once(shown.display().to_string()))
                .collect();
            return Err(format!("$INCLUDE cycle: {}", chain.join(" -> ")));
        }
        let text = std::fs::read_to_string(&shown)
            .map_err(|error| format!("cannot read $INCLUDE file {}: {error}", shown.display()))?;
        let included: Arc<Path> = Arc::from(shown.as_path());
        self.stack.push(Frame {
            shown,
            canonical: Some(canonical),
        });
        // The included file works on a copy: its $ORIGIN, $TTL and owner stay inside it.
        let mut inner = State {
            origin,
            owner: Owner::Unset,
            ..state.clone()
        };
        self.parse_text(&text, &included, &mut inner);
        self.stack.pop();
        Ok(())
    }

    fn record(
        &mut self,
        entry: &Entry,
        tokens: &[Token<'_>],
        file: &Arc<Path>,
        state: &mut State,
    ) -> Result<(), String> {
        let mut rest = tokens;
        let owner = if entry.starts_with_blank {
            match &state.owner {
                Owner::Name(name) => name.clone(),
                Owner::Invalid => return Ok(()),
                Owner::Unset => {
                    return Err(
                        "record starts with a blank but there is no previous owner name to repeat"
                            .to_owned(),
                    );
                }
            }
        } else {
            let token = tokens[0];
            rest = &tokens[1..];
            let parsed = if token.quoted {
                Err(format!("owner name \"{}\" must not be quoted", token.text))
            } else {
                parse_name(token.text, &state.origin)
            };
            match parsed {
                Ok(name) => {
                    state.owner = Owner::Name(name.clone());
                    name
                }
                Err(message) => {
                    state.owner = Owner::Invalid;
                    return Err(message);
                }
            }
        };

        let (ttl, rest) = ttl_and_class(rest)?;
        let Some((type_token, data)) = rest.split_first() else {
            return Err("missing record type".to_owned());
        };
        let record_type = type_of(type_token)?;
        let ttl = match ttl.or(state.default_ttl).or(state.previous_ttl) {
            Some(ttl) => ttl,
            None => {
                return Err(
                    "no TTL: give this record a TTL or put a $TTL directive before it".to_owned(),
                );
            }
        };
        state.previous_ttl = Some(ttl);
        let data = parse_rdata(record_type, data, &state.origin)?;
        self.parsed.records.push(ZoneRecord {
            record: Record::from_rdata(owner, ttl, data),
            location: Location {
                file: Arc::clone(file),
                line: entry.line,
            },
        });
        Ok(())
    }
}

/// The record type `token` names (a quoted one never does).
fn type_of(token: &Token<'_>) -> Result<RecordType, String> {
    if token.quoted {
        Err(format!("unknown record type \"{}\"", token.text))
    } else {
        record_type(token.text)
    }
}

/// The TTL and class at the front of `tokens`, in either order, each at
/// most once, and the tokens after them.
fn ttl_and_class<'tokens, 'text>(
    mut tokens: &'tokens [Token<'text>],
) -> Result<(Option<u32>, &'tokens [Token<'text>]), String> {
    let mut ttl = None;
    let mut class_seen = false;
    while let Some(token) = tokens.first().filter(|token| !token.quoted) {
        if ttl.is_none()
            && token
                .text
                .starts_with(|character: char| character.is_ascii_digit())
        {
            ttl = Some(parse_ttl(token.text)?);
        } else if !class_seen && is_class(token.text) {
            if !is_internet(token.text) {
                return Err(format!("class {} is not supported (only IN)", token.text));
            }
            class_seen = true;
        } else {
            break;
        }
        tokens = &tokens[1..];
    }
    Ok((ttl, tokens))
}

/// Whether `text` names a DNS class (RFC 1035 §3.2.4, RFC 3597 `CLASSnn`).
fn is_class(text: &str) -> bool {
    const CLASSES: [&str; 7] = ["IN", "CH", "CHAOS", "HS", "HESIOD", "CS", "NONE"];
    CLASSES.iter().any(|class| text.eq_ignore_ascii_case(class)) || class_number(text).is_some()
}

/// Whether the class `text` is IN, by name or as RFC 3597 `CLASS1`.
fn is_internet(text: &str) -> bool {
    text.eq_ignore_ascii_case("IN") || class_number(text) == Some(1)
}

/// The number of an RFC 3597 `CLASSnn` mnemonic (any case; saturating, so
/// a huge number is still a class, just not IN).
fn class_number(text: &str) -> Option<u64> {
    let (prefix, number) = text.split_at_checked(5)?;
    (prefix.eq_ignore_ascii_case("CLASS")
        && !number.is_empty()
        && number.bytes().all(|byte| byte.is_ascii_digit()))
    .then(|| number.parse().unwrap_or(u64::MAX))
}
