//! The client never makes its user wait on a server: a directory server
//! that trickles its listing (one row every 8 s) cannot keep `quit` or
//! Ctrl-D from working at once, and a chat room whose group cannot be
//! joined is not announced as entered.

mod client_common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use client_common::ClientProcess;
use client_common::tmux::Tmux;
use roomcast_tests::{ServerProcess, WAIT, netns, roomcast_bin};

/// How often the hostile server sends a row: within the client's 10 s
/// first-line timeout every time.
const ROW_EVERY: Duration = Duration::from_secs(8);

/// A hostile directory server on a local port: it greets, waits for
/// `getdir`, then sends a listing of 4,096 rooms one row every
/// [`ROW_EVERY`], until the client closes. The receiver hears once the
/// first row is out.
fn trickling_server() -> (u16, Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (first_row, heard) = mpsc::channel();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .write_all(b"OK CRDP/1 trickling test server ready\n")
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while !line.starts_with("getdir") {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
        }
        // A `getdir full` listing's rows end with the room's kind.
        let kind = if line == "getdir full\n" { " open" } else { "" };
        let _ = stream.write_all(b"OK 4096 rooms\n");
        stream.set_read_timeout(Some(ROW_EVERY)).unwrap();
        let mut buf = [0; 256];
        for i in 0..4096 {
            let row = format!("room{i:04} 239.1.{}.{} 5000{kind}\n", i / 256, i % 256);
            if stream.write_all(row.as_bytes()).is_err() {
                return;
            }
            if i == 0 {
                let _ = first_row.send(());
            }
            // Wait a row's time, or stop when the client closes.
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    });
    (port, heard)
}

#[test]
fn quit_exits_at_once_while_a_listing_trickles_in() {
    let (port, first_row) = trickling_server();
    let mut client = ClientProcess::start("c", port, &[]);
    client.run("connect", "Connected to the directory server");
    client.send("getdir");
    first_row.recv_timeout(WAIT).expect("the listing started");
    // The listing would take 9 hours, and the client bounds it at 30 s;
    // quit must not wait for either.
    client.send("quit");
    client.expect("Goodbye.");
    assert_eq!(client.wait_exit(), Some(0));
}

#[test]
fn ctrl_d_exits_at_once_while_a_listing_trickles_in() {
    let (port, first_row) = trickling_server();
    let command = format!(
        "{} client --server 127.0.0.1:{port} --name Alice",
        roomcast_bin().display()
    );
    let tmux = Tmux::start(&command);
    tmux.wait_last_line("roomcast>");
    tmux.type_text("connect");
    tmux.press("Enter");
    let connected = format!("roomcast [127.0.0.1:{port}]>");
    tmux.wait_last_line(&connected);
    tmux.type_text("getdir");
    tmux.press("Enter");
    first_row.recv_timeout(WAIT).expect("the listing started");
    // While the listing trickles, the prompt comes back for input.
    tmux.wait_last_line(&connected);
    tmux.press("C-d");
    tmux.wait_gone();
}

#[test]
fn a_room_that_cannot_be_joined_is_not_entered() {
    netns::isolated(a_room_that_cannot_be_joined_is_not_entered_inside);
}

fn a_room_that_cannot_be_joined_is_not_entered_inside() {
    let server = ServerProcess::start(&[]);
    let mut crdp = server.connect();
    assert!(
        crdp.ask("makeroom lobby 239.77.3.1 47301")
            .starts_with("OK")
    );
    drop(crdp);
    let addr = format!("127.0.0.1:{}", server.port);
    // No interface here has this address: the join fails.
    let mut client =
        ClientProcess::start_with("c", &[], &["--server", &addr, "--iface", "10.9.9.9"]);
    // Typed at once, before the join's result: "hello" waits for it.
    client.send_bytes(b"chat lobby\nhello\n");
    let line = client.expect("Could not join chat room lobby (239.77.3.1 port 47301)");
    assert!(line.contains("you are not in the room"), "{line}");
    client.expect("'hello' is not a command.");
    let all = client.stdout.all();
    assert!(
        !all.iter().any(|l| l.contains("Entering chat room")),
        "{all:#?}"
    );
    client.send("quit");
    client.expect("Goodbye.");
    assert_eq!(client.wait_exit(), Some(0));
}
