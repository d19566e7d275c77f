//! How the chat targets cut their input into operations: a head byte whose
//! top 3 bits choose the operation and whose low 5 bits give the length of
//! its bytes (31: one more byte adds to it), then those bytes.

/// The next operation of `rest`: its kind (0 to 7) and its bytes; `None` at
/// the end of the input.
pub fn next_op<'a>(rest: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&head, mut tail) = rest.split_first()?;
    let mut len = usize::from(head & 0x1f);
    if len == 31 {
        let (&extra, t) = tail.split_first()?;
        len += usize::from(extra);
        tail = t;
    }
    let (bytes, tail) = tail.split_at(len.min(tail.len()));
    *rest = tail;
    Some((head >> 5, bytes))
}
