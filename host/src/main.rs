//! `roomcast`: the chat room directory server and the terminal chat client.
//!
//! This file is the command line and nothing else; `server.rs` and
//! `client.rs` drive the protocol machines of `roomcast-core` over real
//! sockets.

mod bench;
mod client;
mod discovery;
mod log;
mod server;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Client(args) => client::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("roomcast: {message}");
            ExitCode::FAILURE
        }
    }
}
