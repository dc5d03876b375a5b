//! What a socket may ask, whatever its protocol: the contract's client events, parsed
//! into domain values and answered by the use cases. Failures become the payload of an
//! `exception` event here, and only here.

use std::pin::Pin;
use std::sync::Arc;

use app::chats::RoomSeats;
use app::messages::Draft;
use app::{App, AppError, QueuedSend};
use domain::{ChatId, ChatIds, ClientMsgId, HistoryPage, InvalidInput, MessageContent, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use wire::MessageView;
use wire::events::{
    self, AckError, CreateMessage, ExceptionPayload, FromClient, GetMessages, ToClient,
};

use crate::hub::{ConnId, Hub};

/// How a client event is answered.
pub enum Handled {
    /// At once.
    Done(Result<Success, Exception>),
    /// A message queued for storing (its place in its chat is fixed): the future
    /// answers once it is stored and announced.
    InFlight(Pin<Box<dyn Future<Output = Result<Success, Exception>> + Send>>),
}

/// A handled event's answer: the payload for the ack, and the success event to send
/// to the caller (none for `messages:create`, whose success is the room's
/// `messages:new`).
#[derive(Debug)]
pub struct Success {
    /// Event to emit to the caller with the payload, if any.
    pub event: Option<ToClient>,
    /// The payload, serialised once.
    pub payload: Box<RawValue>,
}

/// A failed event: sent to the caller alone as `exception`, and to its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// The event that failed.
    pub event: String,
    /// Why, fit for the client.
    pub message: String,
}

impl Exception {
    fn new(event: &str, message: impl Into<String>) -> Self {
        Self {
            event: event.to_owned(),
            message: message.into(),
        }
    }

    /// The `exception` event's payload.
    pub fn payload(&self) -> ExceptionPayload<'_> {
        ExceptionPayload {
            status: "error",
            message: &self.message,
            event: &self.event,
        }
    }

    /// The ack's payload.
    pub fn ack(&self) -> AckError<'_> {
        AckError {
            status: "error",
            message: &self.message,
        }
    }
}

/// One authenticated connection's view of the application.
pub struct Session {
    app: App,
    hub: Arc<Hub>,
    conn: ConnId,
    user: UserId,
}

impl Session {
    /// A session for connection `conn` of `user`.
    pub fn new(app: App, hub: Arc<Hub>, conn: ConnId, user: UserId) -> Self {
        Self {
            app,
            hub,
            conn,
            user,
        }
    }

    /// Handles one client event. A `messages:create` is answered [`Handled::InFlight`]
    /// once its message is queued, so that the connection may go on with its next
    /// event; every other event is answered [`Handled::Done`].
    pub async fn handle(&self, event: &str, data: Value) -> Handled {
        let Some(known) = FromClient::from_name(event) else {
            return Handled::Done(Err(Exception::new(event, "unknown event")));
        };
        let result = match known {
            FromClient::ChatsConnect => self.connect(data).await,
            FromClient::ChatsDisconnect => self.disconnect(data),
            FromClient::MessagesCreate => match self.create(data).await {
                Ok(queued) => {
                    return Handled::InFlight(Box::pin(async move {
                        queued
                            .finish()
                            .await
                            .and_then(|message| success(None, &MessageView::from(&message)))
                            .map_err(|err| Exception::new(known.name(), describe(&err)))
                    }));
                }
                Err(err) => Err(err),
            },
            FromClient::MessagesGet => self.get(data).await,
        };
        Handled::Done(result.map_err(|err| Exception::new(event, describe(&err))))
    }

    /// Whether `event` may be handled while sends of the same connection are still in
    /// flight: only another send. Any other event waits for them, so that what a
    /// client asks after sending (leaving the room, reading the history) sees its
    /// sends done.
    pub fn overtakes_sends_in_flight(event: &str) -> bool {
        FromClient::from_name(event) == Some(FromClient::MessagesCreate)
    }

    async fn connect(&self, data: Value) -> Result<Success, AppError> {
        let events::ChatIds { chat_ids } = parse(data)?;
        let chats = ChatIds::parse(&chat_ids)?;
        let seats = Seats {
            hub: &self.hub,
            conn: self.conn,
        };
        self.app.chats.join_rooms(self.user, &chats, &seats).await?;
        success(
            FromClient::ChatsConnect.success(),
            &events::ChatIds {
                chat_ids: strings(chats.as_slice()),
            },
        )
    }

    fn disconnect(&self, data: Value) -> Result<Success, AppError> {
        let events::ChatIds { chat_ids } = parse(data)?;
        let chats = ChatIds::parse_to_leave(&chat_ids)?;
        self.hub.leave(self.conn, chats.as_slice());
        success(
            FromClient::ChatsDisconnect.success(),
            &events::ChatIds {
                chat_ids: strings(chats.as_slice()),
            },
        )
    }

    async fn create(&self, data: Value) -> Result<QueuedSend, AppError> {
        let CreateMessage {
            chat_id,
            content,
            client_msg_id,
        } = parse(data)?;
        let chat = ChatId::parse(&chat_id, "chatId")?;
        let draft = MessageContent::parse(content).and_then(|content| {
            let client_msg_id = client_msg_id.map(ClientMsgId::parse).transpose()?;
            Ok(Draft {
                content,
                client_msg_id,
            })
        });
        self.app.messages.queue_send(self.user, chat, draft).await
    }

    async fn get(&self, data: Value) -> Result<Success, AppError> {
        let GetMessages {
            chat_id,
            take,
            skip,
            before,
        } = parse(data)?;
        let chat = ChatId::parse(&chat_id, "chatId")?;
        let page = HistoryPage::parse(take, "take", skip, before.as_deref());
        let messages = self.app.messages.history(self.user, chat, page).await?;
        success(
            FromClient::MessagesGet.success(),
            &wire::views::<_, MessageView>(&messages),
        )
    }
}

/// A connection's seats in the hub's rooms, for the app's join.
struct Seats<'a> {
    hub: &'a Hub,
    conn: ConnId,
}

impl RoomSeats for Seats<'_> {
    fn mark(&self) -> u64 {
        self.hub.generation()
    }

    fn join_unless_changed(&self, chats: &[ChatId], mark: u64) -> bool {
        self.hub.join(self.conn, chats, mark)
    }
}

fn parse<T: DeserializeOwned>(data: Value) -> Result<T, InvalidInput> {
    serde_json::from_value(data)
        .map_err(|err| InvalidInput::new("", format!("invalid payload: {err}")))
}

fn strings(ids: &[ChatId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn success<T: Serialize>(event: Option<ToClient>, payload: &T) -> Result<Success, AppError> {
    let payload = serde_json::value::to_raw_value(payload).map_err(AppError::internal)?;
    Ok(Success { event, payload })
}

/// The one place a failure becomes a socket client's `message`.
fn describe(err: &AppError) -> String {
    match err {
        AppError::Internal(source) => {
            tracing::error!(error = %source, source = ?source, "socket event failed on our side");
            "internal error".to_owned()
        }
        AppError::Unavailable(source) => {
            tracing::warn!(error = %source, source = ?source, "the database is unreachable");
            err.to_string()
        }
        AppError::UnknownUsers(_)
        | AppError::Invalid(_)
        | AppError::UsernameTaken
        | AppError::InvalidCredentials
        | AppError::Unauthenticated
        | AppError::ChatNotFound
        | AppError::NotMember
        | AppError::NotOwner => err.to_string(),
    }
}
