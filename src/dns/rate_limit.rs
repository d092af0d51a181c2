//! Response rate limiting (RRL) for UDP, on the query path.
//!
//! Each response is charged to a bucket named by the client's network (the
//! packet source cut to `ipv4_prefix` / `ipv6_prefix`: that is where a
//! reflected response would land), the kind of response and which response
//! it is: the pre-encoded section for static data (so one RRset, one
//! zone's NXDOMAIN, one wildcard or one referral is one bucket, and a flood
//! of random names under a zone is one bucket, not millions), the policy
//! for a steered name, nothing for errors (so errors are limited per
//! network whatever the name). A bucket holds a balance credited with the
//! kind's rate each second, capped at one second's worth, and debited per
//! response; it may fall to `window` seconds of debt, so a flood that
//! keeps going stays limited instead of getting the rate through. At or
//! below zero the response is not sent; every `slip`-th of those goes out
//! truncated (TC, no records), which a real resolver retries over TCP and
//! a reflection victim never asked for.
//!
//! The table is a fixed array of 64-bit atomics: one compare-and-swap per
//! response, no lock and no allocation. Two responses hashing to one
//! bucket evict each other (the newcomer starts with a full balance), so a
//! collision lets responses through rather than limiting a bystander;
//! only when their 16-bit tags match as well (one collision in 65,536) do
//! two keys share a balance. The hash is keyed per process so an attacker
//! cannot aim collisions. The
//! clock is `CLOCK_MONOTONIC_COARSE`: whole seconds are all this needs.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use siphasher::sip::SipHasher24;

use crate::config::RateLimitConfig;

/// What a response is, for rate limiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Records of the name asked for.
    Answer,
    /// The name exists but has no data of the type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// A delegation below one of our zones.
    Referral,
    /// FORMERR, REFUSED, NOTIMP, SERVFAIL, BADVERS.
    Error,
}

/// Which bucket a response is charged to, besides its client network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// The kind of response.
    pub kind: Kind,
    /// Which response of that kind: a section offset, a policy number, or
    /// 0 for errors.
    pub identity: u32,
}

impl Class {
    /// An error response: one bucket per client network.
    pub const ERROR: Class = Class {
        kind: Kind::Error,
        identity: 0,
    };
}

/// What to do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: send it.
    Send,
    /// Over the rate: send nothing.
    Drop,
    /// Over the rate: send it truncated, without records.
    Slip,
}

/// Bits of an entry: tag (16) | second (16) | balance (24, signed) | slip
/// count (8).
const TAG_SHIFT: u32 = 48;
const SECOND_SHIFT: u32 = 32;
const BALANCE_SHIFT: u32 = 8;
const BALANCE_BITS: u32 = 24;

/// The shared bucket table. It outlives reloads (the limits come from the
/// served table; the state stays), so a reload does not hand a flood a
/// fresh allowance.
pub struct Buckets {
    entries: Box<[AtomicU64]>,
    mask: usize,
    seed: u64,
    /// The coarse clock's seconds when the table was made.
    epoch: i64,
    /// A clock that never moves, for tests that count exactly.
    #[cfg(test)]
    frozen: bool,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Buckets")
            .field("size", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Buckets {
    /// A table of `size` buckets (rounded up to a power of two). The
    /// memory is zeroed by the kernel and only becomes resident where a
    /// bucket is used.
    pub fn new(size: usize) -> Buckets {
        let size = size.max(1).next_power_of_two();
        // `vec![0; n]` asks the allocator for zeroed memory, which for a
        // table this size is fresh pages the kernel zeroes when first
        // touched; building atomics one by one would touch all of them.
        let zeroed = vec![0u64; size].into_boxed_slice();
        // SAFETY: `AtomicU64` has the same size, alignment and bit validity
        // as `u64`, so a boxed slice of one is a boxed slice of the other.
        let entries = unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [AtomicU64]) };
        // Derived from the process secret, so not guessable from outside,
        // but not the cookie key itself.
        let mut hasher = SipHasher24::new_with_key(&crate::dns::cookie::process_secret());
        hasher.write(b"steer rate limit buckets");
        let seed = hasher.finish();
        Buckets {
            entries,
            mask: size - 1,
            seed,
            epoch: coarse_seconds(),
            #[cfg(test)]
            frozen: false,
        }
    }

    /// A table whose clock stays at second 0, so that no second passes
    /// in the middle of a test's burst.
    #[cfg(test)]
    pub(crate) fn frozen(size: usize) -> Buckets {
        Buckets {
            frozen: true,
            ..Buckets::new(size)
        }
    }

    /// Buckets in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: a table has at least one bucket.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seconds since the table was made, wrapping at 2^16 (buckets only
    /// ever compare nearby seconds).
    #[inline]
    pub fn now(&self) -> u16 {
        #[cfg(test)]
        if self.frozen {
            return 0;
        }
        (coarse_seconds() - self.epoch) as u16
    }

    /// Charges one response for `client` of `class` at second `now` and
    /// says what to do with it.
    #[inline]
    pub fn charge(
        &self,
        limits: &RateLimitConfig,
        client: IpAddr,
        class: Class,
        now: u16,
    ) -> Verdict {
        let rate = i64::from(match class.kind {
            Kind::NxDomain | Kind::Error => limits.errors_per_second,
            Kind::Answer | Kind::NoData | Kind::Referral => limits.responses_per_second,
        });
        let floor = -rate * i64::from(limits.window_seconds);
        let hash = self.hash(network_bits(client, limits), class);
        let tag = (hash >> TAG_SHIFT) as u16;
        let entry = &self.entries[hash as usize & self.mask];
        let mut old = entry.load(Ordering::Relaxed);
        // A compare-and-swap that keeps losing (two workers on one hot
        // bucket) gives up after a few tries: a lost charge lets one
        // response through, which a limiter may do.
        for _ in 0..4 {
            let (balance, slips) = if old != 0 && (old >> TAG_SHIFT) as u16 == tag {
                let elapsed = i64::from(now.wrapping_sub((old >> SECOND_SHIFT) as u16));
                let balance = (balance_of(old) + elapsed * rate).min(rate);
                (balance, (old & 0xff) as u32)
            } else {
                (rate, 0)
            };
            let balance = (balance - 1).max(floor);
            let (verdict, slips) = if balance >= 0 {
                (Verdict::Send, slips)
            } else if limits.slip == 0 {
                (Verdict::Drop, 0)
            } else {
                let slips = (slips + 1) % limits.slip;
                (
                    if slips == 0 {
                        Verdict::Slip
                    } else {
                        Verdict::Drop
                    },
                    slips,
                )
            };
            let new = u64::from(tag) << TAG_SHIFT
                | u64::from(now) << SECOND_SHIFT
                | ((balance as u64) & ((1 << BALANCE_BITS) - 1)) << BALANCE_SHIFT
                | u64::from(slips);
            match entry.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return verdict,
                Err(current) => old = current,
            }
        }
        Verdict::Send
    }

    /// The keyed hash of a client network and a class (splitmix64 rounds:
    /// fast, and with a secret seed not steerable from outside).
    #[inline]
    fn hash(&self, network: (u128, bool), class: Class) -> u64 {
        let (bits, v6) = network;
        let kind = class.kind as u64;
        let mut hash = mix(self.seed ^ bits as u64);
        hash = mix(hash ^ (bits >> 64) as u64);
        mix(hash ^ (u64::from(class.identity) | kind << 32 | u64::from(v6) << 40))
    }
}

/// Whether `client` is in one of `limits.exempt`.
pub fn is_exempt(limits: &RateLimitConfig, client: IpAddr) -> bool {
    let client = client.to_canonical();
    limits.exempt.iter().any(|network| {
        let length = u32::from(network.prefix_len);
        match (network.address, client) {
            (IpAddr::V4(network), IpAddr::V4(client)) => {
                let kept = u32::MAX.checked_shl(32 - length).unwrap_or(0);
                u32::from(client) & kept == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(client)) => {
                let kept = u128::MAX.checked_shl(128 - length).unwrap_or(0);
                u128::from(client) & kept == u128::from(network)
            }
            _ => false,
        }
    })
}

/// The client network `client` is charged as, written out
/// (`192.0.2.0/24`), for the log.
pub fn network_of(client: IpAddr, limits: &RateLimitConfig) -> String {
    let (bits, v6) = network_bits(client, limits);
    if v6 {
        format!("{}/{}", std::net::Ipv6Addr::from(bits), limits.ipv6_prefix)
    } else {
        format!(
            "{}/{}",
            std::net::Ipv4Addr::from(bits as u32),
            limits.ipv4_prefix
        )
    }
}

/// The client's network under the configured lengths, and its family.
#[inline]
fn network_bits(client: IpAddr, limits: &RateLimitConfig) -> (u128, bool) {
    match client.to_canonical() {
        IpAddr::V4(client) => {
            let kept = u32::MAX
                .checked_shl(32 - u32::from(limits.ipv4_prefix))
                .unwrap_or(0);
            (u128::from(u32::from(client) & kept), false)
        }
        IpAddr::V6(client) => {
            let kept = u128::MAX
                .checked_shl(128 - u32::from(limits.ipv6_prefix))
                .unwrap_or(0);
            (u128::from(client) & kept, true)
        }
    }
}

/// The signed balance kept in an entry.
#[inline]
fn balance_of(entry: u64) -> i64 {
    // Shift the 24-bit field to the top, then back with the sign.
    ((entry << (64 - BALANCE_SHIFT - BALANCE_BITS)) as i64) >> (64 - BALANCE_BITS)
}

#[inline]
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// Whole seconds of `CLOCK_MONOTONIC_COARSE`: read from the vDSO without a
/// system call, a few nanoseconds.
#[allow(
    clippy::useless_conversion,
    reason = "`time_t` is 32 bits on some targets"
)]
fn coarse_seconds() -> i64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec; the clock id is a
    // constant the kernel knows.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut time) };
    i64::from(time.tv_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::steering::IpNet;

    fn limits(rate: u32, slip: u32) -> RateLimitConfig {
        RateLimitConfig {
            responses_per_second: rate,
            errors_per_second: rate,
            slip,
            window_seconds: 3,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            table_size: 1024,
            dry_run: false,
        }
    }

    const ANSWER: Class = Class {
        kind: Kind::Answer,
        identity: 7,
    };

    fn address(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn charges(
        buckets: &Buckets,
        limits: &RateLimitConfig,
        client: &str,
        now: u16,
        count: usize,
    ) -> Vec<Verdict> {
        (0..count)
            .map(|_| buckets.charge(limits, address(client), ANSWER, now))
            .collect()
    }

    #[test]
    fn the_rate_passes_then_every_slip_th_is_truncated() {
        let buckets = Buckets::new(1024);
        let limits = limits(5, 2);
        let verdicts = charges(&buckets, &limits, "192.0.2.1", 100, 11);
        assert_eq!(&verdicts[..5], &[Verdict::Send; 5]);
        assert_eq!(
            &verdicts[5..],
            &[
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip
            ]
        );
    }

    #[test]
    fn slip_zero_drops_and_slip_one_truncates_everything() {
        let buckets = Buckets::new(1024);
        let verdicts = charges(&buckets, &limits(1, 0), "192.0.2.1", 0, 4);
        assert_eq!(
            verdicts,
            [Verdict::Send, Verdict::Drop, Verdict::Drop, Verdict::Drop]
        );
        let buckets = Buckets::new(1024);
        let verdicts = charges(&buckets, &limits(1, 1), "192.0.2.1", 0, 3);
        assert_eq!(verdicts, [Verdict::Send, Verdict::Slip, Verdict::Slip]);
    }

    #[test]
    fn a_network_shares_a_bucket_and_another_does_not() {
        let buckets = Buckets::new(1 << 16);
        let limits = limits(2, 0);
        assert_eq!(
            charges(&buckets, &limits, "192.0.2.1", 0, 2),
            [Verdict::Send; 2]
        );
        // Same /24: already spent.
        assert_eq!(
            charges(&buckets, &limits, "192.0.2.200", 0, 1),
            [Verdict::Drop]
        );
        // Another /24, and the same /24 asking for another response.
        assert_eq!(
            charges(&buckets, &limits, "192.0.3.1", 0, 2),
            [Verdict::Send; 2]
        );
        let other = Class {
            kind: Kind::Answer,
            identity: 8,
        };
        assert_eq!(
            buckets.charge(&limits, address("192.0.2.1"), other, 0),
            Verdict::Send
        );
        // IPv6 by /56; a v4-mapped client is its IPv4 network.
        assert_eq!(
            charges(&buckets, &limits, "2001:db8:0:1::1", 0, 2),
            [Verdict::Send; 2]
        );
        assert_eq!(
            charges(&buckets, &limits, "2001:db8:0:ff::2", 0, 1),
            [Verdict::Drop]
        );
        assert_eq!(
            charges(&buckets, &limits, "::ffff:192.0.2.9", 0, 1),
            [Verdict::Drop]
        );
    }

    #[test]
    fn credit_comes_back_each_second_but_a_flood_stays_in_debt() {
        let buckets = Buckets::new(1024);
        let limits = limits(4, 0);
        assert_eq!(
            charges(&buckets, &limits, "192.0.2.1", 10, 4),
            [Verdict::Send; 4]
        );
        assert_eq!(
            charges(&buckets, &limits, "192.0.2.1", 10, 1),
            [Verdict::Drop]
        );
        // One quiet second: one second's worth again (the debt was 1).
        let next = charges(&buckets, &limits, "192.0.2.1", 11, 4);
        assert_eq!(
            next,
            [Verdict::Send, Verdict::Send, Verdict::Send, Verdict::Drop]
        );
        // A flood of 40 in one second runs the debt to the floor (3 s × 4)...
        charges(&buckets, &limits, "192.0.2.1", 11, 40);
        // ...so the next second's credit does not reach zero.
        assert_eq!(
            charges(&buckets, &limits, "192.0.2.1", 12, 1),
            [Verdict::Drop]
        );
        // A window of quiet later it is whole again, and never above one
        // second's worth.
        let later = charges(&buckets, &limits, "192.0.2.1", 16, 5);
        assert_eq!(&later[..4], &[Verdict::Send; 4]);
        assert_eq!(later[4], Verdict::Drop);
    }

    #[test]
    fn errors_have_their_own_rate() {
        let buckets = Buckets::new(1024);
        let mut limits = limits(100, 0);
        limits.errors_per_second = 1;
        let client = address("198.51.100.7");
        assert_eq!(
            buckets.charge(&limits, client, Class::ERROR, 0),
            Verdict::Send
        );
        assert_eq!(
            buckets.charge(&limits, client, Class::ERROR, 0),
            Verdict::Drop
        );
        let nxdomain = Class {
            kind: Kind::NxDomain,
            identity: 3,
        };
        assert_eq!(buckets.charge(&limits, client, nxdomain, 0), Verdict::Send);
        assert_eq!(buckets.charge(&limits, client, nxdomain, 0), Verdict::Drop);
        assert_eq!(buckets.charge(&limits, client, ANSWER, 0), Verdict::Send);
    }

    #[test]
    fn networks_are_written_with_the_configured_lengths() {
        let limits = limits(1, 0);
        assert_eq!(network_of(address("192.0.2.77"), &limits), "192.0.2.0/24");
        assert_eq!(
            network_of(address("::ffff:192.0.2.77"), &limits),
            "192.0.2.0/24"
        );
        assert_eq!(
            network_of(address("2001:db8:aa:bbcc::1"), &limits),
            "2001:db8:aa:bb00::/56"
        );
    }

    #[test]
    fn balances_keep_their_sign() {
        for balance in [-6_000_000i64, -1, 0, 1, 100_000] {
            let entry = u64::from(0xabcd_u16) << TAG_SHIFT
                | 7 << SECOND_SHIFT
                | ((balance as u64) & ((1 << BALANCE_BITS) - 1)) << BALANCE_SHIFT
                | 3;
            assert_eq!(balance_of(entry), balance);
        }
    }

    #[test]
    fn exempt_networks_match_by_prefix() {
        let mut limits = limits(1, 0);
        limits.exempt = vec![
            IpNet::parse("10.0.0.0/8").expect("prefix"),
            IpNet::parse("2001:db8::/32").expect("prefix"),
        ];
        assert!(is_exempt(&limits, address("10.9.8.7")));
        assert!(is_exempt(&limits, address("::ffff:10.1.1.1")));
        assert!(is_exempt(&limits, address("2001:db8:1::1")));
        assert!(!is_exempt(&limits, address("11.0.0.1")));
        assert!(!is_exempt(&limits, address("2001:db9::1")));
    }
}
