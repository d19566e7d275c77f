//! The frame codec of the room protocol: the bytes of every datagram that
//! roomcast members exchange on a room's control port.
//!
//! Every frame starts with a 4-byte preamble, `FF 52 43 01` (0xFF never
//! occurs in UTF-8, so a frame is never taken for a plain `Name: text`
//! datagram; then `RC` and the version), a kind byte and the sender's
//! member id (8 bytes, big-endian). All integers are big-endian. PROTOCOL.md
//! has the layout of each kind.
//!
//! Decoding borrows from the datagram and never panics: anything that is
//! not a well-formed frame of this version is a [`FrameError`].

use super::limits::{MAX_DIGEST, MAX_FRAME, MAX_MESSAGE, MAX_NAK_RANGE, MAX_NAME};

/// The first three bytes of every frame.
pub const MAGIC: [u8; 3] = [0xFF, b'R', b'C'];

/// The frame format this code speaks. A frame of another version is
/// ignored ([`FrameError::Version`]).
pub const VERSION: u8 = 1;

/// The bytes before a frame's body: magic, version, kind, sender id.
pub const HEADER_LEN: usize = 3 + 1 + 1 + 8;

/// A room member's identity: 64 random bits chosen by the member's host
/// when it enters the room, so two members with the same name are told
/// apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u64);

impl core::fmt::Display for MemberId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The first 4 hex digits are enough to tell two people apart.
        write!(f, "{:04x}", self.0 >> 48)
    }
}

const KIND_DATA: u8 = 1;
const KIND_NAK: u8 = 2;
const KIND_HEARTBEAT: u8 = 3;
const KIND_BYE: u8 = 4;

/// Set in [`Data::flags`] on a repair (a copy sent again, by anyone).
pub const FLAG_REPAIR: u8 = 1;

/// A chat message, sent first by its origin, later perhaps repaired by any
/// member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    /// [`FLAG_REPAIR`] or 0; other bits are ignored.
    pub flags: u8,
    /// Who wrote the message.
    pub origin: MemberId,
    /// The message's number in its origin's stream, from 1.
    pub seq: u32,
    /// Milliseconds since the origin sent it, as far as the transmitter
    /// knows (0 on the first transmission).
    pub age_ms: u32,
    /// The origin's display name (UTF-8, no control characters).
    pub name: &'a str,
    /// The text (UTF-8), at most [`MAX_MESSAGE`] bytes.
    pub text: &'a str,
}

/// A request for messages `first .. first + count` of `origin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nak {
    /// Whose messages.
    pub origin: MemberId,
    /// The first missing number.
    pub first: u32,
    /// How many, 1 to [`MAX_NAK_RANGE`].
    pub count: u8,
    /// Which request this is for the first message, from 1. Members other
    /// than the origin answer a first request only if the origin is gone.
    pub attempt: u8,
}

/// What a member knows of one sender, carried in heartbeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestEntry {
    /// The sender.
    pub origin: MemberId,
    /// Its highest message number the transmitter knows of.
    pub hi: u32,
    /// Milliseconds since that message was sent.
    pub age_ms: u32,
}

/// A member's periodic "I am here": its name, its own highest message
/// number, and what it knows of other senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat<'a> {
    /// The sender's display name.
    pub name: &'a str,
    /// The sender's highest message number (0: none yet).
    pub hi: u32,
    /// Milliseconds since that message was sent.
    pub hi_age_ms: u32,
    /// The sender's lowest own message number it can still repair (0: none).
    pub low: u32,
    digest: &'a [u8],
}

impl<'a> Heartbeat<'a> {
    /// What the sender knows of other senders.
    pub fn digest(&self) -> impl Iterator<Item = DigestEntry> + 'a {
        self.digest.chunks_exact(16).map(|c| DigestEntry {
            origin: MemberId(be64(&c[0..8])),
            hi: be32(&c[8..12]),
            age_ms: be32(&c[12..16]),
        })
    }
}

/// A decoded frame (without its sender, see [`decode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A message or a repair.
    Data(Data<'a>),
    /// A request for missing messages.
    Nak(Nak),
    /// Presence and highest numbers.
    Heartbeat(Heartbeat<'a>),
    /// The sender leaves the room.
    Bye,
}

/// Why a datagram is not a frame this session can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// It does not start with [`MAGIC`]: not a frame at all.
    NotAFrame,
    /// A frame of another version.
    Version,
    /// An unknown kind byte.
    Kind,
    /// Too short, too long, a bad length, bad UTF-8 or a bad name.
    Malformed,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FrameError::NotAFrame => "not a roomcast frame",
            FrameError::Version => "a roomcast frame of another version",
            FrameError::Kind => "a roomcast frame of an unknown kind",
            FrameError::Malformed => "a malformed roomcast frame",
        })
    }
}

/// Bytes of one frame.
pub type FrameBuf = heapless::Vec<u8, MAX_FRAME>;

/// Whether `data` starts like a frame of any version.
pub fn is_frame(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Whether a name from the network may be shown: 1 to [`MAX_NAME`] bytes,
/// no control characters.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(be32(self.take(4)?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(be64(self.take(8)?))
    }
    fn name(&mut self) -> Result<&'a str, FrameError> {
        let len = usize::from(self.u8()?);
        let name = core::str::from_utf8(self.take(len)?).map_err(|_| FrameError::Malformed)?;
        if is_valid_name(name) {
            Ok(name)
        } else {
            Err(FrameError::Malformed)
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

fn be64(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

/// Decodes a datagram into its sender and frame.
pub fn decode(data: &[u8]) -> Result<(MemberId, Frame<'_>), FrameError> {
    if !is_frame(data) {
        return Err(FrameError::NotAFrame);
    }
    if data.len() > MAX_FRAME {
        return Err(FrameError::Malformed);
    }
    let mut r = Reader(&data[3..]);
    if r.u8()? != VERSION {
        return Err(FrameError::Version);
    }
    let kind = r.u8()?;
    let sender = MemberId(r.u64()?);
    let frame = match kind {
        KIND_DATA => {
            let flags = r.u8()?;
            let origin = MemberId(r.u64()?);
            let seq = r.u32()?;
            let age_ms = r.u32()?;
            let name = r.name()?;
            let text = core::str::from_utf8(r.0).map_err(|_| FrameError::Malformed)?;
            if seq == 0 || text.len() > MAX_MESSAGE {
                return Err(FrameError::Malformed);
            }
            Frame::Data(Data {
                flags,
                origin,
                seq,
                age_ms,
                name,
                text,
            })
        }
        KIND_NAK => {
            let origin = MemberId(r.u64()?);
            let first = r.u32()?;
            let count = r.u8()?;
            let attempt = r.u8()?;
            if first == 0 || count == 0 || !r.0.is_empty() {
                return Err(FrameError::Malformed);
            }
            Frame::Nak(Nak {
                origin,
                first,
                count: count.min(MAX_NAK_RANGE),
                attempt,
            })
        }
        KIND_HEARTBEAT => {
            let name = r.name()?;
            let hi = r.u32()?;
            let hi_age_ms = r.u32()?;
            let low = r.u32()?;
            let n = usize::from(r.u8()?);
            if n > MAX_DIGEST {
                return Err(FrameError::Malformed);
            }
            let digest = r.take(16 * n)?;
            if !r.0.is_empty() {
                return Err(FrameError::Malformed);
            }
            Frame::Heartbeat(Heartbeat {
                name,
                hi,
                hi_age_ms,
                low,
                digest,
            })
        }
        KIND_BYE => {
            if !r.0.is_empty() {
                return Err(FrameError::Malformed);
            }
            Frame::Bye
        }
        _ => return Err(FrameError::Kind),
    };
    Ok((sender, frame))
}

fn header(out: &mut FrameBuf, kind: u8, sender: MemberId) {
    out.clear();
    let _ = out.extend_from_slice(&MAGIC);
    let _ = out.extend_from_slice(&[VERSION, kind]);
    let _ = out.extend_from_slice(&sender.0.to_be_bytes());
}

fn put_name(out: &mut FrameBuf, name: &str) -> Result<(), ()> {
    let len = u8::try_from(name.len()).map_err(|_| ())?;
    out.push(len).map_err(|_| ())?;
    out.extend_from_slice(name.as_bytes()).map_err(|_| ())
}

/// Encodes a data frame. `None` if the name or text is too long for a
/// frame (the session never builds such a message).
pub fn encode_data(sender: MemberId, data: &Data<'_>) -> Option<FrameBuf> {
    if !is_valid_name(data.name) || data.text.len() > MAX_MESSAGE || data.seq == 0 {
        return None;
    }
    let mut out = FrameBuf::new();
    header(&mut out, KIND_DATA, sender);
    out.push(data.flags).ok()?;
    out.extend_from_slice(&data.origin.0.to_be_bytes()).ok()?;
    out.extend_from_slice(&data.seq.to_be_bytes()).ok()?;
    out.extend_from_slice(&data.age_ms.to_be_bytes()).ok()?;
    put_name(&mut out, data.name).ok()?;
    out.extend_from_slice(data.text.as_bytes()).ok()?;
    Some(out)
}

/// Encodes a request.
pub fn encode_nak(sender: MemberId, nak: &Nak) -> FrameBuf {
    let mut out = FrameBuf::new();
    header(&mut out, KIND_NAK, sender);
    let _ = out.extend_from_slice(&nak.origin.0.to_be_bytes());
    let _ = out.extend_from_slice(&nak.first.to_be_bytes());
    let _ = out.push(nak.count.clamp(1, MAX_NAK_RANGE));
    let _ = out.push(nak.attempt);
    out
}

/// Encodes a heartbeat with up to [`MAX_DIGEST`] digest entries (more are
/// left out). `None` if the name is not valid.
pub fn encode_heartbeat(
    sender: MemberId,
    name: &str,
    hi: u32,
    hi_age_ms: u32,
    low: u32,
    digest: &[DigestEntry],
) -> Option<FrameBuf> {
    if !is_valid_name(name) {
        return None;
    }
    let digest = &digest[..digest.len().min(MAX_DIGEST)];
    let mut out = FrameBuf::new();
    header(&mut out, KIND_HEARTBEAT, sender);
    put_name(&mut out, name).ok()?;
    out.extend_from_slice(&hi.to_be_bytes()).ok()?;
    out.extend_from_slice(&hi_age_ms.to_be_bytes()).ok()?;
    out.extend_from_slice(&low.to_be_bytes()).ok()?;
    out.push(u8::try_from(digest.len()).ok()?).ok()?;
    for e in digest {
        out.extend_from_slice(&e.origin.0.to_be_bytes()).ok()?;
        out.extend_from_slice(&e.hi.to_be_bytes()).ok()?;
        out.extend_from_slice(&e.age_ms.to_be_bytes()).ok()?;
    }
    Some(out)
}

/// Encodes a goodbye.
pub fn encode_bye(sender: MemberId) -> FrameBuf {
    let mut out = FrameBuf::new();
    header(&mut out, KIND_BYE, sender);
    out
}
