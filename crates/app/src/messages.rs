//! Sending messages and reading a chat's history.

use std::sync::Arc;

use domain::ports::{ChatRepository, MessageRepository, RoomEvents};
use domain::{
    ChatId, ClientMsgId, HistoryPage, InvalidInput, Message, MessageContent, NewMessage, RoomEvent,
    StoreError, UserId,
};
use tracing::instrument;

use crate::access::chat_for_member;
use crate::ordering::{ChatLanes, Ticket};
use crate::ports::{ChatTurn, MessageQueue, QueuedMessage, SendOrder};
use crate::{AppError, Input};

/// What a sender writes: the text and an optional idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The text.
    pub content: MessageContent,
    /// The sender's idempotency key.
    pub client_msg_id: Option<ClientMsgId>,
}

/// Use cases of messages.
#[derive(Clone)]
pub struct MessageService {
    chats: Arc<dyn ChatRepository>,
    messages: Arc<dyn MessageRepository>,
    queue: Arc<dyn MessageQueue>,
    rooms: Arc<dyn RoomEvents>,
    lanes: Arc<ChatLanes>,
    send_order: Arc<dyn SendOrder>,
}

impl MessageService {
    /// Builds the service over its ports: `messages` reads history, `queue` stores new
    /// messages. `send_order` orders senders between processes
    /// ([`SingleProcess`](crate::ports::SingleProcess) for a server that runs alone).
    pub fn new(
        chats: Arc<dyn ChatRepository>,
        messages: Arc<dyn MessageRepository>,
        queue: Arc<dyn MessageQueue>,
        rooms: Arc<dyn RoomEvents>,
        send_order: Arc<dyn SendOrder>,
    ) -> Self {
        Self {
            chats,
            messages,
            queue,
            rooms,
            lanes: Arc::default(),
            send_order,
        }
    }

    /// Stores a message from a member, then has it delivered to the chat's room. A
    /// repeated `clientMsgId` stores and delivers nothing new and returns the first
    /// message.
    ///
    /// # Errors
    /// In order: [`AppError::ChatNotFound`], [`AppError::NotMember`], the draft's
    /// [`AppError::Invalid`].
    pub async fn send(
        &self,
        caller: UserId,
        chat_id: ChatId,
        draft: Input<Draft>,
    ) -> Result<Message, AppError> {
        self.queue_send(caller, chat_id, draft)
            .await?
            .finish()
            .await
    }

    /// The first half of [`Self::send`]: the checks, then the message queued for
    /// storing. Its place in the chat's order is fixed when this returns, so a caller
    /// may queue its next message at once and [`QueuedSend::finish`] this one later
    /// (a connection that keeps several sends in flight).
    ///
    /// # Errors
    /// For a refused draft, as [`Self::send`]; [`AppError::Internal`] when the message
    /// cannot be queued. Whether the chat exists and the caller is a member of it is
    /// checked as the message is stored, and answered by [`QueuedSend::finish`].
    #[instrument(skip_all, fields(caller = %caller, chat_id = %chat_id))]
    pub async fn queue_send(
        &self,
        caller: UserId,
        chat_id: ChatId,
        draft: Input<Draft>,
    ) -> Result<QueuedSend, AppError> {
        // A valid message goes straight to the store, whose insert checks the chat and
        // the membership itself, in the same order: no read per message before it (the
        // largest cost of a send on PostgreSQL). Only a refused draft needs the check
        // here, since the chat's `404` and the membership's `403` come before `400`.
        let draft = match draft {
            Ok(draft) => draft,
            Err(invalid) => {
                chat_for_member(self.chats.as_ref(), caller, chat_id).await?;
                return Err(invalid.into());
            }
        };
        let new = NewMessage {
            chat_id,
            sender_id: caller,
            content: draft.content,
            client_msg_id: draft.client_msg_id,
        };
        // See `ordering`: the chat's queueing turn is held only until the message is
        // queued for storing, so the chat's messages are committed together; the
        // ticket then keeps the announcements in the stored order. Between processes
        // the shared turn (taken while queueing, so this process's senders wait for
        // it one at a time) is held until the message is announced.
        let place = self.lanes.join(chat_id).await;
        let shared_turn = self.send_order.turn(chat_id).await?;
        let queued = self.queue.enqueue(&new).await?;
        Ok(QueuedSend {
            queued,
            ticket: place.queued(),
            shared_turn,
            rooms: Arc::clone(&self.rooms),
        })
    }

    /// One page of a chat's history, newest first, for a member.
    ///
    /// # Errors
    /// In order: [`AppError::ChatNotFound`], [`AppError::NotMember`], the page's
    /// [`AppError::Invalid`] (also when `before` names no message of this chat).
    #[instrument(skip_all, fields(caller = %caller, chat_id = %chat_id))]
    pub async fn history(
        &self,
        caller: UserId,
        chat_id: ChatId,
        page: Input<HistoryPage>,
    ) -> Result<Vec<Message>, AppError> {
        chat_for_member(self.chats.as_ref(), caller, chat_id).await?;
        let page = page?;
        self.messages
            .history(chat_id, page)
            .await
            .map_err(|err| match err {
                StoreError::UnknownCursor => {
                    InvalidInput::new("before", "names no message of this chat").into()
                }
                other => other.into(),
            })
    }
}

/// A message queued by [`MessageService::queue_send`], to be stored and announced.
/// Dropping it unfinished may withdraw the message; the chat's later messages are
/// announced all the same.
#[must_use = "a queued send does nothing until it is finished"]
pub struct QueuedSend {
    queued: QueuedMessage,
    ticket: Ticket,
    shared_turn: ChatTurn,
    rooms: Arc<dyn RoomEvents>,
}

impl QueuedSend {
    /// Waits until the message is stored, then has it delivered to the chat's room
    /// after the messages queued before it; returns it (the first one, for a repeated
    /// `clientMsgId`, which delivers nothing).
    ///
    /// # Errors
    /// [`AppError::ChatNotFound`] when the chat does not exist, then
    /// [`AppError::NotMember`] when the sender is not a member of it, as the store found
    /// them when it stored the message; [`AppError::Internal`] when the store failed.
    pub async fn finish(self) -> Result<Message, AppError> {
        let Self {
            queued,
            mut ticket,
            shared_turn,
            rooms,
        } = self;
        let (message, created) = match queued.await {
            // A sender who is not a member, or no user at all (an account deleted while
            // its token still holds): either way they may not write here.
            Err(StoreError::NotMember | StoreError::UnknownUser) => {
                return Err(AppError::NotMember);
            }
            // `ChatGone` is the chat's `404`.
            other => other?,
        };
        if created {
            ticket.wait_for_predecessor().await;
            rooms
                .publish(RoomEvent::MessageCreated(message.clone()))
                .await;
        }
        // Dropped in this order: the next message may be announced (here, then on any
        // process) only after this one.
        drop(ticket);
        drop(shared_turn);
        Ok(message)
    }
}

impl std::fmt::Debug for QueuedSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedSend").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use domain::ports::{MockChatRepository, MockMessageRepository, MockRoomEvents};
    use domain::{Limit, MessageId};
    use std::time::Duration;
    use time::OffsetDateTime;
    use tokio::sync::oneshot;
    use uuid::Uuid;

    use super::*;
    use crate::ports::{ChatTurn, MockMessageQueue, MockSendOrder, SingleProcess};
    use crate::test_support::{chat, chat_id, user_id};

    fn chats_with_chat_1() -> MockChatRepository {
        let mut chats = MockChatRepository::new();
        chats
            .expect_find()
            .returning(|id| Ok((id == chat_id(1)).then(|| chat(1, 1))));
        chats.expect_find_with_member().returning(|id, user| {
            Ok((id == chat_id(1)).then(|| (chat(1, 1), user == user_id(1) || user == user_id(2))))
        });
        chats
    }

    fn draft(text: &str, client_id: Option<&str>) -> Input<Draft> {
        Ok(Draft {
            content: MessageContent::parse(text).unwrap(),
            client_msg_id: client_id.map(|c| ClientMsgId::parse(c).unwrap()),
        })
    }

    fn stored(new: &NewMessage) -> Message {
        Message {
            id: MessageId::from_uuid(Uuid::from_u128(77)),
            chat_id: new.chat_id,
            sender_id: new.sender_id,
            content: new.content.clone(),
            client_msg_id: new.client_msg_id.clone(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// A message whose store answer is known already.
    fn answered(answer: domain::ports::InsertAnswer) -> Result<QueuedMessage, StoreError> {
        Ok(Box::pin(std::future::ready(answer)))
    }

    fn page() -> Input<HistoryPage> {
        Ok(HistoryPage {
            limit: Limit::parse(None, 50, 100, "limit").unwrap(),
            skip: 0,
            before: None,
        })
    }

    /// A service that sends through `queue` (and reads no history).
    fn service(
        chats: MockChatRepository,
        queue: MockMessageQueue,
        rooms: MockRoomEvents,
    ) -> MessageService {
        MessageService::new(
            Arc::new(chats),
            Arc::new(MockMessageRepository::new()),
            Arc::new(queue),
            Arc::new(rooms),
            Arc::new(SingleProcess),
        )
    }

    /// A service that reads history from `messages` (and sends nothing).
    fn reader(chats: MockChatRepository, messages: MockMessageRepository) -> MessageService {
        MessageService::new(
            Arc::new(chats),
            Arc::new(messages),
            Arc::new(MockMessageQueue::new()),
            Arc::new(MockRoomEvents::new()),
            Arc::new(SingleProcess),
        )
    }

    /// Sets its flag when dropped: shows when a shared turn was released.
    struct ReleaseFlag(Arc<AtomicBool>);

    impl Drop for ReleaseFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_shared_turn_is_held_from_storing_until_the_message_is_announced() {
        let released = Arc::new(AtomicBool::new(false));
        let mut order = MockSendOrder::new();
        order.expect_turn().times(1).returning({
            let released = Arc::clone(&released);
            move |chat| {
                assert_eq!(chat, chat_id(1));
                Ok(ChatTurn::held_by(ReleaseFlag(Arc::clone(&released))))
            }
        });
        let mut messages = MockMessageQueue::new();
        messages.expect_enqueue().times(1).returning({
            let released = Arc::clone(&released);
            move |new| {
                assert!(!released.load(Ordering::SeqCst), "stored without the turn");
                answered(Ok((stored(new), true)))
            }
        });
        let mut rooms = MockRoomEvents::new();
        rooms.expect_publish().times(1).returning({
            let released = Arc::clone(&released);
            move |_| {
                assert!(
                    !released.load(Ordering::SeqCst),
                    "announced without the turn"
                )
            }
        });
        let svc = MessageService::new(
            Arc::new(chats_with_chat_1()),
            Arc::new(MockMessageRepository::new()),
            Arc::new(messages),
            Arc::new(rooms),
            Arc::new(order),
        );

        svc.send(user_id(2), chat_id(1), draft("hello", None))
            .await
            .unwrap();
        assert!(
            released.load(Ordering::SeqCst),
            "the turn was never released"
        );
    }

    #[tokio::test]
    async fn without_the_shared_turn_nothing_is_stored() {
        let mut order = MockSendOrder::new();
        order
            .expect_turn()
            .returning(|_| Err(StoreError::unavailable(std::io::Error::other("lock lost"))));
        let svc = MessageService::new(
            Arc::new(chats_with_chat_1()),
            Arc::new(MockMessageRepository::new()),
            Arc::new(MockMessageQueue::new()),
            Arc::new(MockRoomEvents::new()),
            Arc::new(order),
        );
        assert!(matches!(
            svc.send(user_id(2), chat_id(1), draft("hello", None)).await,
            Err(AppError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn a_member_s_message_is_stored_then_delivered() {
        let mut messages = MockMessageQueue::new();
        let mut seq = mockall::Sequence::new();
        messages
            .expect_enqueue()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|new| answered(Ok((stored(new), true))));
        let mut rooms = MockRoomEvents::new();
        rooms
            .expect_publish()
            .withf(|event| {
                matches!(event, RoomEvent::MessageCreated(m)
                    if m.content.as_str() == "hello" && m.sender_id == user_id(2))
            })
            .times(1)
            .in_sequence(&mut seq)
            .return_const(());
        let svc = service(chats_with_chat_1(), messages, rooms);

        let sent = svc
            .send(user_id(2), chat_id(1), draft("hello", Some("c-1")))
            .await
            .unwrap();
        assert_eq!(sent.client_msg_id.unwrap().as_str(), "c-1");
    }

    /// A store whose commits the test releases by hand, one gate per message queued,
    /// and the count of messages queued so far.
    fn store_with_gates(gates: Vec<oneshot::Receiver<()>>) -> (MockMessageQueue, Arc<AtomicUsize>) {
        let gates = std::sync::Mutex::new(gates.into_iter());
        let queued = Arc::new(AtomicUsize::new(0));
        let mut messages = MockMessageQueue::new();
        messages.expect_enqueue().returning({
            let queued = Arc::clone(&queued);
            move |new| {
                let gate = gates.lock().unwrap().next().expect("a gate per message");
                queued.fetch_add(1, Ordering::SeqCst);
                let message = stored(new);
                Ok(Box::pin(async move {
                    gate.await.expect("the test keeps its gates");
                    Ok((message, true))
                }))
            }
        });
        (messages, queued)
    }

    /// Waits (a few seconds at most) until `count` messages are queued.
    async fn until_queued(queued: &AtomicUsize, count: usize, why: &str) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while queued.load(Ordering::SeqCst) < count {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect(why);
    }

    #[tokio::test]
    async fn a_chat_s_messages_are_committed_together_and_announced_in_the_order_queued() {
        let (release_first, first_gate) = oneshot::channel();
        let (release_second, second_gate) = oneshot::channel();
        let announced = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut rooms = MockRoomEvents::new();
        rooms.expect_publish().times(2).returning({
            let announced = Arc::clone(&announced);
            move |event| {
                let RoomEvent::MessageCreated(m) = event else {
                    panic!("not a message: {event:?}")
                };
                announced
                    .lock()
                    .unwrap()
                    .push(m.content.as_str().to_owned())
            }
        });
        let (messages, queued) = store_with_gates(vec![first_gate, second_gate]);
        let svc = Arc::new(service(chats_with_chat_1(), messages, rooms));
        let send = |text: &'static str| {
            let svc = Arc::clone(&svc);
            tokio::spawn(async move { svc.send(user_id(2), chat_id(1), draft(text, None)).await })
        };

        let first = send("one");
        until_queued(&queued, 1, "the first was never queued").await;
        let second = send("two");
        until_queued(&queued, 2, "the second waited for the first's commit").await;
        // The second commits first, and waits for the first's announcement.
        release_second.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            announced.lock().unwrap().is_empty(),
            "the second was announced before the first"
        );
        assert!(!second.is_finished());
        release_first.send(()).unwrap();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(*announced.lock().unwrap(), ["one", "two"]);
    }

    #[tokio::test]
    async fn a_repeated_client_msg_id_returns_the_first_message_and_delivers_nothing() {
        let mut messages = MockMessageQueue::new();
        messages
            .expect_enqueue()
            .returning(|new| answered(Ok((stored(new), false))));
        let svc = service(chats_with_chat_1(), messages, MockRoomEvents::new());
        let again = svc
            .send(user_id(2), chat_id(1), draft("hello", Some("c-1")))
            .await
            .unwrap();
        assert_eq!(again.id, MessageId::from_uuid(Uuid::from_u128(77)));
    }

    #[tokio::test]
    async fn sending_checks_the_chat_then_membership_then_the_draft() {
        let svc = service(
            chats_with_chat_1(),
            MockMessageQueue::new(),
            MockRoomEvents::new(),
        );
        let bad = || Err(InvalidInput::new("content", "must not be blank"));
        assert!(matches!(
            svc.send(user_id(2), chat_id(9), bad()).await,
            Err(AppError::ChatNotFound)
        ));
        assert!(matches!(
            svc.send(user_id(3), chat_id(1), bad()).await,
            Err(AppError::NotMember)
        ));
        assert!(matches!(
            svc.send(user_id(2), chat_id(1), bad()).await,
            Err(AppError::Invalid(_))
        ));
    }

    /// A store that answers every message with `answer`, and chats that must not be
    /// read: a valid message's access check is the store's.
    fn send_answered(answer: fn() -> StoreError) -> MessageService {
        let mut chats = MockChatRepository::new();
        chats.expect_find_with_member().never();
        chats.expect_find().never();
        let mut messages = MockMessageQueue::new();
        messages
            .expect_enqueue()
            .times(1)
            .returning(move |_| answered(Err(answer())));
        let mut rooms = MockRoomEvents::new();
        rooms.expect_publish().never();
        service(chats, messages, rooms)
    }

    #[tokio::test]
    async fn a_valid_message_s_access_is_the_store_s_check() {
        // A non-member, a user that no longer exists (a token outliving its account),
        // a chat the store does not have.
        type Answer = fn() -> StoreError;
        let cases: [(Answer, &str); 3] = [
            (|| StoreError::NotMember, "NotMember"),
            (|| StoreError::UnknownUser, "NotMember"),
            (|| StoreError::ChatGone, "ChatNotFound"),
        ];
        for (answer, expected) in cases {
            let svc = send_answered(answer);
            let err = svc
                .send(user_id(3), chat_id(1), draft("x", None))
                .await
                .unwrap_err();
            assert_eq!(format!("{err:?}"), expected, "for {:?}", answer());
        }
    }

    #[tokio::test]
    async fn history_is_for_members_only() {
        let svc = reader(chats_with_chat_1(), MockMessageRepository::new());
        assert!(matches!(
            svc.history(user_id(3), chat_id(1), page()).await,
            Err(AppError::NotMember)
        ));
        assert!(matches!(
            svc.history(user_id(3), chat_id(8), page()).await,
            Err(AppError::ChatNotFound)
        ));
    }

    #[tokio::test]
    async fn history_with_an_unknown_before_is_invalid_input_on_before() {
        let mut messages = MockMessageRepository::new();
        messages
            .expect_history()
            .returning(|_, _| Err(StoreError::UnknownCursor));
        let svc = reader(chats_with_chat_1(), messages);
        let err = svc
            .history(user_id(2), chat_id(1), page())
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Invalid(e) if e.field() == "before"));
    }

    #[tokio::test]
    async fn one_look_up_serves_both_access_checks() {
        let mut chats = MockChatRepository::new();
        chats
            .expect_find_with_member()
            .times(1)
            .returning(|_, _| Ok(Some((chat(1, 1), true))));
        chats.expect_find().never();
        let mut messages = MockMessageRepository::new();
        messages.expect_history().returning(|_, _| Ok(Vec::new()));
        let svc = reader(chats, messages);
        assert!(
            svc.history(user_id(2), chat_id(1), page())
                .await
                .unwrap()
                .is_empty()
        );
    }
}
