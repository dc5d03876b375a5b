// The real-time half: the server's plain WebSocket (`/ws`), frames `{event, data, ack?}`.
// Keeps one connection open, reconnecting by itself with backoff after a drop, and turns
// acknowledged events into promises.

/** Why an emit failed: `kind` is "error" (the server refused), "offline" or "timeout". */
export class SocketError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "SocketError";
    this.kind = kind;
  }
}

/** How long an acknowledgement may take before the connection is taken for dead. */
const ACK_TIMEOUT_MS = 15000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;

/**
 * The connection. `token()` gives the access token; `onEvent(name, data)` receives
 * every server event; `onState(state, retryInMs)` hears "connecting", "online" and
 * "offline"; `onOpen()` runs after each (re)connection, to rejoin rooms and catch up;
 * `onRefused()` runs when a connection closes before opening (perhaps a bad token).
 */
export function createSocket({ token, onEvent, onState, onOpen, onRefused }) {
  let ws = null;
  let nextAck = 1;
  const waiting = new Map(); // ack number → {resolve, reject, timer}
  let attempt = 0;
  let retryTimer = 0;
  let stopped = true;

  function url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The one place a token goes into a URL: a browser's WebSocket cannot send headers.
    return `${scheme}//${location.host}/ws?token=${encodeURIComponent(token())}`;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (stopped || ws) return;
    onState("connecting");
    const socket = new WebSocket(url());
    ws = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      attempt = 0;
      onState("online");
      onOpen();
    });
    socket.addEventListener("message", (message) => receive(message.data));
    socket.addEventListener("close", () => {
      if (ws !== socket) return;
      ws = null;
      failWaiting(new SocketError("offline", "The connection was lost."));
      if (stopped) return;
      if (!opened) onRefused();
      scheduleRetry();
    });
  }

  function scheduleRetry() {
    if (stopped) return;
    // Exponential backoff with jitter, so that clients cut off together do not all
    // come back in the same instant.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    attempt += 1;
    onState("offline", delay);
    retryTimer = setTimeout(connect, delay);
  }

  function receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.event === "ack") {
      const pending = waiting.get(frame.ack);
      if (!pending) return;
      waiting.delete(frame.ack);
      clearTimeout(pending.timer);
      const data = frame.data;
      if (data && !Array.isArray(data) && data.status === "error") {
        pending.reject(new SocketError("error", data.message || "The server refused."));
      } else {
        pending.resolve(data);
      }
      return;
    }
    onEvent(frame.event, frame.data);
  }

  function failWaiting(error) {
    for (const pending of waiting.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    waiting.clear();
  }

  /** Sends an event and resolves with its acknowledgement. */
  function emit(event, data) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SocketError("offline", "Not connected."));
    }
    const ack = nextAck++;
    const socket = ws;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(ack);
        reject(new SocketError("timeout", "The server did not answer in time."));
        // An unanswered event means a dead connection that has not noticed yet.
        if (ws === socket) socket.close();
      }, ACK_TIMEOUT_MS);
      waiting.set(ack, { resolve, reject, timer });
      socket.send(JSON.stringify({ event, data, ack }));
    });
  }

  // Back online: try at once instead of waiting out the backoff.
  window.addEventListener("online", () => {
    if (!stopped && !ws) {
      attempt = 0;
      connect();
    }
  });

  return {
    emit,
    start() {
      stopped = false;
      attempt = 0;
      connect();
    },
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      const socket = ws;
      ws = null;
      failWaiting(new SocketError("offline", "Disconnected."));
      socket?.close();
    },
    get online() {
      return ws?.readyState === WebSocket.OPEN;
    },
  };
}
