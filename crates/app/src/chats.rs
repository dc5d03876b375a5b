//! Chats and membership: create, list, add and remove members, leave, delete, and the
//! room-joining check of the real-time adapters.

use std::sync::Arc;

use domain::ports::{ChatRepository, RoomEvents, UserRepository};
use domain::{
    Chat, ChatId, ChatIds, ChatMember, ChatName, InvalidInput, MemberIds, Removal, RoomEvent,
    StoreError, UserId,
};
use tracing::instrument;

use crate::access::{chat_for_member, chat_for_owner};
use crate::{AppError, Input, UnknownMember};

/// How often [`ChatService::join_rooms`] checks again when removals race with it.
const JOIN_ATTEMPTS: usize = 5;

/// One connection's seats in the chat rooms of the real-time adapter, as
/// [`ChatService::join_rooms`] needs them.
pub trait RoomSeats: Send + Sync {
    /// A mark of the rooms' state, taken before membership is checked.
    fn mark(&self) -> u64;

    /// Joins the rooms of `chats`, unless a member was removed or a chat deleted
    /// anywhere since `mark` (then nothing is joined); returns whether it joined.
    fn join_unless_changed(&self, chats: &[ChatId], mark: u64) -> bool;
}

/// Use cases of chats and their membership.
#[derive(Clone)]
pub struct ChatService {
    chats: Arc<dyn ChatRepository>,
    users: Arc<dyn UserRepository>,
    rooms: Arc<dyn RoomEvents>,
}

impl ChatService {
    /// Builds the service over its ports.
    pub fn new(
        chats: Arc<dyn ChatRepository>,
        users: Arc<dyn UserRepository>,
        rooms: Arc<dyn RoomEvents>,
    ) -> Self {
        Self {
            chats,
            users,
            rooms,
        }
    }

    /// Creates a chat owned by the caller, who becomes its first member, with `members`
    /// added too. All or nothing: an unknown member stores nothing.
    ///
    /// # Errors
    /// [`AppError::UnknownUsers`] when a member names no user.
    #[instrument(skip_all, fields(caller = %caller))]
    pub async fn create_chat(
        &self,
        caller: UserId,
        name: ChatName,
        members: Option<MemberIds>,
    ) -> Result<Chat, AppError> {
        let ids = members.as_ref().map(MemberIds::unique).unwrap_or_default();
        if let Some(members) = &members {
            self.ensure_users_exist(members).await?;
        }
        let chat = match self.chats.create(&name, caller, &ids).await {
            // A member vanished between the check and the write.
            Err(StoreError::UnknownUser) => {
                return Err(self.unknown_users_in(members.as_ref()).await);
            }
            other => other?,
        };
        tracing::info!(chat_id = %chat.id, members = ids.len(), "chat created");
        Ok(chat)
    }

    /// The chats the caller is a member of, newest first.
    ///
    /// # Errors
    /// [`AppError::Internal`] only.
    #[instrument(skip_all, fields(caller = %caller))]
    pub async fn list_chats(&self, caller: UserId) -> Result<Vec<Chat>, AppError> {
        Ok(self.chats.list_for_member(caller).await?)
    }

    /// The members of a chat the caller belongs to, in order of joining.
    ///
    /// # Errors
    /// [`AppError::ChatNotFound`], then [`AppError::NotMember`].
    #[instrument(skip_all, fields(caller = %caller, chat_id = %chat_id))]
    pub async fn list_members(
        &self,
        caller: UserId,
        chat_id: ChatId,
    ) -> Result<Vec<ChatMember>, AppError> {
        chat_for_member(self.chats.as_ref(), caller, chat_id).await?;
        Ok(self.chats.members(chat_id).await?)
    }

    /// Adds members to a chat the caller owns; returns how many were newly added.
    ///
    /// # Errors
    /// In order: [`AppError::ChatNotFound`], [`AppError::NotOwner`], the input's
    /// [`AppError::Invalid`], [`AppError::UnknownUsers`].
    #[instrument(skip_all, fields(caller = %caller, chat_id = %chat_id))]
    pub async fn add_members(
        &self,
        caller: UserId,
        chat_id: ChatId,
        members: Input<MemberIds>,
    ) -> Result<usize, AppError> {
        chat_for_owner(self.chats.as_ref(), caller, chat_id).await?;
        let members = members?;
        self.ensure_users_exist(&members).await?;
        let added = match self.chats.add_members(chat_id, &members.unique()).await {
            Err(StoreError::UnknownUser) => {
                return Err(self.unknown_users_in(Some(&members)).await);
            }
            other => other?,
        };
        if !added.is_empty() {
            self.rooms
                .publish(RoomEvent::MembersAdded {
                    chat: chat_id,
                    users: added.clone(),
                })
                .await;
        }
        Ok(added.len())
    }

    /// Removes members from a chat the caller owns. When the owner is among them, the
    /// whole chat is deleted.
    ///
    /// # Errors
    /// In order: [`AppError::ChatNotFound`], [`AppError::NotOwner`], the input's
    /// [`AppError::Invalid`], [`AppError::UnknownUsers`].
    #[instrument(skip_all, fields(caller = %caller, chat_id = %chat_id))]
    pub async fn remove_members(
        &self,
        caller: UserId,
        chat_id: ChatId,
        members: Input<MemberIds>,
    ) -> Result<(), AppError> {
        let chat = chat_for_owner(self.chats.as_ref(), caller, chat_id).await?;
        let members = members?;
        self.ensure_users_exist(&members).await?;
        let ids = members.unique();
        match chat.removal_of(&ids) {
            Removal::DeleteChat => self.delete(chat_id).await,
            Removal::RemoveMembers => self.remove(chat_id, &ids).await,
        }
    }

    /// The caller leaves a chat; when the caller is its owner, the chat is deleted.
    ///
    /// # Errors
    /// [`AppError::ChatNotFound`], then [`AppError::NotMember`].
    #[instrument(skip_all, fields(caller = %caller, chat_id = %chat_id))]
    pub async fn leave_chat(&self, caller: UserId, chat_id: ChatId) -> Result<(), AppError> {
        let chat = chat_for_member(self.chats.as_ref(), caller, chat_id).await?;
        match chat.removal_of(&[caller]) {
            Removal::DeleteChat => self.delete(chat_id).await,
            Removal::RemoveMembers => self.remove(chat_id, &[caller]).await,
        }
    }

    /// Deletes a chat the caller owns, with its members and messages.
    ///
    /// # Errors
    /// [`AppError::ChatNotFound`], then [`AppError::NotOwner`].
    #[instrument(skip_all, fields(caller = %caller, chat_id = %chat_id))]
    pub async fn delete_chat(&self, caller: UserId, chat_id: ChatId) -> Result<(), AppError> {
        chat_for_owner(self.chats.as_ref(), caller, chat_id).await?;
        self.delete(chat_id).await
    }

    /// Puts a connection of the caller in the rooms of all `chats` (a socket's
    /// `chats:connect`), all or nothing, if the caller is a member of each. A removal
    /// that lands between the check and the join would otherwise let a removed member
    /// in: the join then fails and the check is made again.
    ///
    /// # Errors
    /// [`AppError::NotMember`] when the caller is not a member of one of them (or it
    /// does not exist: a socket learns nothing about chats it is not in);
    /// [`AppError::Invalid`] when membership kept changing through every attempt.
    #[instrument(skip_all, fields(caller = %caller, chats = chats.as_slice().len()))]
    pub async fn join_rooms(
        &self,
        caller: UserId,
        chats: &ChatIds,
        seats: &dyn RoomSeats,
    ) -> Result<(), AppError> {
        for _ in 0..JOIN_ATTEMPTS {
            let mark = seats.mark();
            self.authorize_rooms(caller, chats.as_slice()).await?;
            if seats.join_unless_changed(chats.as_slice(), mark) {
                return Ok(());
            }
        }
        Err(InvalidInput::new("chatIds", "membership changed while joining; try again").into())
    }

    /// Whether the caller is a member of every one of `chat_ids`.
    async fn authorize_rooms(&self, caller: UserId, chat_ids: &[ChatId]) -> Result<(), AppError> {
        if self.chats.not_member_of(caller, chat_ids).await?.is_empty() {
            Ok(())
        } else {
            Err(AppError::NotMember)
        }
    }

    /// The ids of a chat's members, or `None` when the chat does not exist: what
    /// rooms are checked against (a cluster node that missed room events while its
    /// broker was away corrects its rooms with it).
    ///
    /// # Errors
    /// [`AppError::Unavailable`] or [`AppError::Internal`] when the store fails.
    #[instrument(skip_all, fields(chat_id = %chat_id))]
    pub async fn member_ids(
        &self,
        chat_id: ChatId,
    ) -> Result<Option<std::collections::HashSet<UserId>>, AppError> {
        if self.chats.find(chat_id).await?.is_none() {
            return Ok(None);
        }
        let members = self.chats.members(chat_id).await?;
        Ok(Some(
            members.into_iter().map(|member| member.user_id).collect(),
        ))
    }

    async fn delete(&self, chat_id: ChatId) -> Result<(), AppError> {
        if self.chats.delete(chat_id).await? {
            tracing::info!(chat_id = %chat_id, "chat deleted");
            self.rooms
                .publish(RoomEvent::ChatDeleted { chat: chat_id })
                .await;
        }
        Ok(())
    }

    async fn remove(&self, chat_id: ChatId, ids: &[UserId]) -> Result<(), AppError> {
        let removed = self.chats.remove_members(chat_id, ids).await?;
        if !removed.is_empty() {
            self.rooms
                .publish(RoomEvent::MembersRemoved {
                    chat: chat_id,
                    users: removed,
                })
                .await;
        }
        Ok(())
    }

    /// Fails with [`AppError::UnknownUsers`] naming each listed id that is no user.
    async fn ensure_users_exist(&self, members: &MemberIds) -> Result<(), AppError> {
        let missing = self.users.missing(&members.unique()).await?;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(unknown_members(members, &missing))
        }
    }

    /// The error for a write that found a member gone after the existence check.
    async fn unknown_users_in(&self, members: Option<&MemberIds>) -> AppError {
        let Some(members) = members else {
            return AppError::UnknownUsers(Vec::new());
        };
        match self.users.missing(&members.unique()).await {
            Ok(missing) => unknown_members(members, &missing),
            Err(err) => err.into(),
        }
    }
}

fn unknown_members(members: &MemberIds, missing: &[UserId]) -> AppError {
    let unknown = members
        .as_given()
        .iter()
        .enumerate()
        .filter(|(_, id)| missing.contains(id))
        .map(|(index, id)| UnknownMember { index, id: *id })
        .collect();
    AppError::UnknownUsers(unknown)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::ports::{MockChatRepository, MockRoomEvents, MockUserRepository};
    use domain::{InvalidInput, StoreError};
    use mockall::predicate::eq;

    use super::*;
    use crate::test_support::{chat, chat_id, user_id};

    /// Chat 1 is owned by user 1; user 2 is a member; user 3 is not.
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

    fn all_users_exist() -> MockUserRepository {
        let mut users = MockUserRepository::new();
        users.expect_missing().returning(|_| Ok(Vec::new()));
        users
    }

    /// Chat 1 as above, with no user lookups or notifications expected.
    fn chat_1_service() -> ChatService {
        service(
            chats_with_chat_1(),
            MockUserRepository::new(),
            MockRoomEvents::new(),
        )
    }

    fn service(
        chats: MockChatRepository,
        users: MockUserRepository,
        rooms: MockRoomEvents,
    ) -> ChatService {
        ChatService::new(Arc::new(chats), Arc::new(users), Arc::new(rooms))
    }

    fn members(ids: &[u128]) -> MemberIds {
        MemberIds::new(ids.iter().map(|n| user_id(*n)).collect()).unwrap()
    }

    fn invalid_body() -> Input<MemberIds> {
        Err(InvalidInput::new("members", "must not be empty"))
    }

    #[tokio::test]
    async fn create_chat_makes_the_caller_owner_and_adds_each_member_once() {
        let mut chats = MockChatRepository::new();
        chats
            .expect_create()
            .withf(|name, owner, members| {
                name.as_str() == "general"
                    && *owner == user_id(1)
                    && members == [user_id(2), user_id(3)]
            })
            .returning(|_, _, _| Ok(chat(1, 1)));
        let svc = service(chats, all_users_exist(), MockRoomEvents::new());

        let created = svc
            .create_chat(
                user_id(1),
                ChatName::parse("general").unwrap(),
                Some(members(&[2, 3, 2])),
            )
            .await
            .unwrap();
        assert_eq!(created.owner_id, user_id(1));
    }

    #[tokio::test]
    async fn create_chat_without_members_checks_no_users() {
        let mut chats = MockChatRepository::new();
        chats
            .expect_create()
            .withf(|_, _, members| members.is_empty())
            .returning(|_, _, _| Ok(chat(1, 1)));
        let svc = service(chats, MockUserRepository::new(), MockRoomEvents::new());
        assert!(
            svc.create_chat(user_id(1), ChatName::parse("x").unwrap(), None)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn create_chat_with_an_unknown_member_names_it_and_stores_nothing() {
        let mut users = MockUserRepository::new();
        users.expect_missing().returning(|_| Ok(vec![user_id(9)]));
        let svc = service(MockChatRepository::new(), users, MockRoomEvents::new());

        let err = svc
            .create_chat(
                user_id(1),
                ChatName::parse("x").unwrap(),
                Some(members(&[2, 9])),
            )
            .await
            .unwrap_err();
        match err {
            AppError::UnknownUsers(unknown) => {
                assert_eq!(
                    unknown,
                    vec![UnknownMember {
                        index: 1,
                        id: user_id(9)
                    }]
                );
            }
            other => panic!("expected unknown users, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn create_chat_reports_a_member_that_vanished_during_the_write() {
        let mut users = MockUserRepository::new();
        let mut calls = 0;
        users.expect_missing().returning(move |_| {
            calls += 1;
            Ok(if calls == 1 { vec![] } else { vec![user_id(2)] })
        });
        let mut chats = MockChatRepository::new();
        chats
            .expect_create()
            .returning(|_, _, _| Err(StoreError::UnknownUser));
        let svc = service(chats, users, MockRoomEvents::new());

        let err = svc
            .create_chat(
                user_id(1),
                ChatName::parse("x").unwrap(),
                Some(members(&[2])),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppError::UnknownUsers(u) if u == vec![UnknownMember { index: 0, id: user_id(2) }])
        );
    }

    #[tokio::test]
    async fn listing_members_of_an_unknown_chat_is_not_found() {
        let svc = chat_1_service();
        assert!(matches!(
            svc.list_members(user_id(1), chat_id(2)).await,
            Err(AppError::ChatNotFound)
        ));
    }

    #[tokio::test]
    async fn listing_members_as_a_non_member_is_forbidden() {
        let svc = chat_1_service();
        assert!(matches!(
            svc.list_members(user_id(3), chat_id(1)).await,
            Err(AppError::NotMember)
        ));
    }

    #[tokio::test]
    async fn a_member_lists_the_members() {
        let mut chats = chats_with_chat_1();
        chats
            .expect_members()
            .with(eq(chat_id(1)))
            .returning(|_| Ok(Vec::new()));
        let svc = service(chats, MockUserRepository::new(), MockRoomEvents::new());
        assert!(svc.list_members(user_id(2), chat_id(1)).await.is_ok());
    }

    #[tokio::test]
    async fn adding_to_an_unknown_chat_is_not_found_before_the_body_is_judged() {
        let svc = chat_1_service();
        let err = svc
            .add_members(user_id(1), chat_id(5), invalid_body())
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::ChatNotFound));
    }

    #[tokio::test]
    async fn adding_as_a_member_who_is_not_the_owner_is_forbidden_before_the_body_is_judged() {
        let svc = chat_1_service();
        let err = svc
            .add_members(user_id(2), chat_id(1), invalid_body())
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::NotOwner));
    }

    #[tokio::test]
    async fn adding_with_an_invalid_body_as_owner_is_invalid_input() {
        let svc = chat_1_service();
        let err = svc
            .add_members(user_id(1), chat_id(1), invalid_body())
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Invalid(e) if e.field() == "members"));
    }

    #[tokio::test]
    async fn adding_an_unknown_user_names_it_and_adds_no_one() {
        let mut users = MockUserRepository::new();
        users.expect_missing().returning(|_| Ok(vec![user_id(8)]));
        let svc = service(chats_with_chat_1(), users, MockRoomEvents::new());
        let err = svc
            .add_members(user_id(1), chat_id(1), Ok(members(&[3, 8])))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppError::UnknownUsers(u) if u == vec![UnknownMember { index: 1, id: user_id(8) }])
        );
    }

    #[tokio::test]
    async fn adding_counts_and_announces_only_the_newly_added() {
        let mut chats = chats_with_chat_1();
        chats
            .expect_add_members()
            .withf(|_, users| users == [user_id(2), user_id(3)])
            .returning(|_, _| Ok(vec![user_id(3)]));
        let mut rooms = MockRoomEvents::new();
        rooms
            .expect_publish()
            .withf(|event| {
                matches!(event, RoomEvent::MembersAdded { chat, users }
                    if *chat == chat_id(1) && users == &[user_id(3)])
            })
            .times(1)
            .return_const(());
        let svc = service(chats, all_users_exist(), rooms);

        assert_eq!(
            svc.add_members(user_id(1), chat_id(1), Ok(members(&[2, 3, 3])))
                .await
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn adding_only_existing_members_announces_nothing() {
        let mut chats = chats_with_chat_1();
        chats.expect_add_members().returning(|_, _| Ok(Vec::new()));
        let svc = service(chats, all_users_exist(), MockRoomEvents::new());
        assert_eq!(
            svc.add_members(user_id(1), chat_id(1), Ok(members(&[2])))
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn removing_checks_existence_then_ownership_then_the_body() {
        let svc = chat_1_service();
        assert!(matches!(
            svc.remove_members(user_id(1), chat_id(4), invalid_body())
                .await,
            Err(AppError::ChatNotFound)
        ));
        assert!(matches!(
            svc.remove_members(user_id(2), chat_id(1), invalid_body())
                .await,
            Err(AppError::NotOwner)
        ));
        assert!(matches!(
            svc.remove_members(user_id(3), chat_id(1), invalid_body())
                .await,
            Err(AppError::NotOwner)
        ));
        assert!(matches!(
            svc.remove_members(user_id(1), chat_id(1), invalid_body())
                .await,
            Err(AppError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn removing_an_unknown_user_names_it() {
        let mut users = MockUserRepository::new();
        users.expect_missing().returning(|_| Ok(vec![user_id(9)]));
        let svc = service(chats_with_chat_1(), users, MockRoomEvents::new());
        let err = svc
            .remove_members(user_id(1), chat_id(1), Ok(members(&[9])))
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::UnknownUsers(u) if u.len() == 1));
    }

    #[tokio::test]
    async fn removing_members_takes_them_out_and_tells_their_sockets() {
        let mut chats = chats_with_chat_1();
        chats
            .expect_remove_members()
            .withf(|chat, users| *chat == chat_id(1) && users == [user_id(2), user_id(3)])
            .returning(|_, _| Ok(vec![user_id(2)]));
        let mut rooms = MockRoomEvents::new();
        rooms
            .expect_publish()
            .withf(|event| {
                matches!(event, RoomEvent::MembersRemoved { chat, users }
                    if *chat == chat_id(1) && users == &[user_id(2)])
            })
            .times(1)
            .return_const(());
        let svc = service(chats, all_users_exist(), rooms);
        svc.remove_members(user_id(1), chat_id(1), Ok(members(&[2, 3])))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn removing_the_owner_deletes_the_whole_chat() {
        let mut chats = chats_with_chat_1();
        chats
            .expect_delete()
            .with(eq(chat_id(1)))
            .times(1)
            .returning(|_| Ok(true));
        chats.expect_remove_members().never();
        let mut rooms = MockRoomEvents::new();
        rooms
            .expect_publish()
            .with(eq(RoomEvent::ChatDeleted { chat: chat_id(1) }))
            .times(1)
            .return_const(());
        let svc = service(chats, all_users_exist(), rooms);
        svc.remove_members(user_id(1), chat_id(1), Ok(members(&[2, 1])))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn leaving_an_unknown_chat_is_not_found_and_a_strangers_leave_is_forbidden() {
        let svc = chat_1_service();
        assert!(matches!(
            svc.leave_chat(user_id(2), chat_id(3)).await,
            Err(AppError::ChatNotFound)
        ));
        assert!(matches!(
            svc.leave_chat(user_id(3), chat_id(1)).await,
            Err(AppError::NotMember)
        ));
    }

    #[tokio::test]
    async fn a_member_leaving_is_removed_live() {
        let mut chats = chats_with_chat_1();
        chats
            .expect_remove_members()
            .withf(|_, users| users == [user_id(2)])
            .returning(|_, _| Ok(vec![user_id(2)]));
        let mut rooms = MockRoomEvents::new();
        rooms
            .expect_publish()
            .withf(|event| {
                matches!(event, RoomEvent::MembersRemoved { chat, users }
                    if *chat == chat_id(1) && users == &[user_id(2)])
            })
            .times(1)
            .return_const(());
        let svc = service(chats, MockUserRepository::new(), rooms);
        svc.leave_chat(user_id(2), chat_id(1)).await.unwrap();
    }

    #[tokio::test]
    async fn the_owner_leaving_deletes_the_chat() {
        let mut chats = chats_with_chat_1();
        chats.expect_delete().times(1).returning(|_| Ok(true));
        let mut rooms = MockRoomEvents::new();
        rooms
            .expect_publish()
            .with(eq(RoomEvent::ChatDeleted { chat: chat_id(1) }))
            .times(1)
            .return_const(());
        let svc = service(chats, MockUserRepository::new(), rooms);
        svc.leave_chat(user_id(1), chat_id(1)).await.unwrap();
    }

    #[tokio::test]
    async fn deleting_checks_existence_then_ownership() {
        let svc = chat_1_service();
        assert!(matches!(
            svc.delete_chat(user_id(1), chat_id(2)).await,
            Err(AppError::ChatNotFound)
        ));
        assert!(matches!(
            svc.delete_chat(user_id(2), chat_id(1)).await,
            Err(AppError::NotOwner)
        ));
    }

    #[tokio::test]
    async fn the_owner_deletes_the_chat_and_its_room_is_told() {
        let mut chats = chats_with_chat_1();
        chats.expect_delete().times(1).returning(|_| Ok(true));
        let mut rooms = MockRoomEvents::new();
        rooms
            .expect_publish()
            .with(eq(RoomEvent::ChatDeleted { chat: chat_id(1) }))
            .times(1)
            .return_const(());
        let svc = service(chats, MockUserRepository::new(), rooms);
        svc.delete_chat(user_id(1), chat_id(1)).await.unwrap();
    }

    #[tokio::test]
    async fn a_chat_deleted_concurrently_is_not_announced_twice() {
        let mut chats = chats_with_chat_1();
        chats.expect_delete().returning(|_| Ok(false));
        let svc = service(chats, MockUserRepository::new(), MockRoomEvents::new());
        svc.delete_chat(user_id(1), chat_id(1)).await.unwrap();
    }

    /// Rooms whose state changes `changes` times before a join can succeed.
    struct Seats {
        changes: std::sync::atomic::AtomicUsize,
        joined: std::sync::Mutex<Vec<ChatId>>,
    }

    impl Seats {
        fn changing(times: usize) -> Self {
            Self {
                changes: times.into(),
                joined: std::sync::Mutex::default(),
            }
        }
    }

    impl RoomSeats for Seats {
        fn mark(&self) -> u64 {
            0
        }
        fn join_unless_changed(&self, chats: &[ChatId], _mark: u64) -> bool {
            use std::sync::atomic::Ordering;
            let left = self.changes.load(Ordering::SeqCst);
            if left > 0 {
                self.changes.store(left - 1, Ordering::SeqCst);
                return false;
            }
            self.joined.lock().unwrap().extend_from_slice(chats);
            true
        }
    }

    fn chat_ids(ns: &[u128]) -> ChatIds {
        let raw: Vec<String> = ns.iter().map(|n| chat_id(*n).to_string()).collect();
        ChatIds::parse(&raw).unwrap()
    }

    fn member_of_chat_1_only() -> MockChatRepository {
        let mut chats = MockChatRepository::new();
        chats
            .expect_not_member_of()
            .returning(|_, ids| Ok(ids.iter().copied().filter(|id| *id != chat_id(1)).collect()));
        chats
    }

    #[tokio::test]
    async fn joining_rooms_is_all_or_nothing() {
        let svc = service(
            member_of_chat_1_only(),
            MockUserRepository::new(),
            MockRoomEvents::new(),
        );
        let seats = Seats::changing(0);
        assert!(matches!(
            svc.join_rooms(user_id(2), &chat_ids(&[1, 2]), &seats).await,
            Err(AppError::NotMember)
        ));
        assert!(seats.joined.lock().unwrap().is_empty());
        svc.join_rooms(user_id(2), &chat_ids(&[1]), &seats)
            .await
            .unwrap();
        assert_eq!(*seats.joined.lock().unwrap(), [chat_id(1)]);
    }

    #[tokio::test]
    async fn a_join_that_races_a_removal_checks_membership_again() {
        let mut chats = MockChatRepository::new();
        chats
            .expect_not_member_of()
            .times(3)
            .returning(|_, _| Ok(Vec::new()));
        let svc = service(chats, MockUserRepository::new(), MockRoomEvents::new());
        let seats = Seats::changing(2);
        svc.join_rooms(user_id(2), &chat_ids(&[1]), &seats)
            .await
            .unwrap();
        assert_eq!(*seats.joined.lock().unwrap(), [chat_id(1)]);

        // Membership that never settles is a clear error, not an endless loop.
        let svc = service(
            member_of_chat_1_only(),
            MockUserRepository::new(),
            MockRoomEvents::new(),
        );
        let seats = Seats::changing(usize::MAX);
        let err = svc
            .join_rooms(user_id(2), &chat_ids(&[1]), &seats)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Invalid(ref invalid) if invalid.field() == "chatIds"));
        assert!(seats.joined.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_storage_failure_surfaces_as_internal() {
        let mut chats = MockChatRepository::new();
        chats
            .expect_list_for_member()
            .returning(|_| Err(StoreError::unavailable(std::io::Error::other("down"))));
        let svc = service(chats, MockUserRepository::new(), MockRoomEvents::new());
        assert!(matches!(
            svc.list_chats(user_id(1)).await,
            Err(AppError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn a_room_is_checked_against_the_chat_s_member_ids() {
        let mut chats = chats_with_chat_1();
        chats.expect_members().returning(|_| {
            Ok([1, 2]
                .map(|n| ChatMember {
                    user_id: user_id(n),
                    username: domain::Username::parse(format!("user{n}")).unwrap(),
                    joined_at: time::OffsetDateTime::UNIX_EPOCH,
                })
                .to_vec())
        });
        let svc = service(chats, MockUserRepository::new(), MockRoomEvents::new());
        assert_eq!(
            svc.member_ids(chat_id(1)).await.unwrap(),
            Some([user_id(1), user_id(2)].into_iter().collect())
        );
        // A deleted chat has no members to look up.
        assert_eq!(svc.member_ids(chat_id(9)).await.unwrap(), None);
    }
}
