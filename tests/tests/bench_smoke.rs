//! `roomcast bench` builds and works: each mode runs once, briefly, against
//! a real server. Nothing here asserts speed; BENCHMARKS.md and
//! `bench/run.sh` are where speed is measured.

use std::process::Command;

use roomcast_tests::{ServerProcess, netns, roomcast_bin};

/// Runs `roomcast bench ARGS --json` and returns its one JSON line.
fn bench(args: &[&str]) -> String {
    let out = Command::new(roomcast_bin())
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run roomcast bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "roomcast bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.trim();
    assert!(
        line.starts_with('{') && line.ends_with('}'),
        "not one JSON object: {line}"
    );
    line.to_string()
}

/// The number under `key` in a flat JSON object (`None` for null).
fn number(json: &str, key: &str) -> Option<f64> {
    let pattern = format!("\"{key}\":");
    let at = json
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pattern.len();
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn load_mode_counts_replies_of_every_mix() {
    // Load from one address as fast as it goes: the rate quota is lifted,
    // as bench/run.sh does (this counts replies, not quotas).
    let server = ServerProcess::start(&["--log-level", "error", "--commands-per-second", "0"]);
    let addr = server.addr().to_string();
    let json = bench(&[
        "--server",
        &addr,
        "--conns",
        "4",
        "--pipeline",
        "2",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--mix",
        "ping,getdir,rooms",
        "--rooms",
        "3",
    ]);
    assert!(number(&json, "requests").unwrap() > 0.0, "{json}");
    assert_eq!(number(&json, "errors"), Some(0.0), "{json}");
    assert_eq!(number(&json, "conn_errors"), Some(0.0), "{json}");
    assert_eq!(number(&json, "connected"), Some(4.0), "{json}");
    for op in ["ping", "getdir", "makeroom", "deleteroom"] {
        let n = number(&json, &format!("{op}_requests"));
        assert!(n.unwrap_or(0.0) > 0.0, "no {op} counted: {json}");
    }
    // The 3 rooms it added, and the ones each connection made; the listing
    // is read in full.
    assert!(number(&json, "listing_rooms").unwrap() >= 3.0, "{json}");
    // The rooms it added are gone again.
    let mut c = server.connect();
    assert_eq!(c.request("getdir"), ["OK 0 rooms", "."]);
}

#[test]
fn idle_mode_reads_the_servers_memory() {
    let server = ServerProcess::start(&["--log-level", "error"]);
    let addr = server.addr().to_string();
    let pid = server.pid().to_string();
    let json = bench(&[
        "--server",
        &addr,
        "--idle",
        "--conns",
        "20",
        "--hold",
        "0.2",
        "--server-pid",
        &pid,
    ]);
    assert_eq!(number(&json, "connected"), Some(20.0), "{json}");
    assert_eq!(number(&json, "conn_errors"), Some(0.0), "{json}");
    assert!(number(&json, "rss_end_kib").unwrap() > 0.0, "{json}");
    assert!(number(&json, "bytes_per_conn").is_some(), "{json}");
}

#[test]
fn refuses_a_target_off_this_machine() {
    let out = Command::new(roomcast_bin())
        .args(["bench", "--server", "192.0.2.1:5577", "--duration", "0"])
        .output()
        .expect("run roomcast bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[test]
fn chat_and_raw_multicast_modes_deliver() {
    netns::isolated(|| {
        for (mode, port) in [("chat", "47100"), ("raw", "47200")] {
            let json = bench(&[
                mode,
                "--port",
                port,
                "--rate",
                "1000",
                "--duration",
                "0.3",
                "--no-ramp",
            ]);
            let sent = number(&json, "fixed_sent").unwrap();
            let lost = number(&json, "fixed_lost").unwrap();
            assert!(sent >= 300.0, "{json}");
            assert!(lost < sent, "{mode}: nothing arrived: {json}");
        }
    });
}

/// `bench reliable` runs the room protocol's sessions on real sockets: with
/// a share of datagrams dropped at each receiver, every message still
/// arrives, once, in order, through repairs; a quiet room reports its
/// heartbeat bytes.
#[test]
fn reliable_mode_delivers_everything_through_repairs() {
    netns::isolated(|| {
        let json = bench(&[
            "reliable", "--port", "47300", "--count", "30", "--rate", "9", "--drop", "20",
        ]);
        assert_eq!(number(&json, "delivered"), Some(60.0), "{json}");
        assert_eq!(number(&json, "expected"), Some(60.0), "{json}");
        assert_eq!(number(&json, "reported_lost"), Some(0.0), "{json}");
        assert_eq!(number(&json, "duplicates"), Some(0.0), "{json}");
        assert_eq!(number(&json, "out_of_order"), Some(0.0), "{json}");
        assert!(number(&json, "dropped").unwrap() > 0.0, "{json}");
        assert!(number(&json, "repairs").unwrap() > 0.0, "{json}");
        assert!(
            number(&json, "frame_bytes_beyond_text").unwrap() > 30.0,
            "{json}"
        );
        let quiet = bench(&["reliable", "--port", "47310", "--quiet", "1"]);
        assert!(number(&quiet, "heartbeats").unwrap() >= 3.0, "{quiet}");
        assert!(
            number(&quiet, "bytes_per_member_per_s").unwrap() > 0.0,
            "{quiet}"
        );
    });
}

/// `bench reliable --private` runs a private room on real sockets: sealed
/// frames (53 bytes more than the open room's, no plain copy), and repairs
/// still bring every message through a share of drops.
#[test]
fn reliable_mode_runs_a_private_room() {
    netns::isolated(|| {
        let json = bench(&[
            "reliable",
            "--port",
            "47320",
            "--count",
            "20",
            "--rate",
            "9",
            "--drop",
            "20",
            "--private",
        ]);
        assert!(json.contains("\"room\":\"private\""), "{json}");
        assert_eq!(number(&json, "delivered"), Some(40.0), "{json}");
        assert_eq!(number(&json, "reported_lost"), Some(0.0), "{json}");
        assert_eq!(number(&json, "duplicates"), Some(0.0), "{json}");
        assert!(number(&json, "repairs").unwrap() > 0.0, "{json}");
        // A DATA frame of "m0" (31 + 2) sealed (+ 53); no plain copy.
        assert_eq!(
            number(&json, "frame_bytes_beyond_text"),
            Some(86.0),
            "{json}"
        );
        assert_eq!(
            number(&json, "plain_bytes_beyond_text"),
            Some(0.0),
            "{json}"
        );
    });
}

/// The multicast modes refuse to run where an interface besides loopback
/// exists (here a veth pair, in the test's own namespace).
#[test]
fn multicast_modes_refuse_a_network_with_other_interfaces() {
    netns::isolated(|| {
        netns::ip(&["link", "add", "rc0", "type", "veth", "peer", "name", "rc1"]);
        for (mode, args) in [
            ("chat", ["--no-ramp", "--duration", "0.1"]),
            ("raw", ["--no-ramp", "--duration", "0.1"]),
            ("reliable", ["--quiet", "0.1", "--json"]),
        ] {
            let out = Command::new(roomcast_bin())
                .args(["bench", mode])
                .args(args)
                .output()
                .expect("run roomcast bench");
            assert!(!out.status.success(), "{mode} ran beside other interfaces");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("interfaces besides loopback (rc0, rc1)")
                    || stderr.contains("interfaces besides loopback (rc1, rc0)"),
                "{stderr}"
            );
        }
    });
}

/// `bench seal` runs both kinds of room through the session and reports
/// the sizes the protocol gives: a DATA frame and its plain copy in an open
/// room, the frame sealed (53 bytes more) and nothing else in a private one.
#[test]
fn seal_mode_measures_open_and_private_rooms() {
    let json = bench(&["seal", "--messages", "300", "--runs", "1", "--sizes", "60"]);
    for key in [
        "open_send_ns",
        "open_receive_ns",
        "private_send_ns",
        "private_receive_ns",
        "seal_alone_ns",
        "open_alone_ns",
    ] {
        let ns = number(&json, key).unwrap_or(0.0);
        assert!(ns > 0.0, "{key}: {json}");
    }
    assert!(number(&json, "total_ratio").unwrap() > 0.0, "{json}");
    // 8-byte name, 60-byte text: frame 31 + 8 + 60, plain copy 8 + 2 + 60.
    assert_eq!(number(&json, "open_datagrams"), Some(2.0), "{json}");
    assert_eq!(number(&json, "open_bytes"), Some(169.0), "{json}");
    assert_eq!(number(&json, "private_datagrams"), Some(1.0), "{json}");
    assert_eq!(number(&json, "private_bytes"), Some(152.0), "{json}");
    assert_eq!(number(&json, "seal_overhead_bytes"), Some(53.0), "{json}");
}

/// `bench argon2` runs the shipped derivation and reads its peak memory,
/// which holds the 64 MiB Argon2id block array.
#[test]
fn argon2_mode_times_the_key_derivation() {
    let json = bench(&["argon2", "--runs", "1"]);
    assert_eq!(number(&json, "memory_kib"), Some(65536.0), "{json}");
    assert!(number(&json, "median_ms").unwrap() > 0.0, "{json}");
    if cfg!(target_os = "linux") {
        let after = number(&json, "peak_rss_after_kib").unwrap();
        assert!(after >= 65536.0, "{json}");
    }
}
