//! Backend-neutral plumbing: one pool/transaction/row type over SQLite and PostgreSQL, bind
//! values, and placeholder rewriting, so register and query logic is written once.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::CatalogError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL. Only for our own static SQL,
    /// which never contains a `?` inside a literal.
    pub(crate) fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

/// A value bound to a placeholder. NULLs are typed because PostgreSQL needs to know.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::OptInt(v)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::OptText(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// Unsigned sizes and offsets are stored as BIGINT; anything past i64::MAX is not a real file.
pub(crate) fn u64_value(v: u64, what: &'static str) -> Result<Value, CatalogError> {
    i64::try_from(v).map(Value::Int).map_err(|_| CatalogError::Corrupt { what })
}

#[derive(Clone)]
pub(crate) enum Pool {
    /// With the file catalog's own read connections, which then answer every read.
    Sqlite(sqlx::SqlitePool, Option<Arc<LocalReaders>>),
    Postgres(sqlx::PgPool),
}

/// Read connections of our own to an SQLite file (rusqlite, read-only). Point look-ups on the
/// ingest path run on the caller's thread ([`LocalReaders::with`]): an indexed look-up takes
/// microseconds, where a pool query hands the statement to a connection thread and every row
/// back, one by one. Every other read runs whole on a blocking thread ([`LocalReaders::fetch`]):
/// one hand-off per statement instead of one per row (a page of a thousand studies spent more
/// in those hand-offs than in SQLite), at most [`MAX_READERS`] at a time.
pub(crate) struct LocalReaders {
    path: std::path::PathBuf,
    busy_timeout: std::time::Duration,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
    running: tokio::sync::Semaphore,
}

/// Reads running at once on blocking threads, and idle connections kept.
const MAX_READERS: usize = 4;

impl LocalReaders {
    pub(crate) fn new(path: &std::path::Path, busy_timeout: std::time::Duration) -> LocalReaders {
        LocalReaders { path: path.to_path_buf(), busy_timeout, idle: Default::default(), running: tokio::sync::Semaphore::new(MAX_READERS) }
    }

    /// Runs `f` on a reader connection, on the caller's thread.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T, CatalogError>) -> Result<T, CatalogError> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let fail = |source| CatalogError::Local { op: "opening a catalog reader", source };
                let c = rusqlite::Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
                c.busy_timeout(self.busy_timeout).map_err(fail)?;
                c.set_prepared_statement_cache_capacity(64);
                c
            }
        };
        let out = f(&conn);
        if out.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < MAX_READERS {
                idle.push(conn);
            }
        }
        out
    }

    /// Every row of one statement (SQLite syntax), run on a blocking thread.
    async fn fetch(self: &Arc<Self>, op: &'static str, sql: String, binds: Vec<Value>) -> Result<Vec<AnyRow>, CatalogError> {
        let _permit = self.running.acquire().await.map_err(|_| CatalogError::WriterGone)?;
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.with(|conn| local_fetch_all(conn, op, &sql, &binds)))
            .await
            .map_err(|_| CatalogError::WriterGone)?
    }
}

pub(crate) enum Tx<'a> {
    Sqlite(Transaction<'a, Sqlite>),
    Postgres(Transaction<'a, Postgres>),
    /// A transaction of the SQLite writer's own connection ([`crate::register`]): synchronous
    /// calls on the writer's thread, so each statement costs no thread hand-off. Its futures
    /// are ready at once.
    Local(LocalTx<'a>),
}

/// `BEGIN IMMEDIATE` … `COMMIT` on the writer's connection, rolled back if dropped before
/// [`Tx::commit`]. (Holds `&mut Connection`, which is `Send`, where `rusqlite::Transaction`
/// holds `&Connection`, which is not.)
pub(crate) struct LocalTx<'a> {
    conn: &'a mut rusqlite::Connection,
    open: bool,
}

impl<'a> LocalTx<'a> {
    pub(crate) fn begin(conn: &'a mut rusqlite::Connection) -> Result<Self, CatalogError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(local_err("begin transaction"))?;
        Ok(LocalTx { conn, open: true })
    }

    /// On failure the transaction is still open, and dropping `self` rolls it back.
    fn finish(mut self, sql: &str, op: &'static str) -> Result<(), CatalogError> {
        self.conn.execute_batch(sql).map_err(local_err(op))?;
        self.open = false;
        Ok(())
    }
}

impl Drop for LocalTx<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

pub(crate) enum AnyRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
    Local(LocalRow),
}

/// A row read on a connection of our own, copied out of the statement: its text values side by
/// side in one buffer. A `rusqlite::types::Value` per column cost an allocation and a UTF-8
/// check per text value, then the same again when decoded (a page of a thousand studies spent
/// a fifth of its time there); here a text value is checked once, copied once into the buffer
/// and once out of it.
pub(crate) struct LocalRow {
    text: String,
    cols: Vec<LocalCol>,
}

enum LocalCol {
    Null,
    Int(i64),
    Real(f64),
    Text(std::ops::Range<usize>),
    Blob(Vec<u8>),
}

impl LocalRow {
    fn value(&self, i: usize) -> Option<rusqlite::types::ValueRef<'_>> {
        use rusqlite::types::ValueRef;
        Some(match self.cols.get(i)? {
            LocalCol::Null => ValueRef::Null,
            LocalCol::Int(v) => ValueRef::Integer(*v),
            LocalCol::Real(v) => ValueRef::Real(*v),
            LocalCol::Text(r) => ValueRef::Text(self.text[r.clone()].as_bytes()),
            LocalCol::Blob(b) => ValueRef::Blob(b),
        })
    }

    /// Column `i` if it is text (`Some(None)` if NULL), as stored: no second UTF-8 check.
    fn text(&self, i: usize) -> Option<Option<&str>> {
        match self.cols.get(i)? {
            LocalCol::Null => Some(None),
            LocalCol::Text(r) => Some(Some(&self.text[r.clone()])),
            _ => None,
        }
    }
}

/// The first row of a statement (SQLite syntax) on a connection of our own, synchronously:
/// the writer's, or a reader on the caller's thread ([`crate::sqlite`]).
pub(crate) fn local_fetch_optional(
    conn: &rusqlite::Connection,
    op: &'static str,
    sql: &str,
    binds: &[Value],
) -> Result<Option<AnyRow>, CatalogError> {
    let mut stmt = conn.prepare_cached(sql).map_err(local_err(op))?;
    let width = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(binds)).map_err(local_err(op))?;
    match rows.next().map_err(local_err(op))? {
        Some(row) => local_row(row, width, op).map(Some),
        None => Ok(None),
    }
}

/// One row's `width` values, copied out of the statement ([`LocalRow`]).
fn local_row(row: &rusqlite::Row<'_>, width: usize, op: &'static str) -> Result<AnyRow, CatalogError> {
    use rusqlite::types::ValueRef;
    let mut text = String::new();
    let mut cols = Vec::with_capacity(width);
    for i in 0..width {
        cols.push(match row.get_ref(i).map_err(local_err(op))? {
            ValueRef::Null => LocalCol::Null,
            ValueRef::Integer(v) => LocalCol::Int(v),
            ValueRef::Real(v) => LocalCol::Real(v),
            ValueRef::Text(t) => {
                let t = std::str::from_utf8(t).map_err(|_| CatalogError::Corrupt { what: "a text value that is not UTF-8" })?;
                let start = text.len();
                text.push_str(t);
                LocalCol::Text(start..text.len())
            }
            ValueRef::Blob(b) => LocalCol::Blob(b.to_vec()),
        });
    }
    Ok(AnyRow::Local(LocalRow { text, cols }))
}

/// Every row of a statement (SQLite syntax) on a connection of our own, synchronously.
pub(crate) fn local_fetch_all(
    conn: &rusqlite::Connection,
    op: &'static str,
    sql: &str,
    binds: &[Value],
) -> Result<Vec<AnyRow>, CatalogError> {
    let mut stmt = conn.prepare_cached(sql).map_err(local_err(op))?;
    let width = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(binds)).map_err(local_err(op))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(local_err(op))? {
        out.push(local_row(row, width, op)?);
    }
    Ok(out)
}

fn local_err(op: &'static str) -> impl FnOnce(rusqlite::Error) -> CatalogError {
    move |source| CatalogError::Local { op, source }
}

/// Binds by reference on the writer's connection (no copy of a metadata document).
impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::OptText(s) => {
                s.as_deref().map_or(ToSqlOutput::Borrowed(ValueRef::Null), |s| ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())))
            }
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::OptInt(v) => ToSqlOutput::Borrowed(v.map_or(ValueRef::Null, ValueRef::Integer)),
            Value::Bool(v) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*v))),
        })
    }
}

fn sqlite_query<'q>(sql: &'q str, binds: &[Value]) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b.clone() {
            Value::Text(s) => q.bind(s),
            Value::OptText(s) => q.bind(s),
            Value::Int(v) => q.bind(v),
            Value::OptInt(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
        };
    }
    q
}

fn pg_query<'q>(sql: &'q str, binds: &[Value]) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b.clone() {
            Value::Text(s) => q.bind(s),
            Value::OptText(s) => q.bind(s),
            Value::Int(v) => q.bind(v),
            Value::OptInt(v) => q.bind(v),
            Value::Bool(v) => q.bind(v),
        };
    }
    q
}

fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> CatalogError {
    move |source| CatalogError::Query { op, source }
}

impl Pool {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Pool::Sqlite(..) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Starts a write transaction. SQLite: `BEGIN IMMEDIATE` takes the write lock up front, so
    /// a read-then-write transaction never fails on a stale snapshot; it waits (busy_timeout).
    /// The writer's transaction for a batch: on PostgreSQL with the change-feed lock taken in
    /// the same round trip as `BEGIN` (one simple-protocol message, `lock_sql`).
    pub(crate) async fn begin_batch(&self, lock_sql: &str) -> Result<Tx<'static>, CatalogError> {
        match self {
            Pool::Sqlite(..) => self.begin_write().await,
            Pool::Postgres(p) => {
                p.begin_with(format!("BEGIN; {lock_sql}")).await.map(Tx::Postgres).map_err(query_err("begin transaction with the lock"))
            }
        }
    }

    pub(crate) async fn begin_write(&self) -> Result<Tx<'static>, CatalogError> {
        match self {
            Pool::Sqlite(p, _) => p.begin_with("BEGIN IMMEDIATE").await.map(Tx::Sqlite).map_err(query_err("begin transaction")),
            Pool::Postgres(p) => p.begin().await.map(Tx::Postgres).map_err(query_err("begin transaction")),
        }
    }

    /// `sql` uses `?` placeholders; they are rewritten for PostgreSQL.
    pub(crate) async fn fetch_all(&self, op: &'static str, sql: &str, binds: &[Value]) -> Result<Vec<AnyRow>, CatalogError> {
        let sql = self.dialect().sql(sql);
        match self {
            Pool::Sqlite(_, Some(readers)) => readers.fetch(op, sql.into_owned(), binds.to_vec()).await,
            Pool::Sqlite(p, None) => {
                Ok(sqlite_query(&sql, binds).fetch_all(p).await.map_err(query_err(op))?.into_iter().map(AnyRow::Sqlite).collect())
            }
            Pool::Postgres(p) => {
                Ok(pg_query(&sql, binds).fetch_all(p).await.map_err(query_err(op))?.into_iter().map(AnyRow::Postgres).collect())
            }
        }
    }

    /// Like [`Pool::fetch_all`] for SQL that already carries dialect-specific placeholders
    /// (built by [`crate::sqlbuild::SqlBuilder`]).
    pub(crate) async fn fetch_built(&self, op: &'static str, sql: &str, binds: &[Value]) -> Result<Vec<AnyRow>, CatalogError> {
        match self {
            Pool::Sqlite(_, Some(readers)) => readers.fetch(op, sql.to_owned(), binds.to_vec()).await,
            Pool::Sqlite(p, None) => {
                Ok(sqlite_query(sql, binds).fetch_all(p).await.map_err(query_err(op))?.into_iter().map(AnyRow::Sqlite).collect())
            }
            Pool::Postgres(p) => {
                Ok(pg_query(sql, binds).fetch_all(p).await.map_err(query_err(op))?.into_iter().map(AnyRow::Postgres).collect())
            }
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p, _) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

impl Tx<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
            Tx::Local(_) => Dialect::Sqlite,
        }
    }

    pub(crate) async fn execute(&mut self, op: &'static str, sql: &str, binds: &[Value]) -> Result<u64, CatalogError> {
        let sql = self.dialect().sql(sql);
        match self {
            Tx::Sqlite(tx) => Ok(sqlite_query(&sql, binds).execute(&mut **tx).await.map_err(query_err(op))?.rows_affected()),
            Tx::Postgres(tx) => Ok(pg_query(&sql, binds).execute(&mut **tx).await.map_err(query_err(op))?.rows_affected()),
            Tx::Local(tx) => {
                let mut stmt = tx.conn.prepare_cached(&sql).map_err(local_err(op))?;
                let n = stmt.execute(rusqlite::params_from_iter(binds)).map_err(local_err(op))?;
                Ok(n as u64)
            }
        }
    }

    pub(crate) async fn fetch_optional(&mut self, op: &'static str, sql: &str, binds: &[Value]) -> Result<Option<AnyRow>, CatalogError> {
        let sql = self.dialect().sql(sql);
        match self {
            Tx::Sqlite(tx) => Ok(sqlite_query(&sql, binds).fetch_optional(&mut **tx).await.map_err(query_err(op))?.map(AnyRow::Sqlite)),
            Tx::Postgres(tx) => Ok(pg_query(&sql, binds).fetch_optional(&mut **tx).await.map_err(query_err(op))?.map(AnyRow::Postgres)),
            Tx::Local(tx) => local_fetch_optional(tx.conn, op, &sql, binds),
        }
    }

    pub(crate) async fn fetch_all(&mut self, op: &'static str, sql: &str, binds: &[Value]) -> Result<Vec<AnyRow>, CatalogError> {
        let sql = self.dialect().sql(sql);
        match self {
            Tx::Sqlite(tx) => {
                Ok(sqlite_query(&sql, binds).fetch_all(&mut **tx).await.map_err(query_err(op))?.into_iter().map(AnyRow::Sqlite).collect())
            }
            Tx::Postgres(tx) => {
                Ok(pg_query(&sql, binds).fetch_all(&mut **tx).await.map_err(query_err(op))?.into_iter().map(AnyRow::Postgres).collect())
            }
            Tx::Local(tx) => local_fetch_all(tx.conn, op, &sql, binds),
        }
    }

    pub(crate) async fn fetch_one(&mut self, op: &'static str, sql: &str, binds: &[Value]) -> Result<AnyRow, CatalogError> {
        self.fetch_optional(op, sql, binds).await?.ok_or(CatalogError::Query { op, source: sqlx::Error::RowNotFound })
    }

    pub(crate) async fn commit(self) -> Result<(), CatalogError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await.map_err(query_err("commit")),
            Tx::Postgres(tx) => tx.commit().await.map_err(query_err("commit")),
            Tx::Local(tx) => tx.finish("COMMIT", "commit"),
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), CatalogError> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await.map_err(query_err("rollback")),
            Tx::Postgres(tx) => tx.rollback().await.map_err(query_err("rollback")),
            Tx::Local(tx) => tx.finish("ROLLBACK", "rollback"),
        }
    }
}

macro_rules! get {
    ($self:expr, $i:expr, $t:ty, $what:expr) => {
        match $self {
            AnyRow::Sqlite(r) => r.try_get::<$t, _>($i).ok(),
            AnyRow::Postgres(r) => r.try_get::<$t, _>($i).ok(),
            AnyRow::Local(row) => row.value($i).and_then(|v| <$t as rusqlite::types::FromSql>::column_result(v).ok()),
        }
        .ok_or(CatalogError::Corrupt { what: $what })
    };
}

impl AnyRow {
    /// A cursor that reads columns left to right, in SELECT order.
    pub(crate) fn cols(&self) -> Cols<'_> {
        Cols { row: self, i: 0 }
    }

    /// The same cursor, starting at column `i`.
    pub(crate) fn cols_from(&self, i: usize) -> Cols<'_> {
        Cols { row: self, i }
    }
}

pub(crate) struct Cols<'r> {
    row: &'r AnyRow,
    i: usize,
}

impl Cols<'_> {
    fn next(&mut self) -> usize {
        self.i += 1;
        self.i - 1
    }
    pub(crate) fn text(&mut self, what: &'static str) -> Result<String, CatalogError> {
        let i = self.next();
        match self.row {
            AnyRow::Local(row) => row.text(i).flatten().map(str::to_owned).ok_or(CatalogError::Corrupt { what }),
            _ => get!(self.row, i, String, what),
        }
    }
    pub(crate) fn opt_text(&mut self, what: &'static str) -> Result<Option<String>, CatalogError> {
        let i = self.next();
        match self.row {
            AnyRow::Local(row) => row.text(i).map(|t| t.map(str::to_owned)).ok_or(CatalogError::Corrupt { what }),
            _ => get!(self.row, i, Option<String>, what),
        }
    }
    pub(crate) fn int(&mut self, what: &'static str) -> Result<i64, CatalogError> {
        let i = self.next();
        get!(self.row, i, i64, what)
    }
    pub(crate) fn opt_int(&mut self, what: &'static str) -> Result<Option<i64>, CatalogError> {
        let i = self.next();
        get!(self.row, i, Option<i64>, what)
    }
    pub(crate) fn uint(&mut self, what: &'static str) -> Result<u64, CatalogError> {
        u64::try_from(self.int(what)?).map_err(|_| CatalogError::Corrupt { what })
    }
    pub(crate) fn flag(&mut self, what: &'static str) -> Result<bool, CatalogError> {
        let i = self.next();
        get!(self.row, i, bool, what)
    }
}
