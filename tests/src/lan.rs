//! A LAN of network namespaces for tests that need hosts on a real-looking
//! link: each host is a namespace with an `eth0` (a veth pair) plugged into
//! a bridge in one more namespace, the switch.
//!
//! Build it inside [`netns::isolated`] (it checks):
//! every namespace it makes is new and private, and nothing is created in
//! the machine's own network. Run a process in a host with its exec prefix:
//!
//! ```no_run
//! use roomcast_tests::{ServerProcess, lan::Lan, netns};
//!
//! #[test]
//! fn across_a_lan() {
//!     netns::isolated(|| {
//!         // Declared first, dropped last: after every process in it.
//!         let lan = Lan::build(&["srv", "alice"]);
//!         let srv = lan.host("srv");
//!         let server = ServerProcess::start_with(
//!             &srv.exec(),
//!             &["--bind", &srv.v4.to_string(), "--port", "5577"],
//!         );
//!         // lan.host("alice").command("ping") is a Command in alice's host;
//!         // lan.switch.command("nft") one at the switch (loss, delay...);
//!         // lan.host("alice").within(|| ...) runs code (sockets) there.
//!     });
//! }
//! ```
//!
//! Host number `i` (from 0, in the order given) has `198.18.0.{i+1}/24` and
//! `fd00:18::{i+1}/64` on `eth0`, `lo` up, and `224.0.0.0/4` routed on
//! `eth0` (IPv6 multicast is routed on `eth0` by the kernel). The switch's
//! bridge `br0` floods multicast to every port (`mcast_snooping 0`), as a
//! plain switch does; its ports are `p0`, `p1`, ...
//!
//! Each namespace is held by a small process (`unshare --net` running
//! `cat` on a pipe from this process), and entered with `nsenter
//! --net=/proc/PID/ns/net`. Dropping the LAN ends the holders; the
//! namespaces (and their links) go away once the last process in them has
//! ended, and also if the test process dies, as the holders' pipe closes.
//! No name is registered under `/run/netns`, so LANs of tests that run at
//! once cannot clash, and this works without root too (inside the user
//! namespace that [`isolated`](crate::netns::isolated) makes).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use crate::netns;

/// The LAN's IPv4 subnet (198.18.0.0/15 is set aside for network tests),
/// with [`V4_PREFIX_LEN`].
pub const V4_SUBNET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Prefix length of [`V4_SUBNET`].
pub const V4_PREFIX_LEN: u8 = 24;
/// The LAN's IPv6 subnet (unique local, in fd00::/8), with
/// [`V6_PREFIX_LEN`].
pub const V6_SUBNET: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 0);
/// Prefix length of [`V6_SUBNET`].
pub const V6_PREFIX_LEN: u8 = 64;
/// Most hosts on one LAN: the host part of [`V4_SUBNET`] less the network
/// and broadcast addresses.
pub const MAX_HOSTS: usize = 253;

/// A network namespace of its own, alive while this value is.
pub struct Namespace {
    holder: Child,
    /// Closing it (when the holder's parent dies, or on drop) ends the
    /// holder.
    _keep: ChildStdin,
    /// `--net=/proc/PID/ns/net`, for nsenter.
    net: String,
}

impl Namespace {
    /// Makes a new network namespace (from the calling thread's, so it
    /// belongs to the same user namespace) and waits until it exists.
    pub fn new() -> Namespace {
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "echo ready && exec cat >/dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `unshare` ({e}): install util-linux (apt-get install util-linux)"
                )
            });
        let mut ready = String::new();
        BufReader::new(holder.stdout.take().expect("holder stdout"))
            .read_line(&mut ready)
            .expect("read from the namespace holder");
        assert_eq!(ready, "ready\n", "unshare --net failed to make a namespace");
        let keep = holder.stdin.take().expect("holder stdin");
        let net = format!("--net=/proc/{}/ns/net", holder.id());
        let ns = Namespace {
            holder,
            _keep: keep,
            net,
        };
        let ours = std::fs::read_link("/proc/thread-self/ns/net").expect("our namespace");
        let its = std::fs::read_link(format!("/proc/{}/ns/net", ns.pid())).expect("its namespace");
        assert_ne!(ours, its, "the holder is not in a namespace of its own");
        ns
    }

    /// The PID of the process that holds it.
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// The prefix that runs a command in it: `nsenter --net=... --`. It
    /// execs the command, so a child started with it has the command's
    /// PID (as [`ServerProcess::start_with`](crate::ServerProcess::start_with)
    /// needs).
    pub fn exec(&self) -> [&str; 3] {
        ["nsenter", &self.net, "--"]
    }

    /// A command that runs `program` in it.
    pub fn command(&self, program: &str) -> Command {
        let [nsenter, net, dashes] = self.exec();
        let mut command = Command::new(nsenter);
        command.args([net, dashes, program]);
        command
    }

    /// Runs `f` on a new thread that has entered this namespace
    /// (`setns`), and returns what it returns: sockets made in `f` are in
    /// this namespace. Panics if `f` does.
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/proc/{}/ns/net", self.pid());
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns(2) reads only the descriptor, which
                    // `file` keeps open; CLONE_NEWNET changes only this
                    // thread's network namespace.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(
                        rc,
                        0,
                        "setns into {path}: {}",
                        std::io::Error::last_os_error()
                    );
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs `ip ARGS` in it; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        let out = self
            .command("ip")
            .args(args)
            .output()
            .expect("run nsenter ... ip");
        assert!(
            out.status.success(),
            "ip {} (in namespace of PID {}) failed: {}",
            args.join(" "),
            self.pid(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::new()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// One host of a [`Lan`].
pub struct Host {
    /// The name it was built with.
    pub name: String,
    /// Its IPv4 address on `eth0`.
    pub v4: Ipv4Addr,
    /// Its IPv6 address on `eth0`.
    pub v6: Ipv6Addr,
    /// Its namespace.
    pub ns: Namespace,
}

impl Host {
    /// The prefix that runs a command on this host; see
    /// [`Namespace::exec`].
    pub fn exec(&self) -> [&str; 3] {
        self.ns.exec()
    }

    /// A command that runs `program` on this host.
    pub fn command(&self, program: &str) -> Command {
        self.ns.command(program)
    }

    /// Runs `ip ARGS` on this host; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        self.ns.ip(args)
    }

    /// Runs `f` on a thread in this host; see [`Namespace::within`].
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.ns.within(f)
    }
}

/// Hosts wired to one switch; every namespace is gone once it is dropped
/// (and the processes started in them have ended).
pub struct Lan {
    hosts: Vec<Host>,
    /// The switch: `br0` and the ports `p0`, `p1`, ... (one per host).
    pub switch: Namespace,
}

impl Lan {
    /// Builds a LAN of the hosts `names` (see the [module docs](self) for
    /// the addresses). Panics outside
    /// [`netns::isolated`], with more than
    /// [`MAX_HOSTS`] hosts, or if a step fails.
    pub fn build(names: &[&str]) -> Lan {
        assert!(
            netns::is_isolated(),
            "build a Lan inside netns::isolated(...), never in the machine's own network"
        );
        assert!(names.len() <= MAX_HOSTS, "at most {MAX_HOSTS} hosts");
        let switch = Namespace::new();
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        switch.ip(&["link", "set", "br0", "up"]);
        let mut hosts = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let n = u8::try_from(i + 1).expect("host number fits an octet");
            let [a, b, c, _] = V4_SUBNET.octets();
            let v4 = Ipv4Addr::new(a, b, c, n);
            let mut segments = V6_SUBNET.segments();
            segments[7] = u16::from(n);
            let v6 = Ipv6Addr::from(segments);
            let ns = Namespace::new();
            let port = format!("p{i}");
            let switch_pid = switch.pid().to_string();
            ns.ip(&[
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &switch_pid,
            ]);
            switch.ip(&["link", "set", &port, "master", "br0"]);
            switch.ip(&["link", "set", &port, "up"]);
            ns.ip(&["link", "set", "lo", "up"]);
            ns.ip(&[
                "addr",
                "add",
                &format!("{v4}/{V4_PREFIX_LEN}"),
                "dev",
                "eth0",
            ]);
            // nodad: usable at once, not after duplicate address detection.
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/{V6_PREFIX_LEN}"),
                "dev",
                "eth0",
                "nodad",
            ]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"]);
            hosts.push(Host {
                name: name.to_string(),
                v4,
                v6,
                ns,
            });
        }
        Lan { hosts, switch }
    }

    /// The host built with `name`; panics if there is none.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("no host {name:?} on this LAN"))
    }

    /// Every host, in the order given.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
}
