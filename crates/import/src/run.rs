//! The move itself: read every row from a [`Source`], apply our rules (reporting every
//! row they change), and store the rows in a [`Sink`] in batches, users first and
//! messages last, each chat's messages in their history's order.
//!
//! A move can be run again, after a success or an interruption: every row keeps its
//! id, the sink stores only the rows it does not have yet, and the rules give the same
//! answers for the same source, so nothing is stored twice and nothing is left out.

use std::collections::{HashMap, HashSet};

use domain::{
    Chat, ChatId, Message, MessageId, PasswordHash, StoreError, User, UserCredentials, UserId,
    Username,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ports::{
    Membership, Progress, Sink, Source, SourceChat, SourceError, SourceMember, SourceMessage,
    SourceUser, Stage,
};
use crate::problems::{Problem, ProblemKind, Row};
use crate::rules;

/// How a move runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Read and check everything, report what would be stored, store nothing.
    pub dry_run: bool,
    /// Apply the rules that lose text (a chat name cut to our length) rather than
    /// refuse the move.
    pub accept_lossy: bool,
    /// Messages stored per transaction.
    pub batch_size: usize,
    /// Message batches stored at once (each chat's messages always by the same one).
    pub writers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dry_run: false,
            accept_lossy: false,
            batch_size: 10_000,
            writers: 4,
        }
    }
}

/// How many rows of one kind were read, were to be stored, and were newly stored
/// (the rest were stored already, by an earlier run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Rows read from the source.
    pub read: u64,
    /// Rows to store (more than read when an owner's membership is added or a long
    /// message is split).
    pub planned: u64,
    /// Rows the sink did not have and stored (0 in a dry run).
    pub stored: u64,
}

impl Tally {
    /// Rows to store that the sink had already.
    pub fn already_there(&self) -> u64 {
        self.planned.saturating_sub(self.stored)
    }
}

/// What a move did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Users.
    pub users: Tally,
    /// Chats.
    pub chats: Tally,
    /// Memberships.
    pub members: Tally,
    /// Messages.
    pub messages: Tally,
    /// Problems reported (each one to [`Progress::problem`]).
    pub problems: u64,
    /// Of them, those whose rule loses text.
    pub lossy: u64,
    /// Messages whose sender is no longer a member of their chat: kept, as our own
    /// history keeps a removed member's messages.
    pub from_former_members: u64,
    /// Whether nothing was stored (a dry run).
    pub dry_run: bool,
}

/// Why a move stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source could not be read.
    #[error("cannot read the source: {0}")]
    Source(#[from] SourceError),
    /// The target store failed; what was stored before stays, and a new run goes on
    /// from there.
    #[error("the target store failed")]
    Store(#[from] StoreError),
    /// Some rows would lose text and the operator did not accept that.
    #[error(
        "{0} row(s) can only be stored by losing text (listed above); nothing was stored. Fix them in the source, or run again with --accept-lossy"
    )]
    Lossy(u64),
    /// A row cannot be stored under any rule (a message of a chat the source does not
    /// have, content our rules refuse whatever is done).
    #[error("{row}: {why}")]
    Unimportable {
        /// The row.
        row: Row,
        /// Why.
        why: String,
    },
}

/// A move's report of problems, counted as they are told to the watcher.
struct Findings<'a> {
    progress: &'a dyn Progress,
    count: u64,
    lossy: u64,
}

impl Findings<'_> {
    fn add(&mut self, row: Row, kind: ProblemKind) {
        self.count += 1;
        if kind.is_lossy() {
            self.lossy += 1;
        }
        self.progress.problem(&Problem { row, kind });
    }
}

/// Moves everything `source` holds into `sink` (or, in a dry run, only reads and
/// checks it), telling `progress` how far it got and every problem found.
///
/// # Errors
/// [`ImportError`]: a source or store failure (run again to go on), rows that would
/// lose text without `accept_lossy` (nothing stored), or a row no rule can store.
pub async fn run(
    source: &dyn Source,
    sink: &dyn Sink,
    progress: &dyn Progress,
    options: Options,
) -> Result<Report, ImportError> {
    let counts = source.counts().await?;
    let mut findings = Findings {
        progress,
        count: 0,
        lossy: 0,
    };
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let batch_size = options.batch_size.max(1);

    // Users, chats and memberships are planned in full before anything is stored, so
    // that a refused move stores nothing.
    let source_users = source.users().await?;
    let users = plan_users(&source_users, sink, &mut findings).await?;
    report.users = Tally {
        read: source_users.len() as u64,
        planned: users.len() as u64,
        stored: 0,
    };
    let user_ids: HashSet<Uuid> = source_users.iter().map(|u| u.id).collect();
    drop(source_users);

    let source_chats = source.chats().await?;
    let chats = plan_chats(&source_chats, &user_ids, &mut findings)?;
    report.chats = Tally {
        read: source_chats.len() as u64,
        planned: chats.len() as u64,
        stored: 0,
    };

    let source_members = source.members().await?;
    let members = plan_members(&source_chats, &source_members, &user_ids, &mut findings)?;
    report.members = Tally {
        read: source_members.len() as u64,
        planned: members.len() as u64,
        stored: 0,
    };
    let membership: HashSet<(Uuid, Uuid)> = members
        .iter()
        .map(|m| (m.chat_id.as_uuid(), m.user_id.as_uuid()))
        .collect();
    let chat_ids: HashSet<Uuid> = source_chats.iter().map(|c| c.id).collect();
    drop((source_chats, source_members));

    if findings.lossy > 0 && !options.accept_lossy && !options.dry_run {
        return Err(ImportError::Lossy(findings.lossy));
    }

    report.users.stored = store_in_batches(
        Stage::Users,
        counts.users,
        &users,
        batch_size,
        options.dry_run,
        progress,
        async |batch| sink.load_users(batch).await,
    )
    .await?;
    report.chats.stored = store_in_batches(
        Stage::Chats,
        counts.chats,
        &chats,
        batch_size,
        options.dry_run,
        progress,
        async |batch| sink.load_chats(batch).await,
    )
    .await?;
    report.members.stored = store_in_batches(
        Stage::Members,
        counts.members,
        &members,
        batch_size,
        options.dry_run,
        progress,
        async |batch| sink.load_members(batch).await,
    )
    .await?;

    // Messages, streamed, in rounds: each round's messages are split by chat among
    // `writers` batches stored at once (a chat's messages always in the same one, in
    // order), and the next round is read and checked meanwhile. A chat's batches are
    // stored one after the other, so an interrupted move has stored a prefix of every
    // chat's history, and a second run stores the rest after it.
    progress.start(Stage::Messages, counts.messages);
    let writers = options.writers.max(1);
    let mut reader = MessageReader {
        stream: source.messages(),
        checker: MessageChecker {
            chats: &chat_ids,
            users: &user_ids,
            membership: &membership,
            ties_by_id: source.ties_ordered_by_id(),
            last_of_chat: HashMap::new(),
        },
        round_size: batch_size.saturating_mul(writers),
        writers,
        read: 0,
        from_former_members: 0,
    };
    let mut current = reader.next_round(&mut findings).await?;
    while current.read > 0 {
        let stores = current
            .batches
            .iter()
            .filter(|batch| !batch.is_empty())
            .map(|batch| async move {
                if options.dry_run {
                    Ok(0)
                } else {
                    sink.load_messages(batch).await
                }
            });
        let (stored, next) = futures_util::future::join(
            futures_util::future::join_all(stores),
            reader.next_round(&mut findings),
        )
        .await;
        for batch in stored {
            report.messages.stored += batch?;
        }
        report.messages.planned += current.batches.iter().map(Vec::len).sum::<usize>() as u64;
        progress.advance(current.read);
        current = next?;
    }
    report.messages.read = reader.read;
    report.from_former_members = reader.from_former_members;
    progress.finish();

    report.problems = findings.count;
    report.lossy = findings.lossy;
    Ok(report)
}

/// Stores `rows` in batches of `batch_size` (or, in a dry run, only counts them),
/// returning how many were new.
async fn store_in_batches<T>(
    stage: Stage,
    total: u64,
    rows: &[T],
    batch_size: usize,
    dry_run: bool,
    progress: &dyn Progress,
    mut load: impl AsyncFnMut(&[T]) -> Result<u64, StoreError>,
) -> Result<u64, StoreError> {
    progress.start(stage, total.max(rows.len() as u64));
    let mut stored = 0;
    for batch in rows.chunks(batch_size) {
        if !dry_run {
            stored += load(batch).await?;
        }
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    Ok(stored)
}

/// Names every user under our username rule: unique without regard to case, within
/// the source and against the target's other users. The first user (by registration,
/// then id) keeps a name; a later one gets `#2`, `#3`, … after it.
async fn plan_users(
    users: &[SourceUser],
    sink: &dyn Sink,
    findings: &mut Findings<'_>,
) -> Result<Vec<UserCredentials>, ImportError> {
    // The key of every name given so far, and whose it is.
    let mut given: HashMap<String, Uuid> = HashMap::with_capacity(users.len());
    let mut named: Vec<(Username, Option<ProblemKind>)> = Vec::with_capacity(users.len());
    for user in users {
        let (mut name, mut problem) = match Username::parse(user.username.as_str()) {
            Ok(name) => (name, None),
            Err(invalid) => {
                let repaired = rules::repaired_username(&user.username, user.id);
                let problem = ProblemKind::UsernameInvalid {
                    username: user.username.clone(),
                    why: invalid.message().to_owned(),
                    renamed: repaired.as_str().to_owned(),
                };
                (repaired, Some(problem))
            }
        };
        if let Some(&twin) = given.get(&name.folded()) {
            let base = name.clone();
            name = (2..)
                .map(|n| rules::with_suffix(&base, n, user.id))
                .find(|candidate| !given.contains_key(&candidate.folded()))
                .unwrap_or_else(|| unreachable!("an unbounded search finds a free name"));
            problem = Some(match problem {
                Some(ProblemKind::UsernameInvalid { username, why, .. }) => {
                    ProblemKind::UsernameInvalid {
                        username,
                        why,
                        renamed: name.as_str().to_owned(),
                    }
                }
                _ => ProblemKind::UsernameCaseTwin {
                    username: user.username.clone(),
                    twin,
                    renamed: name.as_str().to_owned(),
                },
            });
        }
        given.insert(name.folded(), user.id);
        named.push((name, problem));
    }

    // Names held in the target by users that are not the same user (someone who
    // registered there): the source's user moves to the next free name.
    let keys: Vec<String> = named.iter().map(|(name, _)| name.folded()).collect();
    let mut owners: HashMap<String, UserId> = HashMap::new();
    for chunk in keys.chunks(10_000) {
        owners.extend(sink.username_owners(chunk).await?);
    }
    let mut planned = Vec::with_capacity(users.len());
    for (user, (mut name, mut problem)) in users.iter().zip(named) {
        let clash = |key: &str, owners: &HashMap<String, UserId>| {
            owners
                .get(key)
                .is_some_and(|owner| owner.as_uuid() != user.id)
        };
        if clash(&name.folded(), &owners) {
            let base = name.clone();
            let mut n = 2;
            loop {
                let candidate = rules::with_suffix(&base, n, user.id);
                let key = candidate.folded();
                if !given.contains_key(&key) {
                    owners.extend(sink.username_owners(std::slice::from_ref(&key)).await?);
                    if !clash(&key, &owners) {
                        given.remove(&name.folded());
                        given.insert(key, user.id);
                        name = candidate;
                        break;
                    }
                }
                n += 1;
            }
            problem = Some(ProblemKind::UsernameTaken {
                username: base.as_str().to_owned(),
                renamed: name.as_str().to_owned(),
            });
        }
        if let Some(kind) = problem {
            findings.add(Row::User(user.id), kind);
        }
        if !user.password_hash.starts_with("$argon2") {
            findings.add(Row::User(user.id), ProblemKind::PasswordHashNotArgon2);
        }
        planned.push(UserCredentials {
            user: User {
                id: UserId::from_uuid(user.id),
                username: name,
                created_at: user.created_at,
            },
            password_hash: PasswordHash::new(user.password_hash.clone()),
        });
    }
    Ok(planned)
}

/// Names every chat under our chat-name rule.
fn plan_chats(
    chats: &[SourceChat],
    users: &HashSet<Uuid>,
    findings: &mut Findings<'_>,
) -> Result<Vec<Chat>, ImportError> {
    chats
        .iter()
        .map(|chat| {
            if !users.contains(&chat.owner_id) {
                return Err(ImportError::Unimportable {
                    row: Row::Chat(chat.id),
                    why: format!("its owner {} is not a user of the source", chat.owner_id),
                });
            }
            let (name, problem) = rules::chat_name(&chat.name);
            if let Some(kind) = problem {
                findings.add(Row::Chat(chat.id), kind);
            }
            Ok(Chat {
                id: ChatId::from_uuid(chat.id),
                name,
                owner_id: UserId::from_uuid(chat.owner_id),
                created_at: chat.created_at,
            })
        })
        .collect()
}

/// Every chat's members in order of joining, its owner first (added when the source
/// lacks the owner's row).
fn plan_members(
    chats: &[SourceChat],
    members: &[SourceMember],
    users: &HashSet<Uuid>,
    findings: &mut Findings<'_>,
) -> Result<Vec<Membership>, ImportError> {
    let mut of_chat: HashMap<Uuid, Vec<&SourceMember>> = HashMap::with_capacity(chats.len());
    for member in members {
        if !users.contains(&member.user_id) {
            return Err(ImportError::Unimportable {
                row: Row::Chat(member.chat_id),
                why: format!("its member {} is not a user of the source", member.user_id),
            });
        }
        of_chat.entry(member.chat_id).or_default().push(member);
    }
    let mut planned = Vec::with_capacity(members.len() + chats.len());
    for chat in chats {
        let listed = of_chat.remove(&chat.id).unwrap_or_default();
        let membership = |user: Uuid, joined_at: OffsetDateTime| Membership {
            chat_id: ChatId::from_uuid(chat.id),
            user_id: UserId::from_uuid(user),
            joined_at,
        };
        match listed.iter().find(|m| m.user_id == chat.owner_id) {
            Some(owner) => planned.push(membership(owner.user_id, owner.joined_at)),
            None => {
                findings.add(
                    Row::Chat(chat.id),
                    ProblemKind::OwnerNotMember {
                        owner: chat.owner_id,
                    },
                );
                planned.push(membership(chat.owner_id, chat.created_at));
            }
        }
        let mut seen = HashSet::from([chat.owner_id]);
        planned.extend(
            listed
                .iter()
                .filter(|m| seen.insert(m.user_id))
                .map(|m| membership(m.user_id, m.joined_at)),
        );
    }
    if let Some(chat) = of_chat.keys().next() {
        return Err(ImportError::Unimportable {
            row: Row::Chat(*chat),
            why: "has members but is not a chat of the source".to_owned(),
        });
    }
    Ok(planned)
}

/// Reads the source's messages a round at a time, checked, turned into the messages to
/// store, and split by chat into the round's batches.
struct MessageReader<'a> {
    stream: BoxStream<'a, Result<SourceMessage, SourceError>>,
    checker: MessageChecker<'a>,
    /// Source messages per round.
    round_size: usize,
    /// Batches per round.
    writers: usize,
    /// Source messages read so far.
    read: u64,
    /// Of them, those whose sender is no longer a member of their chat.
    from_former_members: u64,
}

/// One round of messages: a batch per writer.
struct Round {
    batches: Vec<Vec<Message>>,
    /// Source messages read for it (0 once the source is exhausted).
    read: u64,
}

impl MessageReader<'_> {
    /// The next round of messages to store.
    async fn next_round(&mut self, findings: &mut Findings<'_>) -> Result<Round, ImportError> {
        let mut round = Round {
            batches: vec![Vec::with_capacity(self.round_size / self.writers + 1); self.writers],
            read: 0,
        };
        let mut checked = Vec::new();
        while round.read < self.round_size as u64 {
            let Some(message) = self.stream.next().await else {
                break;
            };
            let message = message?;
            round.read += 1;
            let former_member = self.checker.check(&message, &mut checked, findings)?;
            self.from_former_members += u64::from(former_member);
            // A chat's messages always go to the same batch, keeping their order.
            let writer = (message.chat_id.as_u128() % self.writers as u128) as usize;
            round.batches[writer].append(&mut checked);
        }
        self.read += round.read;
        Ok(round)
    }
}

/// Checks each message against the chats, users and memberships planned, and turns it
/// into the messages to store.
struct MessageChecker<'a> {
    chats: &'a HashSet<Uuid>,
    users: &'a HashSet<Uuid>,
    membership: &'a HashSet<(Uuid, Uuid)>,
    ties_by_id: bool,
    /// Each chat's last message so far (its time and id), to find shared timestamps.
    last_of_chat: HashMap<Uuid, (OffsetDateTime, Uuid)>,
}

impl MessageChecker<'_> {
    /// Appends the messages to store for `message` to `batch`; answers whether its
    /// sender is no longer a member of its chat.
    fn check(
        &mut self,
        message: &SourceMessage,
        batch: &mut Vec<Message>,
        findings: &mut Findings<'_>,
    ) -> Result<bool, ImportError> {
        let row = Row::Message(message.id);
        let unimportable = |why: String| ImportError::Unimportable { row, why };
        if !self.chats.contains(&message.chat_id) {
            return Err(unimportable(format!(
                "its chat {} is not a chat of the source",
                message.chat_id
            )));
        }
        if !self.users.contains(&message.sender_id) {
            return Err(unimportable(format!(
                "its sender {} is not a user of the source",
                message.sender_id
            )));
        }
        let (parts, problem) = rules::content_parts(message.id, &message.content)
            .map_err(|invalid| unimportable(invalid.to_string()))?;
        let client_msg_id = message
            .client_msg_id
            .clone()
            .map(domain::ClientMsgId::parse)
            .transpose()
            .map_err(|invalid| unimportable(invalid.to_string()))?;
        if let Some(kind) = problem {
            findings.add(row, kind);
        }
        let previous = self
            .last_of_chat
            .insert(message.chat_id, (message.created_at, message.id));
        if self.ties_by_id
            && let Some((at, after)) = previous
            && at == message.created_at
        {
            findings.add(row, ProblemKind::SharedTimestamp { after, at });
        }
        let last_part = parts.len().saturating_sub(1);
        batch.extend(
            parts
                .into_iter()
                .enumerate()
                .map(|(i, (id, content))| Message {
                    id: MessageId::from_uuid(id),
                    chat_id: ChatId::from_uuid(message.chat_id),
                    sender_id: UserId::from_uuid(message.sender_id),
                    content,
                    // A client id belongs to one message: the last part, which ends it.
                    client_msg_id: if i == last_part {
                        client_msg_id.clone()
                    } else {
                        None
                    },
                    created_at: message.created_at,
                }),
        );
        Ok(!self
            .membership
            .contains(&(message.chat_id, message.sender_id)))
    }
}
