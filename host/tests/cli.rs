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

#[test]
fn bash_loads_the_completions() {
    let script = roomcast(&["completions", "bash"]);
    assert!(script.status.success());
    let dir = std::env::temp_dir().join(format!("roomcast-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("roomcast.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    // A real bash sources them and then knows how to complete `roomcast`.
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p roomcast",
            file.display()
        ))
        .output()
        .expect("run bash (install it to run this test)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "bash could not load them: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("roomcast"), "complete -p said: {shown}");
}

#[test]
fn completions_exist_for_every_documented_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = roomcast(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        // Every command and a server option appear in each script.
        for word in ["server", "client", "max-connections"] {
            assert!(text.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = roomcast(&["completions", "tcsh"]);
    assert!(!out.status.success(), "an unknown shell must be refused");
}

/// The long options that `roomcast <command> --help` lists.
fn long_options(command: &str) -> Vec<String> {
    let out = roomcast(&[command, "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut options: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_alphanumeric())
                .to_owned()
        })
        .collect();
    options.sort();
    options.dedup();
    options
}

#[test]
fn man_pages_list_every_option_of_their_command() {
    for command in ["server", "client"] {
        let out = roomcast(&["man", command]);
        assert!(out.status.success(), "man {command}");
        // roff escapes the dashes of options as `\-`.
        let page = String::from_utf8_lossy(&out.stdout).replace("\\-", "-");
        assert!(page.starts_with(".ie") || page.contains(".TH"), "not roff");
        assert!(
            page.contains(&format!(".TH roomcast-{command} 1")),
            "{page}"
        );
        let options = long_options(command);
        assert!(options.len() >= 3, "too few options found: {options:?}");
        for option in options {
            assert!(
                page.contains(&option),
                "{option} missing from man {command}"
            );
        }
    }
    let out = roomcast(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout).replace("\\-", "-");
    assert!(page.contains("roomcast-server(1)"), "{page}");
}
