//! Arbitrary bytes as one CRDP command line.
//!
//! Checks that the parser never panics, that an error always has a code and
//! a message, and that a command that parses survives a round trip through
//! its encoding: `parse(encode(c)) == c`.
#![no_main]

use std::fmt::Write as _;

use libfuzzer_sys::fuzz_target;
use roomcast_core::{Command, encode_command, is_valid_token, limits::MAX_LINE, parse_command};

fuzz_target!(|line: &[u8]| {
    match parse_command(line) {
        Ok(command) => {
            if let Command::DeleteRoom(_, Some(token)) = &command {
                assert!(is_valid_token(token), "accepted token {token:?}");
            }
            let encoded = encode_command(&command);
            assert!(encoded.len() <= MAX_LINE, "encoding too long: {encoded:?}");
            let without_lf = encoded
                .as_bytes()
                .strip_suffix(b"\n")
                .expect("an encoded command ends with LF");
            assert_eq!(
                parse_command(without_lf),
                Ok(command.clone()),
                "round trip of {command:?} via {encoded:?}"
            );
        }
        Err(error) => {
            let mut message = String::new();
            write!(message, "ERR {} {error}", error.code()).expect("formatting to a String");
            assert!(!message.contains('\n'), "message spans lines: {message:?}");
        }
    }
});
