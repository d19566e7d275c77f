//! The state file (`roomcast server --state PATH`) against hostile and
//! unlucky setups: links planted in its folder, its permissions, two servers
//! on one file, files that are not state files, folders that cannot be used.
//! TCP on loopback only.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use roomcast_tests::{LOCAL_SERVER, ServerProcess, WAIT, roomcast_command};

/// A state file with no rooms, as the server writes it.
const EMPTY_STATE: &[u8] = b"roomcast-state 1\nend 0\n";

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("roomcast-state-e2e-{}-{name}", std::process::id()));
    if dir.exists() {
        // A read-only folder from an earlier run must be writable to go.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&dir)
            .status();
        let _ = fs::remove_dir_all(&dir);
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// What a server that was expected to refuse to start did.
struct Refusal {
    status: ExitStatus,
    stderr: String,
}

/// Runs `WRAPPER... roomcast server --bind 127.0.0.1 --port 0 ARGS...` and
/// waits (at most [`WAIT`]) for it to exit. A server that starts listening
/// instead fails the test.
fn refused(wrapper: &[&str], args: &[&str]) -> Refusal {
    let mut child = roomcast_command(wrapper)
        .args(LOCAL_SERVER)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roomcast server");
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not refuse to start (args {args:?}): it was still running");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Refusal {
        status,
        stderr: reader.join().unwrap(),
    }
}

/// Whether this process runs as root (which writes into any folder).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

#[test]
fn a_link_planted_at_the_old_temporary_name_is_not_followed() {
    let dir = temp_dir("planted");
    let state = dir.join("rooms.state");
    let victim = dir.join("victim");
    fs::write(&victim, b"precious\n").unwrap();
    // Anyone who can write the folder could plant this.
    symlink(&victim, dir.join("rooms.state.tmp")).unwrap();
    let server = ServerProcess::start(&["--state", arg(&state)]);
    let mut c = server.connect();
    assert!(c.ask("makeroom lobby 239.1.1.1 5000").starts_with("OK"));
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"precious\n",
        "the link's target was overwritten"
    );
    assert!(
        fs::symlink_metadata(&state).unwrap().file_type().is_file(),
        "the state file is not a plain file"
    );
    assert!(
        fs::read_to_string(&state)
            .unwrap()
            .contains("lobby 239.1.1.1 5000")
    );
    // No temporary file is left behind: only what was there, and the lock.
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "rooms.state",
            "rooms.state.lock",
            "rooms.state.tmp",
            "victim"
        ]
    );
}

#[test]
fn the_state_file_keeps_its_permissions() {
    for wanted in [0o600, 0o640] {
        let dir = temp_dir(&format!("mode{wanted:o}"));
        let state = dir.join("rooms.state");
        fs::write(&state, EMPTY_STATE).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(wanted)).unwrap();
        // Under umask 0 a file made with the usual 0666 would be world-writable.
        let server = ServerProcess::start_with(
            &["sh", "-c", "umask 0 && exec \"$0\" \"$@\""],
            &[
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--no-announce",
                "--state",
                arg(&state),
            ],
        );
        let mut c = server.connect();
        assert!(c.ask("makeroom lobby 239.1.1.1 5000").starts_with("OK"));
        assert!(fs::read_to_string(&state).unwrap().contains("lobby"));
        assert_eq!(mode(&state), wanted, "mode {wanted:o} was not kept");
        assert!(c.ask("deleteroom lobby").starts_with("OK"));
        assert_eq!(mode(&state), wanted, "mode {wanted:o} was not kept");
    }
}

#[test]
fn a_new_state_file_is_private_even_under_umask_0() {
    let dir = temp_dir("umask0");
    let state = dir.join("rooms.state");
    let server = ServerProcess::start_with(
        &["sh", "-c", "umask 0 && exec \"$0\" \"$@\""],
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-announce",
            "--state",
            arg(&state),
        ],
    );
    let mut c = server.connect();
    assert!(c.ask("makeroom lobby 239.1.1.1 5000").starts_with("OK"));
    assert_eq!(mode(&state), 0o600);
    // The lock file holds only a PID, but is private too.
    assert_eq!(mode(&dir.join("rooms.state.lock")), 0o600);
}

#[test]
fn a_state_path_that_is_a_link_keeps_the_link_and_replaces_its_target() {
    let dir = temp_dir("link");
    let real = dir.join("real");
    fs::create_dir_all(&real).unwrap();
    let target = real.join("rooms.state");
    let link = dir.join("rooms.state");
    // A relative link, resolved from the link's own folder.
    symlink("real/rooms.state", &link).unwrap();
    {
        let server = ServerProcess::start(&["--state", arg(&link)]);
        server.stdout.wait_for("is a link to");
        let mut c = server.connect();
        assert!(c.ask("makeroom lobby 239.1.1.1 5000").starts_with("OK"));
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link was replaced"
        );
        assert!(fs::read_to_string(&target).unwrap().contains("lobby"));
        assert_eq!(mode(&target), 0o600);
        // The lock sits beside the file that is written.
        assert!(real.join("rooms.state.lock").exists());
        // Another server through the link's target is the same file.
        let second = refused(&[], &["--state", arg(&target)]);
        assert!(!second.status.success());
        assert!(
            second.stderr.contains(&server.pid().to_string()),
            "{}",
            second.stderr
        );
    }
    let server = ServerProcess::start(&["--state", arg(&link)]);
    server.stdout.wait_for("loaded 1 rooms");
}

#[test]
fn a_second_server_on_one_state_file_refuses_and_names_the_first() {
    let dir = temp_dir("two");
    let state = dir.join("rooms.state");
    let mut first = ServerProcess::start(&["--state", arg(&state)]);
    let pid = first.pid().to_string();
    let mut c = first.connect();
    assert!(c.ask("makeroom lobby 239.1.1.1 5000").starts_with("OK"));

    let second = refused(&[], &["--state", arg(&state)]);
    assert!(!second.status.success());
    assert!(second.stderr.contains("in use"), "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!("PID {pid}")),
        "the holder's PID {pid} is not named: {}",
        second.stderr
    );
    // The first server goes on unharmed.
    assert!(c.ask("makeroom attic 239.1.1.2 5000").starts_with("OK"));

    // A crash leaves a stale lock file (with the dead server's PID): the
    // next server starts anyway.
    first.signal_and_wait("KILL");
    assert!(dir.join("rooms.state.lock").exists());
    let mut third = ServerProcess::start(&["--state", arg(&state)]);
    third.stdout.wait_for("loaded 2 rooms");
    // And after an orderly stop too.
    assert!(third.signal_and_wait("TERM").success());
    let fourth = ServerProcess::start(&["--state", arg(&state)]);
    fourth.stdout.wait_for("loaded 2 rooms");
}

#[test]
fn only_a_regular_file_is_read() {
    let dir = temp_dir("irregular");
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let folder = dir.join("folder");
    fs::create_dir_all(&folder).unwrap();
    // The address-space limit keeps a regression from eating the machine's
    // memory while it reads /dev/zero.
    let wrapper: &[&str] = &["prlimit", "--as=2147483648", "--"];
    for (path, kind) in [
        (Path::new("/dev/zero"), "a device"),
        (fifo.as_path(), "a FIFO"),
        (folder.as_path(), "a folder"),
    ] {
        let refusal = refused(wrapper, &["--state", arg(path)]);
        assert_eq!(
            refusal.status.code(),
            Some(1),
            "{path:?}: {}",
            refusal.stderr
        );
        assert!(
            refusal.stderr.contains("not a regular file") && refusal.stderr.contains(kind),
            "{path:?}: {}",
            refusal.stderr
        );
    }
    // Nothing was made beside them.
    assert!(!Path::new("/dev/zero.lock").exists());
    assert!(!dir.join("fifo.lock").exists());
}

#[test]
fn an_oversized_state_file_is_refused_without_reading_it() {
    let dir = temp_dir("huge");
    let state = dir.join("rooms.state");
    // 300 MB, sparse: it costs no disk, but reading it whole costs memory.
    let file = fs::File::create(&state).unwrap();
    file.set_len(300_000_000).unwrap();
    drop(file);
    let refusal = refused(
        &["prlimit", "--as=2147483648", "--"],
        &["--state", arg(&state)],
    );
    assert_eq!(refusal.status.code(), Some(1), "{}", refusal.stderr);
    assert!(
        refusal.stderr.contains("300000000 bytes") && refusal.stderr.contains("at most"),
        "{}",
        refusal.stderr
    );
    assert_eq!(
        fs::metadata(&state).unwrap().len(),
        300_000_000,
        "the file is kept"
    );
}

#[test]
fn a_missing_folder_is_refused_at_start() {
    let dir = temp_dir("missing");
    let state = dir.join("nowhere").join("rooms.state");
    let refusal = refused(&[], &["--state", arg(&state)]);
    assert_eq!(refusal.status.code(), Some(1), "{}", refusal.stderr);
    assert!(
        refusal.stderr.contains("does not exist") && refusal.stderr.contains("nowhere"),
        "{}",
        refusal.stderr
    );
}

#[test]
fn a_read_only_folder_is_refused_at_start() {
    let dir = temp_dir("readonly");
    let folder = dir.join("ro");
    fs::create_dir_all(&folder).unwrap();
    let state = folder.join("rooms.state");
    // A state file and lock file already there (from an earlier run, say):
    // reading works, only the folder cannot take the next save.
    fs::write(&state, EMPTY_STATE).unwrap();
    fs::write(folder.join("rooms.state.lock"), b"").unwrap();
    for file in ["rooms.state", "rooms.state.lock"] {
        fs::set_permissions(folder.join(file), fs::Permissions::from_mode(0o666)).unwrap();
    }
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    // Root writes into any folder, so as root the server runs as nobody.
    let wrapper: &[&str] = if is_root() {
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else {
        &[]
    };
    let refusal = refused(wrapper, &["--state", arg(&state)]);
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(refusal.status.code(), Some(1), "{}", refusal.stderr);
    assert!(
        refusal.stderr.contains("cannot create files in its folder"),
        "{}",
        refusal.stderr
    );
    assert_eq!(fs::read(&state).unwrap(), EMPTY_STATE);
}

#[test]
fn a_bad_salt_or_verifier_in_the_state_file_stops_the_start_and_names_the_line() {
    let good = "AQEBAQEBAQEBAQEBAQEBAQ";
    for (i, (room_line, why)) in [
        (
            format!("secret 239.1.1.3 5000 - private short {good}"),
            "line 3: the private room's salt 'short' is not 22 base64url characters",
        ),
        (
            format!("secret 239.1.1.3 5000 - private {good} {good}="),
            "line 3: the private room's verifier",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = temp_dir(&format!("badsalt{i}"));
        let state = dir.join("rooms.state");
        let text = format!("roomcast-state 3\nlobby 239.1.1.1 5000 -\n{room_line}\nend 2\n");
        fs::write(&state, &text).unwrap();
        let refusal = refused(&[], &["--state", arg(&state)]);
        assert_eq!(refusal.status.code(), Some(1), "{}", refusal.stderr);
        assert!(refusal.stderr.contains(why), "{}", refusal.stderr);
        assert!(
            refusal.stderr.contains("will not start"),
            "{}",
            refusal.stderr
        );
        assert_eq!(
            fs::read_to_string(&state).unwrap(),
            text,
            "the file is kept"
        );
    }
}
