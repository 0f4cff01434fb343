//! Durable storage for `--data-dir`: an embedded SQLite database that holds every object as its
//! JSON, the store's resourceVersion, the server's identity (CA, serving certificate, token), the
//! ServiceAccount tokens issued (as SHA-256 hashes, never the tokens), and the rows set aside at
//! a load because they could not be read (`quarantine`).
//!
//! The store stays in memory and commits as before; each change is also queued here, in
//! resourceVersion order. Whoever commits takes everything queued as one transaction (WAL
//! journal, `synchronous=FULL`: one fsync of the log per transaction), so concurrent writers
//! share a sync (group commit). A write request commits on its own task when the database is
//! free ([`Durability::wait`]) and is answered once its version is durable; a thread commits
//! what no request waits on. A crash loses no acknowledged write, and the database always
//! holds a prefix of the history: a whole transaction or none of it.
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
    /// A ServiceAccount token issued at version `rv`; the tokens expired by `now` (Unix seconds)
    /// are dropped in the same transaction.
    Token {
        rv: u64,
        token: TokenRow,
        now: i64,
    },
}

/// An issued ServiceAccount token as the database keeps it: its SHA-256, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub hash: [u8; 32],
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Unix seconds.
    pub expires: i64,
}

/// A stored object row as a load reads it; `body` says why it is not bytes when it is not.
pub struct Row {
    pub key: StoreKey,
    pub namespace: String,
    pub name: String,
    pub body: Result<Bytes, String>,
}

/// A row that a load set aside, moved to the `quarantine` table.
#[derive(Debug)]
pub struct SetAside {
    pub key: StoreKey,
    pub namespace: String,
    pub name: String,
    pub error: String,
}

impl Record {
    fn rv(&self) -> u64 {
        match self {
            Record::Put { object, .. } => object.rv(),
            Record::Delete { rv, .. } | Record::Version(rv) | Record::Token { rv, .. } => *rv,
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

    /// The database's file.
    pub fn database(&self) -> PathBuf {
        self.dir.join(DATABASE)
    }

    fn prepare(&self) -> rusqlite::Result<()> {
        // WAL with synchronous=FULL syncs the log at every commit, so a committed transaction
        // survives a power cut; NORMAL would not. A small page cache: the objects are in memory.
        // Only this process uses the database (the directory's lock says so), so SQLite may
        // keep its WAL index in memory and skip its file locks at each transaction.
        self.conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "cache_size", -2048)?;
        self.conn.busy_timeout(Duration::from_secs(5))?;
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS objects (
                 grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                 rv INTEGER NOT NULL, body BLOB NOT NULL,
                 PRIMARY KEY (grp, resource, namespace, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS serviceaccount_tokens (
                 hash BLOB PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
                 uid TEXT NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS serviceaccount_tokens_by_expiry
                 ON serviceaccount_tokens (expires);
             CREATE TABLE IF NOT EXISTS quarantine (
                 id INTEGER PRIMARY KEY, grp TEXT NOT NULL, resource TEXT NOT NULL,
                 namespace TEXT NOT NULL, name TEXT NOT NULL, body BLOB,
                 error TEXT NOT NULL, set_aside_at TEXT NOT NULL);",
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

    /// The stored resourceVersion of the last transaction that ended with a delete or a
    /// compaction; the store's version is the highest of it and the stored objects' ones.
    pub fn version(&self) -> rusqlite::Result<u64> {
        Ok(self
            .meta("rv")?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// Visits every stored object row. The rows `visit` refuses (with why) are moved to the
    /// `quarantine` table in one transaction, so that they neither stop the load nor block a
    /// later object of their name, and are returned. Returns how many rows were visited too.
    pub fn load(
        &self,
        mut visit: impl FnMut(Row) -> Result<(), String>,
    ) -> rusqlite::Result<(usize, Vec<SetAside>)> {
        use rusqlite::types::ValueRef;
        let mut refused = Vec::new();
        let mut n = 0;
        {
            let mut stmt = self.conn.prepare(
                "SELECT grp, resource, namespace, name, body FROM objects ORDER BY grp, resource",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let key: StoreKey = (row.get(0)?, row.get(1)?);
                let body = match row.get_ref(4)? {
                    ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Bytes::copy_from_slice(b)),
                    other => Err(format!("the body is {:?}, not bytes", other.data_type())),
                };
                let loaded = Row {
                    key,
                    namespace: row.get(2)?,
                    name: row.get(3)?,
                    body,
                };
                let (key, namespace, name) = (
                    loaded.key.clone(),
                    loaded.namespace.clone(),
                    loaded.name.clone(),
                );
                if let Err(error) = visit(loaded) {
                    refused.push(SetAside {
                        key,
                        namespace,
                        name,
                        error,
                    });
                }
                n += 1;
            }
        }
        if !refused.is_empty() {
            self.quarantine(&refused)?;
        }
        Ok((n, refused))
    }

    /// Moves rows from `objects` to `quarantine`, with why and when.
    fn quarantine(&self, rows: &[SetAside]) -> rusqlite::Result<()> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let tx = self.conn.unchecked_transaction()?;
        for r in rows {
            tx.execute(
                "INSERT INTO quarantine (grp, resource, namespace, name, body, error, set_aside_at)
                 SELECT grp, resource, namespace, name, body, ?5, ?6 FROM objects
                 WHERE grp = ?1 AND resource = ?2 AND namespace = ?3 AND name = ?4",
                params![r.key.0, r.key.1, r.namespace, r.name, r.error, at],
            )?;
            tx.execute(
                "DELETE FROM objects WHERE grp = ?1 AND resource = ?2 AND namespace = ?3 AND name = ?4",
                params![r.key.0, r.key.1, r.namespace, r.name],
            )?;
        }
        tx.commit()
    }

    /// The ServiceAccount tokens still valid at `now` (Unix seconds). The others are deleted:
    /// the expired ones, and those whose ServiceAccount is gone or was recreated (no stored
    /// ServiceAccount of that name has the token's uid), which could never be used again.
    pub fn tokens(&self, now: i64) -> rusqlite::Result<Vec<TokenRow>> {
        self.conn.execute(
            "DELETE FROM serviceaccount_tokens WHERE expires <= ?1 OR NOT EXISTS (
                 SELECT 1 FROM objects
                 WHERE grp = '' AND resource = 'serviceaccounts'
                   AND objects.namespace = serviceaccount_tokens.namespace
                   AND objects.name = serviceaccount_tokens.name
                   AND json_extract(CAST(objects.body AS TEXT), '$.metadata.uid')
                       = serviceaccount_tokens.uid)",
            [now],
        )?;
        let mut stmt = self
            .conn
            .prepare("SELECT hash, namespace, name, uid, expires FROM serviceaccount_tokens")?;
        let rows = stmt.query_map([], |r| {
            let hash: Vec<u8> = r.get(0)?;
            Ok((hash, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        let mut tokens = Vec::new();
        for row in rows {
            let (hash, namespace, name, uid, expires) = row?;
            // A hash of another length is no token this release issued.
            let Ok(hash) = <[u8; 32]>::try_from(hash) else {
                continue;
            };
            tokens.push(TokenRow {
                hash,
                namespace,
                name,
                uid,
                expires,
            });
        }
        Ok(tokens)
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
                        // A token dies with its account (one of the same name is another).
                        if key.0.is_empty() && key.1 == "serviceaccounts" {
                            tx.prepare_cached(
                                "DELETE FROM serviceaccount_tokens WHERE namespace = ?1 AND name = ?2",
                            )?
                            .execute(params![&**namespace, &**name])?;
                        }
                    }
                    Record::Version(_) => {}
                    Record::Token { token, now, .. } => {
                        tx.prepare_cached("DELETE FROM serviceaccount_tokens WHERE expires <= ?1")?
                            .execute([now])?;
                        tx.prepare_cached(
                            "INSERT INTO serviceaccount_tokens (hash, namespace, name, uid, expires)
                             VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (hash) DO UPDATE SET expires = excluded.expires",
                        )?
                        .execute(params![
                            &token.hash[..],
                            token.namespace,
                            token.name,
                            token.uid,
                            token.expires
                        ])?;
                    }
                }
            }
            // A put's row holds its version, and a load takes the highest of the rows' and
            // this one; so only a batch that ends otherwise (a delete, a compaction, a token)
            // writes it, which spares create and update a second page per transaction.
            if let Some(last) = batch.last().filter(|r| !matches!(r, Record::Put { .. })) {
                let last = last.rv();
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

/// How far the committers got: the last durable version, and the error being retried, if any.
#[derive(Clone, Debug, Default)]
struct Progress {
    durable: u64,
    failing: Option<String>,
}

#[derive(Default)]
struct Queue {
    records: Vec<Record>,
    closed: bool,
    /// Write requests in flight. A lone one commits what is queued itself when it waits;
    /// with more, the thread commits while their workers go on serving.
    writers: usize,
    /// A commit by a writer failed: the thread retries it.
    handed_over: bool,
}

impl Queue {
    /// Whether the thread has work: no lone write request will commit what is queued.
    fn thread_needed(&self) -> bool {
        !self.records.is_empty() && (self.writers != 1 || self.handed_over || self.closed)
    }
}

/// Counters of the committers' work, for benchmarks: fsyncs per write is `commits / records`
/// (each commit syncs the log once; checkpoints add a few).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub commits: u64,
    pub records: u64,
}

/// What the waiting writers and the thread share.
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Held by whoever commits, so batches go to disk in the order they were taken; `None`
    /// once closed.
    data: Mutex<Option<DataDir>>,
    progress: tokio::sync::watch::Sender<Progress>,
    stats: Mutex<Stats>,
}

impl Shared {
    /// Commits everything queued as one transaction; `data` is the held database. On failure
    /// the batch goes back to the front of the queue and the thread takes over retrying.
    /// Whether there was anything to commit.
    fn commit_queued(&self, data: &mut DataDir) -> Result<bool, ()> {
        let batch = std::mem::take(&mut self.queue.lock().records);
        let Some(last) = batch.iter().map(Record::rv).max() else {
            return Ok(false);
        };
        match data.commit(&batch) {
            Ok(()) => {
                {
                    let mut s = self.stats.lock();
                    s.commits += 1;
                    s.records += batch.len() as u64;
                }
                self.progress.send_modify(|p| {
                    p.durable = p.durable.max(last);
                    p.failing = None;
                });
                Ok(true)
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(
                    "cannot write to {}: {why} (retrying)",
                    data.path().display()
                );
                {
                    let mut q = self.queue.lock();
                    let later = std::mem::replace(&mut q.records, batch);
                    q.records.extend(later);
                    q.handed_over = true;
                }
                self.wake.notify_one();
                self.progress.send_modify(|p| p.failing = Some(why));
                Err(())
            }
        }
    }

    /// After a holder of `data` let go: a lone writer that found it busy waits for news, so
    /// give some if changes are still queued (the holder's own commit published the rest;
    /// with more writers the thread commits what is left).
    fn released(&self) {
        let lone_writer_waits = {
            let q = self.queue.lock();
            !q.records.is_empty() && q.writers == 1
        };
        if lone_writer_waits {
            self.progress.send_modify(|_| {});
        }
    }

    /// The thread: commits what no waiting writer will, and retries failed commits.
    fn run(&self) {
        loop {
            {
                let mut q = self.queue.lock();
                while !q.thread_needed() && !q.closed {
                    self.wake.wait(&mut q);
                }
                if q.records.is_empty() {
                    return;
                }
                q.handed_over = false;
            }
            let failed = match &mut *self.data.lock() {
                Some(data) => self.commit_queued(data).is_err(),
                None => return,
            };
            self.released();
            if failed {
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// The committers of a data directory: the queue the store fills in version order, emptied
/// by the write requests that wait on it (the first to find the database free commits for all
/// that queued meanwhile: group commit, on the waiting task, with no hand-off between
/// threads), and a thread for changes that no request waits on and for retries.
pub struct Durability {
    shared: Arc<Shared>,
    progress: tokio::sync::watch::Receiver<Progress>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

const CLOSED: &str = "the store is closed";

/// How long a failing commit waits before it tries again.
const RETRY: Duration = Duration::from_millis(500);

/// A write request in flight (see [`Durability::writer`]).
pub struct Writer<'a>(&'a Shared);

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let mut q = self.0.queue.lock();
        q.writers -= 1;
        if q.thread_needed() {
            self.0.wake.notify_one();
        } else if !q.records.is_empty() {
            // The writer left alone may be waiting for the thread: now it commits itself.
            drop(q);
            self.0.progress.send_modify(|_| {});
        }
    }
}

impl Durability {
    /// Starts the committers over an open data directory; `durable` is the version it holds.
    pub fn start(data: DataDir, durable: u64) -> Durability {
        let (progress_tx, progress) = tokio::sync::watch::channel(Progress {
            durable,
            failing: None,
        });
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
            data: Mutex::new(Some(data)),
            progress: progress_tx,
            stats: Mutex::default(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("localkube-commit".into())
                .spawn(move || shared.run())
                .expect("spawning the commit thread")
        };
        Durability {
            shared,
            progress,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Queues a change; the caller holds the store's lock, so records arrive in version order.
    pub fn push(&self, record: Record) {
        let mut q = self.shared.queue.lock();
        q.records.push(record);
        if q.thread_needed() {
            self.shared.wake.notify_one();
        }
    }

    /// Announces a write request: while it is the only one, the changes queued are left to
    /// its [`Durability::wait`] rather than handed to the thread.
    pub fn writer(&self) -> Writer<'_> {
        let mut q = self.shared.queue.lock();
        q.writers += 1;
        if q.thread_needed() {
            self.shared.wake.notify_one();
        }
        Writer(&self.shared)
    }

    /// Waits until version `rv` is durable, committing what is queued if nobody else is.
    /// Fails at once while commits fail (the thread keeps retrying, so the write may still
    /// become durable later).
    pub async fn wait(&self, rv: u64) -> Result<(), String> {
        let mut progress = self.progress.clone();
        loop {
            {
                let p = progress.borrow_and_update();
                if p.durable >= rv {
                    return Ok(());
                }
                if let Some(why) = &p.failing {
                    return Err(why.clone());
                }
            }
            // A lone writer blocks its worker for one sync (a fraction of a millisecond)
            // rather than wake the thread and be woken back.
            let alone = self.shared.queue.lock().writers <= 1;
            if alone && let Some(mut data) = self.shared.data.try_lock() {
                let Some(open) = &mut *data else {
                    return Err(CLOSED.into());
                };
                let committed = self.shared.commit_queued(open);
                drop(data);
                self.shared.released();
                if committed != Ok(false) {
                    continue;
                }
            }
            if progress.changed().await.is_err() {
                return Err(CLOSED.into());
            }
        }
    }

    pub fn stats(&self) -> Stats {
        *self.shared.stats.lock()
    }

    /// Commits what is queued, stops the thread, and releases the data directory.
    pub fn close(&self) {
        {
            let mut q = self.shared.queue.lock();
            q.closed = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        // Releases the directory's lock; a writer still waiting learns that it is closed.
        self.shared.data.lock().take();
        self.shared.progress.send_modify(|_| {});
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        self.close();
    }
}
