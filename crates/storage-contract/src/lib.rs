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
//! The cases live in [`users`], [`chats`] and [`messages`]; each is a
//! `pub async fn case(db: &dyn Fixture)` that panics when the store breaks the contract.
// A failing unwrap is the clearest test failure; this crate is test code only.
#![allow(clippy::unwrap_used)]

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
        $crate::contract_tests!(@modules $harness;
            users {
                registering_returns_the_user_with_the_username_as_given,
                registering_a_username_taken_in_another_case_is_username_taken,
                registering_a_non_ascii_username_taken_in_another_case_is_username_taken,
                registering_a_look_alike_of_a_username_is_username_taken,
                a_user_stored_before_names_were_normalised_still_logs_in,
                concurrent_registrations_of_one_name_in_different_cases_admit_exactly_one,
                credentials_are_found_without_regard_to_case_beyond_ascii,
                exists_is_false_for_an_unknown_id,
                missing_names_the_unknown_ids_in_the_order_given,
                listing_pages_through_users_by_registration_time_then_id,
                registration_times_keep_microseconds,
                listing_after_an_unknown_user_is_unknown_cursor,
                a_stored_username_that_breaks_the_rules_is_unavailable_not_a_panic,
            }
            chats {
                creating_a_chat_makes_the_owner_the_first_member_then_the_members_in_order,
                creating_a_chat_with_an_unknown_member_is_unknown_user_and_stores_nothing,
                creating_a_chat_for_an_unknown_owner_is_unknown_user,
                finding_an_unknown_chat_finds_nothing,
                a_chat_is_found_with_whether_the_user_is_a_member,
                a_members_chats_are_listed_newest_first,
                adding_members_returns_only_those_newly_added_in_the_order_given,
                adding_an_unknown_user_is_unknown_user_and_adds_nobody,
                adding_to_a_deleted_chat_is_chat_gone,
                concurrent_adds_of_the_same_member_add_it_exactly_once,
                removing_members_returns_those_removed_and_ignores_strangers,
                deleting_a_chat_removes_its_members_and_messages,
                not_member_of_names_the_chats_outside_in_the_order_given,
                many_members_added_at_once_join_in_the_order_given,
            }
            messages {
                inserting_a_message_stores_it,
                repeating_a_client_msg_id_returns_the_first_message_with_false,
                concurrent_sends_with_the_same_client_msg_id_store_one_message,
                inserting_into_an_unknown_chat_is_chat_gone,
                inserting_into_a_deleted_chat_is_chat_gone,
                inserting_from_an_unknown_sender_is_unknown_user,
                inserting_from_a_non_member_is_not_member,
                history_lists_newest_first_and_pages_with_skip_limit_and_before,
                history_before_a_message_not_in_the_chat_is_unknown_cursor,
                messages_stored_at_the_same_instant_keep_their_insertion_order,
                a_burst_of_concurrent_inserts_gets_every_answer_right_and_stores_exactly_the_right_rows,
                a_chat_deleted_during_a_burst_loses_only_its_own_messages,
                messages_begun_together_by_one_caller_are_stored_in_the_order_begun,
                queued_messages_keep_the_order_queued_whatever_order_they_are_awaited_in,
                a_failing_message_neither_fails_nor_loses_the_messages_sent_with_it,
                a_failed_write_answers_unavailable_stores_nothing_unacknowledged_and_the_next_succeeds,
            }
        );
    };
    (@modules $harness:path; $($module:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $module {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        $harness(|db| async move { $crate::$module::$case(&db).await }).await;
                    }
                )*
            }
        )*
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
