//! Assertions every test shares: statuses with their bodies (JSON, problem documents,
//! no content), the request id, and the shapes of the contract's values.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The media type of a response, without parameters.
fn media_type(response: &Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Asserts that the response carries a non-empty `x-request-id` header and returns it.
pub fn assert_request_id(response: &Response) -> String {
    let id = response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| {
            panic!(
                "{} {} has no x-request-id header",
                response.status(),
                response.url()
            )
        })
        .to_str()
        .expect("x-request-id is ASCII")
        .to_owned();
    assert!(!id.is_empty(), "x-request-id is empty");
    id
}

/// Asserts the status and an `application/json` body, and returns the body.
pub async fn assert_json(response: Response, status: StatusCode) -> Value {
    assert_request_id(&response);
    let got = response.status();
    let url = response.url().clone();
    let media = media_type(&response);
    let text = response.text().await.expect("reading the body");
    assert_eq!(got, status, "{url}: unexpected status; body: {text}");
    assert_eq!(
        media, "application/json",
        "{url}: content type; body: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}

/// Asserts a `204 No Content` answer with an empty body.
pub async fn assert_no_content(response: Response) {
    assert_request_id(&response);
    let got = response.status();
    let url = response.url().clone();
    let text = response.text().await.expect("reading the body");
    assert_eq!(
        got,
        StatusCode::NO_CONTENT,
        "{url}: unexpected status; body: {text}"
    );
    assert!(text.is_empty(), "{url}: a 204 has a body: {text}");
}

/// Asserts an RFC 9457 problem document with this status: `application/problem+json`,
/// `type`, `title`, `status` (equal to the HTTP status), `detail`, and, when present, an
/// `errors` list of `{field, message}`. Also that the body leaks nothing internal.
/// Returns the body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_request_id(&response);
    let got = response.status();
    let url = response.url().clone();
    let media = media_type(&response);
    let text = response.text().await.expect("reading the body");
    assert_eq!(got, status, "{url}: unexpected status; body: {text}");
    assert_eq!(
        media, "application/problem+json",
        "{url}: a {got} must be a problem document; body: {text}"
    );
    let problem: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{url}: problem is not JSON ({e}): {text}"));
    let kind = problem["type"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: problem without a string `type`: {text}"));
    assert!(!kind.is_empty(), "{url}: empty `type`: {text}");
    let title = problem["title"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: problem without a string `title`: {text}"));
    // RFC 9457 §4.2.1: with `about:blank`, the title is the status's reason phrase.
    if kind == "about:blank" {
        assert_eq!(
            Some(title),
            status.canonical_reason(),
            "{url}: title of an about:blank problem: {text}"
        );
    }
    assert_eq!(
        problem["status"].as_u64(),
        Some(u64::from(status.as_u16())),
        "{url}: `status` member: {text}"
    );
    let detail = problem["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: problem without a string `detail`: {text}"));
    assert!(!detail.trim().is_empty(), "{url}: empty `detail`: {text}");
    if let Some(errors) = problem.get("errors") {
        let errors = errors
            .as_array()
            .unwrap_or_else(|| panic!("{url}: `errors` is not an array: {text}"));
        for error in errors {
            assert!(
                error["field"].is_string() && error["message"].is_string(),
                "{url}: an `errors` entry must be {{field, message}}: {text}"
            );
        }
    }
    for secret in [
        "$argon2",
        "panicked",
        "backtrace",
        "SQLSTATE",
        "sqlx",
        "password_hash",
    ] {
        assert!(
            !text.contains(secret),
            "{url}: the problem leaks internals ({secret}): {text}"
        );
    }
    problem
}

/// The `field` names of a problem's `errors` list, sorted.
pub fn error_fields(problem: &Value) -> Vec<String> {
    let mut fields: Vec<String> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("the problem has no `errors` list: {problem}"))
        .iter()
        .map(|e| str_of(e, "field"))
        .collect();
    fields.sort();
    fields
}

/// Asserts that `value` is an object with exactly these keys.
pub fn assert_keys(value: &Value, keys: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {value}"));
    let mut got: Vec<&str> = object.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "keys of {value}");
}

/// Asserts a lowercase, hyphenated UUID and returns it.
pub fn assert_uuid(value: &Value) -> String {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("an id must be a string, got {value}"));
    let parsed = Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text} is not a UUID: {e}"));
    assert_eq!(
        text,
        parsed.hyphenated().to_string(),
        "ids are lowercase and hyphenated"
    );
    text.to_owned()
}

/// Asserts an RFC 3339 UTC timestamp with exactly three fractional digits and a `Z`
/// (`2026-11-24T14:37:00.123Z`), no further than a few minutes from now (server and tests
/// share a clock), and returns it.
pub fn assert_timestamp(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp must be a string, got {value}"));
    let shape_ok = text.len() == 24
        && text.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            23 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(
        shape_ok,
        "{text} is not RFC 3339 UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)"
    );
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    let skew = (OffsetDateTime::now_utc() - parsed).abs();
    assert!(
        skew < time::Duration::minutes(5),
        "{text} is {skew} away from now: not UTC?"
    );
    parsed
}

/// Asserts the User shape `{id, username, createdAt}`: never a password or its hash.
pub fn assert_user(user: &Value) {
    assert_keys(user, &["id", "username", "createdAt"]);
    assert_uuid(&user["id"]);
    assert!(user["username"].is_string(), "username of {user}");
    assert_timestamp(&user["createdAt"]);
}

/// Asserts the Chat shape `{id, name, ownerId, createdAt}`.
pub fn assert_chat(chat: &Value) {
    assert_keys(chat, &["id", "name", "ownerId", "createdAt"]);
    assert_uuid(&chat["id"]);
    assert!(chat["name"].is_string(), "name of {chat}");
    assert_uuid(&chat["ownerId"]);
    assert_timestamp(&chat["createdAt"]);
}

/// Asserts the ChatMember shape `{userId, username, joinedAt}`.
pub fn assert_member(member: &Value) {
    assert_keys(member, &["userId", "username", "joinedAt"]);
    assert_uuid(&member["userId"]);
    assert!(member["username"].is_string(), "username of {member}");
    assert_timestamp(&member["joinedAt"]);
}

/// The elements of a JSON array (panics on anything else).
pub fn as_array(value: &Value) -> Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .clone()
}

/// The string member `key` of `value`.
pub fn str_of(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {value}"))
        .to_owned()
}

/// The `id` of a User or Chat.
pub fn id_of(value: &Value) -> String {
    str_of(value, "id")
}

/// A well-formed id that names nothing.
pub fn unknown_id() -> String {
    Uuid::new_v4().hyphenated().to_string()
}
