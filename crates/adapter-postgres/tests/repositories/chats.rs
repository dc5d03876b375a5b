//! `ChatRepository` against PostgreSQL.

use domain::{ChatName, StoreError, UserId};

use crate::support::{chat, count, send, unknown_chat, unknown_user, user, with_db};

#[tokio::test]
async fn creating_a_chat_makes_the_owner_the_first_member_then_the_members_in_order() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let bob = user(&db, "bob").await;
        let carol = user(&db, "carol").await;
        // Duplicates and the owner's own id are ignored.
        let created = chat(
            &db,
            "  general ",
            owner.id,
            &[carol.id, owner.id, bob.id, carol.id],
        )
        .await;
        assert_eq!(created.name.as_str(), "general");
        assert_eq!(created.owner_id, owner.id);
        assert_eq!(
            db.chats.find(created.id).await.unwrap(),
            Some(created.clone())
        );

        let members = db.chats.members(created.id).await.unwrap();
        let ids: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        assert_eq!(ids, vec![owner.id, carol.id, bob.id]);
        assert_eq!(members[1].username.as_str(), "carol");
        assert!(db.chats.is_member(created.id, bob.id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn creating_a_chat_with_an_unknown_member_is_unknown_user_and_stores_nothing() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let bob = user(&db, "bob").await;
        let err = db
            .chats
            .create(
                &ChatName::parse("c").unwrap(),
                owner.id,
                &[bob.id, unknown_user()],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
        assert_eq!(count(&db, "chats").await, 0);
        assert_eq!(count(&db, "chat_members").await, 0);
    })
    .await;
}

#[tokio::test]
async fn creating_a_chat_for_an_unknown_owner_is_unknown_user() {
    with_db(|db| async move {
        let err = db
            .chats
            .create(&ChatName::parse("c").unwrap(), unknown_user(), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
        assert_eq!(count(&db, "chats").await, 0);
    })
    .await;
}

#[tokio::test]
async fn finding_an_unknown_chat_finds_nothing() {
    with_db(|db| async move {
        assert_eq!(db.chats.find(unknown_chat()).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_members_chats_are_listed_newest_first() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let first = chat(&db, "first", alice.id, &[]).await;
        let by_bob = chat(&db, "by bob", bob.id, &[alice.id]).await;
        let _without_alice = chat(&db, "without alice", bob.id, &[]).await;
        let last = chat(&db, "last", alice.id, &[bob.id]).await;

        let listed: Vec<_> = db
            .chats
            .list_for_member(alice.id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(listed, vec![last.id, by_bob.id, first.id]);
        assert!(
            db.chats
                .list_for_member(unknown_user())
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn adding_members_returns_only_those_newly_added_in_the_order_given() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let bob = user(&db, "bob").await;
        let carol = user(&db, "carol").await;
        let dave = user(&db, "dave").await;
        let c = chat(&db, "c", owner.id, &[bob.id]).await;

        let added = db
            .chats
            .add_members(c.id, &[dave.id, bob.id, owner.id, carol.id, dave.id])
            .await
            .unwrap();
        assert_eq!(added, vec![dave.id, carol.id]);

        let members: Vec<UserId> = db
            .chats
            .members(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        assert_eq!(members, vec![owner.id, bob.id, dave.id, carol.id]);
        assert!(
            db.chats
                .add_members(c.id, &[carol.id])
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn adding_an_unknown_user_is_unknown_user_and_adds_nobody() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let bob = user(&db, "bob").await;
        let c = chat(&db, "c", owner.id, &[]).await;
        let err = db
            .chats
            .add_members(c.id, &[bob.id, unknown_user()])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownUser), "{err:?}");
        assert!(!db.chats.is_member(c.id, bob.id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn adding_to_a_deleted_chat_is_chat_gone() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let bob = user(&db, "bob").await;
        let c = chat(&db, "c", owner.id, &[]).await;
        assert!(db.chats.delete(c.id).await.unwrap());
        let err = db.chats.add_members(c.id, &[bob.id]).await.unwrap_err();
        assert!(matches!(err, StoreError::ChatGone), "{err:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_of_the_same_member_add_it_exactly_once() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let c = chat(&db, "c", owner.id, &[]).await;
        // Several rounds, so that the two adds really overlap in some of them.
        for round in 0..20 {
            let newcomer = user(&db, &format!("newcomer{round}")).await;
            let (first, second) = (db.chats.clone(), db.chats.clone());
            let a = tokio::spawn(async move { first.add_members(c.id, &[newcomer.id]).await });
            let b = tokio::spawn(async move { second.add_members(c.id, &[newcomer.id]).await });
            let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
            assert_eq!(a.len() + b.len(), 1, "round {round}: {a:?} {b:?}");
            assert_eq!([a, b].concat(), vec![newcomer.id]);
        }
        assert_eq!(db.chats.members(c.id).await.unwrap().len(), 21);
    })
    .await;
}

#[tokio::test]
async fn removing_members_returns_those_removed_and_ignores_strangers() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let bob = user(&db, "bob").await;
        let carol = user(&db, "carol").await;
        let stranger = user(&db, "stranger").await;
        let c = chat(&db, "c", owner.id, &[bob.id, carol.id]).await;

        let removed = db
            .chats
            .remove_members(
                c.id,
                &[carol.id, stranger.id, bob.id, carol.id, unknown_user()],
            )
            .await
            .unwrap();
        assert_eq!(removed, vec![carol.id, bob.id]);
        let members: Vec<UserId> = db
            .chats
            .members(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        assert_eq!(members, vec![owner.id]);
        assert!(
            db.chats
                .remove_members(c.id, &[bob.id])
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_a_chat_removes_its_members_and_messages() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let bob = user(&db, "bob").await;
        let doomed = chat(&db, "doomed", owner.id, &[bob.id]).await;
        let kept = chat(&db, "kept", owner.id, &[bob.id]).await;
        send(&db, doomed.id, bob.id, "bye").await;
        send(&db, kept.id, bob.id, "stay").await;

        assert!(db.chats.delete(doomed.id).await.unwrap());
        assert_eq!(db.chats.find(doomed.id).await.unwrap(), None);
        assert!(db.chats.members(doomed.id).await.unwrap().is_empty());
        assert_eq!(count(&db, "chat_members").await, 2);
        assert_eq!(count(&db, "messages").await, 1);
        assert!(!db.chats.delete(doomed.id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn not_member_of_names_the_chats_outside_in_the_order_given() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let mine = chat(&db, "mine", alice.id, &[]).await;
        let shared = chat(&db, "shared", bob.id, &[alice.id]).await;
        let bobs = chat(&db, "bobs", bob.id, &[]).await;
        let nowhere = unknown_chat();

        let outside = db
            .chats
            .not_member_of(alice.id, &[nowhere, mine.id, bobs.id, shared.id])
            .await
            .unwrap();
        assert_eq!(outside, vec![nowhere, bobs.id]);
        assert!(
            db.chats
                .not_member_of(alice.id, &[mine.id, shared.id])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!db.chats.is_member(bobs.id, alice.id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn many_members_added_at_once_join_in_the_order_given() {
    with_db(|db| async move {
        let owner = user(&db, "owner").await;
        let mut newcomers = Vec::new();
        for i in 0..60 {
            newcomers.push(user(&db, &format!("member{i}")).await.id);
        }
        // An order unrelated to registration (and so to the ids).
        newcomers.reverse();
        newcomers.swap(3, 40);
        let c = chat(&db, "c", owner.id, &newcomers[..30]).await;
        let added = db.chats.add_members(c.id, &newcomers[30..]).await.unwrap();
        assert_eq!(added, newcomers[30..]);

        let members: Vec<UserId> = db
            .chats
            .members(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        assert_eq!(members, [vec![owner.id], newcomers].concat());
    })
    .await;
}
