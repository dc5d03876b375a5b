//! `UserRepository` against PostgreSQL.

use domain::{PasswordHash, StoreError, UserId, UserPage, Username};

use crate::support::{limit, unknown_user, user, with_db};

#[tokio::test]
async fn registering_returns_the_user_with_the_username_as_given() {
    with_db(|db| async move {
        let alice = user(&db, "AlIcE").await;
        assert_eq!(alice.username.as_str(), "AlIcE");
        assert!(db.users.exists(alice.id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn registering_a_username_taken_in_another_case_is_username_taken() {
    with_db(|db| async move {
        user(&db, "alice").await;
        let err = db
            .users
            .create(&Username::parse("ALICE").unwrap(), &PasswordHash::new("h"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
        assert_eq!(crate::support::count(&db, "users").await, 1);
    })
    .await;
}

#[tokio::test]
async fn credentials_are_found_without_regard_to_case() {
    with_db(|db| async move {
        let alice = db
            .users
            .create(
                &Username::parse("Alice").unwrap(),
                &PasswordHash::new("$argon2id$v=19$abc"),
            )
            .await
            .unwrap();
        let found = db
            .users
            .find_credentials(&Username::parse("aLICE").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.user, alice);
        assert_eq!(found.password_hash.as_str(), "$argon2id$v=19$abc");

        let nobody = db
            .users
            .find_credentials(&Username::parse("bob").unwrap())
            .await
            .unwrap();
        assert!(nobody.is_none());
    })
    .await;
}

#[tokio::test]
async fn exists_is_false_for_an_unknown_id() {
    with_db(|db| async move {
        assert!(!db.users.exists(unknown_user()).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn missing_names_the_unknown_ids_in_the_order_given() {
    with_db(|db| async move {
        let alice = user(&db, "alice").await;
        let (x, y) = (unknown_user(), unknown_user());
        let missing = db.users.missing(&[y, alice.id, x]).await.unwrap();
        assert_eq!(missing, vec![y, x]);
        assert!(db.users.missing(&[alice.id]).await.unwrap().is_empty());
        assert!(db.users.missing(&[]).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn listing_pages_through_users_by_registration_time_then_id() {
    with_db(|db| async move {
        let mut registered = Vec::new();
        for name in ["user1", "user2", "user3", "user4", "user5"] {
            registered.push(user(&db, name).await.id);
        }
        // user2 and user3 registered first, at the same instant: their (uuid v7) ids,
        // which grow with time, order them.
        sqlx::query(
            "update users set created_at = '2000-01-01T00:00:00Z'
             where username in ('user2', 'user3')",
        )
        .execute(&db.raw)
        .await
        .unwrap();
        let [u1, u2, u3, u4, u5] = registered[..] else {
            unreachable!()
        };
        let expected = vec![u2, u3, u1, u4, u5];

        let all = db
            .users
            .list(UserPage {
                limit: limit(1000),
                after: None,
            })
            .await
            .unwrap();
        assert_eq!(all.iter().map(|u| u.id).collect::<Vec<UserId>>(), expected);

        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = db
                .users
                .list(UserPage {
                    limit: limit(2),
                    after,
                })
                .await
                .unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            paged.extend(page.iter().map(|u| u.id));
        }
        assert_eq!(paged, expected);
    })
    .await;
}

#[tokio::test]
async fn listing_after_an_unknown_user_is_unknown_cursor() {
    with_db(|db| async move {
        user(&db, "alice").await;
        let err = db
            .users
            .list(UserPage {
                limit: limit(10),
                after: Some(unknown_user()),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownCursor), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_stored_username_that_breaks_the_rules_is_unavailable_not_a_panic() {
    with_db(|db| async move {
        sqlx::query("insert into users (id, username, password_hash) values ($1, 'a b', 'h')")
            .bind(uuid::Uuid::now_v7())
            .execute(&db.raw)
            .await
            .unwrap();
        let err = db
            .users
            .list(UserPage {
                limit: limit(10),
                after: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    })
    .await;
}
