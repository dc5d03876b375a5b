//! The contract of [`ChatRepository`](domain::ports::ChatRepository).

use domain::{ChatId, ChatName, StoreError, UserId};

use crate::{Fixture, Table, chat, member_ids, send, unknown_chat, unknown_user, user};

cases! {
    $ chats => __chats_contract_tests:
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

/// The owner joins first, then the members in the order given; duplicates and the
/// owner's own id are ignored.
async fn creating_a_chat_makes_the_owner_the_first_member_then_the_members_in_order(
    db: &dyn Fixture,
) {
    let owner = user(db, "owner").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let created = chat(
        db,
        "  general ",
        owner.id,
        &[carol.id, owner.id, bob.id, carol.id],
    )
    .await;
    assert_eq!(created.name.as_str(), "general");
    assert_eq!(created.owner_id, owner.id);
    assert_eq!(
        db.chats().find(created.id).await.unwrap(),
        Some(created.clone())
    );

    let members = db.chats().members(created.id).await.unwrap();
    let ids: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
    assert_eq!(ids, vec![owner.id, carol.id, bob.id]);
    assert_eq!(members[1].username.as_str(), "carol");
    assert!(is_member(db, created.id, bob.id).await);
}

/// One unknown member fails the whole creation: no chat, no members.
async fn creating_a_chat_with_an_unknown_member_is_unknown_user_and_stores_nothing(
    db: &dyn Fixture,
) {
    let owner = user(db, "owner").await;
    let bob = user(db, "bob").await;
    let err = db
        .chats()
        .create(
            &ChatName::parse("c").unwrap(),
            owner.id,
            &[bob.id, unknown_user()],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
    assert_eq!(db.count(Table::Chats).await, 0);
    assert_eq!(db.count(Table::ChatMembers).await, 0);
}

/// An owner who does not exist cannot create a chat.
async fn creating_a_chat_for_an_unknown_owner_is_unknown_user(db: &dyn Fixture) {
    let err = db
        .chats()
        .create(&ChatName::parse("c").unwrap(), unknown_user(), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
    assert_eq!(db.count(Table::Chats).await, 0);
    assert_eq!(db.count(Table::ChatMembers).await, 0);
}

/// `find` of an id no chat has is `None`.
async fn finding_an_unknown_chat_finds_nothing(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    chat(db, "c", owner.id, &[]).await;
    assert_eq!(db.chats().find(unknown_chat()).await.unwrap(), None);
}

/// The access look-up: the chat with whether the user is a member, in one answer; a
/// removed member is no longer one; an unknown chat is nothing.
async fn a_chat_is_found_with_whether_the_user_is_a_member(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let c = chat(db, "c", alice.id, &[bob.id]).await;
    let found = |who| async move { db.chats().find_with_member(c.id, who).await.unwrap() };
    assert_eq!(found(alice.id).await, Some((c.clone(), true)));
    assert_eq!(found(bob.id).await, Some((c.clone(), true)));
    assert_eq!(found(carol.id).await, Some((c.clone(), false)));
    db.chats().remove_members(c.id, &[bob.id]).await.unwrap();
    assert_eq!(found(bob.id).await, Some((c.clone(), false)));
    assert_eq!(
        db.chats()
            .find_with_member(unknown_chat(), alice.id)
            .await
            .unwrap(),
        None
    );
}

/// A member's chats, owned or joined, newest first; others' chats are left out.
async fn a_members_chats_are_listed_newest_first(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let first = chat(db, "first", alice.id, &[]).await;
    let by_bob = chat(db, "by bob", bob.id, &[alice.id]).await;
    let _without_alice = chat(db, "without alice", bob.id, &[]).await;
    let last = chat(db, "last", alice.id, &[bob.id]).await;

    let listed: Vec<_> = db
        .chats()
        .list_for_member(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![last.id, by_bob.id, first.id]);
    assert!(
        db.chats()
            .list_for_member(unknown_user())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Adding reports only the users newly added, each once, in the order given.
async fn adding_members_returns_only_those_newly_added_in_the_order_given(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let dave = user(db, "dave").await;
    let c = chat(db, "c", owner.id, &[bob.id]).await;

    let added = db
        .chats()
        .add_members(c.id, &[dave.id, bob.id, owner.id, carol.id, dave.id])
        .await
        .unwrap();
    assert_eq!(added, vec![dave.id, carol.id]);
    assert_eq!(
        member_ids(db, c.id).await,
        vec![owner.id, bob.id, dave.id, carol.id]
    );
    assert!(
        db.chats()
            .add_members(c.id, &[carol.id])
            .await
            .unwrap()
            .is_empty()
    );
}

/// One unknown user fails the whole addition.
async fn adding_an_unknown_user_is_unknown_user_and_adds_nobody(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    let bob = user(db, "bob").await;
    let c = chat(db, "c", owner.id, &[]).await;
    let err = db
        .chats()
        .add_members(c.id, &[bob.id, unknown_user()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
    assert!(!is_member(db, c.id, bob.id).await);
    assert_eq!(member_ids(db, c.id).await, vec![owner.id]);
}

/// Adding to a chat deleted in the meantime is `ChatGone`.
async fn adding_to_a_deleted_chat_is_chat_gone(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    let bob = user(db, "bob").await;
    let c = chat(db, "c", owner.id, &[]).await;
    assert!(db.chats().delete(c.id).await.unwrap());
    let err = db.chats().add_members(c.id, &[bob.id]).await.unwrap_err();
    assert!(matches!(err, StoreError::ChatGone), "{err:?}");
    assert_eq!(db.count(Table::ChatMembers).await, 0);
}

/// Two tasks adding the same user at once: exactly one reports it added.
async fn concurrent_adds_of_the_same_member_add_it_exactly_once(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    let c = chat(db, "c", owner.id, &[]).await;
    // Several rounds, so that the two adds really overlap in some of them.
    for round in 0..20 {
        let newcomer = user(db, &format!("newcomer{round}")).await;
        let (first, second) = (db.chats(), db.chats());
        let a = tokio::spawn(async move { first.add_members(c.id, &[newcomer.id]).await });
        let b = tokio::spawn(async move { second.add_members(c.id, &[newcomer.id]).await });
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert_eq!(a.len() + b.len(), 1, "round {round}: {a:?} {b:?}");
        assert_eq!([a, b].concat(), vec![newcomer.id]);
    }
    assert_eq!(db.chats().members(c.id).await.unwrap().len(), 21);
}

/// Removing reports those removed, each once, and ignores users not in the chat.
async fn removing_members_returns_those_removed_and_ignores_strangers(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let stranger = user(db, "stranger").await;
    let c = chat(db, "c", owner.id, &[bob.id, carol.id]).await;

    let removed = db
        .chats()
        .remove_members(
            c.id,
            &[carol.id, stranger.id, bob.id, carol.id, unknown_user()],
        )
        .await
        .unwrap();
    assert_eq!(removed, vec![carol.id, bob.id]);
    assert_eq!(member_ids(db, c.id).await, vec![owner.id]);
    assert!(
        db.chats()
            .remove_members(c.id, &[bob.id])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Deleting a chat cascades to its members and messages, and to nothing else.
async fn deleting_a_chat_removes_its_members_and_messages(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    let bob = user(db, "bob").await;
    let doomed = chat(db, "doomed", owner.id, &[bob.id]).await;
    let kept = chat(db, "kept", owner.id, &[bob.id]).await;
    send(db, doomed.id, bob.id, "bye").await;
    send(db, doomed.id, owner.id, "bye too").await;
    send(db, kept.id, bob.id, "stay").await;

    assert!(db.chats().delete(doomed.id).await.unwrap());
    assert_eq!(db.chats().find(doomed.id).await.unwrap(), None);
    assert!(db.chats().members(doomed.id).await.unwrap().is_empty());
    assert!(!is_member(db, doomed.id, bob.id).await);
    assert_eq!(db.count(Table::Chats).await, 1);
    assert_eq!(db.count(Table::ChatMembers).await, 2);
    assert_eq!(db.count(Table::Messages).await, 1);
    assert_eq!(db.count(Table::Users).await, 2);
    assert_eq!(member_ids(db, kept.id).await, vec![owner.id, bob.id]);
    assert!(!db.chats().delete(doomed.id).await.unwrap());
}

/// `not_member_of` names the chats the user is outside of (or that do not exist), in
/// the order given.
async fn not_member_of_names_the_chats_outside_in_the_order_given(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let mine = chat(db, "mine", alice.id, &[]).await;
    let shared = chat(db, "shared", bob.id, &[alice.id]).await;
    let bobs = chat(db, "bobs", bob.id, &[]).await;
    let nowhere = unknown_chat();

    let outside = db
        .chats()
        .not_member_of(alice.id, &[nowhere, mine.id, bobs.id, shared.id])
        .await
        .unwrap();
    assert_eq!(outside, vec![nowhere, bobs.id]);
    assert!(
        db.chats()
            .not_member_of(alice.id, &[mine.id, shared.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!is_member(db, bobs.id, alice.id).await);
}

/// Many members added in one call join in the order given, not in the order of their
/// ids or registration.
async fn many_members_added_at_once_join_in_the_order_given(db: &dyn Fixture) {
    let owner = user(db, "owner").await;
    let mut newcomers = Vec::new();
    for i in 0..60 {
        newcomers.push(user(db, &format!("member{i}")).await.id);
    }
    // An order unrelated to registration (and so to the ids).
    newcomers.reverse();
    newcomers.swap(3, 40);
    let c = chat(db, "c", owner.id, &newcomers[..30]).await;
    let added = db
        .chats()
        .add_members(c.id, &newcomers[30..])
        .await
        .unwrap();
    assert_eq!(added, newcomers[30..]);
    assert_eq!(
        member_ids(db, c.id).await,
        [vec![owner.id], newcomers].concat()
    );
}

/// Whether `user` is a member of `chat`, through the access look-up (false when the
/// chat is gone).
async fn is_member(db: &dyn Fixture, chat: ChatId, user: UserId) -> bool {
    db.chats()
        .find_with_member(chat, user)
        .await
        .unwrap()
        .is_some_and(|(_, member)| member)
}
