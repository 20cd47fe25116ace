//! What the DNS server says to one query, decided from the table alone: the
//! cluster's names (Kubernetes' DNS specification, the parts for Services
//! with a ClusterIP, and StatefulSet pods' `hostname.subdomain` records,
//! which name each pod's virtual address rather than its own) are answered
//! here; every other name is left to the upstream resolvers. Pure: a table and the query's bytes in, the reply's
//! bytes (or "forward it", or "drop it") out; no socket, no clock.

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::proxy::table::{Protocol, Service, ServicePort, Table};

/// The TTL of every record served from the table: short, because a
/// Service's address changes only when the Service is replaced, but a
/// removed Service should stop resolving soon.
pub const TTL: u32 = 5;

/// The schema version of Kubernetes' DNS specification served, in the
/// `dns-version.CLUSTER_DOMAIN` TXT record the specification asks for.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The UDP payload size announced to EDNS clients (the DNS flag day 2020
/// value, which avoids IP fragmentation).
const EDNS_PAYLOAD: u16 = 1232;

/// What to do with one message a client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back to the client.
    Answer(Vec<u8>),
    /// Not one of the cluster's names: send the query, unchanged, to an
    /// upstream resolver and its answer, unchanged, back to the client.
    Forward,
    /// Not a query (unparsable, or itself a response): say nothing, so a
    /// forged or garbled packet never makes the server talk.
    Ignore,
}

/// Decides the reply to `query` (a DNS message as received, without the
/// TCP length prefix) from `table`.
///
/// Every answer fits in 512 bytes, the smallest UDP payload a client
/// accepts, so none is ever truncated: it holds at most one record and one
/// additional record (or one SOA), and the name in a record is either the
/// question's own (compressed to a pointer), the zone, or a Service's or a
/// pod's canonical name (at most 5 labels of 63 bytes past the zone).
pub fn reply(table: &Table, query: &[u8]) -> Reply {
    let Ok(request) = Message::from_vec(query) else {
        return Reply::Ignore;
    };
    if request.message_type() != MessageType::Query {
        return Reply::Ignore;
    }
    if request.op_code() != OpCode::Query {
        return encode(&response(&request, ResponseCode::NotImp, false));
    }
    let [question] = request.queries() else {
        return encode(&response(&request, ResponseCode::FormErr, false));
    };
    let Some(zone) = Zone::of(table) else {
        return Reply::Forward;
    };
    match lookup(table, &zone, question) {
        Ok(Lookup::Elsewhere) => Reply::Forward,
        Ok(Lookup::Refused) => encode(&response(&request, ResponseCode::Refused, false)),
        Ok(Lookup::Records {
            answers,
            additionals,
        }) => {
            let mut message = response(&request, ResponseCode::NoError, true);
            message.add_answers(answers).add_additionals(additionals);
            encode(&message)
        }
        Ok(Lookup::NoData) => negative(&request, ResponseCode::NoError, &zone, table),
        Ok(Lookup::NoDomain) => negative(&request, ResponseCode::NXDomain, &zone, table),
        // A name from the table that is not a valid DNS name: the leader
        // validated it, so this is a bug; the client should not cache it.
        Err(_) => encode(&response(&request, ResponseCode::ServFail, false)),
    }
}

/// The SERVFAIL answer to `query`, for when no upstream resolver answered
/// a forwarded query; `None` when `query` is not a query (see [`reply`]).
pub fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.message_type() != MessageType::Query {
        return None;
    }
    match encode(&response(&request, ResponseCode::ServFail, false)) {
        Reply::Answer(bytes) => Some(bytes),
        Reply::Forward | Reply::Ignore => None,
    }
}

/// What the table says about one question.
#[derive(Debug)]
enum Lookup {
    /// Not a name of the cluster's zone (nor a cluster IP's reverse name).
    Elsewhere,
    /// In the zone, but not of class IN.
    Refused,
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name exists (or names exist below it) but has no record of the
    /// type asked.
    NoData,
    NoDomain,
}

/// The cluster domain, as labels (`["cluster", "local"]`).
struct Zone<'a> {
    labels: Vec<&'a str>,
}

impl<'a> Zone<'a> {
    /// `None` for an empty cluster domain: then no name is the cluster's.
    fn of(table: &'a Table) -> Option<Zone<'a>> {
        let labels: Vec<&str> = table
            .cluster_domain
            .split('.')
            .filter(|label| !label.is_empty())
            .collect();
        (!labels.is_empty()).then_some(Zone { labels })
    }

    /// The labels of `name` before the zone, or `None` outside it.
    fn relative<'n>(&self, name: &'n [&'n [u8]]) -> Option<&'n [&'n [u8]]> {
        let inside = name.len().checked_sub(self.labels.len())?;
        let (relative, suffix) = name.split_at(inside);
        let in_zone = suffix
            .iter()
            .zip(&self.labels)
            .all(|(label, zone)| label.eq_ignore_ascii_case(zone.as_bytes()));
        in_zone.then_some(relative)
    }

    fn name(&self, before: &[&str]) -> Result<Name, hickory_proto::ProtoError> {
        let mut name = Name::from_labels(before.iter().chain(&self.labels).map(|l| l.as_bytes()))?;
        name.set_fqdn(true);
        Ok(name)
    }

    /// `NAME.NAMESPACE.svc.ZONE.` for a Service, and
    /// `HOSTNAME.SERVICE.NAMESPACE.svc.ZONE.` for a pod's entry; lowercase.
    fn service_name(&self, service: &Service) -> Result<Name, hickory_proto::ProtoError> {
        let namespace = service.namespace.to_ascii_lowercase();
        match &service.pod {
            None => {
                let name = service.name.to_ascii_lowercase();
                self.name(&[&name, &namespace, "svc"])
            }
            Some(pod) => {
                let hostname = pod.hostname.to_ascii_lowercase();
                let subdomain = pod.service.to_ascii_lowercase();
                self.name(&[&hostname, &subdomain, &namespace, "svc"])
            }
        }
    }

    /// The zone's SOA record, which negative answers carry in their
    /// authority section so resolvers cache them for [`TTL`] seconds
    /// (RFC 2308). Its serial is the table's generation.
    fn soa(&self, table: &Table) -> Result<Record, hickory_proto::ProtoError> {
        let soa = SOA::new(
            self.name(&["ns", "dns"])?,
            self.name(&["hostmaster"])?,
            // The serial is 32 bits; a wrapped generation still changes.
            table.generation as u32,
            7200,
            1800,
            86400,
            TTL,
        );
        Ok(Record::from_rdata(self.name(&[])?, TTL, RData::SOA(soa)))
    }
}

fn lookup(
    table: &Table,
    zone: &Zone,
    question: &Query,
) -> Result<Lookup, hickory_proto::ProtoError> {
    let name: Vec<&[u8]> = question.name().iter().collect();
    let asked = question.query_type();
    if let Some(ptr) = reverse(table, zone, question, &name)? {
        return Ok(ptr);
    }
    let Some(relative) = zone.relative(&name) else {
        return Ok(Lookup::Elsewhere);
    };
    if question.query_class() != DNSClass::IN {
        return Ok(Lookup::Refused);
    }
    let wants = |kind: RecordType| asked == kind || asked == RecordType::ANY;
    let label_is = |label: &[u8], literal: &str| label.eq_ignore_ascii_case(literal.as_bytes());
    let owner = question.name().clone();
    let service = |name: &[u8], namespace: &[u8]| find_service(table, name, namespace);
    let found = |answers: Vec<Record>, additionals: Vec<Record>| Lookup::Records {
        answers,
        additionals,
    };
    Ok(match relative {
        [] if wants(RecordType::SOA) => found(vec![zone.soa(table)?], vec![]),
        [] => Lookup::NoData,
        [version] if label_is(version, "dns-version") => {
            if wants(RecordType::TXT) {
                let txt = TXT::new(vec![SCHEMA_VERSION.to_string()]);
                found(
                    vec![Record::from_rdata(owner, TTL, RData::TXT(txt))],
                    vec![],
                )
            } else {
                Lookup::NoData
            }
        }
        [svc] if label_is(svc, "svc") => exists(!table.services.is_empty()),
        [namespace, svc] if label_is(svc, "svc") => exists(
            table
                .services
                .iter()
                .any(|service| in_namespace(service, namespace)),
        ),
        [name, namespace, svc] if label_is(svc, "svc") => match service(name, namespace) {
            Some(service) if wants(RecordType::A) => found(vec![address(owner, service)], vec![]),
            Some(_) => Lookup::NoData,
            None => Lookup::NoDomain,
        },
        // A pod's name: its hostname is a DNS label, which never starts
        // with `_` as the SRV names' protocol label does.
        [hostname, name, namespace, svc] if label_is(svc, "svc") && !hostname.starts_with(b"_") => {
            match find_pod(table, hostname, name, namespace) {
                Some(pod) if wants(RecordType::A) => found(vec![address(owner, pod)], vec![]),
                Some(_) => Lookup::NoData,
                None => Lookup::NoDomain,
            }
        }
        [protocol, name, namespace, svc] if label_is(svc, "svc") => {
            let named_port = service(name, namespace).is_some_and(|service| {
                service
                    .ports
                    .iter()
                    .any(|port| srv_protocol(port, protocol))
            });
            exists(named_port)
        }
        [port_name, protocol, name, namespace, svc] if label_is(svc, "svc") => {
            let service = service(name, namespace);
            let port = service.and_then(|service| {
                service.ports.iter().find(|port| {
                    srv_protocol(port, protocol)
                        && port_name
                            .strip_prefix(b"_")
                            .is_some_and(|wanted| wanted.eq_ignore_ascii_case(port.name.as_bytes()))
                })
            });
            match (service, port) {
                (Some(service), Some(port)) if wants(RecordType::SRV) => {
                    let target = zone.service_name(service)?;
                    let srv = SRV::new(0, 100, port.port, target.clone());
                    found(
                        vec![Record::from_rdata(owner, TTL, RData::SRV(srv))],
                        vec![address(target, service)],
                    )
                }
                (Some(_), Some(_)) => Lookup::NoData,
                _ => Lookup::NoDomain,
            }
        }
        _ => Lookup::NoDomain,
    })
}

fn find_service<'t>(table: &'t Table, name: &[u8], namespace: &[u8]) -> Option<&'t Service> {
    table.services.iter().find(|service| {
        service.pod.is_none()
            && in_namespace(service, namespace)
            && name.eq_ignore_ascii_case(service.name.as_bytes())
    })
}

/// The entry of the pod `hostname` named under the Service `service`,
/// while it has an endpoint: a pod that is not ready has no record, as in
/// Kubernetes without `publishNotReadyAddresses`.
fn find_pod<'t>(
    table: &'t Table,
    hostname: &[u8],
    service: &[u8],
    namespace: &[u8],
) -> Option<&'t Service> {
    table.services.iter().find(|entry| {
        entry.pod.as_ref().is_some_and(|pod| {
            hostname.eq_ignore_ascii_case(pod.hostname.as_bytes())
                && service.eq_ignore_ascii_case(pod.service.as_bytes())
        }) && in_namespace(entry, namespace)
            && entry.has_endpoints()
    })
}

fn in_namespace(service: &Service, namespace: &[u8]) -> bool {
    namespace.eq_ignore_ascii_case(service.namespace.as_bytes())
}

/// `NoData` for a name that exists (if only because names exist below
/// it: an empty non-terminal such as `NAMESPACE.svc.ZONE`), else
/// `NoDomain`: NXDOMAIN says nothing exists at or below a name (RFC 8020).
fn exists(exists: bool) -> Lookup {
    if exists {
        Lookup::NoData
    } else {
        Lookup::NoDomain
    }
}

/// Whether `label` (`_tcp`, `_udp`) names the protocol of `port`, a named
/// port (an unnamed port has no SRV record).
fn srv_protocol(port: &ServicePort, label: &[u8]) -> bool {
    let literal: &[u8] = match port.protocol {
        Protocol::Tcp => b"_tcp",
        Protocol::Udp => b"_udp",
    };
    !port.name.is_empty() && label.eq_ignore_ascii_case(literal)
}

fn address(owner: Name, service: &Service) -> Record {
    Record::from_rdata(owner, TTL, RData::A(A(service.cluster_ip)))
}

/// The PTR record of a cluster IP's reverse name (`D.C.B.A.in-addr.arpa`
/// for `A.B.C.D`): the Service's name, or a StatefulSet pod's for its
/// address (while the pod is ready, as its forward name). Other reverse
/// names, even in the service CIDR, and other types go upstream: the
/// proxy is not authoritative for any reverse zone, only for its Services'
/// and pods' addresses.
fn reverse(
    table: &Table,
    zone: &Zone,
    question: &Query,
    name: &[&[u8]],
) -> Result<Option<Lookup>, hickory_proto::ProtoError> {
    let [d, c, b, a, in_addr, arpa] = name else {
        return Ok(None);
    };
    if question.query_type() != RecordType::PTR
        || question.query_class() != DNSClass::IN
        || !in_addr.eq_ignore_ascii_case(b"in-addr")
        || !arpa.eq_ignore_ascii_case(b"arpa")
    {
        return Ok(None);
    }
    let octet = |label: &[u8]| std::str::from_utf8(label).ok()?.parse::<u8>().ok();
    let (Some(a), Some(b), Some(c), Some(d)) = (octet(a), octet(b), octet(c), octet(d)) else {
        return Ok(None);
    };
    let ip = Ipv4Addr::new(a, b, c, d);
    let Some(service) = table.services.iter().find(|service| {
        service.cluster_ip == ip && (service.pod.is_none() || service.has_endpoints())
    }) else {
        return Ok(None);
    };
    let ptr = PTR(zone.service_name(service)?);
    let record = Record::from_rdata(question.name().clone(), TTL, RData::PTR(ptr));
    Ok(Some(Lookup::Records {
        answers: vec![record],
        additionals: vec![],
    }))
}

/// A NOERROR-without-answers or NXDOMAIN answer, with the zone's SOA.
fn negative(request: &Message, code: ResponseCode, zone: &Zone, table: &Table) -> Reply {
    match zone.soa(table) {
        Ok(soa) => {
            let mut message = response(request, code, true);
            message.add_name_server(soa);
            encode(&message)
        }
        Err(_) => encode(&response(request, ResponseCode::ServFail, false)),
    }
}

/// The response to `request` with its id, question and flags, and no
/// records yet.
fn response(request: &Message, code: ResponseCode, authoritative: bool) -> Message {
    let mut message = Message::new();
    message
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_authoritative(authoritative)
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(request.checking_disabled())
        .set_response_code(code)
        .add_queries(request.queries().iter().cloned());
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        message.set_edns(edns);
    }
    message
}

fn encode(message: &Message) -> Reply {
    match message.to_vec() {
        Ok(bytes) => Reply::Answer(bytes),
        // Only a message the code above built wrongly fails to encode; the
        // client then times out and retries, as after a lost packet.
        Err(_) => Reply::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{DNSClass, Name, RecordType};
    use proptest::prelude::*;

    use super::{reply, server_failure, Reply};
    use crate::proxy::table::{
        Balance, Endpoint, Mode, PodName, Protocol, Service, ServicePort, Table,
    };

    fn port(name: &str, protocol: Protocol, number: u16) -> ServicePort {
        ServicePort {
            name: name.to_string(),
            protocol,
            port: number,
            node_port: None,
            node_port_local_only: false,
            mode: Mode::Tcp,
            endpoints: vec![Endpoint {
                node: "node-1".to_string(),
                pod: "pod".to_string(),
                target: SocketAddrV4::new(Ipv4Addr::new(172, 17, 0, 2), number),
                via: None,
            }],
        }
    }

    fn service(
        namespace: &str,
        name: &str,
        cluster_ip: [u8; 4],
        ports: Vec<ServicePort>,
    ) -> Service {
        Service {
            namespace: namespace.to_string(),
            name: name.to_string(),
            cluster_ip: Ipv4Addr::from(cluster_ip),
            client_ip_affinity_seconds: None,
            balance: Balance::RoundRobin,
            ports,
            pod: None,
        }
    }

    fn table() -> Table {
        Table {
            generation: 7,
            node: "node-1".to_string(),
            service_cidr: "10.96.0.0/12".to_string(),
            dns_address: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".to_string(),
            ingress: Vec::new(),
            ingress_default_backend: None,
            ingress_certificates: Vec::new(),
            services: vec![
                service(
                    "default",
                    "web",
                    [10, 96, 0, 20],
                    vec![
                        port("http", Protocol::Tcp, 80),
                        port("metrics", Protocol::Tcp, 9090),
                    ],
                ),
                service(
                    "default",
                    "cache",
                    [10, 96, 0, 21],
                    vec![port("", Protocol::Tcp, 6379)],
                ),
                service(
                    "shop",
                    "dns",
                    [10, 96, 0, 30],
                    vec![port("dns", Protocol::Udp, 53)],
                ),
                pod_entry("web-0", [10, 96, 1, 10], true),
                pod_entry("web-1", [10, 96, 1, 11], false),
            ],
        }
    }

    /// The entry of the StatefulSet pod `hostname` under `default/web`,
    /// with its endpoint (ready) or without.
    fn pod_entry(hostname: &str, address: [u8; 4], ready: bool) -> Service {
        let mut ports = vec![
            port("http", Protocol::Tcp, 80),
            port("metrics", Protocol::Tcp, 9090),
        ];
        if !ready {
            for port in &mut ports {
                port.endpoints.clear();
            }
        }
        Service {
            pod: Some(PodName {
                hostname: hostname.to_string(),
                service: "web".to_string(),
            }),
            ..service(
                "default",
                &Service::pod_entry_name(hostname, "web"),
                address,
                ports,
            )
        }
    }

    fn query(name: &str, kind: RecordType) -> Message {
        let mut message = Message::new();
        message
            .set_id(0x1234)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(
                Name::from_ascii(name).expect("a valid name"),
                kind,
            ));
        message
    }

    /// The reply to a query, as `dig` would show it: the response code and
    /// flags, then each record with its section.
    fn render(reply: Reply) -> String {
        let bytes = match reply {
            Reply::Answer(bytes) => bytes,
            other => return format!("{other:?}"),
        };
        assert!(
            bytes.len() <= 512,
            "{} bytes, over what any client accepts",
            bytes.len()
        );
        let response = Message::from_vec(&bytes).expect("the answer parses");
        assert_eq!(response.id(), 0x1234, "the query's id");
        assert_eq!(response.message_type(), MessageType::Response);
        let flags = [
            (response.authoritative(), " aa"),
            (response.recursion_desired(), " rd"),
            (response.recursion_available(), " ra"),
            (response.truncated(), " tc"),
        ];
        let mut rendered = format!("{:?}", response.response_code());
        rendered.extend(flags.iter().filter(|(set, _)| *set).map(|(_, flag)| *flag));
        let question: Vec<String> = response.queries().iter().map(ToString::to_string).collect();
        if !question.is_empty() {
            rendered.push_str(&format!("\nquestion: {}", question.join(", ")));
        }
        let sections = [
            ("answer", response.answers()),
            ("authority", response.name_servers()),
            ("additional", response.additionals()),
        ];
        for (section, records) in sections {
            for record in records {
                rendered.push_str(&format!("\n{section}: {record}"));
            }
        }
        rendered
    }

    fn check_message(table: &Table, message: &Message, expected: &str) {
        let bytes = message.to_vec().expect("the query encodes");
        assert_eq!(render(reply(table, &bytes)), expected.trim());
    }

    fn check(name: &str, kind: RecordType, expected: &str) {
        check_message(&table(), &query(name, kind), expected);
    }

    const SOA: &str = "authority: cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5";

    #[test]
    fn a_service_name_is_its_cluster_ip() {
        check(
            "web.default.svc.cluster.local.",
            RecordType::A,
            "
NoError aa rd ra
question: web.default.svc.cluster.local. IN A
answer: web.default.svc.cluster.local. 5 IN A 10.96.0.20",
        );
        check(
            "dns.shop.svc.cluster.local.",
            RecordType::ANY,
            "
NoError aa rd ra
question: dns.shop.svc.cluster.local. IN ANY
answer: dns.shop.svc.cluster.local. 5 IN A 10.96.0.30",
        );
    }

    #[test]
    fn names_are_matched_whatever_their_case_and_answered_in_the_question_s_case() {
        check(
            "WeB.DeFault.SVC.Cluster.LOCAL.",
            RecordType::A,
            "
NoError aa rd ra
question: WeB.DeFault.SVC.Cluster.LOCAL. IN A
answer: WeB.DeFault.SVC.Cluster.LOCAL. 5 IN A 10.96.0.20",
        );
    }

    #[test]
    fn a_cluster_domain_written_with_a_trailing_dot_or_in_capitals_is_the_same_zone() {
        for cluster_domain in ["cluster.local.", "Cluster.Local"] {
            let table = Table {
                cluster_domain: cluster_domain.to_string(),
                ingress: Vec::new(),
                ingress_default_backend: None,
                ingress_certificates: Vec::new(),
                ..table()
            };
            check_message(
                &table,
                &query("web.default.svc.cluster.local.", RecordType::A),
                "
NoError aa rd ra
question: web.default.svc.cluster.local. IN A
answer: web.default.svc.cluster.local. 5 IN A 10.96.0.20",
            );
        }
    }

    #[test]
    fn a_service_has_no_aaaa_record_nodata_with_the_soa() {
        for kind in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            check(
                "web.default.svc.cluster.local.",
                kind,
                &format!(
                    "
NoError aa rd ra
question: web.default.svc.cluster.local. IN {kind}
{SOA}"
                ),
            );
        }
    }

    #[test]
    fn every_other_name_in_the_zone_does_not_exist() {
        for name in [
            "nothere.default.svc.cluster.local.",
            "web.nothere.svc.cluster.local.",
            "web.shop.svc.cluster.local.",
            "nothere.svc.cluster.local.",
            "a.web.default.svc.cluster.local.",
            "web.default.cluster.local.",
            "10-96-0-20.default.pod.cluster.local.",
            "www.example.com.default.svc.cluster.local.",
            "svc.svc.cluster.local.",
            "other.cluster.local.",
        ] {
            check(
                name,
                RecordType::A,
                &format!(
                    "
NXDomain aa rd ra
question: {name} IN A
{SOA}"
                ),
            );
        }
    }

    #[test]
    fn a_name_with_names_below_it_exists_without_records() {
        // RFC 8020: NXDOMAIN would tell a cache nothing exists below.
        for name in [
            "cluster.local.",
            "svc.cluster.local.",
            "default.svc.cluster.local.",
            "shop.svc.cluster.local.",
            "_tcp.web.default.svc.cluster.local.",
            "_udp.dns.shop.svc.cluster.local.",
        ] {
            check(
                name,
                RecordType::A,
                &format!(
                    "
NoError aa rd ra
question: {name} IN A
{SOA}"
                ),
            );
        }
        // No named port of that protocol, nor any named port.
        for name in [
            "_udp.web.default.svc.cluster.local.",
            "_tcp.cache.default.svc.cluster.local.",
        ] {
            check(
                name,
                RecordType::A,
                &format!(
                    "
NXDomain aa rd ra
question: {name} IN A
{SOA}"
                ),
            );
        }
    }

    #[test]
    fn a_named_port_has_an_srv_record_to_the_service_name() {
        check(
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            "
NoError aa rd ra
question: _http._tcp.web.default.svc.cluster.local. IN SRV
answer: _http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local.
additional: web.default.svc.cluster.local. 5 IN A 10.96.0.20",
        );
        check(
            "_DNS._UDP.dns.shop.svc.cluster.local.",
            RecordType::SRV,
            "
NoError aa rd ra
question: _DNS._UDP.dns.shop.svc.cluster.local. IN SRV
answer: _DNS._UDP.dns.shop.svc.cluster.local. 5 IN SRV 0 100 53 dns.shop.svc.cluster.local.
additional: dns.shop.svc.cluster.local. 5 IN A 10.96.0.30",
        );
    }

    #[test]
    fn an_srv_name_answers_only_srv_and_only_for_a_named_port_of_its_protocol() {
        check(
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::A,
            &format!(
                "
NoError aa rd ra
question: _http._tcp.web.default.svc.cluster.local. IN A
{SOA}"
            ),
        );
        for name in [
            "_http._udp.web.default.svc.cluster.local.",
            "_https._tcp.web.default.svc.cluster.local.",
            "http._tcp.web.default.svc.cluster.local.",
            "_._tcp.cache.default.svc.cluster.local.",
            "_http._sctp.web.default.svc.cluster.local.",
        ] {
            check(
                name,
                RecordType::SRV,
                &format!(
                    "
NXDomain aa rd ra
question: {name} IN SRV
{SOA}"
                ),
            );
        }
    }

    #[test]
    fn the_zone_apex_has_an_soa_and_the_schema_version_a_txt_record() {
        check(
            "cluster.local.",
            RecordType::SOA,
            "
NoError aa rd ra
question: cluster.local. IN SOA
answer: cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5",
        );
        check(
            "dns-version.cluster.local.",
            RecordType::TXT,
            "
NoError aa rd ra
question: dns-version.cluster.local. IN TXT
answer: dns-version.cluster.local. 5 IN TXT 1.1.0",
        );
    }

    #[test]
    fn a_cluster_ip_s_reverse_name_points_to_its_service() {
        check(
            "20.0.96.10.in-addr.arpa.",
            RecordType::PTR,
            "
NoError aa rd ra
question: 20.0.96.10.in-addr.arpa. IN PTR
answer: 20.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local.",
        );
        // Other addresses, even in the service CIDR, and other types: the
        // node's resolvers answer (the proxy owns no reverse zone).
        check("99.0.96.10.in-addr.arpa.", RecordType::PTR, "Forward");
        check("20.0.96.10.in-addr.arpa.", RecordType::TXT, "Forward");
        check("300.0.96.10.in-addr.arpa.", RecordType::PTR, "Forward");
    }

    #[test]
    fn a_ready_stateful_pod_s_name_is_its_own_address() {
        check(
            "web-0.web.default.svc.cluster.local.",
            RecordType::A,
            "
NoError aa rd ra
question: web-0.web.default.svc.cluster.local. IN A
answer: web-0.web.default.svc.cluster.local. 5 IN A 10.96.1.10",
        );
        check(
            "WEB-0.Web.default.SVC.cluster.local.",
            RecordType::ANY,
            "
NoError aa rd ra
question: WEB-0.Web.default.SVC.cluster.local. IN ANY
answer: WEB-0.Web.default.SVC.cluster.local. 5 IN A 10.96.1.10",
        );
        // The Service's own name still is its ClusterIP.
        check(
            "web.default.svc.cluster.local.",
            RecordType::A,
            "
NoError aa rd ra
question: web.default.svc.cluster.local. IN A
answer: web.default.svc.cluster.local. 5 IN A 10.96.0.20",
        );
        check(
            "web-0.web.default.svc.cluster.local.",
            RecordType::AAAA,
            &format!(
                "
NoError aa rd ra
question: web-0.web.default.svc.cluster.local. IN AAAA
{SOA}"
            ),
        );
    }

    #[test]
    fn a_pod_that_is_not_ready_or_not_named_there_does_not_exist() {
        // web-1 is not ready; web-2 is not declared; web-0 is named under
        // `web` of `default` only; no pod entry is a Service.
        for name in [
            "web-1.web.default.svc.cluster.local.",
            "web-2.web.default.svc.cluster.local.",
            "web-0.cache.default.svc.cluster.local.",
            "web-0.web.shop.svc.cluster.local.",
            "web-0.web.web.default.svc.cluster.local.",
            "web-0.default.svc.cluster.local.",
        ] {
            check(
                name,
                RecordType::A,
                &format!(
                    "
NXDomain aa rd ra
question: {name} IN A
{SOA}"
                ),
            );
        }
    }

    #[test]
    fn a_ready_pod_s_address_points_back_to_its_name() {
        check(
            "10.1.96.10.in-addr.arpa.",
            RecordType::PTR,
            "
NoError aa rd ra
question: 10.1.96.10.in-addr.arpa. IN PTR
answer: 10.1.96.10.in-addr.arpa. 5 IN PTR web-0.web.default.svc.cluster.local.",
        );
        // Not ready: no record, as for its forward name.
        check("11.1.96.10.in-addr.arpa.", RecordType::PTR, "Forward");
    }

    #[test]
    fn names_outside_the_zone_are_forwarded() {
        for name in [
            "example.com.",
            "web.",
            "web.default.",
            "web.default.svc.",
            "local.",
            "cluster.local.example.com.",
            "web.default.svc.cluster.localhost.",
            ".",
        ] {
            check(name, RecordType::A, "Forward");
        }
    }

    #[test]
    fn without_a_cluster_domain_every_name_is_forwarded() {
        let table = Table {
            cluster_domain: ".".to_string(),
            ingress: Vec::new(),
            ingress_default_backend: None,
            ingress_certificates: Vec::new(),
            ..table()
        };
        check_message(
            &table,
            &query("web.default.svc.cluster.local.", RecordType::A),
            "Forward",
        );
        check_message(
            &table,
            &query("20.0.96.10.in-addr.arpa.", RecordType::PTR),
            "Forward",
        );
    }

    #[test]
    fn classes_other_than_in_are_refused_in_the_zone_and_forwarded_outside() {
        let mut chaos = query("web.default.svc.cluster.local.", RecordType::A);
        chaos.queries_mut()[0].set_query_class(DNSClass::CH);
        check_message(
            &table(),
            &chaos,
            "
Refused rd ra
question: web.default.svc.cluster.local. CH A",
        );
        let mut version = query("version.bind.", RecordType::TXT);
        version.queries_mut()[0].set_query_class(DNSClass::CH);
        check_message(&table(), &version, "Forward");
    }

    #[test]
    fn the_query_s_flags_and_edns_are_answered_in_kind() {
        let mut message = query("web.default.svc.cluster.local.", RecordType::A);
        message
            .set_recursion_desired(false)
            .set_checking_disabled(true)
            .set_edns(hickory_proto::op::Edns::new());
        let bytes = message.to_vec().expect("the query encodes");
        let Reply::Answer(answer) = reply(&table(), &bytes) else {
            panic!("an answer");
        };
        let response = Message::from_vec(&answer).expect("the answer parses");
        assert!(!response.recursion_desired());
        assert!(response.checking_disabled());
        assert_eq!(response.max_payload(), 1232, "the EDNS payload announced");
        // Without EDNS in the query, none in the answer (RFC 6891 7).
        let bytes = query("web.default.svc.cluster.local.", RecordType::A)
            .to_vec()
            .expect("the query encodes");
        let Reply::Answer(answer) = reply(&table(), &bytes) else {
            panic!("an answer");
        };
        assert!(Message::from_vec(&answer)
            .expect("parses")
            .extensions()
            .is_none());
    }

    #[test]
    fn what_is_not_one_query_is_ignored_or_refused_as_such() {
        assert_eq!(reply(&table(), b""), Reply::Ignore);
        assert_eq!(
            reply(&table(), b"\x12\x34 not a DNS message"),
            Reply::Ignore
        );
        let mut response = query("web.default.svc.cluster.local.", RecordType::A);
        response.set_message_type(MessageType::Response);
        check_message(&table(), &response, "Ignore");

        let mut two = query("web.default.svc.cluster.local.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("example.com.").expect("valid"),
            RecordType::A,
        ));
        check_message(
            &table(),
            &two,
            "
FormErr rd ra
question: web.default.svc.cluster.local. IN A, example.com. IN A",
        );
        let mut none = query("web.default.svc.cluster.local.", RecordType::A);
        none.take_queries();
        check_message(&table(), &none, "FormErr rd ra");

        let mut notify = query("cluster.local.", RecordType::SOA);
        notify.set_op_code(OpCode::Notify);
        check_message(
            &table(),
            &notify,
            "
NotImp rd ra
question: cluster.local. IN SOA",
        );
    }

    #[test]
    fn server_failure_keeps_the_query_s_id_and_question() {
        let bytes = query("example.com.", RecordType::A)
            .to_vec()
            .expect("encodes");
        let failure = server_failure(&bytes).expect("a query has a SERVFAIL answer");
        assert_eq!(
            render(Reply::Answer(failure)),
            "ServFail rd ra\nquestion: example.com. IN A"
        );
        assert_eq!(server_failure(b"\x00"), None);
    }

    /// A valid query, then some of its bytes overwritten.
    fn mangled_query() -> impl Strategy<Value = Vec<u8>> {
        let names = prop::sample::select(vec![
            "web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local.",
            "20.0.96.10.in-addr.arpa.",
            "example.com.",
        ]);
        let kinds = prop::sample::select(vec![
            RecordType::A,
            RecordType::SRV,
            RecordType::PTR,
            RecordType::ANY,
        ]);
        (
            names,
            kinds,
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        )
            .prop_map(|(name, kind, changes)| {
                let mut bytes = query(name, kind).to_vec().expect("the query encodes");
                for (at, byte) in changes {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                bytes
            })
    }

    /// Labels of any bytes, case and length, under the zone or not.
    fn any_name() -> impl Strategy<Value = Name> {
        let label = prop::collection::vec(any::<u8>(), 1..20);
        let known = prop::sample::select(vec![
            "web", "web-0", "default", "svc", "cluster", "local", "_http", "_tcp", "in-addr",
            "arpa", "20",
        ])
        .prop_map(|label| label.as_bytes().to_vec());
        prop::collection::vec(prop_oneof![label, known], 0..8).prop_filter_map(
            "a valid name",
            |labels| {
                let mut name = Name::from_labels(labels).ok()?;
                name.set_fqdn(true);
                Some(name)
            },
        )
    }

    proptest! {
        #[test]
        fn no_bytes_make_it_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = reply(&table(), &bytes);
            let _ = server_failure(&bytes);
        }

        #[test]
        fn no_mangled_query_makes_it_panic(bytes in mangled_query()) {
            let _ = reply(&table(), &bytes);
            let _ = server_failure(&bytes);
        }

        #[test]
        fn every_query_gets_an_answer_that_fits_in_512_bytes_or_is_forwarded(
            name in any_name(),
            kind in prop::sample::select(vec![RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::PTR, RecordType::TXT, RecordType::SOA, RecordType::ANY]),
        ) {
            let mut message = Message::new();
            message.set_id(0x1234).add_query(Query::query(name, kind));
            let bytes = message.to_vec().expect("the query encodes");
            match reply(&table(), &bytes) {
                Reply::Answer(answer) => {
                    prop_assert!(answer.len() <= 512);
                    let response = Message::from_vec(&answer).expect("the answer parses");
                    prop_assert_eq!(response.id(), 0x1234);
                    prop_assert_eq!(response.queries(), message.queries());
                }
                Reply::Forward => {}
                Reply::Ignore => prop_assert!(false, "a query ignored"),
            }
        }
    }
}
