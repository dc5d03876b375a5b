//! The move's use case against an in-memory source and sink (a fake sink that keeps
//! rows by key, as the stores do) and mockall mocks where a call must not happen.

use std::sync::Mutex;

use async_trait::async_trait;
use domain::{Chat, Message, StoreError, UserCredentials, UserId};
use futures_util::stream::{self, BoxStream};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use crate::ports::{MockSink, Silent};
use crate::{
    ImportError, Membership, Options, Problem, ProblemKind, Progress, Row, Sink, Source,
    SourceChat, SourceCounts, SourceError, SourceMember, SourceMessage, SourceUser, Stage, run,
};

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn at(seconds: i64) -> OffsetDateTime {
    datetime!(2024-01-01 00:00 UTC) + time::Duration::seconds(seconds)
}

/// A source held in memory, in the orders the port promises.
#[derive(Default, Clone)]
struct Memory {
    users: Vec<SourceUser>,
    chats: Vec<SourceChat>,
    members: Vec<SourceMember>,
    messages: Vec<SourceMessage>,
}

#[async_trait]
impl Source for Memory {
    async fn counts(&self) -> Result<SourceCounts, SourceError> {
        Ok(SourceCounts {
            users: self.users.len() as u64,
            chats: self.chats.len() as u64,
            members: self.members.len() as u64,
            messages: self.messages.len() as u64,
        })
    }
    async fn users(&self) -> Result<Vec<SourceUser>, SourceError> {
        Ok(self.users.clone())
    }
    async fn chats(&self) -> Result<Vec<SourceChat>, SourceError> {
        Ok(self.chats.clone())
    }
    async fn members(&self) -> Result<Vec<SourceMember>, SourceError> {
        Ok(self.members.clone())
    }
    fn messages(&self) -> BoxStream<'_, Result<SourceMessage, SourceError>> {
        Box::pin(stream::iter(self.messages.iter().cloned().map(Ok)))
    }
    fn ties_ordered_by_id(&self) -> bool {
        true
    }
}

/// A sink that keeps rows by key and stores only new ones, as the stores do; it can be
/// told to fail at its n-th message batch (an interruption).
#[derive(Default)]
struct Kept {
    users: Mutex<Vec<UserCredentials>>,
    chats: Mutex<Vec<Chat>>,
    members: Mutex<Vec<Membership>>,
    messages: Mutex<Vec<Message>>,
    /// Names held by users not from the source: (key, id).
    others: Vec<(String, UserId)>,
    fail_at_message_batch: Mutex<Option<usize>>,
}

/// Appends the rows of `new` whose key `key` is not among `kept`; how many.
fn keep<T: Clone, K: PartialEq>(kept: &Mutex<Vec<T>>, new: &[T], key: impl Fn(&T) -> K) -> u64 {
    let mut kept = kept.lock().unwrap();
    let mut stored = 0;
    for row in new {
        if !kept.iter().any(|k| key(k) == key(row)) {
            kept.push(row.clone());
            stored += 1;
        }
    }
    stored
}

#[async_trait]
impl Sink for Kept {
    async fn username_owners(&self, keys: &[String]) -> Result<Vec<(String, UserId)>, StoreError> {
        let users = self.users.lock().unwrap();
        let stored = users.iter().map(|u| (u.user.username.folded(), u.user.id));
        Ok(stored
            .chain(self.others.iter().cloned())
            .filter(|(key, _)| keys.contains(key))
            .collect())
    }
    async fn load_users(&self, users: &[UserCredentials]) -> Result<u64, StoreError> {
        Ok(keep(&self.users, users, |u| u.user.id))
    }
    async fn load_chats(&self, chats: &[Chat]) -> Result<u64, StoreError> {
        Ok(keep(&self.chats, chats, |c| c.id))
    }
    async fn load_members(&self, members: &[Membership]) -> Result<u64, StoreError> {
        Ok(keep(&self.members, members, |m| (m.chat_id, m.user_id)))
    }
    async fn load_messages(&self, messages: &[Message]) -> Result<u64, StoreError> {
        let mut fail = self.fail_at_message_batch.lock().unwrap();
        match fail.as_mut() {
            Some(0) => {
                *fail = None;
                return Err(StoreError::unavailable(std::io::Error::other("killed")));
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Ok(keep(&self.messages, messages, |m| m.id))
    }
}

/// Problems told, in order.
#[derive(Default)]
struct Told(Mutex<Vec<Problem>>);

impl Progress for Told {
    fn start(&self, _stage: Stage, _total: u64) {}
    fn advance(&self, _rows: u64) {}
    fn finish(&self) {}
    fn problem(&self, problem: &Problem) {
        self.0.lock().unwrap().push(problem.clone());
    }
}

impl Told {
    fn kinds(&self) -> Vec<(Row, ProblemKind)> {
        let told = self.0.lock().unwrap();
        told.iter().map(|p| (p.row, p.kind.clone())).collect()
    }
}

fn user(n: u128, name: &str, seconds: i64) -> SourceUser {
    SourceUser {
        id: id(n),
        username: name.to_owned(),
        password_hash: format!("$argon2id$v=19$m=65536,t=3,p=4$salt{n}$hash"),
        created_at: at(seconds),
    }
}

fn message(n: u128, chat: u128, sender: u128, content: &str, seconds: i64) -> SourceMessage {
    SourceMessage {
        id: id(n),
        chat_id: id(chat),
        sender_id: id(sender),
        content: content.to_owned(),
        client_msg_id: None,
        created_at: at(seconds),
    }
}

/// Two users equal but for case, a chat whose owner has no membership row, a member
/// who has since left, and messages: one blank, one too long, two sharing a timestamp.
fn awkward() -> Memory {
    Memory {
        users: vec![
            user(1, "bob@example.com", 0),
            user(2, "Bob@example.com", 1),
            user(3, "x y", 2),
        ],
        chats: vec![SourceChat {
            id: id(10),
            owner_id: id(1),
            name: "  team ".to_owned(),
            created_at: at(5),
        }],
        members: vec![SourceMember {
            chat_id: id(10),
            user_id: id(2),
            joined_at: at(6),
        }],
        messages: vec![
            message(100, 10, 1, "hello", 10),
            message(102, 10, 2, "same instant, greater id", 11),
            message(101, 10, 2, "same instant", 11),
            message(103, 10, 3, "  ", 12),
            message(104, 10, 1, &"z".repeat(5000), 13),
        ],
    }
}

fn options(batch_size: usize) -> Options {
    Options {
        batch_size,
        ..Options::default()
    }
}

#[tokio::test]
async fn every_rule_is_applied_and_every_changed_row_is_reported() {
    let (source, sink, told) = (awkward(), Kept::default(), Told::default());

    let report = run(&source, &sink, &told, options(2)).await.unwrap();

    let names: Vec<String> = sink
        .users
        .lock()
        .unwrap()
        .iter()
        .map(|u| u.user.username.to_string())
        .collect();
    assert_eq!(names, ["bob@example.com", "Bob@example.com#2", "x_y"]);
    let chat = sink.chats.lock().unwrap()[0].clone();
    assert_eq!(chat.name.as_str(), "team");
    // The owner is added as the first member, joined when the chat was made.
    let members: Vec<(UserId, OffsetDateTime)> = sink
        .members
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.user_id, m.joined_at))
        .collect();
    assert_eq!(
        members,
        [
            (UserId::from_uuid(id(1)), at(5)),
            (UserId::from_uuid(id(2)), at(6))
        ]
    );
    // History order is the source's: ties by id, a long message as consecutive parts.
    let stored: Vec<(Uuid, usize)> = sink
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.id.as_uuid(), m.content.as_str().chars().count()))
        .collect();
    assert_eq!(stored.len(), 6);
    assert_eq!(
        stored[..4].iter().map(|s| s.0).collect::<Vec<_>>(),
        [id(100), id(102), id(101), id(103)]
    );
    assert_eq!(
        (stored[4].0, stored[4].1, stored[5].1),
        (id(104), 4096, 904)
    );

    let kinds = told.kinds();
    assert!(
        matches!(&kinds[0], (Row::User(u), ProblemKind::UsernameCaseTwin { twin, renamed, .. })
        if *u == id(2) && *twin == id(1) && renamed == "Bob@example.com#2")
    );
    assert!(
        matches!(&kinds[1], (Row::User(u), ProblemKind::UsernameInvalid { renamed, .. }) if *u == id(3) && renamed == "x_y")
    );
    assert!(matches!(
        &kinds[2],
        (Row::Chat(_), ProblemKind::ChatNameTrimmed { .. })
    ));
    assert!(
        matches!(&kinds[3], (Row::Chat(_), ProblemKind::OwnerNotMember { owner }) if *owner == id(1))
    );
    assert!(
        matches!(&kinds[4], (Row::Message(m), ProblemKind::SharedTimestamp { after, .. }) if *m == id(101) && *after == id(102))
    );
    assert!(
        matches!(&kinds[5], (Row::Message(m), ProblemKind::ContentBlank { .. }) if *m == id(103))
    );
    assert!(
        matches!(&kinds[6], (Row::Message(m), ProblemKind::ContentTooLong { parts, .. }) if *m == id(104) && parts.len() == 2)
    );
    assert_eq!(kinds.len(), 7);

    assert_eq!((report.users.read, report.users.stored), (3, 3));
    assert_eq!((report.members.read, report.members.planned), (1, 2));
    assert_eq!(
        (
            report.messages.read,
            report.messages.planned,
            report.messages.stored
        ),
        (5, 6, 6)
    );
    assert_eq!(report.problems, 7);
    // User 3 was never a member of the chat; user 2 is.
    assert_eq!(report.from_former_members, 1);
}

#[tokio::test]
async fn a_second_run_stores_nothing_new_and_names_everyone_the_same() {
    let (source, sink) = (awkward(), Kept::default());
    run(&source, &sink, &Silent, options(2)).await.unwrap();
    let first: Vec<String> = sink
        .users
        .lock()
        .unwrap()
        .iter()
        .map(|u| u.user.username.to_string())
        .collect();

    let again = run(&source, &sink, &Silent, options(2)).await.unwrap();

    assert_eq!(
        again.users.stored + again.chats.stored + again.members.stored + again.messages.stored,
        0
    );
    assert_eq!(again.messages.already_there(), 6);
    let second: Vec<String> = sink
        .users
        .lock()
        .unwrap()
        .iter()
        .map(|u| u.user.username.to_string())
        .collect();
    assert_eq!(first, second);
}

#[tokio::test]
async fn an_interrupted_run_goes_on_where_it_stopped_with_nothing_twice_or_lost() {
    let source = awkward();
    let sink = Kept {
        fail_at_message_batch: Mutex::new(Some(1)),
        ..Kept::default()
    };

    let one_writer = Options {
        writers: 1,
        ..options(2)
    };
    let interrupted = run(&source, &sink, &Silent, one_writer).await;
    assert!(matches!(interrupted, Err(ImportError::Store(_))));
    assert_eq!(
        sink.messages.lock().unwrap().len(),
        2,
        "the first batch stays stored"
    );

    let resumed = run(&source, &sink, &Silent, one_writer).await.unwrap();
    assert_eq!(resumed.messages.stored, 4);
    let ids: Vec<Uuid> = sink
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.id.as_uuid())
        .collect();
    assert_eq!(ids[..4], [id(100), id(102), id(101), id(103)]);
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn a_name_held_by_another_user_of_the_target_moves_the_imported_user_aside() {
    let source = Memory {
        users: vec![user(1, "alice", 0)],
        ..Memory::default()
    };
    let sink = Kept {
        others: vec![
            ("alice".to_owned(), UserId::from_uuid(id(99))),
            ("alice#2".to_owned(), UserId::from_uuid(id(98))),
        ],
        ..Kept::default()
    };
    let told = Told::default();

    run(&source, &sink, &told, options(10)).await.unwrap();

    assert_eq!(
        sink.users.lock().unwrap()[0].user.username.as_str(),
        "alice#3"
    );
    assert!(
        matches!(&told.kinds()[0].1, ProblemKind::UsernameTaken { username, renamed } if username == "alice" && renamed == "alice#3")
    );
    // Again: the user now holds its own name, so nothing moves.
    let again = Told::default();
    run(&source, &sink, &again, options(10)).await.unwrap();
    assert!(
        matches!(&again.kinds()[0].1, ProblemKind::UsernameTaken { renamed, .. } if renamed == "alice#3")
    );
}

fn with_a_long_chat_name() -> Memory {
    let mut source = awkward();
    source.chats[0].name = "n".repeat(300);
    source
}

/// A sink that answers name look-ups and must store nothing.
fn sink_that_must_store_nothing() -> MockSink {
    let mut sink = MockSink::new();
    sink.expect_username_owners().returning(|_| Ok(Vec::new()));
    sink.expect_load_users().never();
    sink.expect_load_chats().never();
    sink.expect_load_members().never();
    sink.expect_load_messages().never();
    sink
}

#[tokio::test]
async fn a_rule_that_loses_text_refuses_the_move_before_anything_is_stored() {
    let told = Told::default();

    let refused = run(
        &with_a_long_chat_name(),
        &sink_that_must_store_nothing(),
        &told,
        options(2),
    )
    .await;

    assert!(matches!(refused, Err(ImportError::Lossy(1))));
    assert!(told.kinds().iter().any(|(_, kind)| kind.is_lossy()));
}

#[tokio::test]
async fn a_rule_that_loses_text_is_applied_when_accepted() {
    let sink = Kept::default();
    let accepted = Options {
        accept_lossy: true,
        ..options(2)
    };

    let report = run(&with_a_long_chat_name(), &sink, &Silent, accepted)
        .await
        .unwrap();

    assert_eq!(report.lossy, 1);
    assert_eq!(
        sink.chats.lock().unwrap()[0].name.as_str().chars().count(),
        100
    );
}

#[tokio::test]
async fn a_dry_run_reports_everything_and_stores_nothing() {
    let told = Told::default();
    let dry = Options {
        dry_run: true,
        ..options(2)
    };

    let report = run(
        &with_a_long_chat_name(),
        &sink_that_must_store_nothing(),
        &told,
        dry,
    )
    .await
    .unwrap();

    assert!(report.dry_run);
    assert_eq!((report.messages.planned, report.messages.stored), (6, 0));
    assert_eq!(report.problems, told.kinds().len() as u64);
    assert_eq!(report.lossy, 1);
}

#[tokio::test]
async fn a_message_of_a_chat_the_source_does_not_have_stops_the_move_naming_it() {
    let mut source = awkward();
    source.messages.push(message(200, 77, 1, "lost", 20));

    let failed = run(&source, &Kept::default(), &Silent, options(100)).await;

    assert!(
        matches!(failed, Err(ImportError::Unimportable { row: Row::Message(m), .. }) if m == id(200))
    );
}

#[tokio::test]
async fn batches_stored_at_once_keep_each_chat_in_order_also_when_one_fails() {
    // Chats 10 and 11 go to different writers; their messages interleave in the source.
    let mut source = awkward();
    source.chats.push(SourceChat {
        id: id(11),
        owner_id: id(1),
        name: "other".to_owned(),
        created_at: at(5),
    });
    source.messages = (0..12)
        .map(|i| message(300 + i, 10 + i % 2, 1, &format!("m{i}"), 40 + i as i64))
        .collect();
    let sink = Kept {
        // The first batch of the second round fails; its twin in that round is stored.
        fail_at_message_batch: Mutex::new(Some(2)),
        ..Kept::default()
    };
    let parallel = Options {
        writers: 2,
        ..options(2)
    };

    assert!(run(&source, &sink, &Silent, parallel).await.is_err());
    run(&source, &sink, &Silent, parallel).await.unwrap();

    let stored = sink.messages.lock().unwrap().clone();
    assert_eq!(stored.len(), 12);
    for chat in [10, 11] {
        let order: Vec<Uuid> = stored
            .iter()
            .filter(|m| m.chat_id.as_uuid() == id(chat))
            .map(|m| m.id.as_uuid())
            .collect();
        let expected: Vec<Uuid> = (0..12)
            .filter(|i| 10 + i % 2 == chat)
            .map(|i| id(300 + i))
            .collect();
        assert_eq!(order, expected, "chat {chat} out of order");
    }
}
