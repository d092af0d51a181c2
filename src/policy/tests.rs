//! Location steps and the per-query helpers, on hand-made locations.

use super::*;
use crate::config::steering::IpNet;

fn places() -> Vec<PoolPlace> {
    vec![
        PoolPlace {
            id: "fra".to_owned(),
            coordinates: Some((50.11, 8.68)),
            site: 0,
        },
        PoolPlace {
            id: "iad".to_owned(),
            coordinates: Some((38.94, -77.46)),
            site: 1,
        },
        PoolPlace {
            id: "sin".to_owned(),
            coordinates: Some((1.35, 103.82)),
            site: 2,
        },
    ]
}

fn at(continent: &str, country: &str, coordinates: Option<(f64, f64)>) -> Location {
    Location {
        continent: Some(continent.to_owned()),
        country: Some(country.to_owned()),
        subdivision: None,
        coordinates: coordinates
            .map(|(latitude, longitude)| ((latitude * 1e6) as i32, (longitude * 1e6) as i32)),
        asn: None,
    }
}

fn ids(pools: &[u16]) -> Vec<&'static str> {
    pools
        .iter()
        .map(|&pool| ["fra", "iad", "sin"][usize::from(pool)])
        .collect()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

#[test]
fn geo_picks_the_most_specific_region_then_default() {
    let geo = Step::Geo {
        map: vec![
            (Region::Continent("EU".into()), strings(&["fra", "iad"])),
            (Region::Country("US".into()), strings(&["iad"])),
            (
                Region::Subdivision("US".into(), "CA".into()),
                strings(&["sin", "iad"]),
            ),
        ],
        default: Some(strings(&["iad", "fra"])),
    };
    let policy = [geo];
    let mut california = at("NA", "US", None);
    california.subdivision = Some("CA".to_owned());
    assert_eq!(
        ids(&locate(&policy, &places(), &california, &[], None)),
        ["sin", "iad"]
    );
    assert_eq!(
        ids(&locate(
            &policy,
            &places(),
            &at("NA", "US", None),
            &[],
            None
        )),
        ["iad"]
    );
    assert_eq!(
        ids(&locate(
            &policy,
            &places(),
            &at("EU", "DE", None),
            &[],
            None
        )),
        ["fra", "iad"]
    );
    assert_eq!(
        ids(&locate(
            &policy,
            &places(),
            &at("AS", "JP", None),
            &[],
            None
        )),
        ["iad", "fra"]
    );
    assert_eq!(
        ids(&locate(&policy, &places(), &Location::default(), &[], None)),
        ["iad", "fra"]
    );
}

#[test]
fn geo_without_default_leaves_nothing_for_unmatched_clients() {
    let policy = [Step::Geo {
        map: vec![(Region::Continent("EU".into()), strings(&["fra"]))],
        default: None,
    }];
    assert!(locate(&policy, &places(), &at("NA", "US", None), &[], None).is_empty());
}

#[test]
fn geofence_keeps_listed_pools_only_inside_their_regions() {
    let policy = [Step::Geofence(vec![(
        "fra".to_owned(),
        vec![Region::Continent("EU".into())],
    )])];
    assert_eq!(
        ids(&locate(
            &policy,
            &places(),
            &at("EU", "FR", None),
            &[],
            None
        )),
        ["fra", "iad", "sin"]
    );
    assert_eq!(
        ids(&locate(
            &policy,
            &places(),
            &at("NA", "US", None),
            &[],
            None
        )),
        ["iad", "sin"]
    );
}

#[test]
fn nearest_orders_by_distance_with_bias() {
    let tokyo = at("AS", "JP", Some((35.68, 139.69)));
    let policy = [Step::Nearest { bias_km: vec![] }];
    assert_eq!(
        ids(&locate(&policy, &places(), &tokyo, &[], None)),
        ["sin", "fra", "iad"]
    );
    // A large bias pushes Singapore behind the others.
    let policy = [Step::Nearest {
        bias_km: vec![("sin".to_owned(), 20_000.0)],
    }];
    assert_eq!(
        ids(&locate(&policy, &places(), &tokyo, &[], None)),
        ["fra", "iad", "sin"]
    );
    // No coordinates: unchanged.
    let policy = [Step::Nearest { bias_km: vec![] }];
    assert_eq!(
        ids(&locate(&policy, &places(), &Location::default(), &[], None)),
        ["fra", "iad", "sin"]
    );
    let frankfurt_to_washington = distance_km((50.11, 8.68), (38.94, -77.46));
    assert!(
        (6400.0..6700.0).contains(&frankfurt_to_washington),
        "{frankfurt_to_washington}"
    );
}

#[test]
fn cidr_and_asn_override_when_they_match() {
    let network = IpNet {
        address: "81.2.69.0".parse().expect("ip"),
        prefix_len: 24,
    };
    let policy = [
        Step::Cidr(vec![(network, strings(&["sin"]))]),
        Step::Asn(vec![(3320, strings(&["iad"]))]),
    ];
    let mut client = at("EU", "GB", None);
    assert_eq!(
        ids(&locate(&policy, &places(), &client, &[Some(0)], None)),
        ["sin"]
    );
    assert_eq!(
        ids(&locate(&policy, &places(), &client, &[None], None)),
        ["fra", "iad", "sin"]
    );
    client.asn = Some(3320);
    // The cidr step kept only sin; the asn step wants iad, which is not a
    // candidate any more: nothing is left.
    assert!(locate(&policy, &places(), &client, &[Some(0)], None).is_empty());
    assert_eq!(
        ids(&locate(&policy, &places(), &client, &[None], None)),
        ["iad"]
    );
}

#[test]
fn trace_records_each_location_step() {
    let policy = [
        Step::Healthy { min_healthy: 0.0 },
        Step::Geo {
            map: vec![(Region::Country("DE".into()), strings(&["fra"]))],
            default: Some(strings(&["iad"])),
        },
        Step::Priority,
    ];
    let mut trace = Vec::new();
    locate(
        &policy,
        &places(),
        &at("EU", "DE", None),
        &[],
        Some(&mut trace),
    );
    assert_eq!(
        trace,
        [StepTrace {
            step: "geo",
            matched: "country DE".to_owned(),
            pools: vec!["fra".to_owned()],
        }]
    );
}

#[test]
fn selection_steps_must_follow_location_steps() {
    let good = [
        Step::Healthy { min_healthy: 0.5 },
        Step::Nearest { bias_km: vec![] },
        Step::Priority,
    ];
    assert_eq!(
        dynamic_steps(&good).expect("valid"),
        [Dynamic::Healthy { min_healthy: 0.5 }, Dynamic::Priority]
    );
    let bad = [Step::Priority, Step::Nearest { bias_km: vec![] }];
    let (index, message) = dynamic_steps(&bad).expect_err("nearest after priority");
    assert_eq!(index, 1);
    assert!(
        message.starts_with("nearest cannot follow priority"),
        "{message}"
    );
}

#[test]
fn weighted_choice_follows_the_weights() {
    let mut counts = [0u32; 3];
    for round in 0..30_000u64 {
        counts[weighted_choice(&[1, 0, 3], splitmix(round))] += 1;
    }
    assert_eq!(
        counts[1], 0,
        "weight 0 is never chosen while others are there"
    );
    let share = f64::from(counts[2]) / 30_000.0;
    assert!((0.72..0.78).contains(&share), "{share}");
    assert_eq!(weighted_choice(&[0, 0], 5), 1);
}

#[test]
fn sticky_is_stable_and_moves_only_the_removed_pools_clients() {
    let pools = [sticky_seed("fra"), sticky_seed("iad"), sticky_seed("sin")];
    let weights = [1u32, 1, 1];
    let mut moved = 0;
    let mut spread = [0u32; 3];
    for client in 0..3000u64 {
        let key = splitmix(client);
        let chosen = sticky_choice(key, &pools, &weights);
        assert_eq!(
            chosen,
            sticky_choice(key, &pools, &weights),
            "deterministic"
        );
        spread[chosen] += 1;
        // Without pool 2, only its clients move; reordered, nobody moves.
        let reordered = [pools[2], pools[0], pools[1]];
        let moved_to = sticky_choice(key, &reordered, &weights);
        assert_eq!(reordered[moved_to], pools[chosen]);
        let without = sticky_choice(key, &pools[..2], &weights[..2]);
        if chosen != 2 && without != chosen {
            moved += 1;
        }
    }
    assert_eq!(moved, 0);
    assert!(spread.iter().all(|&count| count > 800), "{spread:?}");
}

#[test]
fn sticky_keys_are_the_client_prefixes() {
    let key = |text: &str| sticky_key(text.parse().expect("ip"));
    assert_eq!(key("81.2.69.1"), key("81.2.69.254"));
    assert_ne!(key("81.2.69.1"), key("81.2.70.1"));
    assert_eq!(key("2001:db8:1::1"), key("2001:db8:1:ffff::1"));
    assert_ne!(key("2001:db8:1::1"), key("2001:db8:2::1"));
}
