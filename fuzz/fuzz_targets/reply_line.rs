//! Arbitrary bytes as a line from the server, read the way a client does:
//! as a reply's first line, as a `getdir` listing line and as a `getdir
//! full` one.
//!
//! Checks that no parser panics and that a room line that parses
//! survives a round trip through its encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_core::{
    LineBuf, ReplyLine, encode_full_room_line, encode_room_line, parse_full_room_line,
    parse_reply_line, parse_room_line,
};

fuzz_target!(|line: &[u8]| {
    if let Ok(ReplyLine::Err {
        code: Some(code),
        token,
        ..
    }) = parse_reply_line(line)
    {
        assert_eq!(code.token(), token);
    }
    if let Ok(room) = parse_room_line(line) {
        let mut encoded = LineBuf::new();
        encode_room_line(&room, &mut encoded).expect("a room line fits in a LineBuf");
        let without_lf = encoded
            .as_bytes()
            .strip_suffix(b"\n")
            .expect("an encoded room line ends with LF");
        assert_eq!(parse_room_line(without_lf), Ok(room));
    }
    if let Ok((room, kind)) = parse_full_room_line(line) {
        let mut encoded = LineBuf::new();
        encode_full_room_line(&room, kind, &mut encoded)
            .expect("a full room line fits in a LineBuf");
        assert!(encoded.len() <= roomcast_core::limits::MAX_FULL_ROOM_LINE);
        let without_lf = encoded
            .as_bytes()
            .strip_suffix(b"\n")
            .expect("an encoded room line ends with LF");
        assert_eq!(parse_full_room_line(without_lf), Ok((room, kind)));
    }
});
