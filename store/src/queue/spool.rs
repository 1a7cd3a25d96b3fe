//! The on-disk spool: ops the store could not take yet, one JSON line each, in order.
//!
//! Blocking I/O only; the worker calls it from `spawn_blocking`. Every append is fsync'd
//! before it counts as spooled. One process owns a spool directory at a time (an
//! exclusive lock on `spool.lock`), so nothing else appends while a replay reads.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{StoreError, StoreOp};

const SPOOL: &str = "spool.jsonl";
const BAD: &str = "spool.jsonl.bad";
const REJECTED: &str = "rejected.jsonl";
const LOCK: &str = "spool.lock";

/// One line read back from the spool.
pub(super) enum Entry {
    /// A parsed op.
    Op(Box<StoreOp>),
    /// A line that did not parse: its bytes and the parse error, for [`Spool::keep_bad`].
    Bad {
        /// The line without its newline.
        line: Vec<u8>,
        /// Why it did not parse.
        error: String,
    },
}

/// A run of lines read from the spool.
pub(super) struct Batch {
    /// Each entry with the byte offset its line starts at.
    pub entries: Vec<(u64, Entry)>,
    /// Offset just past the last line read.
    pub next: u64,
    /// Nothing follows `next`.
    pub eof: bool,
}

/// The spool directory's files.
pub(super) struct Spool {
    dir: PathBuf,
    path: PathBuf,
    /// Lines on disk not yet applied (parsable or not).
    len: u64,
    /// The file ends in a partial line (crash or failed write): the next append must
    /// start a new line so it does not fuse with the garbage.
    needs_newline: bool,
    _lock: File,
}

fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Spool {
        path: path.display().to_string(),
        source,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (creating) the directory, takes its lock, and counts what a previous
    /// process left behind.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        lock.try_lock().map_err(|e| {
            let source = match e {
                std::fs::TryLockError::Error(e) => e,
                std::fs::TryLockError::WouldBlock => io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "spool directory is in use by another process",
                ),
            };
            io_err(&lock_path, source)
        })?;
        let path = dir.join(SPOOL);
        let (len, needs_newline) = count_lines(&path).map_err(|e| io_err(&path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            len,
            needs_newline,
            _lock: lock,
        })
    }

    /// Lines on disk not yet applied.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Notes that `n` lines were applied (or moved aside) during a replay.
    pub fn consumed(&mut self, n: u64) {
        self.len = self.len.saturating_sub(n);
    }

    /// Appends ops durably; on error nothing counts as spooled and the file is cut back.
    pub fn append(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut buf = Vec::with_capacity(ops.len() * 256);
        if self.needs_newline {
            buf.push(b'\n');
        }
        for op in ops {
            serde_json::to_writer(&mut buf, op)
                .map_err(|e| io_err(&self.path, io::Error::other(e)))?;
            buf.push(b'\n');
        }
        let created = !self.path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, e))?;
        let before = file.metadata().map_err(|e| io_err(&self.path, e))?.len();
        let written = file
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .and_then(|()| if created { sync_dir(&self.dir) } else { Ok(()) });
        if let Err(e) = written {
            // A torn line would fuse with the next append; cut back, or failing that
            // make sure the next append starts on a fresh line.
            self.needs_newline = file
                .set_len(before)
                .and_then(|()| file.sync_data())
                .is_err()
                || self.needs_newline;
            return Err(io_err(&self.path, e));
        }
        self.needs_newline = false;
        self.len += ops.len() as u64;
        Ok(())
    }

    /// Reads up to `max` lines starting at byte `offset`.
    pub fn read_from(&self, offset: u64, max: usize) -> Result<Batch, StoreError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Batch {
                    entries: Vec::new(),
                    next: offset,
                    eof: true,
                });
            }
            Err(e) => return Err(io_err(&self.path, e)),
        };
        let mut reader = BufReader::new(file);
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io_err(&self.path, e))?;
        let mut entries = Vec::new();
        let mut pos = offset;
        let mut line = Vec::new();
        while entries.len() < max {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| io_err(&self.path, e))?;
            if n == 0 {
                return Ok(Batch {
                    entries,
                    next: pos,
                    eof: true,
                });
            }
            let start = pos;
            pos += n as u64;
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<StoreOp>(body) {
                Ok(op) => entries.push((start, Entry::Op(Box::new(op)))),
                Err(e) => entries.push((
                    start,
                    Entry::Bad {
                        line: body.to_vec(),
                        error: e.to_string(),
                    },
                )),
            }
        }
        let eof = reader
            .fill_buf()
            .map_err(|e| io_err(&self.path, e))?
            .is_empty();
        Ok(Batch {
            entries,
            next: pos,
            eof,
        })
    }

    /// Copies a line that did not parse to the `.bad` file (done as the replay reaches
    /// it, so a replay cut short and retried does not copy it twice).
    pub fn keep_bad(&self, line: &[u8], offset: u64, error: &str) -> Result<(), StoreError> {
        let bad = self.dir.join(BAD);
        tracing::error!(
            spool = %self.path.display(),
            offset,
            error,
            moved_to = %bad.display(),
            "unparsable spool line moved aside"
        );
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&bad)
            .map_err(|e| io_err(&bad, e))?;
        f.write_all(line)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_data())
            .map_err(|e| io_err(&bad, e))
    }

    /// Drops everything before byte `offset` (already applied), keeping the rest.
    pub fn drop_prefix(&mut self, offset: u64) -> Result<(), StoreError> {
        if offset == 0 {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{SPOOL}.tmp"));
        let rewrite = || -> io::Result<(u64, bool)> {
            let mut src = File::open(&self.path)?;
            src.seek(SeekFrom::Start(offset))?;
            let mut dst = File::create(&tmp)?;
            io::copy(&mut src, &mut dst)?;
            dst.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            sync_dir(&self.dir)?;
            count_lines(&self.path)
        };
        let (len, needs_newline) = rewrite().map_err(|e| io_err(&self.path, e))?;
        self.len = len;
        self.needs_newline = needs_newline;
        Ok(())
    }

    /// Removes the spool after everything in it was applied.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.path, e)),
        }
        self.len = 0;
        self.needs_newline = false;
        Ok(())
    }

    /// Keeps an op the store refused while reachable (it would fail again on every
    /// retry), with the reason, in `rejected.jsonl`.
    pub fn reject(&self, op: &StoreOp, error: &str) -> Result<(), StoreError> {
        let path = self.dir.join(REJECTED);
        let line = serde_json::json!({ "error": error, "op": op }).to_string();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_data())
            .map_err(|e| io_err(&path, e))
    }
}

/// Number of lines in a file (a partial last line counts) and whether it ends mid-line.
fn count_lines(path: &Path) -> io::Result<(u64, bool)> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, false)),
        Err(e) => return Err(e),
    };
    let mut buf = [0_u8; 64 * 1024];
    let mut lines = 0_u64;
    let mut last = b'\n';
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    let partial = last != b'\n';
    Ok((lines + u64::from(partial), partial))
}
