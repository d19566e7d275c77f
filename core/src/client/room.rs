//! The room protocol inside the client: the [`Session`] of the room the
//! user is in, its frames and events turned into the client's outputs, and
//! `/who`.
//!
//! While in a room (and given random bits, [`ClientConfig::random_seed`](super::ClientConfig::random_seed)),
//! the client owns one [`Session`]. A line typed goes to
//! [`Session::handle_send`], which puts out the room-protocol frame
//! ([`Output::SendControl`]) and the plain `Name: text` datagram
//! ([`Output::SendDatagram`], byte for byte what the original assignment's
//! clients send and read). Datagrams from both ports go to the session,
//! which shows each message once, in its sender's order, whichever form
//! arrives first (the dedupe rule: PROTOCOL.md, "Two ports, one group").
//! Its events become what the user reads:
//!
//! - a message: `Ann: text`, exactly as a plain datagram would show;
//! - history: [`Message::History`] (`[history 10:02] Ann: text` on screen);
//! - a loss: `[2 messages from Ann could not be recovered]`;
//! - presence: `Ann joined`, `Ann left`, `Ann left (not heard from for 15 s)`;
//! - in a private room, what was refused (never shown as text):
//!   `[3 messages could not be decrypted: wrong passphrase, not for this
//!   room, or the room was made again]`, `[2 messages refused: sent more
//!   than 2 min ago, or a clock is off]`, `[4 unencrypted datagrams
//!   ignored: this room is private]` (plain `Name: text` datagrams, and
//!   anything on the control port that is not sealed).
//!
//! In a private room the session is sealed
//! ([`Session::new_private`]): frames go out sealed on the control port
//! only, with no plain copy, and the session takes in only sealed frames.
//! Without the session the room is not entered at all.

use core::fmt::Write as _;
use core::net::SocketAddr;

use crate::chat::limits::MAX_MEMBERS;
use crate::chat::{Channel, Event, MemberId, Sealing, Session, Transmit, UsageError};
use crate::limits::MAX_TEXT;

use super::render::{Clean, make_text};
use super::{Client, Datagram, Message, Output, Text};

/// How many screen chunks (of up to [`MAX_TEXT`] bytes) one `/who` answer
/// may take: enough for [`MAX_MEMBERS`] lines of the longest names; a
/// longer list is cut with a note.
pub(super) const WHO_CHUNKS: usize = 16;

/// The longest one `/who` line gets (a name is cut to fit).
const WHO_LINE: usize = 240;

/// splitmix64: turns the host's random seed into member ids and timer seeds.
pub(super) fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn transmit_output(t: Transmit) -> Output {
    match t.channel {
        // A plain copy is never longer than a plain datagram.
        Channel::Plain => Output::SendDatagram(Datagram::from_slice(&t.data).unwrap_or_default()),
        Channel::Control => Output::SendControl(t.data),
    }
}

/// `secs` as a person reads an idle time: `4 s`, `3 min`, `2 h`.
fn idle(secs: u64) -> heapless::String<16> {
    let mut s = heapless::String::new();
    let _ = if secs < 120 {
        write!(s, "{secs} s")
    } else if secs < 2 * 3600 {
        write!(s, "{} min", secs / 60)
    } else {
        write!(s, "{} h", secs / 3600)
    };
    s
}

impl Client {
    /// Starts the room protocol in the room just entered, if the host gave
    /// random bits; sealed, in a private room. False if a private room
    /// could not have its session (the caller leaves it).
    pub(super) fn start_session(&mut self) -> bool {
        self.session = None;
        let key = self.room_key.take();
        let Some(state) = self.random.as_mut() else {
            return key.is_none();
        };
        let id = MemberId(next_random(state));
        let seed = next_random(state);
        if let Some(key) = key {
            let sealing = Sealing::new(&key.frame, key.sealer, key.anchor, key.wall_ms);
            return match Session::new_private(self.now, id, self.name.as_str(), seed, sealing) {
                Ok(session) => {
                    self.session = Some(session);
                    true
                }
                Err(e) => {
                    say!(self, "The private room cannot be entered: {e}.");
                    false
                }
            };
        }
        match Session::new(self.now, id, self.name.as_str(), seed) {
            Ok(session) => self.session = Some(session),
            Err(e) => say!(
                self,
                "The room protocol is off in this room ({e}); messages go out as plain \
                 datagrams only."
            ),
        }
        true
    }

    /// Leaves the room protocol: the goodbye goes out before the host
    /// leaves the group.
    pub(super) fn end_session(&mut self) {
        let unsent = self.session.as_ref().map_or(0, Session::queued);
        if let Some(session) = self.session.as_mut() {
            session.handle_leave(self.now);
        }
        if unsent > 0 {
            let plural = if unsent == 1 { "line" } else { "lines" };
            say!(
                self,
                "{unsent} {plural} you sent had not gone out yet and {} not sent.",
                if unsent == 1 { "was" } else { "were" }
            );
        }
        while let Some(t) = self.session.as_mut().and_then(Session::poll_transmit) {
            self.emit(transmit_output(t));
        }
        self.session = None;
        self.who_out.clear();
    }

    /// Sends a line typed in the room through the session; false if there
    /// is no session (the caller sends it plain).
    pub(super) fn session_send(&mut self, text: &str) -> bool {
        let now = self.now;
        let Some(session) = self.session.as_mut() else {
            return false;
        };
        match session.handle_send(now, text) {
            Ok(()) if session.is_private() => {
                let payload = chat_payload(self.name.as_str(), text);
                self.emit(Output::Sent(payload));
            }
            Ok(()) => {}
            Err(UsageError::TooLong) => say!(
                self,
                "That message was not sent: it is {} bytes, and one message carries at most \
                 {}. Split it into shorter lines.",
                text.len(),
                crate::chat::limits::MAX_MESSAGE
            ),
            Err(e) => say!(self, "That message was not sent: {e}."),
        }
        true
    }

    /// A datagram of the room on `channel` from `from`, for the session.
    /// False if there is no session.
    pub(super) fn session_datagram(
        &mut self,
        channel: Channel,
        from: SocketAddr,
        data: &[u8],
    ) -> bool {
        let now = self.now;
        match self.session.as_mut() {
            Some(session) => {
                session.handle_datagram(now, from, channel, data);
                true
            }
            None => false,
        }
    }

    /// Moves one thing the session has (a `/who` chunk, a frame or an
    /// event) to the outputs; false if it has nothing.
    pub(super) fn flush_session(&mut self) -> bool {
        if let Some(text) = self.who_out.pop_front() {
            self.show(text);
            return true;
        }
        let Some(session) = self.session.as_mut() else {
            return false;
        };
        if let Some(t) = session.poll_transmit() {
            self.emit(transmit_output(t));
            return true;
        }
        let Some(event) = session.poll_event() else {
            return false;
        };
        match event {
            Event::Message {
                name,
                text,
                already_shown,
                ..
            } => {
                if !already_shown {
                    let payload = chat_payload(&name, &text);
                    self.emit(Output::Show(Message::Chat {
                        payload,
                        truncated: false,
                    }));
                }
            }
            Event::History {
                name, text, age, ..
            } => {
                let payload = chat_payload(&name, &text);
                self.emit(Output::Show(Message::History { payload, age }));
            }
            Event::Lost { from, name, count } => {
                let plural = if count == 1 { "message" } else { "messages" };
                if name.is_empty() {
                    say!(
                        self,
                        "[{count} {plural} from member {from} could not be recovered]"
                    );
                } else {
                    say!(
                        self,
                        "[{count} {plural} from {} could not be recovered]",
                        Clean(&name)
                    );
                }
            }
            Event::Plain { data, .. } => {
                self.emit(Output::Show(Message::Chat {
                    payload: data,
                    truncated: false,
                }));
            }
            Event::Refused {
                undecryptable,
                stale,
                plain,
            } => self.refused(undecryptable, stale, plain),
            Event::Joined { id, name, .. } => {
                let tag = self.tag(id, &name);
                say!(self, "{}{tag} joined", Clean(&name));
            }
            Event::Left {
                id,
                name,
                timed_out,
            } => {
                let tag = self.tag(id, &name);
                if timed_out {
                    let secs = crate::chat::limits::MEMBER_TIMEOUT.as_secs();
                    say!(
                        self,
                        "{}{tag} left (not heard from for {secs} s)",
                        Clean(&name)
                    );
                } else {
                    say!(self, "{}{tag} left", Clean(&name));
                }
            }
        }
        true
    }

    /// Tells what a private session refused (see the module docs).
    fn refused(&mut self, undecryptable: u32, stale: u32, plain: u32) {
        let s = |n: u32| if n == 1 { "" } else { "s" };
        if undecryptable > 0 {
            say!(
                self,
                "[{undecryptable} message{} could not be decrypted: wrong passphrase, not for \
                 this room, or the room was made again]",
                s(undecryptable)
            );
        }
        if stale > 0 {
            let skew = crate::chat::MAX_CLOCK_SKEW.as_secs() / 60;
            say!(
                self,
                "[{stale} message{} refused: sent more than {skew} min ago, or a clock is off]",
                s(stale)
            );
        }
        if plain > 0 {
            say!(
                self,
                "[{plain} unencrypted datagram{} ignored: this room is private]",
                s(plain)
            );
        }
    }

    /// ` #1a2b` if another member (or the user) has the same name as
    /// member `id`, so the two are told apart; else empty.
    fn tag(&self, id: MemberId, name: &str) -> heapless::String<8> {
        let mut tag = heapless::String::new();
        let Some(session) = &self.session else {
            return tag;
        };
        let same = name == self.name.as_str()
            || session
                .members()
                .any(|m| m.name == name && m.id.is_some_and(|other| other != id));
        if same {
            let _ = write!(tag, " #{id}");
        }
        tag
    }

    /// `/who`: the room's members, the user first.
    pub(super) fn who(&mut self) {
        self.who_out.clear();
        let Some(room) = &self.chat else {
            say!(
                self,
                "You are not in a chat room. Type 'chat ROOM' to enter one; there, /who lists \
                 who is in it."
            );
            return;
        };
        let room = room.name.clone();
        let Some(session) = &self.session else {
            say!(
                self,
                "Who is in room {} is not known: the room protocol is off here.",
                Clean(&room)
            );
            return;
        };
        let now = self.now;
        let count = session.members().count() + 1;
        let mut chunks: heapless::Deque<Text, WHO_CHUNKS> = heapless::Deque::new();
        let mut chunk = make_text(format_args!(
            "In room {} ({count} here):\n  {} (you)",
            Clean(&room),
            self.name
        ));
        let mut cut = false;
        for m in session.members() {
            let same = m.name == self.name.as_str()
                || session
                    .members()
                    .filter(|o| o.name == m.name && o.addr != m.addr)
                    .count()
                    > 0;
            let mut line: heapless::String<WHO_LINE> = heapless::String::new();
            let mut name = super::render::Truncating(heapless::String::<128>::new());
            let _ = write!(name, "{}", Clean(m.name));
            let idle = idle(now.saturating_since(m.last_heard).as_secs());
            let _ = match m.id {
                Some(id) if same => write!(line, "\n  {} #{id}", name.0),
                Some(_) => write!(line, "\n  {}", name.0),
                None => write!(line, "\n  {} (plain client)", name.0),
            };
            let _ = write!(line, "  {}  idle {idle}", m.addr);
            if chunk.len() + line.len() > MAX_TEXT {
                let full = core::mem::replace(&mut chunk, Text::new());
                if chunks.push_back(full).is_err() {
                    cut = true;
                    break;
                }
                let _ = chunk.push_str(line.trim_start_matches('\n'));
            } else {
                let _ = chunk.push_str(&line);
            }
        }
        if cut || chunks.push_back(chunk).is_err() {
            let _ = chunks.pop_back();
            let _ = chunks.push_back(make_text(format_args!(
                "(the list is cut: more than {MAX_MEMBERS} lines)"
            )));
        }
        self.who_out = chunks;
    }
}

/// `Name: text`, the plain form of a message.
fn chat_payload(name: &str, text: &str) -> Datagram {
    let mut payload = Datagram::new();
    let _ = payload.extend_from_slice(name.as_bytes());
    let _ = payload.extend_from_slice(b": ");
    let _ = payload.extend_from_slice(text.as_bytes());
    payload
}
