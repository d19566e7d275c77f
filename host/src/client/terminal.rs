//! The user's side of the client: reading lines and printing messages.
//!
//! Lines are read on a thread of their own, one per prompt: the event loop
//! asks for a line with [`Terminal::request_line`] when the client is ready
//! for one, and the thread hands it back through a channel and wakes the
//! loop with `Poller::notify`. So a command finishes before the next one is
//! read, and the prompt matches the mode. Only when the client has waited
//! on a server for a while does the loop ask early (see `client.rs`), so
//! that leaving works at once; a prompt shown then is the mode's at the
//! time of asking.
//!
//! In a terminal (stdin and stdout both ttys) rustyline edits the line, keeps
//! history, and prints arriving messages above the prompt through its
//! external printer, so they never garble the half-typed line; Ctrl-] in
//! chat mode leaves the room at once, without Enter. Otherwise plain lines
//! are read from stdin (a line holding byte 0x1D leaves chat mode), no
//! prompt is shown, and messages go to stdout as lines: scripts can drive it.
//!
//! # Passphrases
//!
//! A private room's passphrase is asked with [`Terminal::request_secret`]:
//! the reading thread, between two lines (rustyline is then not in raw
//! mode), turns the terminal's echo off ([`platform::NoEcho`]), reads the
//! bytes typed itself (`passphrase::edit_typed`), and turns echo back on.
//! The passphrase never goes through rustyline, so it is in no history
//! and no kill ring. While a room is looked up (`chat`, `makeroom
//! --private`), a line read ahead is read the same way
//! ([`Terminal::request_held`]): what is typed then is not shown, never in
//! the history, and dropped, for it may be the passphrase typed ahead of
//! its prompt. A line goes to the history only once the client took it.
//! With input not a terminal, nothing can be typed
//! without echo: the host says to use `--passphrase-file` or
//! `ROOMCAST_PASSPHRASE` instead.
//!
//! # A flood of messages
//!
//! In a terminal, messages wait for the printer thread in a queue of at
//! most [`MAX_QUEUED`] bytes, and the thread hands all that waits to
//! rustyline at once (one redraw of the prompt per batch, not per message).
//! A chat message that finds the queue full is dropped and counted; the
//! count is shown in its place as `[N messages dropped: ...]`. So a terminal
//! that cannot keep up (or is not read at all) costs bounded memory, and
//! keystrokes, which rustyline reads before anything it has to print, are
//! handled at once. roomcast's own messages are never dropped. With stdout
//! not a terminal, every message is written in order, and a reader that
//! falls behind slows the client down (the kernel then drops datagrams the
//! client has no time to take), which keeps memory bounded too.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use polling::Poller;
use roomcast_core::{Mode, Prompt};

use super::passphrase::{self, Passphrase};
use crate::platform;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, ConditionalEventHandler, Config, Editor, Event, EventContext, EventHandler,
    ExternalPrinter, Helper, KeyEvent, RepeatCount,
};

/// The line editor, with the prompt bold when colours are on: one's own
/// lines stay on the screen after the prompt, so they stand apart from
/// what others say.
type LineEditor = Editor<PromptStyle, DefaultHistory>;

struct PromptStyle {
    colour: bool,
}

impl Highlighter for PromptStyle {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> std::borrow::Cow<'b, str> {
        if self.colour {
            // The prompt is roomcast's own text (room names in it are shown
            // safely by the core).
            format!("\x1b[1m{prompt}\x1b[0m").into()
        } else {
            prompt.into()
        }
    }
}

impl Completer for PromptStyle {
    type Candidate = String;
}

impl Hinter for PromptStyle {
    type Hint = String;
}

impl Validator for PromptStyle {}

impl Helper for PromptStyle {}

/// The longest line read from piped input. The rest of a longer line is
/// skipped, so the line is refused as one (too long to send), never cut
/// into pieces that would each be sent or run.
const MAX_PLAIN_LINE: u64 = 64 * 1024;

/// The most bytes of messages waiting for the terminal; past it, chat
/// messages are dropped (and counted) until the terminal catches up.
const MAX_QUEUED: usize = 64 * 1024;

/// What the user did.
#[derive(Debug)]
pub enum Input {
    /// A line (without its newline).
    Line(Vec<u8>),
    /// Ctrl-] in a terminal.
    LeaveChat,
    /// Ctrl-C at the prompt.
    Interrupt,
    /// Ctrl-D in a terminal.
    Eof,
    /// The end of piped input.
    Closed,
    /// A passphrase typed without echo ([`Terminal::request_secret`]);
    /// `Ok(None)`: the user cancelled (Ctrl-C, Ctrl-D); `Err`: it could
    /// not be read, worded for people.
    Secret(Result<Option<Passphrase>, String>),
    /// A line typed without echo while a room was looked up
    /// ([`Terminal::request_held`]), as `Secret`: the host drops it.
    Held(Result<Option<Passphrase>, String>),
}

/// What the reading thread reads next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadKind {
    /// A line, edited with rustyline.
    Line,
    /// A passphrase, without echo.
    Secret,
    /// A line while a room is looked up, without echo, to be dropped.
    Held,
}

struct LineRequest {
    prompt: String,
    in_chat: bool,
    kind: ReadKind,
    /// Lines the client took since the last request, for the history
    /// (a line read is added only once the client took it, so a line the
    /// host drops never reaches it).
    history: Vec<String>,
}

/// The terminal, seen from the event loop.
pub struct Terminal {
    tty: bool,
    requests: Sender<LineRequest>,
    inputs: Receiver<Input>,
    /// The printer thread's queue, in a terminal.
    printer: Option<Arc<PrintQueue>>,
    printer_done: Option<Receiver<()>>,
}

/// Messages waiting for the printer thread (see the module docs).
#[derive(Default)]
struct PrintQueue {
    state: Mutex<Queued>,
    /// Signalled when a message is queued, when the printer finishes a
    /// batch, and on close.
    changed: Condvar,
}

#[derive(Default)]
struct Queued {
    /// The dropped-messages notice is dim (colours are on).
    dim: bool,
    texts: VecDeque<String>,
    /// Bytes in `texts`.
    bytes: usize,
    /// Chat messages dropped since the last one queued.
    dropped: u64,
    /// The printer thread is printing a batch.
    busy: bool,
    /// No more messages will come.
    closed: bool,
}

impl Queued {
    fn push(&mut self, text: String) {
        self.bytes += text.len();
        self.texts.push_back(text);
    }

    /// Queues the count of dropped messages, if any.
    fn push_dropped(&mut self) {
        let n = std::mem::take(&mut self.dropped);
        if n > 0 {
            let s = if n == 1 { "" } else { "s" };
            let (dim, reset) = if self.dim {
                ("\x1b[2;3m", "\x1b[0m")
            } else {
                ("", "")
            };
            self.push(format!(
                "{dim}[{n} message{s} dropped: they came faster than the terminal showed \
                 them]{reset}\r\n"
            ));
        }
    }

    fn idle(&self) -> bool {
        self.texts.is_empty() && self.dropped == 0 && !self.busy
    }
}

impl Terminal {
    /// Starts the reading thread (and the printing thread in a terminal).
    /// With `colour`, roomcast's own notices are dim.
    pub fn start(poller: Arc<Poller>, colour: bool) -> io::Result<Terminal> {
        use std::io::IsTerminal as _;
        let (requests, request_rx) = mpsc::channel::<LineRequest>();
        let (input_tx, inputs) = mpsc::channel::<Input>();
        let tty = io::stdin().is_terminal() && io::stdout().is_terminal();
        if tty {
            let config = Config::builder().auto_add_history(false).build();
            let mut editor = LineEditor::with_config(config).map_err(io::Error::other)?;
            editor.set_helper(Some(PromptStyle { colour }));
            let in_chat = Arc::new(AtomicBool::new(false));
            let leave = Arc::new(AtomicBool::new(false));
            editor.bind_sequence(
                KeyEvent::ctrl(']'),
                EventHandler::Conditional(Box::new(LeaveChatKey {
                    in_chat: in_chat.clone(),
                    leave: leave.clone(),
                })),
            );
            let external = editor.create_external_printer().map_err(io::Error::other)?;
            let printer = Arc::new(PrintQueue::default());
            printer.state.lock().unwrap_or_else(|e| e.into_inner()).dim = colour;
            let queue = printer.clone();
            let (done_tx, printer_done) = mpsc::channel();
            thread::Builder::new()
                .name("printer".into())
                .spawn(move || print_thread(external, &queue, done_tx))?;
            thread::Builder::new()
                .name("editor".into())
                .spawn(move || {
                    editor_thread(editor, request_rx, input_tx, poller, in_chat, leave)
                })?;
            Ok(Terminal {
                tty,
                requests,
                inputs,
                printer: Some(printer),
                printer_done: Some(printer_done),
            })
        } else {
            thread::Builder::new()
                .name("stdin".into())
                .spawn(move || plain_thread(request_rx, input_tx, poller))?;
            Ok(Terminal {
                tty,
                requests,
                inputs,
                printer: None,
                printer_done: None,
            })
        }
    }

    /// Asks the reading thread for the next line, shown with `prompt`;
    /// `history` are the lines taken since the last request.
    pub fn request_line(&self, prompt: &Prompt, history: Vec<String>) {
        let _ = self.requests.send(LineRequest {
            prompt: prompt.to_string(),
            in_chat: prompt.mode() == Mode::Chat,
            kind: ReadKind::Line,
            history,
        });
    }

    /// Asks the reading thread for a line typed while a room is looked up:
    /// read without echo (the user may be typing the room's passphrase
    /// ahead of its prompt), kept out of the history, and handed back as
    /// [`Input::Held`] for the host to drop; Ctrl-C or Ctrl-D end it
    /// (`Ok(None)`). Only in a terminal.
    pub fn request_held(&self, prompt: &str) {
        let _ = self.requests.send(LineRequest {
            prompt: prompt.to_string(),
            in_chat: false,
            kind: ReadKind::Held,
            history: Vec::new(),
        });
    }

    /// Asks the reading thread for a passphrase, typed without echo after
    /// `prompt`; it comes back as [`Input::Secret`]. Only in a terminal
    /// ([`is_tty`](Self::is_tty)); elsewhere the answer is an error.
    pub fn request_secret(&self, prompt: &str) {
        let _ = self.requests.send(LineRequest {
            prompt: prompt.to_string(),
            in_chat: false,
            kind: ReadKind::Secret,
            history: Vec::new(),
        });
    }

    /// Whether the user is at a terminal (rather than piping input).
    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// What the user did, if anything came.
    pub fn try_input(&self) -> Option<Input> {
        self.inputs.try_recv().ok()
    }

    /// Shows `text` (one message; it may span lines). `editing` says
    /// whether a line was asked for and has not come back: then rustyline
    /// is (or is about to be) editing it, and the message goes through its
    /// external printer, above the prompt. Otherwise it is written at once,
    /// after what the printer still holds, so that it comes before the next
    /// prompt. A `droppable` message (one from the chat room) is dropped
    /// and counted if the printer's queue is full.
    pub fn print(&self, text: &str, editing: bool, droppable: bool) {
        match &self.printer {
            Some(printer) if editing => {
                let mut queued = printer.state.lock().unwrap_or_else(|e| e.into_inner());
                if queued.closed {
                    // The terminal failed: nothing prints any more.
                    return;
                }
                if droppable && queued.bytes + text.len() > MAX_QUEUED {
                    queued.dropped += 1;
                    return;
                }
                queued.push_dropped();
                // Raw mode may be on: end lines with CR LF.
                let mut text = text.replace('\n', "\r\n");
                text.push_str("\r\n");
                queued.push(text);
                printer.changed.notify_all();
            }
            _ => {
                self.wait_printed();
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    /// Waits (briefly) until the printer thread has written what it was
    /// given. It can be held up only by a message rustyline keeps for its
    /// next prompt; then this gives up rather than wait for that prompt.
    fn wait_printed(&self) {
        let Some(printer) = &self.printer else {
            return;
        };
        let deadline = std::time::Instant::now() + Duration::from_millis(200);
        let mut queued = printer.state.lock().unwrap_or_else(|e| e.into_inner());
        while !queued.idle() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            queued = match printer.changed.wait_timeout(queued, left) {
                Ok((q, _)) => q,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Lets queued messages out before the process exits (briefly: a
    /// message rustyline holds for its next prompt is not waited for).
    pub fn finish(mut self) {
        if let Some(printer) = self.printer.take() {
            printer
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .closed = true;
            printer.changed.notify_all();
        }
        if let Some(done) = self.printer_done.take() {
            let _ = done.recv_timeout(Duration::from_millis(500));
        }
        let _ = io::stdout().flush();
    }
}

/// Ctrl-]: in chat mode, end the line at once and say to leave.
struct LeaveChatKey {
    in_chat: Arc<AtomicBool>,
    leave: Arc<AtomicBool>,
}

impl ConditionalEventHandler for LeaveChatKey {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        if self.in_chat.load(Ordering::SeqCst) {
            self.leave.store(true, Ordering::SeqCst);
            Some(Cmd::Interrupt)
        } else {
            Some(Cmd::Noop)
        }
    }
}

fn editor_thread(
    mut editor: LineEditor,
    requests: Receiver<LineRequest>,
    inputs: Sender<Input>,
    poller: Arc<Poller>,
    in_chat: Arc<AtomicBool>,
    leave: Arc<AtomicBool>,
) {
    for request in requests {
        for line in &request.history {
            let _ = editor.add_history_entry(line.as_str());
        }
        if request.kind != ReadKind::Line {
            let input = match read_secret(&request.prompt) {
                Input::Secret(result) if request.kind == ReadKind::Held => Input::Held(result),
                input => input,
            };
            if !deliver(&inputs, &poller, input) {
                return;
            }
            continue;
        }
        in_chat.store(request.in_chat, Ordering::SeqCst);
        leave.store(false, Ordering::SeqCst);
        let input = match editor.readline(&request.prompt) {
            Ok(line) => Input::Line(line.into_bytes()),
            Err(ReadlineError::Interrupted) if leave.swap(false, Ordering::SeqCst) => {
                Input::LeaveChat
            }
            Err(ReadlineError::Interrupted) => Input::Interrupt,
            Err(ReadlineError::Eof) => Input::Eof,
            Err(error) => {
                eprintln!("roomcast: cannot read the terminal: {error}");
                Input::Eof
            }
        };
        if !deliver(&inputs, &poller, input) {
            return;
        }
    }
}

/// Reads a passphrase at the terminal after `prompt`, without echo.
fn read_secret(prompt: &str) -> Input {
    let mut out = io::stdout();
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let result = match platform::NoEcho::start() {
        Ok(quiet) => passphrase::edit_typed(|| quiet.read_byte())
            .map_err(|e| format!("cannot read the passphrase from the terminal: {e}")),
        Err(e) => Err(format!(
            "cannot turn the terminal's echo off to read the passphrase ({e}); give it with \
             --passphrase-file PATH or the {} environment variable",
            passphrase::ENV_VAR
        )),
    };
    // The Enter was not echoed.
    let _ = writeln!(out);
    let _ = out.flush();
    Input::Secret(result)
}

/// Hands whatever waits in `queue` to rustyline, as one batch, until the
/// queue is closed and empty.
fn print_thread(mut printer: impl ExternalPrinter, queue: &PrintQueue, done: Sender<()>) {
    let lock = || queue.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut queued = lock();
    loop {
        queued.push_dropped();
        if queued.texts.is_empty() {
            if queued.closed {
                break;
            }
            queued = match queue.changed.wait(queued) {
                Ok(q) => q,
                Err(e) => e.into_inner(),
            };
            continue;
        }
        let mut batch = String::with_capacity(queued.bytes);
        batch.extend(queued.texts.drain(..));
        queued.bytes = 0;
        queued.busy = true;
        drop(queued);
        let printed = printer.print(batch);
        queued = lock();
        queued.busy = false;
        queue.changed.notify_all();
        if printed.is_err() {
            break;
        }
    }
    // Nothing will print what is left: let nobody wait for it.
    queued.texts.clear();
    queued.bytes = 0;
    queued.closed = true;
    drop(queued);
    queue.changed.notify_all();
    let _ = done.send(());
}

/// Hands one input to the event loop and wakes it. `false` when the reading
/// thread should stop: the input was the end, or the loop is gone.
fn deliver(inputs: &Sender<Input>, poller: &Poller, input: Input) -> bool {
    let eof = matches!(input, Input::Eof | Input::Closed);
    if inputs.send(input).is_err() {
        return false;
    }
    let _ = poller.notify();
    !eof
}

/// Reads and drops input up to and including the next LF, in buffer-sized
/// pieces (a line of any length costs no memory).
fn skip_rest_of_line(input: &mut impl BufRead) {
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) if !buf.is_empty() => buf,
            _ => return,
        };
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return;
            }
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

fn plain_thread(requests: Receiver<LineRequest>, inputs: Sender<Input>, poller: Arc<Poller>) {
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    for request in requests {
        if request.kind == ReadKind::Held {
            // The host asks only in a terminal.
            let input = Input::Held(Ok(None));
            if !deliver(&inputs, &poller, input) {
                return;
            }
            continue;
        }
        if request.kind == ReadKind::Secret {
            // The host asks only in a terminal; say why if it did not.
            let input = Input::Secret(Err(passphrase::no_source()));
            if !deliver(&inputs, &poller, input) {
                return;
            }
            continue;
        }
        let mut line = Vec::new();
        let input = match (&mut stdin)
            .take(MAX_PLAIN_LINE)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => Input::Closed,
            Ok(_) if line.last() == Some(&b'\n') => {
                line.pop();
                Input::Line(line)
            }
            Ok(_) => {
                // Cut short (or the last line, without LF): skip the rest of
                // it, and do not leave half a character at the cut.
                skip_rest_of_line(&mut stdin);
                if let Err(e) = std::str::from_utf8(&line)
                    && e.error_len().is_none()
                {
                    line.truncate(e.valid_up_to());
                }
                Input::Line(line)
            }
        };
        if !deliver(&inputs, &poller, input) {
            return;
        }
    }
}
