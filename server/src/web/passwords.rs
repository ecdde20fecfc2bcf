//! Argon2id password hashes (PHC strings), computed under a budget.
//!
//! Each check takes 19 MiB and tens of milliseconds, and anyone can ask for
//! one by posting the login form. So checks run on a few worker threads (about
//! one per core), each reusing one block of memory for the life of the
//! process; callers wait in a bounded queue with a deadline and are refused
//! ([`Busy`]) when it is full. Memory stays at workers × 19 MiB however many
//! logins arrive at once, and none is left to the allocator to hoard.

use super::error::UiError;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Shortest password `user add` accepts.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Checks waiting for a worker before further ones are refused at once.
const QUEUE_PER_WORKER: usize = 8;
/// A check not started within this is refused: its caller has waited enough.
pub const QUEUE_DEADLINE: Duration = Duration::from_secs(5);
/// At most this many workers, whatever the core count.
const MAX_WORKERS: usize = 8;

fn params() -> Params {
    // OWASP's recommended minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// The pool is full: try again shortly (429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many logins at once; try again in a few seconds")]
pub struct Busy;

impl From<Busy> for UiError {
    fn from(_: Busy) -> UiError {
        UiError::Busy
    }
}

enum Work {
    Hash(String),
    Verify {
        password: String,
        hash: Option<String>,
    },
}

enum Done {
    Hash(anyhow::Result<String>),
    Verify(bool),
}

struct Job {
    work: Work,
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<Done>,
}

/// The hashing workers and the queue in front of them.
pub struct Hasher {
    jobs: SyncSender<Job>,
}

impl Hasher {
    pub fn start(workers: usize, queue: usize) -> Hasher {
        let (jobs, inbox) = std::sync::mpsc::sync_channel::<Job>(queue);
        let inbox = Arc::new(Mutex::new(inbox));
        let memory = Arc::new(Memory::default());
        for n in 0..workers.max(1) {
            let inbox = Arc::clone(&inbox);
            let memory = Arc::clone(&memory);
            let spawned = std::thread::Builder::new()
                .name(format!("imc-passwords-{n}"))
                .spawn(move || work(&inbox, &memory));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password worker");
            }
        }
        Hasher { jobs }
    }

    /// The process's pool: one worker per core, up to [`MAX_WORKERS`].
    pub fn shared() -> &'static Hasher {
        static SHARED: OnceLock<Hasher> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            let workers = cores.min(MAX_WORKERS);
            Hasher::start(workers, workers * QUEUE_PER_WORKER)
        })
    }

    async fn run(&self, work: Work) -> Result<Done, Busy> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            work,
            deadline: Instant::now() + QUEUE_DEADLINE,
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => answer.await.map_err(|_| Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Whether `password` matches `hash`; `None` (no such user) is never a
    /// match but costs the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        match self.run(Work::Verify { password, hash }).await? {
            Done::Verify(matched) => Ok(matched),
            Done::Hash(_) => Ok(false),
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, UiError> {
        match self.run(Work::Hash(password)).await? {
            Done::Hash(hashed) => hashed.map_err(UiError::Internal),
            Done::Verify(_) => Err(UiError::Internal(anyhow::anyhow!("password worker mixup"))),
        }
    }
}

/// A worker's memory is given back to the system after this long unused.
const IDLE_RELEASE: Duration = Duration::from_secs(20);

/// The 19 MiB blocks of the workers: at most one per worker, kept while
/// logins keep coming, freed when idle (as a whole mapping, which the
/// allocator returns to the system).
#[derive(Default)]
struct Memory {
    spare: Mutex<Vec<(Vec<Block>, Instant)>>,
}

impl Memory {
    fn take(&self) -> Vec<Block> {
        self.spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .map_or_else(
                || vec![Block::default(); params().block_count()],
                |(block, _)| block,
            )
    }

    fn give(&self, block: Vec<Block>) {
        if let Ok(mut spare) = self.spare.lock() {
            spare.push((block, Instant::now()));
        }
    }

    fn release_idle(&self) {
        if let Ok(mut spare) = self.spare.lock() {
            spare.retain(|(_, since)| since.elapsed() < IDLE_RELEASE);
        }
    }
}

fn work(inbox: &Mutex<Receiver<Job>>, memory: &Memory) {
    loop {
        let job = {
            let Ok(inbox) = inbox.lock() else { return };
            match inbox.recv_timeout(IDLE_RELEASE / 2) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    memory.release_idle();
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        };
        if Instant::now() >= job.deadline {
            // Dropping the reply tells the caller it waited too long.
            continue;
        }
        let mut block = memory.take();
        let done = match job.work {
            Work::Hash(password) => Done::Hash(hash_with(&mut block, &password)),
            Work::Verify { password, hash } => {
                // An unknown name is checked against a decoy: the same cost.
                let known = hash.is_some();
                let hash = hash.unwrap_or_else(|| decoy(&mut block).to_owned());
                Done::Verify(known && verify_with(&mut block, &password, &hash))
            }
        };
        memory.give(block);
        let _ = job.reply.send(done);
    }
}

/// A new PHC string for `password`, in the worker's memory.
fn hash_with(memory: &mut [Block], password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("password salt: {e}"))?;
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow::anyhow!("password salt: {e}"))?;
    let mut out = [0u8; 32];
    argon2()
        .hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, memory)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    let output = Output::new(&out).map_err(|e| anyhow::anyhow!("password hash: {e}"))?;
    let params = argon2::password_hash::ParamsString::try_from(&params())
        .map_err(|e| anyhow::anyhow!("password hash parameters: {e}"))?;
    Ok(PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

/// Whether `password` matches the PHC string `hash`, in the worker's memory
/// (a hash made with more memory than ours gets its own, once).
fn verify_with(memory: &mut [Block], password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = if blocks <= memory.len() {
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory[..blocks],
        )
    } else {
        argon2.hash_password_into(password.as_bytes(), salt, &mut out)
    };
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
}

/// For the command line and the demo, which hash one password on their own
/// (in a block of memory of their own, outside the pool).
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    hash_with(
        &mut vec![Block::default(); params().block_count()],
        password,
    )
}

pub async fn hash(password: String) -> Result<String, UiError> {
    Hasher::shared().hash(password).await
}

/// A hash of nothing in particular, so an unknown user name costs as much
/// time as a wrong password (made in a worker's memory, once).
fn decoy(memory: &mut [Block]) -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_with(memory, "decoy password").unwrap_or_default())
}

/// Whether `password` matches `hash`; `None` (no such user) is never a match.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool, Busy> {
    Hasher::shared().verify(password, hash).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;
    use argon2::password_hash::PasswordHasher;

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!verify("decoy password".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn the_pool_and_the_library_agree_on_each_others_hashes() {
        let ours = hash("correct horse".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"correct horse", &parsed).is_ok());
        let salt = SaltString::encode_b64(&[3; 16]).unwrap();
        let theirs = argon2()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify("battery staple".into(), Some(theirs)).await.unwrap());
        // A hash with other parameters (an older install) still checks.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(&[7; 16]).unwrap();
        let older = cheap.hash_password(b"staple", &salt).unwrap().to_string();
        assert!(verify("staple".into(), Some(older.clone())).await.unwrap());
        assert!(!verify("stapler".into(), Some(older)).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_growing() {
        // One worker and a queue of one: of many checks at once, some are
        // refused, and every one answers.
        let pool = Arc::new(Hasher::start(1, 1));
        let hash = hash_blocking("pw").unwrap();
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let pool = Arc::clone(&pool);
                let hash = hash.clone();
                tokio::spawn(async move { pool.verify("pw".into(), Some(hash)).await })
            })
            .collect();
        let mut refused = 0;
        let mut matched = 0;
        for check in checks {
            match check.await.unwrap() {
                Ok(true) => matched += 1,
                Ok(false) => panic!("a right password did not match"),
                Err(Busy) => refused += 1,
            }
        }
        assert!(
            matched >= 1 && refused >= 1,
            "matched {matched}, refused {refused}"
        );
    }
}
