//! Directory tests: each rule at its edge, and a model test under random
//! makeroom/deleteroom sequences.

use super::*;
use crate::wire::RoomName;
use core::net::Ipv4Addr;
use proptest::prelude::*;
use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet};
use std::string::{String, ToString};
use std::vec::Vec;

fn room(name: &str, group: [u8; 4], port: u16) -> Room {
    Room {
        name: RoomName::try_from(name).unwrap(),
        group: Ipv4Addr::from(group).into(),
        port,
    }
}

/// The `i`th of many distinct rooms, each with its own address.
fn nth_room(i: usize) -> Room {
    let [_, _, b, c] = u32::try_from(i).unwrap().to_be_bytes();
    room(&std::format!("room{i:05}"), [239, 0, b, c], 5000)
}

fn names(dir: &Directory) -> Vec<&str> {
    dir.rooms().iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn insert_get_remove() {
    let mut dir = Directory::new();
    assert!(dir.is_empty());
    assert_eq!(dir.get("Lobby"), None);

    let lobby = room("Lobby", [239, 1, 1, 1], 5000);
    assert_eq!(dir.insert(lobby.clone()), Ok(()));
    assert_eq!((dir.len(), dir.is_empty()), (1, false));
    assert_eq!(dir.get("Lobby"), Some(&lobby));
    // Lookups ignore ASCII case.
    assert_eq!(dir.get("LOBBY"), Some(&lobby));
    assert_eq!(dir.get("lobby"), Some(&lobby));
    assert_eq!(dir.get("Lobb"), None);
    assert_eq!(dir.get("Lobbyy"), None);

    // Removal ignores case too, and returns the room as it was stored.
    assert_eq!(dir.remove("lObBy"), Ok(lobby));
    assert!(dir.is_empty());
    assert_eq!(dir.get("Lobby"), None);
}

#[test]
fn names_are_unique_ignoring_ascii_case() {
    let mut dir = Directory::new();
    let lobby = room("Lobby", [239, 1, 1, 1], 5000);
    dir.insert(lobby.clone()).unwrap();
    let err = dir.insert(room("lobby", [239, 2, 2, 2], 6000)).unwrap_err();
    // The error carries the room that holds the name, as stored.
    assert_eq!(err, DirectoryError::NameTaken(lobby.clone()));
    assert_eq!(err.code(), ErrorCode::NameTaken);
    let msg = err.to_string();
    assert!(msg.contains("'Lobby'"), "{msg}");
    assert_eq!(dir.rooms(), core::slice::from_ref(&lobby));

    // Case is folded beyond ASCII too (Unicode case folding): one room.
    let e = room("é", [239, 3, 3, 3], 5000);
    dir.insert(e.clone()).unwrap();
    let err = dir.insert(room("É", [239, 4, 4, 4], 5000)).unwrap_err();
    assert_eq!(err, DirectoryError::NameTaken(e));
    assert_eq!(dir.len(), 2);
}

/// Issue 13.10: two rooms cannot look the same.
#[test]
fn names_that_look_alike_are_one_room() {
    let mut dir = Directory::new();
    let lobby = room("lobby", [239, 1, 1, 1], 5000);
    dir.insert(lobby.clone()).unwrap();
    // Cyrillic о (U+043E), Greek ο (U+03BF), digit 1 for l, capital I for
    // l, capitals, Cyrillic capital О.
    for twin in [
        "l\u{43e}bby",
        "l\u{3bf}bby",
        "1obby",
        "Iobby",
        "LOBBY",
        "L\u{41e}BBY",
    ] {
        let err = dir.insert(room(twin, [239, 2, 2, 2], 6000)).unwrap_err();
        assert_eq!(err, DirectoryError::NameTaken(lobby.clone()), "{twin}");
        assert_eq!(err.code(), ErrorCode::NameTaken);
        // Looked up and deleted by a look-alike name too.
        assert_eq!(dir.get(twin), Some(&lobby), "{twin}");
    }
    // The other way round: the Cyrillic room first.
    let mut dir = Directory::new();
    let cyr = room("l\u{43e}bby", [239, 1, 1, 1], 5000);
    dir.insert(cyr.clone()).unwrap();
    assert_eq!(
        dir.insert(room("lobby", [239, 2, 2, 2], 6000)),
        Err(DirectoryError::NameTaken(cyr.clone()))
    );
    assert_eq!(dir.remove("lobby"), Ok(cyr));
    assert!(dir.is_empty());

    // Precomposed à (U+00E0) and a + U+0300 are the same room, whichever
    // comes first (the parser refuses the second form; the directory would
    // not hold both either).
    let mut dir = Directory::new();
    let composed = room("\u{e0}", [239, 1, 1, 1], 5000);
    dir.insert(composed.clone()).unwrap();
    assert_eq!(
        dir.insert(room("a\u{300}", [239, 2, 2, 2], 6000)),
        Err(DirectoryError::NameTaken(composed))
    );
    let mut dir = Directory::new();
    let combining = room("a\u{300}", [239, 1, 1, 1], 5000);
    dir.insert(combining.clone()).unwrap();
    assert_eq!(
        dir.insert(room("\u{e0}", [239, 2, 2, 2], 6000)),
        Err(DirectoryError::NameTaken(combining))
    );

    // Different names stay different.
    let mut dir = Directory::new();
    for name in [
        "lobby",
        "lobby2",
        "hall",
        "\u{e0}",
        "a",
        "\u{445}\u{43e}\u{43b}",
    ] {
        dir.insert(room(name, [239, 9, 9, dir.len() as u8], 5000))
            .unwrap();
    }
    assert_eq!(dir.len(), 6);
}

#[test]
fn an_address_clash_names_the_holder() {
    let mut dir = Directory::new();
    let lobby = room("Lobby", [239, 1, 1, 1], 5000);
    dir.insert(lobby.clone()).unwrap();
    let err = dir.insert(room("Other", [239, 1, 1, 1], 5000)).unwrap_err();
    assert_eq!(err, DirectoryError::AddressInUse(lobby.clone()));
    assert_eq!(err.code(), ErrorCode::AddressInUse);
    let msg = err.to_string();
    assert!(msg.contains("239.1.1.1:5000"), "{msg}");
    assert!(msg.contains("'Lobby'"), "{msg}");
    assert_eq!(dir.rooms(), core::slice::from_ref(&lobby));

    // The same address on another port, or the same port on another
    // address, is fine.
    dir.insert(room("Other", [239, 1, 1, 1], 5001)).unwrap();
    dir.insert(room("Third", [239, 1, 1, 2], 5000)).unwrap();
    assert_eq!(names(&dir), ["Lobby", "Other", "Third"]);

    // Once the holder is gone, its address is free again.
    dir.remove("Lobby").unwrap();
    dir.insert(room("Fourth", [239, 1, 1, 1], 5000)).unwrap();
}

#[test]
fn a_name_clash_is_reported_before_an_address_clash() {
    let mut dir = Directory::new();
    let a = room("a", [239, 1, 1, 1], 5000);
    dir.insert(a.clone()).unwrap();
    dir.insert(room("b", [239, 2, 2, 2], 5000)).unwrap();
    assert_eq!(
        dir.insert(room("A", [239, 2, 2, 2], 5000)),
        Err(DirectoryError::NameTaken(a))
    );
}

#[test]
fn rooms_are_sorted_ignoring_case() {
    let mut dir = Directory::new();
    for (i, n) in [
        "delta", "Bravo", "alpha", "Charlie", "_x", "Zulu", "a", "ab",
    ]
    .into_iter()
    .enumerate()
    {
        dir.insert(room(n, [239, 0, 0, u8::try_from(i).unwrap()], 5000))
            .unwrap();
    }
    // Byte-wise after lowercasing: '_' (0x5f) sorts before 'a' (0x61).
    assert_eq!(
        names(&dir),
        [
            "_x", "a", "ab", "alpha", "Bravo", "Charlie", "delta", "Zulu"
        ]
    );
    assert_eq!(cmp_names("Bravo", "alpha"), Ordering::Greater);
    assert_eq!(cmp_names("ABC", "abc"), Ordering::Equal);
    assert_eq!(cmp_names("ab", "ABC"), Ordering::Less);
}

#[test]
fn full_at_exactly_max_rooms() {
    // Boxed: a full directory is a few hundred KiB.
    let mut dir = Box::new(Directory::new());
    for i in 0..MAX_ROOMS {
        assert_eq!(dir.insert(nth_room(i)), Ok(()), "room {i}");
    }
    assert_eq!(dir.len(), MAX_ROOMS);

    let before: Vec<Room> = dir.rooms().to_vec();
    let extra = room("extra", [239, 255, 255, 255], 65535);
    let err = dir.insert(extra.clone()).unwrap_err();
    assert_eq!(err, DirectoryError::Full);
    assert_eq!(err.code(), ErrorCode::Full);
    assert!(err.to_string().contains("4096"), "{err}");
    assert_eq!(
        dir.rooms(),
        before.as_slice(),
        "a refused insert changed the directory"
    );

    // Name and address checks still come first on a full directory.
    assert_eq!(
        dir.insert(room("ROOM00007", [239, 255, 255, 255], 65535)),
        Err(DirectoryError::NameTaken(nth_room(7)))
    );
    assert_eq!(
        dir.insert(room("extra", [239, 0, 0, 9], 5000)),
        Err(DirectoryError::AddressInUse(nth_room(9)))
    );

    // Room again after one delete.
    dir.remove("room00100").unwrap();
    assert_eq!(dir.insert(extra.clone()), Ok(()));
    assert_eq!(dir.len(), MAX_ROOMS);
    assert_eq!(dir.get("EXTRA"), Some(&extra));
}

#[test]
fn removing_an_unknown_room_is_an_error() {
    let mut dir = Directory::new();
    let err = dir.remove("ghost").unwrap_err();
    assert_eq!(err, DirectoryError::NoSuchRoom);
    assert_eq!(err.code(), ErrorCode::NoSuchRoom);
    assert!(!err.to_string().is_empty());

    dir.insert(room("real", [239, 1, 1, 1], 5000)).unwrap();
    assert_eq!(dir.remove("rea"), Err(DirectoryError::NoSuchRoom));
    assert_eq!(dir.remove("reall"), Err(DirectoryError::NoSuchRoom));
    assert_eq!(dir.len(), 1);
    dir.remove("real").unwrap();
    assert_eq!(dir.remove("real"), Err(DirectoryError::NoSuchRoom));
}

#[test]
fn next_after_walks_in_order_and_tolerates_a_removed_cursor() {
    let mut dir = Directory::new();
    assert_eq!(dir.next_after(None), None);
    for (i, n) in ["b", "D", "f", "h"].into_iter().enumerate() {
        dir.insert(room(n, [239, 0, 0, u8::try_from(i).unwrap()], 5000))
            .unwrap();
    }
    // A full walk visits every room once, in order.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    while let Some(r) = dir.next_after(cursor.as_deref()) {
        walked.push(r.name.to_string());
        cursor = Some(r.name.to_string());
    }
    assert_eq!(walked, ["b", "D", "f", "h"]);

    let next =
        |dir: &Directory, after: &str| dir.next_after(Some(after)).map(|r| r.name.to_string());
    // The cursor compares ignoring case.
    assert_eq!(next(&dir, "B").as_deref(), Some("D"));
    assert_eq!(next(&dir, "d").as_deref(), Some("f"));
    // A cursor that is not (or no longer) in the directory.
    assert_eq!(next(&dir, "a").as_deref(), Some("b"));
    assert_eq!(next(&dir, "c").as_deref(), Some("D"));
    dir.remove("f").unwrap();
    assert_eq!(next(&dir, "f").as_deref(), Some("h"));
    assert_eq!(next(&dir, "h"), None);
    assert_eq!(next(&dir, "z"), None);
    // A room added behind the cursor is skipped, one ahead is seen.
    dir.insert(room("a0", [239, 9, 9, 9], 5000)).unwrap();
    dir.insert(room("g", [239, 9, 9, 8], 5000)).unwrap();
    assert_eq!(next(&dir, "f").as_deref(), Some("g"));
}

// ---- model test ----

#[derive(Clone, Debug)]
enum Op {
    Insert(Room),
    Remove(String),
}

/// The names the model test draws from, with which of them are the same
/// room: written out by hand, so the model does not use the code it checks.
/// `é`/`É` differ beyond ASCII case, `lobby`/`lоbby` (Cyrillic о) and
/// `rn`/`m` only look alike.
const NAME_POOL: [(&str, u8); 11] = [
    ("alpha", 0),
    ("Beta", 1),
    ("gamma", 2),
    ("x", 3),
    ("Xy", 4),
    ("é", 5),
    ("É", 5),
    ("lobby", 6),
    ("l\u{43e}bby", 6),
    ("rn", 7),
    ("m", 7),
];

/// Which room of [`NAME_POOL`] `name` (in any ASCII case) is; any other name
/// is a room of its own.
fn same_room_class(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    NAME_POOL
        .iter()
        .find(|(n, _)| n.to_ascii_lowercase() == lower)
        .map_or(lower, |(_, class)| std::format!("#{class}"))
}

/// Small pools, so that names and address/port pairs clash often. Names
/// come in several cases to exercise case folding.
fn arb_name() -> impl Strategy<Value = String> {
    (0..NAME_POOL.len(), any::<u8>()).prop_map(|(i, case)| {
        let base = NAME_POOL[i].0;
        base.chars()
            .enumerate()
            .map(|(j, c)| {
                if (case >> (j % 8)) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (arb_name(), 0..3u8, 1024..1027u16).prop_map(|(name, g, port)| {
            Op::Insert(room(&name, [239, 0, 0, g], port))
        }),
        1 => arb_name().prop_map(Op::Remove),
    ]
}

/// A plainly correct directory, on std collections.
#[derive(Default)]
struct Model {
    by_name: BTreeMap<String, Room>,
    addrs: BTreeSet<(core::net::IpAddr, u16)>,
    /// Which room (its `by_name` key) holds each `same_room_class`.
    classes: BTreeMap<String, String>,
}

impl Model {
    fn insert(&mut self, room: Room) -> Result<(), ErrorCode> {
        let key = room.name.to_ascii_lowercase();
        let class = same_room_class(&room.name);
        if self.classes.contains_key(&class) {
            return Err(ErrorCode::NameTaken);
        }
        if self.addrs.contains(&(room.group, room.port)) {
            return Err(ErrorCode::AddressInUse);
        }
        if self.by_name.len() == MAX_ROOMS {
            return Err(ErrorCode::Full);
        }
        self.addrs.insert((room.group, room.port));
        self.classes.insert(class, key.clone());
        self.by_name.insert(key, room);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<Room, ErrorCode> {
        let key = self
            .classes
            .remove(&same_room_class(name))
            .ok_or(ErrorCode::NoSuchRoom)?;
        let room = self.by_name.remove(&key).ok_or(ErrorCode::NoSuchRoom)?;
        self.addrs.remove(&(room.group, room.port));
        Ok(room)
    }
}

fn check_invariants(dir: &Directory, model: &Model) -> Result<(), TestCaseError> {
    let rooms = dir.rooms();
    prop_assert!(rooms.len() <= MAX_ROOMS);
    prop_assert_eq!(rooms.len(), dir.len());
    let mut seen_names = BTreeSet::new();
    let mut seen_addrs = BTreeSet::new();
    for r in rooms {
        prop_assert!(
            seen_names.insert(r.name.to_ascii_lowercase()),
            "duplicate name {}",
            r.name
        );
        prop_assert!(
            seen_addrs.insert((r.group, r.port)),
            "duplicate address {}:{}",
            r.group,
            r.port
        );
    }
    for pair in rooms.windows(2) {
        prop_assert_eq!(cmp_names(&pair[0].name, &pair[1].name), Ordering::Less);
    }
    // The same rooms as the model, in the same order: a map keyed by the
    // ASCII-lowercased name sorts byte-wise, exactly as `cmp_names` does.
    let want: Vec<&Room> = model.by_name.values().collect();
    let got: Vec<&Room> = rooms.iter().collect();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_directory_matches_a_simple_model(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let mut dir = Directory::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Insert(room) => {
                    let got = dir.insert(room.clone()).map_err(|e| e.code());
                    let want = model.insert(room.clone());
                    prop_assert_eq!(got, want, "insert {:?}", room);
                }
                Op::Remove(name) => {
                    let got = dir.remove(&name).map_err(|e| e.code());
                    let want = model.remove(&name);
                    prop_assert_eq!(got, want, "remove {}", name);
                }
            }
            check_invariants(&dir, &model)?;
        }
    }
}

/// The model test again, near capacity, so `Full` is decided too.
#[test]
fn model_agrees_at_capacity() {
    let mut dir = Box::new(Directory::new());
    let mut model = Model::default();
    for i in 0..MAX_ROOMS - 2 {
        let r = nth_room(i + 10);
        assert_eq!(dir.insert(r.clone()), Ok(()));
        model.insert(r).unwrap();
    }
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(32));
    let ops = proptest::collection::vec(arb_op(), 1..30);
    runner
        .run(&ops, |ops| {
            let mut dir = dir.clone();
            let mut model = Model {
                by_name: model.by_name.clone(),
                addrs: model.addrs.clone(),
                classes: model.classes.clone(),
            };
            for op in ops {
                match op {
                    Op::Insert(room) => {
                        let got = dir.insert(room.clone()).map_err(|e| e.code());
                        prop_assert_eq!(got, model.insert(room));
                    }
                    Op::Remove(name) => {
                        let got = dir.remove(&name).map_err(|e| e.code());
                        prop_assert_eq!(got, model.remove(&name));
                    }
                }
                prop_assert!(dir.len() <= MAX_ROOMS);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn each_room_keeps_its_privacy_through_inserts_and_removals() {
    use crate::privacy::{Salt, Verifier};
    use crate::wire::Privacy;
    let private = |b: u8| Privacy {
        salt: Salt([b; 16]),
        verifier: Verifier([!b; 16]),
    };
    let mut dir = Directory::new();
    let room = |name: &str, last: u8| Room {
        name: name.try_into().unwrap(),
        group: core::net::Ipv4Addr::new(239, 0, 0, last).into(),
        port: 5000,
    };
    dir.insert_new_private(room("m", 1), Owner::default(), Some(private(1)))
        .unwrap();
    dir.insert(room("z", 2)).unwrap();
    // Sorted in before both: the others keep theirs.
    dir.insert_private(room("a", 3), Owner::default(), Some(private(3)))
        .unwrap();
    assert_eq!(dir.privacy(), [Some(private(3)), Some(private(1)), None]);
    assert_eq!(dir.get_with_privacy("M").unwrap().1, Some(&private(1)));
    assert_eq!(dir.get_with_privacy("z").unwrap().1, None);
    assert_eq!(dir.get_with_privacy("nowhere"), None);
    // A refused insert changes nothing.
    assert_eq!(
        dir.insert_new_private(room("A", 9), Owner::default(), None),
        Err(DirectoryError::NameTaken(room("a", 3)))
    );
    assert_eq!(dir.privacy().len(), 3);
    let (removed, _, privacy) = dir.remove_private("a").unwrap();
    assert_eq!((removed, privacy), (room("a", 3), Some(private(3))));
    assert_eq!(dir.remove("m").unwrap(), room("m", 1));
    assert_eq!(dir.privacy(), [None]);
    // 33 bytes a room: what a private room adds to each directory.
    assert_eq!(core::mem::size_of::<Option<Privacy>>(), 33);
}
