//! DNS Cookies (RFC 7873), the server's side, with the interoperable
//! server cookie of RFC 9018.
//!
//! A resolver that sends a client cookie gets it back with a server cookie
//! beside it, so it can tell Steer's answers from forged ones (an off-path
//! attacker does not see the client cookie). Steer issues server cookies
//! but never requires them: it answers a query without one, or with a
//! stale or foreign one, as it answers any other, and never sends
//! BADCOOKIE. So the secret need not be shared between nodes: each
//! process draws its own unless `server.cookie_secret_file` gives the
//! fleet one (with the previous one still accepted during a rotation).
//! What a valid server cookie buys is exemption from the UDP rate limits
//! ([`super::rate_limit`]): it proves that the client received an earlier
//! answer at its address.
//!
//! The server cookie is RFC 9018's version 1: version, three reserved
//! bytes, a timestamp, and SipHash-2-4 keyed by the secret over the client
//! cookie, those first eight bytes and the client's address. Everything is
//! on the stack: a cookie costs one hash and no allocation.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::OnceLock;

use siphasher::sip::SipHasher24;

/// EDNS option code of COOKIE (RFC 7873).
pub const OPTION_COOKIE: u16 = 10;

/// Bytes of a client cookie, and of the whole option Steer answers with:
/// the client cookie and a 16-byte server cookie.
pub const CLIENT_COOKIE_LEN: usize = 8;
/// The answer's option data: client cookie and server cookie.
pub const RESPONSE_COOKIE_LEN: usize = CLIENT_COOKIE_LEN + 16;

/// A COOKIE option whose length is neither a client cookie alone (8) nor a
/// client cookie with a server cookie (16 to 40): FORMERR (RFC 7873 §5.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedCookie;

/// The client cookie of a query's COOKIE option data.
///
/// # Errors
///
/// [`MalformedCookie`] for a length RFC 7873 does not allow.
pub fn client_cookie(option: &[u8]) -> Result<[u8; CLIENT_COOKIE_LEN], MalformedCookie> {
    match option.len() {
        8 | 16..=40 => {
            let mut client = [0; CLIENT_COOKIE_LEN];
            client.copy_from_slice(&option[..CLIENT_COOKIE_LEN]);
            Ok(client)
        }
        _ => Err(MalformedCookie),
    }
}

/// The option data to answer with: `client`'s cookie and a server cookie
/// for it, for a client at `address` at Unix time `now` (seconds; RFC 9018
/// takes them modulo 2^32).
pub fn response_cookie(
    secret: &[u8; 16],
    client: &[u8; CLIENT_COOKIE_LEN],
    address: IpAddr,
    now: u64,
) -> [u8; RESPONSE_COOKIE_LEN] {
    let mut cookie = [0; RESPONSE_COOKIE_LEN];
    cookie[..8].copy_from_slice(client);
    // Version 1, three reserved bytes of zero, then the timestamp.
    cookie[8] = 1;
    cookie[12..16].copy_from_slice(&(now as u32).to_be_bytes());
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(&cookie[..16]);
    match address {
        IpAddr::V4(address) => hasher.write(&address.octets()),
        IpAddr::V6(address) => hasher.write(&address.octets()),
    }
    // SipHash's output, least significant byte first, as the reference
    // implementation writes it and RFC 9018's examples show it.
    cookie[16..].copy_from_slice(&hasher.finish().to_le_bytes());
    cookie
}

/// Whether a query's COOKIE option data carries a server cookie this
/// process issued to `address` (RFC 9018 §4.3): version 1, a timestamp
/// from the last hour (or up to five minutes ahead, for clocks that step),
/// and the hash over the client cookie, those bytes and the address. Such
/// a client has received an earlier response at that address, so the
/// address is not forged.
pub fn is_valid_server_cookie(secret: &[u8; 16], option: &[u8], address: IpAddr, now: u64) -> bool {
    let Ok(option) = <&[u8; RESPONSE_COOKIE_LEN]>::try_from(option) else {
        return false;
    };
    if option[8] != 1 {
        return false;
    }
    let timestamp = u32::from_be_bytes([option[12], option[13], option[14], option[15]]);
    // Serial-number arithmetic (RFC 1982): the timestamp wraps in 2106.
    let age = (now as u32).wrapping_sub(timestamp) as i32;
    if !(-300..=3600).contains(&age) {
        return false;
    }
    let mut client = [0; CLIENT_COOKIE_LEN];
    client.copy_from_slice(&option[..CLIENT_COOKIE_LEN]);
    let expected = response_cookie(secret, &client, address, u64::from(timestamp));
    // The reserved bytes are hashed, so a cookie with them changed fails here.
    expected[8..] == option[8..]
}

/// This process's cookie secret, drawn from the system's random source the
/// first time it is asked for. The control plane asks when it compiles a
/// table, so that the query path only ever reads it.
pub fn process_secret() -> [u8; 16] {
    static SECRET: OnceLock<[u8; 16]> = OnceLock::new();
    *SECRET.get_or_init(|| {
        let mut secret = [0; 16];
        let read = std::fs::File::open("/dev/urandom")
            .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut secret));
        if read.is_err() {
            // No random source: a secret from the clock and the process's
            // randomised hasher keys. Cookies only guard the client here
            // (Steer never requires one), so this is a weaker, not a broken,
            // fallback.
            use std::hash::BuildHasher;
            for half in secret.chunks_mut(8) {
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_u128(
                    std::time::UNIX_EPOCH
                        .elapsed()
                        .map_or(0, |elapsed| elapsed.as_nanos()),
                );
                half.copy_from_slice(&hasher.finish().to_le_bytes());
            }
        }
        secret
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn the_server_cookie_of_rfc_9018_appendix_a() {
        // Appendix A.1: client 198.51.100.100, secret
        // e5e973e5a6b2a43f48e7dc849e37bfcf, timestamp 1559731985.
        let secret: [u8; 16] = hex("e5e973e5a6b2a43f48e7dc849e37bfcf")
            .try_into()
            .expect("16 bytes");
        let client: [u8; 8] = hex("2464c4abcf10c957").try_into().expect("8 bytes");
        let cookie = response_cookie(
            &secret,
            &client,
            "198.51.100.100".parse().expect("address"),
            1_559_731_985,
        );
        assert_eq!(
            cookie.to_vec(),
            hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
        );
    }

    #[test]
    fn the_hash_covers_the_client_its_cookie_and_the_time() {
        let secret = [7; 16];
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        let address: IpAddr = "2001:db8::53".parse().expect("address");
        let base = response_cookie(&secret, &client, address, 1_700_000_000);
        assert_eq!(
            base,
            response_cookie(&secret, &client, address, 1_700_000_000)
        );
        let others = [
            response_cookie(&[8; 16], &client, address, 1_700_000_000),
            response_cookie(&secret, &[0; 8], address, 1_700_000_000),
            response_cookie(
                &secret,
                &client,
                "2001:db8::54".parse().expect("address"),
                1_700_000_000,
            ),
            response_cookie(&secret, &client, address, 1_700_000_001),
        ];
        for other in others {
            assert_ne!(base[16..], other[16..]);
        }
    }

    #[test]
    fn only_fresh_server_cookies_of_this_secret_and_address_are_valid() {
        let secret = [7; 16];
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        let address: IpAddr = "192.0.2.53".parse().expect("address");
        let now = 1_800_000_000;
        let issued = response_cookie(&secret, &client, address, now);
        assert!(is_valid_server_cookie(&secret, &issued, address, now));
        assert!(is_valid_server_cookie(
            &secret,
            &issued,
            address,
            now + 3600
        ));
        assert!(is_valid_server_cookie(&secret, &issued, address, now - 300));
        // Too old, too far ahead.
        assert!(!is_valid_server_cookie(
            &secret,
            &issued,
            address,
            now + 3601
        ));
        assert!(!is_valid_server_cookie(
            &secret,
            &issued,
            address,
            now - 301
        ));
        // Another address, another secret, a changed byte, a client cookie alone.
        let other: IpAddr = "192.0.2.54".parse().expect("address");
        assert!(!is_valid_server_cookie(&secret, &issued, other, now));
        assert!(!is_valid_server_cookie(&[8; 16], &issued, address, now));
        for index in 8..RESPONSE_COOKIE_LEN {
            let mut changed = issued;
            changed[index] ^= 1;
            assert!(
                !is_valid_server_cookie(&secret, &changed, address, now),
                "byte {index}"
            );
        }
        assert!(!is_valid_server_cookie(&secret, &issued[..8], address, now));
    }

    #[test]
    fn option_lengths_follow_rfc_7873() {
        assert_eq!(client_cookie(&[9; 8]), Ok([9; 8]));
        assert_eq!(client_cookie(&[9; 16]), Ok([9; 8]));
        assert_eq!(client_cookie(&[9; 40]), Ok([9; 8]));
        for bad in [0, 7, 9, 15, 41] {
            assert_eq!(
                client_cookie(&vec![9; bad]),
                Err(MalformedCookie),
                "{bad} bytes"
            );
        }
    }

    #[test]
    fn the_process_secret_is_drawn_once() {
        let secret = process_secret();
        assert_eq!(process_secret(), secret);
        assert_ne!(secret, [0; 16]);
    }
}
