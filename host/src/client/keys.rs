//! The host's side of a private room's key: the client machine asks with
//! `Output::DeriveKey`; the host gets the passphrase (see `passphrase.rs`
//! for the sources), runs Argon2id on a thread of its own (0.1-1 s, so the
//! event loop keeps serving the server connection meanwhile), draws fresh
//! sealer bytes from the operating system, and answers with
//! `Client::handle_room_secret`, with the wall clock in Unix ms.
//!
//! While a key is wanted the host reads no other input ahead: the next
//! thing the terminal reads is the passphrase, without echo. In a terminal,
//! a line read ahead while the room was looked up (the server was slow to
//! answer, and input is read ahead so that Ctrl-C and Ctrl-D act at once)
//! is read without echo too, and dropped: the user may have typed the
//! passphrase there. Should that line still be asked for when the room
//! turns out private, the user is told to press Enter; the passphrase
//! prompt follows. Lines already read ahead then (typed before the
//! answer) are dropped as well, and the user told so (without echoing
//! them): never sent to the room, never run, never in the history.

use std::sync::mpsc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use roomcast_core::privacy::{RoomSecret, Salt};
use roomcast_core::{KeyFailure, RoomName};

use super::passphrase::{self, Passphrase, Source};
use super::terminal::Input;
use super::{Deferred, Host};

/// A key the client machine waits for.
pub(super) struct KeyJob {
    room: RoomName,
    salt: Salt,
    /// A new room: typed twice, and at least `MIN_PASSPHRASE` bytes.
    confirm: bool,
    /// The first of the two typings.
    first: Option<Passphrase>,
    /// The passphrase prompt, while it waits for a line already asked of
    /// the terminal (read ahead) to come back.
    prompt: Option<String>,
    /// Tells this job's result from a late one of an abandoned job.
    id: u64,
}

/// A derivation's result, from its thread: the job's id and the secret.
pub(super) type Derived = (u64, Result<RoomSecret, String>);

/// The channel derivations report on.
pub(super) fn channel() -> (mpsc::Sender<Derived>, mpsc::Receiver<Derived>) {
    mpsc::channel()
}

impl Host {
    /// Whether a key is wanted (its passphrase being typed, or derived).
    pub(super) fn key_busy(&self) -> bool {
        self.key_job.is_some()
    }

    /// `Output::DeriveKey`: gets the passphrase of `room` from the first
    /// source that applies.
    pub(super) fn derive_key(&mut self, room: RoomName, salt: Salt, confirm: bool) {
        self.key_seq += 1;
        if self.terminal.is_tty() {
            // Typed while the room was looked up: maybe its passphrase.
            let before = self.typed.len();
            self.typed.retain(|input| !matches!(input, Input::Line(_)));
            let dropped = before - self.typed.len();
            if dropped > 0 {
                self.say_dropped(dropped);
            }
            if self.awaiting_line {
                self.drop_next_line = true;
            }
        }
        let job = KeyJob {
            room,
            salt,
            confirm,
            first: None,
            prompt: None,
            id: self.key_seq,
        };
        let file = self.passphrase_file.clone();
        match passphrase::source(file.as_deref()) {
            Source::File(path) => {
                let from = format!("in the file {}", path.display());
                let result = passphrase::read_file(path)
                    .and_then(|p| passphrase::check(&p, confirm, &from).map(|()| p));
                self.key_job = Some(job);
                match result {
                    Ok(p) => self.start_derivation(p),
                    Err(e) => self.key_failed(&e),
                }
            }
            Source::Env(p) => {
                let from = format!("in {}", passphrase::ENV_VAR);
                self.key_job = Some(job);
                match passphrase::check(&p, confirm, &from) {
                    Ok(()) => self.start_derivation(p),
                    Err(e) => self.key_failed(&e),
                }
            }
            Source::Terminal if !self.terminal.is_tty() => {
                self.key_job = Some(job);
                self.key_failed(&passphrase::no_source());
            }
            Source::Terminal => {
                let prompt = if confirm {
                    format!("Passphrase for new private room '{}': ", job.room)
                } else {
                    format!("Passphrase for room '{}': ", job.room)
                };
                if self.awaiting_line {
                    // Asked once that line is back (`ask_passphrase`), and
                    // only if the user did not leave with it.
                    let text = format!(
                        "Room '{}' is private: press Enter to go on to its passphrase \
                         prompt (what you typed meanwhile is dropped, not sent).",
                        job.room
                    );
                    let text = self.style.notice(&text, false);
                    let editing = self.editing();
                    self.terminal.print(&text, editing, false);
                    self.key_job = Some(KeyJob {
                        prompt: Some(prompt),
                        ..job
                    });
                } else {
                    self.key_job = Some(job);
                    self.terminal.request_secret(&prompt);
                }
            }
        }
    }

    /// Keeps the key job in step with the machine, before input is read:
    /// forgets it once the machine no longer waits for it (the user quit,
    /// or pressed Ctrl-C at a line read ahead), and asks for the
    /// passphrase once no line is asked of the terminal any more.
    pub(super) fn ask_passphrase(&mut self) {
        if self.client.ready_for_input() || self.client.has_exited() {
            self.key_job = None;
            return;
        }
        if self.awaiting_line {
            return;
        }
        if let Some(prompt) = self.key_job.as_mut().and_then(|job| job.prompt.take()) {
            self.terminal.request_secret(&prompt);
        }
    }

    /// A line typed without echo while a room was looked up: dropped
    /// (said without echoing it); Ctrl-C or Ctrl-D there cancel the command
    /// (returned as `Interrupt`, for the machine).
    pub(super) fn on_held(&mut self, result: Result<Option<Passphrase>, String>) -> Option<Input> {
        match result {
            Ok(Some(typed)) if typed.is_empty() => None,
            Ok(Some(_)) => {
                self.say_dropped(1);
                None
            }
            Ok(None) if self.client.room_pending().is_some() => Some(Input::Interrupt),
            Ok(None) => None,
            Err(e) => {
                let text = self.style.notice(&e, false);
                self.terminal.print(&text, false, false);
                None
            }
        }
    }

    /// Tells the user that `n` lines typed while a room was looked up were
    /// dropped (without showing them).
    pub(super) fn say_dropped(&mut self, n: usize) {
        let text = if n == 1 {
            "The line typed while the room was looked up was dropped: not sent, not run, not \
             kept (it may have been a passphrase)."
                .to_string()
        } else {
            format!(
                "The {n} lines typed while the room was looked up were dropped: not sent, not \
                 run, not kept (one may have been a passphrase)."
            )
        };
        let text = self.style.notice(&text, false);
        let editing = self.editing();
        self.terminal.print(&text, editing, false);
    }

    /// Why the room about to be entered OPEN must not be (F1, the
    /// downgrade): a passphrase was given (`--passphrase-file` or
    /// ROOMCAST_PASSPHRASE: whoever gives one expects a private room), or
    /// this client entered a room of that name, or at that address, as
    /// private before. `None`: enter it.
    pub(super) fn refuse_open(&self) -> Option<String> {
        let (room, false) = self.client.joining()? else {
            return None;
        };
        if let Some(given) = passphrase::source_name(self.passphrase_file.as_deref()) {
            return Some(format!(
                "Room '{}' is OPEN: anyone on the LAN can read it, although a passphrase was \
                 given ({given}). You did not enter it: a passphrase says you expect a private \
                 room, and a directory server can be forged. To enter an open room, start \
                 roomcast without {given}.",
                room.name
            ));
        }
        let known = self.private_rooms.matching(room)?;
        let forget = self.private_rooms.path().map_or(String::new(), |path| {
            format!(
                " If you know it was made again as an open room, forget it: remove the line \
                 '{} {} {} {}' from {}.",
                known.server,
                known.room,
                known.group,
                known.port,
                path.display()
            )
        });
        Some(format!(
            "Room '{}' ({} port {}) is OPEN on the directory server at {}, but this client \
             entered room '{}' ({} port {}) as private before (from {}). You did not enter it: \
             the directory server may be forged (anyone on the LAN can announce one), or the \
             room was deleted and made again open.{forget}",
            room.name,
            room.group,
            room.port,
            self.client.server(),
            known.room,
            known.group,
            known.port,
            known.server
        ))
    }

    /// Remembers the room about to be entered as private (see
    /// `private_rooms.rs`); a failure is said, once per room.
    pub(super) fn remember_private(&mut self) {
        let Some((room, true)) = self.client.joining() else {
            return;
        };
        let server = self.client.server().to_string();
        if let Err(e) = self.private_rooms.remember(&server, room) {
            let text = format!(
                "Could not remember that room '{}' is private ({e}); this client will not \
                 notice if a directory server calls it open later.",
                room.name
            );
            let text = self.style.notice(&text, false);
            let editing = self.editing();
            self.terminal.print(&text, editing, false);
        }
    }

    /// A passphrase typed (or not) at the terminal.
    pub(super) fn on_secret(&mut self, result: Result<Option<Passphrase>, String>) {
        let Some(job) = self.key_job.as_mut() else {
            return;
        };
        let typed = match result {
            Ok(Some(typed)) => typed,
            Ok(None) => return self.key_cancelled(),
            Err(e) => return self.key_failed(&e),
        };
        if let Err(e) = passphrase::check(&typed, job.confirm, "typed") {
            return self.key_failed(&e);
        }
        if !job.confirm {
            return self.start_derivation(typed);
        }
        match job.first.take() {
            None => {
                job.first = Some(typed);
                self.terminal.request_secret("Repeat it: ");
            }
            Some(first) if first == typed => self.start_derivation(typed),
            Some(_) => self.key_failed("the two passphrases typed differ"),
        }
    }

    /// Runs Argon2id on a thread; its result comes back on the channel.
    fn start_derivation(&mut self, passphrase: Passphrase) {
        let Some(job) = &self.key_job else {
            return;
        };
        let (id, salt) = (job.id, job.salt);
        let tx = self.derived_tx.clone();
        let poller = self.poller.clone();
        let spawned = thread::Builder::new().name("derive".into()).spawn(move || {
            let result = passphrase::derive(&passphrase, &salt);
            drop(passphrase);
            let _ = tx.send((id, result));
            let _ = poller.notify();
        });
        if let Err(e) = spawned {
            self.key_failed(&format!("cannot start deriving the room key: {e}"));
        }
    }

    /// Hands finished derivations to the machine.
    pub(super) fn on_derived(&mut self) {
        while let Ok((id, result)) = self.derived.try_recv() {
            if self.key_job.as_ref().is_none_or(|job| job.id != id) {
                continue;
            }
            self.key_job = None;
            let secret = result.and_then(|secret| {
                let mut sealer = [0u8; 16];
                getrandom::fill(&mut sealer)
                    .map_err(|e| format!("cannot read random bytes from the system: {e}"))?;
                Ok((secret, sealer))
            });
            let now = self.now();
            match secret {
                Ok(secret) => self.client.handle_room_secret(now, wall_ms(), Ok(secret)),
                Err(e) => self
                    .client
                    .handle_room_secret(now, 0, Err(KeyFailure::Refused(&e))),
            }
            self.drain();
        }
    }

    /// No key: the machine hears why once the drain is over.
    fn key_failed(&mut self, why: &str) {
        self.key_job = None;
        self.deferred.push(Deferred::KeyFailed(why.to_string()));
    }

    fn key_cancelled(&mut self) {
        self.key_job = None;
        self.deferred.push(Deferred::KeyCancelled);
    }
}

/// The wall clock, in ms since the Unix epoch (0 if it is set before it).
pub(super) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
