//! The engines under test behind one trait: commit a batch of writes plus the resourceVersion
//! meta row in one durable transaction, and load the whole table back. Same schema everywhere:
//! objects(key -> JSON bytes) and meta("rv" -> u64).

use crate::workload::Op;
use std::path::Path;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What a full load returns: the stored resourceVersion and every (key, value).
pub struct Loaded {
    pub resource_version: u64,
    pub objects: Vec<(Vec<u8>, Vec<u8>)>,
}

pub trait Store {
    /// Applies `ops` and sets the meta rv in one transaction, durable (or not, per the
    /// variant's name) when this returns.
    fn commit(&mut self, ops: &[Op], resource_version: u64) -> Result<()>;
    fn load_all(&self) -> Result<Loaded>;
}

/// The engine variants, by the name the command line uses.
pub const VARIANTS: &[&str] = &[
    #[cfg(feature = "sqlite")]
    "sqlite-full",
    #[cfg(feature = "sqlite")]
    "sqlite-normal",
    #[cfg(feature = "redb")]
    "redb",
    #[cfg(feature = "redb")]
    "redb-2pc",
    #[cfg(feature = "fjall")]
    "fjall-syncall",
    #[cfg(feature = "fjall")]
    "fjall-syncdata",
    #[cfg(feature = "fjall")]
    "fjall-syncall-8m",
];

/// Opens (creating if needed) the store of `variant` inside directory `dir`.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "redb", feature = "fjall")),
    allow(unused_variables)
)]
pub fn open(variant: &str, dir: &Path, cache_bytes: usize) -> Result<Box<dyn Store>> {
    std::fs::create_dir_all(dir)?;
    match variant {
        #[cfg(feature = "sqlite")]
        "sqlite-full" => Ok(Box::new(sqlite::SqliteStore::open(dir, true, cache_bytes)?)),
        #[cfg(feature = "sqlite")]
        "sqlite-normal" => Ok(Box::new(sqlite::SqliteStore::open(
            dir,
            false,
            cache_bytes,
        )?)),
        #[cfg(feature = "redb")]
        "redb" => Ok(Box::new(redb_store::RedbStore::open(
            dir,
            false,
            cache_bytes,
        )?)),
        #[cfg(feature = "redb")]
        "redb-2pc" => Ok(Box::new(redb_store::RedbStore::open(
            dir,
            true,
            cache_bytes,
        )?)),
        #[cfg(feature = "fjall")]
        "fjall-syncall" => Ok(Box::new(fjall_store::FjallStore::open(
            dir,
            fjall::PersistMode::SyncAll,
            cache_bytes,
            None,
        )?)),
        #[cfg(feature = "fjall")]
        "fjall-syncdata" => Ok(Box::new(fjall_store::FjallStore::open(
            dir,
            fjall::PersistMode::SyncData,
            cache_bytes,
            None,
        )?)),
        // An 8 MiB memtable (default 64 MiB): less RSS and less journal to replay on open.
        #[cfg(feature = "fjall")]
        "fjall-syncall-8m" => Ok(Box::new(fjall_store::FjallStore::open(
            dir,
            fjall::PersistMode::SyncAll,
            cache_bytes,
            Some(8 * 1024 * 1024),
        )?)),
        _ => Err(format!(
            "unknown engine {variant:?}; built-in: {}",
            VARIANTS.join(", ")
        )
        .into()),
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    //! SQLite in WAL mode; synchronous=FULL syncs the WAL on every commit, NORMAL only at
    //! checkpoints (so NORMAL is not durable per commit).
    use super::{Loaded, Result, Store};
    use crate::workload::Op;
    use rusqlite::{Connection, TransactionBehavior, params};
    use std::path::Path;

    pub struct SqliteStore {
        conn: Connection,
    }

    impl SqliteStore {
        pub fn open(dir: &Path, full_sync: bool, cache_bytes: usize) -> Result<Self> {
            let conn = Connection::open(dir.join("objects.sqlite"))?;
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
            if mode != "wal" {
                return Err(format!("journal_mode is {mode}, not wal").into());
            }
            let synchronous = if full_sync { "FULL" } else { "NORMAL" };
            // Negative cache_size is in KiB.
            conn.execute_batch(&format!(
                "PRAGMA synchronous={synchronous};
                 PRAGMA cache_size=-{};
                 CREATE TABLE IF NOT EXISTS objects(key BLOB PRIMARY KEY, value BLOB NOT NULL);
                 CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
                cache_bytes / 1024
            ))?;
            Ok(SqliteStore { conn })
        }
    }

    impl Store for SqliteStore {
        fn commit(&mut self, ops: &[Op], resource_version: u64) -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO objects(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?;
                let mut delete = tx.prepare_cached("DELETE FROM objects WHERE key = ?1")?;
                for op in ops {
                    match op {
                        Op::Put { key, value } => upsert.execute(params![key, value])?,
                        Op::Delete { key } => delete.execute(params![key])?,
                    };
                }
                tx.prepare_cached(
                    "INSERT INTO meta(name, value) VALUES ('rv', ?1)
                     ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![resource_version as i64])?;
            }
            tx.commit()?;
            Ok(())
        }

        fn load_all(&self) -> Result<Loaded> {
            let resource_version: i64 = self
                .conn
                .query_row("SELECT value FROM meta WHERE name = 'rv'", [], |row| {
                    row.get(0)
                })
                .or_else(|err| match err {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    other => Err(other),
                })?;
            let mut statement = self.conn.prepare("SELECT key, value FROM objects")?;
            let mut rows = statement.query([])?;
            let mut objects = Vec::new();
            while let Some(row) = rows.next()? {
                let key = row.get_ref(0)?.as_blob()?.to_vec();
                let value = row.get_ref(1)?.as_blob()?.to_vec();
                objects.push((key, value));
            }
            Ok(Loaded {
                resource_version: resource_version as u64,
                objects,
            })
        }
    }
}

#[cfg(feature = "redb")]
mod redb_store {
    //! redb with Durability::Immediate (its default): one fsync per commit, or two with
    //! 2-phase commit.
    use super::{Loaded, Result, Store};
    use crate::workload::Op;
    use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
    use std::path::Path;

    const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

    pub struct RedbStore {
        db: Database,
        two_phase: bool,
    }

    impl RedbStore {
        pub fn open(dir: &Path, two_phase: bool, cache_bytes: usize) -> Result<Self> {
            let db = Database::builder()
                .set_cache_size(cache_bytes)
                .create(dir.join("objects.redb"))?;
            let tx = db.begin_write()?;
            tx.open_table(OBJECTS)?;
            tx.open_table(META)?;
            tx.commit()?;
            Ok(RedbStore { db, two_phase })
        }
    }

    impl Store for RedbStore {
        fn commit(&mut self, ops: &[Op], resource_version: u64) -> Result<()> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(redb::Durability::Immediate)?;
            tx.set_two_phase_commit(self.two_phase);
            {
                let mut objects = tx.open_table(OBJECTS)?;
                for op in ops {
                    match op {
                        Op::Put { key, value } => {
                            objects.insert(key.as_slice(), value.as_slice())?;
                        }
                        Op::Delete { key } => {
                            objects.remove(key.as_slice())?;
                        }
                    }
                }
                tx.open_table(META)?.insert("rv", resource_version)?;
            }
            tx.commit()?;
            Ok(())
        }

        fn load_all(&self) -> Result<Loaded> {
            let tx = self.db.begin_read()?;
            let resource_version = tx
                .open_table(META)?
                .get("rv")?
                .map(|guard| guard.value())
                .unwrap_or(0);
            let table = tx.open_table(OBJECTS)?;
            let mut objects = Vec::with_capacity(table.len()? as usize);
            for entry in table.iter()? {
                let (key, value) = entry?;
                objects.push((key.value().to_vec(), value.value().to_vec()));
            }
            Ok(Loaded {
                resource_version,
                objects,
            })
        }
    }
}

#[cfg(feature = "fjall")]
mod fjall_store {
    //! fjall (LSM tree): an atomic cross-keyspace write batch, then the journal synced with
    //! the given PersistMode before commit returns.
    use super::{Loaded, Result, Store};
    use crate::workload::Op;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
    use std::path::Path;

    pub struct FjallStore {
        db: Database,
        objects: Keyspace,
        meta: Keyspace,
        mode: PersistMode,
    }

    impl FjallStore {
        pub fn open(
            dir: &Path,
            mode: PersistMode,
            cache_bytes: usize,
            memtable_bytes: Option<u64>,
        ) -> Result<Self> {
            let db = Database::builder(dir.join("objects.fjall"))
                .cache_size(cache_bytes as u64)
                .open()?;
            let objects = db.keyspace("objects", || {
                let options = KeyspaceCreateOptions::default();
                match memtable_bytes {
                    Some(bytes) => options.max_memtable_size(bytes),
                    None => options,
                }
            })?;
            let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
            Ok(FjallStore {
                db,
                objects,
                meta,
                mode,
            })
        }
    }

    impl Store for FjallStore {
        fn commit(&mut self, ops: &[Op], resource_version: u64) -> Result<()> {
            let mut batch = self.db.batch().durability(Some(self.mode));
            for op in ops {
                match op {
                    Op::Put { key, value } => {
                        batch.insert(&self.objects, key.as_slice(), value.as_slice())
                    }
                    Op::Delete { key } => batch.remove(&self.objects, key.as_slice()),
                }
            }
            batch.insert(&self.meta, "rv", resource_version.to_be_bytes().as_slice());
            batch.commit()?;
            Ok(())
        }

        fn load_all(&self) -> Result<Loaded> {
            let resource_version = match self.meta.get("rv")? {
                Some(bytes) => u64::from_be_bytes(
                    bytes
                        .as_ref()
                        .try_into()
                        .map_err(|_| "meta rv is not 8 bytes")?,
                ),
                None => 0,
            };
            let mut objects = Vec::new();
            for guard in self.objects.iter() {
                let (key, value) = guard.into_inner()?;
                objects.push((key.to_vec(), value.to_vec()));
            }
            Ok(Loaded {
                resource_version,
                objects,
            })
        }
    }
}
