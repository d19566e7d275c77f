//! Chat names and server addresses.

use super::*;

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
