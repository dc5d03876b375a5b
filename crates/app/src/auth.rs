//! Registration, login, token checks and the user list.

use std::sync::Arc;

use domain::ports::{AccessToken, PasswordHasher, TokenService, UserRepository, VerifiedToken};
use domain::{Password, PasswordPolicy, User, UserId, UserPage, Username};
use tracing::instrument;

use crate::AppError;

/// Use cases of identity: who may use the messenger, and as whom.
#[derive(Clone)]
pub struct AuthService {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenService>,
    password_policy: PasswordPolicy,
}

impl AuthService {
    /// Builds the service over its ports.
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenService>,
        password_policy: PasswordPolicy,
    ) -> Self {
        Self {
            users,
            hasher,
            tokens,
            password_policy,
        }
    }

    /// The rule new passwords must meet; adapters parse [`Password::parse_new`] with it.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.password_policy
    }

    /// Registers a user.
    ///
    /// # Errors
    /// [`AppError::UsernameTaken`] when the username is registered, without regard to case.
    #[instrument(skip_all)]
    pub async fn register(&self, username: Username, password: Password) -> Result<User, AppError> {
        let hash = self.hasher.hash(&password).await?;
        let user = self.users.create(&username, &hash).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// Logs a user in with what the client offered. Every failure, including input that
    /// could never be valid, is the same [`AppError::InvalidCredentials`], and an unknown
    /// username costs a password verification just as a known one does, so neither the
    /// answer nor its timing tells whether the user exists.
    ///
    /// # Errors
    /// [`AppError::InvalidCredentials`] for any failed login.
    #[instrument(skip_all)]
    pub async fn login(&self, username: &str, password: &str) -> Result<AccessToken, AppError> {
        // Only the rules every stored name has met: names registered before a rule was
        // tightened must still log in.
        let (Ok(username), Ok(password)) = (
            Username::parse_existing(username),
            Password::parse_offered(password),
        ) else {
            return Err(AppError::InvalidCredentials);
        };
        let credentials = self.users.find_credentials(&username).await?;
        let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let matches = self.hasher.verify(&password, stored_hash).await?;
        match credentials {
            Some(credentials) if matches => Ok(self.tokens.issue(credentials.user.id)?),
            _ => Err(AppError::InvalidCredentials),
        }
    }

    /// Checks an access token and that its user still exists.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] when the token is not acceptable or its user is gone.
    pub async fn authenticate(&self, token: &str) -> Result<UserId, AppError> {
        Ok(self.authenticate_until(token).await?.user)
    }

    /// Checks an access token and that its user still exists, and says until when the
    /// token is good (a socket opened with it is closed then).
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] when the token is not acceptable or its user is gone.
    pub async fn authenticate_until(&self, token: &str) -> Result<VerifiedToken, AppError> {
        let verified = self.tokens.verify(token)?;
        if self.users.exists(verified.user).await? {
            Ok(verified)
        } else {
            Err(AppError::Unauthenticated)
        }
    }

    /// One page of all users.
    ///
    /// # Errors
    /// [`AppError::Invalid`] on field `after` when it names no user.
    #[instrument(skip_all)]
    pub async fn list_users(&self, page: UserPage) -> Result<Vec<User>, AppError> {
        self.users.list(page).await.map_err(|err| match err {
            domain::StoreError::UnknownCursor => {
                AppError::Invalid(domain::InvalidInput::new("after", "names no user"))
            }
            other => other.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::ports::{
        AccessToken, MockPasswordHasher, MockTokenService, MockUserRepository, TokenError,
    };
    use domain::{Limit, PasswordHash, StoreError, UserCredentials};
    use mockall::predicate::eq;

    use super::*;
    use crate::test_support::{user, user_id};

    fn service(
        users: MockUserRepository,
        hasher: MockPasswordHasher,
        tokens: MockTokenService,
    ) -> AuthService {
        AuthService::new(
            Arc::new(users),
            Arc::new(hasher),
            Arc::new(tokens),
            PasswordPolicy::default(),
        )
    }

    fn token() -> AccessToken {
        AccessToken {
            token: "signed".into(),
            expires_in: 900,
        }
    }

    #[tokio::test]
    async fn register_stores_the_hash_never_the_password() {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$hash")));
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|name, hash| name.as_str() == "alice" && hash.as_str() == "$argon2id$hash")
            .returning(|_, _| Ok(user(1, "alice")));
        let auth = service(users, hasher, MockTokenService::new());

        let created = auth
            .register(
                Username::parse("alice").unwrap(),
                Password::parse_offered("password1").unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(created.username.as_str(), "alice");
    }

    #[tokio::test]
    async fn register_reports_a_taken_username_as_conflict() {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h")));
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .returning(|_, _| Err(StoreError::UsernameTaken));
        let auth = service(users, hasher, MockTokenService::new());

        let err = auth
            .register(
                Username::parse("Alice").unwrap(),
                Password::parse_offered("password1").unwrap(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::UsernameTaken));
    }

    #[tokio::test]
    async fn login_with_the_right_password_issues_a_token() {
        let mut users = MockUserRepository::new();
        users.expect_find_credentials().returning(|_| {
            Ok(Some(UserCredentials {
                user: user(1, "alice"),
                password_hash: PasswordHash::new("h"),
            }))
        });
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify()
            .withf(|_, hash| hash.is_some())
            .returning(|_, _| Ok(true));
        let mut tokens = MockTokenService::new();
        tokens
            .expect_issue()
            .with(eq(user_id(1)))
            .returning(|_| Ok(token()));
        let auth = service(users, hasher, tokens);

        assert_eq!(auth.login("ALICE", "password1").await.unwrap(), token());
    }

    #[tokio::test]
    async fn login_with_a_wrong_password_is_invalid_credentials() {
        let mut users = MockUserRepository::new();
        users.expect_find_credentials().returning(|_| {
            Ok(Some(UserCredentials {
                user: user(1, "alice"),
                password_hash: PasswordHash::new("h"),
            }))
        });
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().returning(|_, _| Ok(false));
        let auth = service(users, hasher, MockTokenService::new());

        assert!(matches!(
            auth.login("alice", "wrong-pass").await,
            Err(AppError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn login_for_an_unknown_user_still_verifies_a_password_and_gives_the_same_error() {
        let mut users = MockUserRepository::new();
        users.expect_find_credentials().returning(|_| Ok(None));
        let mut hasher = MockPasswordHasher::new();
        // The dummy verification is what keeps the timing equal; it must happen.
        hasher
            .expect_verify()
            .withf(|_, hash| hash.is_none())
            .times(1)
            .returning(|_, _| Ok(false));
        let auth = service(users, hasher, MockTokenService::new());

        assert!(matches!(
            auth.login("nobody", "password1").await,
            Err(AppError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn login_with_impossible_input_is_invalid_credentials_without_touching_storage() {
        let auth = service(
            MockUserRepository::new(),
            MockPasswordHasher::new(),
            MockTokenService::new(),
        );
        assert!(matches!(
            auth.login("a b", "password1").await,
            Err(AppError::InvalidCredentials)
        ));
        assert!(matches!(
            auth.login("alice", "").await,
            Err(AppError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn a_valid_token_of_an_existing_user_authenticates() {
        let mut tokens = MockTokenService::new();
        let verified = VerifiedToken {
            user: user_id(7),
            expires_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(30_000),
        };
        tokens.expect_verify().returning(move |_| Ok(verified));
        let mut users = MockUserRepository::new();
        users
            .expect_exists()
            .with(eq(user_id(7)))
            .returning(|_| Ok(true));
        let auth = service(users, MockPasswordHasher::new(), tokens);
        assert_eq!(auth.authenticate_until("t").await.unwrap(), verified);
        assert_eq!(auth.authenticate("t").await.unwrap(), user_id(7));
    }

    #[tokio::test]
    async fn a_token_of_a_deleted_user_is_refused() {
        let mut tokens = MockTokenService::new();
        tokens.expect_verify().returning(|_| {
            Ok(VerifiedToken {
                user: user_id(7),
                expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            })
        });
        let mut users = MockUserRepository::new();
        users.expect_exists().returning(|_| Ok(false));
        let auth = service(users, MockPasswordHasher::new(), tokens);
        assert!(matches!(
            auth.authenticate("t").await,
            Err(AppError::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn an_invalid_token_is_refused_without_a_lookup() {
        let mut tokens = MockTokenService::new();
        tokens
            .expect_verify()
            .returning(|_| Err(TokenError::Invalid));
        let auth = service(MockUserRepository::new(), MockPasswordHasher::new(), tokens);
        assert!(matches!(
            auth.authenticate("t").await,
            Err(AppError::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn listing_users_after_an_unknown_user_is_invalid_input_on_after() {
        let mut users = MockUserRepository::new();
        users
            .expect_list()
            .returning(|_| Err(StoreError::UnknownCursor));
        let auth = service(users, MockPasswordHasher::new(), MockTokenService::new());
        let page = UserPage {
            limit: Limit::parse(None, 100, 1000, "limit").unwrap(),
            after: Some(user_id(3)),
        };
        match auth.list_users(page).await {
            Err(AppError::Invalid(e)) => assert_eq!(e.field(), "after"),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_storage_failure_is_internal() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_credentials()
            .returning(|_| Err(StoreError::unavailable(std::io::Error::other("down"))));
        let auth = service(users, MockPasswordHasher::new(), MockTokenService::new());
        assert!(matches!(
            auth.login("alice", "password1").await,
            Err(AppError::Internal(_))
        ));
    }
}
