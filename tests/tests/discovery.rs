//! Finding the directory server with nothing configured: the server
//! announces itself over mDNS (DNS-SD `_crdp._tcp`), a client started with
//! no options finds it, and a third-party browser (python-zeroconf) sees
//! the announcement and its withdrawal. mDNS is multicast, so every test
//! here runs on a LAN of namespaces inside its own private namespace.

mod client_common;

use std::process::{Command, Output};

use client_common::ClientProcess;
use roomcast_tests::lan::{Host, Lan};
use roomcast_tests::{ServerProcess, netns};

/// Runs `roomcast server ARGS...` on `host` with the host name `name` (a
/// UTS namespace of its own, so that two servers on one machine get the
/// distinct instance names that two real hosts would have).
fn server_named(host: &Host, name: &str, args: &[&str]) -> ServerProcess {
    let set_name = format!("hostname {name} && exec \"$0\" \"$@\"");
    let mut wrapper: Vec<&str> = host.exec().to_vec();
    wrapper.extend(["unshare", "--uts", "--", "sh", "-c", &set_name]);
    ServerProcess::start_with(&wrapper, args)
}

/// A python with the zeroconf module, the third-party browser.
fn zeroconf_python() -> &'static str {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(python)
            .args(["-c", "import zeroconf"])
            .output()
            .is_ok_and(|out| out.status.success());
        if ok {
            return python;
        }
    }
    panic!(
        "this test needs python-zeroconf as a third-party mDNS browser: install it \
         (Debian/Ubuntu: apt-get install python3-zeroconf)"
    );
}

/// Browses for `_crdp._tcp` from `host` with python-zeroconf for `seconds`
/// and returns what it printed: `added NAME PORT TXT` and `removed NAME`
/// lines. With `then_stop`, SIGTERMs that PID halfway through, so that the
/// withdrawal is seen too.
fn browse_with_zeroconf(host: &Host, seconds: f32, then_stop: Option<u32>) -> Output {
    let script = r#"
import os, signal, sys, time
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf
class Listener(ServiceListener):
    def add_service(self, zc, kind, name):
        info = zc.get_service_info(kind, name, timeout=3000)
        txt = sorted((k.decode(), (v or b"").decode()) for k, v in (info.properties if info else {}).items())
        print("added", name, info.port if info else "?", txt, flush=True)
    def update_service(self, zc, kind, name):
        pass
    def remove_service(self, zc, kind, name):
        print("removed", name, flush=True)
seconds, stop = float(sys.argv[1]), int(sys.argv[2])
zc = Zeroconf()
ServiceBrowser(zc, "_crdp._tcp.local.", Listener())
time.sleep(seconds / 2)
if stop:
    os.kill(stop, signal.SIGTERM)
time.sleep(seconds / 2)
zc.close()
"#;
    let python = zeroconf_python();
    let out = host
        .command(python)
        .args([
            "-c",
            script,
            &seconds.to_string(),
            &then_stop.unwrap_or(0).to_string(),
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the zeroconf browser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_client_with_no_options_finds_the_server_and_chats() {
    netns::isolated(|| {
        let lan = Lan::build(&["srv", "alice", "bob"]);
        let (srv, alice_host, bob_host) = (lan.host("srv"), lan.host("alice"), lan.host("bob"));
        let server = server_named(srv, "labserver", &[]);
        let at = format!("{}:5577", srv.v4);

        let mut alice =
            ClientProcess::start_with("alice", &alice_host.exec(), &["--name", "Alice"]);
        let found = alice
            .stdout
            .wait_for("Found the directory server labserver");
        assert!(found.contains(&at), "{found}");
        alice.run(
            "connect",
            &format!("Connected to the directory server at {at}"),
        );
        alice.run("makeroom found 239.77.3.1 47301", "Room found created");
        alice.run("bye", "Disconnected");

        let mut bob = ClientProcess::start_with("bob", &bob_host.exec(), &["--name", "Bob"]);
        bob.stdout.wait_for("Found the directory server labserver");
        alice.run("chat found", "Entering chat room found");
        bob.run("chat found", "Entering chat room found");
        alice.send("found you with no options");
        bob.expect("Alice: found you with no options");

        assert!(server.logged("announced on the LAN as labserver") > 0);
        bob.send_bytes(b"\x1d\n");
        bob.send("quit");
        assert_eq!(bob.wait_exit(), Some(0));
        alice.send_bytes(b"\x1d\n");
        alice.close_stdin();
        assert_eq!(alice.wait_exit(), Some(0));
    });
}

#[test]
fn several_servers_are_listed_and_connect_picks_one_by_name() {
    netns::isolated(|| {
        let lan = Lan::build(&["one", "two", "quiet", "client"]);
        let _one = server_named(lan.host("one"), "alpha", &[]);
        let _two = server_named(lan.host("two"), "beta", &["--port", "6000"]);
        let _quiet = server_named(lan.host("quiet"), "gamma", &["--no-announce"]);

        let mut c = ClientProcess::start_with("c", &lan.host("client").exec(), &[]);
        // Printed before the client's banner, which start_with waits for.
        c.stdout.wait_for("Found 2 directory servers:");
        let alpha = c.stdout.wait_for("  alpha ");
        assert!(
            alpha.contains(&format!("{}:5577", lan.host("one").v4)),
            "{alpha}"
        );
        // Not on the default port: the port is part of its name.
        let beta = c.stdout.wait_for("  beta-6000 ");
        assert!(
            beta.contains(&format!("{}:6000", lan.host("two").v4)),
            "{beta}"
        );
        c.stdout.wait_for("Type 'connect NAME' to pick one.");
        assert!(
            !c.stdout.all().iter().any(|l| l.contains("gamma")),
            "a server started with --no-announce was found:\n{}",
            c.stdout.all().join("\n")
        );
        // The name reaches the address and port that server announced.
        c.run(
            "connect beta-6000",
            &format!(
                "Connected to the directory server at {}:6000",
                lan.host("two").v4
            ),
        );
        c.send("quit");
        assert_eq!(c.wait_exit(), Some(0));
    });
}

#[test]
fn no_server_found_says_what_to_do() {
    netns::isolated(|| {
        let mut c = ClientProcess::start_with("c", &[], &[]);
        let line = c.stdout.wait_for("No directory server answered");
        assert!(
            line.contains("roomcast server") && line.contains("--server"),
            "{line}"
        );
        c.send("quit");
        assert_eq!(c.wait_exit(), Some(0));
    });
}

#[test]
fn a_third_party_browser_sees_the_announcement_and_its_withdrawal() {
    netns::isolated(|| {
        let lan = Lan::build(&["srv", "browser"]);
        let server = server_named(lan.host("srv"), "announced", &["--port", "5599"]);
        let out = browse_with_zeroconf(lan.host("browser"), 4.0, Some(server.pid()));
        let seen = String::from_utf8_lossy(&out.stdout);
        let added = seen
            .lines()
            .find(|l| l.starts_with("added announced-5599._crdp._tcp.local."))
            .unwrap_or_else(|| panic!("the browser did not see the server:\n{seen}"));
        assert!(added.contains(" 5599 "), "{added}");
        assert!(added.contains("('protocol', 'CRDP/1')"), "{added}");
        assert!(added.contains("('txtvers', '1')"), "{added}");
        // Stopped, the server withdraws the announcement at once (a goodbye),
        // not when the record would expire.
        assert!(
            seen.lines()
                .any(|l| l.starts_with("removed announced-5599._crdp._tcp.local.")),
            "no withdrawal seen after the server stopped:\n{seen}"
        );
    });
}
