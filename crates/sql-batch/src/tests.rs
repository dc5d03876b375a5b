//! The answers of a batch, without a database: rows as a store's statements would
//! return them.

use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

fn new_message(n: u128, client_msg_id: Option<&str>) -> NewMessage {
    NewMessage {
        chat_id: ChatId::from_uuid(Uuid::from_u128(100 + n)),
        sender_id: UserId::from_uuid(Uuid::from_u128(200 + n)),
        content: MessageContent::parse(format!("m{n}")).unwrap(),
        client_msg_id: client_msg_id.map(|id| ClientMsgId::parse(id).unwrap()),
    }
}

/// The earlier message with id `n` (content `content`).
fn first_row(n: u128, content: &str) -> FirstRow<OffsetDateTime> {
    FirstRow {
        id: Some(Uuid::from_u128(n)),
        chat_id: Some(Uuid::from_u128(2)),
        sender_id: Some(Uuid::from_u128(3)),
        content: Some(content.to_owned()),
        client_msg_id: Some("k".to_owned()),
        created_at: Some(OffsetDateTime::UNIX_EPOCH),
    }
}

fn no_first() -> FirstRow<OffsetDateTime> {
    FirstRow {
        id: None,
        chat_id: None,
        sender_id: None,
        content: None,
        client_msg_id: None,
        created_at: None,
    }
}

fn left_out_row(
    position: i64,
    (chat, sender, member): (bool, bool, bool),
    first: FirstRow<OffsetDateTime>,
) -> LeftOutRow<OffsetDateTime> {
    LeftOutRow {
        position,
        chat_exists: chat,
        sender_exists: sender,
        sender_is_member: member,
        first,
    }
}

fn answer(chat: bool, sender: bool, member: bool, repeat: bool) -> InsertAnswer {
    let first = if repeat {
        first_row(1, "hi")
    } else {
        no_first()
    };
    left_out_row(0, (chat, sender, member), first).answer()
}

#[test]
fn a_left_out_message_is_answered_in_the_contract_s_order() {
    // (chat exists, sender exists, sender is a member, repeats a client id) → answer.
    for member in [false, true] {
        for repeat in [false, true] {
            let gone = answer(false, false, member, repeat);
            assert!(matches!(gone, Err(StoreError::ChatGone)), "{gone:?}");
            let unknown = answer(true, false, member, repeat);
            assert!(
                matches!(unknown, Err(StoreError::UnknownUser)),
                "{unknown:?}"
            );
        }
    }
    // A non-member, repeating or not; a member left out without a repeat (added after
    // the insert): all `NotMember`.
    for (member, repeat) in [(false, true), (false, false), (true, false)] {
        let refused = answer(true, true, member, repeat);
        assert!(matches!(refused, Err(StoreError::NotMember)), "{refused:?}");
    }
    let (first, new) = answer(true, true, true, true).unwrap();
    assert!(!new);
    assert_eq!(first.id, MessageId::from_uuid(Uuid::from_u128(1)));
    assert_eq!(first.content.as_str(), "hi");
}

#[test]
fn an_unreadable_first_message_is_the_member_s_answer() {
    let row = left_out_row(0, (true, true, true), first_row(1, ""));
    assert!(matches!(row.answer(), Err(StoreError::Unavailable(_))));
}

#[test]
fn each_left_out_message_gets_the_explanation_at_its_index_among_the_left_out() {
    let messages = [
        new_message(0, None),
        new_message(1, None),
        new_message(2, Some("k")),
        new_message(3, None),
        new_message(4, None),
    ];
    let refs: Vec<&NewMessage> = messages.iter().collect();
    let mut batch = Batch::<OffsetDateTime>::new(&refs);
    let ids: Vec<Uuid> = batch.messages().map(|(id, _)| id).collect();
    // The insert stored the second and the fifth.
    batch.stored(
        [1, 4]
            .map(|i| MessageRow {
                id: ids[i],
                chat_id: messages[i].chat_id.as_uuid(),
                sender_id: messages[i].sender_id.as_uuid(),
                content: messages[i].content.as_str().to_owned(),
                client_msg_id: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
            })
            .into(),
    );
    let left_out: Vec<ChatId> = batch.left_out().iter().map(|m| m.chat_id).collect();
    assert_eq!(
        left_out,
        [0, 2, 3].map(|i| messages[i].chat_id),
        "the left-out messages, in the batch's order"
    );
    // Explained out of order, each by its index among the left-out (from 0).
    batch.explained(vec![
        left_out_row(2, (true, false, false), no_first()),
        left_out_row(0, (false, false, false), no_first()),
        left_out_row(1, (true, true, true), first_row(9, "earlier")),
    ]);
    let answers = batch.answers();
    assert!(
        matches!(answers[0], Err(StoreError::ChatGone)),
        "{answers:?}"
    );
    assert_eq!(answers[1].as_ref().unwrap().0.id.as_uuid(), ids[1]);
    assert!(answers[1].as_ref().unwrap().1, "stored is new");
    let (earlier, new) = answers[2].as_ref().unwrap();
    assert!(!new);
    assert_eq!(earlier.content.as_str(), "earlier");
    assert!(
        matches!(answers[3], Err(StoreError::UnknownUser)),
        "{answers:?}"
    );
    assert_eq!(answers[4].as_ref().unwrap().0.id.as_uuid(), ids[4]);
}

#[test]
fn a_message_neither_stored_nor_explained_is_unavailable_and_the_others_keep_theirs() {
    let messages = [new_message(0, None), new_message(1, None)];
    let refs: Vec<&NewMessage> = messages.iter().collect();
    let mut batch = Batch::<OffsetDateTime>::new(&refs);
    // An explanation at an index past the left-out ones is nobody's.
    batch.explained(vec![
        left_out_row(1, (false, false, false), no_first()),
        left_out_row(2, (true, false, false), no_first()),
    ]);
    let answers = batch.answers();
    assert!(
        matches!(answers[0], Err(StoreError::Unavailable(_))),
        "{answers:?}"
    );
    assert!(
        matches!(answers[1], Err(StoreError::ChatGone)),
        "{answers:?}"
    );
}

#[test]
fn left_out_messages_that_cannot_be_explained_are_unavailable() {
    let messages = [new_message(0, None), new_message(1, None)];
    let refs: Vec<&NewMessage> = messages.iter().collect();
    let mut batch = Batch::<OffsetDateTime>::new(&refs);
    batch.unexplained(StoreError::unavailable(std::io::Error::other("lost")));
    assert!(
        batch
            .answers()
            .iter()
            .all(|answer| matches!(answer, Err(StoreError::Unavailable(_))))
    );
}
