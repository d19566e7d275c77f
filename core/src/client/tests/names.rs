//! Chat names and server addresses.

use super::*;
use crate::text::NameProblem;

#[test]
fn chat_names() {
    assert_eq!(ChatName::new("  Mel  ").unwrap().as_str(), "Mel");
    assert_eq!(ChatName::new("Mel Smith").unwrap().as_str(), "Mel Smith");
    assert_eq!(ChatName::new("").unwrap_err(), NameError::Empty);
    assert_eq!(ChatName::new("   ").unwrap_err(), NameError::Empty);
    assert!(ChatName::new(&"é".repeat(32)).is_ok());
    assert_eq!(
        ChatName::new(&"a".repeat(33)).unwrap_err(),
        NameError::TooLong
    );
    assert_eq!(ChatName::new("a\tb").unwrap_err(), NameError::NotPrintable);
    assert_eq!(
        ChatName::new("a\u{1b}b").unwrap_err(),
        NameError::NotPrintable
    );
    assert_eq!(
        ChatName::new("a\u{202e}b").unwrap_err(),
        NameError::NotPrintable
    );
}

/// The review's names: receivers split `Name: text` at the first `: `, so a
/// name holding one would show another sender; blank-looking and ignorable
/// characters hide or fake a name.
#[test]
fn chat_names_that_receivers_would_read_wrong_are_refused() {
    assert_eq!(ChatName::new("A: B").unwrap_err(), NameError::ColonSpace);
    assert_eq!(ChatName::new("A:  B").unwrap_err(), NameError::ColonSpace);
    // A colon without a space after it cannot cut the name.
    for name in ["A:B", "Mel:", "12:30 club"] {
        assert_eq!(ChatName::new(name).unwrap().as_str(), name);
    }
    let text = NameError::ColonSpace.to_string();
    assert!(text.contains("': '") && text.contains("colon"), "{text}");
    for (name, c) in [
        ("\u{3164}", '\u{3164}'),
        ("\u{2800}", '\u{2800}'),
        ("Ann\u{34F}", '\u{34F}'),
        ("Ann\u{200B}", '\u{200B}'),
        ("Ann\u{FE0F}", '\u{FE0F}'),
        ("Ann\u{A0}Lee", '\u{A0}'),
    ] {
        let err = ChatName::new(name).unwrap_err();
        assert!(
            matches!(
                err,
                NameError::Refused(NameProblem::Invisible(b) | NameProblem::Space(b)) if b == c
            ) || err == NameError::NotPrintable,
            "{name:?}: {err:?}"
        );
    }
    assert_eq!(
        ChatName::new("Ann\u{34F}").unwrap_err().to_string(),
        "in a chat name, U+034F is invisible or blank; choose another"
    );
    // Marks may not begin a word (they would sit on the space before);
    // a word of zero-width letters shows as blank.
    assert_eq!(
        ChatName::new("\u{332}Ann").unwrap_err(),
        NameError::Refused(NameProblem::StartsWithMark('\u{332}'))
    );
    assert_eq!(
        ChatName::new("Ann \u{332}Lee").unwrap_err(),
        NameError::Refused(NameProblem::StartsWithMark('\u{332}'))
    );
    assert_eq!(
        ChatName::new("Ann \u{D4E}").unwrap_err(),
        NameError::Refused(NameProblem::NoWidth)
    );
    // Not composed: as in room names.
    assert_eq!(
        ChatName::new("Rene\u{301}").unwrap_err(),
        NameError::Refused(NameProblem::NotComposed('\u{301}'))
    );
    // Two spaces in a row would make a look-alike of `Mel Smith`.
    assert_eq!(
        ChatName::new("Mel  Smith").unwrap_err(),
        NameError::DoubleSpace
    );
    // What people type stays fine: single spaces, accents, any script,
    // marks after a letter, punctuation, emoji.
    for name in [
        "Mel Smith",
        "Ren\u{e9}e",
        "\u{674e}\u{96f7}",
        "\u{E01}\u{E47}",
        "Dr. O'Neil-Smith",
        "Ann \u{1F600}",
    ] {
        assert_eq!(ChatName::new(name).unwrap().as_str(), name, "{name:?}");
    }
}

#[test]
fn server_addresses() {
    let ok = |s: &str| parse_server_addr(s, 5577).map(|a| a.to_string());
    assert_eq!(ok("localhost").unwrap(), "localhost:5577");
    assert_eq!(ok("host:80").unwrap(), "host:80");
    assert_eq!(ok(" 10.0.0.1:6000 ").unwrap(), "10.0.0.1:6000");
    assert_eq!(ok("::1").unwrap(), "[::1]:5577");
    assert_eq!(ok("[::1]").unwrap(), "[::1]:5577");
    assert_eq!(ok("[fe80::1]:9").unwrap(), "[fe80::1]:9");
    assert_eq!(ok("host:0"), Err(AddrError::BadPort));
    assert_eq!(ok("host:65536"), Err(AddrError::BadPort));
    assert_eq!(ok("host:+80"), Err(AddrError::BadPort));
    assert_eq!(ok("host:"), Err(AddrError::BadPort));
    assert_eq!(ok(":80"), Err(AddrError::BadHost));
    assert_eq!(ok(""), Err(AddrError::BadHost));
    assert_eq!(ok("a b"), Err(AddrError::BadHost));
    assert_eq!(ok("[::1"), Err(AddrError::BadHost));
    assert_eq!(ok("[]:80"), Err(AddrError::BadHost));
    assert_eq!(ok("[::1]x"), Err(AddrError::BadHost));
    assert_eq!(ok(&"h".repeat(300)), Err(AddrError::TooLong));
}
