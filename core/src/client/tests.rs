//! Tests of the client machine: scripts of inputs with their exact outputs,
//! every command in every mode, replies split anywhere, server errors and
//! lost connections, and property runs over random inputs.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use proptest::prelude::*;

use super::*;
use core::net::Ipv4Addr;

use crate::limits::{
    CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, MAX_DATAGRAM, MAX_LINE, OWN_ECHO_WINDOW, REPLY_TIMEOUT,
};
use crate::wire::LineBuf;

const GREETING: &[u8] = b"OK CRDP/1 roomcast directory server ready\n";

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

fn server(c: &mut Client, now: u64, bytes: &[u8]) -> Vec<Output> {
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

/// A client connected to localhost:5577.
fn connected() -> Client {
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
    let out = server(&mut c, 3, GREETING);
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

/// A connected client in room lobby (239.1.1.1 port 5000).
fn in_chat() -> Client {
    let mut c = connected();
    let out = user(&mut c, 10, "chat lobby");
    assert_eq!(actions(&out), [line("getdir\n")]);
    let out = server(
        &mut c,
        11,
        b"OK 2 rooms\nLobby 239.1.1.1 5000\nother 239.1.1.2 5000\n.\n",
    );
    assert_eq!(
        actions(&out),
        [
            Output::JoinGroup {
                group: Ipv4Addr::new(239, 1, 1, 1),
                port: 5000
            },
            Output::Prompt(chat_prompt("Lobby", "Mel")),
        ]
    );
    assert!(
        all_shown(&out).starts_with("Entering chat room Lobby (239.1.1.1 port 5000) as Mel.\n")
    );
    assert_eq!(c.mode(), Mode::Chat);
    c
}

mod chat;
mod commands;
mod golden;
mod names;
mod properties;
mod replies;
