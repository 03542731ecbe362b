//! Tells the pods-file watcher the moment a write of the file is finished (the file closed after
//! writing, or a file renamed into place: editors, `kubectl ... > file`, and the symlink swap of
//! a ConfigMap volume), so a change is read at once instead of at the next poll; and whether the
//! file was touched while it was being read, so a version caught mid-write is never applied.
//!
//! inotify reports on the directory, not the file, because the file is usually replaced rather
//! than written in place, and a ConfigMap volume swaps a symlink (`..data`) beside it. Where
//! inotify says nothing (network filesystems, a directory that cannot be watched) the poll still
//! finds the change.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// What the events since the last look say about the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Nothing about the file (other files in the directory).
    Nothing,
    /// A write of the file finished, and it has not been written since.
    Finished,
    /// The file is being written: wait until the write is finished.
    Writing,
    /// Events were lost (the kernel's queue overflowed): only the poll can tell.
    Lost,
}

pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
    name: OsString,
    /// The file itself has been opened for writing (rather than only replaced by renames).
    written_in_place: AtomicBool,
}

impl DirWatch {
    /// Watches the directory of `file`.
    pub fn new(file: &Path) -> io::Result<Self> {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = file.file_name().unwrap_or_default().to_owned();
        let dir = CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: plain system calls; the descriptor is owned by `OwnedFd` from here on.
        let fd = unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_MODIFY;
        // SAFETY: `dir` is a valid C string and `fd` an inotify descriptor.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), dir.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `OwnedFd` keeps the descriptor open, and unchanged, for the `AsyncFd`'s life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(Self {
            fd,
            name,
            written_in_place: AtomicBool::new(false),
        })
    }

    /// Waits for events, and says what all that are queued mean for the file.
    pub async fn next(&self) -> io::Result<Seen> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|_| self.drain()) {
                Ok(Ok(Seen::Nothing)) => continue,
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// What happened to the file since the last look, without waiting. Callable from any
    /// thread; what it consumes, [`DirWatch::next`] does not see again.
    pub fn since(&self) -> Seen {
        match self.drain() {
            Ok(seen) => seen,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Seen::Nothing,
            Err(_) => Seen::Lost,
        }
    }

    /// Whether the file has ever been written in place. Such a writer truncates the file before
    /// writing it, and a reader can see the truncated file before the kernel queues the event
    /// that says so: only a file that stays unchanged for a poll is safe to read then (and an
    /// empty one never is: a writer kept from the CPU between the truncation and its event can
    /// outlast a poll). Files replaced by a rename never show a partial state.
    pub fn written_in_place(&self) -> bool {
        self.written_in_place.load(Ordering::Relaxed)
    }

    /// Reads every queued event; `WouldBlock` when there was none.
    fn drain(&self) -> io::Result<Seen> {
        let mut buf = [0u8; 4096];
        let mut seen = Seen::Nothing;
        let mut read_any = false;
        loop {
            // SAFETY: reads into a buffer of the given length from an owned descriptor.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock if read_any => Ok(seen),
                    _ => Err(e),
                };
            }
            read_any = true;
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote a whole event at `at`; read_unaligned copes with the
                // buffer's alignment.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at).cast()) };
                let name = &buf[at + header..at + header + event.len as usize];
                let name = OsStr::from_bytes(name.split(|&b| b == 0).next().unwrap_or_default());
                at += header + event.len as usize;
                if name == self.name && event.mask & (libc::IN_MODIFY | libc::IN_CLOSE_WRITE) != 0 {
                    self.written_in_place.store(true, Ordering::Relaxed);
                }
                seen = match (event.mask, name == self.name) {
                    (m, _) if m & libc::IN_Q_OVERFLOW != 0 => Seen::Lost,
                    (m, true) if m & libc::IN_MODIFY != 0 => Seen::Writing,
                    (m, true) if m & (libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO) != 0 => {
                        Seen::Finished
                    }
                    // Another name renamed into place may be the symlink the file resolves
                    // through (a ConfigMap volume's `..data`).
                    (m, false) if m & libc::IN_MOVED_TO != 0 && seen != Seen::Writing => {
                        Seen::Finished
                    }
                    _ => seen,
                };
            }
        }
    }
}
