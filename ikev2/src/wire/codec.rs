//! Private helpers: a bounds-checked reader and length-prefixed writers.

use super::Error;

/// A cursor over a byte slice whose every read is bounds-checked (never panics).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::Truncated(what));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Appends a big-endian u16.
pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u16 at `pos` (which the caller reserved before).
pub(crate) fn patch_u16(out: &mut [u8], pos: usize, v: u16) {
    if let Some(s) = out.get_mut(pos..pos + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Converts a length to u16, or [`Error::TooLong`].
pub(crate) fn len_u16(n: usize, what: &'static str) -> Result<u16, Error> {
    u16::try_from(n).map_err(|_| Error::TooLong(what))
}

/// Converts a count to u8, or [`Error::TooLong`].
pub(crate) fn len_u8(n: usize, what: &'static str) -> Result<u8, Error> {
    u8::try_from(n).map_err(|_| Error::TooLong(what))
}
