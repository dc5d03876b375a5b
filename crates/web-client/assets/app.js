// The web client's entry point: the session, the two screens (login, chats), and the
// routing of server events to the parts of the page they change.
//
// What the server does not offer yet has a place here when it comes: `messages:updated`
// and `messages:deleted` (edit and delete, in conversation.js next to `onMessage`),
// `chats:read:updated` and `unreadCount` (badges in chats.js), `typing` and
// `presence:changed` (the conversation's header and the members dialog), and resuming
// with `chats:connect`'s `since` (instead of paging back in `catchUp`).

import { byId, toast } from "./dom.js";
import { createApi } from "./api.js";
import { createSocket } from "./socket.js";
import { clearSession, loadSession } from "./session.js";
import { createLogin } from "./login.js";
import { createChatList } from "./chats.js";
import { createConversation } from "./conversation.js";
import { createDialogs } from "./dialogs.js";

/**
 * How often the chat list is reloaded while the page is visible. A chat one is added
 * to sends its `chats:member:added` only to its room, which one has not joined yet, so
 * the list is also reloaded on every reconnection and when the page becomes visible.
 */
const REFRESH_MS = 10000;

let session = null;
let expiryTimer = 0;
const names = new Map(); // user id → username, from members and user lists
const me = () => session?.userId ?? null;
const panes = byId("panes");
const narrow = window.matchMedia("(max-width: 720px)");

const api = createApi({
  token: () => session?.token ?? null,
  onUnauthorized: () => endSession("Your session has expired. Please log in again."),
});

const socket = createSocket({
  token: () => session.token,
  onEvent,
  onState: showConnection,
  onOpen: resync,
  // A refused upgrade says nothing to a browser; ask REST whether the token still works.
  onRefused: () => api.checkToken().catch(() => {}),
});

const chats = createChatList({ api, socket, names, me, onSelect: openChat, onGone: chatGone });

const conversation = createConversation({
  api,
  socket,
  names,
  me,
  onSent: onMessage,
  onGone: (chatId) => chats.refresh().catch(() => {}),
});

const dialogs = createDialogs({
  api,
  names,
  me,
  conversation,
  async onCreated(chat) {
    await chats.refresh().catch(() => {});
    openChat(chats.get(chat.id) ?? chat);
  },
  onGone: chatGone,
});

const login = createLogin(api, startSession);

function startSession(next) {
  session = next;
  names.set(session.userId, session.username);
  byId("me-name").textContent = session.username;
  byId("login-view").hidden = true;
  byId("main-view").hidden = false;
  showList();
  byId("new-chat").focus(); // not the body: the keyboard starts where the work does
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(
    () => endSession("Your session has expired. Please log in again."),
    Math.min(session.expiresAt - Date.now(), 2 ** 31 - 1),
  );
  // The list first: a token the server refuses ends the session before any socket
  // is opened with it.
  chats
    .refresh({ join: "none" })
    .catch(() => {})
    .finally(() => {
      if (session === next) socket.start();
    });
}

function endSession(note) {
  if (!session) return;
  session = null;
  clearTimeout(expiryTimer);
  socket.stop();
  clearSession();
  dialogs.closeAll();
  conversation.reset();
  chats.clear();
  names.clear();
  byId("no-chat-notice").hidden = true;
  login.show(note);
}

/** After every (re)connection: rejoin every room, then fetch what was missed. */
async function resync() {
  const mark = conversation.mark();
  try {
    await chats.refresh({ join: "all" });
    await conversation.catchUp(mark);
  } catch (error) {
    if (session && error.status !== 401) console.warn("catching up failed", error);
  }
}

function onMessage(message) {
  chats.noteMessage(message);
  conversation.onMessage(message);
}

function onEvent(name, data) {
  switch (name) {
    case "messages:new":
      onMessage(data);
      break;
    case "chats:member:added":
      conversation.membersChanged(data.chatId);
      dialogs.membersChanged(data.chatId);
      break;
    case "chats:member:removed":
      if (data.userIds.includes(me())) chats.forget(data.chatId, "removed");
      else {
        conversation.membersChanged(data.chatId);
        dialogs.membersChanged(data.chatId);
      }
      break;
    case "chats:deleted":
      chats.forget(data.chatId, "deleted");
      break;
    case "exception":
      // Events sent with an ack get their failure there; this is the rest.
      console.warn("the server refused an event", data);
      break;
    default:
      break;
  }
}

const GONE = {
  removed: (name) => `You were removed from “${name}”.`,
  deleted: (name) => `“${name}” was deleted by its owner.`,
  "deleted-here": (name) => `You deleted “${name}”.`,
  left: (name) => `You left “${name}”.`,
  unavailable: (name) => `“${name}” is no longer available: you were removed or it was deleted.`,
};

/** A chat left the list: close what shows it, and say why. */
function chatGone(chat, reason) {
  // Still listed (left or deleted here): the list drops it and calls back.
  if (chats.get(chat.id)) {
    chats.forget(chat.id, reason);
    return;
  }
  const text = (GONE[reason] ?? GONE.unavailable)(chat.name);
  dialogs.closeFor(chat.id);
  if (conversation.current?.id === chat.id) {
    conversation.close({ drop: true });
    const notice = byId("no-chat-notice");
    notice.textContent = text;
    notice.hidden = false;
    showList();
  }
  toast(text);
}

function openChat(chat) {
  byId("no-chat-notice").hidden = true;
  chats.select(chat.id);
  conversation.open(chat);
  panes.dataset.view = "chat";
  conversation.focusComposer();
}

function showList() {
  const open = conversation.current?.id;
  panes.dataset.view = "list";
  if (narrow.matches && open) chats.focus(open);
}

function showConnection(state, retryInMs) {
  const element = byId("connection");
  element.dataset.state = state;
  element.textContent =
    state === "online"
      ? "Connected"
      : state === "connecting"
        ? "Connecting…"
        : `Offline, retrying in ${Math.max(1, Math.round(retryInMs / 1000))} s`;
}

byId("logout").addEventListener("click", () => endSession("You have logged out."));
byId("back").addEventListener("click", showList);
byId("chat-pane").addEventListener("keydown", (event) => {
  if (event.key === "Escape" && narrow.matches && !event.defaultPrevented) showList();
});

function refreshSoon() {
  if (session && socket.online && !document.hidden) chats.refresh().catch(() => {});
}
setInterval(refreshSoon, REFRESH_MS);
document.addEventListener("visibilitychange", refreshSoon);

const stored = loadSession();
if (stored) startSession(stored);
else login.show();
