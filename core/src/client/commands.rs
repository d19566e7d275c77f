//! The user's lines: commands at the prompt and messages in a chat room.

use crate::limits::{MAX_DATAGRAM, MAX_ROOM_NAME};
use crate::parse::parse_command;
use crate::wire::{Command, CommandKind, Room, RoomName, encode_command, is_valid_room_name};

use super::render::{Clean, Quote, make_text};
use super::{
    ChatName, Client, Conn, Datagram, LEAVE_CHAT_BYTE, Mode, Output, Pending, Purpose, Request,
    Sent, ServerAddr, fnv1a, parse_server_addr,
};

/// Whether `line` is the `quit` (or `exit`) command, with or without words
/// after it, as [`Client::command_line`] reads it.
pub(super) fn is_quit(line: &[u8]) -> bool {
    let Ok(text) = core::str::from_utf8(line) else {
        return false;
    };
    text.split_whitespace()
        .next()
        .is_some_and(|verb| verb.eq_ignore_ascii_case("quit") || verb.eq_ignore_ascii_case("exit"))
}

impl Client {
    // ---- user lines ----

    pub(super) fn user_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&LEAVE_CHAT_BYTE) {
            self.leave_chat_or_hint();
            return;
        }
        let Ok(text) = core::str::from_utf8(line) else {
            say!(self, "That line is not valid UTF-8, so it was ignored.");
            return;
        };
        if self.chat.is_some() {
            self.chat_line(text);
        } else if self.ready_for_input() {
            self.command_line(text);
        } else if is_quit(line) {
            // Never held up by a server that is slow to answer.
            self.quit();
        } else if let Some(room) = &self.joining {
            say!(
                self,
                "Still joining chat room {}; '{}' was ignored. Wait for the prompt.",
                Clean(&room.name),
                Quote(text.as_bytes())
            );
        } else {
            say!(
                self,
                "Still waiting for the directory server; '{}' was ignored. Wait for the prompt.",
                Quote(text.as_bytes())
            );
        }
    }

    fn chat_line(&mut self, text: &str) {
        match text.trim() {
            "" => return,
            "/leave" => return self.leave_when_sent(),
            "/help" => return self.help(),
            "/who" => return self.who(),
            _ => {}
        }
        if self.leave_when_sent {
            say!(
                self,
                "You are leaving this room once your last lines are out; '{}' was not sent.",
                Quote(text.as_bytes())
            );
            return;
        }
        if self.session_send(text) {
            return;
        }
        let mut payload = Datagram::new();
        let fits = payload
            .extend_from_slice(self.name.as_str().as_bytes())
            .is_ok()
            && payload.extend_from_slice(b": ").is_ok()
            && payload.extend_from_slice(text.as_bytes()).is_ok();
        if !fits {
            let size = self.name.as_str().len() + 2 + text.len();
            say!(
                self,
                "That message was not sent: it is {size} bytes with your name, and one \
                 message carries at most {MAX_DATAGRAM}. Split it into shorter lines."
            );
            return;
        }
        if self.sent.is_full() {
            let _ = self.sent.pop_front();
        }
        let _ = self.sent.push_back(Sent {
            hash: fnv1a(&payload),
            at: self.now,
        });
        self.emit(Output::SendDatagram(payload));
    }

    fn command_line(&mut self, text: &str) {
        let text = text.trim();
        let mut words = text.split_whitespace();
        let Some(verb) = words.next() else {
            return;
        };
        let rest = text[verb.len()..].trim();
        let args = rest.split_whitespace().count();
        let is = |word: &str| verb.eq_ignore_ascii_case(word);
        if is("help") || verb == "?" {
            self.help();
        } else if is("quit") || is("exit") {
            self.quit();
        } else if is("connect") {
            if args > 1 {
                say!(self, "usage: connect [HOST[:PORT]]");
            } else {
                self.connect(rest);
            }
        } else if is("who") && args == 0 {
            self.who();
        } else if is("bye") {
            self.bye();
        } else if is("name") {
            self.name_command(rest);
        } else if is("chat") {
            if args != 1 {
                say!(
                    self,
                    "usage: chat <room>  (type 'getdir' when connected to list the rooms)"
                );
            } else {
                self.chat_command(rest);
            }
        } else if is("makeroom") && super::private::wants_private(rest) {
            self.make_private(rest);
        } else {
            self.server_command(verb, text);
        }
    }

    fn help(&mut self) {
        match self.mode() {
            Mode::Main => say!(
                self,
                "Commands (you are not connected to a directory server):\n  \
                 connect [HOST[:PORT]]   connect to the directory server (now {})\n  \
                 name [NAME]             show or set your chat name (now {})\n  \
                 chat <room>             enter a chat room (looked up on the server;\n                          \
                 a private one asks for its passphrase)\n  \
                 help                    show this list\n  \
                 quit                    leave roomcast (Ctrl-D does the same)\n\
                 Once connected: getdir, getroom, makeroom (--private), deleteroom, bye.",
                self.server,
                self.name
            ),
            Mode::Connected => say!(
                self,
                "Commands (connected to {}):\n  \
                 getdir                  list the chat rooms\n  \
                 makeroom <name>         create a room; the server picks its address\n  \
                 makeroom <name> <address> <port>\n                          \
                 create a room on this group (239.0.0.0/8, ff14/ff15/ff18::/16)\n  \
                 makeroom <name> [<address> <port>] --private\n                          \
                 create a private room: only people with its passphrase\n                          \
                 can read it (you choose the passphrase)\n  \
                 getroom <name>          show one room, and whether it is private\n  \
                 deleteroom <name> [<token>]\n                          \
                 delete a room you made (its token is sent for you)\n  \
                 chat <room>             enter a chat room\n  \
                 name [NAME]             show or set your chat name (now {})\n  \
                 bye                     close the connection to the server\n  \
                 help                    show this list\n  \
                 quit                    leave roomcast",
                self.conn_server(),
                self.name
            ),
            Mode::Chat => {
                let room = self
                    .chat
                    .as_ref()
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                let private = if self.session.as_ref().is_some_and(|s| s.is_private()) {
                    " The room is private: only people with its passphrase can read it."
                } else {
                    ""
                };
                say!(
                    self,
                    "You are in chat room {} as {}.{private} Type a message and press Enter \
                     to send it to everyone in the room.\n  \
                     /me TEXT  an action: others see '* {} TEXT'\n  \
                     /who      who is in the room\n  \
                     Ctrl-]    leave the room (or type /leave)\n  \
                     /help     show this help\n  \
                     Ctrl-D    quit roomcast (on an empty line)",
                    Clean(&room),
                    self.name,
                    self.name
                );
            }
        }
    }

    pub(super) fn quit(&mut self) {
        self.deriving = None;
        self.room_key = None;
        self.end_session();
        if self.chat.take().or_else(|| self.joining.take()).is_some() {
            self.emit(Output::LeaveGroup);
        }
        if !matches!(self.conn, Conn::None) {
            self.reset_connection();
        }
        say!(self, "Goodbye.");
        self.emit(Output::Exit);
        self.exited = true;
    }

    fn connect(&mut self, target: &str) {
        if let Conn::Open { server, .. } = &self.conn {
            let server = server.clone();
            say!(
                self,
                "You are already connected to {server}. Type 'bye' first to connect elsewhere."
            );
            return;
        }
        let known = self
            .config
            .known_servers
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(target));
        let server = if target.is_empty() {
            self.server.clone()
        } else if let Some(known) = known {
            known.addr.clone()
        } else {
            match parse_server_addr(target, self.config.default_port) {
                Ok(server) => server,
                Err(e) => {
                    say!(self, "'{}': {e}.", Clean(target));
                    return;
                }
            }
        };
        self.start_connect(server, Purpose::Interactive);
    }

    fn start_connect(&mut self, server: ServerAddr, purpose: Purpose) {
        let what = match &purpose {
            Purpose::Interactive => "",
            Purpose::Lookup(_) => " to look up the room",
        };
        say!(self, "Connecting to {server}{what}...");
        self.emit(Output::Connect {
            server: server.clone(),
        });
        self.conn = Conn::Connecting {
            server,
            purpose,
            deadline: self.now + self.config.connect_timeout,
        };
    }

    fn bye(&mut self) {
        if self.interactive() {
            self.send_request(Request::Bye, &Command::Bye);
        } else {
            say!(
                self,
                "You are not connected to a directory server (type 'connect' to connect)."
            );
        }
    }

    fn name_command(&mut self, rest: &str) {
        if rest.is_empty() {
            say!(
                self,
                "Your chat name is {}. Change it with: name <chat name>",
                self.name
            );
            return;
        }
        match ChatName::new(rest) {
            Ok(name) => {
                self.name = name;
                say!(
                    self,
                    "Your chat name is now {}. Your messages will read \"{}: ...\".",
                    self.name,
                    self.name
                );
            }
            Err(e) => say!(self, "That name was not taken: {e}."),
        }
    }

    fn chat_command(&mut self, room: &str) {
        if !is_valid_room_name(room) {
            say!(
                self,
                "'{}' is not a room name: room names have 1-{MAX_ROOM_NAME} printable \
                 characters and no spaces.",
                Clean(room)
            );
            return;
        }
        let name = RoomName::try_from(room).unwrap_or_default();
        // A key is for the room it was checked for only.
        self.room_key = None;
        match self.conn {
            Conn::Open { .. } => {
                self.send_request(Request::GetRoom(name.clone()), &Command::GetRoom(name));
            }
            _ => {
                let server = self.server.clone();
                self.start_connect(server, Purpose::Lookup(name));
            }
        }
    }

    fn server_command(&mut self, verb: &str, text: &str) {
        let known = CommandKind::ALL
            .into_iter()
            .find(|k| k.verb().eq_ignore_ascii_case(verb));
        let Some(kind) = known else {
            say!(
                self,
                "'{}' is not a command. Type 'help' for the commands.",
                Quote(verb.as_bytes())
            );
            return;
        };
        if !self.interactive() {
            say!(
                self,
                "'{}' needs a connection to the directory server: type 'connect' first \
                 (or 'connect HOST:PORT').",
                kind.verb()
            );
            return;
        }
        match parse_command(text.as_bytes()) {
            Ok(command) => {
                let request = match &command {
                    Command::GetDir => Request::GetDir,
                    Command::MakeRoom(room) => Request::MakeRoom(room.name.clone()),
                    Command::AllocRoom(name) => Request::MakeRoom(name.clone()),
                    Command::DeleteRoom(name, _) => Request::DeleteRoom(name.clone()),
                    Command::Ping => Request::Ping,
                    Command::GetRoom(name) => Request::ShowRoom(name.clone()),
                    // A salt is good for the connection's next private
                    // makeroom only, with a verifier derived from it:
                    // `makeroom NAME --private` does both.
                    Command::Salt | Command::MakePrivate(..) | Command::AllocPrivate(..) => {
                        say!(
                            self,
                            "To make a private room, type: makeroom <name> [<address> <port>] \
                             --private (roomcast asks the server for the salt and sends the \
                             verifier of your passphrase itself)."
                        );
                        return;
                    }
                    // `help` and `bye` are the client's own; never here.
                    Command::Help | Command::Bye => return,
                };
                self.send_request(request, &command);
            }
            Err(e) => {
                // The error quotes what the user typed: keep it printable.
                let text = make_text(format_args!("{e}"));
                say!(self, "{}", Clean(&text));
            }
        }
    }

    pub(super) fn send_request(&mut self, request: Request, command: &Command) {
        let Conn::Open { last_send, .. } = &mut self.conn else {
            return;
        };
        *last_send = self.now;
        let line = encode_command(command);
        self.push_pending(request);
        self.emit(Output::SendLine(line));
    }

    pub(super) fn push_pending(&mut self, request: Request) {
        if self.pending.is_full() {
            // Cannot happen while the host respects `ready_for_input`.
            self.drop_connection(make_text(format_args!(
                "Too many requests without answers; the connection was closed."
            )));
            return;
        }
        let _ = self.pending.push_back(Pending {
            request,
            sent: self.now,
        });
    }

    // ---- chat mode ----

    pub(super) fn leave_chat_or_hint(&mut self) {
        if self.chat.is_some() || self.joining.is_some() {
            self.leave_chat();
        } else {
            say!(self, "Ctrl-] leaves a chat room; you are not in one.");
        }
    }

    /// Leaves the room, or gives up joining it.
    /// `/leave`: leaves the room once the lines still in the send queue
    /// are out (a script's lines before its `/leave` all go out), at once
    /// if there are none.
    fn leave_when_sent(&mut self) {
        let waiting = self
            .session
            .as_ref()
            .map_or(0, crate::chat::Session::queued);
        if waiting == 0 {
            return self.leave_chat();
        }
        self.leave_when_sent = true;
        say!(
            self,
            "{waiting} of your lines are still going out (at most {} a second); you leave the \
             room once they are sent (Ctrl-] leaves at once, without them).",
            crate::chat::limits::SEND_RATE
        );
    }

    pub(super) fn leave_chat(&mut self) {
        self.room_key = None;
        self.end_session();
        if let Some(room) = self.chat.take().or_else(|| self.joining.take()) {
            self.emit(Output::LeaveGroup);
            self.sent.clear();
            let back = if self.interactive() {
                "the connected prompt"
            } else {
                "the main prompt"
            };
            say!(
                self,
                "You left chat room {}; back at {back}.",
                Clean(&room.name)
            );
        }
    }

    /// Asks the host to join `room`'s group; the room is entered once the
    /// host says it is joined.
    pub(super) fn join_room(&mut self, room: Room) {
        self.emit(Output::JoinGroup {
            group: room.group,
            port: room.port,
        });
        self.joining = Some(room);
    }

    /// The host joined `room`'s group: the user is in the room now, and
    /// only now reads so.
    pub(super) fn enter_chat(&mut self, room: Room) {
        let private = self.room_key.is_some();
        self.chat = Some(room.clone());
        if !self.start_session() {
            // A private room is never entered without its sealed session.
            self.chat = None;
            self.emit(Output::LeaveGroup);
            return;
        }
        let kind = if private {
            "\nThe room is private: messages are encrypted, and only people with its \
             passphrase can read them."
        } else {
            ""
        };
        say!(
            self,
            "Entering chat room {} ({} port {}) as {}.{kind}\nType a message and press Enter \
             to send it; Ctrl-] (or /leave) leaves the room.",
            Clean(&room.name),
            room.group,
            room.port,
            self.name
        );
    }
}
