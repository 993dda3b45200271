//! A disk that loses power: a redb backend over a real file that remembers
//! the bytes every unsynced write replaced, so that a crash can put the file
//! back exactly as it was at the last sync.
//!
//! An in-process "crash" keeps the page cache, so plain files would keep every
//! write and hide a missing fsync. This backend makes `sync_data` the only
//! thing that makes a write survive, as a power cut does (without torn
//! writes: a write is lost whole or kept whole).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct State {
    file: File,
    len: u64,
    synced_len: u64,
    /// (offset, bytes there before) for every write since the last sync.
    undo: Vec<(u64, Vec<u8>)>,
    /// Set by a crash: the machine is off and every IO fails.
    dead: bool,
    /// A broken disk: `sync_data` returns without making anything durable.
    lying: bool,
}

/// A redb storage backend whose unsynced writes a crash undoes.
#[derive(Debug, Clone)]
pub struct PowerCutDisk(Arc<Mutex<State>>);

fn off() -> io::Error {
    io::Error::other("the machine is off")
}

impl PowerCutDisk {
    /// Opens (or creates) the file; what is in it counts as synced.
    pub fn open(path: &Path) -> io::Result<PowerCutDisk> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(PowerCutDisk(Arc::new(Mutex::new(State {
            file,
            len,
            synced_len: len,
            undo: Vec::new(),
            dead: false,
            lying: false,
        }))))
    }

    /// The power goes: unsynced writes are undone, newest first, and this
    /// handle fails every later IO (the crashed process's threads may still
    /// hold it). Returns how many writes were lost.
    pub fn crash(&self) -> io::Result<usize> {
        let mut s = self.0.lock().unwrap();
        let lost = s.undo.len();
        let undo = std::mem::take(&mut s.undo);
        for (offset, bytes) in undo.into_iter().rev() {
            s.file.write_all_at(&bytes, offset)?;
        }
        let synced = s.synced_len;
        s.file.set_len(synced)?;
        s.len = synced;
        s.dead = true;
        Ok(lost)
    }

    /// Makes `sync_data` a no-op that still reports success: the control
    /// that shows the durability checks can fail.
    pub fn set_lying(&self, lying: bool) {
        self.0.lock().unwrap().lying = lying;
    }

    fn remember(s: &mut State, offset: u64, len: u64) -> io::Result<()> {
        let end = (offset + len).min(s.len);
        if offset < end {
            let mut old = vec![0; (end - offset) as usize];
            s.file.read_exact_at(&mut old, offset)?;
            s.undo.push((offset, old));
        }
        Ok(())
    }
}

impl redb::StorageBackend for PowerCutDisk {
    fn len(&self) -> Result<u64, io::Error> {
        let s = self.0.lock().unwrap();
        if s.dead {
            return Err(off());
        }
        Ok(s.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let s = self.0.lock().unwrap();
        if s.dead {
            return Err(off());
        }
        s.file.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut s = self.0.lock().unwrap();
        if s.dead {
            return Err(off());
        }
        if len < s.len {
            let cut = s.len - len;
            PowerCutDisk::remember(&mut s, len, cut)?;
        }
        s.file.set_len(len)?;
        s.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut s = self.0.lock().unwrap();
        if s.dead {
            return Err(off());
        }
        if s.lying {
            return Ok(());
        }
        // The real fsync is left out: the simulation models the power cut
        // itself, and a real fsync per commit would dominate its run time.
        s.undo.clear();
        s.synced_len = s.len;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut s = self.0.lock().unwrap();
        if s.dead {
            return Err(off());
        }
        PowerCutDisk::remember(&mut s, offset, data.len() as u64)?;
        s.file.write_all_at(data, offset)?;
        s.len = s.len.max(offset + data.len() as u64);
        Ok(())
    }
}
