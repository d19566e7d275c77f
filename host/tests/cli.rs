//! The command line of the `roomcast` binary. (Being an integration test of
//! the `host` package also makes `cargo test --workspace` build the binary
//! that the end-to-end tests in `tests/` run.)

use std::process::Command;

fn roomcast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(args)
        .output()
        .expect("run roomcast")
}

#[test]
fn server_help_explains_every_option() {
    let out = roomcast(&["server", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in ["--port", "--bind", "--max-connections", "--log-level"] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
    assert!(help.contains("5577"), "default port missing from:\n{help}");
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let out = roomcast(&["server", "--port", "70000"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));

    let out = roomcast(&["server", "--max-connections", "0"]);
    assert!(!out.status.success());
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = roomcast(&["server", "--bind", "127.0.0.1", "--port", &port]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on 127.0.0.1"), "{err}");
    assert!(err.contains("--port"), "{err}");
}
