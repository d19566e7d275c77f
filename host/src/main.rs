//! `roomcast`: the chat room directory server and the terminal chat client.
//!
//! This file is the command line and nothing else; `server.rs` and
//! `client.rs` drive the protocol machines of `roomcast-core` over real
//! sockets.

mod bench;
mod client;
mod discovery;
mod log;
mod owners;
mod platform;
mod server;
mod state;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// The TCP port the directory server listens on unless told otherwise, and
/// the one the client connects to.
pub const DEFAULT_PORT: u16 = 5577;

/// Multi-room LAN chat: a chat room directory server and a terminal client.
#[derive(Debug, Parser)]
#[command(name = "roomcast", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Chat Room Directory Server (CRDS).
    Server(server::ServerArgs),
    /// Run the terminal chat client.
    Client(client::ClientArgs),
    /// Measure a directory server (or redis-server) under load, and chat
    /// over multicast on loopback.
    Bench(bench::BenchArgs),
    /// Print shell completions for roomcast, to load in your shell's startup
    /// file (for bash: `source <(roomcast completions bash)`).
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
    /// Print a manual page in roff, for `man -l -` or to install under
    /// `man1/` (for example `roomcast man server | man -l -`).
    Man {
        /// The command whose page to print: roomcast itself when left out.
        #[arg(value_enum)]
        page: Option<ManPage>,
    },
}

/// The commands that have a manual page of their own besides `roomcast`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ManPage {
    Server,
    Client,
    Bench,
}

impl ManPage {
    /// The command's name and its page's, `roomcast-server(1)` as git
    /// names its pages.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            ManPage::Server => ("server", "roomcast-server"),
            ManPage::Client => ("client", "roomcast-client"),
            ManPage::Bench => ("bench", "roomcast-bench"),
        }
    }
}

/// Writes the completions for `shell` to stdout. Both this and [`man`] are
/// generated from the clap definitions, so they follow every option by
/// construction.
fn completions(shell: Shell) -> Result<(), String> {
    let mut cli = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli, "roomcast", &mut out);
    write_stdout(&out)
}

/// Writes the manual page of `roomcast` or of one of its commands to stdout.
fn man(page: Option<ManPage>) -> Result<(), String> {
    let mut cli = Cli::command();
    cli.build();
    let cmd = match page {
        None => cli,
        Some(page) => {
            let (command, title) = page.names();
            let sub = cli
                .find_subcommand(command)
                .cloned()
                .ok_or_else(|| format!("no command named {command}"))?;
            sub.name(title)
                .bin_name(title)
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(|e| format!("cannot render the manual page: {e}"))?;
    write_stdout(&out)
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to standard output: {e}")),
    }
}

/// The stack of the thread that does the work (see `main`).
const MAIN_STACK: usize = 32 * 1024 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The core's machines keep their state in fixed-size buffers (the
    // directory server's is over 1.5 MiB), and building one can hold a copy
    // or two on the stack before it reaches its Box. A main thread gets
    // 1 MiB on Windows and 8 MiB on Linux; the work runs on a thread with a
    // stack of its own size instead, the same on every system.
    let work = std::thread::Builder::new()
        .name("roomcast".into())
        .stack_size(MAIN_STACK)
        .spawn(move || match cli.command {
            Command::Server(args) => server::run(args),
            Command::Client(args) => client::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Completions { shell } => completions(shell),
            Command::Man { page } => man(page),
        });
    let result = match work {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err("stopped by an internal error (reported above)".into())),
        Err(e) => Err(format!("could not start: {e}")),
    };
    // What the server logged is written before it exits (within a bound:
    // a stdout nobody reads does not hold the exit up).
    log::finish();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Not eprintln!, which panics when stderr is a closed pipe.
            let _ = writeln!(std::io::stderr(), "roomcast: {message}");
            ExitCode::FAILURE
        }
    }
}
