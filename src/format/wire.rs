//! Little helpers for the binary encodings: a bounds-checked reader and LEB128 varints.
//!
//! Every decoder in `format` reads through [`Reader`], which never panics: running past the end
//! of the input is an error naming what was being read.

use super::FormatError;

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a varint length followed by the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub fn err(&self, msg: impl Into<String>) -> FormatError {
        FormatError::Invalid(format!("{} at byte {}: {}", self.what, self.pos, msg.into()))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.remaining() < n {
            return Err(self.err(format!("needs {n} more bytes, has {}", self.remaining())));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn id(&mut self) -> Result<[u8; 32], FormatError> {
        let b = self.bytes(32)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn id16(&mut self) -> Result<[u8; 16], FormatError> {
        let b = self.bytes(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn varint(&mut self) -> Result<u64, FormatError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                // Reject non-minimal encodings so that every value has exactly one encoding.
                if b == 0 && shift > 0 {
                    return Err(self.err("varint is not minimally encoded"));
                }
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// A varint that must fit in 32 bits (lengths and offsets inside one frame or file part).
    pub fn varint_u32(&mut self) -> Result<u32, FormatError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.err("value does not fit in 32 bits"))
    }

    /// A count of items that each take at least `min_item_bytes`: bounded by what is left, so a
    /// hostile count cannot make the decoder allocate more than the input justifies.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, FormatError> {
        let n = self.varint()?;
        let max = (self.remaining() / min_item_bytes.max(1)) as u64;
        if n > max {
            return Err(self.err(format!("count {n} exceeds what {} remaining bytes can hold", self.remaining())));
        }
        Ok(n as usize)
    }

    pub fn len_bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return Err(self.err(format!("length {n} exceeds the {} bytes left", self.remaining())));
        }
        self.bytes(n as usize)
    }

    pub fn string(&mut self) -> Result<String, FormatError> {
        let b = self.len_bytes()?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| self.err("string is not UTF-8"))
    }

    pub fn finish(&self) -> Result<(), FormatError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.remaining())))
        }
    }
}
