//! The harness: a fresh database per test, created, migrated, handed to the test, and
//! dropped afterwards, also when the test panics.

use std::future::Future;
use std::panic::resume_unwind;
use std::sync::Arc;

use adapter_postgres::PostgresStore;
use domain::ports::{ChatRepository, MessageRepository, UserRepository};
use domain::{
    Chat, ChatId, ChatName, Limit, Message, MessageContent, NewMessage, PasswordHash, User, UserId,
    Username,
};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The server tests create their databases on when `DATABASE_URL` is not set.
const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What a test gets: the store under test, and a separate pool on the same database for
/// arranging and checking rows behind the repositories' backs.
pub struct TestDb {
    pub store: PostgresStore,
    pub raw: PgPool,
    pub users: Arc<dyn UserRepository>,
    pub chats: Arc<dyn ChatRepository>,
    pub messages: Arc<dyn MessageRepository>,
}

/// The URL of the server tests create databases on.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// `url` with its database name replaced by `database`, query parameters kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{}/{database}{query}", &base[..path])
}

/// Runs `test` against a fresh, migrated database, and drops that database afterwards.
/// The test runs in its own task so that a panic in it is caught, the database dropped,
/// and the panic then resumed.
pub async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let server = server_url();
    // A generated name, so building the statement from a string is safe.
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("cannot connect to the test PostgreSQL server (set DATABASE_URL)");
    sqlx::query(AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .unwrap();

    let url = with_database(&server, &name);
    let outcome = match PostgresStore::connect(&url).await {
        Ok(store) => match PgPool::connect(&url).await {
            Ok(raw) => {
                let db = TestDb {
                    users: store.users(),
                    chats: store.chats(),
                    messages: store.messages(),
                    store: store.clone(),
                    raw: raw.clone(),
                };
                let outcome = tokio::spawn(test(db)).await;
                store.close().await;
                raw.close().await;
                outcome.map_err(|e| e.into_panic())
            }
            Err(e) => Err(Box::new(format!("cannot open the raw pool: {e}")) as _),
        },
        Err(e) => Err(Box::new(format!("PostgresStore::connect failed: {e:?}")) as _),
    };

    sqlx::query(AssertSqlSafe(format!(
        "drop database if exists {name} with (force)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();

    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

/// Registers a user named `name` with a dummy hash.
pub async fn user(db: &TestDb, name: &str) -> User {
    db.users
        .create(
            &Username::parse(name).unwrap(),
            &PasswordHash::new("$argon2id$dummy"),
        )
        .await
        .unwrap()
}

/// Creates a chat named `name` owned by `owner` with `members`.
pub async fn chat(db: &TestDb, name: &str, owner: UserId, members: &[UserId]) -> Chat {
    db.chats
        .create(&ChatName::parse(name).unwrap(), owner, members)
        .await
        .unwrap()
}

/// Stores `content` from `sender` in `chat`, without a client id.
pub async fn send(db: &TestDb, chat: ChatId, sender: UserId, content: &str) -> Message {
    let (message, stored) = db
        .messages
        .insert(&new_message(chat, sender, content, None))
        .await
        .unwrap();
    assert!(stored);
    message
}

/// A message to insert.
pub fn new_message(
    chat: ChatId,
    sender: UserId,
    content: &str,
    client_msg_id: Option<&str>,
) -> NewMessage {
    NewMessage {
        chat_id: chat,
        sender_id: sender,
        content: MessageContent::parse(content).unwrap(),
        client_msg_id: client_msg_id.map(|id| domain::ClientMsgId::parse(id).unwrap()),
    }
}

/// A page size, as the use cases would parse it.
pub fn limit(n: u32) -> Limit {
    Limit::parse(Some(i64::from(n)), n, 1000, "limit").unwrap()
}

/// A random id that names nothing stored.
pub fn unknown_user() -> UserId {
    UserId::from_uuid(Uuid::now_v7())
}

/// A random id that names no chat.
pub fn unknown_chat() -> ChatId {
    ChatId::from_uuid(Uuid::now_v7())
}

/// How many rows `table` holds (a fixed name, never client input).
pub async fn count(db: &TestDb, table: &'static str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(&db.raw)
        .await
        .unwrap()
}

#[test]
fn with_database_replaces_only_the_database_name() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
        "postgres://u:p@h/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "t1"),
        "postgres://h:5432/t1"
    );
}
