//! Read replicas with read-your-writes: a [`ReplicaSet`] a
//! [`SessionFactory`](crate::session::SessionFactory) routes reads to (MariaDB
//! GTID replication).
//!
//! ```no_run
//! use std::time::Duration;
//! use orm_core::replicas::{ReplicaOptions, ReplicaSet};
//! use orm_core::session::SessionFactory;
//! # fn demo(primary: orm_core::engine::Engine, replica: orm_core::engine::Engine) {
//! let replicas = ReplicaSet::new(vec![replica], ReplicaOptions {
//!     max_lag: Duration::from_secs(5),
//!     wait_timeout: Duration::from_millis(500),
//!     ..ReplicaOptions::default()
//! });
//! let factory = SessionFactory::new(primary).replicas(replicas);
//! # }
//! ```
//!
//! # Routing (SQLAlchemy's "routing session" recipe, with read-your-writes)
//!
//! - A session that has not written reads from a replica. The replica is
//!   chosen at the session's first read, round-robin among the healthy ones,
//!   and kept until `commit()`/`rollback()`/`close()`, so that the reads of
//!   one session transaction see one consistent snapshot of one server.
//! - Reads are queries (`all`, `first`, `count`, `iter`, `for_each`,
//!   typed and joined selects), `get` and reloads of expired objects, lazy
//!   loads, and the raw `query_rows`/`query_sql`/`query_tuples`.
//! - The first write moves the session to the primary: a flush that sends
//!   statements, `Session::execute` (so bulk `update`/`delete`, whose
//!   `Synchronize::Fetch` SELECT also runs on the primary), a query with a
//!   row lock (`with_for_update`, `for_share`, joined or not), `begin_nested`,
//!   or an explicit `begin()` (and so `transaction()` and
//!   `SessionFactory::begin`). The
//!   replica's read snapshot is ended (its connection rolled back and
//!   returned) and everything after goes to the primary, reads included,
//!   until the transaction ends: inside a transaction that wrote, reads see
//!   its own uncommitted rows. Raw `query_rows`/`query_sql`/`query_tuples`
//!   are reads: send writes with `execute`. The factory's `after_begin`
//!   hooks run on the primary transaction only, not on replica reads.
//! - After a commit that wrote, the commit's GTID is kept in the set (the
//!   highest per replication domain), shared by every session of the
//!   factory (and of its clones). The next session transaction that reads
//!   from a replica first runs `SELECT MASTER_GTID_WAIT(position, timeout)`
//!   on it (skipped when that replica is already known to be past the
//!   position): `0` → it reads there; `-1` (timed out after
//!   [`ReplicaOptions::wait_timeout`]) → it reads from the primary instead;
//!   `NULL` or an error → the replica is marked down. The GTID comes from
//!   the server's session-state report of the `COMMIT` when the primary
//!   tracks `last_gtid` (`session_track_system_variables` including
//!   `last_gtid`, no round trip), else from one `SELECT @@last_gtid` on the
//!   primary connection right after `COMMIT`.
//! - A replica that cannot be connected to, or whose connection is lost, is
//!   marked down for [`ReplicaOptions::retry_down_after`] and skipped. A
//!   replica that has not reached, for longer than
//!   [`ReplicaOptions::max_lag`], a GTID position the primary had
//!   (`@@gtid_slave_pos` on the replica against the primary's
//!   `@@gtid_binlog_pos`, checked at most once per
//!   [`ReplicaOptions::lag_check_interval`] per replica, at checkout) is
//!   lagging and skipped. With no healthy replica, reads go to the primary.
//!   A read that meets a dead replica connection is sent again once, on
//!   another replica or the primary (reads are safe to resend).
//! - Everything is counted in [`ReplicaStats`].
//!
//! The set speaks MariaDB's GTID dialect (`MASTER_GTID_WAIT`,
//! `@@last_gtid`, `@@gtid_slave_pos`, `@@gtid_binlog_pos`); the primary
//! needs its binary log on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::{Engine, PooledConnection};
use crate::error::{DbErrorKind, Error, Result};
use crate::value::Value;

/// How a [`ReplicaSet`] judges and waits for its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaOptions {
    /// A replica that has not reached, for longer than this, a position the
    /// primary had is lagging and skipped. Default 5 s.
    pub max_lag: Duration,
    /// How long a read waits (`MASTER_GTID_WAIT`) for a replica to have the
    /// factory's last commit before reading from the primary instead.
    /// Default 1 s.
    pub wait_timeout: Duration,
    /// How long a replica found down is skipped before it is tried again.
    /// Default 10 s.
    pub retry_down_after: Duration,
    /// How often, at most, each replica's lag is checked (two small queries:
    /// one on the replica, one on the primary shared by all replicas).
    /// Default 1 s.
    pub lag_check_interval: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            max_lag: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(1),
            retry_down_after: Duration::from_secs(10),
            lag_check_interval: Duration::from_secs(1),
        }
    }
}

/// Counters of a [`ReplicaSet`] since it was created. All are monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Read statements answered by a replica.
    pub replica_reads: u64,
    /// Session transactions whose reads were routed to a replica.
    pub replica_checkouts: u64,
    /// `MASTER_GTID_WAIT` statements sent (read-your-writes).
    pub gtid_waits: u64,
    /// Times a replica was skipped because it was down.
    pub skipped_down: u64,
    /// Times a replica was skipped because it was lagging.
    pub skipped_lagging: u64,
    /// Times a replica was marked down (a failed connect, a lost
    /// connection, a `MASTER_GTID_WAIT` answering `NULL` or failing).
    pub marked_down: u64,
    /// Session transactions that read from the primary because every
    /// replica was down (or because the position of a commit could not be
    /// learned, neither after it nor from the primary since).
    pub fallback_down: u64,
    /// Session transactions that read from the primary because no replica
    /// was up to date within `max_lag` (the others being down or lagging).
    pub fallback_lagging: u64,
    /// Session transactions that read from the primary because the replica
    /// did not reach the factory's last commit within `wait_timeout`.
    pub fallback_gtid_timeout: u64,
    /// Reads sent again (on another replica or the primary) because their
    /// replica died under them.
    pub read_retries: u64,
}

/// What the set knows about one replica now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica's engine description (password masked).
    pub replica: String,
    /// Marked down and skipped until `retry_down_after` has passed.
    pub down: bool,
    /// Found lagging by the last lag check, and skipped until the next one.
    pub lagging: bool,
    /// How long, at least, the replica has been behind the primary at the
    /// last lag check (zero when it had caught up).
    pub lag: Duration,
}

/// A MariaDB GTID position: the last transaction's `domain-server-sequence`
/// per replication domain (`0-1-42,1-2-7`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPosition {
    /// domain → (server id, sequence number).
    domains: BTreeMap<u32, (u32, u64)>,
}

impl GtidPosition {
    /// Parses a position list; `None` when it is not one. An empty string
    /// is the empty position.
    pub fn parse(text: &str) -> Option<GtidPosition> {
        let mut domains = BTreeMap::new();
        for gtid in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut parts = gtid.split('-');
            let domain = parts.next()?.parse().ok()?;
            let server = parts.next()?.parse().ok()?;
            let seq = parts.next()?.parse().ok()?;
            if parts.next().is_some() {
                return None;
            }
            let entry = domains.entry(domain).or_insert((server, seq));
            if seq > entry.1 {
                *entry = (server, seq);
            }
        }
        Some(GtidPosition { domains })
    }

    /// Whether no domain is listed.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Whether a server at this position has every transaction of `other`
    /// (per domain, a sequence number at least as high: MariaDB's sequence
    /// numbers grow within a domain, strictly with `gtid_strict_mode`).
    pub fn covers(&self, other: &GtidPosition) -> bool {
        other.domains.iter().all(|(domain, (_, seq))| {
            self.domains
                .get(domain)
                .is_some_and(|(_, mine)| mine >= seq)
        })
    }

    /// Keeps the highest of both positions per domain.
    pub fn merge(&mut self, other: &GtidPosition) {
        for (domain, (server, seq)) in &other.domains {
            let entry = self.domains.entry(*domain).or_insert((*server, *seq));
            if *seq > entry.1 {
                *entry = (*server, *seq);
            }
        }
    }
}

impl fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (domain, (server, seq))) in self.domains.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{domain}-{server}-{seq}")?;
        }
        Ok(())
    }
}

/// What the set knows about one replica's health.
#[derive(Debug, Default)]
struct Health {
    /// Skipped until then.
    down_until: Option<Instant>,
    /// The highest position the replica is known to have applied.
    reached: GtidPosition,
    /// When its lag was last checked.
    lag_checked: Option<Instant>,
    /// A primary position the replica had not reached at the last check,
    /// and when the primary was seen at it.
    behind: Option<(GtidPosition, Instant)>,
    /// The last check found it lagging past `max_lag`.
    lagging: bool,
    /// The lag found by the last check.
    lag: Duration,
}

struct Replica {
    engine: Engine,
    health: Mutex<Health>,
}

impl Replica {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Counters {
    replica_reads: AtomicU64,
    replica_checkouts: AtomicU64,
    gtid_waits: AtomicU64,
    skipped_down: AtomicU64,
    skipped_lagging: AtomicU64,
    marked_down: AtomicU64,
    fallback_down: AtomicU64,
    fallback_lagging: AtomicU64,
    fallback_gtid_timeout: AtomicU64,
    read_retries: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Why a session transaction's reads went to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fallback {
    Down,
    Lagging,
    GtidTimeout,
}

/// The replicas of one primary, their health, and the position the
/// factory's sessions last committed. See the [module documentation](self).
///
/// Held by a `SessionFactory` behind an `Arc`: cheap to share, `Send + Sync`.
pub struct ReplicaSet {
    replicas: Vec<Replica>,
    options: ReplicaOptions,
    next: AtomicUsize,
    /// The highest position committed by the sessions using this set.
    written: Mutex<GtidPosition>,
    /// A commit whose position could not be read: the next checkout asks
    /// the primary for its whole binary log position instead.
    written_unknown: AtomicBool,
    /// The primary's `@@gtid_binlog_pos`, and when it was read (shared by
    /// every replica's lag check).
    primary_position: Mutex<Option<(GtidPosition, Instant)>>,
    counters: Counters,
}

impl fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSet")
            .field(
                "replicas",
                &self
                    .replicas
                    .iter()
                    .map(|r| r.engine.describe())
                    .collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish()
    }
}

/// How a `MASTER_GTID_WAIT` ended.
enum Wait {
    Reached,
    TimedOut,
    Failed,
}

impl ReplicaSet {
    /// A set of `replicas` (engines on the replica servers; their pools are
    /// their own) judged by `options`.
    pub fn new(replicas: Vec<Engine>, options: ReplicaOptions) -> ReplicaSet {
        ReplicaSet {
            replicas: replicas
                .into_iter()
                .map(|engine| Replica {
                    engine,
                    health: Mutex::new(Health::default()),
                })
                .collect(),
            options,
            next: AtomicUsize::new(0),
            written: Mutex::new(GtidPosition::default()),
            written_unknown: AtomicBool::new(false),
            primary_position: Mutex::new(None),
            counters: Counters::default(),
        }
    }

    /// The options.
    pub fn options(&self) -> &ReplicaOptions {
        &self.options
    }

    /// The replica engines, in the order given.
    pub fn engines(&self) -> Vec<Engine> {
        self.replicas.iter().map(|r| r.engine.clone()).collect()
    }

    /// The highest GTID position committed through this set's sessions
    /// (what the next replica read waits for).
    pub fn written_position(&self) -> GtidPosition {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counters since the set was created.
    pub fn stats(&self) -> ReplicaStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReplicaStats {
            replica_reads: get(&c.replica_reads),
            replica_checkouts: get(&c.replica_checkouts),
            gtid_waits: get(&c.gtid_waits),
            skipped_down: get(&c.skipped_down),
            skipped_lagging: get(&c.skipped_lagging),
            marked_down: get(&c.marked_down),
            fallback_down: get(&c.fallback_down),
            fallback_lagging: get(&c.fallback_lagging),
            fallback_gtid_timeout: get(&c.fallback_gtid_timeout),
            read_retries: get(&c.read_retries),
        }
    }

    /// What the set knows about each replica now, in the order given.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        let now = Instant::now();
        self.replicas
            .iter()
            .map(|r| {
                let h = r.health();
                ReplicaStatus {
                    replica: r.engine.describe(),
                    down: h.down_until.is_some_and(|t| t > now),
                    lagging: h.lagging,
                    lag: h.lag,
                }
            })
            .collect()
    }

    pub(crate) fn count_replica_read(&self) {
        bump(&self.counters.replica_reads);
    }

    pub(crate) fn count_read_retry(&self) {
        bump(&self.counters.read_retries);
    }

    /// Marks replica `index` down for `retry_down_after`; its pooled
    /// connections are replaced when it is used again.
    pub(crate) fn mark_down(&self, index: usize) {
        if let Some(r) = self.replicas.get(index) {
            r.health().down_until = Some(Instant::now() + self.options.retry_down_after);
            r.engine.invalidate_pool();
            bump(&self.counters.marked_down);
        }
    }

    /// After a commit that wrote, on the primary connection that committed:
    /// remembers the commit's position for the next replica reads. When the
    /// position cannot be read, the next checkout asks the primary for its
    /// whole binary log position instead.
    pub(crate) fn note_commit(&self, conn: &mut PooledConnection) {
        let text = match conn.tracked_commit_position() {
            Some(text) => Some(text),
            None => conn
                .query_no_tables("SELECT @@last_gtid", &[])
                .ok()
                .and_then(|rows| first_text(&rows)),
        };
        match text.as_deref().and_then(GtidPosition::parse) {
            Some(pos) if !pos.is_empty() => self
                .written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .merge(&pos),
            _ => self.written_unknown.store(true, Ordering::Relaxed),
        }
    }

    /// A connection to a healthy replica that has the factory's last
    /// commit, round-robin, with its index; `None`: read from the primary
    /// (counted by reason).
    pub(crate) fn checkout(&self, primary: &Engine) -> Option<(usize, PooledConnection)> {
        if self.replicas.is_empty() {
            return None;
        }
        if self.written_unknown.swap(false, Ordering::Relaxed) {
            match self.primary_position(primary, true) {
                Some(pos) => self
                    .written
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .merge(&pos),
                None => {
                    // Still unknown: this read goes to the primary, the next asks again.
                    self.written_unknown.store(true, Ordering::Relaxed);
                    bump(&self.counters.fallback_down);
                    return None;
                }
            }
        }
        let wanted = self.written_position();
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut reason = Fallback::Down;
        for index in (0..n).map(|i| (start + i) % n) {
            match self.try_replica(index, primary, &wanted) {
                Ok(conn) => {
                    bump(&self.counters.replica_checkouts);
                    return Some((index, conn));
                }
                Err(Fallback::GtidTimeout) => {
                    // Bounded latency: one wait per read, then the primary.
                    reason = Fallback::GtidTimeout;
                    break;
                }
                Err(why) => reason = reason.max(why),
            }
        }
        bump(match reason {
            Fallback::Down => &self.counters.fallback_down,
            Fallback::Lagging => &self.counters.fallback_lagging,
            Fallback::GtidTimeout => &self.counters.fallback_gtid_timeout,
        });
        None
    }

    /// Replica `index`'s connection, ready for reads, or why not.
    fn try_replica(
        &self,
        index: usize,
        primary: &Engine,
        wanted: &GtidPosition,
    ) -> std::result::Result<PooledConnection, Fallback> {
        let replica = &self.replicas[index];
        let now = Instant::now();
        let check_lag = {
            let mut h = replica.health();
            if h.down_until.is_some_and(|t| t > now) {
                drop(h);
                bump(&self.counters.skipped_down);
                return Err(Fallback::Down);
            }
            h.down_until = None;
            let due = h.lag_checked.map_or(true, |t| {
                now.duration_since(t) >= self.options.lag_check_interval
            });
            if !due && h.lagging {
                drop(h);
                bump(&self.counters.skipped_lagging);
                return Err(Fallback::Lagging);
            }
            if due {
                // Claimed: concurrent checkouts do not check it again.
                h.lag_checked = Some(now);
            }
            due
        };
        let mut conn = match replica.engine.connect() {
            Ok(conn) => conn,
            Err(_) => return Err(self.skip_down(index)),
        };
        if check_lag {
            match self.check_lag(index, &mut conn, primary) {
                Ok(false) => {}
                Ok(true) => {
                    bump(&self.counters.skipped_lagging);
                    return Err(Fallback::Lagging);
                }
                Err(_) => return Err(self.skip_down(index)),
            }
        }
        if !wanted.is_empty() && !replica.health().reached.covers(wanted) {
            match self.wait_for(&mut conn, wanted) {
                Wait::Reached => replica.health().reached.merge(wanted),
                Wait::TimedOut => return Err(Fallback::GtidTimeout),
                Wait::Failed => return Err(self.skip_down(index)),
            }
        }
        Ok(conn)
    }

    fn skip_down(&self, index: usize) -> Fallback {
        self.mark_down(index);
        bump(&self.counters.skipped_down);
        Fallback::Down
    }

    /// `SELECT MASTER_GTID_WAIT(position, timeout)` on the replica.
    fn wait_for(&self, conn: &mut PooledConnection, wanted: &GtidPosition) -> Wait {
        bump(&self.counters.gtid_waits);
        let params = [
            Value::Text(wanted.to_string()),
            Value::Double(self.options.wait_timeout.as_secs_f64()),
        ];
        match conn.query_no_tables("SELECT MASTER_GTID_WAIT(?, ?)", &params) {
            Ok(rows) => match rows.first().and_then(|r| r.values().first()) {
                Some(Value::Int(0)) | Some(Value::UInt(0)) => Wait::Reached,
                Some(Value::Int(-1)) => Wait::TimedOut,
                _ => Wait::Failed,
            },
            Err(_) => Wait::Failed,
        }
    }

    /// Checks replica `index`'s lag on `conn`; `Ok(true)` when it lags past
    /// `max_lag`. An error: the replica could not answer. When the primary
    /// cannot answer, the lag is left as it was.
    fn check_lag(
        &self,
        index: usize,
        conn: &mut PooledConnection,
        primary: &Engine,
    ) -> Result<bool> {
        let rows = conn.query_no_tables("SELECT @@gtid_slave_pos", &[])?;
        let reached = first_text(&rows)
            .and_then(|t| GtidPosition::parse(&t))
            .ok_or_else(|| {
                Error::invalid("the replica reported no GTID position (@@gtid_slave_pos)")
            })?;
        let replica = &self.replicas[index];
        let Some(primary_pos) = self.primary_position(primary, false) else {
            let mut h = replica.health();
            h.reached.merge(&reached);
            return Ok(h.lagging);
        };
        let now = Instant::now();
        let mut h = replica.health();
        h.reached.merge(&reached);
        if reached.covers(&primary_pos) {
            h.behind = None;
            h.lag = Duration::ZERO;
        } else {
            match &h.behind {
                // Still missing a position the primary had at `since`.
                Some((old, since)) if !reached.covers(old) => h.lag = now.duration_since(*since),
                _ => {
                    h.behind = Some((primary_pos, now));
                    h.lag = Duration::ZERO;
                }
            }
        }
        h.lagging = h.lag > self.options.max_lag;
        Ok(h.lagging)
    }

    /// The primary's `@@gtid_binlog_pos`, read at most once per
    /// `lag_check_interval` (or now with `fresh`); `None` when it cannot be read.
    fn primary_position(&self, primary: &Engine, fresh: bool) -> Option<GtidPosition> {
        let now = Instant::now();
        if !fresh {
            let cached = self
                .primary_position
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((pos, at)) = cached.as_ref() {
                if now.duration_since(*at) < self.options.lag_check_interval {
                    return Some(pos.clone());
                }
            }
        }
        let mut conn = primary.connect().ok()?;
        let rows = conn.query_no_tables("SELECT @@gtid_binlog_pos", &[]).ok()?;
        let pos = first_text(&rows).and_then(|t| GtidPosition::parse(&t))?;
        *self
            .primary_position
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((pos.clone(), now));
        Some(pos)
    }
}

/// Whether `e` says the replica is gone (so the read may go elsewhere).
pub(crate) fn replica_gone(e: &Error) -> bool {
    e.is_connection_lost() || e.db_kind() == Some(DbErrorKind::Connect)
}

/// The first column of the first row as text.
fn first_text(rows: &[crate::row::Row]) -> Option<String> {
    match rows.first()?.values().first()? {
        Value::Text(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::GtidPosition;

    #[test]
    fn positions_parse_compare_and_merge() {
        let a = GtidPosition::parse("0-1-42").unwrap();
        let b = GtidPosition::parse("0-1-40, 1-2-7").unwrap();
        assert_eq!(b.to_string(), "0-1-40,1-2-7");
        assert!(!a.covers(&b), "domain 1 missing");
        assert!(!b.covers(&a), "domain 0 behind");
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.to_string(), "0-1-42,1-2-7");
        assert!(m.covers(&a) && m.covers(&b));
        assert!(a.covers(&GtidPosition::default()));
        assert!(GtidPosition::parse("").unwrap().is_empty());
        assert_eq!(GtidPosition::parse("0-1"), None);
        assert_eq!(GtidPosition::parse("0-1-2-3"), None);
        assert_eq!(GtidPosition::parse("x-1-2"), None);
    }
}
