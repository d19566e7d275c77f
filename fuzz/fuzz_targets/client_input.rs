//! Arbitrary input into the chat client's state machine, from every side at
//! once: what the user types, what the directory server sends, and the
//! datagrams a chat room delivers.
//!
//! Input layout: a sequence of records, each one byte saying what happens
//! and how many bytes it carries (bits 0-4: 0-31), then that many bytes:
//!
//! | bits 5-7 | event |
//! |---|---|
//! | 0 | the user types a line (the bytes) |
//! | 1 | the server sends the bytes (as much as the client takes) |
//! | 2 | a datagram arrives; by the first byte's low two bits: 0 the bytes repeated 40 times on the plain port from an unknown sender (so long ones occur), 1 or 2 the rest as a room-protocol frame on the control port from member address 1 or 2, 3 the rest on the plain port from address 1 |
//! | 3 | the connection the client asked for opens (or, if none, nothing) |
//! | 4 | the server closes the connection |
//! | 5 | Ctrl-] |
//! | 6 | time passes: the bytes' sum, in seconds, then a timeout |
//! | 7 | the connection attempt fails; else the group is joined (first byte odd) or joining it fails |
//!
//! The client speaks the room protocol (random bits given) when the input's
//! first byte is odd, and plain datagrams only otherwise.
//!
//! The host answers every `Output::DeriveKey` at once with the secret
//! [`SECRET`] (whose verifier, `WIJfw1JUh1xsxOiQQcwevw`, a `getroom` answer
//! in the seeds carries, so private rooms are entered too).
//!
//! Follows the drain rule after every call, and checks that nothing panics,
//! that what is shown to the user holds no control character but LF (so
//! the network cannot drive the terminal) and nothing the text rule hides
//! (so it cannot reorder or hide text), and that no deadline asked for is
//! in the past.
#![no_main]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use roomcast_core::chat::Channel;
use roomcast_core::privacy::RoomSecret;
use roomcast_core::{
    ChatName, Client, ClientConfig, ConnectFailure, Instant, Output, is_shown_as_is,
    parse_server_addr,
};

const PORT: u16 = 5577;

/// The secret the host derives from any passphrase, any salt.
const SECRET: [u8; 32] = [7; 32];

/// The host's wall clock at `Instant::ZERO` (Unix ms).
const WALL_MS: u64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let server = parse_server_addr("127.0.0.1", PORT).expect("a valid address");
    let name = ChatName::new("fuzz").expect("a valid name");
    let mut now = Instant::ZERO;
    let mut config = ClientConfig::new(server, PORT, name);
    if data.first().is_some_and(|b| b & 1 == 1) {
        config.random_seed = Some(0x5eed);
    }
    let mut client = Client::new(config, now);
    let mut connecting = false;
    drain(&mut client, now, &mut connecting);

    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head & 0x1f).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        match head >> 5 {
            0 => client.handle_user_line(now, bytes),
            1 => {
                let mut left = bytes;
                while !left.is_empty() {
                    let took = client.handle_server_bytes(now, left);
                    drain(&mut client, now, &mut connecting);
                    if took == 0 {
                        break;
                    }
                    left = &left[took..];
                }
            }
            2 => match bytes.split_first() {
                Some((&how, frame)) if how & 3 != 0 => {
                    let (channel, from) = match how & 3 {
                        1 => (Channel::Control, member(1)),
                        2 => (Channel::Control, member(2)),
                        _ => (Channel::Plain, member(1)),
                    };
                    client.handle_datagram_from(now, channel, from, frame);
                }
                _ => client.handle_datagram(now, &bytes.repeat(40)),
            },
            3 if connecting => {
                connecting = false;
                client.handle_connected(now);
            }
            3 => {}
            4 => client.handle_server_closed(now),
            5 => client.handle_leave_chat(now),
            6 => {
                let secs: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
                now = now + Duration::from_secs(secs);
                client.handle_timeout(now);
            }
            _ if connecting => {
                connecting = false;
                client.handle_connect_failed(now, ConnectFailure::Refused);
            }
            _ if bytes.first().is_some_and(|b| b & 1 == 1) => client.handle_joined(now),
            _ => client.handle_join_failed(now, "no such device"),
        }
        drain(&mut client, now, &mut connecting);
        if client.has_exited() {
            return;
        }
    }
});

/// The address member `n` sends from.
fn member(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 40000))
}

/// Drains the outputs and checks each.
fn drain(client: &mut Client, now: Instant, connecting: &mut bool) {
    let mut shown = String::new();
    let mut derive = false;
    loop {
        let Some(output) = client.poll_output() else {
            // A key asked for is answered once the drain is over, as a
            // host does.
            if !std::mem::take(&mut derive) {
                break;
            }
            let wall = WALL_MS + now.as_micros() / 1000;
            client.handle_room_secret(now, wall, Ok((RoomSecret(SECRET), [9; 16])));
            continue;
        };
        match output {
            Output::DeriveKey { .. } => derive = true,
            Output::Connect { .. } => *connecting = true,
            Output::Close => *connecting = false,
            Output::Show(message) => {
                shown.clear();
                let _ = write!(shown, "{message}");
                assert!(
                    !shown.chars().any(|c| c.is_control() && c != '\n'),
                    "a control character would reach the terminal: {shown:?}"
                );
                assert!(
                    shown.chars().all(|c| c == '\n' || is_shown_as_is(c)),
                    "a character that hides or reorders text would reach the \
                     terminal: {shown:?}"
                );
            }
            Output::Prompt(prompt) => {
                shown.clear();
                let _ = write!(shown, "{prompt}");
                assert!(
                    shown.chars().all(is_shown_as_is),
                    "a control or hiding character in the prompt: {shown:?}"
                );
            }
            _ => {}
        }
    }
    if let Some(at) = client.poll_timeout() {
        assert!(at >= now, "a deadline in the past: {at:?} < {now:?}");
    }
}
