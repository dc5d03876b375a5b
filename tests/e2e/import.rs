//! `server import nest`: a database shaped like the Nest.js deployment's (its own DDL,
//! written from `NEST-DATABASE.md`), holding every case the old rules allowed and ours
//! do not, imported into the store under test; then old passwords log in over HTTP,
//! history reads in the same order, and a second import changes nothing.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use time::macros::datetime;
use time::{Duration, PrimitiveDateTime};
use uuid::Uuid;

use crate::helpers::{TestServer, as_array, assert_json, assert_problem, id_of, str_of};
use crate::scratch::Scratch;

/// The old API's tables, as Prisma made them (after its third migration).
const NEST_DDL: &str = include_str!("../../scripts/nest-schema.sql");

/// The hash of users nobody logs in as (hashing at the old parameters costs 64 MiB).
const UNUSED_HASH: &str = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// A hash as node-argon2's defaults make it: argon2id v19, 64 MiB, 3 passes, 4 lanes.
fn old_hash(password: &str) -> String {
    let params = Params::new(65_536, 3, 4, None).expect("the old API's argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("hashing like the old API")
        .to_string()
}

/// `seconds` after the old deployment's first day, at millisecond precision.
fn at(seconds: i64) -> PrimitiveDateTime {
    datetime!(2023-05-01 10:00:00.123) + Duration::seconds(seconds)
}

/// The same instant as the contract shows it.
fn shown(seconds: i64) -> String {
    let at = at(seconds).assume_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).expect("formatting a timestamp")
}

/// The old deployment: ids of its rows, and the order history must keep.
struct Old {
    db: Scratch,
    bob: String,
    bob_twin: String,
    short: String,
    spaced: String,
    left: String,
    team: String,
    untitled: String,
    long_named: String,
    /// Messages of `team`, oldest first, as the import must keep them (the long one
    /// once: it becomes two).
    team_history: Vec<String>,
    long_message: String,
    long_content: String,
    blank: String,
    tie_second: String,
}

/// Inserts one row with `sql`, binding `values` (text, or timestamps as `at` offsets).
async fn insert(db: &mut PgConnection, sql: &'static str, text: &[&str], time: i64) {
    let mut query = sqlx::query(sql);
    for value in text {
        query = query.bind(*value);
    }
    query
        .bind(at(time))
        .execute(db)
        .await
        .expect("filling the old database");
}

/// Builds and fills the old database with every case `NEST-DATABASE.md` lists.
async fn old_deployment() -> Old {
    let db = Scratch::postgres().await;
    let mut conn = PgConnection::connect(&db.url())
        .await
        .expect("connecting to the old database");
    sqlx::raw_sql(AssertSqlSafe(NEST_DDL))
        .execute(&mut conn)
        .await
        .expect("creating the old tables");
    let new_id = || Uuid::new_v4().to_string();
    let (bob, bob_twin, short, spaced, left, long_user) =
        (new_id(), new_id(), new_id(), new_id(), new_id(), new_id());
    let user =
        r#"insert into "User" (id, username, password, "createdAt") values ($1, $2, $3, $4)"#;
    insert(
        &mut conn,
        user,
        &[&bob, "bob@example.com", &old_hash("old password one")],
        0,
    )
    .await;
    // Equal but for case, a second later: the old index told them apart.
    insert(
        &mut conn,
        user,
        &[&bob_twin, "Bob@example.com", &old_hash("old password two")],
        1,
    )
    .await;
    insert(&mut conn, user, &[&short, "al", "not-a-hash"], 2).await;
    insert(
        &mut conn,
        user,
        &[&spaced, "carol smith@example.com", UNUSED_HASH],
        3,
    )
    .await;
    insert(
        &mut conn,
        user,
        &[&left, "dave@example.com", UNUSED_HASH],
        4,
    )
    .await;
    let long_name = format!("{}@example.com", "e".repeat(300));
    insert(&mut conn, user, &[&long_user, &long_name, UNUSED_HASH], 5).await;

    let (team, untitled, long_named) = (new_id(), new_id(), new_id());
    let chat = r#"insert into "Chat" (id, "ownerId", name, "createdAt") values ($1, $2, $3, $4)"#;
    insert(&mut conn, chat, &[&team, &bob, "  Old team  "], 10).await;
    insert(&mut conn, chat, &[&untitled, &bob_twin, "   "], 11).await;
    insert(&mut conn, chat, &[&long_named, &bob, &"n".repeat(150)], 12).await;
    let member = r#"insert into "ChatMember" ("chatId", "userId", "joinedAt") values ($1, $2, $3)"#;
    insert(&mut conn, member, &[&team, &bob], 10).await;
    insert(&mut conn, member, &[&team, &bob_twin], 13).await;
    insert(&mut conn, member, &[&team, &spaced], 14).await;
    // The untitled chat's owner has no row (older versions), only a member does.
    insert(&mut conn, member, &[&untitled, &bob], 15).await;
    insert(&mut conn, member, &[&long_named, &bob], 12).await;

    let message = r#"insert into "Message" (id, "chatId", "senderId", content, "createdAt") values ($1, $2, $3, $4, $5)"#;
    let (first, tie_a, tie_b, from_left, blank, long_message, last) = (
        new_id(),
        new_id(),
        new_id(),
        new_id(),
        new_id(),
        new_id(),
        new_id(),
    );
    let long_content = "é".repeat(5000);
    insert(&mut conn, message, &[&first, &team, &bob, "hello"], 20).await;
    // Two messages of one instant: history orders them by id.
    insert(
        &mut conn,
        message,
        &[&tie_a, &team, &bob_twin, "same instant"],
        21,
    )
    .await;
    insert(
        &mut conn,
        message,
        &[&tie_b, &team, &spaced, "same instant too"],
        21,
    )
    .await;
    // Dave is no longer a member (he left): his message stays in history.
    insert(
        &mut conn,
        message,
        &[&from_left, &team, &left, "before I left"],
        22,
    )
    .await;
    insert(&mut conn, message, &[&blank, &team, &bob, "   "], 23).await;
    insert(
        &mut conn,
        message,
        &[&long_message, &team, &bob_twin, &long_content],
        24,
    )
    .await;
    insert(&mut conn, message, &[&last, &team, &bob, "bye"], 25).await;
    insert(
        &mut conn,
        message,
        &[&new_id(), &untitled, &bob, "in the untitled chat"],
        30,
    )
    .await;
    conn.close().await.ok();

    let (tie_first, tie_second) = if tie_a < tie_b {
        (tie_a, tie_b)
    } else {
        (tie_b, tie_a)
    };
    Old {
        db,
        team_history: vec![
            first,
            tie_first,
            tie_second.clone(),
            from_left,
            blank.clone(),
            long_message.clone(),
            last,
        ],
        bob,
        bob_twin,
        short,
        spaced,
        left,
        team,
        untitled,
        long_named,
        long_message,
        long_content,
        blank,
        tie_second,
    }
}

/// Runs `server import nest --from <old>` with `extra` flags into `app`'s store:
/// (success, stdout, stderr).
async fn import(app: &TestServer, old: &Old, extra: &[&str]) -> (bool, String, String) {
    let url = old.db.url();
    let mut args = vec!["import", "nest", "--from", url.as_str()];
    args.extend_from_slice(extra);
    let output = app.run_binary(&args).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts that `text` has a line holding every one of `parts`.
fn assert_line(text: &str, parts: &[&str]) {
    assert!(
        text.lines()
            .any(|line| parts.iter().all(|part| line.contains(part))),
        "no line holds all of {parts:?} in:\n{text}"
    );
}

/// The login refusal of a user that is not (yet) stored.
async fn assert_cannot_log_in(app: &TestServer, username: &str, password: &str) {
    let body = json!({"username": username, "password": password});
    assert_problem(
        app.post("/auth/login", None, &body).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn a_nest_deployment_is_imported_with_its_passwords_history_and_every_awkward_case() {
    let old = old_deployment().await;
    let app = TestServer::spawn().await;

    // A dry run lists every problem with its row and stores nothing.
    let (ok, out, err) = import(&app, &old, &["--dry-run"]).await;
    assert!(ok, "the dry run failed: {err}\n{out}");
    assert_line(
        &out,
        &[
            &format!("user {}", old.bob_twin),
            "differs only in case",
            "\"Bob@example.com#2\"",
        ],
    );
    assert_line(&out, &[&format!("user {}", old.short), "\"al_\""]);
    assert_line(
        &out,
        &[&format!("user {}", old.short), "not an argon2 PHC string"],
    );
    assert_line(
        &out,
        &[
            &format!("user {}", old.spaced),
            "\"carol_smith@example.com\"",
        ],
    );
    assert_line(&out, &[&format!("chat {}", old.team), "stored trimmed"]);
    assert_line(
        &out,
        &[
            &format!("chat {}", old.untitled),
            "is blank",
            "\"(untitled)\"",
        ],
    );
    assert_line(
        &out,
        &[
            &format!("chat {}", old.untitled),
            "owner",
            &old.bob_twin,
            "first member",
        ],
    );
    assert_line(
        &out,
        &[&format!("chat {}", old.long_named), "--accept-lossy"],
    );
    assert_line(
        &out,
        &[
            &format!("message {}", old.blank),
            "blank",
            "\"(empty message)\"",
        ],
    );
    assert_line(
        &out,
        &[
            &format!("message {}", old.long_message),
            "5000 characters",
            "2 consecutive messages",
        ],
    );
    assert_line(
        &out,
        &[
            &format!("message {}", old.tie_second),
            "shares its timestamp",
            "ordered by id",
        ],
    );
    assert_line(&out, &["messages: 8 read, 9 would be stored"]);
    assert_line(&out, &["1 message(s) from senders no longer in their chat"]);
    assert_cannot_log_in(&app, "bob@example.com", "old password one").await;

    // A real run refuses to cut the long chat name without consent, storing nothing.
    let (ok, _, err) = import(&app, &old, &[]).await;
    assert!(!ok, "a lossy import ran without --accept-lossy");
    assert!(
        err.contains("--accept-lossy") && err.contains("nothing was stored"),
        "{err}"
    );
    assert_cannot_log_in(&app, "bob@example.com", "old password one").await;

    let (ok, out, err) = import(&app, &old, &["--accept-lossy"]).await;
    assert!(ok, "the import failed: {err}\n{out}");
    assert_line(&out, &["users: 6 read, 6 stored, 0 already there"]);
    assert_line(&out, &["members: 5 read, 6 stored, 0 already there"]);
    assert_line(&out, &["messages: 8 read, 9 stored, 0 already there"]);

    // Old passwords log in, under the kept name (any case) or the printed new one.
    let bob = app.login("BOB@example.com", "old password one").await;
    let twin = app.login("Bob@example.com#2", "old password two").await;
    assert_cannot_log_in(&app, "bob@example.com", "old password two").await;
    let users =
        as_array(&assert_json(app.get("/users?limit=1000", &bob).await, StatusCode::OK).await);
    let ids: Vec<String> = users.iter().map(id_of).collect();
    assert_eq!(
        ids[..5],
        [
            old.bob.clone(),
            old.bob_twin.clone(),
            old.short.clone(),
            old.spaced.clone(),
            old.left.clone()
        ]
    );
    assert_eq!(users[0]["createdAt"], shown(0));
    assert_eq!(users[1]["username"], "Bob@example.com#2");

    let chats = as_array(&assert_json(app.get("/chats", &bob).await, StatusCode::OK).await);
    let name_of = |id: &str| {
        chats
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["name"].clone())
    };
    assert_eq!(name_of(&old.team), Some(json!("Old team")));
    assert_eq!(name_of(&old.untitled), Some(json!("(untitled)")));
    let cut = name_of(&old.long_named).expect("the long-named chat");
    assert_eq!(cut.as_str().map(|n| n.chars().count()), Some(100));

    // Members: the owner first, then in order of joining; the missing owner added.
    let members = |chat: String, token: String| {
        let app = &app;
        async move {
            let listed = assert_json(
                app.get(&format!("/chats/{chat}/members"), &token).await,
                StatusCode::OK,
            )
            .await;
            as_array(&listed)
                .iter()
                .map(|m| str_of(m, "userId"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        members(old.team.clone(), bob.clone()).await,
        [old.bob.clone(), old.bob_twin.clone(), old.spaced.clone()]
    );
    assert_eq!(
        members(old.untitled.clone(), twin.clone()).await,
        [old.bob_twin.clone(), old.bob.clone()]
    );

    // History: the same messages, in the same order, at the same times.
    let history = team_history(&app, &bob, &old.team).await;
    let ids: Vec<String> = history.iter().map(id_of).collect();
    assert_eq!(ids.len(), 8, "{history:?}");
    assert_eq!(ids[..6], old.team_history[..6]);
    assert_eq!(ids[7], old.team_history[6]);
    let long: String = [&history[5], &history[6]]
        .iter()
        .map(|m| str_of(m, "content"))
        .collect();
    assert_eq!(long, old.long_content);
    assert_eq!(history[6]["createdAt"], shown(24));
    assert_eq!(history[4]["content"], "(empty message)");
    assert_eq!(str_of(&history[3], "senderId"), old.left);
    assert_eq!(history[0]["createdAt"], shown(20));
    assert_eq!(history[2]["createdAt"], shown(21));

    // Again: nothing new, nothing changed.
    let (ok, out, err) = import(&app, &old, &["--accept-lossy"]).await;
    assert!(ok, "the second import failed: {err}\n{out}");
    for kind in [
        "users: 6 read, 0 stored, 6",
        "chats: 3 read, 0 stored, 3",
        "members: 5 read, 0 stored, 6",
        "messages: 8 read, 0 stored, 9",
    ] {
        assert_line(&out, &[kind]);
    }
    assert_eq!(team_history(&app, &bob, &old.team).await, history);
    assert_line(
        &out,
        &[&format!("user {}", old.bob_twin), "\"Bob@example.com#2\""],
    );
}

/// A chat's history, oldest first.
async fn team_history(app: &TestServer, token: &str, chat: &str) -> Vec<Value> {
    let page = assert_json(
        app.get(&format!("/chats/{chat}/messages?limit=100"), token)
            .await,
        StatusCode::OK,
    )
    .await;
    let mut messages = as_array(&page);
    messages.reverse();
    messages
}

#[tokio::test]
async fn an_import_from_a_database_that_is_not_a_nest_deployment_is_refused_with_the_reason() {
    let app = TestServer::spawn().await;
    let not_nest = Scratch::postgres().await;
    let mut conn = PgConnection::connect(&not_nest.url())
        .await
        .expect("connecting");
    // An older deployment: its messages have no timestamp.
    sqlx::raw_sql(AssertSqlSafe(NEST_DDL.replace(
        r#"    content     text not null,
    "createdAt" timestamp(3) not null default current_timestamp"#,
        "    content     text not null",
    )))
    .execute(&mut conn)
    .await
    .expect("creating old tables");
    conn.close().await.ok();

    let output = app
        .run_binary(&["import", "nest", "--from", &not_nest.url()])
        .await;

    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(r#""Message" table has no "createdAt" column"#),
        "{err}"
    );
}
