//! The directory server's replies: the greeting, `OK`/`ERR` lines, and
//! listings shown as a table or searched for one room.

use core::fmt::Write as _;

use crate::error::ErrorCode;
use crate::limits::{MAX_ROOM_LINE, MAX_ROOM_NAME, MAX_ROOMS};
use crate::owner::Token;
use crate::parse::{parse_full_room_line, parse_reply_line, parse_room_line};
use crate::server::PROTOCOL_VERSION;
use crate::time::Instant;
use crate::wire::{Command, ReplyLine};

use super::render::{Clean, fmt_len};
use super::{Client, Conn, Listing, Output, Pending, Purpose, Request};
use crate::text;

/// The port column's width when a column follows it: 5 digits at most.
const PORT_WIDTH: usize = 5;

impl Client {
    // ---- server lines ----

    pub(super) fn server_line(&mut self, line: &[u8]) {
        if !matches!(self.conn, Conn::Open { .. }) {
            return;
        }
        if self.listing.is_some() {
            return self.listing_line(line);
        }
        let Some(front) = self.pending.front() else {
            return self.protocol_error("a line nobody asked for", line);
        };
        let request = front.request.clone();
        let sent = front.sent;
        let reply = match parse_reply_line(line) {
            Ok(reply) => reply,
            Err(_) => return self.protocol_error("a line that is not a reply", line),
        };
        if request == Request::Greeting
            && let ReplyLine::Ok(text) = reply
            && text.split(' ').next() != Some(PROTOCOL_VERSION)
        {
            return self.protocol_error("a greeting that is not CRDP/1", line);
        }
        let _ = self.pending.pop_front();
        match reply {
            ReplyLine::Ok(text) => {
                self.keep_owner_token(&request, text);
                self.reply_ok(request, sent, text)
            }
            ReplyLine::Err { token, message, .. } => self.reply_err(request, token, message),
        }
    }

    /// A `makeroom` answered with an owner token (`OK created <name>
    /// <address> <port> token=<token>`): the host stores it.
    fn keep_owner_token(&mut self, request: &Request, text: &str) {
        let (Request::MakeRoom(name) | Request::MakePrivate(name)) = request else {
            return;
        };
        if matches!(request, Request::MakePrivate(_))
            && super::private::private_made(name, text).is_none()
        {
            // A protocol error (`made_private`): nothing is kept.
            return;
        }
        // `token=` may be followed by more words (` private`).
        let Some(token) = text.split(' ').find_map(|w| w.strip_prefix("token=")) else {
            return;
        };
        if !crate::owner::is_valid_token(token) {
            return;
        }
        if let Ok(token) = Token::try_from(token) {
            let server = self.conn_server();
            self.emit(Output::OwnerToken {
                server,
                room: name.clone(),
                token,
            });
        }
    }

    fn reply_ok(&mut self, request: Request, sent: Instant, text: &str) {
        match request {
            Request::Greeting => {
                if let Conn::Open { greeted, .. } = &mut self.conn {
                    *greeted = true;
                }
                let server = self.conn_server();
                match &self.conn {
                    Conn::Open {
                        purpose: Purpose::Lookup(room),
                        ..
                    } => {
                        let room = room.clone();
                        self.send_request(Request::GetRoom(room.clone()), &Command::GetRoom(room));
                    }
                    _ => {
                        self.server = server.clone();
                        say!(
                            self,
                            "Connected to the directory server at {server}. Type 'help' for \
                             its commands, 'bye' to disconnect."
                        );
                    }
                }
            }
            Request::GetDir | Request::GetDirFull => {
                let full = request == Request::GetDirFull;
                self.restore_pending(request, sent);
                self.listing_rows = 0;
                self.listing = Some(Listing::Table {
                    rows: heapless::Deque::new(),
                    full,
                    widths: None,
                    count: 0,
                    ended: false,
                });
            }
            Request::Lookup(name) => {
                self.restore_pending(Request::Lookup(name.clone()), sent);
                self.listing_rows = 0;
                self.listing = Some(Listing::Lookup { name, found: None });
            }
            Request::MakeRoom(name) => {
                // `OK created <name> <address> <port>`, maybe more words
                // after: the room as the server made it (with the address
                // it picked, for `makeroom <name>`).
                let made = text.strip_prefix("created ").and_then(|rest| {
                    let mut words = rest.split(' ').filter(|w| !w.is_empty());
                    let (n, a, p) = (words.next()?, words.next()?, words.next()?);
                    let mut line = heapless::String::<MAX_ROOM_LINE>::new();
                    write!(line, "{n} {a} {p}").ok()?;
                    parse_room_line(line.as_bytes()).ok()
                });
                match made {
                    Some(room) => say!(
                        self,
                        "Room {} created: multicast group {} port {}. Type 'chat {}' to enter it.",
                        Clean(&room.name),
                        room.group,
                        room.port,
                        Clean(&room.name)
                    ),
                    None => say!(
                        self,
                        "Room {} created. Type 'chat {}' to enter it.",
                        Clean(&name),
                        Clean(&name)
                    ),
                }
            }
            Request::DeleteRoom(name) => {
                say!(self, "Room {} deleted.", Clean(&name))
            }
            Request::GetRoom(name) => self.getroom_ok(&name, text),
            Request::ShowRoom(name) => self.show_room(&name, text),
            Request::Salt(at) => self.salt_ok(at, text),
            Request::MakePrivate(name) => self.made_private(&name, text),
            Request::Ping | Request::Cancelled => {}
            Request::Bye => {
                let server = self.conn_server();
                self.reset_connection();
                say!(self, "Disconnected from the directory server at {server}.");
            }
        }
    }

    /// Puts a request whose reply goes on (a listing) back at the front,
    /// with the time it was `sent`: the whole reply is due from then.
    fn restore_pending(&mut self, request: Request, sent: Instant) {
        let _ = self.pending.push_front(Pending { request, sent });
    }

    fn reply_err(&mut self, request: Request, token: &str, message: &str) {
        let server = self.conn_server();
        let message = Clean(message);
        match request {
            Request::Greeting => {
                self.reset_connection();
                say!(
                    self,
                    "The directory server at {server} turned the connection away \
                     ({}): {message}",
                    Clean(token)
                );
            }
            Request::Lookup(room) => {
                say!(
                    self,
                    "Could not look up room {}: the server said: {message}",
                    Clean(&room)
                );
                self.end_lookup_connection();
            }
            // An older server, without `getdir full`: ask as before, and
            // remember it for this connection.
            Request::GetDirFull
                if token == ErrorCode::Usage.token()
                    || token == ErrorCode::UnknownCommand.token() =>
            {
                if let Conn::Open { full_listing, .. } = &mut self.conn {
                    *full_listing = false;
                }
                self.send_request(Request::GetDir, &Command::GetDir);
            }
            Request::GetDir | Request::GetDirFull => {
                say!(self, "Could not list the rooms: {message}")
            }
            Request::MakeRoom(name) => {
                say!(self, "Room {} was not created: {message}", Clean(&name))
            }
            Request::MakePrivate(name) => {
                say!(self, "Room '{}' was not created: {message}", Clean(&name))
            }
            Request::GetRoom(name) => self.getroom_err(name, token, message.0),
            Request::ShowRoom(name) => {
                say!(self, "Room {}: {message}", Clean(&name))
            }
            Request::Salt(at) => self.salt_err(&at, token, message.0),
            Request::DeleteRoom(name) if token == ErrorCode::Denied.token() => say!(
                self,
                "Room {} was not deleted: {message}. This client sends the token of a room \
                 it made from this account by itself; from elsewhere, give the token \
                 'makeroom' answered: deleteroom {} <token>.",
                Clean(&name),
                Clean(&name)
            ),
            Request::DeleteRoom(name) => {
                say!(self, "Room {} was not deleted: {message}", Clean(&name))
            }
            Request::Ping | Request::Cancelled => {}
            Request::Bye => {
                self.reset_connection();
                say!(self, "Disconnected from the directory server at {server}.");
            }
        }
    }

    /// After a lookup over a short connection: close it.
    pub(super) fn end_lookup_connection(&mut self) {
        if let Conn::Open {
            purpose: Purpose::Lookup(_),
            ..
        } = self.conn
        {
            self.reset_connection();
        }
    }

    fn listing_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"." {
            return self.end_listing();
        }
        let full = matches!(self.listing, Some(Listing::Table { full: true, .. }));
        let parsed = if full {
            parse_full_room_line(line).map(|(room, kind)| (room, Some(kind)))
        } else {
            parse_room_line(line).map(|room| (room, None))
        };
        let (room, kind) = match parsed {
            Ok(parsed) => parsed,
            Err(_) => return self.protocol_error("a directory line that is not a room", line),
        };
        self.listing_rows += 1;
        if self.listing_rows > MAX_ROOMS {
            return self.protocol_error("more rooms than a directory can hold", line);
        }
        match &mut self.listing {
            Some(Listing::Lookup { name, found })
                if found.is_none() && text::same_name(&room.name, name) =>
            {
                *found = Some(room);
            }
            Some(Listing::Lookup { .. }) => {}
            Some(Listing::Table {
                rows,
                widths,
                count,
                full,
                ..
            }) => {
                *count += 1;
                // Rows are flushed before the next line is read, so there is
                // room in `rows` whenever widths are known.
                let _ = rows.push_back((room, kind));
                if widths.is_none() && rows.is_full() {
                    *widths = Some((MAX_ROOM_NAME, 15));
                    let full = *full;
                    self.table_header(MAX_ROOM_NAME, 15, full);
                }
            }
            None => {}
        }
    }

    fn end_listing(&mut self) {
        let _ = self.pending.pop_front();
        match self.listing.take() {
            Some(Listing::Lookup { name, found }) => {
                match found {
                    Some(room) => self.join_room(room),
                    None => self.no_such_room(&name),
                }
                self.end_lookup_connection();
            }
            Some(Listing::Table {
                rows,
                full,
                widths,
                count,
                ..
            }) => {
                if count == 0 {
                    say!(self, "No rooms yet. Create one with: makeroom <name>");
                    return;
                }
                let widths = widths.unwrap_or_else(|| {
                    let name = rows
                        .iter()
                        .map(|(r, _)| text::display_width(&r.name))
                        .max()
                        .unwrap_or(0)
                        .max(4);
                    let addr = rows
                        .iter()
                        .map(|(r, _)| fmt_len(format_args!("{}", r.group)))
                        .max()
                        .unwrap_or(0)
                        .max(7);
                    self.table_header(name, addr, full);
                    (name, addr)
                });
                // Flushed by `step` through `flush_listing_row`.
                self.listing = Some(Listing::Table {
                    rows,
                    full,
                    widths: Some(widths),
                    count,
                    ended: true,
                });
                // The request stays answered; `flush_listing_row` ends it.
            }
            None => {}
        }
    }

    /// The table's header; a `full` table has an ACCESS column after the
    /// port (`open` or `private`), so the other columns stay where they
    /// were.
    fn table_header(&mut self, name: usize, addr: usize, full: bool) {
        if full {
            say!(
                self,
                "{:<name$}  {:<addr$}  {:<PORT_WIDTH$}  ACCESS",
                "ROOM",
                "ADDRESS",
                "PORT"
            );
        } else {
            say!(self, "{:<name$}  {:<addr$}  PORT", "ROOM", "ADDRESS");
        }
    }

    /// Emits one buffered table row, or the footer; false if none is due.
    pub(super) fn flush_listing_row(&mut self) -> bool {
        let Some(Listing::Table {
            rows,
            widths: Some((name_w, addr_w)),
            count,
            ended,
            ..
        }) = &mut self.listing
        else {
            return false;
        };
        let (name_w, addr_w, count) = (*name_w, *addr_w, *count);
        if let Some((room, kind)) = rows.pop_front() {
            let name = text::Padded {
                text: &room.name,
                width: name_w,
            };
            let mut group = heapless::String::<{ crate::limits::MAX_ADDRESS_TEXT }>::new();
            let _ = write!(group, "{}", room.group);
            match kind {
                Some(kind) => say!(
                    self,
                    "{name}  {:<addr_w$}  {:<PORT_WIDTH$}  {}",
                    group.as_str(),
                    room.port,
                    kind.word()
                ),
                None => say!(self, "{name}  {:<addr_w$}  {}", group.as_str(), room.port),
            }
            return true;
        }
        if *ended {
            self.listing = None;
            let s = if count == 1 { "" } else { "s" };
            say!(self, "({count} room{s})");
            return true;
        }
        false
    }
}
