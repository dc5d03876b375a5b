//! The access checks every chat operation begins with, in the contract's order:
//! the chat must exist (`404`), then the caller must hold the role (`403`).

use domain::ports::ChatRepository;
use domain::{Chat, ChatId, UserId};

use crate::AppError;

/// The chat, if the caller is a member of it.
pub(crate) async fn chat_for_member(
    chats: &dyn ChatRepository,
    caller: UserId,
    id: ChatId,
) -> Result<Chat, AppError> {
    // One look-up for both checks: this runs before every message sent.
    let (chat, is_member) = chats
        .find_with_member(id, caller)
        .await?
        .ok_or(AppError::ChatNotFound)?;
    if is_member || chat.is_owned_by(caller) {
        Ok(chat)
    } else {
        Err(AppError::NotMember)
    }
}

/// The chat, if the caller owns it.
pub(crate) async fn chat_for_owner(
    chats: &dyn ChatRepository,
    caller: UserId,
    id: ChatId,
) -> Result<Chat, AppError> {
    let chat = existing_chat(chats, id).await?;
    if chat.is_owned_by(caller) {
        Ok(chat)
    } else {
        Err(AppError::NotOwner)
    }
}

async fn existing_chat(chats: &dyn ChatRepository, id: ChatId) -> Result<Chat, AppError> {
    chats.find(id).await?.ok_or(AppError::ChatNotFound)
}
