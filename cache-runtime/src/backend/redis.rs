//! The Redis backend: redis-rs `ConnectionManager` (multiplexed, reconnecting), every
//! operation bounded by the cache's timeout.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Backend, Lookup};
use crate::error::{Error, ErrorKind, Result};

/// Checks every generation an entry's envelope records (see `envelope.rs` for the layout)
/// against the current ones. Returns the header it checked when they all match (or the
/// bytes are not an envelope, which the caller rejects), 0 when one differs or is gone,
/// `false` when there is no entry. It reads only the header (`GETRANGE`): the value itself
/// comes back through a plain `GET` pipelined after it, since returning a large string
/// through Lua costs more than the whole round trip; the caller then checks that the value
/// it got starts with the header that was checked.
/// (It reads generation keys it is not given in KEYS: fine on a single Redis; Cluster needs
/// hash tags and comes later.)
const CHECK_ENTRY: &str = r"
local chunk = 4096
local head = redis.call('GETRANGE', KEYS[1], 0, chunk - 1)
if string.len(head) == 0 then return false end
if string.len(head) < 20 or string.sub(head, 1, 3) ~= 'CR\1' then return '' end
local n = string.byte(head, 19) + 256 * string.byte(head, 20)
local pos = 21
local names, gens = {}, {}
for i = 1, n do
  if pos + 9 > string.len(head) and string.len(head) == chunk then
    chunk = chunk * 16
    head = redis.call('GETRANGE', KEYS[1], 0, chunk - 1)
  end
  local len = string.byte(head, pos) + 256 * (string.byte(head, pos + 1) or 0)
  if pos + 9 + len > string.len(head) and string.len(head) == chunk then
    chunk = pos + 9 + len + 4096
    head = redis.call('GETRANGE', KEYS[1], 0, chunk - 1)
  end
  names[i] = ARGV[1] .. string.sub(head, pos + 2, pos + 1 + len)
  gens[i] = string.sub(head, pos + 2 + len, pos + 9 + len)
  pos = pos + 10 + len
end
if n > 0 then
  local current = redis.call('MGET', unpack(names))
  for i = 1, n do
    if current[i] ~= gens[i] then return 0 end
  end
end
return string.sub(head, 1, pos - 1)
";

/// Whether recorded generations still hold (ARGV: prefix, then name, value per dependency).
const CHECK: &str = r"
for i = 2, #ARGV, 2 do
  if redis.call('GET', ARGV[1] .. ARGV[i]) ~= ARGV[i + 1] then return 0 end
end
return 1
";

/// Current generations, creating missing ones (ARGV: value, ttl in ms or 0, per key).
const GENERATIONS: &str = r"
local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    v = ARGV[2 * i - 1]
    local ttl = tonumber(ARGV[2 * i])
    if ttl > 0 then redis.call('SET', KEYS[i], v, 'PX', ttl) else redis.call('SET', KEYS[i], v) end
  end
  out[i] = v
end
return out
";

/// Replaces a generation and removes an entry in one atomic step (KEYS: gen[, entry]).
const BUMP: &str = r"
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[1]) end
if KEYS[2] then redis.call('UNLINK', KEYS[2]) end
return 1
";

/// A Redis server reached through one multiplexed, self-reconnecting connection.
pub struct RedisBackend {
    conn: ConnectionManager,
    timeout: Duration,
    check_entry: redis::Script,
    check: redis::Script,
    generations: redis::Script,
    bump: redis::Script,
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| t.as_millis().clamp(1, u64::MAX as u128) as u64)
}

impl RedisBackend {
    /// Connects lazily: a server that is down now is not an error; calls fail (and the
    /// cache runs uncached) until it answers, and reconnection happens in the background.
    pub fn new(client: redis::Client, timeout: Duration) -> Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            Error::with_source(ErrorKind::Config, "cannot set up the Redis connection", e)
        })?;
        Ok(RedisBackend {
            conn,
            timeout,
            check_entry: redis::Script::new(CHECK_ENTRY),
            check: redis::Script::new(CHECK),
            generations: redis::Script::new(GENERATIONS),
            bump: redis::Script::new(BUMP),
        })
    }

    /// Runs one command on a clone of the shared connection, within the timeout.
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_timeout() => Err(Error::with_source(ErrorKind::Timeout, op, e)),
            Ok(Err(e)) => Err(Error::with_source(ErrorKind::Backend, op, e)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{op}: no answer from Redis within {:?}", self.timeout),
            )),
        }
    }

    /// Sends a `PING` (used to warm the connection up front).
    pub async fn ping(&self) -> Result<()> {
        self.run("PING", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }
}

/// Escapes glob characters so a key prefix matches only itself in `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

impl Backend for RedisBackend {
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.run("SET", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(&value[..])
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let n: u64 = self
            .run("UNLINK", |mut c| async move {
                redis::cmd("UNLINK").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(n > 0)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let pattern = glob_escape(prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let pattern = &pattern;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run("SCAN", |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                let n: u64 = self
                    .run("UNLINK", |mut c| async move {
                        redis::cmd("UNLINK").arg(&keys).query_async(&mut c).await
                    })
                    .await?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn get_fresh(&self, key: &str, gen_prefix: &str) -> Result<Lookup> {
        self.get_fresh_impl(key, gen_prefix).await
    }

    async fn get_fresh_expecting(
        &self,
        key: &str,
        gen_prefix: &str,
        expected: &[String],
    ) -> Result<Lookup> {
        self.get_fresh_expecting_impl(key, gen_prefix, expected)
            .await
    }

    async fn check(&self, gen_prefix: &str, deps: &[(String, u64)]) -> Result<bool> {
        self.check_impl(gen_prefix, deps).await
    }

    async fn generations(
        &self,
        keys: &[(String, Option<Duration>)],
        offered: &[u64],
    ) -> Result<Vec<u64>> {
        self.generations_impl(keys, offered).await
    }

    async fn bump(
        &self,
        gen_key: &str,
        value: u64,
        ttl: Option<Duration>,
        entry: Option<&str>,
    ) -> Result<()> {
        self.bump_impl(gen_key, value, ttl, entry).await
    }
}

impl RedisBackend {
    async fn get_fresh_impl(&self, key: &str, gen_prefix: &str) -> Result<Lookup> {
        // One round trip: the header check and the GET, pipelined.
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(self.check_entry.get_hash())
            .arg(1)
            .arg(key)
            .arg(gen_prefix)
            .cmd("GET")
            .arg(key);
        let pipe = &pipe;
        let query = |mut c: ConnectionManager| async move {
            pipe.query_async::<(redis::Value, Option<Vec<u8>>)>(&mut c)
                .await
        };
        let reply = match self.run("GET (checked)", query).await {
            Err(e) if e.is_no_script() => {
                let mut conn = self.conn.clone();
                self.check_entry
                    .load_async(&mut conn)
                    .await
                    .map_err(|e| Error::with_source(ErrorKind::Backend, "SCRIPT LOAD", e))?;
                self.run("GET (checked)", query).await
            }
            other => other,
        }?;
        Ok(match reply {
            (_, None) | (redis::Value::Nil, _) => Lookup::Missing,
            (redis::Value::BulkString(checked), Some(bytes)) if bytes.starts_with(&checked) => {
                Lookup::Found(Bytes::from(bytes))
            }
            // A generation changed, or a fill replaced the entry between the check and the
            // GET (its header differs from the one checked): not served.
            _ => Lookup::Stale,
        })
    }

    async fn get_fresh_expecting_impl(
        &self,
        key: &str,
        gen_prefix: &str,
        expected: &[String],
    ) -> Result<Lookup> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(key);
        for name in expected {
            cmd.arg(format!("{gen_prefix}{name}"));
        }
        let cmd = &cmd;
        let mut values: Vec<Option<Vec<u8>>> = self
            .run("MGET (checked)", |mut c| async move {
                cmd.query_async(&mut c).await
            })
            .await?;
        if values.len() != expected.len() + 1 {
            return Err(Error::new(
                ErrorKind::Backend,
                "MGET answered the wrong number of values",
            ));
        }
        let Some(bytes) = values[0].take() else {
            return Ok(Lookup::Missing);
        };
        let Some((header, _)) = crate::envelope::read(&bytes) else {
            return Ok(Lookup::Found(Bytes::from(bytes))); // not an envelope: the caller rejects it
        };
        let mut unexpected = Vec::new();
        for (name, recorded) in header.deps {
            match expected.iter().position(|e| *e == name) {
                Some(i) => {
                    if values[i + 1].as_deref() != Some(&recorded.to_le_bytes()[..]) {
                        return Ok(Lookup::Stale);
                    }
                }
                None => unexpected.push((name, recorded)),
            }
        }
        // Dependencies beyond the expected ones (cached values read while this one was
        // filled) need one more round trip.
        if !unexpected.is_empty() && !self.check_impl(gen_prefix, &unexpected).await? {
            return Ok(Lookup::Stale);
        }
        Ok(Lookup::Found(Bytes::from(bytes)))
    }

    async fn check_impl(&self, gen_prefix: &str, deps: &[(String, u64)]) -> Result<bool> {
        if deps.is_empty() {
            return Ok(true);
        }
        let mut invocation = self.check.prepare_invoke();
        invocation.arg(gen_prefix);
        for (name, value) in deps {
            invocation.arg(name).arg(&value.to_le_bytes()[..]);
        }
        let invocation = &invocation;
        let fresh: i64 = self
            .run("check", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(fresh == 1)
    }

    async fn generations_impl(
        &self,
        keys: &[(String, Option<Duration>)],
        offered: &[u64],
    ) -> Result<Vec<u64>> {
        let mut invocation = self.generations.prepare_invoke();
        for ((key, ttl), value) in keys.iter().zip(offered) {
            invocation
                .key(key)
                .arg(&value.to_le_bytes()[..])
                .arg(ttl_ms(*ttl));
        }
        let invocation = &invocation;
        let values: Vec<Vec<u8>> = self
            .run("generations", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        values
            .into_iter()
            .map(|v| {
                <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_le_bytes)
                    .map_err(|_| {
                        Error::new(
                            ErrorKind::Backend,
                            "a generation counter holds a foreign value",
                        )
                    })
            })
            .collect()
    }

    async fn bump_impl(
        &self,
        gen_key: &str,
        value: u64,
        ttl: Option<Duration>,
        entry: Option<&str>,
    ) -> Result<()> {
        let mut invocation = self.bump.prepare_invoke();
        invocation.key(gen_key);
        if let Some(entry) = entry {
            invocation.key(entry);
        }
        invocation.arg(&value.to_le_bytes()[..]).arg(ttl_ms(ttl));
        let invocation = &invocation;
        self.run("bump", |mut c| async move {
            invocation.invoke_async::<()>(&mut c).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(
            super::glob_escape("app:1:a*b?[c]"),
            "app:1:a\\*b\\?\\[c\\]*"
        );
    }
}
