//! `dsb`: a host node and command-line tool that joins a DSoftBus-lite bus
//! from a workstation. It runs the image's own node runtime (discovery,
//! Noise XK sessions with identity binding, the multiplexer, the bus API)
//! as one more node with its own identity, either over a userspace smoltcp
//! stack attached to the segment switch of `make run VMS=N`, or (`--lan`)
//! over the operating system's UDP and TCP sockets on a real LAN.

mod cmd;
mod device;
mod error;
mod host;
mod segment;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use error::{Failure, Result, EXIT_CODES};
use host::{Host, HostOptions};

#[derive(Parser)]
#[command(
    name = "dsb",
    version,
    about = "Join a DSoftBus-lite bus from a workstation: list peers, ping, call services, move blobs, serve",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Where to attach: `auto` (the segment a running `make run VMS=N` describes)
    /// or `unix:<path>` (a switch port).
    #[arg(long, global = true, default_value = "auto", value_name = "ADDR")]
    segment: String,
    /// Identity file (`dsb keygen`). Default: the workstation identity of the
    /// segment, else a fresh one for this run (peers with `tofu=off` refuse it).
    #[arg(long, global = true, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Our address on the segment (`a.b.c.d/prefix`). Default: 10.0.2.(200 + k)/24 on spare port k.
    #[arg(long, global = true, value_name = "CIDR")]
    ip: Option<String>,
    /// Join the real LAN through the operating system's sockets instead of
    /// a segment (discovery on multicast 239.42.0.1:37020).
    #[arg(long, global = true)]
    lan: bool,
    /// With --lan: the local address to use (default: the default route's).
    #[arg(long, global = true, value_name = "IP")]
    bind: Option<std::net::Ipv4Addr>,
    /// Our TCP session port.
    #[arg(long, global = true, default_value_t = 37021, value_name = "PORT")]
    tcp_port: u16,
    /// Our udp-sec port.
    #[arg(long, global = true, default_value_t = 37031, value_name = "PORT")]
    udpsec_port: u16,
    /// Seconds to wait for a peer, a session, an answer or transfer progress.
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECS")]
    timeout: f64,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the devices on the bus: id, address, transports, services, key, last seen.
    #[command(after_help = "Example: dsb peers --json")]
    Peers {
        /// Keep listening and reprint every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Seconds to listen for announces before printing.
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        wait: f64,
    },
    /// Round trips through a peer's `ping` echo over an authenticated session.
    #[command(after_help = "Example: dsb ping node-1 -c 5")]
    Ping {
        /// The peer's device id.
        peer: String,
        /// Number of round trips.
        #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        count: u32,
        /// Milliseconds between round trips.
        #[arg(short = 'i', long, default_value_t = 200, value_name = "MS")]
        interval: u64,
    },
    /// One request/response with a peer's service (JSON for `sd`; text or --hex otherwise).
    #[command(
        after_help = "Examples: dsb call node-1 sd\n          dsb call node-1 sd '\"List\"'\n          dsb call node-2 echo --hex 00ff"
    )]
    Call {
        peer: String,
        service: String,
        /// The request (`sd`: JSON, default "List").
        request: Option<String>,
        /// The request is hex.
        #[arg(long)]
        hex: bool,
    },
    /// Upload a file into a peer's blob store (hash-checked by the peer).
    #[command(after_help = "Example: dsb put node-1 firmware.bin")]
    Put {
        peer: String,
        file: PathBuf,
        /// Blob name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Download a blob from a peer's store (hash-checked before writing).
    #[command(after_help = "Example: dsb get node-1 firmware.bin -o /tmp/fw.bin")]
    Get {
        peer: String,
        name: String,
        /// Where to write it (default: ./<name>; `-`: stdout).
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Refuse blobs larger than this many bytes (at most 64 MiB).
        #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
        max: u64,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Serve from this workstation until Ctrl-C: ping, sd, blob and --publish'ed RPC echo services.
    #[command(
        after_help = "Example: dsb serve --allow 'ping=*' --allow 'sd=*' --allow blob=node-1 --publish echo --allow 'echo=*'"
    )]
    Serve {
        /// Publish a service this node serves as an RPC echo (answers each request with its body).
        #[arg(long, value_name = "SVC")]
        publish: Vec<String>,
        /// Who may use a service: `<svc>=<id>` or `<svc>=*` (deny by default;
        /// without any: ping and sd to everyone).
        #[arg(long, value_name = "SVC=WHO")]
        allow: Vec<String>,
    },
    /// Create an identity file (mode 0600); prints the public key, never the secret.
    #[command(after_help = "Example: dsb keygen -o ~/.dsb.identity --id my-laptop")]
    Keygen {
        /// The file to create.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
        /// The device id.
        #[arg(long, default_value = "workstation")]
        id: String,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    if s.is_finite() && (0.0..=86_400.0).contains(&s) {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(Failure::usage(format!(
            "{what}: expected 0..=86400 seconds"
        )))
    }
}

/// Checks the arguments, then attaches and runs the command.
fn run(cli: Cli) -> Result<()> {
    host::catch_signals();
    let timeout = seconds(cli.timeout, "--timeout")?;
    if let Cmd::Keygen { output, id, force } = &cli.cmd {
        return cmd::keygen::run(output, id, *force);
    }
    // Arguments first: a usage error is a usage error whatever is running.
    let ip = cli.ip.as_deref().map(host::parse_ip).transpose()?;
    if let Cmd::Ping { peer, .. }
    | Cmd::Call { peer, .. }
    | Cmd::Put { peer, .. }
    | Cmd::Get { peer, .. } = &cli.cmd
    {
        host::device_id(peer)?;
    }
    if let Cmd::Peers { wait, .. } = &cli.cmd {
        seconds(*wait, "--wait")?;
    }
    let opts = HostOptions {
        identity: cli.identity.clone(),
        ip,
        bind: cli
            .bind
            .map(|a| smoltcp::wire::Ipv4Address::from(a.octets())),
        tcp_port: cli.tcp_port,
        udpsec_port: cli.udpsec_port,
    };
    if cli.lan {
        command(&cli, Host::lan(&opts)?, timeout)
    } else {
        let seg = segment::resolve(&cli.segment)?;
        command(&cli, Host::segment(&seg, &opts)?, timeout)
    }
}

fn command<N: host::Link>(cli: &Cli, mut h: Host<N>, timeout: Duration) -> Result<()> {
    let r = dispatch(cli, &mut h, timeout);
    h.leave();
    r
}

fn dispatch<N: host::Link>(cli: &Cli, h: &mut Host<N>, timeout: Duration) -> Result<()> {
    let json = cli.json;
    match &cli.cmd {
        Cmd::Keygen { .. } => Ok(()),
        Cmd::Peers { watch, wait } => cmd::peers::run(h, seconds(*wait, "--wait")?, *watch, json),
        Cmd::Ping {
            peer,
            count,
            interval,
        } => cmd::ping::run(
            h,
            peer,
            *count,
            Duration::from_millis(*interval),
            timeout,
            json,
        ),
        Cmd::Call {
            peer,
            service,
            request,
            hex,
        } => cmd::call::run(h, peer, service, request.as_deref(), *hex, timeout),
        Cmd::Put { peer, file, name } => {
            cmd::blob::put(h, peer, file, name.as_deref(), timeout, json)
        }
        Cmd::Get {
            peer,
            name,
            output,
            max,
            force,
        } => cmd::blob::get(
            h,
            peer,
            name,
            output.as_deref(),
            *max,
            *force,
            timeout,
            json,
        ),
        Cmd::Serve { publish, allow } => cmd::serve::run(h, publish, allow, json),
    }
}

fn main() -> ExitCode {
    // Usage errors (and --help / --version) are clap's: exit 2 (0 for help).
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("dsb: {f}");
            f.exit_code()
        }
    }
}
