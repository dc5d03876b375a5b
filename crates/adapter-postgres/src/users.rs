//! [`UserRepository`] on PostgreSQL: the `users` table.

use async_trait::async_trait;
use domain::ports::UserRepository;
use domain::{PasswordHash, StoreError, User, UserCredentials, UserId, UserPage, Username};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{invalid_row, store_error};

/// Users as stored in PostgreSQL.
pub(crate) struct PgUserRepository {
    pool: PgPool,
}

impl PgUserRepository {
    /// A repository using `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A `users` row, without the password hash.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    created_at: OffsetDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::from_uuid(row.id),
            username: Username::parse_existing(row.username).map_err(invalid_row("user"))?,
            created_at: row.created_at,
        })
    }
}

/// A `users` row with the password hash, for login only.
#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

impl TryFrom<CredentialsRow> for UserCredentials {
    type Error = StoreError;

    fn try_from(row: CredentialsRow) -> Result<Self, StoreError> {
        Ok(UserCredentials {
            user: row.user.try_into()?,
            password_hash: PasswordHash::new(row.password_hash),
        })
    }
}

#[async_trait]
impl UserRepository for PgUserRepository {
    #[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
    async fn create(
        &self,
        username: &Username,
        password_hash: &PasswordHash,
    ) -> Result<User, StoreError> {
        // A username taken without regard to case has the same folded key and violates
        // `users_username_key_key`; a look-alike has the same skeleton and violates
        // `users_username_skeleton_key`. `store_error` turns either into
        // `UsernameTaken`: no check-then-insert race.
        let row: UserRow = sqlx::query_as(
            "insert into users (id, username, username_key, username_skeleton, password_hash)
             values ($1, $2, $3, $4, $5)
             returning id, username, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(username.as_str())
        .bind(username.folded())
        .bind(username.skeleton())
        .bind(password_hash.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        let user = User::try_from(row)?;
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        Ok(user)
    }

    #[tracing::instrument(skip_all)]
    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError> {
        // The folded keys are what the unique index holds, so these are index lookups.
        // A user registered before names were normalised holds the older key ($2),
        // preferred: it is the name as that user typed it.
        let row: Option<CredentialsRow> = sqlx::query_as(
            "select id, username, created_at, password_hash
             from users
             where username_key = $1 or username_key = $2
             order by username_key = $2 desc
             limit 1",
        )
        .bind(username.folded())
        .bind(username.folded_before_normalisation())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(UserCredentials::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn exists(&self, id: UserId) -> Result<bool, StoreError> {
        sqlx::query_scalar("select exists (select 1 from users where id = $1)")
            .bind(id.as_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)
    }

    #[tracing::instrument(skip_all, fields(count = ids.len()))]
    async fn missing(&self, ids: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(UserId::as_uuid).collect();
        let missing: Vec<Uuid> = sqlx::query_scalar(
            "select given.id
             from unnest($1::uuid[]) with ordinality as given (id, position)
             where not exists (select 1 from users where users.id = given.id)
             order by given.position",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(missing.into_iter().map(UserId::from_uuid).collect())
    }

    #[tracing::instrument(skip_all, fields(limit = page.limit.get(), after = ?page.after))]
    async fn list(&self, page: UserPage) -> Result<Vec<User>, StoreError> {
        let limit = i64::from(page.limit.get());
        let rows: Vec<UserRow> = match page.after {
            None => sqlx::query_as(
                "select id, username, created_at
                 from users
                 order by created_at, id
                 limit $1",
            )
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?,
            Some(after) => {
                // The cursor's position and the page after it, read from one snapshot.
                let mut tx = self
                    .pool
                    .begin_with("begin isolation level repeatable read, read only")
                    .await
                    .map_err(store_error)?;
                let cursor: OffsetDateTime =
                    sqlx::query_scalar("select created_at from users where id = $1")
                        .bind(after.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(store_error)?
                        .ok_or(StoreError::UnknownCursor)?;
                let rows = sqlx::query_as(
                    "select id, username, created_at
                     from users
                     where (created_at, id) > ($1, $2)
                     order by created_at, id
                     limit $3",
                )
                .bind(cursor)
                .bind(after.as_uuid())
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(store_error)?;
                tx.commit().await.map_err(store_error)?;
                rows
            }
        };
        rows.into_iter().map(User::try_from).collect()
    }
}

/// Gives every user registered before usernames had skeletons (migration
/// `0002_username_skeleton.sql`) its [`Username::skeleton`], oldest first, so that the
/// older of two look-alikes holds it. The younger keeps none, and its name and login:
/// it is logged, by id. Runs at each start; rows that already have one are not read.
///
/// # Errors
/// When the database fails.
pub(crate) async fn backfill_skeletons(pool: &PgPool) -> Result<(), sqlx::Error> {
    const BATCH: i64 = 1000;
    let mut after: Option<(OffsetDateTime, Uuid)> = None;
    loop {
        let (created_at, id) = after.unzip();
        let rows: Vec<(Uuid, String, OffsetDateTime)> = sqlx::query_as(
            "select id, username, created_at
             from users
             where username_skeleton is null
               and ($1::timestamptz is null or (created_at, id) > ($1, $2))
             order by created_at, id
             limit $3",
        )
        .bind(created_at)
        .bind(id)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = Some((last.2, last.0));
        for (id, name, _) in rows {
            let Ok(name) = Username::parse_existing(name) else {
                tracing::warn!(user_id = %id, "a stored username fails validation; not given a skeleton");
                continue;
            };
            let updated = sqlx::query(
                "update users set username_skeleton = $1
                 where id = $2 and username_skeleton is null",
            )
            .bind(name.skeleton())
            .bind(id)
            .execute(pool)
            .await;
            match updated {
                Ok(_) => {}
                Err(err)
                    if err.as_database_error().is_some_and(|db| {
                        db.constraint() == Some("users_username_skeleton_key")
                    }) =>
                {
                    tracing::warn!(
                        user_id = %id,
                        "this user's name looks like an older user's: it keeps its name and login, \
                         and no new user can take either look"
                    );
                }
                Err(err) => return Err(err),
            }
        }
    }
}
