//! `flotilla-proxy`: the node proxy (src/proxy/). `run` is the daemon the
//! `flotilla-proxy` container runs on every node; `ctl` passes one JSON
//! request line from stdin to the daemon's control socket and prints the
//! answer line (the leader runs it through Docker exec); `pause` is a pod
//! sandbox's process: it holds the pod's namespaces and waits for SIGTERM or
//! SIGINT, then exits 0.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flotilla::proxy::table::{self, Response};
use flotilla::proxy::{control, daemon};

#[derive(Parser)]
#[command(name = "flotilla-proxy", version, about = "flotilla's node proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Services of this node's table until SIGTERM.
    Run {
        /// The node this proxy runs on (a table for another is refused).
        #[arg(long)]
        node: String,
        /// Where the last acknowledged table is kept.
        #[arg(long, default_value = table::STATE_DIRECTORY)]
        state_dir: PathBuf,
        #[arg(long, default_value = table::CONTROL_SOCKET)]
        control_socket: PathBuf,
        /// Leave routing the service CIDR to the host (no NET_ADMIN needed).
        #[arg(long)]
        no_route: bool,
        /// The port other nodes' proxies connect to.
        #[arg(long, default_value_t = table::TUNNEL_PORT)]
        tunnel_port: u16,
        /// The DNS server's port, on the table's DNS address.
        #[arg(long, default_value_t = 53)]
        dns_port: u16,
        /// The Ingress's port, on every address of the node (when the
        /// table has Ingress routes).
        #[arg(long, default_value_t = 80)]
        ingress_port: u16,
        /// The Ingress's HTTPS port, on every address of the node (when the
        /// table has certificates).
        #[arg(long, default_value_t = 443)]
        ingress_tls_port: u16,
    },
    /// Hold a pod's sandbox: wait for SIGTERM or SIGINT, exit 0.
    Pause,
    /// Send one JSON request line from stdin to the daemon; print the answer.
    Ctl {
        #[arg(long, default_value = table::CONTROL_SOCKET)]
        control_socket: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("starting the runtime: {error}")),
    };
    match cli.command {
        Command::Run {
            node,
            state_dir,
            control_socket,
            no_route,
            tunnel_port,
            dns_port,
            ingress_port,
            ingress_tls_port,
        } => {
            let options = daemon::Options {
                node,
                state_directory: state_dir,
                control_socket,
                route: !no_route,
                tunnel_port,
                dns_port,
                ingress_port,
                ingress_tls_port,
            };
            match runtime.block_on(daemon::run(options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error.to_string()),
            }
        }
        Command::Pause => match runtime.block_on(pause()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&format!("waiting for a signal: {error}")),
        },
        Command::Ctl { control_socket } => {
            let mut request = String::new();
            if let Err(error) = std::io::stdin().lock().read_line(&mut request) {
                return fail(&format!("reading the request from stdin: {error}"));
            }
            if request.trim().is_empty() {
                return fail("no request on stdin (one JSON Request line expected)");
            }
            let answer = match runtime.block_on(control::send_line(&control_socket, &request)) {
                Ok(answer) => answer,
                Err(error) => return fail(&error.to_string()),
            };
            println!("{answer}");
            match serde_json::from_str::<Response>(&answer) {
                Ok(Response::Applied { .. } | Response::Status(_)) => ExitCode::SUCCESS,
                Ok(Response::Error { message }) => fail(&message),
                Err(error) => fail(&format!("the proxy's answer is not a Response: {error}")),
            }
        }
    }
}

/// Returns at the first SIGTERM or SIGINT. As PID 1 of its container, the
/// process gets no default action for them: without handlers it could not
/// be stopped but by SIGKILL.
async fn pause() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
