//! The room registry of this process: which live connection (Socket.IO or `/ws`) is in
//! which chat's room, and whose it is. Both protocols register here, so they share the
//! rooms. All methods are synchronous and hold the lock only to read or change the
//! maps; a full connection is closed after the lock is released.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use domain::{ChatId, UserId};

use crate::frame::Frame;

/// Identifies one live connection in this process.
pub type ConnId = u64;

/// Why a frame could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeliverable {
    /// The frame would take the outgoing queue over its byte budget: the client
    /// stopped reading, or reads far slower than its rooms speak.
    OverBudget,
    /// The connection is already closed.
    Closed,
}

/// Why the server closes a connection; each protocol shows it to the client in its own
/// way (docs/API.md, "Flow control").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its outgoing queue went over its byte budget.
    Slow,
    /// Its access token expired.
    TokenExpired,
    /// This node missed room events (its cluster link was down): reconnect and catch up.
    CatchUp,
    /// The server is shutting down.
    Shutdown,
}

impl CloseReason {
    /// The `/ws` close code (4000–4999 are the application's own).
    pub fn ws_code(self) -> u16 {
        match self {
            Self::Slow => 4008,
            Self::TokenExpired => 4001,
            Self::CatchUp => 4009,
            Self::Shutdown => 1001,
        }
    }

    /// The `/ws` close reason, and the Socket.IO `exception` message where one is sent.
    pub fn text(self) -> &'static str {
        match self {
            Self::Slow => "slow consumer",
            Self::TokenExpired => "token expired",
            Self::CatchUp => "catch up",
            Self::Shutdown => "server shutting down",
        }
    }
}

/// A live socket of either protocol, as the hub sees it.
pub trait Connection: Send + Sync {
    /// Queues `frame` without waiting.
    ///
    /// # Errors
    /// [`Undeliverable`] when the frame would take the outgoing queue over its budget,
    /// or the connection is closed; the hub then closes and forgets it.
    fn deliver(&self, frame: &Arc<Frame>) -> Result<(), Undeliverable>;

    /// Bytes waiting to be sent to the client (for the log line of a cut-off).
    fn queued_bytes(&self) -> u64;

    /// Closes the connection for `why` (idempotent): the client sees it and the
    /// connection's own task unregisters it.
    fn close(&self, why: CloseReason);
}

struct Entry {
    conn: Arc<dyn Connection>,
    user: UserId,
    rooms: HashSet<ChatId>,
    /// When its access token expires, in seconds since the Unix epoch.
    expires_at: i64,
}

#[derive(Default)]
struct Rooms {
    members: HashMap<ChatId, HashSet<ConnId>>,
    conns: HashMap<ConnId, Entry>,
    by_user: HashMap<UserId, HashSet<ConnId>>,
    /// Bumped by every removal or deletion, so that a join checked against the database
    /// before a removal cannot slip in after it (see [`Hub::join`]).
    generation: u64,
}

/// The registry. Cheap to share (`Arc<Hub>`).
#[derive(Default)]
pub struct Hub {
    rooms: RwLock<Rooms>,
    next_id: AtomicU64,
}

impl Hub {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rooms> {
        self.rooms.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rooms> {
        self.rooms.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection of `user`, in no room yet, with no expiry.
    pub fn register(&self, user: UserId, conn: Arc<dyn Connection>) -> ConnId {
        self.register_until(user, conn, i64::MAX)
    }

    /// Registers a new connection of `user` whose access token expires at `expires_at`
    /// (seconds since the Unix epoch): [`Hub::close_expired`] closes it then.
    pub fn register_until(
        &self,
        user: UserId,
        conn: Arc<dyn Connection>,
        expires_at: i64,
    ) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.write();
        rooms.conns.insert(
            id,
            Entry {
                conn,
                user,
                rooms: HashSet::new(),
                expires_at,
            },
        );
        rooms.by_user.entry(user).or_default().insert(id);
        id
    }

    /// Forgets a connection and takes it out of every room; returns whether it was
    /// still registered.
    pub fn unregister(&self, id: ConnId) -> bool {
        let mut rooms = self.write();
        let Some(entry) = rooms.conns.remove(&id) else {
            return false;
        };
        for chat in &entry.rooms {
            leave_room(&mut rooms.members, *chat, id);
        }
        if let Some(conns) = rooms.by_user.get_mut(&entry.user) {
            conns.remove(&id);
            if conns.is_empty() {
                rooms.by_user.remove(&entry.user);
            }
        }
        true
    }

    /// The current removal generation; take it *before* checking membership.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Puts the connection in the rooms of `chats`, unless a removal or deletion
    /// happened since `checked_at` (then nothing is joined and the caller checks
    /// membership again). Returns whether it joined.
    pub fn join(&self, id: ConnId, chats: &[ChatId], checked_at: u64) -> bool {
        let mut rooms = self.write();
        if rooms.generation != checked_at {
            return false;
        }
        let Rooms { members, conns, .. } = &mut *rooms;
        let Some(entry) = conns.get_mut(&id) else {
            return true;
        };
        for chat in chats {
            entry.rooms.insert(*chat);
            members.entry(*chat).or_default().insert(id);
        }
        true
    }

    /// Takes the connection out of the rooms of `chats`; rooms it is not in are ignored.
    pub fn leave(&self, id: ConnId, chats: &[ChatId]) {
        let mut rooms = self.write();
        let Rooms { members, conns, .. } = &mut *rooms;
        if let Some(entry) = conns.get_mut(&id) {
            for chat in chats {
                if entry.rooms.remove(chat) {
                    leave_room(members, *chat, id);
                }
            }
        }
    }

    /// Queues `frame` for every connection in `chat`'s room, except those of
    /// `left_out` (a user who is not told of what they did themselves).
    pub fn broadcast(&self, chat: ChatId, frame: &Arc<Frame>, left_out: Option<UserId>) {
        let mut failed = Vec::new();
        {
            let rooms = self.read();
            let skipped = left_out.and_then(|user| rooms.by_user.get(&user));
            for id in rooms.members.get(&chat).into_iter().flatten() {
                if skipped.is_some_and(|own| own.contains(id)) {
                    continue;
                }
                offer(&rooms.conns, *id, frame, &mut failed);
            }
        }
        self.forget(failed);
    }

    /// Takes every connection of `users` out of `chat`'s room at once, then queues
    /// `frame` for the room's remaining connections and for every connection of the
    /// removed users (in the room or not), which hear nothing more from the chat.
    pub fn remove_users(&self, chat: ChatId, users: &[UserId], frame: &Arc<Frame>) {
        let mut failed = Vec::new();
        {
            let mut rooms = self.write();
            rooms.generation += 1;
            let Rooms {
                members,
                conns,
                by_user,
                ..
            } = &mut *rooms;
            let removed: HashSet<ConnId> = users
                .iter()
                .filter_map(|u| by_user.get(u))
                .flatten()
                .copied()
                .collect();
            for id in &removed {
                if let Some(entry) = conns.get_mut(id)
                    && entry.rooms.remove(&chat)
                {
                    leave_room(members, chat, *id);
                }
            }
            for id in members.get(&chat).into_iter().flatten().chain(&removed) {
                offer(conns, *id, frame, &mut failed);
            }
        }
        self.forget(failed);
    }

    /// Queues `frame` for `chat`'s room, then empties the room: the chat is gone.
    pub fn close_room(&self, chat: ChatId, frame: &Arc<Frame>) {
        let mut failed = Vec::new();
        {
            let mut rooms = self.write();
            rooms.generation += 1;
            let Rooms { members, conns, .. } = &mut *rooms;
            for id in members.remove(&chat).unwrap_or_default() {
                if let Some(entry) = conns.get_mut(&id) {
                    entry.rooms.remove(&chat);
                }
                offer(conns, id, frame, &mut failed);
            }
        }
        self.forget(failed);
    }

    /// Closes and unregisters connections a frame could not be queued for, once the
    /// lock is released: a client that stopped reading is cut off rather than allowed
    /// to grow the server's memory or hold up the others, and a closed one is
    /// forgotten even if its own task never got to unregister it.
    fn forget(&self, failed: Vec<Failed>) {
        for Failed {
            id,
            user,
            conn,
            why,
        } in failed
        {
            if !self.unregister(id) {
                // Another thread got there first, and logged it.
                continue;
            }
            if why == Undeliverable::OverBudget {
                // Once per connection: it is forgotten here, so no later frame meets it.
                tracing::warn!(
                    conn = id,
                    user_id = %user,
                    queued_bytes = conn.queued_bytes(),
                    "closing a connection whose outgoing queue is over its budget (slow consumer)"
                );
                conn.close(CloseReason::Slow);
            }
            // A connection that is already closed is only forgotten: closing it again
            // would give it a reason it did not close for (a `/ws` client's own close
            // must be echoed, not answered with "shutting down").
        }
    }

    /// Closes and forgets a connection whose own answers took its outgoing queue over
    /// its budget, as [`Hub::broadcast`] does for a frame of its rooms.
    pub fn close_slow(&self, id: ConnId) {
        let entry = {
            let rooms = self.read();
            rooms
                .conns
                .get(&id)
                .map(|entry| (entry.user, Arc::clone(&entry.conn)))
        };
        if let Some((user, conn)) = entry {
            self.forget(vec![Failed {
                id,
                user,
                conn,
                why: Undeliverable::OverBudget,
            }]);
        }
    }

    /// Closes and forgets every connection whose token expired by `now` (seconds since
    /// the Unix epoch), with [`CloseReason::TokenExpired`]; returns how many. One sweep
    /// for all connections costs less than a timer in each.
    pub fn close_expired(&self, now: i64) -> usize {
        let expired: Vec<(ConnId, Arc<dyn Connection>)> = self
            .read()
            .conns
            .iter()
            .filter(|(_, entry)| entry.expires_at <= now)
            .map(|(id, entry)| (*id, Arc::clone(&entry.conn)))
            .collect();
        for (id, conn) in &expired {
            conn.close(CloseReason::TokenExpired);
            self.unregister(*id);
        }
        expired.len()
    }

    /// Closes every connection for `why` (at shutdown, or to make every client catch
    /// up after this node missed events).
    pub fn close_all(&self, why: CloseReason) {
        let all: Vec<_> = self
            .read()
            .conns
            .values()
            .map(|entry| Arc::clone(&entry.conn))
            .collect();
        for conn in all {
            conn.close(why);
        }
    }

    /// Every non-empty room and the distinct users with a connection in it.
    pub fn occupancy(&self) -> Vec<(ChatId, Vec<UserId>)> {
        let rooms = self.read();
        rooms
            .members
            .iter()
            .map(|(chat, ids)| {
                let users: HashSet<UserId> = ids
                    .iter()
                    .filter_map(|id| rooms.conns.get(id).map(|entry| entry.user))
                    .collect();
                (*chat, users.into_iter().collect())
            })
            .collect()
    }

    /// How many connections are registered (for metrics and tests).
    pub fn connections(&self) -> usize {
        self.read().conns.len()
    }

    /// How many connections are in `chat`'s room.
    pub fn room_size(&self, chat: ChatId) -> usize {
        self.read().members.get(&chat).map_or(0, HashSet::len)
    }
}

fn leave_room(members: &mut HashMap<ChatId, HashSet<ConnId>>, chat: ChatId, id: ConnId) {
    if let Some(room) = members.get_mut(&chat) {
        room.remove(&id);
        if room.is_empty() {
            members.remove(&chat);
        }
    }
}

/// A connection a frame could not be queued for.
struct Failed {
    id: ConnId,
    user: UserId,
    conn: Arc<dyn Connection>,
    why: Undeliverable,
}

/// Queues `frame` for connection `id`, noting it in `failed` if it cannot take it.
fn offer(conns: &HashMap<ConnId, Entry>, id: ConnId, frame: &Arc<Frame>, failed: &mut Vec<Failed>) {
    if let Some(entry) = conns.get(&id)
        && let Err(why) = entry.conn.deliver(frame)
    {
        failed.push(Failed {
            id,
            user: entry.user,
            conn: Arc::clone(&entry.conn),
            why,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use uuid::Uuid;
    use wire::events::ToClient;

    use super::*;

    /// A connection that records what it was sent, with a queue of `capacity` frames.
    struct Probe {
        received: Mutex<Vec<String>>,
        capacity: usize,
        closed: Mutex<Option<CloseReason>>,
    }

    impl Probe {
        fn new(capacity: usize) -> Arc<Self> {
            Arc::new(Self {
                received: Mutex::new(Vec::new()),
                capacity,
                closed: Mutex::new(None),
            })
        }
        fn events(&self) -> Vec<String> {
            self.received.lock().unwrap().clone()
        }
        fn closed_for(&self) -> Option<CloseReason> {
            *self.closed.lock().unwrap()
        }
    }

    impl Connection for Probe {
        fn deliver(&self, frame: &Arc<Frame>) -> Result<(), Undeliverable> {
            let mut received = self.received.lock().unwrap();
            if received.len() >= self.capacity {
                return Err(Undeliverable::OverBudget);
            }
            received.push(format!("{}:{}", frame.event(), frame.payload().get()));
            Ok(())
        }
        fn queued_bytes(&self) -> u64 {
            self.received.lock().unwrap().len() as u64
        }
        fn close(&self, why: CloseReason) {
            self.closed.lock().unwrap().get_or_insert(why);
        }
    }

    fn chat(n: u128) -> ChatId {
        ChatId::from_uuid(Uuid::from_u128(n))
    }
    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(100 + n))
    }
    fn frame(event: ToClient, n: u32) -> Arc<Frame> {
        Frame::new(event, &n).unwrap()
    }

    fn joined(hub: &Hub, who: UserId, chats: &[ChatId], capacity: usize) -> (ConnId, Arc<Probe>) {
        let probe = Probe::new(capacity);
        let id = hub.register(who, probe.clone());
        assert!(hub.join(id, chats, hub.generation()));
        (id, probe)
    }

    #[test]
    fn a_broadcast_reaches_the_room_and_no_one_else() {
        let hub = Hub::default();
        let (_, a) = joined(&hub, user(1), &[chat(1)], 10);
        let (_, b) = joined(&hub, user(2), &[chat(1), chat(2)], 10);
        let (_, c) = joined(&hub, user(3), &[chat(2)], 10);
        hub.broadcast(chat(1), &frame(ToClient::MessagesNew, 1), None);
        assert_eq!(a.events(), ["messages:new:1"]);
        assert_eq!(b.events(), ["messages:new:1"]);
        assert!(c.events().is_empty());
    }

    #[test]
    fn a_broadcast_can_leave_out_every_socket_of_one_user() {
        let hub = Hub::default();
        let (_, phone) = joined(&hub, user(1), &[chat(1)], 10);
        let (_, laptop) = joined(&hub, user(1), &[chat(1)], 10);
        let (_, other) = joined(&hub, user(2), &[chat(1)], 10);
        hub.broadcast(chat(1), &frame(ToClient::MessagesNew, 1), Some(user(1)));
        assert!(phone.events().is_empty());
        assert!(laptop.events().is_empty());
        assert_eq!(other.events(), ["messages:new:1"]);
    }

    #[test]
    fn removed_users_hear_the_removal_and_then_nothing_more() {
        let hub = Hub::default();
        let (_, owner) = joined(&hub, user(1), &[chat(1)], 10);
        let (_, phone) = joined(&hub, user(2), &[chat(1)], 10);
        let (_, laptop) = joined(&hub, user(2), &[], 10);
        hub.remove_users(chat(1), &[user(2)], &frame(ToClient::ChatsMemberRemoved, 2));
        hub.broadcast(chat(1), &frame(ToClient::MessagesNew, 3), None);
        assert_eq!(owner.events(), ["chats:member:removed:2", "messages:new:3"]);
        assert_eq!(phone.events(), ["chats:member:removed:2"]);
        assert_eq!(laptop.events(), ["chats:member:removed:2"]);
        assert_eq!(hub.room_size(chat(1)), 1);
    }

    #[test]
    fn a_join_checked_before_a_removal_does_not_slip_in_after_it() {
        let hub = Hub::default();
        let probe = Probe::new(10);
        let id = hub.register(user(2), probe);
        let checked_at = hub.generation();
        hub.remove_users(chat(1), &[user(2)], &frame(ToClient::ChatsMemberRemoved, 2));
        assert!(!hub.join(id, &[chat(1)], checked_at));
        assert_eq!(hub.room_size(chat(1)), 0);
    }

    #[test]
    fn closing_a_room_tells_it_and_empties_it() {
        let hub = Hub::default();
        let (_, a) = joined(&hub, user(1), &[chat(1)], 10);
        hub.close_room(chat(1), &frame(ToClient::ChatsDeleted, 1));
        hub.broadcast(chat(1), &frame(ToClient::MessagesNew, 2), None);
        assert_eq!(a.events(), ["chats:deleted:1"]);
        assert_eq!(hub.room_size(chat(1)), 0);
    }

    #[test]
    fn a_connection_over_its_budget_is_closed_as_slow_and_the_others_still_receive() {
        let hub = Hub::default();
        let (_, slow) = joined(&hub, user(1), &[chat(1)], 1);
        let (_, fast) = joined(&hub, user(2), &[chat(1)], 10);
        hub.broadcast(chat(1), &frame(ToClient::MessagesNew, 1), None);
        assert_eq!(slow.closed_for(), None);
        hub.broadcast(chat(1), &frame(ToClient::MessagesNew, 2), None);
        assert_eq!(slow.closed_for(), Some(CloseReason::Slow));
        assert_eq!(fast.events(), ["messages:new:1", "messages:new:2"]);
        // The cut-off connection is forgotten: only the fast one is left in the room.
        assert_eq!(hub.room_size(chat(1)), 1);
        assert_eq!(hub.connections(), 1);
    }

    #[test]
    fn connections_whose_token_expired_are_closed_and_forgotten_and_no_others() {
        let hub = Hub::default();
        let expiring = Probe::new(10);
        let lasting = Probe::new(10);
        hub.register_until(user(1), expiring.clone(), 100);
        let kept = hub.register_until(user(2), lasting.clone(), 200);
        assert!(hub.join(kept, &[chat(1)], hub.generation()));
        assert_eq!(hub.close_expired(99), 0);
        assert_eq!(hub.close_expired(100), 1);
        assert_eq!(expiring.closed_for(), Some(CloseReason::TokenExpired));
        assert_eq!(lasting.closed_for(), None);
        assert_eq!(hub.connections(), 1);
        assert_eq!(hub.room_size(chat(1)), 1);
    }

    #[test]
    fn unregistering_leaves_every_room() {
        let hub = Hub::default();
        let (id, _) = joined(&hub, user(1), &[chat(1), chat(2)], 10);
        hub.unregister(id);
        assert_eq!(hub.room_size(chat(1)), 0);
        assert_eq!(hub.room_size(chat(2)), 0);
        assert_eq!(hub.connections(), 0);
    }

    #[test]
    fn leaving_a_room_one_is_not_in_is_harmless() {
        let hub = Hub::default();
        let (id, _) = joined(&hub, user(1), &[chat(1)], 10);
        hub.leave(id, &[chat(2), chat(1)]);
        assert_eq!(hub.room_size(chat(1)), 0);
    }
}
