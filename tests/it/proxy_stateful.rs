//! A StatefulSet pod's stable name through the real node proxies on the
//! testbed (real sshd and dockerd): the proxy image shipped and started by
//! the node runtime as the leader does, a table with the Service `web` and
//! the entries of its pods `web-0` (on n1) and `web-1` (on n2) applied to
//! both proxies, and a client container on n1 that uses the proxy as its
//! resolver with Kubernetes' search path. `web-0.web` resolves to its own
//! virtual address and reaches only `web-0`; `web-1.web` reaches only
//! `web-1`, through n2's tunnel; `web` still reaches both.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use flotilla::node::{NodeOps, Nodes, ProxyImage};
use flotilla::proxy::table::{
    Balance, Endpoint, Mode, PodName, Protocol, Request, Response, Service, ServicePort, Table,
    TUNNEL_PORT,
};

use crate::common::{exclusive_cluster_async, TestCluster};

const PROXY: &str = env!("CARGO_BIN_EXE_flotilla-proxy");

const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 77, 1);
const WEB_0_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 77, 10);
const WEB_1_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 77, 11);

/// The pods (node, hostname), each an httpd answering its hostname.
const PODS: [(&str, &str); 2] = [("n1", "web-0"), ("n2", "web-1")];

fn container_name(hostname: &str) -> String {
    format!("stateful-dns-{hostname}")
}

/// Removes the test's containers, and the proxies with their kept tables
/// (so no later test finds this one's table), passed or failed.
struct CleanUp<'a>(&'a TestCluster);

impl Drop for CleanUp<'_> {
    fn drop(&mut self) {
        for (node, hostname) in PODS {
            let _ = self
                .0
                .try_docker(node, &["rm", "-f", &container_name(hostname)]);
        }
        for node in ["n1", "n2"] {
            let _ = self.0.try_docker(node, &["rm", "-f", "flotilla-proxy"]);
            let _ = self
                .0
                .try_docker(node, &["volume", "rm", "-f", "flotilla-proxy-state"]);
        }
    }
}

/// `node`'s table: the Service and each pod's entry, local pods direct and
/// the other node's through its tunnel.
fn table(
    generation: u64,
    node: &str,
    pods: &[(String, Ipv4Addr)],
    tunnels: &[(String, Ipv4Addr)],
) -> Table {
    let endpoint = |index: usize| {
        let (pod_node, hostname) = PODS[index];
        let tunnel = tunnels.iter().find(|(n, _)| n == pod_node).unwrap().1;
        Endpoint {
            node: pod_node.to_string(),
            pod: container_name(hostname),
            target: SocketAddrV4::new(pods[index].1, 8080),
            via: (pod_node != node).then(|| SocketAddrV4::new(tunnel, TUNNEL_PORT)),
        }
    };
    let entry =
        |name: String, ip: Ipv4Addr, endpoints: Vec<Endpoint>, pod: Option<PodName>| Service {
            namespace: "default".to_string(),
            name,
            cluster_ip: ip,
            client_ip_affinity_seconds: None,
            balance: Balance::RoundRobin,
            ports: vec![ServicePort {
                name: "http".to_string(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: None,
                node_port_local_only: false,
                mode: Mode::Tcp,
                endpoints,
            }],
            pod,
        };
    let pod_entry = |index: usize, ip: Ipv4Addr| {
        let hostname = PODS[index].1;
        entry(
            Service::pod_entry_name(hostname, "web"),
            ip,
            vec![endpoint(index)],
            Some(PodName {
                hostname: hostname.to_string(),
                service: "web".to_string(),
            }),
        )
    };
    Table {
        generation,
        node: node.to_string(),
        service_cidr: "10.96.0.0/12".to_string(),
        dns_address: Ipv4Addr::new(10, 96, 0, 10),
        cluster_domain: "cluster.local".to_string(),
        services: vec![
            entry(
                "web".to_string(),
                SERVICE_IP,
                vec![endpoint(0), endpoint(1)],
                None,
            ),
            pod_entry(0, WEB_0_IP),
            pod_entry(1, WEB_1_IP),
        ],
        ingress: Vec::new(),
        ingress_default_backend: None,
        ingress_certificates: Vec::new(),
    }
}

/// What each `wget` of `url` printed, `times` times, from a container on
/// n1 that resolves through the proxy as a pod of namespace `default` does.
fn fetch_from_client(cluster: &TestCluster, url: &str, times: u32) -> Vec<String> {
    let script = format!("for i in $(seq {times}); do echo '--'; wget -O- {url} 2>&1; done");
    let output = cluster.docker(
        "n1",
        &[
            "run",
            "--rm",
            "--dns",
            "10.96.0.10",
            "--dns-search",
            "default.svc.cluster.local",
            "--dns-search",
            "svc.cluster.local",
            "--dns-search",
            "cluster.local",
            "--dns-opt",
            "ndots:5",
            &cluster.image(),
            "sh",
            "-c",
            &script,
        ],
    );
    output
        .split("--\n")
        .filter(|answer| !answer.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stateful_pod_s_name_resolves_in_a_container_and_reaches_that_pod_alone() {
    let cluster = exclusive_cluster_async().await;
    let _clean_up = CleanUp(&cluster);
    let nodes = Nodes::new(cluster.ssh_options());
    let image = ProxyImage::build(Path::new(PROXY)).expect("the proxy image is made");
    let mut tunnels = Vec::new();
    let mut pods = Vec::new();
    for (node, hostname) in PODS {
        nodes
            .observe(&cluster.node(node))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        nodes
            .ensure_proxy(node, &image)
            .await
            .unwrap_or_else(|e| panic!("{node}: {}", e.message));
        tunnels.push((
            node.to_string(),
            cluster.address(node).parse::<Ipv4Addr>().unwrap(),
        ));
        let name = container_name(hostname);
        let _ = cluster.try_docker(node, &["rm", "-f", &name]);
        cluster.docker(
            node,
            &[
                "run",
                "-d",
                "--name",
                &name,
                &cluster.image(),
                "sh",
                "-c",
                &format!("mkdir -p /tmp/www && echo {hostname} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"),
            ],
        );
        let address = cluster.docker(
            node,
            &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name],
        );
        pods.push((name, address.trim().parse::<Ipv4Addr>().unwrap()));
    }
    // Past any generation an earlier proxy on these nodes remembers.
    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (node, _) in PODS {
        let table = table(generation, node, &pods, &tunnels);
        // A proxy just started takes a moment to open its control socket.
        let mut answer = None;
        for _ in 0..50 {
            match nodes
                .proxy_request(node, &Request::Apply(table.clone()))
                .await
            {
                Ok(response) => {
                    answer = Some(response);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        assert_eq!(
            answer,
            Some(Response::Applied { generation }),
            "{node} applies its table"
        );
    }

    let web_0 = fetch_from_client(&cluster, "http://web-0.web/", 6);
    let web_1 = fetch_from_client(&cluster, "http://web-1.web.default/", 6);
    let web = fetch_from_client(&cluster, "http://web/", 8);
    let served_by = |answers: &[String], pod: &str| {
        answers
            .iter()
            .filter(|answer| answer.lines().any(|line| line == pod))
            .count()
    };
    assert_eq!(web_0.len(), 6, "{web_0:?}");
    for answer in &web_0 {
        assert!(
            answer.contains(&format!("Connecting to web-0.web ({WEB_0_IP}:80)")),
            "the name resolves to the pod's own address: {answer}"
        );
    }
    assert_eq!(served_by(&web_0, "web-0"), 6, "{web_0:?}");
    assert_eq!(served_by(&web_0, "web-1"), 0, "{web_0:?}");
    // The other node's pod, through its tunnel, by a longer name.
    for answer in &web_1 {
        assert!(
            answer.contains(&format!("Connecting to web-1.web.default ({WEB_1_IP}:80)")),
            "{answer}"
        );
    }
    assert_eq!(served_by(&web_1, "web-1"), 6, "{web_1:?}");
    // The Service's own address still balances over both.
    let (from_0, from_1) = (served_by(&web, "web-0"), served_by(&web, "web-1"));
    assert!(from_0 > 0 && from_1 > 0 && from_0 + from_1 == 8, "{web:?}");
    for answer in &web {
        assert!(answer.contains(&format!("({SERVICE_IP}:80)")), "{answer}");
    }
}
