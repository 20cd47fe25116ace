//! The node routes the service CIDR to itself, what `ip route replace
//! local CIDR dev lo` does: a route of type `local` in the `local` table,
//! so the proxy can listen on any address of the range and containers
//! reach those addresses through their gateway. Written over netlink
//! (`RTM_NEWROUTE` with `NLM_F_REPLACE`, idempotent) and removed the same
//! way when the range changes.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The kernel's `local` routing table (`RT_TABLE_LOCAL`).
const TABLE_LOCAL: u8 = 255;

/// Where the loopback device's index is read.
const LOOPBACK_INDEX: &str = "/sys/class/net/lo/ifindex";

/// An IPv4 range: a network address and a prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub(crate) network: Ipv4Addr,
    pub(crate) prefix_length: u8,
}

impl Cidr {
    pub(crate) fn contains(&self, address: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_length))
            .unwrap_or(0);
        u32::from(address) & mask == u32::from(self.network)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_length)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("service CIDR {text:?}: {reason}")]
pub(crate) struct CidrError {
    text: String,
    reason: &'static str,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let error = |reason| CidrError {
            text: text.to_owned(),
            reason,
        };
        let (network, prefix_length) = text
            .split_once('/')
            .ok_or_else(|| error("expected ADDRESS/PREFIX, e.g. 10.96.0.0/12"))?;
        let network: Ipv4Addr = network
            .parse()
            .map_err(|_| error("the address is not an IPv4 address"))?;
        let prefix_length: u8 = prefix_length
            .parse()
            .ok()
            .filter(|length| *length <= 32)
            .ok_or_else(|| error("the prefix length is not a number from 0 to 32"))?;
        let cidr = Cidr {
            network,
            prefix_length,
        };
        if !cidr.contains(network) {
            return Err(error("the address has bits set past the prefix length"));
        }
        Ok(cidr)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RouteError {
    #[error("reading the loopback device's index from {LOOPBACK_INDEX}: {0}")]
    LoopbackIndex(String),
    #[error("{action} the route `local {cidr} dev lo`: {source} (the proxy needs NET_ADMIN; run it with --no-route to leave routing to the host)")]
    Kernel {
        action: &'static str,
        cidr: Cidr,
        source: std::io::Error,
    },
}

/// Makes sure `local CIDR dev lo` is in the local table (replacing an
/// equal route: idempotent).
pub(crate) fn ensure_local(cidr: Cidr) -> Result<(), RouteError> {
    let message = RouteNetlinkMessage::NewRoute(local_route(cidr, loopback_index()?));
    request(message, NLM_F_CREATE | NLM_F_REPLACE).map_err(|source| RouteError::Kernel {
        action: "adding",
        cidr,
        source,
    })
}

/// Removes `local CIDR dev lo`; a route already gone is no error.
pub(crate) fn remove_local(cidr: Cidr) -> Result<(), RouteError> {
    let message = RouteNetlinkMessage::DelRoute(local_route(cidr, loopback_index()?));
    match request(message, 0) {
        Err(error) if error.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => {
            Ok(())
        }
        result => result.map_err(|source| RouteError::Kernel {
            action: "removing",
            cidr,
            source,
        }),
    }
}

/// The message `ip route replace local CIDR dev lo` sends.
fn local_route(cidr: Cidr, loopback_index: u32) -> RouteMessage {
    let mut route = RouteMessage::default();
    route.header = RouteHeader {
        address_family: AddressFamily::Inet,
        destination_prefix_length: cidr.prefix_length,
        table: TABLE_LOCAL,
        protocol: RouteProtocol::Boot,
        scope: RouteScope::Host,
        kind: RouteType::Local,
        ..RouteHeader::default()
    };
    route.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet(cidr.network)),
        RouteAttribute::Oif(loopback_index),
    ];
    route
}

fn loopback_index() -> Result<u32, RouteError> {
    let text = std::fs::read_to_string(LOOPBACK_INDEX)
        .map_err(|error| RouteError::LoopbackIndex(error.to_string()))?;
    parse_index(&text).ok_or_else(|| RouteError::LoopbackIndex(format!("not a number: {text:?}")))
}

fn parse_index(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// Sends one request and waits for the kernel's acknowledgement.
fn request(message: RouteNetlinkMessage, flags: u16) -> std::io::Result<()> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buffer = vec![0; packet.buffer_len()];
    packet.serialize(&mut buffer);
    socket.send(&buffer, 0)?;
    let mut answer = vec![0; 8192];
    loop {
        let size = socket.recv(&mut &mut answer[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer[offset..size])
                .map_err(|error| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
            })?;
            if let NetlinkPayload::Error(error) = &reply.payload {
                return match error.code {
                    None => Ok(()),
                    Some(_) => Err(error.to_io()),
                };
            }
            if reply.header.length == 0 {
                break;
            }
            offset += reply.header.length as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<(&str, u8), &str>) {
        let parsed = text
            .parse::<Cidr>()
            .map(|c| (c.network.to_string(), c.prefix_length))
            .map_err(|error| error.reason);
        let expected = expected.map(|(network, length)| (network.to_owned(), length));
        assert_eq!(parsed, expected, "{text}");
    }

    #[test]
    fn cidrs_parse_like_ip_route() {
        check("10.96.0.0/12", Ok(("10.96.0.0", 12)));
        check("10.96.0.1/32", Ok(("10.96.0.1", 32)));
        check("0.0.0.0/0", Ok(("0.0.0.0", 0)));
        check(
            "10.96.0.0",
            Err("expected ADDRESS/PREFIX, e.g. 10.96.0.0/12"),
        );
        check("10.96.0/12", Err("the address is not an IPv4 address"));
        check("fd00::/64", Err("the address is not an IPv4 address"));
        check(
            "10.96.0.0/33",
            Err("the prefix length is not a number from 0 to 32"),
        );
        check(
            "10.96.0.0/x",
            Err("the prefix length is not a number from 0 to 32"),
        );
        check(
            "10.97.0.0/12",
            Err("the address has bits set past the prefix length"),
        );
    }

    #[test]
    fn containment_follows_the_prefix() {
        let cidr: Cidr = "10.96.0.0/12".parse().unwrap();
        assert!(cidr.contains("10.96.0.10".parse().unwrap()));
        assert!(cidr.contains("10.111.255.255".parse().unwrap()));
        assert!(!cidr.contains("10.112.0.0".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert_eq!(cidr.to_string(), "10.96.0.0/12");
    }

    #[test]
    fn the_route_is_what_ip_route_add_local_sends() {
        let route = local_route("10.96.0.0/12".parse().unwrap(), 1);
        assert_eq!(route.header.address_family, AddressFamily::Inet);
        assert_eq!(route.header.destination_prefix_length, 12);
        assert_eq!(route.header.table, 255);
        assert_eq!(route.header.kind, RouteType::Local);
        assert_eq!(route.header.scope, RouteScope::Host);
        assert_eq!(
            route.attributes,
            [
                RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 96, 0, 0))),
                RouteAttribute::Oif(1)
            ]
        );
    }

    #[test]
    fn the_loopback_index_is_sysfs_text() {
        assert_eq!(parse_index("1\n"), Some(1));
        assert_eq!(parse_index("lo"), None);
    }
}
