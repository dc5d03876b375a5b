//! The storage contract: the behaviour every storage adapter must show through the
//! domain's repository ports (and the app's message queue), written once and run against
//! each adapter.
//!
//! An adapter's test crate implements [`Fixture`] (a fresh, migrated, empty database per
//! test, plus a few ways to arrange and inspect rows behind the repositories' backs) and
//! a harness function that hands one to a test, then expands [`contract_tests!`] to get
//! one `#[tokio::test]` per case:
//!
//! ```text
//! storage_contract::contract_tests!(crate::support::with_db);
//! ```
//!
//! The cases live in [`users`], [`chats`] and [`messages`]; each is an
//! `async fn case(db: &dyn Fixture)` that panics when the store breaks the contract,
//! named in its module's `cases!` list, which the compiler holds to the functions: a
//! case left off it is dead code, an error in this crate.
// A failing unwrap is the clearest test failure; this crate is test code only.
#![allow(clippy::unwrap_used)]
// A case left off its module's `cases!` list is never run: make it an error.
#![deny(dead_code)]

/// Lists the cases of one module of the contract, each a private
/// `async fn case(db: &dyn Fixture)` of that module. Private, so that a case left off
/// its module's list is dead code, which this crate denies: a case cannot be written
/// and then never run. Makes each listed case callable as `module::cases::case`, and
/// exports `$tests`, which [`contract_tests!`] expands into one test per case.
///
/// `$d` is a `$` token, for the exported macro's own variables.
macro_rules! cases {
    ($d:tt $module:ident => $tests:ident: $($case:ident),* $(,)?) => {
        /// Each case of this module, to run against a store.
        pub mod cases {
            $(
                #[doc = concat!("The case `", stringify!($case), "`.")]
                pub async fn $case(db: &dyn $crate::Fixture) {
                    super::$case(db).await;
                }
            )*
        }

        #[doc(hidden)]
        #[macro_export]
        macro_rules! $tests {
            ($d harness:path) => {
                mod $module {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                        async fn $case() {
                            $d harness(|db| async move {
                                $d crate::$module::cases::$case(&db).await
                            })
                            .await;
                        }
                    )*
                }
            };
        }
    };
}

pub mod chats;
pub mod messages;
pub mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use app::ports::MessageQueue;
use async_trait::async_trait;
use domain::ports::{ChatRepository, MessageRepository, UserRepository};
use domain::{
    Chat, ChatId, ChatName, ClientMsgId, HistoryPage, Limit, Message, MessageContent, MessageId,
    NewMessage, PasswordHash, User, UserId, Username,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The tables every store keeps, under the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Registered users.
    Users,
    /// Chats.
    Chats,
    /// Who is in which chat.
    ChatMembers,
    /// Messages.
    Messages,
}

impl Table {
    /// The table's name in every schema (a fixed name, safe to put into SQL).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Chats => "chats",
            Self::ChatMembers => "chat_members",
            Self::Messages => "messages",
        }
    }
}

/// One storage adapter under test, over a fresh, migrated, empty database of its own.
///
/// Besides the three repositories it offers the few direct manipulations the cases need
/// to arrange what the ports cannot (equal timestamps, a row that breaks the domain's
/// rules). Each method panics when it fails: it is test code.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The user repository under test.
    fn users(&self) -> Arc<dyn UserRepository>;
    /// The chat repository under test.
    fn chats(&self) -> Arc<dyn ChatRepository>;
    /// The message repository under test.
    fn messages(&self) -> Arc<dyn MessageRepository>;
    /// The store's queue of new messages (the app's port), under test.
    fn message_queue(&self) -> Arc<dyn MessageQueue>;

    /// How many rows `table` holds.
    async fn count(&self, table: Table) -> i64;

    /// Sets the registration time of the users with exactly these usernames to `at`.
    async fn set_registered_at(&self, usernames: &[&str], at: OffsetDateTime);

    /// Gives every stored message the creation time `at` and a fresh random id, so that
    /// neither orders them any more: only the store's own insertion order can.
    async fn scramble_messages(&self, at: OffsetDateTime);

    /// The ids of every stored message, in the order they were stored.
    async fn message_ids_in_insertion_order(&self) -> Vec<MessageId>;

    /// Stores a user row directly, bypassing the domain's validation of `username` (its
    /// key is `username` in lowercase).
    async fn insert_unvalidated_user(&self, username: &str);

    /// From now on, the database itself fails (raises an error in) any statement that
    /// stores a message whose content is [`FAILING_CONTENT`], as a full disk or a broken
    /// connection would fail a transaction: the adapter cannot tell it from those.
    async fn fail_inserts_of_failing_content(&self);
}

/// The message content that [`Fixture::fail_inserts_of_failing_content`] makes the
/// database refuse. A fixed text, safe to put into SQL.
pub const FAILING_CONTENT: &str = "this insert fails in the database";

/// Expands to one `#[tokio::test]` per contract case, in modules `users`, `chats` and
/// `messages`, each running its case through `$harness`.
///
/// `$harness` is an absolute path (`crate::support::with_db`) to an async function that
/// takes a closure `FnOnce(F) -> impl Future<Output = ()> + Send + 'static`, where `F`
/// implements [`Fixture`], calls it with a fresh fixture, and cleans up afterwards (also
/// when the test panics). The calling crate needs `tokio` (with `macros` and
/// `rt-multi-thread`) as a dev-dependency.
///
/// Every test runs on a multi-threaded runtime, so that the concurrency cases really
/// overlap.
#[macro_export]
macro_rules! contract_tests {
    ($harness:path) => {
        $crate::__users_contract_tests!($harness);
        $crate::__chats_contract_tests!($harness);
        $crate::__messages_contract_tests!($harness);
    };
}

/// Registers a user named `name` with a dummy hash.
pub async fn user(db: &dyn Fixture, name: &str) -> User {
    db.users()
        .create(
            &Username::parse(name).unwrap(),
            &PasswordHash::new("$argon2id$dummy"),
        )
        .await
        .unwrap()
}

/// Creates a chat named `name` owned by `owner` with `members`.
pub async fn chat(db: &dyn Fixture, name: &str, owner: UserId, members: &[UserId]) -> Chat {
    db.chats()
        .create(&ChatName::parse(name).unwrap(), owner, members)
        .await
        .unwrap()
}

/// Stores `content` from `sender` in `chat`, without a client id.
pub async fn send(db: &dyn Fixture, chat: ChatId, sender: UserId, content: &str) -> Message {
    let (message, stored) = db
        .messages()
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
        client_msg_id: client_msg_id.map(|id| ClientMsgId::parse(id).unwrap()),
    }
}

/// A page size, as the use cases would parse it.
pub fn limit(n: u32) -> Limit {
    Limit::parse(Some(i64::from(n)), n, 1000, "limit").unwrap()
}

/// A history page with `limit`, `skip` and `before`.
pub fn page(n: u32, skip: u32, before: Option<MessageId>) -> HistoryPage {
    HistoryPage {
        limit: limit(n),
        skip,
        before,
    }
}

/// The ids of `chat`'s members, in order of joining.
pub async fn member_ids(db: &dyn Fixture, chat: ChatId) -> Vec<UserId> {
    db.chats()
        .members(chat)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect()
}

/// A random id that names no user.
pub fn unknown_user() -> UserId {
    UserId::from_uuid(Uuid::now_v7())
}

/// A random id that names no chat.
pub fn unknown_chat() -> ChatId {
    ChatId::from_uuid(Uuid::now_v7())
}

/// A boxed future, as [`join_in_order`] takes them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `futures` concurrently, as one caller that starts several operations at once
/// would, and returns their outputs in the order given.
///
/// Every poll polls the futures in the order given, and the first poll polls each of
/// them once before any of them is polled again: so the operations begin (an insert
/// is handed to its store) in that order, while none of them has finished.
pub async fn join_in_order<T>(futures: Vec<BoxFuture<'_, T>>) -> Vec<T> {
    let mut running: Vec<Option<BoxFuture<'_, T>>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
