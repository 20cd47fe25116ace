//! The table as the data plane reads it: for each address the proxy
//! listens on, the Service port it serves, and the Ingress routes served
//! on the Ingress port. Built (and checked) once per `Apply`; connections
//! look it up when they choose an endpoint.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};

use super::balance::{Chooser, Policy};
use super::counters::{PortCounters, PortKey};
use super::ingress::Routes;
use super::route::{Cidr, CidrError};
use super::table::{Protocol, Service, ServicePort, Table};
use super::tls::{self, TableCertificateError};

/// A table being served, with its listen addresses.
#[derive(Debug, Default)]
pub(crate) struct Served {
    /// `None` before the first table.
    pub(crate) table: Option<Arc<Table>>,
    /// Every address listened on (`cluster_ip:port`, `0.0.0.0:node_port`)
    /// and what it serves.
    pub(crate) routes: HashMap<SocketAddrV4, Route>,
    /// Each Service port's virtual address, by name (how the tunnel and
    /// the Ingress routes name a Service port).
    by_name: HashMap<PortKey, SocketAddrV4>,
    /// `None` when the table has no Ingress route and no default backend:
    /// nothing listens on the Ingress port then.
    pub(crate) ingress: Option<Ingress>,
}

/// The Ingress as served: where, and the routes.
#[derive(Debug)]
pub(crate) struct Ingress {
    /// `0.0.0.0:INGRESS_PORT`.
    pub(crate) listen: SocketAddrV4,
    pub(crate) routes: Routes,
    /// HTTPS, when the table has certificates: the same routes.
    pub(crate) tls: Option<IngressTls>,
}

/// The Ingress's HTTPS listener and what its handshakes are given. A new
/// table brings a new configuration; a connection keeps the one it was
/// accepted with, so changing a certificate drops no connection.
#[derive(Debug)]
pub(crate) struct IngressTls {
    /// `0.0.0.0:INGRESS_TLS_PORT`.
    pub(crate) listen: SocketAddrV4,
    pub(crate) config: Arc<rustls::ServerConfig>,
}

/// The ports the Ingress is served on, on every address of the node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IngressPorts {
    /// HTTP (80).
    pub(crate) http: u16,
    /// HTTPS (443), when the table has certificates.
    pub(crate) https: u16,
}

/// A listen address's Service port: indexes into the table.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) service: usize,
    pub(crate) port: usize,
    /// Listened on as a node port (where `node_port_local_only` applies).
    pub(crate) node_port: bool,
    pub(crate) state: Arc<PortState>,
}

/// What a Service port keeps across tables: its counters and its choices.
#[derive(Debug, Default)]
pub(crate) struct PortState {
    pub(crate) counters: Arc<PortCounters>,
    pub(crate) chooser: Mutex<Chooser>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TableError {
    #[error("the table is for node {table_node:?}, this proxy serves node {node:?}")]
    WrongNode { table_node: String, node: String },
    #[error(transparent)]
    Cidr(#[from] CidrError),
    #[error("service {service}: cluster IP {cluster_ip} is outside the service CIDR {cidr}")]
    OutsideCidr {
        service: String,
        cluster_ip: Ipv4Addr,
        cidr: Cidr,
    },
    #[error("address {address} is asked for twice: by {first} and by {second}")]
    DuplicateAddress {
        address: SocketAddrV4,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Certificate(#[from] TableCertificateError),
}

impl Served {
    /// Checks `table` for this proxy's `node` and indexes it, with its
    /// Ingress (if it has any route or default backend) on every address
    /// at `ingress_ports` (HTTPS when it has certificates, each read and
    /// checked); `states` gives (and gets) each Service port's lasting
    /// state.
    pub(crate) fn new(
        table: Table,
        node: &str,
        ingress_ports: IngressPorts,
        states: &mut BTreeMap<PortKey, Arc<PortState>>,
    ) -> Result<Served, TableError> {
        if table.node != node {
            return Err(TableError::WrongNode {
                table_node: table.node,
                node: node.to_owned(),
            });
        }
        let cidr: Cidr = table.service_cidr.parse()?;
        let mut routes: HashMap<SocketAddrV4, Route> = HashMap::new();
        let mut by_name = HashMap::new();
        for (service_index, service) in table.services.iter().enumerate() {
            if !cidr.contains(service.cluster_ip) {
                return Err(TableError::OutsideCidr {
                    service: format!("{}/{}", service.namespace, service.name),
                    cluster_ip: service.cluster_ip,
                    cidr,
                });
            }
            for (port_index, port) in service.ports.iter().enumerate() {
                if port.protocol == Protocol::Udp {
                    tracing::warn!(
                        service = %describe(service, port),
                        "UDP ports are not served by this proxy; only TCP"
                    );
                    continue;
                }
                let key = (service.namespace.clone(), service.name.clone(), port.port);
                let cluster_address = SocketAddrV4::new(service.cluster_ip, port.port);
                by_name.insert(key.clone(), cluster_address);
                let state = Arc::clone(states.entry(key).or_default());
                let route = |node_port| Route {
                    service: service_index,
                    port: port_index,
                    node_port,
                    state: Arc::clone(&state),
                };
                let mut addresses = vec![(cluster_address, route(false))];
                if let Some(node_port) = port.node_port {
                    addresses.push((
                        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, node_port),
                        route(true),
                    ));
                }
                for (address, route) in addresses {
                    if let Some(first) = routes.get(&address) {
                        let (first_service, first_port) = table_port(&table, first);
                        return Err(TableError::DuplicateAddress {
                            address,
                            first: describe(first_service, first_port),
                            second: describe(service, port),
                        });
                    }
                    routes.insert(address, route);
                }
            }
        }
        let ingress = if table.ingress.is_empty() && table.ingress_default_backend.is_none() {
            None
        } else {
            let free = |port: u16, second: &str| {
                let listen = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
                match routes.get(&listen) {
                    Some(first) => {
                        let (first_service, first_port) = table_port(&table, first);
                        Err(TableError::DuplicateAddress {
                            address: listen,
                            first: describe(first_service, first_port),
                            second: second.to_owned(),
                        })
                    }
                    None => Ok(listen),
                }
            };
            let listen = free(ingress_ports.http, INGRESS)?;
            let tls = match tls::server_config(&table.ingress_certificates)? {
                Some(config) => Some(IngressTls {
                    listen: free(ingress_ports.https, INGRESS_TLS)?,
                    config,
                }),
                None => None,
            };
            Some(Ingress {
                listen,
                routes: Routes::new(&table.ingress, table.ingress_default_backend.as_ref()),
                tls,
            })
        };
        Ok(Served {
            table: Some(Arc::new(table)),
            routes,
            by_name,
            ingress,
        })
    }

    /// Every address to listen on: the Service ports' and the Ingress's.
    pub(crate) fn listen_addresses(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
        let ingress = self.ingress.as_ref().map(|ingress| ingress.listen);
        let https = self
            .ingress
            .as_ref()
            .and_then(|ingress| ingress.tls.as_ref())
            .map(|tls| tls.listen);
        self.routes.keys().copied().chain(ingress).chain(https)
    }

    /// What `address` serves, for messages: a Service port or the Ingress.
    pub(crate) fn describe_address(&self, address: SocketAddrV4) -> String {
        match self.routes.get(&address) {
            Some(route) => {
                let (service, port) = self.port(route);
                describe(service, port)
            }
            None if self.https_config(address).is_some() => INGRESS_TLS.to_owned(),
            None => INGRESS.to_owned(),
        }
    }

    /// The HTTPS configuration, when `address` is the Ingress's HTTPS
    /// listener.
    pub(crate) fn https_config(&self, address: SocketAddrV4) -> Option<&Arc<rustls::ServerConfig>> {
        let tls = self.ingress.as_ref()?.tls.as_ref()?;
        (tls.listen == address).then_some(&tls.config)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.table.as_ref().map_or(0, |table| table.generation)
    }

    /// The Service and port a route serves.
    pub(crate) fn port(&self, route: &Route) -> (&Service, &ServicePort) {
        table_port(
            self.table.as_ref().expect("a route comes from a table"),
            route,
        )
    }

    /// The route of the Service port `key` names (what a tunnelled
    /// connection names).
    pub(crate) fn service_route(&self, key: &PortKey) -> Option<&Route> {
        self.by_name
            .get(key)
            .and_then(|address| self.routes.get(address))
    }
}

/// The Ingress, in messages.
const INGRESS: &str = "the Ingress";
const INGRESS_TLS: &str = "the Ingress's HTTPS";

fn table_port<'a>(table: &'a Table, route: &Route) -> (&'a Service, &'a ServicePort) {
    let service = &table.services[route.service];
    (service, &service.ports[route.port])
}

/// `namespace/name port 80` for messages.
pub(crate) fn describe(service: &Service, port: &ServicePort) -> String {
    format!(
        "service {}/{} port {}",
        service.namespace, service.name, port.port
    )
}

/// How a Service port chooses its endpoints.
pub(crate) fn policy(service: &Service) -> Policy {
    Policy {
        balance: service.balance,
        affinity: service
            .client_ip_affinity_seconds
            .map(|seconds| std::time::Duration::from_secs(u64::from(seconds))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{Balance, Mode};
    use super::*;

    fn port(number: u16, node_port: Option<u16>, protocol: Protocol) -> ServicePort {
        ServicePort {
            name: String::new(),
            protocol,
            port: number,
            node_port,
            node_port_local_only: false,
            mode: Mode::Tcp,
            endpoints: Vec::new(),
        }
    }

    fn service(name: &str, cluster_ip: [u8; 4], ports: Vec<ServicePort>) -> Service {
        Service {
            namespace: "default".to_owned(),
            name: name.to_owned(),
            cluster_ip: cluster_ip.into(),
            client_ip_affinity_seconds: None,
            balance: Balance::RoundRobin,
            ports,
            pod: None,
        }
    }

    fn table(services: Vec<Service>) -> Table {
        Table {
            generation: 3,
            node: "n1".to_owned(),
            service_cidr: "10.96.0.0/12".to_owned(),
            dns_address: [10, 96, 0, 10].into(),
            cluster_domain: "cluster.local".to_owned(),
            services,
            ingress: Vec::new(),
            ingress_default_backend: None,
            ingress_certificates: Vec::new(),
        }
    }

    fn error(table: Table) -> String {
        error_on(table, 80)
    }

    fn ports(http: u16) -> IngressPorts {
        IngressPorts { http, https: 443 }
    }

    fn error_on(table: Table, ingress_port: u16) -> String {
        Served::new(table, "n1", ports(ingress_port), &mut BTreeMap::new())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_tcp_port_is_listened_on_at_its_virtual_address_and_node_port() {
        let web = service(
            "web",
            [10, 96, 0, 20],
            vec![
                port(80, Some(30080), Protocol::Tcp),
                port(53, None, Protocol::Udp),
            ],
        );
        let served = Served::new(table(vec![web]), "n1", ports(80), &mut BTreeMap::new()).unwrap();
        let mut addresses: Vec<String> = served.routes.keys().map(ToString::to_string).collect();
        addresses.sort();
        assert_eq!(addresses, ["0.0.0.0:30080", "10.96.0.20:80"]);
        assert_eq!(served.generation(), 3);
        let key = |port| ("default".to_owned(), "web".to_owned(), port);
        let cluster = served.service_route(&key(80)).unwrap();
        assert_eq!(served.port(cluster).1.port, 80);
        assert!(served.service_route(&key(30080)).is_none());
    }

    #[test]
    fn a_port_keeps_its_state_across_tables() {
        let mut states = BTreeMap::new();
        let web = || service("web", [10, 96, 0, 20], vec![port(80, None, Protocol::Tcp)]);
        let first = Served::new(table(vec![web()]), "n1", ports(80), &mut states).unwrap();
        let second = Served::new(table(vec![web()]), "n1", ports(80), &mut states).unwrap();
        let state = |served: &Served| Arc::clone(&served.routes.values().next().unwrap().state);
        assert!(Arc::ptr_eq(&state(&first), &state(&second)));
    }

    #[test]
    fn the_ingress_is_listened_on_only_with_a_route_or_a_default_backend() {
        use super::super::table::{IngressBackend, IngressRoute, PathType};
        let web = || service("web", [10, 96, 0, 20], vec![port(80, None, Protocol::Tcp)]);
        let backend = IngressBackend {
            namespace: "default".to_owned(),
            service: "web".to_owned(),
            port: 80,
        };
        let listened = |table: Table| {
            let served = Served::new(table, "n1", ports(8080), &mut BTreeMap::new()).unwrap();
            let mut addresses: Vec<String> =
                served.listen_addresses().map(|a| a.to_string()).collect();
            addresses.sort();
            addresses
        };
        assert_eq!(listened(table(vec![web()])), ["10.96.0.20:80"]);

        let mut routed = table(vec![web()]);
        routed.ingress.push(IngressRoute {
            host: Some("shop.example".to_owned()),
            path: "/".to_owned(),
            path_type: PathType::Prefix,
            backend: backend.clone(),
        });
        assert_eq!(listened(routed.clone()), ["0.0.0.0:8080", "10.96.0.20:80"]);
        let served = Served::new(routed, "n1", ports(8080), &mut BTreeMap::new()).unwrap();
        let ingress = served.ingress.as_ref().unwrap();
        assert_eq!(ingress.routes.route("shop.example", "/a"), Some(&backend));
        assert_eq!(ingress.routes.route("other.example", "/a"), None);
        assert_eq!(served.describe_address(ingress.listen), "the Ingress");

        let mut default_only = table(vec![web()]);
        default_only.ingress_default_backend = Some(backend);
        assert_eq!(
            listened(default_only.clone()),
            ["0.0.0.0:8080", "10.96.0.20:80"]
        );

        // A node port on the Ingress port: refused, naming both.
        let mut clash = default_only;
        clash.services[0].ports[0].node_port = Some(8080);
        assert_eq!(
            error_on(clash, 8080),
            "address 0.0.0.0:8080 is asked for twice: by service default/web port 80 and by the Ingress"
        );
    }

    #[test]
    fn the_ingress_is_served_over_https_with_certificates_each_checked() {
        use super::super::table::{IngressBackend, IngressCertificate, PrivateKeyPem};
        let pair = rcgen::generate_simple_self_signed(vec!["shop.example".to_owned()]).unwrap();
        let certificate = |secret: &str, key: String| IngressCertificate {
            secret: secret.to_owned(),
            hosts: vec!["shop.example".to_owned()],
            chain: pair.cert.pem(),
            key: PrivateKeyPem::new(key),
        };
        let mut with_tls = table(vec![service(
            "web",
            [10, 96, 0, 20],
            vec![port(80, None, Protocol::Tcp)],
        )]);
        with_tls.ingress_certificates =
            vec![certificate("shop/tls", pair.key_pair.serialize_pem())];
        let ingress_ports = IngressPorts {
            http: 8080,
            https: 8443,
        };
        let listened = |table: Table| {
            let served = Served::new(table, "n1", ingress_ports, &mut BTreeMap::new()).unwrap();
            let mut addresses: Vec<String> =
                served.listen_addresses().map(|a| a.to_string()).collect();
            addresses.sort();
            addresses
        };
        // Certificates without a route or default backend: nothing to serve.
        assert_eq!(listened(with_tls.clone()), ["10.96.0.20:80"]);
        with_tls.ingress_default_backend = Some(IngressBackend {
            namespace: "default".to_owned(),
            service: "web".to_owned(),
            port: 80,
        });
        assert_eq!(
            listened(with_tls.clone()),
            ["0.0.0.0:8080", "0.0.0.0:8443", "10.96.0.20:80"]
        );
        let served =
            Served::new(with_tls.clone(), "n1", ingress_ports, &mut BTreeMap::new()).unwrap();
        let https: SocketAddrV4 = "0.0.0.0:8443".parse().unwrap();
        assert!(served.https_config(https).is_some());
        assert!(served
            .https_config("0.0.0.0:8080".parse().unwrap())
            .is_none());
        assert_eq!(served.describe_address(https), "the Ingress's HTTPS");

        let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let mut bad = with_tls;
        bad.ingress_certificates
            .push(certificate("shop/other", other_key));
        let refused = Served::new(bad, "n1", ingress_ports, &mut BTreeMap::new()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the Ingress certificate of Secret shop/other: tls.key is not the key of the first \
             certificate of tls.crt"
        );
    }

    #[test]
    fn a_table_that_cannot_be_served_is_refused_with_the_reason() {
        assert_eq!(
            Served::new(table(vec![]), "n2", ports(80), &mut BTreeMap::new())
                .unwrap_err()
                .to_string(),
            "the table is for node \"n1\", this proxy serves node \"n2\""
        );
        let mut bad_cidr = table(vec![]);
        bad_cidr.service_cidr = "10.96.0.0".to_owned();
        assert_eq!(
            error(bad_cidr),
            "service CIDR \"10.96.0.0\": expected ADDRESS/PREFIX, e.g. 10.96.0.0/12"
        );
        let outside = service("web", [10, 112, 0, 1], vec![]);
        assert_eq!(
            error(table(vec![outside])),
            "service default/web: cluster IP 10.112.0.1 is outside the service CIDR 10.96.0.0/12"
        );
        let twice = table(vec![
            service(
                "api",
                [10, 96, 0, 21],
                vec![port(80, Some(30080), Protocol::Tcp)],
            ),
            service(
                "web",
                [10, 96, 0, 20],
                vec![port(80, Some(30080), Protocol::Tcp)],
            ),
        ]);
        assert_eq!(
            error(twice),
            "address 0.0.0.0:30080 is asked for twice: by service default/api port 80 and by service default/web port 80"
        );
    }
}
