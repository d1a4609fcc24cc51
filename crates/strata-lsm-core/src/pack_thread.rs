//! Packing run pages on a second core. A [`RunPacker`] is pure Rust (page
//! images, codecs, no Postgres calls), so a bulk load, flush or merge can
//! hand it rows in batches over a channel and keep parsing, reading and
//! checking visibility while another thread splits rows into columns,
//! compresses and lays out pages. The backend takes the finished pages back
//! in order and writes them into buffers itself (WAL, buffer manager and
//! every other Postgres call stay on the backend's thread).
//!
//! The thread blocks every signal (it is spawned with all signals blocked,
//! so none can reach it before it starts): signals stay with the backend. A
//! panic in it (a row too large for a page, which the callers rule out)
//! surfaces as an error of the backend. Dropping a [`Packer`] mid-load (an
//! ERROR in the statement) closes the channel and joins the thread.

use super::run_packer::{PackedPage, RunPacker};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

/// Rows handed over at a time.
const BATCH: usize = 256;
/// Batches handed over and not yet answered before the backend waits.
const MAX_IN_FLIGHT: usize = 16;

/// Rows handed over together: their bytes back to back in one buffer (an
/// allocation per batch, not per row — a buffer one thread allocates and
/// another frees costs glibc's malloc far more than one it keeps).
#[derive(Default)]
struct Batch {
    rowids: Vec<u64>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl Batch {
    fn with_capacity(rows: usize) -> Batch {
        Batch {
            rowids: Vec::with_capacity(rows),
            ends: Vec::with_capacity(rows),
            bytes: Vec::with_capacity(rows * 128),
        }
    }

    fn push(&mut self, rowid: u64, tuple: &[u8]) {
        self.rowids.push(rowid);
        self.bytes.extend_from_slice(tuple);
        self.ends.push(self.bytes.len());
    }

    fn len(&self) -> usize {
        self.rowids.len()
    }

    fn is_empty(&self) -> bool {
        self.rowids.is_empty()
    }

    fn rows(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.rowids
            .iter()
            .zip(starts.zip(self.ends.iter()))
            .map(|(&r, (a, &b))| (r, &self.bytes[a..b]))
    }
}

enum Msg {
    Rows(Batch),
    Finish,
}

/// A run packer, on the backend's thread or on a thread of its own.
pub enum Packer {
    Inline(RunPacker),
    Threaded(Threaded),
}

pub struct Threaded {
    tx: Option<Sender<Msg>>,
    rx: Receiver<Vec<PackedPage>>,
    batch: Batch,
    in_flight: usize,
    handle: Option<JoinHandle<()>>,
}

/// Why the packing thread could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("could not start the run packing thread: {0}")]
    Spawn(std::io::Error),
    #[error("the run packing thread failed: {0}")]
    Failed(String),
}

impl strata_base::error::SqlError for PackError {
    fn sqlstate(&self) -> &'static str {
        match self {
            PackError::Spawn(_) => "53000",
            PackError::Failed(_) => "XX000",
        }
    }
}

impl Packer {
    /// `packer` on a thread of its own when `threaded` (and one can be
    /// started), else on the caller's.
    pub fn new(packer: RunPacker, threaded: bool) -> Result<Packer, PackError> {
        if !threaded {
            return Ok(Packer::Inline(packer));
        }
        let (tx, worker_rx) = mpsc::channel::<Msg>();
        let (worker_tx, rx) = mpsc::channel::<Vec<PackedPage>>();
        let handle = spawn_without_signals(move || work(packer, worker_rx, worker_tx))
            .map_err(PackError::Spawn)?;
        Ok(Packer::Threaded(Threaded {
            tx: Some(tx),
            rx,
            batch: Batch::with_capacity(BATCH),
            in_flight: 0,
            handle: Some(handle),
        }))
    }

    /// Adds a version; returns the pages finished by now, in order.
    pub fn add(&mut self, rowid: u64, tuple: &[u8]) -> Result<Vec<PackedPage>, PackError> {
        match self {
            Packer::Inline(p) => Ok(p.add(rowid, tuple)),
            Packer::Threaded(t) => {
                t.batch.push(rowid, tuple);
                if t.batch.len() < BATCH {
                    return Ok(Vec::new());
                }
                let rows = std::mem::replace(&mut t.batch, Batch::with_capacity(BATCH));
                t.send(Msg::Rows(rows))?;
                let mut out = Vec::new();
                // take what is ready; wait only when too far ahead
                while t.in_flight > 0 {
                    let pages = if t.in_flight >= MAX_IN_FLIGHT {
                        t.recv()?
                    } else {
                        match t.rx.try_recv() {
                            Ok(pages) => pages,
                            Err(mpsc::TryRecvError::Empty) => break,
                            Err(mpsc::TryRecvError::Disconnected) => return Err(t.failure()),
                        }
                    };
                    t.in_flight -= 1;
                    out.extend(pages);
                }
                Ok(out)
            }
        }
    }

    /// Everything still pending, as the last pages.
    pub fn finish(self) -> Result<Vec<PackedPage>, PackError> {
        match self {
            Packer::Inline(p) => Ok(p.finish()),
            Packer::Threaded(mut t) => {
                let rows = std::mem::take(&mut t.batch);
                if !rows.is_empty() {
                    t.send(Msg::Rows(rows))?;
                }
                t.send(Msg::Finish)?;
                let mut out = Vec::new();
                while t.in_flight > 0 {
                    out.extend(t.recv()?);
                    t.in_flight -= 1;
                }
                Ok(out)
            }
        }
    }
}

impl Threaded {
    fn send(&mut self, m: Msg) -> Result<(), PackError> {
        let tx = self.tx.as_ref().expect("sender kept until drop");
        if tx.send(m).is_err() {
            return Err(self.failure());
        }
        self.in_flight += 1;
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<PackedPage>, PackError> {
        self.rx.recv().map_err(|_| self.failure())
    }

    /// The thread's panic message, once it is gone.
    fn failure(&mut self) -> PackError {
        self.tx = None;
        let why = match self.handle.take().map(|h| h.join()) {
            Some(Err(panic)) => panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panicked".into()),
            _ => "stopped".into(),
        };
        PackError::Failed(why)
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        // closing the channel ends the thread after its current batch
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn work(mut packer: RunPacker, rx: Receiver<Msg>, tx: Sender<Vec<PackedPage>>) {
    while let Ok(m) = rx.recv() {
        let pages = match m {
            Msg::Rows(rows) => rows.rows().flat_map(|(rowid, t)| packer.add(rowid, t)).collect(),
            Msg::Finish => {
                let _ = tx.send(packer.finish());
                return;
            }
        };
        if tx.send(pages).is_err() {
            return;
        }
    }
}

/// Spawns `f` on a thread that starts with every signal blocked (the
/// caller's mask is blocked around the spawn and restored after it).
fn spawn_without_signals<F: FnOnce() + Send + 'static>(f: F) -> std::io::Result<JoinHandle<()>> {
    // SAFETY: sigfillset/pthread_sigmask on local sets; the caller's mask is
    // restored right after the spawn, and a signal arriving meanwhile stays
    // pending for this thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let spawned = std::thread::Builder::new()
            .name("strata-pack".into())
            .spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compressed_page::Codec;

    fn rows() -> Vec<(u64, Vec<u8>)> {
        (0..5000u64)
            .map(|i| {
                let mut t = vec![0u8; 24];
                t[22] = 24;
                t.extend_from_slice(format!("row {i} of a table packed on a thread").as_bytes());
                (i * 2, t)
            })
            .collect()
    }

    fn pack(threaded: bool) -> Vec<(Vec<u8>, u64, u64)> {
        let mut p = Packer::new(RunPacker::new(3, Some(Codec::Lz4)), threaded).unwrap();
        let mut pages = Vec::new();
        for (r, t) in rows() {
            pages.extend(p.add(r, &t).unwrap());
        }
        pages.extend(p.finish().unwrap());
        pages
            .into_iter()
            .map(|pg| (pg.image.bytes().to_vec(), pg.first_rowid, pg.versions))
            .collect()
    }

    #[test]
    fn a_thread_packs_the_same_pages() {
        let (inline, threaded) = (pack(false), pack(true));
        assert!(inline.len() > 3);
        assert_eq!(inline, threaded);
    }

    #[test]
    fn a_panic_on_the_thread_is_an_error() {
        let mut p = Packer::new(RunPacker::new(3, None), true).unwrap();
        // a version larger than a run page makes the packer panic
        let huge = vec![1u8; 9000];
        let mut failed = None;
        for i in 0..(BATCH * (MAX_IN_FLIGHT + 2)) as u64 {
            if let Err(e) = p.add(i, &huge) {
                failed = Some(e);
                break;
            }
        }
        let failed = failed.or_else(|| p.finish().err()).expect("an error");
        assert!(failed.to_string().contains("failed"), "{failed}");
    }
}
