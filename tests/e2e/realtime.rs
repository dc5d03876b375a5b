//! End-to-end tests of the real-time half: the reference `socket.io-client` suite in
//! `tests/socketio` (wire compatibility), and raw-WebSocket tests of what a JavaScript
//! client cannot easily show (a client that stops reading).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestServer, history_ids, id_of, one_chat};
use crate::sockets::{Kind, Socket, in_room};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn js_suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/socketio")
}

/// Installs the suite's pinned packages (`npm ci`) unless the installed tree already
/// matches the lock file (also for the browser suite).
pub(crate) async fn install_js_suite(dir: &Path) {
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (std::fs::metadata(&installed), std::fs::metadata(&lock)) {
        (Ok(installed), Ok(lock)) => installed.modified().ok() >= lock.modified().ok(),
        _ => false,
    };
    if fresh {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running npm (Node.js 20+ and npm are needed for the Socket.IO suite)");
    assert!(
        output.status.success(),
        "npm ci failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `node --test` on `files` (every `*.test.mjs` when empty) against `app`;
/// fails unless every test ran and passed.
async fn run_js_suite(app: &TestServer, files: &[&str]) {
    // Once per run: the tests that use the suite run at the same time.
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let dir = js_suite_dir();
    INSTALLED.get_or_init(|| install_js_suite(&dir)).await;
    let env: [(&str, &OsStr); 2] = [
        ("SERVER_URL", app.address.as_ref()),
        ("JWT_SECRET", app.jwt_secret.as_ref()),
    ];
    run_node_tests(&dir, files, &env, "the socket.io-client suite").await;
}

/// Runs `node --test --test-concurrency=1 <args>` in `dir` with `env`, printing its
/// report; fails unless every test ran and passed. `suite` names it in the failure.
pub(crate) async fn run_node_tests(dir: &Path, args: &[&str], env: &[(&str, &OsStr)], suite: &str) {
    let output = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running node --test (Node.js 20+ is needed)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "{suite} failed:\n{report}");
    assert!(
        report.contains("# fail 0") && !report.contains("# pass 0"),
        "{suite} ran no tests or reported failures:\n{report}"
    );
}

#[tokio::test]
async fn the_reference_socket_io_client_suite_passes() {
    let app = TestServer::spawn().await;
    run_js_suite(&app, &[]).await;
}

/// The flow-control suite (`flow-control.mjs`): a stock client's burst delivered whole
/// to a 100-member room, thousands of events each acked, and readers that stop reading
/// closed with the documented reason, each with exactly one line in the log.
#[tokio::test]
async fn under_a_burst_nothing_is_lost_and_a_reader_that_stops_is_cut_off_with_one_log_line() {
    let app = TestServer::spawn_logged(&[]).await;
    run_js_suite(&app, &["flow-control.mjs"]).await;
    let log = app.log();
    let cut: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("slow consumer"))
        .collect();
    // One Socket.IO reader and one /ws reader stop reading in the suite.
    assert_eq!(cut.len(), 2, "one line per cut-off connection:\n{log}");
    for line in cut {
        assert!(
            line.contains("user_id=") && line.contains("conn=") && line.contains("queued_bytes="),
            "the line names the user, the connection and what it had queued: {line}"
        );
    }
}

/// Opens `/ws` with `token`; `receive_buffer` shrinks the client's TCP receive buffer
/// so that a client that stops reading is noticed after little data.
async fn open_ws(app: &TestServer, token: &str, receive_buffer: Option<u32>) -> Ws {
    let address = app.address.trim_start_matches("http://");
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    if let Some(size) = receive_buffer {
        socket
            .set_recv_buffer_size(size)
            .expect("setting SO_RCVBUF");
    }
    let stream = socket
        .connect(address.parse().expect("the server's address"))
        .await
        .expect("connecting");
    stream.set_nodelay(true).expect("setting TCP_NODELAY");
    let url = format!("ws://{address}/ws?token={token}");
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrading /ws");
    ws
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("sending a frame");
}

/// The next text frame, as JSON.
async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket to stay open")
            .expect("a readable frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON frames");
        }
    }
}

/// Reads frames until the ack numbered `ack`, returning its data.
async fn ack(ws: &mut Ws, ack: i64) -> Value {
    loop {
        let frame = next_frame(ws).await;
        if frame["event"] == "ack" && frame["ack"] == ack {
            return frame["data"].clone();
        }
    }
}

async fn join(ws: &mut Ws, chat: &str, n: i64) {
    send(
        ws,
        json!({"event": "chats:connect", "data": {"chatIds": [chat]}, "ack": n}),
    )
    .await;
    assert_eq!(ack(ws, n).await, json!({"chatIds": [chat]}));
}

#[tokio::test]
async fn a_ws_client_that_stops_reading_is_cut_off_while_the_others_get_everything() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (bob_id, bob) = app.user_with_token("bob").await;
    let chat = id_of(&app.create_chat(&alice, "busy", &[&bob_id]).await);

    let mut sender = open_ws(&app, &alice, None).await;
    join(&mut sender, &chat, 1).await;
    let mut stalled = open_ws(&app, &bob, Some(4096)).await;
    join(&mut stalled, &chat, 1).await;

    // Bob stops reading. Far more than his queue (1024 frames) plus what the kernel
    // buffers must go out before the server gives up on him.
    let content = "x".repeat(4000);
    let total: i64 = 2500;
    let mut delivered_to_sender = 0;
    for n in 0..total {
        send(&mut sender, json!({"event": "messages:create", "data": {"chatId": chat, "content": content}, "ack": n + 10})).await;
        loop {
            let frame = next_frame(&mut sender).await;
            if frame["event"] == "messages:new" {
                delivered_to_sender += 1;
            }
            if frame["event"] == "ack" {
                assert_eq!(frame["ack"], n + 10, "acks come in order");
                assert_eq!(frame["data"]["content"].as_str().map(str::len), Some(4000));
                break;
            }
        }
    }
    assert_eq!(
        delivered_to_sender, total,
        "a stalled receiver must not cost the others anything"
    );

    // Bob's socket was closed: draining it ends before all messages arrived.
    let mut drained = 0;
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(message)) = stalled.next().await {
            match message {
                Message::Text(_) => drained += 1,
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stalled socket was never closed");
    assert!(
        drained < total,
        "the stalled socket received all {total} messages; it was never cut off"
    );
}

#[tokio::test]
async fn ws_answers_acks_exceptions_and_stays_open_after_bad_frames() {
    let app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let chat = id_of(&app.create_chat(&alice, "general", &[]).await);
    let mut ws = open_ws(&app, &alice, None).await;

    ws.send(Message::text("{not json")).await.expect("sending");
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["event"], "exception");
    assert_eq!(frame["data"]["status"], "error");

    send(
        &mut ws,
        json!({"event": "messages:create", "data": {"chatId": chat, "content": "  "}, "ack": 5}),
    )
    .await;
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame["event"], "exception");
    assert_eq!(frame["data"]["event"], "messages:create");
    assert_eq!(ack(&mut ws, 5).await["status"], "error");

    send(&mut ws, json!({"event": "messages:create", "data": {"chatId": chat, "content": "still here"}, "ack": 6})).await;
    let message = ack(&mut ws, 6).await;
    assert_eq!(message["content"], "still here");
    assert_eq!(message["chatId"], chat.as_str());
}

#[tokio::test]
async fn ws_refuses_a_bad_token_with_401_before_the_upgrade() {
    let app = TestServer::spawn().await;
    let address = app.address.trim_start_matches("http://");
    for url in [
        format!("ws://{address}/ws"),
        format!("ws://{address}/ws?token=garbage"),
    ] {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("expected a 401 refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_acknowledged_message_survives_kill_9_and_its_client_msg_id_still_dedupes() {
    let mut app = TestServer::spawn().await;
    let (_, alice) = app.user_with_token("alice").await;
    let chat = id_of(&app.create_chat(&alice, "durable", &[]).await);

    let mut ws = open_ws(&app, &alice, None).await;
    let create = json!({"event": "messages:create", "data": {"chatId": chat, "content": "keep me", "clientMsgId": "k-1"}, "ack": 1});
    send(&mut ws, create.clone()).await;
    let acknowledged = ack(&mut ws, 1).await;
    let id = acknowledged["id"]
        .as_str()
        .expect("the ack carries the message")
        .to_owned();

    app.kill_and_restart().await;

    let history = app
        .get(&format!("/chats/{chat}/messages"), &alice)
        .await
        .json::<Vec<Value>>()
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["id"], id.as_str());

    // The same send retried after the restart stores nothing new: the database, not
    // the process's memory, enforces clientMsgId.
    let mut ws = open_ws(&app, &alice, None).await;
    send(&mut ws, create).await;
    assert_eq!(ack(&mut ws, 1).await["id"], id.as_str());
    let history = app
        .get(&format!("/chats/{chat}/messages"), &alice)
        .await
        .json::<Vec<Value>>()
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn concurrent_senders_to_one_chat_are_heard_in_the_stored_order_on_both_socket_kinds() {
    // A chat's messages are committed together (several in one batch) and announced
    // one by one: whatever order the commits finish in, every listener must hear the
    // order history lists.
    const SENDERS: usize = 6;
    const EACH: usize = 15;
    let app = TestServer::spawn().await;
    let names = ["carol", "sam0", "sam1", "sam2", "sam3", "sam4", "sam5"];
    let (chat, users) = one_chat(&app, &names).await;
    let carol = &users[0].1;
    let mut on_ws = in_room(&app, Kind::Ws, carol, &chat).await;
    let mut on_sio = in_room(&app, Kind::SocketIo, carol, &chat).await;

    let mut senders = Vec::new();
    for (n, (_, token)) in users[1..=SENDERS].iter().enumerate() {
        let mut socket = Socket::connect(&app, Kind::Ws, token).await;
        let chat = chat.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..EACH {
                socket.send_message(&chat, &format!("s{n}-{i}")).await;
            }
        }));
    }
    for sender in senders {
        sender.await.expect("a sender's sends");
    }

    let mut heard_on_ws = Vec::new();
    let mut heard_on_sio = Vec::new();
    for _ in 0..SENDERS * EACH {
        heard_on_ws.push(id_of(&on_ws.expect_event("messages:new").await));
        heard_on_sio.push(id_of(&on_sio.expect_event("messages:new").await));
    }
    let stored = history_ids(&app, carol, &chat).await;
    assert_eq!(stored.len(), SENDERS * EACH);
    assert_eq!(
        heard_on_ws, stored,
        "/ws heard another order than history's"
    );
    assert_eq!(
        heard_on_sio, stored,
        "Socket.IO heard another order than history's"
    );
    // Each once: a message sent after all were acknowledged is the next one heard.
    let marker = on_sio.send_message(&chat, "marker").await;
    assert_eq!(on_ws.expect_event("messages:new").await, marker);
}

#[tokio::test]
async fn a_message_over_64_kib_closes_the_socket_and_one_of_64_kib_is_read_on_both_kinds() {
    // Both protocols take WebSocket messages up to the REST body limit (the largest
    // valid event is under half of it), read through a 1 KiB buffer.
    const LIMIT: usize = 64 * 1024;
    let app = TestServer::spawn().await;
    let (chat, users) = one_chat(&app, &["alice", "bob"]).await;
    let (alice, bob) = (&users[0].1, &users[1].1);
    for kind in [Kind::Ws, Kind::SocketIo] {
        let mut listener = in_room(&app, Kind::Ws, bob, &chat).await;
        let mut sender = Socket::connect(&app, kind, alice).await;

        // The longest valid message, every character escaped on the wire (~24 KiB).
        let content = "\u{1}".repeat(4096);
        let sent = sender
            .request(
                "messages:create",
                json!({ "chatId": chat, "content": content }),
            )
            .await;
        assert_eq!(sent["content"], content, "{kind:?}");
        assert_eq!(
            listener.expect_event("messages:new").await["content"],
            content
        );

        // Exactly at the limit: read, and refused for its unknown field only.
        let at_limit = sender
            .emit_padded(
                "messages:create",
                json!({ "chatId": chat, "content": "a" }),
                LIMIT,
            )
            .await;
        let (acked, refusal) = sender.next_ack().await;
        assert_eq!(acked, at_limit, "{kind:?}");
        assert_eq!(refusal["status"], "error", "{kind:?}: {refusal}");
        let still_open = sender
            .request(
                "messages:create",
                json!({ "chatId": chat, "content": "ok" }),
            )
            .await;
        assert_eq!(still_open["content"], "ok", "{kind:?}");

        // One byte over: the connection is closed, and nothing of it is stored.
        sender
            .emit_padded(
                "messages:create",
                json!({ "chatId": chat, "content": "b" }),
                LIMIT + 1,
            )
            .await;
        sender.expect_closed().await;
        assert_eq!(
            listener.expect_event("messages:new").await["content"],
            "ok",
            "{kind:?}"
        );
        // Nothing of the oversized message was stored: the next message the listener
        // hears is one sent after the connection was closed.
        let mut again = Socket::connect(&app, kind, alice).await;
        let marker = again.send_message(&chat, "after the close").await;
        assert_eq!(
            listener.expect_event("messages:new").await,
            marker,
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn sends_fired_without_waiting_are_acked_in_order_and_a_later_request_sees_them_all() {
    // A connection's sends are pipelined (the next is handled once the previous is
    // queued): answers must still come in the order asked, and any other request must
    // wait for the sends before it.
    const SENT: usize = 30;
    let app = TestServer::spawn().await;
    let (chat, users) = one_chat(&app, &["alice", "bob"]).await;
    let (alice, bob) = (&users[0].1, &users[1].1);
    for kind in [Kind::Ws, Kind::SocketIo] {
        let mut listener = in_room(&app, Kind::Ws, bob, &chat).await;
        let mut sender = Socket::connect(&app, kind, alice).await;
        let before = history_ids(&app, bob, &chat).await.len();
        let mut ids = Vec::new();
        for n in 0..SENT {
            let data = json!({ "chatId": chat, "content": format!("{kind:?} {n}") });
            ids.push(sender.emit("messages:create", data).await);
        }
        let history = sender
            .emit("messages:get", json!({ "chatId": chat, "take": 100 }))
            .await;

        let mut acked = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let (got, data) = sender.next_ack().await;
            assert_eq!(got, *id, "{kind:?}: acks out of order");
            assert_eq!(data["content"], format!("{kind:?} {n}"));
            acked.push(id_of(&data));
        }
        let (got, page) = sender.next_ack().await;
        assert_eq!(got, history);
        let mut listed: Vec<String> = page.as_array().expect("a page").iter().map(id_of).collect();
        listed.reverse();
        assert_eq!(
            listed.len(),
            before + SENT,
            "{kind:?}: the history ran ahead of the sends"
        );
        assert_eq!(listed[before..], acked[..]);
        for id in &acked {
            assert_eq!(&id_of(&listener.expect_event("messages:new").await), id);
        }
    }
}
