//! Tests of the client machine: scripts of inputs with their exact outputs,
//! every command in every mode, replies split anywhere, server errors and
//! lost connections, and property runs over random inputs.
//!
//! Where a server answers, it is the real [`Server`](crate::Server) machine
//! in the simulated network of [`crate::sim`] (`pair*` helpers). A scripted
//! server (`hostile*` helpers, `hostile_sends`) stands in only for what the
//! real one never does: garbage, refusals, silence, trickled rows. Its
//! greeting is the real server's, taken from the server machine.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use proptest::prelude::*;

use super::*;
use core::net::Ipv4Addr;
use core::time::Duration;

use crate::directory::Directory;
use crate::limits::{
    CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, MAX_DATAGRAM, MAX_LINE, OWN_ECHO_WINDOW, REPLY_TIMEOUT,
};
use crate::server::ServerConfig;
use crate::sim::{Input, Net, ServerNode};
use crate::wire::LineBuf;

/// Where the real server listens in the simulated network.
const SERVER: &str = "localhost:5577";

/// The real server's greeting, as its machine sends it.
fn real_greeting() -> Vec<u8> {
    ServerNode::greeting()
}

fn t(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

fn config() -> ClientConfig {
    ClientConfig::new(
        parse_server_addr("localhost", 5577).unwrap(),
        5577,
        ChatName::new("Mel").unwrap(),
    )
}

fn drain(c: &mut Client) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(o) = c.poll_output() {
        out.push(o);
        assert!(out.len() < 100_000, "poll_output never ends");
    }
    out
}

/// What the outputs showed, one string per message.
fn shown(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Show(m) => Some(m.to_string()),
            _ => None,
        })
        .collect()
}

fn all_shown(outputs: &[Output]) -> String {
    shown(outputs).join("\n")
}

fn line(s: &str) -> Output {
    Output::SendLine(LineBuf::try_from(s).unwrap())
}

fn prompts(outputs: &[Output]) -> Vec<Prompt> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Prompt(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// The outputs that are not messages for the user.
fn actions(outputs: &[Output]) -> Vec<Output> {
    outputs
        .iter()
        .filter(|o| !matches!(o, Output::Show(_)))
        .cloned()
        .collect()
}

fn addr(s: &str) -> ServerAddr {
    ServerAddr::try_from(s).unwrap()
}

fn connected_prompt() -> Prompt {
    Prompt::Connected {
        server: addr("localhost:5577"),
    }
}

fn chat_prompt(room: &str, name: &str) -> Prompt {
    Prompt::Chat {
        room: RoomName::try_from(room).unwrap(),
        name: ChatName::new(name).unwrap(),
    }
}

/// A client whose greeting was drained.
fn fresh() -> Client {
    let mut c = Client::new(config(), t(0));
    let out = drain(&mut c);
    assert!(all_shown(&out).contains("your chat name is Mel"));
    assert_eq!(prompts(&out), [Prompt::Main]);
    c
}

fn user(c: &mut Client, now: u64, text: &str) -> Vec<Output> {
    c.handle_user_line(t(now), text.as_bytes());
    drain(c)
}

/// A scripted, hostile server sends `bytes` (for what the real server
/// never does); returns the client's outputs.
fn hostile_sends(c: &mut Client, now: u64, bytes: &[u8]) -> Vec<Output> {
    let mut taken = 0;
    let mut out = Vec::new();
    while taken < bytes.len() {
        let n = c.handle_server_bytes(t(now), &bytes[taken..]);
        taken += n;
        out.extend(drain(c));
        assert!(n > 0 || c.recv_capacity() > 0, "stuck");
    }
    out
}

/// A client connected to a scripted server at localhost:5577, greeted with
/// the real greeting.
fn hostile_connected() -> Client {
    let mut c = fresh();
    let out = user(&mut c, 1, "connect");
    assert_eq!(
        actions(&out),
        [Output::Connect {
            server: addr("localhost:5577")
        }]
    );
    assert!(!c.ready_for_input());
    c.handle_connected(t(2));
    assert!(drain(&mut c).is_empty());
    let out = hostile_sends(&mut c, 3, &real_greeting());
    assert_eq!(
        all_shown(&out),
        "Connected to the directory server at localhost:5577. Type 'help' for its commands, \
         'bye' to disconnect."
    );
    assert_eq!(prompts(&out), [connected_prompt()]);
    assert!(c.ready_for_input());
    assert_eq!(c.mode(), Mode::Connected);
    c
}

/// The room the `pair` helpers' server holds first.
fn lobby() -> Room {
    Room {
        name: RoomName::try_from("Lobby").unwrap(),
        group: Ipv4Addr::new(239, 1, 1, 1).into(),
        port: 5000,
    }
}

/// A network: the real server at [`SERVER`] holding `rooms`, and client 0
/// (Mel, configured for that server), its greeting checked and drained.
fn pair_with(seed: u64, rooms: &[Room]) -> (Net, usize) {
    let mut directory = Directory::new();
    for room in rooms {
        directory.insert(room.clone()).unwrap();
    }
    let mut net = Net::new(seed);
    net.add_server(SERVER, ServerConfig::default(), directory);
    let c = net.add_client(config());
    let out = net.since(c, 0);
    assert!(all_shown(&out).contains("your chat name is Mel"));
    assert_eq!(prompts(&out), [Prompt::Main]);
    (net, c)
}

/// [`pair_with`] the room [`lobby`] and another.
fn pair() -> (Net, usize) {
    let other = Room {
        name: RoomName::try_from("other").unwrap(),
        group: Ipv4Addr::new(239, 1, 1, 2).into(),
        port: 5000,
    };
    pair_with(1, &[lobby(), other])
}

/// The user of client `c` types `line`; the network runs until quiet.
/// Returns what the client put out meanwhile.
fn say(net: &mut Net, c: usize, line: &str) -> Vec<Output> {
    let mark = net.mark(c);
    net.type_line(c, line);
    net.run_until_idle();
    net.since(c, mark)
}

/// Client `c` does `input`; the network runs until quiet.
fn act(net: &mut Net, c: usize, input: Input) -> Vec<Output> {
    let mark = net.mark(c);
    net.input(c, input);
    net.run_until_idle();
    net.since(c, mark)
}

/// [`pair`], with Mel connected to the real server.
fn pair_connected() -> (Net, usize) {
    let (mut net, c) = pair();
    let out = say(&mut net, c, "connect");
    assert_eq!(
        actions(&out),
        [
            Output::Connect {
                server: addr(SERVER)
            },
            Output::Prompt(connected_prompt())
        ]
    );
    assert_eq!(
        all_shown(&out),
        "Connecting to localhost:5577...\nConnected to the directory server at localhost:5577. \
         Type 'help' for its commands, 'bye' to disconnect."
    );
    assert!(net.client(c).ready_for_input());
    assert_eq!(net.client(c).mode(), Mode::Connected);
    (net, c)
}

/// [`pair_connected`], with Mel in room Lobby (239.1.1.1 port 5000).
fn pair_in_chat() -> (Net, usize) {
    let (mut net, c) = pair_connected();
    let out = say(&mut net, c, "chat lobby");
    assert_eq!(
        actions(&out),
        [
            line("getroom lobby\n"),
            Output::JoinGroup {
                group: Ipv4Addr::new(239, 1, 1, 1).into(),
                port: 5000
            },
            Output::Prompt(chat_prompt("Lobby", "Mel")),
        ]
    );
    assert!(
        all_shown(&out).starts_with("Entering chat room Lobby (239.1.1.1 port 5000) as Mel.\n")
    );
    assert_eq!(net.client(c).mode(), Mode::Chat);
    (net, c)
}

/// A client in room Lobby (reached through the real server), taken out of
/// the network at a time before `t(20)`: for tests of what it does alone.
fn in_chat() -> Client {
    let (net, c) = pair_in_chat();
    assert!(net.now() < t(20));
    net.into_client(c)
}

mod chat;
mod commands;
mod golden;
mod names;
mod private;
mod properties;
mod replies;
mod room;
