//! The AsyncAPI document (`/asyncapi.json`, built by `wire::asyncapi`) against what
//! this adapter really handles and emits: the lists of `wire::events`, which the
//! handler matches on and every emit names; and no event name written as a bare string
//! anywhere in this crate's code, so an event cannot go out behind the lists' back.

use std::collections::BTreeSet;
use std::path::Path;

use wire::asyncapi::{document, listed};
use wire::events::{FromClient, ToClient};

fn names<'a>(events: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = events.into_iter().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn the_document_lists_exactly_the_events_the_server_handles() {
    let doc = document();
    let handled = names(FromClient::ALL.iter().map(|e| e.name()));
    assert_eq!(listed(&doc, "socketio", "receive"), handled, "Socket.IO");
    assert_eq!(listed(&doc, "ws", "receive"), handled, "/ws");
}

#[test]
fn the_document_lists_exactly_the_events_the_server_emits() {
    let doc = document();
    let emitted = names(ToClient::ALL.iter().map(|e| e.name()));
    assert_eq!(listed(&doc, "ws", "send"), emitted, "/ws");
    // Socket.IO acks are the protocol's own: `ack` is a `/ws` frame only.
    let socketio: Vec<String> = emitted.into_iter().filter(|e| e != "ack").collect();
    assert_eq!(listed(&doc, "socketio", "send"), socketio, "Socket.IO");
}

/// Literals of the form of an event name that are not events.
const NOT_EVENTS: &[&str] = &["about:blank"];

/// String literals of `source` that look like an event name: `word:word[:word…]`.
fn event_like_literals(source: &str) -> Vec<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| !NOT_EVENTS.contains(literal))
        .filter(|literal| {
            let parts: Vec<&str> = literal.split(':').collect();
            parts.len() >= 2
                && parts
                    .iter()
                    .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase()))
        })
        .map(str::to_owned)
        .collect()
}

/// `source` without its unit tests (which name made-up events on purpose).
fn without_tests(source: &str) -> &str {
    source
        .find("#[cfg(test)]")
        .map_or(source, |start| &source[..start])
}

#[test]
fn the_socket_code_names_events_only_through_wire_events() {
    let doc = document();
    let documented: BTreeSet<String> = ["socketio", "ws"]
        .iter()
        .flat_map(|channel| {
            let mut both = listed(&doc, channel, "receive");
            both.extend(listed(&doc, channel, "send"));
            both
        })
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bare = Vec::new();
    for entry in std::fs::read_dir(&src).expect("adapter-ws/src") {
        let path = entry.expect("a file of adapter-ws/src").path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a source file");
        for literal in event_like_literals(without_tests(&source)) {
            let status = if documented.contains(&literal) {
                "documented"
            } else {
                "missing from /asyncapi.json"
            };
            bare.push(format!("{}: {literal:?} ({status})", path.display()));
        }
    }
    assert!(
        bare.is_empty(),
        "events named as bare strings; name them through wire::events (FromClient / \
         ToClient), so that the document follows:\n{}",
        bare.join("\n")
    );
}

#[test]
fn the_scan_recognises_event_names_and_nothing_else() {
    let source = r#"emit("typing:start", x); "a:b:c"; "http://x"; "Bearer"; "k:"; "about:blank""#;
    assert_eq!(event_like_literals(source), ["typing:start", "a:b:c"]);
}
