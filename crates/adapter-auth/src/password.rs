//! Password hashing with argon2id (PHC strings), run on the blocking pool so that the
//! async workers never stall on tens of milliseconds of CPU, and a few at a time so that
//! a burst of logins can neither take every core from message delivery nor make the
//! server's memory grow by 19 MiB per concurrent hash.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{self, phc};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use domain::ports::{HashError, PasswordHasher};
use domain::user::{Password, PasswordHash};
use tokio::sync::Semaphore;

/// What the dummy hash is a hash of. Its value does not matter: a check against the
/// dummy answers `false` whatever the outcome.
const DUMMY_PASSWORD: &str = "no user has this password; it only makes timing even";

/// The argon2id [`PasswordHasher`]. Cheap to clone (the state is shared); build it once
/// at startup, because construction hashes once.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    argon2: Argon2<'static>,
    /// A hash made with the same parameters as real ones, checked when there is no
    /// user, so that an unknown username costs as much as a wrong password.
    dummy: PasswordHash,
    /// Hashes allowed to run at once; the rest wait (asynchronously) for a turn.
    turns: Semaphore,
    /// Hashes running now, and the most that ever ran at once.
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// How many hashes may run at once by default: all cores but one, so that message
/// delivery keeps a core during a login storm (and at least one).
pub fn default_hashing_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl Argon2Hasher {
    /// A hasher with argon2id v19 and the crate's default parameters (the OWASP
    /// recommendation: 19 MiB, 2 passes, 1 lane). Hashes once, to make the dummy hash.
    ///
    /// # Errors
    /// [`HashError`] when that first hash fails (the system's RNG failed).
    pub fn new() -> Result<Self, HashError> {
        Self::with_params(Params::DEFAULT)
    }

    /// A hasher with argon2id v19 and the given parameters. Weaker than the default only
    /// for tests. Hashes once, to make the dummy hash.
    ///
    /// # Errors
    /// [`HashError`] when that first hash fails.
    pub fn with_params(params: Params) -> Result<Self, HashError> {
        Self::with_params_and_concurrency(params, default_hashing_concurrency())
    }

    /// A hasher with the given parameters that runs at most `concurrency` hashes at
    /// once (at least one). Hashes once, to make the dummy hash.
    ///
    /// # Errors
    /// [`HashError`] when that first hash fails.
    pub fn with_params_and_concurrency(
        params: Params,
        concurrency: usize,
    ) -> Result<Self, HashError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = hash_with(&argon2, DUMMY_PASSWORD)?;
        Ok(Self {
            inner: Arc::new(Inner {
                argon2,
                dummy,
                turns: Semaphore::new(concurrency.max(1)),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        })
    }

    /// The most hashes that ever ran at once in this hasher.
    pub fn peak_concurrency(&self) -> usize {
        self.inner.peak.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    #[tracing::instrument(skip_all)]
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let inner = Arc::clone(&self.inner);
        let password = password.clone();
        self.run(move || hash_with(&inner.argon2, password.expose()))
            .await
    }

    #[tracing::instrument(skip_all, fields(known_user = hash.is_some()))]
    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<bool, HashError> {
        let inner = Arc::clone(&self.inner);
        let password = password.clone();
        self.run(move || match hash {
            Some(hash) => check(&inner.argon2, password.expose(), &hash),
            // Same work as a real check, then `false` whatever it found.
            None => check(&inner.argon2, password.expose(), &inner.dummy).map(|_| false),
        })
        .await
    }
}

impl Argon2Hasher {
    /// Runs CPU-heavy work on tokio's blocking pool once a turn is free.
    async fn run<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let _turn = self
            .inner
            .turns
            .acquire()
            .await
            .map_err(|e| HashError(format!("hashing is shut down: {e}")))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let now = inner.running.fetch_add(1, Ordering::Relaxed) + 1;
            inner.peak.fetch_max(now, Ordering::Relaxed);
            let result = work();
            inner.running.fetch_sub(1, Ordering::Relaxed);
            result
        })
        .await
        .map_err(|e| HashError(format!("hashing task failed: {e}")))?
    }
}

/// Hashes `password` with a fresh random salt into a PHC string.
fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<PasswordHash, HashError> {
    let phc: phc::PasswordHash = argon2
        .hash_password(password.as_bytes())
        .map_err(|e| HashError(e.to_string()))?;
    Ok(PasswordHash::new(phc.to_string()))
}

/// Whether `password` matches `hash`, using the algorithm and parameters the hash names.
fn check(argon2: &Argon2<'_>, password: &str, hash: &PasswordHash) -> Result<bool, HashError> {
    let parsed = phc::PasswordHash::new(hash.as_str())
        .map_err(|e| HashError(format!("malformed stored hash: {e}")))?;
    match argon2.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(HashError(e.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The smallest parameters argon2 accepts, so that tests are fast.
    fn fast_hasher() -> Argon2Hasher {
        Argon2Hasher::with_params(Params::new(Params::MIN_M_COST, 1, 1, None).unwrap()).unwrap()
    }

    fn password(raw: &str) -> Password {
        Password::parse_offered(raw).unwrap()
    }

    #[tokio::test]
    async fn a_hashed_password_verifies() {
        let hasher = fast_hasher();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$"));
        assert!(
            hasher
                .verify(&password("correct horse"), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_wrong_password_does_not_verify() {
        let hasher = fast_hasher();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(
            !hasher
                .verify(&password("correct horsE"), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn verifying_without_a_hash_answers_false() {
        let hasher = fast_hasher();
        assert!(!hasher.verify(&password("anything"), None).await.unwrap());
    }

    #[tokio::test]
    async fn verifying_without_a_hash_answers_false_even_for_the_dummy_password() {
        // The dummy check runs, matches, and is still ignored.
        let hasher = fast_hasher();
        let dummy = hasher.inner.dummy.clone();
        assert!(
            hasher
                .verify(&password(DUMMY_PASSWORD), Some(dummy))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&password(DUMMY_PASSWORD), None)
                .await
                .unwrap()
        );
    }

    /// Algorithm, version and cost parameters of a PHC string.
    fn cost_of(hash: &PasswordHash) -> (String, Option<u32>, u32, u32, u32) {
        let parsed = phc::PasswordHash::new(hash.as_str()).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        (
            parsed.algorithm.as_str().to_owned(),
            parsed.version,
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
        )
    }

    #[tokio::test]
    async fn the_dummy_hash_costs_what_a_real_hash_costs() {
        // An unknown user's check runs argon2 on the dummy, so it costs the same as a
        // real check only if the dummy was made with the same algorithm and parameters.
        let params = Params::new(Params::MIN_M_COST * 2, 2, 1, None).unwrap();
        let hasher = Argon2Hasher::with_params(params).unwrap();
        let real = hasher.hash(&password("a real one")).await.unwrap();
        let dummy = cost_of(&hasher.inner.dummy);
        assert_eq!(dummy, cost_of(&real));
        assert_eq!(
            dummy,
            (
                "argon2id".to_owned(),
                Some(19),
                Params::MIN_M_COST * 2,
                2,
                1
            )
        );
    }

    #[test]
    fn the_default_hasher_uses_the_owasp_parameters() {
        let hasher = Argon2Hasher::new().unwrap();
        assert_eq!(
            cost_of(&hasher.inner.dummy),
            ("argon2id".to_owned(), Some(19), 19 * 1024, 2, 1)
        );
    }

    #[tokio::test]
    async fn two_hashes_of_the_same_password_differ() {
        let hasher = fast_hasher();
        let first = hasher.hash(&password("same")).await.unwrap();
        let second = hasher.hash(&password("same")).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_is_an_error() {
        let hasher = fast_hasher();
        for stored in ["", "not a phc string", "$argon2id$v=19$m=8,t=1,p=1$%%%$%%%"] {
            let result = hasher
                .verify(&password("anything"), Some(PasswordHash::new(stored)))
                .await;
            assert!(result.is_err(), "{stored:?} was accepted");
        }
    }

    #[tokio::test]
    async fn a_hash_of_another_algorithm_is_an_error() {
        let hasher = fast_hasher();
        let bcrypt_like = PasswordHash::new("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
        assert!(
            hasher
                .verify(&password("anything"), Some(bcrypt_like))
                .await
                .is_err()
        );
    }

    /// Peak concurrency of a burst of 16 hashes through a hasher allowing `concurrency`.
    async fn peak_of_a_burst(concurrency: usize) -> usize {
        // Slow enough (tens of milliseconds a hash) that unbounded hashes would overlap.
        let params = Params::new(Params::MIN_M_COST, 1500, 1, None).unwrap();
        let hasher = Argon2Hasher::with_params_and_concurrency(params, concurrency).unwrap();
        let burst: Vec<_> = (0..16)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&password("correct horse")).await })
            })
            .collect();
        for task in burst {
            assert!(task.await.unwrap().is_ok());
        }
        hasher.peak_concurrency()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_hashes_runs_at_most_the_allowed_number_at_once() {
        let bounded = peak_of_a_burst(2).await;
        assert!((1..=2).contains(&bounded), "peak {bounded}");
        // Control: the same burst with room for all of it does overlap, so the bound
        // above is what kept it at two.
        let unbounded = peak_of_a_burst(16).await;
        assert!(unbounded > 2, "peak {unbounded}");
    }
}
