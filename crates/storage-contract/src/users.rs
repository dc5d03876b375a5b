//! The contract of [`UserRepository`](domain::ports::UserRepository).

use domain::{PasswordHash, StoreError, UserId, UserPage, Username};
use time::macros::datetime;

use crate::{Fixture, Table, limit, unknown_user, user};

cases! {
    $ users => __users_contract_tests:
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

/// Registers `name`, returning the store's answer.
async fn register(db: &dyn Fixture, name: &str) -> Result<domain::User, StoreError> {
    db.users()
        .create(&Username::parse(name).unwrap(), &PasswordHash::new("h"))
        .await
}

/// Every user, in listing order.
async fn list_all(db: &dyn Fixture) -> Vec<domain::User> {
    db.users()
        .list(UserPage {
            limit: limit(1000),
            after: None,
        })
        .await
        .unwrap()
}

/// Registration returns the user with the username exactly as given.
async fn registering_returns_the_user_with_the_username_as_given(db: &dyn Fixture) {
    let alice = user(db, "AlIcE").await;
    assert_eq!(alice.username.as_str(), "AlIcE");
    assert!(db.users().exists(alice.id).await.unwrap());
    assert_eq!(list_all(db).await, vec![alice]);
}

/// `ALICE` is taken once `alice` is registered.
async fn registering_a_username_taken_in_another_case_is_username_taken(db: &dyn Fixture) {
    user(db, "alice").await;
    let err = register(db, "ALICE").await.unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    assert_eq!(db.count(Table::Users).await, 1);
}

/// Case folding covers more than ASCII: `émile` and `ÉMILE` are taken once `Émile` is,
/// while `emile` (another letter) is not.
async fn registering_a_non_ascii_username_taken_in_another_case_is_username_taken(
    db: &dyn Fixture,
) {
    let emile = user(db, "Émile").await;
    for taken in ["émile", "ÉMILE", "Émile"] {
        let err = register(db, taken).await.unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{taken}: {err:?}");
    }
    let plain = user(db, "emile").await;
    assert_ne!(plain.id, emile.id);
    assert_eq!(db.count(Table::Users).await, 2);
}

/// Look-alikes are one name: the same name in another Unicode form (`Ａ` fullwidth, `é`
/// decomposed) has the same folded key, a name in another script that looks the same
/// (`vіctim`, Cyrillic `і`) the same skeleton; both are taken once the first is.
async fn registering_a_look_alike_of_a_username_is_username_taken(db: &dyn Fixture) {
    user(db, "victim").await;
    user(db, "caf\u{e9}").await;
    for taken in [
        "v\u{456}ctim",
        "\u{ff36}ictim",
        "v\u{131}ctim",
        "VICTIM",
        "cafe\u{301}",
        "CAF\u{c9}",
    ] {
        let err = register(db, taken).await.unwrap_err();
        assert!(
            matches!(err, StoreError::UsernameTaken),
            "{taken:?}: {err:?}"
        );
    }
    assert_eq!(db.count(Table::Users).await, 2);
    // Login finds the user by any of those forms that folds to its key.
    let found = db
        .users()
        .find_credentials(&Username::parse_existing("\u{ff36}ICTIM").unwrap())
        .await
        .unwrap()
        .expect("the fullwidth form finds victim");
    assert_eq!(found.user.username.as_str(), "victim");
}

/// A user stored before names were normalised (its key the name's lowercase only, no
/// skeleton) still logs in by its name, even when a later user holds the normalised
/// form of it; and each finds their own account.
async fn a_user_stored_before_names_were_normalised_still_logs_in(db: &dyn Fixture) {
    db.insert_unvalidated_user("\u{ff21}lice").await;
    let alice = user(db, "alice").await;
    let found = |name: &'static str| async move {
        db.users()
            .find_credentials(&Username::parse_existing(name).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name} finds nobody"))
            .user
    };
    assert_eq!(
        found("\u{ff21}lice").await.username.as_str(),
        "\u{ff21}lice"
    );
    assert_eq!(
        found("\u{ff21}LICE").await.username.as_str(),
        "\u{ff21}lice"
    );
    assert_eq!(found("ALICE").await, alice);
}

/// Two registrations of one name in different cases racing: exactly one wins, the other
/// is told the name is taken.
async fn concurrent_registrations_of_one_name_in_different_cases_admit_exactly_one(
    db: &dyn Fixture,
) {
    for round in 0..20 {
        let names = [format!("Zoë{round}"), format!("ZOË{round}")];
        let tasks: Vec<_> = names
            .into_iter()
            .map(|name| {
                let users = db.users();
                tokio::spawn(async move {
                    users
                        .create(&Username::parse(name).unwrap(), &PasswordHash::new("h"))
                        .await
                })
            })
            .collect();
        let mut registered = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => registered += 1,
                Err(StoreError::UsernameTaken) => {}
                Err(err) => panic!("round {round}: {err:?}"),
            }
        }
        assert_eq!(registered, 1, "round {round}");
    }
    assert_eq!(db.count(Table::Users).await, 20);
}

/// Login finds a user by any casing of the name, ASCII or not, with the stored hash.
async fn credentials_are_found_without_regard_to_case_beyond_ascii(db: &dyn Fixture) {
    let users = db.users();
    for (registered, offered) in [("Alice", "aLICE"), ("Émile", "ÉMILE"), ("émile2", "Émile2")]
    {
        let created = users
            .create(
                &Username::parse(registered).unwrap(),
                &PasswordHash::new(format!("$argon2id$v=19${registered}")),
            )
            .await
            .unwrap();
        let found = users
            .find_credentials(&Username::parse(offered).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{offered} does not find {registered}"));
        assert_eq!(found.user, created);
        assert_eq!(
            found.password_hash.as_str(),
            format!("$argon2id$v=19${registered}")
        );
    }
    let nobody = users
        .find_credentials(&Username::parse("emile").unwrap())
        .await
        .unwrap();
    assert!(nobody.is_none());
}

/// `exists` is false for an id no user has.
async fn exists_is_false_for_an_unknown_id(db: &dyn Fixture) {
    user(db, "alice").await;
    assert!(!db.users().exists(unknown_user()).await.unwrap());
}

/// `missing` names the unknown ids, in the order given.
async fn missing_names_the_unknown_ids_in_the_order_given(db: &dyn Fixture) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let (x, y) = (unknown_user(), unknown_user());
    let users = db.users();
    assert_eq!(
        users.missing(&[y, alice.id, x, bob.id]).await.unwrap(),
        vec![y, x]
    );
    assert!(users.missing(&[alice.id, bob.id]).await.unwrap().is_empty());
    assert!(users.missing(&[]).await.unwrap().is_empty());
}

/// The listing orders by registration time, then id, and pages through with `after`.
async fn listing_pages_through_users_by_registration_time_then_id(db: &dyn Fixture) {
    let mut registered = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        registered.push(user(db, name).await.id);
    }
    // user2 and user3 registered first, at the same instant: their (uuid v7) ids, which
    // grow with time, order them.
    db.set_registered_at(&["user2", "user3"], datetime!(2000-01-01 00:00:00 UTC))
        .await;
    let [u1, u2, u3, u4, u5] = registered[..] else {
        unreachable!()
    };
    let expected = vec![u2, u3, u1, u4, u5];

    let all: Vec<UserId> = list_all(db).await.iter().map(|u| u.id).collect();
    assert_eq!(all, expected);

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .users()
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
}

/// Timestamps keep (at least) microseconds: a registration time set with them reads
/// back unchanged, and orders against one a microsecond later.
async fn registration_times_keep_microseconds(db: &dyn Fixture) {
    let early = user(db, "early").await;
    let late = user(db, "late").await;
    // `late` registered one microsecond before `early`.
    db.set_registered_at(&["early"], datetime!(2030-05-06 07:08:09.123_457 UTC))
        .await;
    db.set_registered_at(&["late"], datetime!(2030-05-06 07:08:09.123_456 UTC))
        .await;
    let listed = list_all(db).await;
    assert_eq!(
        listed.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![late.id, early.id]
    );
    assert_eq!(
        listed[0].created_at,
        datetime!(2030-05-06 07:08:09.123_456 UTC)
    );
    assert_eq!(
        listed[1].created_at,
        datetime!(2030-05-06 07:08:09.123_457 UTC)
    );
}

/// Paging after an id that names no user is `UnknownCursor`.
async fn listing_after_an_unknown_user_is_unknown_cursor(db: &dyn Fixture) {
    user(db, "alice").await;
    let err = db
        .users()
        .list(UserPage {
            limit: limit(10),
            after: Some(unknown_user()),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownCursor), "{err:?}");
}

/// A stored row the domain would reject is reported as `Unavailable`, never a panic.
async fn a_stored_username_that_breaks_the_rules_is_unavailable_not_a_panic(db: &dyn Fixture) {
    db.insert_unvalidated_user("a b").await;
    let err = db
        .users()
        .list(UserPage {
            limit: limit(10),
            after: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
