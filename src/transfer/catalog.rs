//! Catalog zones (RFC 9432): the list of secondary zones, kept on the primary.
//!
//! A `[[secondary.catalog]]` is transferred and kept like any secondary
//! zone, but never served. Each build reads the kept copy and adds its
//! members (the PTR records one label below `zones.<catalog>`) to the
//! secondary zones, with the catalog's primaries and key, so a zone added
//! to the catalog on the primary is transferred and served by every node
//! without touching `steer.toml`. Only schema version 2
//! (`version.<catalog> TXT "2"`) is read; of the properties, `coo` is
//! followed and `group` ignored.
//!
//! A member's state is its kept copy (and its IXFR journal), and the
//! catalog decides its life (RFC 9432 §5): removed from the catalog that
//! provisioned it, the zone stops being served and its state is deleted;
//! listed under a new unique label, it is reset (state deleted, the zone
//! transferred afresh before it is served again); with a `coo` pointing to
//! another catalog this node consumes, it moves there once that catalog
//! lists it, keeping its state when its unique label stays the same. To
//! tell, each catalog's members as last served are recorded beside its
//! kept copy (`<catalog>.members`); a build only compares and says what
//! it will do, and the deleting and recording happen when the build is
//! served ([`apply`]), so `steer check` changes nothing. A catalog that is
//! not transferred yet, or does not load, decides nothing: its members'
//! copies stay until it is read again.
//!
//! Control plane only, run by every build before the zones are loaded.

use std::path::Path;

use hickory_proto::rr::{Name, RData};

use crate::config::secondary::{SecondaryConfig, SecondaryZone, ZoneKind};
use crate::zone;

/// A member zone as its catalog lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    /// The zone's apex, lower case.
    name: Name,
    /// Its member node's unique label (lower case).
    id: String,
    /// Where its `coo` property says it moves.
    coo: Option<Name>,
}

/// Members a catalog provisions: apex and unique label.
type Provisioned = Vec<(Name, String)>;

/// A member that a `coo` property moves from one catalog to another.
struct Move {
    member: Name,
    from: Name,
    to: Name,
}

/// The catalogs a build read and how their members changed since the
/// membership last served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Each catalog read, with the members it provisions now (apex,
    /// unique label): its record once this build is served.
    read: Vec<(Name, Provisioned)>,
    /// Members whose state goes when this build is served.
    dropped: Vec<Dropped>,
}

/// A member whose kept state is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dropped {
    zone: Name,
    catalog: Name,
    /// Listed again under a new unique label: transferred afresh, not
    /// served from the old copy meanwhile.
    reset: bool,
}

impl Membership {
    /// Members whose kept copy must not be served: those being reset.
    pub fn resets(&self) -> Vec<Name> {
        self.dropped
            .iter()
            .filter(|dropped| dropped.reset)
            .map(|dropped| dropped.zone.clone())
            .collect()
    }

    /// Every member whose state goes, reset or removed.
    pub fn dropped(&self) -> Vec<Name> {
        self.dropped
            .iter()
            .map(|dropped| dropped.zone.clone())
            .collect()
    }
}

/// The file a catalog's members as last served are recorded in.
fn record_file(config: &SecondaryConfig, catalog: &Name) -> std::path::PathBuf {
    crate::config::zone_file(&config.directory, catalog, "members")
}

/// Adds the members of every catalog kept in `config`'s directory to its
/// zones. Members that are already secondary zones, or zones of the zones
/// directory (`elsewhere`), are left out with a warning, as are the
/// members of a catalog not transferred yet, not loadable, or of another
/// schema version. Returns the warnings, which also say what serving the
/// build will delete, and the [`Membership`] that [`apply`] carries out.
pub fn expand(config: &mut SecondaryConfig, elsewhere: &[Name]) -> (Vec<String>, Membership) {
    let mut warnings = Vec::new();
    let catalogs: Vec<SecondaryZone> = config
        .zones
        .iter()
        .filter(|zone| zone.kind == ZoneKind::Catalog)
        .cloned()
        .collect();
    let mut listed: Vec<(SecondaryZone, Vec<Member>)> = Vec::new();
    for catalog in &catalogs {
        let file = config.file_of(&catalog.name);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                warnings.push(format!(
                    "catalog zone {}: cannot read {}: {error}; its members are not served",
                    catalog.name,
                    file.display()
                ));
                continue;
            }
        };
        let members = match zone::parse_zone(&text, &file, &catalog.name) {
            Ok(parsed) => members(&catalog.name, &parsed),
            Err(errors) => Err(format!(
                "does not load ({})",
                errors.first().map(ToString::to_string).unwrap_or_default()
            )),
        };
        match members {
            Ok(members) => listed.push((catalog.clone(), members)),
            Err(reason) => warnings.push(format!(
                "catalog zone {}: {reason}; its members are not served",
                catalog.name
            )),
        }
    }
    let lists = |catalog: &Name, member: &Name| {
        listed.iter().any(|(other, members)| {
            other.name == *catalog && members.iter().any(|listed| listed.name == *member)
        })
    };
    let mut read: Vec<(Name, Provisioned)> = Vec::new();
    let mut moves: Vec<Move> = Vec::new();
    for (catalog, members) in &listed {
        let mut provisioned = Vec::new();
        for member in members {
            // Moving (RFC 9432 §5.4): the new catalog takes it once it
            // lists it; until then the old one keeps it.
            if let Some(new_owner) = &member.coo
                && *new_owner != catalog.name
                && lists(new_owner, &member.name)
            {
                moves.push(Move {
                    member: member.name.clone(),
                    from: catalog.name.clone(),
                    to: new_owner.clone(),
                });
                continue;
            }
            if let Some(existing) = config.zones.iter().find(|zone| zone.name == member.name) {
                let what = match &existing.kind {
                    ZoneKind::Member(other) => format!("a member of catalog {other}"),
                    _ => "a secondary zone of steer.toml".to_owned(),
                };
                warnings.push(format!(
                    "catalog zone {}: member {} is already {what}; left out",
                    catalog.name, member.name
                ));
                continue;
            }
            if elsewhere.contains(&member.name) {
                warnings.push(format!(
                    "catalog zone {}: member {} is a zone of the zones directory; left out",
                    catalog.name, member.name
                ));
                continue;
            }
            config.zones.push(SecondaryZone {
                name: member.name.clone(),
                primaries: catalog.primaries.clone(),
                key: catalog.key.clone(),
                kind: ZoneKind::Member(catalog.name.clone()),
            });
            provisioned.push((member.name.clone(), member.id.clone()));
        }
        read.push((catalog.name.clone(), provisioned));
    }
    let dropped = changes(config, &catalogs, (&read, &moves), &mut warnings);
    (warnings, Membership { read, dropped })
}

/// The members served before (the records of `catalogs`) whose state
/// goes now, given what the catalogs `read` provision and the `moves`
/// their `coo` properties make; a warning for each.
fn changes(
    config: &SecondaryConfig,
    catalogs: &[SecondaryZone],
    (read, moves): (&[(Name, Provisioned)], &[Move]),
    warnings: &mut Vec<String>,
) -> Vec<Dropped> {
    let now: Vec<(&Name, &Name, &String)> = read
        .iter()
        .flat_map(|(catalog, members)| members.iter().map(move |(name, id)| (name, catalog, id)))
        .collect();
    let mut dropped = Vec::new();
    for catalog in catalogs {
        // Whether the catalog was read: one that was not decides nothing.
        let decided = read.iter().any(|(name, _)| *name == catalog.name);
        for (member, id) in read_record(&record_file(config, &catalog.name)) {
            match now.iter().find(|(name, _, _)| **name == member) {
                Some((_, owner, new_id)) => {
                    // The state stays under the same label, in the same
                    // catalog or moved by `coo` (§5.4); a move without
                    // one is a removal and a new member.
                    let stays = **owner == catalog.name
                        || moves.iter().any(|moved| {
                            moved.member == member
                                && moved.from == catalog.name
                                && moved.to == **owner
                        });
                    if (stays && **new_id == id) || (!stays && !decided) {
                        continue;
                    }
                    warnings.push(if stays {
                        format!(
                            "catalog zone {owner}: member {member} is listed under a new unique \
                             label ({id} → {new_id}); its kept copy is deleted and the zone \
                             transferred afresh when this configuration is served (RFC 9432 §5.3)"
                        )
                    } else {
                        format!(
                            "catalog zone {}: member {member} left it for catalog {owner}, \
                             without a coo property; its kept copy is deleted and the zone \
                             transferred afresh when this configuration is served (RFC 9432 §5.4)",
                            catalog.name
                        )
                    });
                    dropped.push(Dropped {
                        zone: member,
                        catalog: catalog.name.clone(),
                        reset: true,
                    });
                }
                None => {
                    // Now configured in steer.toml: not the catalog's any more.
                    let configured = config.zones.iter().any(|zone| zone.name == member);
                    if decided && !configured {
                        warnings.push(format!(
                            "catalog zone {}: member {member} left it; its kept copy is \
                             deleted when this configuration is served (RFC 9432 §5.2)",
                            catalog.name
                        ));
                        dropped.push(Dropped {
                            zone: member,
                            catalog: catalog.name.clone(),
                            reset: false,
                        });
                    }
                }
            }
        }
    }
    dropped
}

/// The members recorded in `file` (none when it is missing or unreadable:
/// a record that cannot be read decides nothing).
fn read_record(file: &Path) -> Provisioned {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .filter(|line| !line.starts_with(';'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = Name::from_ascii(fields.next()?).ok()?;
            Some((name, fields.next()?.to_owned()))
        })
        .collect()
}

/// Carries out `membership` once the build it came from is served: deletes
/// the kept copy and IXFR journal (in `journal_directory`) of each dropped
/// member, and records each catalog's members. Returns what it did, and
/// what it could not do, one line each, for the log.
pub fn apply(
    config: &SecondaryConfig,
    membership: &Membership,
    journal_directory: &Path,
) -> Vec<Result<String, String>> {
    let mut done = Vec::new();
    for dropped in &membership.dropped {
        for file in [
            config.file_of(&dropped.zone),
            crate::config::zone_file(journal_directory, &dropped.zone, "ixfr"),
        ] {
            match std::fs::remove_file(&file) {
                Ok(()) => done.push(Ok(format!(
                    "deleted {} ({} {} catalog {})",
                    file.display(),
                    dropped.zone,
                    if dropped.reset {
                        "was reset by"
                    } else {
                        "left"
                    },
                    dropped.catalog
                ))),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => done.push(Err(format!("cannot delete {}: {error}", file.display()))),
            }
        }
    }
    for (catalog, members) in &membership.read {
        let file = record_file(config, catalog);
        let mut text = format!(
            "; the members of catalog zone {catalog} last served; written by Steer, \
             which compares the catalog with it\n"
        );
        for (name, id) in members {
            text.push_str(&format!("{name} {id}\n"));
        }
        if std::fs::read_to_string(&file).is_ok_and(|old| old == text) {
            continue;
        }
        if let Err(error) = crate::durable::replace(&file, text.as_bytes()) {
            done.push(Err(format!("cannot write {}: {error}", file.display())));
        }
    }
    done
}

/// The member zones of catalog `apex` (lower case, in zone order), or why
/// they cannot be read.
fn members(apex: &Name, catalog: &zone::Zone) -> Result<Vec<Member>, String> {
    let version = Name::from_ascii("version")
        .and_then(|label| label.append_domain(apex))
        .map_err(|error| error.to_string())?;
    let zones = Name::from_ascii("zones")
        .and_then(|label| label.append_domain(apex))
        .map_err(|error| error.to_string())?;
    let versions: Vec<Vec<u8>> = catalog
        .records
        .iter()
        .filter(|record| record.record.name == version)
        .filter_map(|record| match &record.record.data {
            RData::TXT(txt) => Some(txt.txt_data.concat()),
            _ => None,
        })
        .collect();
    if versions != [b"2".to_vec()] {
        return Err(
            "has no single version TXT \"2\" (RFC 9432 schema version 2 is the one read)"
                .to_owned(),
        );
    }
    let below = zones.num_labels();
    // Label `index` of `owner`, counted from the left, lower case.
    let label = |owner: &Name, index: usize| {
        String::from_utf8_lossy(owner.iter().nth(index).unwrap_or_default()).to_ascii_lowercase()
    };
    let mut members: Vec<Member> = Vec::new();
    for record in &catalog.records {
        let owner = &record.record.name;
        // A member is a PTR exactly one label below `zones`.
        if owner.num_labels() != below + 1 || !zones.zone_of(owner) {
            continue;
        }
        if let RData::PTR(target) = &record.record.data {
            let mut name = target.0.to_lowercase();
            name.set_fqdn(true);
            if !members.iter().any(|member| member.name == name) {
                members.push(Member {
                    name,
                    id: label(owner, 0),
                    coo: None,
                });
            }
        }
    }
    // Properties sit one label further down: `coo.<unique-N>.zones`.
    for record in &catalog.records {
        let owner = &record.record.name;
        if owner.num_labels() != below + 2 || !zones.zone_of(owner) || label(owner, 0) != "coo" {
            continue;
        }
        if let RData::PTR(target) = &record.record.data {
            let id = label(owner, 1);
            if let Some(member) = members.iter_mut().find(|member| member.id == id) {
                let mut new_owner = target.0.to_lowercase();
                new_owner.set_fqdn(true);
                member.coo = Some(new_owner);
            }
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    fn catalog(text: &str) -> zone::Zone {
        let apex = name("catalog.invalid.");
        zone::parse_zone(text, std::path::Path::new("catalog.invalid.zone"), &apex)
            .expect("catalog loads")
    }

    const HEAD: &str = "$ORIGIN catalog.invalid.\n$TTL 0\n\
        @ SOA invalid. invalid. 1 3600 600 86400 0\n@ NS invalid.\n";

    #[test]
    fn members_are_the_ptr_records_below_zones() {
        let zone = catalog(&format!(
            "{HEAD}version TXT \"2\"\n\
             a1.zones PTR Example.ORG.\n\
             group.a1.zones TXT \"blue\"\n\
             B2.zones PTR example.net.\n\
             coo.b2.zones PTR Other.Catalog.\n\
             c3.zones PTR example.org.\n\
             other PTR ignored.example.\n"
        ));
        let found = members(&name("catalog.invalid."), &zone).expect("version 2");
        assert_eq!(
            found,
            [
                Member {
                    name: name("example.org."),
                    id: "a1".to_owned(),
                    coo: None,
                },
                Member {
                    name: name("example.net."),
                    id: "b2".to_owned(),
                    coo: Some(name("other.catalog.")),
                },
            ]
        );
    }

    #[test]
    fn other_versions_are_not_read() {
        let apex = name("catalog.invalid.");
        for version in [
            "",
            "version TXT \"1\"\n",
            "version TXT \"2\"\nversion TXT \"3\"\n",
        ] {
            let zone = catalog(&format!("{HEAD}{version}a1.zones PTR example.org.\n"));
            assert!(members(&apex, &zone).is_err(), "{version:?}");
        }
    }

    /// A secondary directory with catalogs `one.invalid` and
    /// `two.invalid` configured (in that order), and `explicit.test` a
    /// secondary zone of steer.toml.
    struct Directory {
        directory: tempfile::TempDir,
    }

    impl Directory {
        fn new() -> Directory {
            Directory {
                directory: tempfile::tempdir().expect("directory"),
            }
        }

        fn config(&self) -> SecondaryConfig {
            let zone = |apex: &str, kind: ZoneKind| SecondaryZone {
                name: name(apex),
                primaries: vec!["127.0.0.1:53".parse().expect("address")],
                key: None,
                kind,
            };
            SecondaryConfig {
                directory: self.directory.path().to_path_buf(),
                zones: vec![
                    zone("explicit.test.", ZoneKind::Configured),
                    zone("one.invalid.", ZoneKind::Catalog),
                    zone("two.invalid.", ZoneKind::Catalog),
                ],
            }
        }

        /// Writes the kept copy of catalog `apex` with `members` (unique
        /// label, zone, and a `coo` target or "").
        fn catalog(&self, apex: &str, members: &[(&str, &str, &str)]) {
            let mut text = format!(
                "$ORIGIN {apex}\n$TTL 0\n@ SOA invalid. invalid. 1 3600 600 86400 0\n\
                 @ NS invalid.\nversion TXT \"2\"\n"
            );
            for (id, zone, coo) in members {
                text.push_str(&format!("{id}.zones PTR {zone}\n"));
                if !coo.is_empty() {
                    text.push_str(&format!("coo.{id}.zones PTR {coo}\n"));
                }
            }
            std::fs::write(self.config().file_of(&name(apex)), text).expect("catalog");
        }

        /// Writes a kept copy for `zone` (its content does not matter
        /// here).
        fn keep(&self, zone: &str) {
            std::fs::write(self.config().file_of(&name(zone)), "kept\n").expect("copy");
        }

        fn has_copy(&self, zone: &str) -> bool {
            self.config().file_of(&name(zone)).exists()
        }

        /// Expands and, as serving the build does, applies.
        fn serve(&self) -> (SecondaryConfig, Vec<String>, Membership) {
            let mut config = self.config();
            let (warnings, membership) = expand(&mut config, &[name("local.test.")]);
            let journals = self.directory.path().join("journal");
            for outcome in apply(&config, &membership, &journals) {
                outcome.expect("applied");
            }
            (config, warnings, membership)
        }
    }

    fn members_of(config: &SecondaryConfig) -> Vec<(String, String)> {
        config
            .zones
            .iter()
            .filter_map(|zone| match &zone.kind {
                ZoneKind::Member(catalog) => Some((zone.name.to_string(), catalog.to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_member_that_leaves_its_catalog_loses_its_copy_and_only_then() {
        let directory = Directory::new();
        directory.catalog(
            "one.invalid.",
            &[("a", "a.test.", ""), ("b", "b.test.", "")],
        );
        directory.keep("a.test.");
        directory.keep("b.test.");
        let (config, _, membership) = directory.serve();
        assert_eq!(membership.dropped(), Vec::<Name>::new());
        assert_eq!(members_of(&config).len(), 2);

        directory.catalog("one.invalid.", &[("a", "a.test.", "")]);
        // A dry run (steer check) says so and changes nothing.
        let mut config = directory.config();
        let (warnings, membership) = expand(&mut config, &[]);
        assert!(
            warnings.iter().any(|warning| warning
                == "catalog zone one.invalid.: member b.test. left it; its kept copy is deleted \
                    when this configuration is served (RFC 9432 §5.2)"),
            "{warnings:?}"
        );
        assert_eq!(membership.dropped(), [name("b.test.")]);
        assert!(membership.resets().is_empty());
        assert!(directory.has_copy("b.test."));
        // Served: the copy goes, once.
        directory.serve();
        assert!(!directory.has_copy("b.test."));
        assert!(directory.has_copy("a.test."));
        let (_, warnings, membership) = directory.serve();
        assert!(membership.dropped().is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_catalog_that_cannot_be_read_decides_nothing() {
        let directory = Directory::new();
        directory.catalog("one.invalid.", &[("a", "a.test.", "")]);
        directory.keep("a.test.");
        directory.serve();
        std::fs::write(
            directory.config().file_of(&name("one.invalid.")),
            "not a zone\n",
        )
        .expect("catalog");
        let (config, warnings, membership) = directory.serve();
        assert!(membership.dropped().is_empty(), "{warnings:?}");
        assert!(members_of(&config).is_empty());
        assert!(directory.has_copy("a.test."));
        // Read again, it provisions the zone as before, copy and all.
        directory.catalog("one.invalid.", &[("a", "a.test.", "")]);
        let (config, _, membership) = directory.serve();
        assert!(membership.dropped().is_empty());
        assert_eq!(members_of(&config).len(), 1);
        assert!(directory.has_copy("a.test."));
    }

    #[test]
    fn a_new_unique_label_resets_the_member() {
        let directory = Directory::new();
        directory.catalog("one.invalid.", &[("a", "a.test.", "")]);
        directory.keep("a.test.");
        directory.serve();
        directory.catalog("one.invalid.", &[("a2", "a.test.", "")]);
        let (config, warnings, membership) = directory.serve();
        assert_eq!(membership.resets(), [name("a.test.")], "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|warning| warning.contains("new unique label (a → a2)")),
            "{warnings:?}"
        );
        // Still provisioned, without the old copy.
        assert_eq!(members_of(&config).len(), 1);
        assert!(!directory.has_copy("a.test."));
        let (_, _, membership) = directory.serve();
        assert!(membership.dropped().is_empty());
    }

    #[test]
    fn coo_moves_a_member_once_the_new_catalog_lists_it() {
        let directory = Directory::new();
        directory.catalog(
            "one.invalid.",
            &[("a", "a.test.", ""), ("b", "b.test.", "")],
        );
        directory.catalog("two.invalid.", &[]);
        directory.keep("a.test.");
        directory.keep("b.test.");
        directory.serve();
        // The old catalog points both to the new one, which lists a.test.
        // under the same label and b.test. under another.
        directory.catalog(
            "one.invalid.",
            &[
                ("a", "a.test.", "two.invalid."),
                ("b", "b.test.", "two.invalid."),
            ],
        );
        directory.catalog("two.invalid.", &[("a", "a.test.", "")]);
        let (config, warnings, membership) = directory.serve();
        assert_eq!(
            members_of(&config),
            [
                ("b.test.".to_owned(), "one.invalid.".to_owned()),
                ("a.test.".to_owned(), "two.invalid.".to_owned()),
            ],
            "{warnings:?}"
        );
        // No clash warning for a move.
        assert!(
            !warnings.iter().any(|warning| warning.contains("already")),
            "{warnings:?}"
        );
        assert!(membership.dropped().is_empty(), "{warnings:?}");
        assert!(directory.has_copy("a.test."));
        directory.catalog(
            "two.invalid.",
            &[("a", "a.test.", ""), ("x", "b.test.", "")],
        );
        let (config, _, membership) = directory.serve();
        assert_eq!(membership.resets(), [name("b.test.")]);
        assert_eq!(
            members_of(&config),
            [
                ("a.test.".to_owned(), "two.invalid.".to_owned()),
                ("b.test.".to_owned(), "two.invalid.".to_owned()),
            ]
        );
        assert!(directory.has_copy("a.test."));
        assert!(!directory.has_copy("b.test."));
    }

    #[test]
    fn members_not_provisioned_by_the_catalog_keep_their_state() {
        let directory = Directory::new();
        // explicit.test. is steer.toml's and local.test. the zones
        // directory's: the catalog listing them provisions neither.
        directory.catalog(
            "one.invalid.",
            &[
                ("e", "explicit.test.", ""),
                ("l", "local.test.", ""),
                ("a", "a.test.", ""),
            ],
        );
        directory.catalog("two.invalid.", &[("a", "a.test.", "")]);
        directory.keep("explicit.test.");
        let (config, warnings, _) = directory.serve();
        assert_eq!(
            members_of(&config),
            [("a.test.".to_owned(), "one.invalid.".to_owned())]
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        // Leaving the catalog does not delete what it did not provision.
        directory.catalog("one.invalid.", &[]);
        let (_, _, membership) = directory.serve();
        assert!(directory.has_copy("explicit.test."));
        // a.test. left one.invalid., which provisioned it; two.invalid.,
        // which lists it, takes it over only as a new member.
        assert_eq!(membership.dropped(), [name("a.test.")]);
    }
}
