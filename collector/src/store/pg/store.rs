//! [`PgStore`]: the collector's store on PostgreSQL, behind the same methods as the redb store.
//!
//! The methods are synchronous, like the redb store's, and every caller already runs where it
//! may block (the blocking pool, the group commit's thread, the command line). The store owns a
//! one-thread tokio runtime that drives its connections; each method is one `block_on` over one
//! transaction on a pooled connection. A method called from inside an async task would panic,
//! which shows at once a store call made off the blocking pool.

use super::{explain, migrate, Connector, PgOptions};
use crate::store::StoreError;
use bincode::{Decode, Encode};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, GenericClient, Row, Statement};

/// How many connections one collector opens at most, unless configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// The collector's store on PostgreSQL; see the module documentation.
pub struct PgStore {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    pub(super) pool: Pool,
    location: String,
    instance: u64,
}

/// The advisory lock the collector leading the media desk holds ("PASPDESK" in ASCII).
const MEDIA_DESK_LOCK: i64 = 0x5041_5350_4445_534B;

/// The lead of the media desk, held while this lives: see [`PgStore::try_lead`].
pub struct Lead {
    client: Client,
}

/// The channel on which each group commit that stored reports announces their arrivals.
pub const STORED_CHANNEL: &str = "pasopati_stored";

impl PgStore {
    /// Connects, and brings the database's schema to this binary's version.
    pub fn open(options: &PgOptions) -> Result<PgStore, StoreError> {
        let connector = Connector::new(options)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pg-io")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Database(format!("cannot start the store's I/O thread: {e}"))
            })?;
        let store = PgStore {
            rt: Some(rt),
            pool: Pool::new(connector, options.max_connections()),
            location: super::redact(&options.url),
            instance: pasopati_common::random_u64(),
        };
        store.run(async {
            let mut client = store.pool.get().await?;
            migrate(&mut client).await
        })?;
        Ok(store)
    }

    /// This process's id among the collectors on the database (random, per start), which the
    /// notifications it sends carry so it can tell its own.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Notifications of reports stored by any collector on the database: each a payload
    /// `INSTANCE FIRST_ARRIVAL LAST_ARRIVAL` ([`STORED_CHANNEL`]). The receiver ends when the
    /// listening connection does (the database went away); listen again then.
    pub fn stored_notifications(&self) -> Result<tokio::sync::mpsc::Receiver<String>, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        self.run(async { self.pool.connector.listen(STORED_CHANNEL, tx).await })?;
        Ok(rx)
    }

    /// Takes the lead of the media desk if no other collector on the database holds it: a
    /// session advisory lock on a connection of its own, held while the returned [`Lead`]
    /// lives (dropped, or its connection lost, the lock is free for another). `None`: another
    /// collector leads.
    pub fn try_lead(&self) -> Result<Option<Lead>, StoreError> {
        self.run(async {
            let client = self.pool.connector.connect().await?;
            // A leader cut off from the database (a partition, a frozen machine) is ended by
            // the server after this much silence, which frees the lock for another; the
            // leader speaks every second (`still_leads`). PostgreSQL before 14 lacks it.
            let _ = client
                .batch_execute("SET idle_session_timeout = '15s'")
                .await;
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&MEDIA_DESK_LOCK])
                .await?;
            let taken: bool = col(&row, 0)?;
            Ok(taken.then_some(Lead { client }))
        })
    }

    /// Whether `lead` still holds the lock: its connection answers within five seconds.
    pub fn still_leads(&self, lead: &Lead) -> bool {
        self.run(async {
            match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                lead.client.simple_query("SELECT 1"),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                _ => Err(StoreError::Database("the lead's connection is lost".into())),
            }
        })
        .is_ok()
    }

    /// The database's address, without its password.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// Runs `work` to its end on this thread, with the store's runtime as the context for the
    /// connections it opens (their I/O runs on the runtime's thread). Unlike
    /// `Runtime::block_on`, this may be called from inside another runtime's task, as the
    /// redb store's methods may: it blocks that thread for the call, as a redb transaction does.
    pub(super) fn run<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match &self.rt {
            Some(rt) => {
                let _context = rt.enter();
                park_on(work)
            }
            None => Err(StoreError::Database("the store is closed".into())),
        }
    }
}

/// Polls `work` on this thread, parking it between wake-ups. The work is polled outside
/// tokio's cooperative budget: called from inside another runtime's task, it would otherwise
/// spend that task's budget, which only refills when the task yields to its runtime, and a
/// call that this thread never leaves would spin on "yield now" for ever (a long `store
/// migrate` did).
fn park_on<F: Future>(work: F) -> F::Output {
    let work = tokio::task::unconstrained(work);
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut work = std::pin::pin!(work);
    loop {
        match work.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => return out,
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The last handle may go inside an async task; a runtime cannot be dropped there.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The store's connections: idle ones kept for the next call, at most `max` open at once.
pub(super) struct Pool {
    pub(super) connector: Connector,
    idle: Mutex<Vec<Conn>>,
    permits: tokio::sync::Semaphore,
}

/// One connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// A connection taken from the pool, given back when dropped (unless it closed).
pub(super) struct Pooled<'p> {
    client: Option<Conn>,
    pool: &'p Pool,
    _permit: tokio::sync::SemaphorePermit<'p>,
}

impl Pool {
    fn new(connector: Connector, max: usize) -> Pool {
        Pool {
            connector,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(max.max(1)),
        }
    }

    /// A connection: an idle one still open, or a new one.
    pub(super) async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Database("the store is closed".into()))?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        let client = match reused {
            Some(c) => c,
            None => Conn {
                client: self.connector.connect().await?,
                statements: HashMap::new(),
            },
        };
        Ok(Pooled {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }
}

impl Pooled<'_> {
    /// The statement `sql` prepared on this connection (prepared once, kept while the
    /// connection lives). A prepared statement is sent as one message when its future is first
    /// polled, which is what lets [`in_order`] send several in a known order.
    pub(super) async fn prepared(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        let conn = match &mut self.client {
            Some(c) => c,
            None => unreachable!("a pooled connection is held until it is dropped"),
        };
        if let Some(statement) = conn.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = conn.client.prepare(sql).await?;
        conn.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        match &self.client {
            Some(c) => &c.client,
            None => unreachable!("a pooled connection is held until it is dropped"),
        }
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        match &mut self.client {
            Some(c) => &mut c.client,
            None => unreachable!("a pooled connection is held until it is dropped"),
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.client.is_closed() {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.push(client);
            }
        }
    }
}

/// Parameters of a statement.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Column `i` of `row`, or why it cannot be read.
pub(super) fn col<'r, T: FromSql<'r>>(row: &'r Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {}", explain(&e))))
}

/// A u64 of the store's types as PostgreSQL's bigint. Numbers past i64::MAX only appear as the
/// open end of a range, where i64::MAX means the same.
pub(super) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An epoch as PostgreSQL's bigint. Epochs are random u64 values, compared only for equality,
/// so all 64 bits are kept (those above i64::MAX read as negative numbers).
pub(super) fn epoch_col(epoch: u64) -> i64 {
    i64::from_be_bytes(epoch.to_be_bytes())
}

/// An epoch read back from its bigint.
pub(super) fn epoch_of(v: i64) -> u64 {
    u64::from_be_bytes(v.to_be_bytes())
}

/// A bigint read back as the u64 it was written from.
pub(super) fn unbig(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("a stored count is negative ({v})")))
}

/// A record as stored: bincode, as in the redb store.
pub(super) fn enc<T: Encode>(v: &T) -> Vec<u8> {
    crate::store::encode(v)
}

/// A stored record read back.
pub(super) fn dec<T: Decode<()>>(raw: &[u8]) -> Result<T, StoreError> {
    crate::store::decode(raw)
}

/// The record (bincode, first column) of the one row `sql` finds, if any.
pub(super) async fn record<T: Decode<()>>(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<T>, StoreError> {
    match c.query_opt(sql, params).await? {
        Some(row) => Ok(Some(dec(col::<&[u8]>(&row, 0)?)?)),
        None => Ok(None),
    }
}

/// The records (bincode, first column) of every row `sql` finds, in its order.
pub(super) async fn records<T: Decode<()>>(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<T>, StoreError> {
    let rows = c.query(sql, params).await?;
    rows.iter().map(|row| dec(col::<&[u8]>(row, 0)?)).collect()
}

/// Takes the next number of the counter `key` (starting at `first`) and moves it on. The
/// counter's row stays locked until the transaction ends, so numbers are given in commit order.
pub(super) async fn next_number(
    c: &impl GenericClient,
    key: &str,
    first: u64,
) -> Result<u64, StoreError> {
    let row = c
        .query_one(
            "INSERT INTO meta (key, value) VALUES ($1, $2::bigint + 1)
             ON CONFLICT (key) DO UPDATE SET value = meta.value + 1
             RETURNING value - 1",
            &[&key, &big(first)],
        )
        .await?;
    unbig(col(&row, 0)?)
}

/// The value of the counter `key`, or `default` if it was never moved.
pub(super) async fn counter(
    c: &impl GenericClient,
    key: &str,
    default: u64,
) -> Result<u64, StoreError> {
    match c
        .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
        .await?
    {
        Some(row) => unbig(col(&row, 0)?),
        None => Ok(default),
    }
}

/// A statement's work, boxed so that statements of different shapes share one list.
pub(super) type Step<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + 'a>>;

/// Runs `steps` pipelined: each is polled first in the list's order (so prepared statements go
/// out in that order and PostgreSQL runs them so), then all are driven to their end. The error
/// is the earliest step's: after it, PostgreSQL refuses the rest of the transaction, and their
/// "transaction is aborted" says nothing.
pub(super) async fn in_order(steps: Vec<Step<'_>>) -> Result<(), StoreError> {
    let mut steps: Vec<Option<Step<'_>>> = steps.into_iter().map(Some).collect();
    let mut first_error: Option<(usize, StoreError)> = None;
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in steps.iter_mut().enumerate() {
            let Some(step) = slot else { continue };
            match step.as_mut().poll(cx) {
                std::task::Poll::Ready(result) => {
                    *slot = None;
                    if let Err(e) = result {
                        if first_error.as_ref().is_none_or(|(at, _)| i < *at) {
                            first_error = Some((i, e));
                        }
                    }
                }
                std::task::Poll::Pending => pending = true,
            }
        }
        match pending {
            true => std::task::Poll::Pending,
            false => std::task::Poll::Ready(()),
        }
    })
    .await;
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}
