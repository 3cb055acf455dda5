//! A small session store on the typed handle: create (random 128-bit ids), read with a sliding
//! TTL, update, log out, and "log out everywhere" through a per-user tag.
//!
//! Run: `cargo run --example sessions` (starts a throwaway redis-server unless `REDIS_URL` is set).

use std::time::Duration;

use memo_redis::{Cache, Config, Error};
use memo_redis_examples::{init_logging, DemoRedis};
use serde::{Deserialize, Serialize};

/// The idle timeout: a session not used for this long is gone. Short, for the demo.
const IDLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user_id: u64,
    device: String,
    cart: Vec<String>,
}

/// Sessions in Redis: `session:{id}`, tagged `user:{user_id}`.
struct Sessions {
    cache: &'static Cache,
    idle: Duration,
}

/// 128 bits from the operating system's CSPRNG, as 32 hex digits.
fn new_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Ids come from cookies: anything that is not 32 lowercase hex digits is not a session.
fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn user_tag(user_id: u64) -> String {
    format!("user:{user_id}")
}

impl Sessions {
    fn key(id: &str) -> String {
        format!("session:{id}")
    }

    async fn create(
        &self,
        user_id: u64,
        device: &str,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let id = new_session_id()?;
        let session = Session {
            user_id,
            device: device.into(),
            cart: Vec::new(),
        };
        self.cache
            .set_with_tags(
                &Self::key(&id),
                &session,
                Some(self.idle),
                &[&user_tag(user_id)],
            )
            .await?;
        Ok(id)
    }

    /// The session, its idle timeout restarted (sliding expiry).
    async fn get(&self, id: &str) -> Result<Option<Session>, Error> {
        if !is_session_id(id) {
            return Ok(None);
        }
        self.cache.get_and_extend(&Self::key(id), self.idle).await
    }

    /// Applies `change` and writes the session back (same tag, idle timeout restarted);
    /// `false` if the session does not exist.
    async fn update(&self, id: &str, change: impl FnOnce(&mut Session)) -> Result<bool, Error> {
        let Some(mut session) = self.get(id).await? else {
            return Ok(false);
        };
        change(&mut session);
        let tag = user_tag(session.user_id);
        self.cache
            .set_with_tags(&Self::key(id), &session, Some(self.idle), &[&tag])
            .await?;
        Ok(true)
    }

    /// Logs one session out.
    async fn delete(&self, id: &str) -> Result<bool, Error> {
        if !is_session_id(id) {
            return Ok(false);
        }
        self.cache.evict(&Self::key(id)).await
    }

    /// Logs a user out everywhere; returns how many sessions ended.
    async fn delete_all_for_user(&self, user_id: u64) -> Result<u64, Error> {
        self.cache.invalidate_tags([&user_tag(user_id)]).await
    }

    async fn describe(&self, label: &str, id: &str) -> Result<(), Error> {
        let short = &id[..id.len().min(8)];
        match self.get(id).await? {
            Some(s) => {
                let left = self.cache.ttl(&Self::key(id)).await?.unwrap_or_default();
                println!(
                    "  {label:<26} {short}… user {} on {:<7} cart {:?}, expires in {:.1} s",
                    s.user_id,
                    s.device,
                    s.cart,
                    left.as_secs_f64()
                );
            }
            None => println!("  {label:<26} {short}… no such session"),
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let redis = DemoRedis::start();
    println!("memo-redis sessions — redis: {}\n", redis.describe());
    static SESSIONS: Cache = Cache::from_env();
    SESSIONS.install(
        Config::builder()
            .url(redis.url.clone())
            .namespace("memo-demo")
            .build()?,
    )?;
    let store = Sessions {
        cache: &SESSIONS,
        idle: IDLE,
    };

    println!("1. log in: user 42 on two devices, user 43 on one (idle timeout {IDLE:?})");
    let laptop = store.create(42, "laptop").await?;
    let phone = store.create(42, "phone").await?;
    let other = store.create(43, "tablet").await?;
    println!(
        "  redis key of the laptop session: {}",
        SESSIONS.full_key(&Sessions::key(&laptop))?
    );
    for (label, id) in [("laptop", &laptop), ("phone", &phone), ("user 43", &other)] {
        store.describe(label, id).await?;
    }

    println!("\n2. sliding expiry: the laptop and user 43 are used every 2 s, the phone is not");
    for round in 1..=2 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = round * 2;
        store
            .describe(&format!("laptop after {after} s"), &laptop)
            .await?;
        store
            .describe(&format!("user 43 after {after} s"), &other)
            .await?;
    }
    store.describe("phone after 4 s (idle)", &phone).await?;

    println!("\n3. update: add to the laptop session's cart");
    store
        .update(&laptop, |s| s.cart.push("book #9780262033848".into()))
        .await?;
    store.describe("laptop", &laptop).await?;

    println!("\n4. log out one session");
    let phone2 = store.create(42, "phone").await?;
    println!("  deleted: {}", store.delete(&phone2).await?);
    store.describe("phone (logged out)", &phone2).await?;

    println!("\n5. log user 42 out everywhere (tag user:42), past the first idle timeout");
    let desktop = store.create(42, "desktop").await?;
    println!("  sessions ended: {}", store.delete_all_for_user(42).await?);
    store.describe("laptop", &laptop).await?;
    store.describe("desktop", &desktop).await?;
    store.describe("user 43 (kept alive)", &other).await?;

    println!("\n6. a forged cookie");
    store
        .describe("\"../tag:user:43\"", "../tag:user:43")
        .await?;

    SESSIONS.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
