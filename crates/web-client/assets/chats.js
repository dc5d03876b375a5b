// The chat list: the chats one is a member of, newest activity first (the latest
// message, or the chat's creation), each with a preview of its latest message. The
// socket joins every listed chat's room, so the list hears their messages live.

import { byId, h, shortTime } from "./dom.js";

/** Most chat ids one `chats:connect` may name. */
const JOIN_BATCH = 1000;
/** History requests in flight at once while filling previews. */
const PREVIEW_CONCURRENCY = 4;

/** A stable colour class for an avatar, from an id. */
export function hueOf(id) {
  let hash = 0;
  for (const char of id) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return `hue-${hash % 8}`;
}

/** The letter on an avatar. */
export function initialOf(name) {
  return ([...(name ?? "").trim()][0] ?? "?").toUpperCase();
}

/**
 * ctx: `api`, `socket`, `names` (user id → username), `me()` (own user id),
 * `onSelect(chat)`, `onGone(chat, reason)`.
 */
export function createChatList(ctx) {
  const entries = new Map(); // chat id → { chat, last: Message | null }
  const listElement = byId("chat-list");
  let selectedId = null;

  const activity = (entry) =>
    Math.max(Date.parse(entry.chat.createdAt), entry.last ? Date.parse(entry.last.createdAt) : 0);

  function preview(entry) {
    const last = entry.last;
    if (!last) return "No messages yet";
    const who =
      last.senderId === ctx.me() ? "You: " : ctx.names.has(last.senderId) ? `${ctx.names.get(last.senderId)}: ` : "";
    return who + last.content.split("\n", 1)[0];
  }

  function render() {
    const focused = document.activeElement?.closest?.(".chat-item")?.dataset.id;
    const sorted = [...entries.values()].sort((a, b) => activity(b) - activity(a));
    listElement.replaceChildren(
      ...sorted.map((entry) => {
        const { chat } = entry;
        const time = entry.last?.createdAt ?? chat.createdAt;
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "chat-item",
              "aria-current": chat.id === selectedId ? "true" : null,
              dataset: { id: chat.id },
              onclick: () => ctx.onSelect(chat),
            },
            h("span", { class: `avatar ${hueOf(chat.id)}`, "aria-hidden": "true", text: initialOf(chat.name) }),
            h(
              "span",
              { class: "chat-item-body" },
              h(
                "span",
                { class: "chat-item-top" },
                h("span", { class: "chat-name", text: chat.name }),
                h("time", { class: "chat-time", datetime: time, text: shortTime(time) }),
              ),
              h("span", { class: "chat-preview", text: preview(entry) }),
            ),
          ),
        );
      }),
    );
    byId("chat-list-empty").hidden = entries.size > 0;
    if (focused) listElement.querySelector(`[data-id="${CSS.escape(focused)}"]`)?.focus();
  }

  function noteLast(entry, message) {
    if (!entry.last || message.createdAt >= entry.last.createdAt) entry.last = message;
  }

  /** Joins the rooms of `ids`; chats that cannot be joined (gone meanwhile) are dropped. */
  async function join(ids) {
    for (let i = 0; i < ids.length; i += JOIN_BATCH) {
      const batch = ids.slice(i, i + JOIN_BATCH);
      try {
        await ctx.socket.emit("chats:connect", { chatIds: batch });
      } catch (error) {
        if (error.kind !== "error") return; // offline: the next connection joins them all
        // Joining is all or nothing: one chat left meanwhile fails the batch.
        await Promise.all(
          batch.map((id) =>
            ctx.socket.emit("chats:connect", { chatIds: [id] }).catch((e) => {
              if (e.kind === "error") forget(id, "unavailable");
            }),
          ),
        );
      }
    }
  }

  /** Fills the previews of `ids` from the newest message of each. */
  async function loadPreviews(ids) {
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        try {
          const [newest] = await ctx.api.messages(id, { limit: 1 });
          const entry = entries.get(id);
          if (entry && newest) noteLast(entry, newest);
        } catch (error) {
          if (error.status === 403 || error.status === 404) forget(id, "unavailable");
        }
      }
    };
    await Promise.all(Array.from({ length: PREVIEW_CONCURRENCY }, worker));
  }

  /** Forgets a chat (removed, deleted, left); tells `onGone` if it was listed. */
  function forget(id, reason) {
    const entry = entries.get(id);
    if (!entry) return;
    entries.delete(id);
    if (selectedId === id) selectedId = null;
    render();
    ctx.onGone(entry.chat, reason);
  }

  return {
    /**
     * Reloads the list (`GET /chats`). `join`: "all" rejoins every room (after a
     * (re)connection), "new" only those of chats not listed before, "none" none.
     */
    async refresh({ join: which = "new" } = {}) {
      const chats = await ctx.api.chats();
      const listed = new Set(chats.map((c) => c.id));
      for (const id of [...entries.keys()]) if (!listed.has(id)) forget(id, "unavailable");
      const fresh = [];
      for (const chat of chats) {
        const entry = entries.get(chat.id);
        if (entry) {
          entry.chat = chat;
          if (chat.lastMessage) noteLast(entry, chat.lastMessage);
        } else {
          // `lastMessage` is what GET /chats will carry once the server sends it.
          entries.set(chat.id, { chat, last: chat.lastMessage ?? null });
          if (!("lastMessage" in chat)) fresh.push(chat.id);
        }
      }
      render();
      if (which !== "none" && ctx.socket.online) {
        await join(which === "all" ? chats.map((c) => c.id) : chats.filter((c) => fresh.includes(c.id)).map((c) => c.id));
      }
      // After a reconnection the previews may have missed messages too.
      const unknown = which === "all" ? chats.filter((c) => !("lastMessage" in c)).map((c) => c.id) : fresh;
      await loadPreviews(unknown);
      render();
    },
    /** A message was stored in a listed chat: it moves up, with its preview. */
    noteMessage(message) {
      const entry = entries.get(message.chatId);
      if (!entry) return;
      noteLast(entry, message);
      render();
    },
    forget,
    select(id) {
      selectedId = id;
      render();
    },
    /** Focuses a chat's entry (back from a conversation on a narrow screen). */
    focus(id) {
      listElement.querySelector(`[data-id="${CSS.escape(id ?? "")}"]`)?.focus();
    },
    get(id) {
      return entries.get(id)?.chat ?? null;
    },
    clear() {
      entries.clear();
      selectedId = null;
      render();
    },
  };
}
