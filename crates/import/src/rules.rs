//! The rules a move applies to what our rules do not allow as it is: one function per
//! kind of value, pure, each answering the value to store and the problem to report.

use domain::{ChatName, InvalidInput, MessageContent, Username};
use uuid::Uuid;

use crate::problems::ProblemKind;

/// What a blank chat name is stored as.
pub const BLANK_CHAT_NAME: &str = "(untitled)";

/// What blank content is stored as.
pub const BLANK_CONTENT: &str = "(empty message)";

/// The username to store for `raw`, which breaks our rule: whitespace and control
/// characters become `_`, a short name is padded with `_`, a long one is cut. A name
/// that still fails (a rule of ours this does not know) becomes `user-<id>`.
pub fn repaired_username(raw: &str, id: Uuid) -> Username {
    let mut chars: Vec<char> = raw
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    chars.truncate(Username::MAX_CHARS);
    while chars.len() < Username::MIN_CHARS {
        chars.push('_');
    }
    Username::parse(chars.into_iter().collect::<String>()).unwrap_or_else(|_| fallback_username(id))
}

/// `user-<id without hyphens>`: valid under any username rule we have had.
fn fallback_username(id: Uuid) -> Username {
    Username::parse(format!("user-{}", id.simple())).unwrap_or_else(|_| {
        // 37 ASCII letters and digits: no rule of ours refuses it.
        unreachable!("a fallback username is always valid")
    })
}

/// `base` with the suffix `#n`, cut so that it fits our length rule.
pub fn with_suffix(base: &Username, n: usize, id: Uuid) -> Username {
    let suffix = format!("#{n}");
    let keep = Username::MAX_CHARS.saturating_sub(suffix.chars().count());
    let stem: String = base.as_str().chars().take(keep).collect();
    Username::parse(format!("{stem}{suffix}")).unwrap_or_else(|_| fallback_username(id))
}

/// The chat name to store for `raw`, and the problem when it is not stored as it is.
pub fn chat_name(raw: &str) -> (ChatName, Option<ProblemKind>) {
    if let Ok(name) = ChatName::parse(raw) {
        let problem = (name.as_str() != raw).then(|| ProblemKind::ChatNameTrimmed {
            name: raw.to_owned(),
        });
        return (name, problem);
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        let renamed = parsed_name(BLANK_CHAT_NAME);
        let problem = ProblemKind::ChatNameBlank {
            name: raw.to_owned(),
            renamed: renamed.as_str().to_owned(),
        };
        return (renamed, Some(problem));
    }
    // Too long (PostgreSQL text cannot hold the NUL character, the other refusal):
    // cut, with an ellipsis that says so.
    let cut: String = trimmed
        .replace('\0', "")
        .chars()
        .take(ChatName::MAX_CHARS - 1)
        .collect();
    let renamed = parsed_name(&format!("{}…", cut.trim_end()));
    let problem = ProblemKind::ChatNameTooLong {
        name: raw.to_owned(),
        renamed: renamed.as_str().to_owned(),
    };
    (renamed, Some(problem))
}

/// A chat name made here, which is always valid.
fn parsed_name(name: &str) -> ChatName {
    ChatName::parse(name).unwrap_or_else(|_| unreachable!("a made-up chat name is valid"))
}

/// One message to store for a source message: its id and content.
pub type Part = (Uuid, MessageContent);

/// The messages to store for a message with content `raw`: one, with its own id,
/// unless the content is blank (stored as [`BLANK_CONTENT`]) or too long (stored as
/// consecutive parts, the first with the message's id and the others with ids derived
/// from it, so that a second move makes the same ones).
///
/// # Errors
/// When a part still breaks the content rule (it holds the NUL character).
pub fn content_parts(
    id: Uuid,
    raw: &str,
) -> Result<(Vec<Part>, Option<ProblemKind>), InvalidInput> {
    if raw.trim().is_empty() {
        let problem = ProblemKind::ContentBlank {
            replaced: BLANK_CONTENT.to_owned(),
        };
        return Ok((
            vec![(id, MessageContent::parse(BLANK_CONTENT)?)],
            Some(problem),
        ));
    }
    let chars = raw.chars().count();
    if chars <= MessageContent::MAX_CHARS {
        return Ok((vec![(id, MessageContent::parse(raw)?)], None));
    }
    let all: Vec<char> = raw.chars().collect();
    let mut parts = Vec::new();
    let mut blank_parts_left_out = 0;
    for chunk in all.chunks(MessageContent::MAX_CHARS) {
        let text: String = chunk.iter().collect();
        if text.trim().is_empty() {
            blank_parts_left_out += 1;
            continue;
        }
        let part_id = if parts.is_empty() {
            id
        } else {
            Uuid::new_v5(&id, format!("part-{}", parts.len()).as_bytes())
        };
        parts.push((part_id, MessageContent::parse(text)?));
    }
    let problem = ProblemKind::ContentTooLong {
        chars,
        parts: parts.iter().map(|(id, _)| *id).collect(),
        blank_parts_left_out,
    };
    Ok((parts, Some(problem)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_username_our_rule_refuses_is_repaired_visibly() {
        assert_eq!(repaired_username("al ice", id(1)).as_str(), "al_ice");
        assert_eq!(repaired_username("ab", id(1)).as_str(), "ab_");
        assert_eq!(repaired_username("", id(1)).as_str(), "___");
        let long = "x".repeat(Username::MAX_CHARS + 10);
        assert_eq!(
            repaired_username(&long, id(1)).as_str().chars().count(),
            Username::MAX_CHARS
        );
    }

    #[test]
    fn a_suffix_always_fits() {
        let base = Username::parse("b".repeat(Username::MAX_CHARS)).unwrap();
        let renamed = with_suffix(&base, 12, id(1));
        assert_eq!(renamed.as_str().chars().count(), Username::MAX_CHARS);
        assert!(renamed.as_str().ends_with("#12"));
        let bob = Username::parse("Bob").unwrap();
        assert_eq!(with_suffix(&bob, 2, id(1)).as_str(), "Bob#2");
    }

    #[test]
    fn chat_names_are_trimmed_named_or_cut_and_each_change_is_a_problem() {
        let (name, problem) = chat_name("general");
        assert_eq!((name.as_str(), problem), ("general", None));

        let (name, problem) = chat_name("  general ");
        assert_eq!(name.as_str(), "general");
        assert!(matches!(problem, Some(ProblemKind::ChatNameTrimmed { .. })));

        let (name, problem) = chat_name("   ");
        assert_eq!(name.as_str(), BLANK_CHAT_NAME);
        assert!(matches!(problem, Some(ProblemKind::ChatNameBlank { .. })));

        let long = "n".repeat(250);
        let (name, problem) = chat_name(&long);
        assert_eq!(name.as_str().chars().count(), ChatName::MAX_CHARS);
        assert!(name.as_str().ends_with('…'));
        let problem = problem.unwrap();
        assert!(problem.is_lossy());
        assert!(matches!(problem, ProblemKind::ChatNameTooLong { name, .. } if name == long));
    }

    #[test]
    fn blank_content_is_stored_as_a_placeholder() {
        let (parts, problem) = content_parts(id(7), " \n ").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0, id(7));
        assert_eq!(parts[0].1.as_str(), BLANK_CONTENT);
        assert!(matches!(problem, Some(ProblemKind::ContentBlank { .. })));
    }

    #[test]
    fn long_content_is_split_with_nothing_cut_and_stable_ids() {
        let text = format!("{}{}", "a".repeat(4096), "é".repeat(5000));
        let (parts, problem) = content_parts(id(7), &text).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].0, id(7));
        let joined: String = parts.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(joined, text);
        let (again, _) = content_parts(id(7), &text).unwrap();
        assert_eq!(
            parts.iter().map(|p| p.0).collect::<Vec<_>>(),
            again.iter().map(|p| p.0).collect::<Vec<_>>()
        );
        assert!(!problem.unwrap().is_lossy());
    }

    #[test]
    fn content_that_fits_is_kept_as_it_is() {
        let (parts, problem) = content_parts(id(7), "  hi ").unwrap();
        assert_eq!(parts[0].1.as_str(), "  hi ");
        assert_eq!(problem, None);
    }
}
