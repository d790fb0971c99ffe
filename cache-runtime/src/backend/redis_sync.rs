//! The Redis transport of blocking calls ([`crate::blocking`]): a small pool of redis-rs
//! synchronous connections, each operation bounded by the same deadline as an async one
//! (connect, read and write timeouts set from it).
//!
//! [`Conn`] is what every command of the Redis backend is sent on: the multiplexed
//! `ConnectionManager` in async calls, a pooled synchronous connection in blocking ones. It
//! implements redis-rs's async `ConnectionLike`, so each command is written once; on a
//! synchronous connection the I/O happens when the command is sent, and the future it
//! returns is already complete.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{Cmd, ConnectionLike as _, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// Idle synchronous connections kept for the next blocking call; more are opened when more
/// threads make blocking calls at once, and closed when they come back to a full pool.
const MAX_IDLE: usize = 16;

/// Synchronous connections to one server, opened on demand.
pub(crate) struct Pool {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
}

impl Pool {
    pub(crate) fn new(client: redis::Client) -> Arc<Pool> {
        Arc::new(Pool {
            client,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An idle connection, or a new one; either way with its timeouts set to what is left
    /// until `deadline`.
    pub(crate) fn get(self: &Arc<Pool>, deadline: Instant) -> RedisResult<Pooled> {
        let left = remaining(deadline)?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.client.get_connection_with_timeout(left)?,
        };
        let left = remaining(deadline)?;
        conn.set_read_timeout(Some(left))?;
        conn.set_write_timeout(Some(left))?;
        Ok(Pooled {
            conn: Some(conn),
            pool: self.clone(),
        })
    }

    /// Closes every idle connection: after one broke (a restarted server), the others are
    /// most likely broken too.
    fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The time left until `deadline`, or a timeout error when none is.
fn remaining(deadline: Instant) -> RedisResult<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no time left for the operation",
        )));
    }
    Ok(left)
}

/// A connection taken from the [`Pool`], given back when dropped unless it failed.
pub(crate) struct Pooled {
    /// `None` once it failed: a connection whose answer may still arrive is never reused.
    conn: Option<redis::Connection>,
    pool: Arc<Pool>,
}

impl Pooled {
    fn send<T>(
        &mut self,
        send: impl FnOnce(&mut redis::Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let conn = self.conn.as_mut().ok_or_else(|| {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the connection failed earlier",
            ))
        })?;
        let result = send(conn);
        if let Err(e) = &result
            && (e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error())
        {
            self.conn = None;
            self.pool.clear();
        }
        result
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.is_open()
        {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

/// The connection one command goes out on (see the module docs).
pub(crate) enum Conn {
    Async(ConnectionManager),
    Blocking(Pooled),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Async(conn) => conn.req_packed_command(cmd),
            Conn::Blocking(conn) => {
                let answer = conn.send(|c| c.req_command(cmd));
                Box::pin(std::future::ready(answer))
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Async(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Blocking(conn) => {
                let packed = pipeline.get_packed_pipeline();
                let answer = conn.send(|c| c.req_packed_commands(&packed, offset, count));
                Box::pin(std::future::ready(answer))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Async(conn) => conn.get_db(),
            Conn::Blocking(conn) => conn.conn.as_ref().map_or(0, |c| c.get_db()),
        }
    }
}
