//! One server → client event, serialised once and shared by every receiver.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use wire::events::ToClient;

/// An event and its JSON payload. The payload is serialised when the frame is made;
/// the `/ws` text frame is built the first time a `/ws` socket needs it and then
/// shared, so a message costs one JSON encoding per protocol, not one per receiver.
#[derive(Debug)]
pub struct Frame {
    event: ToClient,
    payload: Box<RawValue>,
    ws_text: OnceLock<Utf8Bytes>,
}

/// `{"event": …, "data": …}`, the `/ws` envelope.
#[derive(Serialize)]
struct WsEnvelope<'a> {
    event: &'a str,
    data: &'a RawValue,
}

impl Frame {
    /// Serialises `data` for `event`.
    ///
    /// # Errors
    /// When `data` cannot be serialised (never for the contract's payload types).
    pub fn new<T: Serialize + ?Sized>(
        event: ToClient,
        data: &T,
    ) -> Result<Arc<Self>, serde_json::Error> {
        let payload = serde_json::value::to_raw_value(data)?;
        Ok(Arc::new(Self {
            event,
            payload,
            ws_text: OnceLock::new(),
        }))
    }

    /// The event name.
    pub fn event(&self) -> &'static str {
        self.event.name()
    }

    /// The serialised payload.
    pub fn payload(&self) -> &RawValue {
        &self.payload
    }

    /// The `/ws` text frame; cheap to clone.
    pub fn ws_text(&self) -> Utf8Bytes {
        self.ws_text
            .get_or_init(|| {
                let envelope = WsEnvelope {
                    event: self.event.name(),
                    data: &self.payload,
                };
                // Serialising a str and an already-valid raw value cannot fail.
                serde_json::to_string(&envelope).unwrap_or_default().into()
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ws_envelope_wraps_the_payload_and_is_built_once() {
        let frame =
            Frame::new(ToClient::ChatsDeleted, &serde_json::json!({"chatId": "c"})).unwrap();
        let text = frame.ws_text();
        assert_eq!(
            text.as_str(),
            r#"{"event":"chats:deleted","data":{"chatId":"c"}}"#
        );
        assert!(std::ptr::eq(
            text.as_str().as_ptr(),
            frame.ws_text().as_str().as_ptr()
        ));
    }
}
