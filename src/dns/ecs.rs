//! EDNS Client Subnet (RFC 7871) on the hot path.
//!
//! [`ClientSubnet::parse`] validates the option a resolver sent (family,
//! source prefix within the address size, exactly the octets the prefix
//! needs, no bits set beyond it) and truncates it to the configured maximum
//! source prefix. [`ClientSubnet::write_option`] echoes it in the response
//! with the scope prefix the answer is valid for. No allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::wire::OPTION_CLIENT_SUBNET;

/// Address family numbers (IANA).
const FAMILY_IPV4: u16 = 1;
const FAMILY_IPV6: u16 = 2;

/// A validated Client Subnet option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    /// 1 (IPv4) or 2 (IPv6).
    family: u16,
    /// SOURCE PREFIX-LENGTH as sent; echoed unchanged.
    source_prefix: u8,
    /// The address octets as sent (zero-padded).
    octets: [u8; 16],
    /// Bits Steer looks at: the source prefix, capped by the configured maximum.
    used_prefix: u8,
}

/// The option is malformed: answer FORMERR (RFC 7871 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedSubnet;

impl ClientSubnet {
    /// Parses the option data (after code and length). `max_v4`/`max_v6`
    /// cap how many source bits are used.
    pub fn parse(data: &[u8], max_v4: u8, max_v6: u8) -> Result<Self, MalformedSubnet> {
        let [family_high, family_low, source_prefix, _scope, address @ ..] = data else {
            return Err(MalformedSubnet);
        };
        let family = u16::from_be_bytes([*family_high, *family_low]);
        let (bits, max) = match family {
            FAMILY_IPV4 => (32u8, max_v4),
            FAMILY_IPV6 => (128u8, max_v6),
            _ => return Err(MalformedSubnet),
        };
        let source_prefix = *source_prefix;
        if source_prefix > bits || address.len() != usize::from(source_prefix).div_ceil(8) {
            return Err(MalformedSubnet);
        }
        // RFC 7871 §6: bits beyond SOURCE PREFIX-LENGTH must be zero.
        if source_prefix % 8 != 0
            && let Some(last) = address.last()
            && last & (0xFFu8 >> (source_prefix % 8)) != 0
        {
            return Err(MalformedSubnet);
        }
        let mut octets = [0u8; 16];
        octets[..address.len()].copy_from_slice(address);
        Ok(Self {
            family,
            source_prefix,
            octets,
            used_prefix: source_prefix.min(max),
        })
    }

    /// The client network Steer decides on: the address truncated to the
    /// used prefix, and that prefix's length.
    pub fn network(&self) -> (IpAddr, u8) {
        let mut octets = self.octets;
        let used = usize::from(self.used_prefix);
        for (index, octet) in octets.iter_mut().enumerate() {
            let first_bit = index * 8;
            if first_bit >= used {
                *octet = 0;
            } else if first_bit + 8 > used {
                *octet &= 0xFFu8 << (8 - (used - first_bit));
            }
        }
        let address = if self.family == FAMILY_IPV4 {
            IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(octets))
        };
        (address, self.used_prefix)
    }

    /// Bits of the address Steer uses: the source prefix, capped by the
    /// configured maximum (0 when the resolver sent no client information).
    pub fn used_prefix(&self) -> u8 {
        self.used_prefix
    }

    /// Bytes the option takes in a response (code, length and data).
    pub fn option_len(&self) -> usize {
        4 + 4 + usize::from(self.source_prefix).div_ceil(8)
    }

    /// Appends the option (code, length, data) with `scope_prefix`.
    pub fn write_option(&self, out: &mut Vec<u8>, scope_prefix: u8) {
        let address_len = usize::from(self.source_prefix).div_ceil(8);
        out.extend_from_slice(&OPTION_CLIENT_SUBNET.to_be_bytes());
        out.extend_from_slice(&((4 + address_len) as u16).to_be_bytes());
        out.extend_from_slice(&self.family.to_be_bytes());
        out.push(self.source_prefix);
        out.push(scope_prefix);
        out.extend_from_slice(&self.octets[..address_len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_truncates_to_the_configured_maximum() {
        let subnet = ClientSubnet::parse(&[0, 1, 32, 0, 81, 2, 69, 142], 24, 56).expect("valid");
        assert_eq!(subnet.network(), ("81.2.69.0".parse().expect("ip"), 24));
        let subnet = ClientSubnet::parse(&[0, 1, 20, 0, 81, 2, 64], 24, 56).expect("valid");
        assert_eq!(subnet.network(), ("81.2.64.0".parse().expect("ip"), 20));
        let subnet = ClientSubnet::parse(
            &[0, 2, 64, 0, 0x2a, 0x02, 0x0c, 0x7f, 0x12, 0x34, 0x56, 0x78],
            24,
            56,
        )
        .expect("valid");
        assert_eq!(
            subnet.network(),
            ("2a02:c7f:1234:5600::".parse().expect("ip"), 56)
        );
        let subnet = ClientSubnet::parse(&[0, 1, 0, 0], 24, 56).expect("prefix 0 is valid");
        assert_eq!(subnet.network(), ("0.0.0.0".parse().expect("ip"), 0));
    }

    #[test]
    fn rejects_what_rfc_7871_calls_malformed() {
        // Unknown family.
        assert!(ClientSubnet::parse(&[0, 3, 8, 0, 10], 24, 56).is_err());
        // Prefix longer than the address.
        assert!(ClientSubnet::parse(&[0, 1, 33, 0, 1, 2, 3, 4, 5], 24, 56).is_err());
        // More or fewer octets than the prefix needs.
        assert!(ClientSubnet::parse(&[0, 1, 24, 0, 81, 2, 69, 0], 24, 56).is_err());
        assert!(ClientSubnet::parse(&[0, 1, 24, 0, 81, 2], 24, 56).is_err());
        // Bits set beyond the prefix.
        assert!(ClientSubnet::parse(&[0, 1, 22, 0, 81, 2, 69], 24, 56).is_err());
        // Too short to hold the fixed part.
        assert!(ClientSubnet::parse(&[0, 1, 24], 24, 56).is_err());
    }

    #[test]
    fn echoes_source_and_address_with_the_scope() {
        let subnet = ClientSubnet::parse(&[0, 1, 32, 0, 81, 2, 69, 142], 24, 56).expect("valid");
        let mut out = Vec::new();
        subnet.write_option(&mut out, 16);
        assert_eq!(out, [0, 8, 0, 8, 0, 1, 32, 16, 81, 2, 69, 142]);
        assert_eq!(subnet.option_len(), out.len());
    }
}
