//! Password hashing with argon2id (PHC strings), run on the blocking pool so that the
//! async workers never stall on tens of milliseconds of CPU.

use std::sync::Arc;

use argon2::password_hash::{self, phc};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use domain::ports::{HashError, PasswordHasher};
use domain::user::{Password, PasswordHash};

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
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = hash_with(&argon2, DUMMY_PASSWORD)?;
        Ok(Self {
            inner: Arc::new(Inner { argon2, dummy }),
        })
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    #[tracing::instrument(skip_all)]
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let inner = Arc::clone(&self.inner);
        let password = password.clone();
        on_blocking_pool(move || hash_with(&inner.argon2, password.expose())).await
    }

    #[tracing::instrument(skip_all, fields(known_user = hash.is_some()))]
    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<bool, HashError> {
        let inner = Arc::clone(&self.inner);
        let password = password.clone();
        on_blocking_pool(move || match hash {
            Some(hash) => check(&inner.argon2, password.expose(), &hash),
            // Same work as a real check, then `false` whatever it found.
            None => check(&inner.argon2, password.expose(), &inner.dummy).map(|_| false),
        })
        .await
    }
}

/// Runs CPU-heavy work on tokio's blocking pool.
async fn on_blocking_pool<T, F>(work: F) -> Result<T, HashError>
where
    F: FnOnce() -> Result<T, HashError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HashError(format!("hashing task failed: {e}")))?
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
}
