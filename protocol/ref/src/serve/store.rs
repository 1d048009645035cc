//! The relay's durable state behind one small trait, and its implementation on redb.
//!
//! The [`Store`] trait is all the relay asks of storage: load everything once at start
//! ([`Store::load`]), keep the server's static key ([`Store::static_key`]), and apply the
//! [`DurableChange`]s of one server call atomically and durably ([`Store::commit`]). The server
//! computes every change; a store applies them blindly, so a second backend adds no protocol logic.
//!
//! [`RedbStore`] keeps five tables in one file (`DIR/relay.redb`):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"static_key"`, `"format"` | 32 bytes; the format version |
//! | `accounts` | name | the client's static key (32 bytes) |
//! | `mailbox` | (name, position) | the `Deliver` / `E2eDeliver` message, encoded as SPEC.md §3.3 |
//! | `heads` | name | the first position still held (everything below was delivered) |
//! | `directory` | name | [`encode_entry`]: the bundle as an `UploadBundle` message, then who took a one-time prekey |
//!
//! Each [`Store::commit`] is one redb write transaction with `Durability::Immediate`: it is on
//! disk (fsync'd) when `commit` returns, and a crash at any moment leaves either all of it or none
//! of it (redb's copy-on-write B-trees and its two commit slots).

use std::path::Path;

use e2e_protocol::roles::{DirectoryEntry, DurableChange, Snapshot, StoredMailbox};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::{Codec, Message, Name, UploadedBundle, frame_len};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const MAILBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("mailbox");
const HEADS: TableDefinition<&str, u64> = TableDefinition::new("heads");
const DIRECTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("directory");

/// The layout of the tables above; a store of another version is refused, not guessed at.
const FORMAT: &[u8] = b"e2e-ref relay store v1";

/// What a relay needs of its storage. Every method is atomic; [`Store::commit`] is durable when it
/// returns.
///
/// A deployment that outgrows one machine implements this on a distributed transactional store
/// (README.md, "Live reference"): `commit` is one transaction over the keys the changes name.
pub trait Store {
    /// Why the store failed. The relay stops on any: it cannot promise what it cannot store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The server's static key: the stored one, or `fresh()` stored now (the first start).
    ///
    /// # Errors
    /// The store could not be read or written, or holds a malformed key.
    fn static_key(&self, fresh: impl FnOnce() -> PrivateKey) -> Result<PrivateKey, Self::Error>;

    /// Everything the server keeps: bindings, mailboxes, bundles.
    ///
    /// # Errors
    /// The store could not be read, or holds bytes no relay wrote.
    fn load(&self) -> Result<Snapshot, Self::Error>;

    /// Applies the changes of one server call, in order, all or none, durably.
    ///
    /// # Errors
    /// The store could not be written; then none of the changes landed.
    fn commit(&self, changes: &[DurableChange]) -> Result<(), Self::Error>;
}

/// Why the redb store failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// redb reported an error (I/O, a damaged file, a transaction that could not commit).
    Db(redb::Error),
    /// The file holds something this relay did not write: another format, or undecodable bytes.
    Corrupt(&'static str),
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "store: {e}"),
            Self::Corrupt(what) => write!(f, "store: corrupt {what}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        Self::Db(e.into())
    }
}

/// The relay's state in one redb file.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
}

/// The file inside the relay's data directory.
pub const STORE_FILE: &str = "relay.redb";

impl RedbStore {
    /// Opens `dir/relay.redb`, creating the directory and an empty store if needed.
    ///
    /// # Errors
    /// The directory or file cannot be created or opened, or the file is another format.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| StoreError::Db(e.into());
        std::fs::create_dir_all(dir).map_err(io)?;
        // The store holds the server's static key: owner-only, like a client's state file (SPEC.md
        // §2.3). The file is created empty with mode 0600 before redb initialises it, so the key
        // is never in a file anyone else can read; an existing file is narrowed too.
        let path = dir.join(STORE_FILE);
        owner_only(dir, &path).map_err(io)?;
        let db = Database::create(&path)?;
        let tx = db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let format = meta.get("format")?.map(|v| v.value().to_vec());
            match format {
                None => {
                    meta.insert("format", FORMAT)?;
                }
                Some(f) if f == FORMAT => {}
                Some(_) => return Err(StoreError::Corrupt("format")),
            }
            // Create every table, so that a reader never meets a missing one.
            tx.open_table(ACCOUNTS)?;
            tx.open_table(MAILBOX)?;
            tx.open_table(HEADS)?;
            tx.open_table(DIRECTORY)?;
        }
        tx.commit()?;
        Ok(Self { db })
    }
}

impl Store for RedbStore {
    type Error = StoreError;

    fn static_key(&self, fresh: impl FnOnce() -> PrivateKey) -> Result<PrivateKey, StoreError> {
        let tx = self.db.begin_write()?;
        let key = {
            let mut meta = tx.open_table(META)?;
            let stored = meta.get("static_key")?.map(|v| v.value().to_vec());
            match stored {
                Some(bytes) => {
                    let bytes: [u8; 32] =
                        bytes.try_into().map_err(|_| StoreError::Corrupt("static key"))?;
                    PrivateKey::from_bytes(bytes)
                }
                None => {
                    let key = fresh();
                    meta.insert("static_key", key.expose().as_slice())?;
                    key
                }
            }
        };
        tx.commit()?;
        Ok(key)
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read()?;
        let mut snapshot = Snapshot::default();
        for row in tx.open_table(ACCOUNTS)?.iter()? {
            let (name, key) = row?;
            let key: [u8; 32] =
                key.value().try_into().map_err(|_| StoreError::Corrupt("account key"))?;
            snapshot.accounts.push((name_of(name.value())?, PublicKey::from_bytes(key)));
        }
        let heads = tx.open_table(HEADS)?;
        let mailbox = tx.open_table(MAILBOX)?;
        for row in heads.iter()? {
            let (name, head) = row?;
            let (name, head) = (name.value().to_owned(), head.value());
            let mut messages = Vec::new();
            for row in mailbox.range((name.as_str(), 0)..=(name.as_str(), u64::MAX))? {
                let (key, bytes) = row?;
                // Positions run on from the head without gaps: Removed cuts only below it.
                let expected = head.saturating_add(u64::try_from(messages.len()).unwrap_or(0));
                if key.value().1 != expected {
                    return Err(StoreError::Corrupt("mailbox positions"));
                }
                let message =
                    Message::decode(bytes.value()).map_err(|_| StoreError::Corrupt("message"))?;
                messages.push(message);
            }
            snapshot.mailboxes.push(StoredMailbox { name: name_of(&name)?, head, messages });
        }
        for row in tx.open_table(DIRECTORY)?.iter()? {
            let (name, bytes) = row?;
            snapshot.directory.push((name_of(name.value())?, decode_entry(bytes.value())?));
        }
        Ok(snapshot)
    }

    fn commit(&self, changes: &[DurableChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut accounts = tx.open_table(ACCOUNTS)?;
            let mut mailbox = tx.open_table(MAILBOX)?;
            let mut heads = tx.open_table(HEADS)?;
            let mut directory = tx.open_table(DIRECTORY)?;
            for change in changes {
                match change {
                    DurableChange::Bound { name, key } => {
                        accounts.insert(name.as_str(), key.as_bytes().as_slice())?;
                    }
                    DurableChange::Queued { to, position, message } => {
                        if heads.get(to.as_str())?.is_none() {
                            heads.insert(to.as_str(), *position)?;
                        }
                        mailbox.insert((to.as_str(), *position), message.encode().as_slice())?;
                    }
                    DurableChange::Removed { name, until } => {
                        let name = name.as_str();
                        let gone: Vec<u64> = mailbox
                            .range((name, 0)..(name, *until))?
                            .map(|row| row.map(|(key, _)| key.value().1))
                            .collect::<Result<_, _>>()?;
                        for position in gone {
                            mailbox.remove((name, position))?;
                        }
                        heads.insert(name, *until)?;
                    }
                    DurableChange::Directory { name, entry } => {
                        directory.insert(name.as_str(), encode_entry(entry)?.as_slice())?;
                    }
                    _ => return Err(StoreError::Corrupt("change of an unknown kind")),
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn name_of(s: &str) -> Result<Name, StoreError> {
    Name::new(s).map_err(|_| StoreError::Corrupt("name"))
}

/// A directory entry as stored: the bundle as an `UploadBundle` message (SPEC.md §15.1), then
/// `count: u16` and `count` names (`len: u8 || bytes`), the takers.
///
/// # Errors
/// [`StoreError::Corrupt`] if the entry cannot be encoded (more prekeys or takers than any server
/// holds).
pub fn encode_entry(entry: &DirectoryEntry) -> Result<Vec<u8>, StoreError> {
    let bundle = UploadedBundle::new(entry.identity, entry.signed_prekey, entry.one_time.clone())
        .map_err(|_| StoreError::Corrupt("directory entry"))?;
    let mut out = Message::UploadBundle { bundle }.encode();
    let count = u16::try_from(entry.takers.len()).map_err(|_| StoreError::Corrupt("takers"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for name in &entry.takers {
        let bytes = name.as_str().as_bytes();
        // A name is at most 32 bytes (SPEC.md §3.3).
        out.push(u8::try_from(bytes.len()).map_err(|_| StoreError::Corrupt("name"))?);
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// The inverse of [`encode_entry`].
///
/// # Errors
/// [`StoreError::Corrupt`] for bytes [`encode_entry`] does not produce.
pub fn decode_entry(bytes: &[u8]) -> Result<DirectoryEntry, StoreError> {
    const BAD: StoreError = StoreError::Corrupt("directory entry");
    let len = frame_len::<Message>(bytes).ok().flatten().ok_or(BAD)?;
    let (message, mut rest) = (bytes.get(..len).ok_or(BAD)?, bytes.get(len..).ok_or(BAD)?);
    let Ok(Message::UploadBundle { bundle }) = Message::decode(message) else { return Err(BAD) };
    let (count, tail) = rest.split_first_chunk::<2>().ok_or(BAD)?;
    rest = tail;
    let mut takers = Vec::with_capacity(usize::from(u16::from_be_bytes(*count)).min(256));
    for _ in 0..u16::from_be_bytes(*count) {
        let (len, tail) = rest.split_first().ok_or(BAD)?;
        let (name, tail) = tail.split_at_checked(usize::from(*len)).ok_or(BAD)?;
        takers.push(Name::new(core::str::from_utf8(name).map_err(|_| BAD)?).map_err(|_| BAD)?);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(BAD);
    }
    Ok(DirectoryEntry {
        identity: *bundle.identity(),
        signed_prekey: *bundle.signed_prekey(),
        one_time: bundle.one_time_prekeys().to_vec(),
        takers,
    })
}

/// Narrows `dir` to `0700` and creates (or narrows) `file` with mode `0600`.
#[cfg(unix)]
fn owner_only(dir: &Path, file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// Elsewhere the platform's defaults apply.
#[cfg(not(unix))]
fn owner_only(_dir: &Path, _file: &Path) -> std::io::Result<()> {
    Ok(())
}
