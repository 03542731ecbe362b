//! The pods file read forward a chunk at a time, for the walks that split it into items
//! without holding it whole.

use std::io::Read;

/// A file read forward a chunk at a time. What was read from the place last asked for on
/// stays until a later place is asked for; a value longer than a chunk makes the buffer grow.
pub(super) struct Window<R> {
    source: R,
    buffer: Vec<u8>,
    /// The file's offset of `buffer[0]`.
    start: usize,
    /// How much of `buffer` holds the file.
    filled: usize,
    chunk: usize,
    ended: bool,
}

impl<R: Read> Window<R> {
    pub(super) fn new(source: R, chunk: usize) -> Self {
        Window {
            source,
            buffer: Vec::new(),
            start: 0,
            filled: 0,
            chunk: chunk.max(1),
            ended: false,
        }
    }

    /// The file from `at` on, as far as it is read: at least `want` bytes unless the file ends
    /// first. `at` is never before a place asked for earlier.
    pub(super) fn get(&mut self, at: usize, want: usize) -> std::io::Result<&[u8]> {
        if at + want > self.start + self.filled && !self.ended {
            self.fill(at, want)?;
        }
        let from = (at - self.start).min(self.filled);
        Ok(&self.buffer[from..self.filled])
    }

    /// Whether the file's end has been read.
    pub(super) fn ended(&self) -> bool {
        self.ended
    }

    fn fill(&mut self, at: usize, want: usize) -> std::io::Result<()> {
        let keep = (at - self.start).min(self.filled);
        self.buffer.copy_within(keep..self.filled, 0);
        self.start += keep;
        self.filled -= keep;
        let size = want.max(self.chunk);
        if self.buffer.len() < size {
            self.buffer.resize(size, 0);
        }
        while self.filled < self.buffer.len() {
            match self.source.read(&mut self.buffer[self.filled..]) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(read) => self.filled += read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
