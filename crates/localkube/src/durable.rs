//! Durable storage for `--data-dir`: an embedded SQLite database that holds every object as its
//! JSON, the store's resourceVersion, and the server's identity (CA, serving certificate, token).
//!
//! The store stays in memory and commits as before; each change is also queued here, in
//! resourceVersion order. One committer thread takes everything queued as one transaction
//! (WAL journal, `synchronous=FULL`: one fsync of the log per transaction), so concurrent
//! writers share a sync (group commit). A write is answered once its version is durable
//! ([`Durability::wait`]). A crash loses no acknowledged write, and the database always holds
//! a prefix of the history: a whole transaction or none of it.
//!
//! Reads may see a change up to one transaction before it is durable; a write that depends
//! on it gets a later version, so it can never be durable without it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{StoreKey, Stored};

/// The layout this release writes. A database of a later format is refused, not misread.
pub const FORMAT: i64 = 1;

/// The database's file inside the data directory.
const DATABASE: &str = "state.db";
/// The lock file: held (flock) while a server uses the directory.
const LOCK: &str = "localkube.lock";

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the data directory {dir} is in use by another localkube{holder}: stop it first, or choose another --data-dir"
    )]
    InUse { dir: PathBuf, holder: String },
    #[error(
        "the data directory {dir} was written by a newer localkube (data format {found}; this one reads format {FORMAT} and older): run that release, or choose another --data-dir"
    )]
    NewerFormat { dir: PathBuf, found: i64 },
    #[error("cannot use the data directory {dir}: {why}")]
    Io { dir: PathBuf, why: String },
}

/// One change, queued for the committer.
pub enum Record {
    Put {
        key: StoreKey,
        object: Arc<Stored>,
    },
    Delete {
        key: StoreKey,
        namespace: Arc<str>,
        name: Arc<str>,
        rv: u64,
    },
    /// A version taken without an object change (a compaction, a restart).
    Version(u64),
}

impl Record {
    fn rv(&self) -> u64 {
        match self {
            Record::Put { object, .. } => object.rv(),
            Record::Delete { rv, .. } | Record::Version(rv) => *rv,
        }
    }
}

/// An open data directory: its lock, held until this (or the committer that takes it over)
/// is dropped, and its database.
pub struct DataDir {
    dir: PathBuf,
    /// Held for its flock; closing the file releases it.
    _lock: std::fs::File,
    conn: Connection,
}

fn io_error(dir: &Path, why: impl std::fmt::Display) -> OpenError {
    OpenError::Io {
        dir: dir.to_path_buf(),
        why: why.to_string(),
    }
}

impl DataDir {
    /// Creates the directory if needed, takes its lock, and opens (or creates) its database.
    pub fn open(dir: &Path) -> Result<DataDir, OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let lock = lock(dir)?;
        let conn = Connection::open(dir.join(DATABASE)).map_err(|e| io_error(dir, e))?;
        let data = DataDir {
            dir: dir.to_path_buf(),
            _lock: lock,
            conn,
        };
        data.prepare().map_err(|e| io_error(dir, e))?;
        let found: Option<i64> = data
            .meta("format")
            .map_err(|e| io_error(dir, e))?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok());
        match found {
            Some(found) if found > FORMAT => {
                return Err(OpenError::NewerFormat {
                    dir: dir.to_path_buf(),
                    found,
                });
            }
            Some(_) => {}
            None => data
                .set_meta(&[("format", FORMAT.to_string().as_bytes())])
                .map_err(|e| io_error(dir, e))?,
        }
        Ok(data)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn prepare(&self) -> rusqlite::Result<()> {
        // WAL with synchronous=FULL syncs the log at every commit, so a committed transaction
        // survives a power cut; NORMAL would not. A small page cache: the objects are in memory.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "cache_size", -2048)?;
        self.conn.busy_timeout(Duration::from_secs(5))?;
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS objects (
                 grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                 rv INTEGER NOT NULL, body BLOB NOT NULL,
                 PRIMARY KEY (grp, resource, namespace, name)) WITHOUT ROWID;",
        )
    }

    /// A value of the meta table (the format, the version, the server's identity).
    pub fn meta(&self, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    }

    /// Sets meta values in one transaction.
    pub fn set_meta(&self, pairs: &[(&str, &[u8])]) -> rusqlite::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        for (k, v) in pairs {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![k, v],
            )?;
        }
        tx.commit()
    }

    /// The stored resourceVersion: the last one any committed transaction took.
    pub fn version(&self) -> rusqlite::Result<u64> {
        Ok(self
            .meta("rv")?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// Visits every stored object: its table and its JSON.
    pub fn load(
        &self,
        mut visit: impl FnMut(StoreKey, Bytes) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        let mut stmt = self
            .conn
            .prepare("SELECT grp, resource, body FROM objects ORDER BY grp, resource")?;
        let mut rows = stmt.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let key: StoreKey = (row.get(0)?, row.get(1)?);
            let body: Vec<u8> = row.get(2)?;
            visit(key, Bytes::from(body))?;
            n += 1;
        }
        Ok(n)
    }

    /// Writes a batch of changes, in order, as one transaction.
    fn commit(&mut self, batch: &[Record]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO objects (grp, resource, namespace, name, rv, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (grp, resource, namespace, name) DO UPDATE SET rv = excluded.rv, body = excluded.body",
            )?;
            let mut delete = tx.prepare_cached(
                "DELETE FROM objects WHERE grp = ?1 AND resource = ?2 AND namespace = ?3 AND name = ?4",
            )?;
            for r in batch {
                match r {
                    Record::Put { key, object } => {
                        let json = object.json();
                        put.execute(params![
                            key.0,
                            key.1,
                            object.namespace(),
                            object.name(),
                            object.rv() as i64,
                            &json[..]
                        ])?;
                    }
                    Record::Delete {
                        key,
                        namespace,
                        name,
                        ..
                    } => {
                        delete.execute(params![key.0, key.1, &**namespace, &**name])?;
                    }
                    Record::Version(_) => {}
                }
            }
            if let Some(last) = batch.iter().map(Record::rv).max() {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('rv', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [last.to_string().into_bytes()],
                )?;
            }
        }
        tx.commit()
    }
}

/// Takes the directory's lock, or says who holds it.
fn lock(dir: &Path) -> Result<std::fs::File, OpenError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error(dir, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(OpenError::InUse {
                dir: dir.to_path_buf(),
                holder: if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_error(dir, e)),
    }
    // Who holds it, for the message a second server gives.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// How far the committer got: the last durable version, and the error it is retrying, if any.
#[derive(Clone, Debug, Default)]
struct Progress {
    durable: u64,
    failing: Option<String>,
}

#[derive(Default)]
struct Queue {
    records: Vec<Record>,
    closed: bool,
}

/// Counters of the committer's work, for benchmarks: fsyncs per write is `commits / records`
/// (each commit syncs the log once; checkpoints add a few).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub commits: u64,
    pub records: u64,
}

/// The committer: the queue the store fills, and the thread that empties it.
pub struct Durability {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    progress: tokio::sync::watch::Receiver<Progress>,
    stats: Arc<Mutex<Stats>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How long a failing commit waits before it tries again.
const RETRY: Duration = Duration::from_millis(500);

impl Durability {
    /// Starts the committer over an open data directory; `durable` is the version it holds.
    pub fn start(mut data: DataDir, durable: u64) -> Durability {
        let queue: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let (progress_tx, progress) = tokio::sync::watch::channel(Progress {
            durable,
            failing: None,
        });
        let stats: Arc<Mutex<Stats>> = Arc::default();
        let thread = {
            let queue = queue.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("localkube-commit".into())
                .spawn(move || {
                    loop {
                        let batch = {
                            let (lock, wake) = &*queue;
                            let mut q = lock.lock();
                            while q.records.is_empty() && !q.closed {
                                wake.wait(&mut q);
                            }
                            if q.records.is_empty() {
                                return;
                            }
                            std::mem::take(&mut q.records)
                        };
                        let last = batch.iter().map(Record::rv).max().unwrap_or(0);
                        loop {
                            match data.commit(&batch) {
                                Ok(()) => break,
                                Err(e) => {
                                    let why = format!("{e}");
                                    tracing::error!(
                                        "cannot write to {}: {why} (retrying)",
                                        data.path().display()
                                    );
                                    progress_tx.send_modify(|p| p.failing = Some(why));
                                    std::thread::sleep(RETRY);
                                }
                            }
                        }
                        {
                            let mut s = stats.lock();
                            s.commits += 1;
                            s.records += batch.len() as u64;
                        }
                        progress_tx.send_modify(|p| {
                            p.durable = p.durable.max(last);
                            p.failing = None;
                        });
                    }
                })
                .expect("spawning the commit thread")
        };
        Durability {
            queue,
            progress,
            stats,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Queues a change; the caller holds the store's lock, so records arrive in version order.
    pub fn push(&self, record: Record) {
        let (lock, wake) = &*self.queue;
        lock.lock().records.push(record);
        wake.notify_one();
    }

    /// Waits until version `rv` is durable. Fails at once while the committer cannot write
    /// (it keeps retrying, so the write may still become durable later).
    pub async fn wait(&self, rv: u64) -> Result<(), String> {
        let mut progress = self.progress.clone();
        let result = progress
            .wait_for(|p| p.durable >= rv || p.failing.is_some())
            .await;
        match result {
            Ok(p) if p.durable >= rv => Ok(()),
            Ok(p) => Err(p.failing.clone().unwrap_or_default()),
            Err(_) => Err("the store is closed".into()),
        }
    }

    pub fn stats(&self) -> Stats {
        *self.stats.lock()
    }

    /// Commits what is queued, stops the thread, and releases the data directory.
    pub fn close(&self) {
        {
            let (lock, wake) = &*self.queue;
            lock.lock().closed = true;
            wake.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        self.close();
    }
}
