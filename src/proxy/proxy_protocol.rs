//! The PROXY protocol, version 2 (HAProxy's `proxy-protocol.txt`, section
//! 2.2): the binary header a proxy sends before the client's bytes so the
//! next hop learns the original client and destination addresses.
//!
//! The node proxy writes it to endpoints of `Mode::ProxyV2` ports and to
//! other nodes' tunnels, and reads it on its own tunnel. Only the `PROXY`
//! and `LOCAL` commands over TCP (`STREAM`) with IPv4 or IPv6 addresses are
//! understood; TLVs are carried as raw type and value.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::counters::PortKey;

/// The twelve bytes every version 2 header starts with.
pub(crate) const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Signature, version and command, family and transport, length.
const FIXED_LENGTH: usize = 16;

const VERSION_2: u8 = 0x20;
const COMMAND_LOCAL: u8 = 0x00;
const COMMAND_PROXY: u8 = 0x01;
const FAMILY_UNSPEC: u8 = 0x00;
const FAMILY_INET: u8 = 0x10;
const FAMILY_INET6: u8 = 0x20;
const TRANSPORT_STREAM: u8 = 0x01;

/// The first TLV type the specification leaves to applications
/// (`PP2_TYPE_MIN_CUSTOM`).
pub(crate) const TLV_FLOTILLA_SERVICE: u8 = 0xE0;

/// A TLV (type, length, value) after the addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tlv {
    pub(crate) kind: u8,
    pub(crate) value: Vec<u8>,
}

/// A decoded header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// `(source, destination)` for the `PROXY` command; `None` for `LOCAL`
    /// (a connection the sender made for itself, e.g. a health check).
    pub(crate) addresses: Option<(SocketAddr, SocketAddr)>,
    pub(crate) tlvs: Vec<Tlv>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyProtocolError {
    #[error("not a PROXY protocol v2 header (signature does not match)")]
    Signature,
    #[error("PROXY protocol version {0} is not supported (only 2)")]
    Version(u8),
    #[error("PROXY protocol command {0:#x} is not supported (only LOCAL and PROXY)")]
    Command(u8),
    #[error("PROXY protocol family and transport {0:#04x} are not supported (only TCP over IPv4 or IPv6)")]
    Family(u8),
    #[error("PROXY protocol header is truncated: {needed} bytes needed, {length} given")]
    Truncated { needed: usize, length: usize },
    #[error("PROXY protocol header's TLVs overrun its length")]
    Tlv,
    #[error("reading a PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// The header of a `PROXY` command over TCP. Addresses of different
/// families are both written as IPv6 (an IPv4 one mapped).
pub(crate) fn encode(source: SocketAddr, destination: SocketAddr, tlvs: &[Tlv]) -> Vec<u8> {
    let tlv_length: usize = tlvs.iter().map(|tlv| 3 + tlv.value.len()).sum();
    let mut header = Vec::with_capacity(FIXED_LENGTH + 36 + tlv_length);
    header.extend_from_slice(&SIGNATURE);
    header.push(VERSION_2 | COMMAND_PROXY);
    match (source, destination) {
        (SocketAddr::V4(source), SocketAddr::V4(destination)) => {
            header.push(FAMILY_INET | TRANSPORT_STREAM);
            push_length(&mut header, 12 + tlv_length);
            header.extend_from_slice(&source.ip().octets());
            header.extend_from_slice(&destination.ip().octets());
        }
        _ => {
            header.push(FAMILY_INET6 | TRANSPORT_STREAM);
            push_length(&mut header, 36 + tlv_length);
            header.extend_from_slice(&ipv6(source.ip()).octets());
            header.extend_from_slice(&ipv6(destination.ip()).octets());
        }
    }
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    for tlv in tlvs {
        header.push(tlv.kind);
        push_length(&mut header, tlv.value.len());
        header.extend_from_slice(&tlv.value);
    }
    header
}

fn push_length(header: &mut Vec<u8>, length: usize) {
    let length =
        u16::try_from(length).expect("a header holds at most two addresses and small TLVs");
    header.extend_from_slice(&length.to_be_bytes());
}

fn ipv6(address: IpAddr) -> Ipv6Addr {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Decodes a whole header from `bytes`; returns it and its length (the
/// client's bytes start there).
pub(crate) fn decode(bytes: &[u8]) -> Result<(Header, usize), ProxyProtocolError> {
    let fixed = bytes
        .get(..FIXED_LENGTH)
        .ok_or(ProxyProtocolError::Truncated {
            needed: FIXED_LENGTH,
            length: bytes.len(),
        })?;
    let rest_length = check_fixed(fixed)?;
    let total = FIXED_LENGTH + rest_length;
    let rest = bytes
        .get(FIXED_LENGTH..total)
        .ok_or(ProxyProtocolError::Truncated {
            needed: total,
            length: bytes.len(),
        })?;
    Ok((decode_rest(fixed, rest)?, total))
}

/// Reads exactly one header from `reader`, nothing after it.
pub(crate) async fn read<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Header, ProxyProtocolError> {
    let mut bytes = vec![0u8; FIXED_LENGTH];
    reader.read_exact(&mut bytes).await?;
    let rest_length = check_fixed(&bytes)?;
    bytes.resize(FIXED_LENGTH + rest_length, 0);
    reader.read_exact(&mut bytes[FIXED_LENGTH..]).await?;
    Ok(decode(&bytes)?.0)
}

/// Checks signature and version; returns the length of what follows.
fn check_fixed(fixed: &[u8]) -> Result<usize, ProxyProtocolError> {
    if fixed[..12] != SIGNATURE {
        return Err(ProxyProtocolError::Signature);
    }
    if fixed[12] & 0xF0 != VERSION_2 {
        return Err(ProxyProtocolError::Version(fixed[12] >> 4));
    }
    Ok(usize::from(u16::from_be_bytes([fixed[14], fixed[15]])))
}

fn decode_rest(fixed: &[u8], rest: &[u8]) -> Result<Header, ProxyProtocolError> {
    let command = fixed[12] & 0x0F;
    let family = fixed[13];
    let truncated = |needed| ProxyProtocolError::Truncated {
        needed: FIXED_LENGTH + needed,
        length: FIXED_LENGTH + rest.len(),
    };
    let (addresses, address_length) = match (command, family) {
        // LOCAL: the receiver ignores the family and the address block.
        (COMMAND_LOCAL, _) => (
            None,
            if family == FAMILY_UNSPEC {
                0
            } else {
                rest.len()
            },
        ),
        (COMMAND_PROXY, f) if f == FAMILY_INET | TRANSPORT_STREAM => {
            let block = rest.get(..12).ok_or_else(|| truncated(12))?;
            let ip =
                |at: usize| Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]);
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            let source = SocketAddr::V4(SocketAddrV4::new(ip(0), port(8)));
            let destination = SocketAddr::V4(SocketAddrV4::new(ip(4), port(10)));
            (Some((source, destination)), 12)
        }
        (COMMAND_PROXY, f) if f == FAMILY_INET6 | TRANSPORT_STREAM => {
            let block = rest.get(..36).ok_or_else(|| truncated(36))?;
            let ip = |at: usize| {
                let octets: [u8; 16] = block[at..at + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            let source = SocketAddr::new(ip(0), port(32));
            let destination = SocketAddr::new(ip(16), port(34));
            (Some((source, destination)), 36)
        }
        (COMMAND_PROXY, family) => return Err(ProxyProtocolError::Family(family)),
        (command, _) => return Err(ProxyProtocolError::Command(command)),
    };
    let tlvs = decode_tlvs(&rest[address_length..])?;
    Ok(Header { addresses, tlvs })
}

fn decode_tlvs(mut bytes: &[u8]) -> Result<Vec<Tlv>, ProxyProtocolError> {
    let mut tlvs = Vec::new();
    while !bytes.is_empty() {
        let [kind, high, low, ..] = *bytes else {
            return Err(ProxyProtocolError::Tlv);
        };
        let length = usize::from(u16::from_be_bytes([high, low]));
        let value = bytes.get(3..3 + length).ok_or(ProxyProtocolError::Tlv)?;
        tlvs.push(Tlv {
            kind,
            value: value.to_vec(),
        });
        bytes = &bytes[3 + length..];
    }
    Ok(tlvs)
}

/// flotilla's TLV naming the Service port a tunnelled connection belongs
/// to: the port (2 bytes, network order), then `NAMESPACE/NAME` in UTF-8.
/// By name, not by virtual address: the name is what every node's table
/// surely agrees on.
pub(crate) fn service_tlv((namespace, name, port): &PortKey) -> Tlv {
    let mut value = port.to_be_bytes().to_vec();
    value.extend_from_slice(format!("{namespace}/{name}").as_bytes());
    Tlv {
        kind: TLV_FLOTILLA_SERVICE,
        value,
    }
}

/// The Service port named by flotilla's TLV, if the header has a valid one.
pub(crate) fn service_of(header: &Header) -> Option<PortKey> {
    let tlv = header
        .tlvs
        .iter()
        .find(|tlv| tlv.kind == TLV_FLOTILLA_SERVICE)?;
    let [high, low, ref text @ ..] = *tlv.value.as_slice() else {
        return None;
    };
    let (namespace, name) = std::str::from_utf8(text).ok()?.split_once('/')?;
    Some((
        namespace.to_owned(),
        name.to_owned(),
        u16::from_be_bytes([high, low]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    /// Section 2.2's layout for TCP over IPv4: signature, 0x21 (v2,
    /// PROXY), 0x11 (AF_INET, STREAM), length 12, source address,
    /// destination address, source port, destination port.
    #[test]
    fn ipv4_header_has_the_specified_layout() {
        let header = encode(v4("192.0.2.1:56324"), v4("10.96.0.10:443"), &[]);
        let mut expected = SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
        expected.extend_from_slice(&[192, 0, 2, 1, 10, 96, 0, 10]);
        expected.extend_from_slice(&[0xDC, 0x04, 0x01, 0xBB]);
        assert_eq!(header, expected);
    }

    #[test]
    fn ipv6_header_has_the_specified_layout() {
        let source: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let header = encode(source, v4("10.0.0.1:2"), &[]);
        assert_eq!(&header[12..16], &[0x21, 0x21, 0x00, 36]);
        assert_eq!(
            &header[16..32],
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            &header[32..48],
            &Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets()
        );
        assert_eq!(&header[48..52], &[0, 1, 0, 2]);
    }

    #[test]
    fn tlvs_follow_the_addresses_and_count_in_the_length() {
        let service = ("ns".to_owned(), "web".to_owned(), 80);
        let header = encode(v4("1.2.3.4:5"), v4("6.7.8.9:10"), &[service_tlv(&service)]);
        assert_eq!(&header[14..16], &[0, 12 + 3 + 8]);
        assert_eq!(&header[28..], b"\xE0\x00\x08\x00\x50ns/web");
        let (decoded, length) = decode(&header).unwrap();
        assert_eq!(length, header.len());
        assert_eq!(service_of(&decoded), Some(service));
    }

    #[test]
    fn decoding_round_trips_and_leaves_what_follows() {
        let mut bytes = encode(v4("192.0.2.1:56324"), v4("10.96.0.10:443"), &[]);
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (header, length) = decode(&bytes).unwrap();
        assert_eq!(
            header.addresses,
            Some((v4("192.0.2.1:56324"), v4("10.96.0.10:443")))
        );
        assert_eq!(&bytes[length..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn local_command_has_no_addresses() {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        let (header, length) = decode(&bytes).unwrap();
        assert_eq!((header.addresses, length), (None, 16));
    }

    #[test]
    fn malformed_headers_are_refused_with_their_cause() {
        let good = encode(v4("1.2.3.4:5"), v4("6.7.8.9:10"), &[]);
        let mut signature = good.clone();
        signature[0] = b'P';
        assert!(matches!(
            decode(&signature),
            Err(ProxyProtocolError::Signature)
        ));
        let mut version = good.clone();
        version[12] = 0x11;
        assert!(matches!(
            decode(&version),
            Err(ProxyProtocolError::Version(1))
        ));
        let mut udp = good.clone();
        udp[13] = 0x12;
        assert!(matches!(
            decode(&udp),
            Err(ProxyProtocolError::Family(0x12))
        ));
        assert!(matches!(
            decode(&good[..20]),
            Err(ProxyProtocolError::Truncated {
                needed: 28,
                length: 20
            })
        ));
        let mut overrun = good.clone();
        overrun[15] += 4;
        overrun.extend_from_slice(&[0xE0, 0, 9, 0]);
        assert!(matches!(decode(&overrun), Err(ProxyProtocolError::Tlv)));
    }

    #[tokio::test]
    async fn read_takes_the_header_and_nothing_more() {
        let mut bytes = encode(v4("1.2.3.4:5"), v4("6.7.8.9:10"), &[]);
        bytes.extend_from_slice(b"rest");
        let mut reader = bytes.as_slice();
        let header = read(&mut reader).await.unwrap();
        assert_eq!(header.addresses, Some((v4("1.2.3.4:5"), v4("6.7.8.9:10"))));
        assert_eq!(reader, b"rest");
    }
}
