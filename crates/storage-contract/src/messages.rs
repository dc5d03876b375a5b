//! The contract of [`MessageRepository`](domain::ports::MessageRepository) and of the
//! store's [`MessageQueue`](app::ports::MessageQueue).

use std::collections::{HashMap, HashSet};

use domain::{ChatId, HistoryPage, Message, MessageId, NewMessage, StoreError, UserId};
use time::macros::datetime;
use uuid::Uuid;

use crate::{
    FAILING_CONTENT, Fixture, Table, chat, join_in_order, new_message, page, send, unknown_chat,
    unknown_user, user,
};

cases! {
    $ messages => __messages_contract_tests:
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
    left_out_messages_queued_together_each_get_their_own_answer,
}

/// The contents of a history page, in the order listed.
async fn history(db: &dyn Fixture, chat: ChatId, page: HistoryPage) -> Vec<String> {
    db.messages()
        .history(chat, page)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content.as_str().to_owned())
        .collect()
}

/// An inserted message comes back as stored, content untouched, and history lists it
/// exactly so.
async fn inserting_a_message_stores_it(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let (message, stored) = db
        .messages()
        .insert(&new_message(c.id, alice.id, " hello ", Some("k1")))
        .await
        .unwrap();
    assert!(stored);
    assert_eq!(message.chat_id, c.id);
    assert_eq!(message.sender_id, alice.id);
    assert_eq!(message.content.as_str(), " hello ");
    assert_eq!(
        message.client_msg_id.as_ref().map(|k| k.as_str()),
        Some("k1")
    );
    let listed = db
        .messages()
        .history(c.id, page(10, 0, None))
        .await
        .unwrap();
    assert_eq!(listed, vec![message]);
}

/// A sender's repeated client id in the same chat stores nothing and answers with the
/// first message; the key is per sender and per chat.
async fn repeating_a_client_msg_id_returns_the_first_message_with_false(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let c = chat(db, "c", alice.id, &[bob.id]).await;
    let other = chat(db, "other", alice.id, &[]).await;
    let messages = db.messages();

    let (first, stored) = messages
        .insert(&new_message(c.id, alice.id, "first", Some("k")))
        .await
        .unwrap();
    assert!(stored);
    let (again, stored) = messages
        .insert(&new_message(c.id, alice.id, "retry", Some("k")))
        .await
        .unwrap();
    assert!(!stored);
    assert_eq!(again, first);

    // The key is per sender and per chat; messages without one never collide.
    let (bobs, stored) = messages
        .insert(&new_message(c.id, bob.id, "b", Some("k")))
        .await
        .unwrap();
    assert!(stored);
    assert_ne!(bobs.id, first.id);
    let (elsewhere, stored) = messages
        .insert(&new_message(other.id, alice.id, "o", Some("k")))
        .await
        .unwrap();
    assert!(stored);
    assert_ne!(elsewhere.id, first.id);
    send(db, c.id, alice.id, "plain").await;
    send(db, c.id, alice.id, "plain").await;
    assert_eq!(db.count(Table::Messages).await, 5);
    assert_eq!(
        history(db, c.id, page(10, 0, None)).await,
        ["plain", "plain", "b", "first"]
    );
}

/// Two sends with the same client id racing: one is stored, both get that message.
async fn concurrent_sends_with_the_same_client_msg_id_store_one_message(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    for round in 0..20 {
        let key = format!("key{round}");
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let messages = db.messages();
                let message = new_message(c.id, alice.id, "hi", Some(&key));
                tokio::spawn(async move { messages.insert(&message).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap().unwrap());
        }
        assert_eq!(
            results.iter().filter(|(_, stored)| *stored).count(),
            1,
            "round {round}"
        );
        assert_eq!(results[0].0, results[1].0);
    }
    assert_eq!(db.count(Table::Messages).await, 20);
}

/// A chat that never existed cannot receive messages.
async fn inserting_into_an_unknown_chat_is_chat_gone(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    for client_msg_id in [Some("k"), None] {
        let err = db
            .messages()
            .insert(&new_message(unknown_chat(), alice.id, "x", client_msg_id))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ChatGone), "{err:?}");
    }
    assert_eq!(db.count(Table::Messages).await, 0);
}

/// A chat deleted since the sender checked cannot receive messages.
async fn inserting_into_a_deleted_chat_is_chat_gone(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    send(db, c.id, alice.id, "before").await;
    assert!(db.chats().delete(c.id).await.unwrap());
    let err = db
        .messages()
        .insert(&new_message(c.id, alice.id, "after", Some("k")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ChatGone), "{err:?}");
    assert_eq!(db.count(Table::Messages).await, 0);
}

/// A sender who does not exist cannot send.
async fn inserting_from_an_unknown_sender_is_unknown_user(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let err = db
        .messages()
        .insert(&new_message(c.id, unknown_user(), "x", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
    assert_eq!(db.count(Table::Messages).await, 0);
}

/// A user who is not a member of the chat cannot send to it: one who never was, and one
/// removed, even repeating the client id of a message stored while a member.
async fn inserting_from_a_non_member_is_not_member(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let c = chat(db, "c", alice.id, &[bob.id]).await;
    let (by_bob, _) = db
        .messages()
        .insert(&new_message(c.id, bob.id, "while a member", Some("k")))
        .await
        .unwrap();
    for client_msg_id in [Some("k"), None] {
        let err = db
            .messages()
            .insert(&new_message(c.id, carol.id, "x", client_msg_id))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotMember), "{err:?}");
    }
    assert_eq!(
        db.chats().remove_members(c.id, &[bob.id]).await.unwrap(),
        [bob.id]
    );
    for client_msg_id in [Some("k"), Some("new"), None] {
        let err = db
            .messages()
            .insert(&new_message(c.id, bob.id, "after removal", client_msg_id))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotMember), "{err:?}");
    }
    assert_eq!(whole_history(db, c.id).await, [by_bob]);
}

/// History is newest first, of one chat only, and pages with `skip`, `limit` and
/// `before`.
async fn history_lists_newest_first_and_pages_with_skip_limit_and_before(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let elsewhere = chat(db, "elsewhere", alice.id, &[]).await;
    let mut sent = Vec::new();
    for i in 1..=6 {
        sent.push(send(db, c.id, alice.id, &format!("m{i}")).await);
        send(db, elsewhere.id, alice.id, &format!("e{i}")).await;
    }

    assert_eq!(
        history(db, c.id, page(10, 0, None)).await,
        ["m6", "m5", "m4", "m3", "m2", "m1"]
    );
    assert_eq!(history(db, c.id, page(2, 0, None)).await, ["m6", "m5"]);
    assert_eq!(history(db, c.id, page(2, 3, None)).await, ["m3", "m2"]);
    assert!(history(db, c.id, page(2, 6, None)).await.is_empty());

    let m4 = sent[3].id;
    assert_eq!(
        history(db, c.id, page(10, 0, Some(m4))).await,
        ["m3", "m2", "m1"]
    );
    assert_eq!(history(db, c.id, page(1, 1, Some(m4))).await, ["m2"]);
    assert!(
        history(db, c.id, page(10, 0, Some(sent[0].id)))
            .await
            .is_empty()
    );
    assert!(
        history(db, unknown_chat(), page(10, 0, None))
            .await
            .is_empty()
    );
}

/// A cursor that names no message of this chat (none at all, or one of another chat) is
/// `UnknownCursor`.
async fn history_before_a_message_not_in_the_chat_is_unknown_cursor(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let elsewhere = chat(db, "elsewhere", alice.id, &[]).await;
    send(db, c.id, alice.id, "here").await;
    let foreign = send(db, elsewhere.id, alice.id, "there").await;

    for before in [MessageId::from_uuid(Uuid::now_v7()), foreign.id] {
        let err = db
            .messages()
            .history(c.id, page(10, 0, Some(before)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownCursor), "{err:?}");
    }
}

/// Messages that share a timestamp (many do, within one millisecond) still list in the
/// order they were stored, page after page.
async fn messages_stored_at_the_same_instant_keep_their_insertion_order(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    for i in 0..200 {
        send(db, c.id, alice.id, &format!("m{i}")).await;
    }
    // Many of these share a millisecond anyway; make them all share one instant, and
    // give the ids an order unrelated to insertion, so only the insertion order can
    // order them.
    db.scramble_messages(datetime!(2026-01-01 00:00:00 UTC))
        .await;
    let stored = db.message_ids_in_insertion_order().await;
    assert_eq!(stored.len(), 200);
    assert_eq!(stored.iter().collect::<HashSet<_>>().len(), 200);

    let mut listed = Vec::new();
    let mut before = None;
    loop {
        let page = db
            .messages()
            .history(c.id, page(30, 0, before))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        assert!(
            page.iter()
                .all(|m| m.created_at == datetime!(2026-01-01 00:00:00 UTC))
        );
        listed.extend(page.into_iter().map(|m| m.id));
    }
    listed.reverse();
    assert_eq!(listed, stored);
    // The contents confirm it: m0 was stored first.
    assert_eq!(history(db, c.id, page(1, 199, None)).await, ["m0"]);
}

/// The whole of a chat's history, oldest first.
async fn whole_history(db: &dyn Fixture, chat: ChatId) -> Vec<Message> {
    let mut listed = db
        .messages()
        .history(chat, page(1000, 0, None))
        .await
        .unwrap();
    listed.reverse();
    listed
}

/// The contents of `messages`, in order.
fn contents(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.content.as_str()).collect()
}

/// Several hundred inserts at once, across chats and senders, with repeated client ids,
/// messages to a deleted chat and to one that never existed, from an unknown sender and
/// from a user who is not a member: each gets its own right answer, and exactly the
/// acknowledged new messages are stored.
async fn a_burst_of_concurrent_inserts_gets_every_answer_right_and_stores_exactly_the_right_rows(
    db: &dyn Fixture,
) {
    let senders = [
        user(db, "alice").await,
        user(db, "bob").await,
        user(db, "carol").await,
    ];
    // Everyone is a member of every live chat but the last, where carol is not.
    let mut live = Vec::new();
    for i in 0..4 {
        let members = if i == 3 {
            vec![senders[1].id]
        } else {
            vec![senders[1].id, senders[2].id]
        };
        live.push(chat(db, &format!("c{i}"), senders[0].id, &members).await);
    }
    let outsider = (senders[2].id, live[3].id);
    let gone = chat(db, "gone", senders[0].id, &[]).await;
    send(db, gone.id, senders[0].id, "before").await;
    assert!(db.chats().delete(gone.id).await.unwrap());

    // Of every 20: 2 to the deleted chat, 2 from an unknown sender, 1 to a chat that
    // never existed; of the rest a third carry a client id that repeats about 8 times
    // (the key is per chat, sender and id: i mod 60), and 1 in 12 is carol's to the
    // chat she is not in. Contents that need escaping anywhere.
    let requests: Vec<NewMessage> = (0..480_usize)
        .map(|i| {
            let content = format!("m{i} \"quoted\" 'single' \\ ü 🦀 %_");
            let sender = senders[i % 3].id;
            match i % 20 {
                3 | 13 => new_message(gone.id, sender, &content, Some("k")),
                7 | 17 => new_message(live[i % 4].id, unknown_user(), &content, None),
                9 => new_message(unknown_chat(), sender, &content, Some("k")),
                _ => {
                    let key = (i % 3 == 0).then(|| format!("k{}", i % 5));
                    new_message(live[i % 4].id, sender, &content, key.as_deref())
                }
            }
        })
        .collect();
    let tasks: Vec<_> = requests
        .iter()
        .cloned()
        .map(|request| {
            let messages = db.messages();
            tokio::spawn(async move { messages.insert(&request).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let live_ids: HashSet<ChatId> = live.iter().map(|c| c.id).collect();
    let sender_ids: HashSet<UserId> = senders.iter().map(|u| u.id).collect();
    let mut firsts: HashMap<(ChatId, UserId, String), Message> = HashMap::new();
    let mut stored: Vec<Message> = Vec::new();
    let mut outsiders = 0;
    for (i, (request, answer)) in requests.iter().zip(answers).enumerate() {
        if !live_ids.contains(&request.chat_id) {
            assert!(
                matches!(answer, Err(StoreError::ChatGone)),
                "{i}: {answer:?}"
            );
            continue;
        }
        if !sender_ids.contains(&request.sender_id) {
            assert!(
                matches!(answer, Err(StoreError::UnknownUser)),
                "{i}: {answer:?}"
            );
            continue;
        }
        if (request.sender_id, request.chat_id) == outsider {
            assert!(
                matches!(answer, Err(StoreError::NotMember)),
                "{i}: {answer:?}"
            );
            outsiders += 1;
            continue;
        }
        let (message, new) = answer.unwrap();
        assert_eq!(message.chat_id, request.chat_id, "{i}");
        assert_eq!(message.sender_id, request.sender_id, "{i}");
        assert_eq!(message.client_msg_id, request.client_msg_id, "{i}");
        if new {
            assert_eq!(message.content, request.content, "{i}");
            stored.push(message.clone());
        }
        match &request.client_msg_id {
            // Every request with one key gets the same message: the one stored.
            Some(key) => {
                let first = firsts
                    .entry((request.chat_id, request.sender_id, key.as_str().to_owned()))
                    .or_insert_with(|| message.clone());
                assert_eq!(*first, message, "{i}");
            }
            None => assert!(new, "{i}"),
        }
    }
    // Carol's sends to the chat she is not in: i ≡ 11 (mod 12) and not one of the
    // failing kinds above.
    assert_eq!(outsiders, 24);
    // Exactly one stored message per key, one per message without a key, nothing else.
    let stored_with_key: HashSet<_> = stored
        .iter()
        .filter_map(|m| {
            let key = m.client_msg_id.as_ref()?;
            Some((m.chat_id, m.sender_id, key.as_str().to_owned()))
        })
        .collect();
    assert_eq!(stored_with_key, firsts.keys().cloned().collect());
    assert_eq!(
        stored.iter().filter(|m| m.client_msg_id.is_some()).count(),
        firsts.len()
    );
    assert_eq!(
        db.count(Table::Messages).await,
        i64::try_from(stored.len()).unwrap()
    );
    for c in &live {
        let mut listed = whole_history(db, c.id).await;
        let mut expected: Vec<Message> = stored
            .iter()
            .filter(|m| m.chat_id == c.id)
            .cloned()
            .collect();
        listed.sort_by_key(|m| m.id);
        expected.sort_by_key(|m| m.id);
        assert_eq!(listed, expected, "chat {}", c.name.as_str());
    }
}

/// A chat deleted while messages to it and to another chat are being stored: each of
/// its messages is either stored (and deleted with it) or `ChatGone`, and the other
/// chat's messages are all stored.
async fn a_chat_deleted_during_a_burst_loses_only_its_own_messages(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let doomed = chat(db, "doomed", alice.id, &[]).await;
    let kept = chat(db, "kept", alice.id, &[]).await;
    let mut tasks = Vec::new();
    let mut deletion = None;
    for i in 0..200 {
        let messages = db.messages();
        let to = if i % 2 == 0 { doomed.id } else { kept.id };
        let request = new_message(to, alice.id, &format!("m{i}"), Some(&format!("k{i}")));
        tasks.push((
            to,
            tokio::spawn(async move { messages.insert(&request).await }),
        ));
        if i == 100 {
            let chats = db.chats();
            deletion = Some(tokio::spawn(async move { chats.delete(doomed.id).await }));
        }
    }
    for (to, task) in tasks {
        match task.await.unwrap() {
            Ok((_, new)) => assert!(new),
            Err(StoreError::ChatGone) if to == doomed.id => {}
            Err(err) => panic!("{err:?}"),
        }
    }
    assert!(deletion.unwrap().await.unwrap().unwrap());
    assert!(whole_history(db, doomed.id).await.is_empty());
    assert_eq!(whole_history(db, kept.id).await.len(), 100);
    assert_eq!(db.count(Table::Messages).await, 100);
}

/// One caller begins many inserts at once (into two chats, some with client ids): they
/// are stored in the order they were begun, which is what keeps a chat's order when
/// sends are stored as they come.
async fn messages_begun_together_by_one_caller_are_stored_in_the_order_begun(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let a = chat(db, "a", alice.id, &[]).await;
    let b = chat(db, "b", alice.id, &[]).await;
    let requests: Vec<NewMessage> = (0..120)
        .map(|i| {
            let chat = if i % 3 == 0 { b.id } else { a.id };
            let key = (i % 2 == 0).then(|| format!("k{i}"));
            new_message(chat, alice.id, &format!("m{i}"), key.as_deref())
        })
        .collect();
    let messages = db.messages();
    let answers = join_in_order(requests.iter().map(|r| messages.insert(r)).collect()).await;

    let mut acknowledged = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let (message, new) = answer.unwrap();
        assert!(new, "{i}");
        assert_eq!(message.content.as_str(), format!("m{i}"));
        acknowledged.push(message);
    }
    assert_eq!(
        db.message_ids_in_insertion_order().await,
        acknowledged.iter().map(|m| m.id).collect::<Vec<_>>()
    );
    for c in [a.id, b.id] {
        let expected: Vec<Message> = acknowledged
            .iter()
            .filter(|m| m.chat_id == c)
            .cloned()
            .collect();
        assert_eq!(whole_history(db, c).await, expected);
    }
}

/// Messages queued one after another are stored in the order queued, even when their
/// answers are awaited the other way round: a caller may release a chat's turn as soon
/// as its message is queued. A repeated client id is answered with the message queued
/// first.
async fn queued_messages_keep_the_order_queued_whatever_order_they_are_awaited_in(
    db: &dyn Fixture,
) {
    let alice = user(db, "alice").await;
    let a = chat(db, "a", alice.id, &[]).await;
    let messages = db.message_queue();
    let mut queued = Vec::new();
    for i in 0..40 {
        let key = match i {
            7 | 30 => Some("same"),
            _ => None,
        };
        let message = new_message(a.id, alice.id, &format!("m{i}"), key);
        queued.push(messages.enqueue(&message).await.unwrap());
    }
    let mut answers = Vec::new();
    while let Some(last) = queued.pop() {
        answers.push(last.await.unwrap());
    }
    answers.reverse();

    for (i, (message, new)) in answers.iter().enumerate() {
        if i == 30 {
            assert!(!new, "the repeat of a client id was stored");
            assert_eq!(message.content.as_str(), "m7");
        } else {
            assert!(new, "{i}");
            assert_eq!(message.content.as_str(), format!("m{i}"));
        }
    }
    let stored: Vec<Message> = answers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 30)
        .map(|(_, (message, _))| message.clone())
        .collect();
    assert_eq!(
        db.message_ids_in_insertion_order().await,
        stored.iter().map(|m| m.id).collect::<Vec<_>>()
    );
    assert_eq!(whole_history(db, a.id).await, stored);
}

/// Messages to a deleted chat or to none, from an unknown sender and from a user who is
/// not a member, and repeats of a client id (of an earlier message and of one begun just before), begun together with
/// good messages: each gets its own answer, and the good ones are all stored, in order.
async fn a_failing_message_neither_fails_nor_loses_the_messages_sent_with_it(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let c = chat(db, "c", alice.id, &[bob.id]).await;
    let gone = chat(db, "gone", alice.id, &[]).await;
    assert!(db.chats().delete(gone.id).await.unwrap());
    let (earlier, _) = db
        .messages()
        .insert(&new_message(c.id, alice.id, "earlier", Some("again")))
        .await
        .unwrap();

    let messages = db.messages();
    let mut expected = vec!["earlier".to_owned()];
    for round in 0..10 {
        let key = format!("k{round}");
        let requests = [
            new_message(c.id, alice.id, &format!("{round}: first"), None),
            new_message(gone.id, alice.id, "to the deleted chat", Some(&key)),
            new_message(c.id, bob.id, &format!("{round}: keyed"), Some(&key)),
            new_message(c.id, unknown_user(), "from nobody", None),
            new_message(c.id, carol.id, "from outside", Some(&key)),
            new_message(c.id, bob.id, "keyed again", Some(&key)),
            new_message(c.id, alice.id, "earlier again", Some("again")),
            new_message(unknown_chat(), bob.id, "to nowhere", Some(&key)),
            new_message(c.id, alice.id, &format!("{round}: last"), None),
        ];
        let mut answers = join_in_order(requests.iter().map(|r| messages.insert(r)).collect())
            .await
            .into_iter();
        let mut next = || answers.next().unwrap();

        let (first, new) = next().unwrap();
        assert!(new && first.content.as_str() == format!("{round}: first"));
        assert!(matches!(next(), Err(StoreError::ChatGone)), "round {round}");
        let (keyed, new) = next().unwrap();
        assert!(new && keyed.content.as_str() == format!("{round}: keyed"));
        assert!(
            matches!(next(), Err(StoreError::UnknownUser)),
            "round {round}"
        );
        assert!(
            matches!(next(), Err(StoreError::NotMember)),
            "round {round}"
        );
        assert_eq!(next().unwrap(), (keyed, false), "round {round}");
        assert_eq!(next().unwrap(), (earlier.clone(), false), "round {round}");
        assert!(matches!(next(), Err(StoreError::ChatGone)), "round {round}");
        let (last, new) = next().unwrap();
        assert!(new && last.content.as_str() == format!("{round}: last"));
        expected.extend([
            format!("{round}: first"),
            format!("{round}: keyed"),
            format!("{round}: last"),
        ]);
    }
    assert_eq!(contents(&whole_history(db, c.id).await), expected);
    assert_eq!(db.count(Table::Messages).await, 31);
}

/// When the database fails a write, the message is `Unavailable` and not stored; so is
/// any message written together with it, and every message acknowledged is stored.
/// The store keeps working afterwards.
async fn a_failed_write_answers_unavailable_stores_nothing_unacknowledged_and_the_next_succeeds(
    db: &dyn Fixture,
) {
    let alice = user(db, "alice").await;
    let c = chat(db, "c", alice.id, &[]).await;
    db.fail_inserts_of_failing_content().await;

    let err = db
        .messages()
        .insert(&new_message(c.id, alice.id, FAILING_CONTENT, None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(db.count(Table::Messages).await, 0);
    send(db, c.id, alice.id, "after a failure").await;

    let requests: Vec<NewMessage> = (0..40)
        .map(|i| {
            let content = if i == 20 {
                FAILING_CONTENT.to_owned()
            } else {
                format!("m{i}")
            };
            new_message(c.id, alice.id, &content, Some(&format!("k{i}")))
        })
        .collect();
    let messages = db.messages();
    let answers = join_in_order(requests.iter().map(|r| messages.insert(r)).collect()).await;
    let mut expected = vec!["after a failure".to_owned()];
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok((message, new)) => {
                assert!(new && i != 20, "{i}");
                expected.push(message.content.as_str().to_owned());
            }
            Err(StoreError::Unavailable(_)) => {}
            Err(err) => panic!("{i}: {err:?}"),
        }
    }
    send(db, c.id, alice.id, "last").await;
    expected.push("last".to_owned());
    assert_eq!(contents(&whole_history(db, c.id).await), expected);
}

/// Messages queued one after another, so that the store takes many of them in one
/// batch, of which several are left out for different reasons: each gets the answer
/// for its own reason, never a neighbour's (the store explains the messages its insert
/// left out by their place among them), and the good ones are all stored, in order.
async fn left_out_messages_queued_together_each_get_their_own_answer(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let carol = user(db, "carol").await;
    let c = chat(db, "c", alice.id, &[]).await;
    let (earlier, _) = db
        .messages()
        .insert(&new_message(c.id, alice.id, "earlier", Some("again")))
        .await
        .unwrap();

    let queue = db.message_queue();
    let mut queued = Vec::new();
    for round in 0..30 {
        for request in [
            new_message(unknown_chat(), alice.id, "to nowhere", None),
            new_message(c.id, unknown_user(), "from nobody", None),
            new_message(c.id, alice.id, &format!("{round}: stored"), None),
            new_message(c.id, carol.id, "from outside", None),
            new_message(c.id, alice.id, "earlier again", Some("again")),
        ] {
            queued.push(queue.enqueue(&request).await.unwrap());
        }
    }
    let mut expected = vec!["earlier".to_owned()];
    for (i, answer) in join_in_order(queued).await.into_iter().enumerate() {
        let round = i / 5;
        match i % 5 {
            0 => assert!(
                matches!(answer, Err(StoreError::ChatGone)),
                "{i}: {answer:?}"
            ),
            1 => assert!(
                matches!(answer, Err(StoreError::UnknownUser)),
                "{i}: {answer:?}"
            ),
            2 => {
                let (stored, new) = answer.unwrap();
                assert!(new, "{i}");
                assert_eq!(stored.content.as_str(), format!("{round}: stored"));
                expected.push(format!("{round}: stored"));
            }
            3 => assert!(
                matches!(answer, Err(StoreError::NotMember)),
                "{i}: {answer:?}"
            ),
            _ => assert_eq!(answer.unwrap(), (earlier.clone(), false), "{i}"),
        }
    }
    assert_eq!(contents(&whole_history(db, c.id).await), expected);
}
