//! A private network namespace for each test that sends multicast, made by
//! the test itself: plain `cargo test --workspace` runs every test safely,
//! and nothing a test sends can leave the machine.
//!
//! A test that sends (or receives) multicast wraps its whole body in
//! [`isolated`]:
//!
//! ```no_run
//! use roomcast_tests::{ServerProcess, netns};
//!
//! #[test]
//! fn two_clients_chat() {
//!     netns::isolated(|| {
//!         // Only `lo` exists here: up, multicast on, 224.0.0.0/4 routed
//!         // on it. Every process, thread and socket made from here on is
//!         // in this namespace too.
//!         let server = ServerProcess::start(&[]);
//!         // ... clients, sockets, tmux, a LAN of namespaces ...
//!     });
//! }
//! ```
//!
//! # How
//!
//! Network namespaces belong to threads, and libtest runs each test on a
//! thread of its own (named after the test, also with `--test-threads=1`),
//! so [`isolated`] moves the calling thread alone into a new namespace:
//!
//! 1. **As root** (or with `CAP_SYS_ADMIN`): `unshare(CLONE_NEWNET)` on the
//!    calling thread, then `ip` (run from that thread, so inside) brings
//!    `lo` up with multicast on and routes `224.0.0.0/4` on it. Threads and
//!    processes started from the thread afterwards inherit the namespace
//!    (processes keep it for their whole life, whatever they spawn); the
//!    other tests' threads are untouched. The namespace goes away with the
//!    thread and the last process in it.
//! 2. **Without root**: the test binary runs itself again, this one test
//!    only (`--exact NAME --include-ignored --nocapture`), under `unshare
//!    --user --map-root-user --net`, with [`CHILD_ENV`] set. Inside, the
//!    child is root of its own user namespace and does step 1. The parent
//!    asserts that the child ran the test and that it passed, and shows its
//!    output; it does not run `body` itself.
//! 3. **Neither possible**: the test fails, saying what is missing (root,
//!    user namespaces, `unshare` from util-linux, `ip` from iproute2) and
//!    how to get it. Nothing is skipped.
//!
//! Before `body` runs, [`isolated`] checks that the namespace really has no
//! interface but `lo`, both as this thread sees it
//! (`/proc/thread-self/net/dev`) and as a child process sees it (`ip -o
//! link`).
//!
//! Setting [`MODE_ENV`] to `user` takes the second way even as root (to
//! test it); CI runs the harness's own tests both ways.
//!
//! # Caveats
//!
//! - Call [`isolated`] first, before the test starts threads or processes:
//!   those started before stay outside (and cannot reach what is inside).
//! - Sockets are tied to the namespace they were made in: make them inside
//!   `body` (or on threads spawned from it).
//! - `/sys/class/net` and `/proc/self/net` still show the machine's
//!   interfaces inside (sysfs is mounted from the machine's namespace, and
//!   `/proc/self` is the process's main thread); `/proc/thread-self/net`
//!   and netlink (`ip`, `getifaddrs`) show the namespace's.
//! - A process started inside runs entirely inside: a tmux server started
//!   from `body` (with its own socket) and everything in its panes are in
//!   the namespace.
//! - Without root, the test's process runs twice (the parent only waits);
//!   the child's output is printed by the parent, so libtest shows it on
//!   failure or with `--nocapture`. The test must not depend on state the
//!   parent made before calling [`isolated`].
//! - IPv6: `lo` has `::1` (unless the kernel has IPv6 off), so `ip -6` and
//!   IPv6 sockets on loopback work. IPv6 multicast sent over `lo` is not
//!   delivered back (seen on Linux 6.x, even with `ff00::/8` routed on
//!   `lo`): use a [`Lan`](crate::lan::Lan) (hosts have `fd00::/8`
//!   addresses on a veth link, where it works) for IPv6 multicast.
//! - Needs Linux, `ip` (iproute2) and, without root, `unshare`
//!   (util-linux) and unprivileged user namespaces.

use std::cell::Cell;
use std::process::{Command, Output};

/// Set in the environment of the test binary that [`isolated`] runs again
/// inside a user namespace: there it makes its namespace directly, and
/// never runs itself again.
pub const CHILD_ENV: &str = "ROOMCAST_NETNS_CHILD";

/// `user`: make the namespace through a user namespace (the way without
/// root) even as root, to test that way. Unset or `auto`: the first way
/// that works.
pub const MODE_ENV: &str = "ROOMCAST_TEST_NETNS";

/// What [`isolated`] runs to configure loopback, in order.
const LOOPBACK_SETUP: &[&[&str]] = &[
    &["link", "set", "lo", "up"],
    &["link", "set", "lo", "multicast", "on"],
    &[
        "route",
        "add",
        "224.0.0.0/4",
        "dev",
        "lo",
        "src",
        "127.0.0.1",
    ],
];

thread_local! {
    /// Whether this thread is in a namespace that [`isolated`] made.
    static ISOLATED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread runs inside [`isolated`] (so inside a private
/// network namespace).
pub fn is_isolated() -> bool {
    ISOLATED.get()
}

/// Runs `body` in a private network namespace whose only interface is
/// loopback, up, with multicast on and `224.0.0.0/4` routed on it; see the
/// [module docs](self) for how, and the caveats. Panics, saying what is
/// missing, where no namespace can be made; panics if `body` does (in
/// either way of running it).
pub fn isolated(body: impl FnOnce()) {
    if is_isolated() {
        body();
        return;
    }
    let child = std::env::var_os(CHILD_ENV).is_some();
    let force_user = !child && std::env::var(MODE_ENV).is_ok_and(|mode| mode == "user");
    let why_not_here = if force_user {
        format!("{MODE_ENV}=user asks for a user namespace")
    } else {
        match unshare_this_thread() {
            Ok(()) => {
                configure_loopback();
                assert_only_loopback();
                ISOLATED.set(true);
                body();
                return;
            }
            Err(error) => format!(
                "unshare(CLONE_NEWNET) on this thread failed: {error} (it needs root or \
                 CAP_SYS_ADMIN)"
            ),
        }
    };
    assert!(
        !child,
        "inside `unshare --user --map-root-user --net`, this test still could not make a \
         network namespace: {why_not_here}"
    );
    run_in_user_namespace(&why_not_here);
}

/// Moves the calling thread (only) into a new network namespace.
fn unshare_this_thread() -> std::io::Result<()> {
    // SAFETY: unshare(2) takes a flag word and touches no memory of ours;
    // CLONE_NEWNET changes only the calling thread's network namespace,
    // which is allowed in a process with many threads.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `ip ARGS` from this thread (so in its namespace); panics if it
/// cannot run or fails.
pub fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `ip` ({e}): install iproute2 (Debian/Ubuntu: apt-get install \
                 iproute2)"
        )
    });
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn configure_loopback() {
    for args in LOOPBACK_SETUP {
        ip(args);
    }
}

/// The interfaces of the calling thread's network namespace.
pub fn interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev")
        .expect("read /proc/thread-self/net/dev");
    dev.lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_string())
        .collect()
}

/// Asserts that loopback is the only interface, both as this thread and as
/// a process started from it sees the network, and that it is up.
fn assert_only_loopback() {
    let here = interfaces();
    assert_eq!(here, ["lo"], "the new namespace has other interfaces");
    let out = ip(&["-o", "link", "show"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(
        names,
        ["lo"],
        "a process started in the new namespace sees other interfaces:\n{listed}"
    );
    assert!(
        listed.contains("MULTICAST") && listed.contains(",UP"),
        "lo is not up with multicast on:\n{listed}"
    );
}

/// The way without root: this test, alone, in a copy of the test binary
/// under `unshare --user --map-root-user --net`.
fn run_in_user_namespace(why_not_here: &str) {
    let thread = std::thread::current();
    let name = thread
        .name()
        .filter(|name| *name != "main")
        .unwrap_or_else(|| {
            panic!(
                "{why_not_here}; running the test again in a user namespace needs its name, and \
                 this thread has none: run it under libtest (cargo test), which names each \
                 test's thread"
            )
        });
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "--"])
        .arg(&exe)
        .args([
            "--exact",
            name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "this test sends multicast, so it runs in a private network namespace, and \
                 none could be made: {why_not_here}, and `unshare` cannot be run ({e}). Run \
                 the tests as root, or install util-linux (apt-get install util-linux) for \
                 `unshare` and allow unprivileged user namespaces"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown by libtest with the test (on failure, or with --nocapture),
    // indented so that no line reads as this run's own summary.
    println!("---- {name}, run in a user namespace: stdout ----");
    stdout.lines().for_each(|line| println!("    | {line}"));
    println!("---- {name}, run in a user namespace: stderr ----");
    stderr.lines().for_each(|line| println!("    | {line}"));
    if !stdout.contains("running 1 test") {
        panic!(
            "this test sends multicast, so it runs in a private network namespace, and none \
             could be made: {why_not_here}, and `unshare --user --map-root-user --net` \
             failed ({}): {}\nRun the tests as root (for example `sudo -E cargo test \
             --workspace`), or allow unprivileged user namespaces (`sysctl -w \
             kernel.unprivileged_userns_clone=1` where that exists; on Ubuntu 24.04 and \
             later `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; in a \
             container, run it with --privileged or without a seccomp filter on unshare)",
            out.status,
            stderr.trim()
        );
    }
    assert!(
        out.status.success(),
        "the test failed in its network namespace ({}); its output is above",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed;"),
        "the run in a user namespace did not run exactly this test; its output is above"
    );
}
