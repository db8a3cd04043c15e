//! Telling our database from any other SQLite file before touching it.
//!
//! Our stores carry [`APPLICATION_ID`] in the header's `application_id`
//! field (<https://sqlite.org/fileformat.html#application_id>). A store
//! written before that mark existed has 0 there and our tables at schema
//! version 1 or 2: it is ours too, and stamped when it is migrated. Any
//! other SQLite file is refused before a connection could write to it
//! (switching to WAL mode alone rewrites the header): the header is read as
//! bytes, and an unmarked file's tables through an immutable, read-only
//! connection (<https://sqlite.org/uri.html#uriimmutable>).

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::schema::{self, APPLICATION_ID};
use crate::store::StoreError;

/// The first bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Our tables at every schema version so far.
const TABLES: [&str; 3] = ["events", "labs", "sessions"];

/// Our tables added by later schema versions (`hosts`: 6).
const LATER_TABLES: [&str; 1] = ["hosts"];

/// Refuses the SQLite database at `path` unless it is ours (marked, or
/// unmarked with our schema). A file that is not SQLite at all is left to
/// the open that follows, which calls it damaged.
pub fn refuse_foreign(path: &Path) -> Result<(), StoreError> {
    let mut header = [0u8; 100];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut header));
    if read.is_err() || &header[..16] != MAGIC {
        return Ok(());
    }
    let field =
        |offset: usize| u32::from_be_bytes(header[offset..offset + 4].try_into().expect("4 bytes"));
    let (user_version, application_id) = (field(60), field(68));
    let foreign = |why: String| {
        Err(StoreError::Foreign {
            path: path.to_path_buf(),
            why,
        })
    };
    if application_id == APPLICATION_ID {
        return Ok(());
    }
    if application_id != 0 {
        return foreign(format!(
            "its application_id is {application_id:#010x}, ours is {APPLICATION_ID:#010x}"
        ));
    }
    let tables = unmarked_tables(path).map_err(|error| StoreError::Corrupt {
        path: path.to_path_buf(),
        why: error.to_string(),
    })?;
    let core: Vec<&String> = (tables.iter())
        .filter(|table| !LATER_TABLES.contains(&table.as_str()))
        .collect();
    let ours = (1..=schema::latest()).contains(&user_version) && core == TABLES;
    if ours {
        return Ok(());
    }
    foreign(format!(
        "it has no application_id, schema version {user_version} and the tables [{}]",
        tables.join(", ")
    ))
}

/// The names of the tables of an unmarked database, sorted, read without
/// a lock, a journal or any write.
fn unmarked_tables(path: &Path) -> rusqlite::Result<Vec<String>> {
    let uri = format!(
        "file:{}?mode=ro&immutable=1",
        path.display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(uri, flags)?;
    let mut statement = connection.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = statement.query_map([], |row| row.get(0))?;
    names.collect()
}
