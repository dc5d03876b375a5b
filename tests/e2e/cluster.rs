//! Several server processes as one messenger (`REDIS_URL`): nodes on loopback ports
//! sharing one PostgreSQL database and a Redis server that each test starts on its own
//! port (so that it can stop and restart it). Clients on different nodes must hear each
//! other — over both socket kinds — in one order, and a Redis outage must cost each node
//! only the others' events while it lasts.
//!
//! PostgreSQL only, by nature: a cluster shares one database (the SQLite pass of
//! `cargo xtask test` skips this module by name).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::helpers::{TestServer, assert_no_content, history_ids, id_of, one_chat};
use crate::metrics::scrape_until;
use crate::sockets::{Kind, Socket, in_room};

/// A `redis-server` of the test's own, on a free loopback port, keeping nothing on disk.
struct TestRedis {
    port: u16,
    child: Option<Child>,
}

impl TestRedis {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        let port = listener.local_addr().expect("the bound port").port();
        drop(listener);
        let mut redis = Self { port, child: None };
        redis.resume().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) on the same port and waits until it answers PING.
    async fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting redis-server (Redis 7 is on every machine of this project)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut reply = [0_u8; 7];
                if stream.write_all(b"PING\r\n").await.is_ok()
                    && stream.read_exact(&mut reply).await.is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process: every connection to it drops at once.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("killing redis-server");
            child.wait().await.expect("reaping redis-server");
        }
    }
}

/// `count` nodes on one fresh database and one Redis: the first owns the database.
async fn cluster(redis: &TestRedis, count: usize) -> Vec<TestServer> {
    let url = redis.url();
    let first = TestServer::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    let mut nodes = Vec::with_capacity(count);
    for _ in 1..count {
        nodes.push(first.spawn_peer().await);
    }
    nodes.insert(0, first);
    for node in &nodes {
        wait_for_cluster_state(node, "connected").await;
    }
    nodes
}

/// Polls `/readyz` until its `cluster` field says `state`; returns the body.
async fn wait_for_cluster_state(node: &TestServer, state: &str) -> Value {
    let started = Instant::now();
    loop {
        let response = node.get_anonymous("/readyz").await;
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON /readyz body");
        if body["cluster"] == state {
            assert_eq!(status, StatusCode::OK, "/readyz while {state}: {body}");
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/readyz never said cluster {state}; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes `user` from `chat` over REST on `node`, as its owner; returns the
/// `chats:member:removed` payload that every socket concerned must hear.
async fn remove_member(node: &TestServer, owner: &str, chat: &str, user: &str) -> Value {
    assert_no_content(
        node.delete_with(
            &format!("/chats/{chat}/members"),
            owner,
            &json!({ "members": [user] }),
        )
        .await,
    )
    .await;
    json!({ "chatId": chat, "userIds": [user] })
}

#[tokio::test]
async fn a_message_sent_on_one_node_reaches_both_socket_kinds_on_every_node() {
    let redis = TestRedis::start().await;
    let nodes = cluster(&redis, 3).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (chat, users) = one_chat(a, &["alice", "bob", "carol"]).await;
    let mut alice_ws = in_room(a, Kind::Ws, &users[0].1, &chat).await;
    let mut bob_sio = in_room(b, Kind::SocketIo, &users[1].1, &chat).await;
    let mut carol_ws = in_room(c, Kind::Ws, &users[2].1, &chat).await;

    let sent = alice_ws.send_message(&chat, "from node A").await;
    for socket in [&mut alice_ws, &mut bob_sio, &mut carol_ws] {
        assert_eq!(socket.expect_event("messages:new").await, sent);
    }
    let reply = bob_sio
        .send_message(&chat, "from node B, over Socket.IO")
        .await;
    for socket in [&mut alice_ws, &mut bob_sio, &mut carol_ws] {
        assert_eq!(socket.expect_event("messages:new").await, reply);
    }
    // Exactly once each: two more messages, one from each of the other two nodes, are
    // the next each socket hears. Every socket hears at least one of them through
    // Redis, after anything published before it; a second copy would have come first.
    let from_b = bob_sio.send_message(&chat, "marker from node B").await;
    let from_c = carol_ws.send_message(&chat, "marker from node C").await;
    for socket in [&mut alice_ws, &mut bob_sio, &mut carol_ws] {
        assert_eq!(socket.expect_event("messages:new").await, from_b);
        assert_eq!(socket.expect_event("messages:new").await, from_c);
    }
}

#[tokio::test]
async fn a_removal_or_deletion_on_one_node_takes_effect_on_the_live_sockets_of_another() {
    let redis = TestRedis::start().await;
    let nodes = cluster(&redis, 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (chat, users) = one_chat(a, &["alice", "bob", "carol"]).await;
    let [(_, alice), (bob_id, bob), (_, carol)] = &users[..] else {
        unreachable!("three users were made")
    };
    let mut alice_ws = in_room(a, Kind::Ws, alice, &chat).await;
    let mut bob_sio = in_room(b, Kind::SocketIo, bob, &chat).await;
    let mut carol_ws = in_room(b, Kind::Ws, carol, &chat).await;
    // Another chat of Alice and Bob, where Alice's messages show what Bob heard before
    // them: anything node A published earlier reaches Bob's node first.
    let other = id_of(&a.create_chat(alice, "marker", &[bob_id.as_str()]).await);
    bob_sio.join(&[&other]).await;

    // Alice removes Bob over REST on node A; Bob's socket is on node B.
    let removed = remove_member(a, alice, &chat, bob_id).await;
    for socket in [&mut alice_ws, &mut bob_sio, &mut carol_ws] {
        assert_eq!(socket.expect_event("chats:member:removed").await, removed);
    }
    // From then on Bob hears nothing of the chat, Carol (same node as Bob) everything.
    let after = alice_ws.send_message(&chat, "after Bob left").await;
    assert_eq!(alice_ws.expect_event("messages:new").await, after);
    assert_eq!(carol_ws.expect_event("messages:new").await, after);
    let marker = alice_ws.send_message(&other, "after the removal").await;
    assert_eq!(bob_sio.expect_event("messages:new").await, marker);

    // Deleting the chat on node A tells and empties the room on node B.
    assert_no_content(a.delete(&format!("/chats/{chat}"), alice).await).await;
    let deleted = json!({ "chatId": chat });
    assert_eq!(alice_ws.expect_event("chats:deleted").await, deleted);
    assert_eq!(carol_ws.expect_event("chats:deleted").await, deleted);
    let marker = alice_ws.send_message(&other, "after the deletion").await;
    assert_eq!(bob_sio.expect_event("messages:new").await, marker);
}

#[tokio::test]
async fn senders_on_different_nodes_are_heard_in_one_order_everywhere_the_stored_order() {
    let redis = TestRedis::start().await;
    let nodes = cluster(&redis, 3).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (chat, users) = one_chat(a, &["alice", "bob", "carol"]).await;
    let [(_, alice), (_, bob), (_, carol)] = &users[..] else {
        unreachable!("three users were made")
    };
    let mut carol_on_c = in_room(c, Kind::Ws, carol, &chat).await;
    let mut carol_on_a = in_room(a, Kind::SocketIo, carol, &chat).await;

    // Alice (node A) and Bob (node B) send at the same time.
    const EACH: usize = 40;
    let mut alice_ws = Socket::connect(a, Kind::Ws, alice).await;
    let mut bob_ws = Socket::connect(b, Kind::Ws, bob).await;
    let alice_chat = chat.clone();
    let bob_chat = chat.clone();
    let alice_task = tokio::spawn(async move {
        for n in 0..EACH {
            alice_ws.send_message(&alice_chat, &format!("a{n}")).await;
        }
    });
    let bob_task = tokio::spawn(async move {
        for n in 0..EACH {
            bob_ws.send_message(&bob_chat, &format!("b{n}")).await;
        }
    });
    alice_task.await.expect("Alice's sends");
    bob_task.await.expect("Bob's sends");

    let mut heard_on_c = Vec::new();
    let mut heard_on_a = Vec::new();
    for _ in 0..2 * EACH {
        heard_on_c.push(id_of(&carol_on_c.expect_event("messages:new").await));
        heard_on_a.push(id_of(&carol_on_a.expect_event("messages:new").await));
    }
    let stored = history_ids(a, carol, &chat).await;
    assert_eq!(stored.len(), 2 * EACH);
    assert_eq!(heard_on_c, stored, "node C's order is not the stored order");
    assert_eq!(heard_on_a, stored, "node A's order is not the stored order");
    // Nothing more: a message sent from node A after all of them is the next node C
    // hears (it comes the same way, after them).
    let marker = carol_on_a.send_message(&chat, "marker").await;
    assert_eq!(carol_on_c.expect_event("messages:new").await, marker);
}

#[tokio::test]
async fn sends_fired_without_waiting_on_two_nodes_are_all_stored_acked_and_heard_in_order() {
    // Each node keeps several of a socket's sends in flight, and in a cluster each
    // holds the chat's shared turn until announced: a socket's next send to the chat
    // must not wait on a turn its own earlier send cannot release.
    const EACH: usize = 20;
    let redis = TestRedis::start().await;
    let nodes = cluster(&redis, 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (chat, users) = one_chat(a, &["alice", "bob", "carol"]).await;
    let [(_, alice), (_, bob), (_, carol)] = &users[..] else {
        unreachable!("three users were made")
    };
    let mut carol_on_b = in_room(b, Kind::Ws, carol, &chat).await;
    let senders = [
        Socket::connect(a, Kind::Ws, alice).await,
        Socket::connect(b, Kind::SocketIo, bob).await,
    ];
    let mut tasks = Vec::new();
    for (n, mut socket) in senders.into_iter().enumerate() {
        let chat = chat.clone();
        tasks.push(tokio::spawn(async move {
            let mut asked = Vec::new();
            for i in 0..EACH {
                let data = json!({ "chatId": chat, "content": format!("{n}-{i}") });
                asked.push(socket.emit("messages:create", data).await);
            }
            for (i, id) in asked.into_iter().enumerate() {
                let (acked, data) = socket.next_ack().await;
                assert_eq!(acked, id, "acks out of order");
                assert_eq!(data["content"], format!("{n}-{i}"), "not stored: {data}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a sender's sends and acks");
    }
    let mut heard = Vec::new();
    for _ in 0..2 * EACH {
        heard.push(id_of(&carol_on_b.expect_event("messages:new").await));
    }
    assert_eq!(heard, history_ids(a, carol, &chat).await);
}

#[tokio::test]
async fn while_redis_is_away_each_node_serves_its_own_sockets_and_after_it_every_socket_is_told_to_catch_up()
 {
    let mut redis = TestRedis::start().await;
    let nodes = cluster(&redis, 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (chat, users) = one_chat(a, &["alice", "bob", "carol", "dave"]).await;
    let [(_, alice), (bob_id, bob), (_, carol), (_, dave)] = &users[..] else {
        unreachable!("four users were made")
    };
    let mut alice_on_a = in_room(a, Kind::Ws, alice, &chat).await;
    let mut carol_on_a = in_room(a, Kind::SocketIo, carol, &chat).await;
    let mut bob_on_b = in_room(b, Kind::SocketIo, bob, &chat).await;
    let mut dave_on_b = in_room(b, Kind::Ws, dave, &chat).await;
    let before = alice_on_a.send_message(&chat, "before the outage").await;
    for socket in [
        &mut alice_on_a,
        &mut carol_on_a,
        &mut bob_on_b,
        &mut dave_on_b,
    ] {
        assert_eq!(socket.expect_event("messages:new").await, before);
    }

    redis.stop().await;
    for node in [a, b] {
        let body = wait_for_cluster_state(node, "disconnected").await;
        assert_eq!(body["status"], "degraded");
    }
    // Node A still stores, acknowledges and delivers to its own sockets; node B's
    // sockets miss it (nothing crosses nodes while Redis is away)...
    let during = alice_on_a.send_message(&chat, "during the outage").await;
    assert_eq!(alice_on_a.expect_event("messages:new").await, during);
    assert_eq!(carol_on_a.expect_event("messages:new").await, during);
    // (Dave's next event, below, is the removal: had `during` reached him, it would
    // have come first.)
    // ...and find it in the history: the recovery a client makes after an outage.
    let dave_sees = history_ids(b, dave, &chat).await;
    assert_eq!(dave_sees, vec![id_of(&before), id_of(&during)]);

    // A removal made on node A still reaches Bob's socket on node B: a node that
    // cannot hear the others checks its rooms against the database.
    let removed = remove_member(a, alice, &chat, bob_id).await;
    for socket in [
        &mut alice_on_a,
        &mut carol_on_a,
        &mut bob_on_b,
        &mut dave_on_b,
    ] {
        assert_eq!(socket.expect_event("chats:member:removed").await, removed);
    }

    redis.resume().await;
    for node in [a, b] {
        let body = wait_for_cluster_state(node, "connected").await;
        assert_eq!(body["status"], "ok");
    }
    // Both nodes missed the other's events: each tells its sockets to catch up by
    // closing them, `/ws` with 4009 "catch up", Socket.IO at the transport (its client
    // reconnects by itself), so no client is left believing it heard everything.
    assert_eq!(
        alice_on_a.expect_closed().await,
        Some((4009, "catch up".to_owned()))
    );
    assert_eq!(carol_on_a.expect_closed().await, None);
    assert_eq!(bob_on_b.expect_closed().await, None);
    assert_eq!(
        dave_on_b.expect_closed().await,
        Some((4009, "catch up".to_owned()))
    );
    // Reconnected, they hear each other again, both ways: node A's first publish since
    // the restart (its connection to the old Redis is dead) and node B's.
    let mut alice_on_a = in_room(a, Kind::Ws, alice, &chat).await;
    let mut carol_on_a = in_room(a, Kind::SocketIo, carol, &chat).await;
    let mut dave_on_b = in_room(b, Kind::Ws, dave, &chat).await;
    let from_a = alice_on_a
        .send_message(&chat, "after the outage, from A")
        .await;
    let from_b = dave_on_b
        .send_message(&chat, "after the outage, from B")
        .await;
    for socket in [&mut alice_on_a, &mut carol_on_a, &mut dave_on_b] {
        assert_eq!(socket.expect_event("messages:new").await, from_a);
        assert_eq!(socket.expect_event("messages:new").await, from_b);
    }
    // Bob, removed during the outage, cannot join again.
    let mut bob_again = Socket::connect(b, Kind::SocketIo, bob).await;
    let refused = bob_again
        .request("chats:connect", json!({ "chatIds": [chat] }))
        .await;
    assert_eq!(refused["status"], "error");
}

#[tokio::test]
async fn metrics_show_the_cluster_link_going_down_and_up_and_count_the_catch_up_cut_offs() {
    let mut redis = TestRedis::start().await;
    let nodes = cluster(&redis, 1).await;
    let node = &nodes[0];
    let link_up = |up: f64| {
        move |scrape: &crate::metrics::Scrape| scrape.sum("messenger_cluster_link_up", &[]) == up
    };
    scrape_until(node, "the link up", link_up(1.0)).await;
    let (chat, users) = one_chat(node, &["alice"]).await;
    let mut socket = in_room(node, Kind::Ws, &users[0].1, &chat).await;

    redis.stop().await;
    scrape_until(node, "the link down", link_up(0.0)).await;
    redis.resume().await;
    scrape_until(node, "the link up again", link_up(1.0)).await;
    assert_eq!(
        socket.expect_closed().await,
        Some((4009, "catch up".to_owned()))
    );
    scrape_until(node, "one catch-up cut-off counted", |scrape| {
        scrape.sum(
            "messenger_connections_cut_off_total",
            &[("reason", "catch_up")],
        ) == 1.0
    })
    .await;
}
