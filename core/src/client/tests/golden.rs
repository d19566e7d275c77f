//! A golden transcript of the demonstration session.

use super::*;

use crate::privacy::Salt;

// ---- golden transcript ----

/// Renders a session as the user would see it (prompts and messages) with
/// the actions in brackets.
fn render(outputs: &[Output]) -> String {
    let mut s = String::new();
    for o in outputs {
        match o {
            Output::Show(m) => s.push_str(&format!("{m}\n")),
            Output::Prompt(p) => s.push_str(&format!("<prompt {p:?}>\n", p = p.to_string())),
            Output::SendLine(l) => s.push_str(&format!("[send {:?}]\n", l.as_str())),
            Output::Connect { server } => s.push_str(&format!("[connect {server}]\n")),
            Output::Close => s.push_str("[close]\n"),
            Output::JoinGroup { group, port } => s.push_str(&format!("[join {group}:{port}]\n")),
            Output::LeaveGroup => s.push_str("[leave]\n"),
            Output::SendControl(d) => s.push_str(&format!("[control {} bytes]\n", d.len())),
            Output::SendDatagram(d) => {
                s.push_str(&format!("[datagram {:?}]\n", String::from_utf8_lossy(d)))
            }
            Output::Exit => s.push_str("[exit]\n"),
            Output::Sent(d) => s.push_str(&format!("[sent {:?}]\n", String::from_utf8_lossy(d))),
            Output::DeriveKey { room, confirm, .. } => {
                s.push_str(&format!("[derive the key of {room}, confirm: {confirm}]\n"))
            }
            Output::OwnerToken { server, room, .. } => {
                s.push_str(&format!("[keep the token of {room} on {server}]\n"))
            }
            Output::PrivateRoom { server, room } => s.push_str(&format!(
                "[remember {} as private on {server}]\n",
                room.name
            )),
        }
    }
    s
}

#[test]
fn golden_demo_session() {
    let (mut net, c) = pair_with(8, &[]);
    let bob = net.add_client(ClientConfig::new(
        addr(SERVER),
        5577,
        ChatName::new("Bob").unwrap(),
    ));
    for line in [
        "connect",
        "makeroom lobby 239.1.1.1 5000",
        "getdir",
        "bye",
        "name Alice",
        "chat lobby",
        "Good morning!",
    ] {
        say(&mut net, c, line);
    }
    say(&mut net, bob, "chat lobby");
    say(&mut net, bob, "Hi Alice");
    act(&mut net, c, Input::LeaveChat);
    say(&mut net, c, "quit");
    let out = net.since(c, 0);
    let expected = "\
roomcast chat client; your chat name is Mel.
Type 'connect' to reach the directory server at localhost:5577, 'help' for all commands.
<prompt \"roomcast> \">
Connecting to localhost:5577...
[connect localhost:5577]
Connected to the directory server at localhost:5577. Type 'help' for its commands, 'bye' to disconnect.
<prompt \"roomcast [localhost:5577]> \">
[send \"makeroom lobby 239.1.1.1 5000\\n\"]
[keep the token of lobby on localhost:5577]
Room lobby created: multicast group 239.1.1.1 port 5000. Type 'chat lobby' to enter it.
[send \"getdir full\\n\"]
ROOM   ADDRESS    PORT   ACCESS
lobby  239.1.1.1  5000   open
(1 room)
[send \"bye\\n\"]
[close]
Disconnected from the directory server at localhost:5577.
<prompt \"roomcast> \">
Your chat name is now Alice. Your messages will read \"Alice: ...\".
Connecting to localhost:5577 to look up the room...
[connect localhost:5577]
[send \"getroom lobby\\n\"]
[join 239.1.1.1:5000]
[close]
Entering chat room lobby (239.1.1.1 port 5000) as Alice.
Type a message and press Enter to send it; Ctrl-] (or /leave) leaves the room.
<prompt \"[lobby] Alice> \">
[datagram \"Alice: Good morning!\"]
Bob: Hi Alice
[leave]
You left chat room lobby; back at the main prompt.
<prompt \"roomcast> \">
Goodbye.
[exit]
";
    assert_eq!(render(&out), expected);
}

/// A private room, made and entered with the passphrase, and refused with
/// a wrong one. The salt and verifier (random) are written as
/// `SALT-OR-VERIFIER`; the room protocol's frames are left out.
#[test]
fn golden_private_room_session() {
    let mut net = Net::new(9);
    net.add_server(SERVER, ServerConfig::default(), Directory::new());
    let mut member = |name: &str, seed: u64, passphrase: &[u8]| {
        let mut config = config();
        config.name = ChatName::new(name).unwrap();
        config.random_seed = Some(seed);
        let c = net.add_client(config);
        net.clients[c].passphrase = Some(passphrase.to_vec());
        c
    };
    let mel = member("Mel", 1, b"correct horse battery staple");
    let eve = member("Eve", 2, b"a wrong guess");
    for line in [
        "connect",
        "makeroom secret 239.1.1.9 6000 --private",
        "getdir",
        "bye",
        "chat secret",
    ] {
        say(&mut net, mel, line);
    }
    say(&mut net, eve, "chat secret");
    let mark = net.mark(mel);
    say(&mut net, mel, "anyone?");
    let mut out = net.since(mel, 0);
    out.truncate(mark);
    let mut text = render(&out);
    let sent = render(&net.since(mel, mark));
    assert!(
        sent.starts_with("[sent \"Mel: anyone?\"]\n[control "),
        "{sent}"
    );
    for word in text.clone().split([' ', '\\', '"']) {
        if Salt::parse(word).is_some() {
            text = text.replace(word, "SALT-OR-VERIFIER");
        }
    }
    let expected = "\
roomcast chat client; your chat name is Mel.
Type 'connect' to reach the directory server at localhost:5577, 'help' for all commands.
<prompt \"roomcast> \">
Connecting to localhost:5577...
[connect localhost:5577]
Connected to the directory server at localhost:5577. Type 'help' for its commands, 'bye' to disconnect.
<prompt \"roomcast [localhost:5577]> \">
[send \"salt\\n\"]
[derive the key of secret, confirm: true]
[send \"makeroom secret 239.1.1.9 6000 private SALT-OR-VERIFIER SALT-OR-VERIFIER\\n\"]
[keep the token of secret on localhost:5577]
[remember secret as private on localhost:5577]
Room 'secret' created (private: only people with its passphrase can read it): multicast group 239.1.1.9 port 6000. Type 'chat secret' to enter it.
[send \"getdir full\\n\"]
ROOM    ADDRESS    PORT   ACCESS
secret  239.1.1.9  6000   private
(1 room)
[send \"bye\\n\"]
[close]
Disconnected from the directory server at localhost:5577.
<prompt \"roomcast> \">
Connecting to localhost:5577 to look up the room...
[connect localhost:5577]
[send \"getroom secret\\n\"]
[derive the key of secret, confirm: false]
[close]
[join 239.1.1.9:6000]
Entering chat room secret (239.1.1.9 port 6000) as Mel.
The room is private: messages are encrypted, and only people with its passphrase can read them.
Type a message and press Enter to send it; Ctrl-] (or /leave) leaves the room.
<prompt \"[secret] Mel> \">
";
    let text = text
        .lines()
        .filter(|l| !l.starts_with("[control "))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    assert_eq!(text, expected);
    assert_eq!(
        shown(&net.since(eve, 0)).last().map(String::as_str),
        Some(
            "Wrong passphrase for room 'secret': it is not the one the room was made with. \
             Try 'chat secret' again."
        )
    );
}
