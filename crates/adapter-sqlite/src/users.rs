//! [`UserRepository`] on SQLite: the `users` table.

use async_trait::async_trait;
use domain::ports::UserRepository;
use domain::{PasswordHash, StoreError, User, UserCredentials, UserId, UserPage, Username};
use sqlx::SqliteExecutor;
use uuid::Uuid;

use crate::error::{invalid_row, store_error};
use crate::{Pools, from_micros, json_ids, now_micros};

/// Users as stored in SQLite.
pub(crate) struct SqliteUserRepository {
    pools: Pools,
}

impl SqliteUserRepository {
    /// A repository using `pools`.
    pub(crate) fn new(pools: Pools) -> Self {
        Self { pools }
    }
}

/// A `users` row, without the password hash.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::from_uuid(row.id),
            username: Username::parse_existing(row.username).map_err(invalid_row("user"))?,
            created_at: from_micros(row.created_at)?,
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

/// Of `ids`, those that name no user, in the order given. Inside a write transaction it
/// is a check that stays true until commit.
pub(crate) async fn missing_users(
    executor: impl SqliteExecutor<'_>,
    ids: &[UserId],
) -> Result<Vec<UserId>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let missing: Vec<Uuid> = sqlx::query_scalar(
        "select unhex(given.value)
         from json_each(?1) as given
         where not exists (select 1 from users where users.id = unhex(given.value))
         order by given.key",
    )
    .bind(json_ids(ids.iter().map(UserId::as_uuid)))
    .fetch_all(executor)
    .await
    .map_err(store_error)?;
    Ok(missing.into_iter().map(UserId::from_uuid).collect())
}

#[async_trait]
impl UserRepository for SqliteUserRepository {
    #[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
    async fn create(
        &self,
        username: &Username,
        password_hash: &PasswordHash,
    ) -> Result<User, StoreError> {
        let mut tx = self.pools.write().await?;
        // A username taken without regard to case has the same folded key, a look-alike
        // the same skeleton: the insert then conflicts with one of the two unique
        // indexes, does nothing and returns no row. The write lock rules out a race.
        let row: Option<UserRow> = sqlx::query_as(
            "insert into users (id, username, username_key, username_skeleton, password_hash, created_at)
             values (?1, ?2, ?3, ?4, ?5, ?6)
             on conflict do nothing
             returning id, username, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(username.as_str())
        .bind(username.folded())
        .bind(username.skeleton())
        .bind(password_hash.as_str())
        .bind(now_micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let user = User::try_from(row.ok_or(StoreError::UsernameTaken)?)?;
        tx.commit().await.map_err(store_error)?;
        tracing::Span::current().record("user_id", tracing::field::display(user.id));
        Ok(user)
    }

    #[tracing::instrument(skip_all)]
    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<UserCredentials>, StoreError> {
        // The folded keys are what the unique index holds, so these are index lookups.
        // A user registered before names were normalised holds the older key (?2),
        // preferred: it is the name as that user typed it.
        let row: Option<CredentialsRow> = sqlx::query_as(
            "select id, username, created_at, password_hash
             from users
             where username_key = ?1 or username_key = ?2
             order by username_key = ?2 desc
             limit 1",
        )
        .bind(username.folded())
        .bind(username.folded_before_normalisation())
        .fetch_optional(self.pools.read())
        .await
        .map_err(store_error)?;
        row.map(UserCredentials::try_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn exists(&self, id: UserId) -> Result<bool, StoreError> {
        sqlx::query_scalar("select exists (select 1 from users where id = ?1)")
            .bind(id.as_uuid())
            .fetch_one(self.pools.read())
            .await
            .map_err(store_error)
    }

    #[tracing::instrument(skip_all, fields(count = ids.len()))]
    async fn missing(&self, ids: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        missing_users(self.pools.read(), ids).await
    }

    #[tracing::instrument(skip_all, fields(limit = page.limit.get(), after = ?page.after))]
    async fn list(&self, page: UserPage) -> Result<Vec<User>, StoreError> {
        let limit = i64::from(page.limit.get());
        let rows: Vec<UserRow> = match page.after {
            None => sqlx::query_as(
                "select id, username, created_at
                 from users
                 order by created_at, id
                 limit ?1",
            )
            .bind(limit)
            .fetch_all(self.pools.read())
            .await
            .map_err(store_error)?,
            Some(after) => {
                // The cursor's position and the page after it, read from one snapshot
                // (a read transaction sees the database as of its first read).
                let mut tx = self.pools.read().begin().await.map_err(store_error)?;
                let cursor: i64 = sqlx::query_scalar("select created_at from users where id = ?1")
                    .bind(after.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?
                    .ok_or(StoreError::UnknownCursor)?;
                let rows = sqlx::query_as(
                    "select id, username, created_at
                     from users
                     where (created_at, id) > (?1, ?2)
                     order by created_at, id
                     limit ?3",
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
/// older of two look-alikes holds it (`update or ignore` leaves the younger without one,
/// with its name and login; it is logged, by id). Runs at each start, on the writer;
/// rows that already have one are not read.
///
/// # Errors
/// When the database fails.
pub(crate) async fn backfill_skeletons(pools: &Pools) -> Result<(), sqlx::Error> {
    const BATCH: i64 = 1000;
    let mut after: (i64, Vec<u8>) = (i64::MIN, Vec::new());
    loop {
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "select id, username, created_at
             from users
             where username_skeleton is null and (created_at, id) > (?1, ?2)
             order by created_at, id
             limit ?3",
        )
        .bind(after.0)
        .bind(after.1.as_slice())
        .bind(BATCH)
        .fetch_all(&pools.writer)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = (last.2, last.0.as_bytes().to_vec());
        let mut tx = pools.writer.begin_with("begin immediate").await?;
        for (id, name, _) in rows {
            let Ok(name) = Username::parse_existing(name) else {
                tracing::warn!(user_id = %id, "a stored username fails validation; not given a skeleton");
                continue;
            };
            let updated = sqlx::query(
                "update or ignore users set username_skeleton = ?1
                 where id = ?2 and username_skeleton is null",
            )
            .bind(name.skeleton())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                tracing::warn!(
                    user_id = %id,
                    "this user's name looks like an older user's: it keeps its name and login, \
                     and no new user can take either look"
                );
            }
        }
        tx.commit().await?;
    }
}
