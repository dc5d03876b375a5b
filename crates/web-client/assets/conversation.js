// The open conversation: its history (older pages load as one scrolls up), live
// messages, the composer and the outbox of messages not yet acknowledged. Every send
// carries a clientMsgId, so a message is sent again after a reconnection without ever
// being stored twice.

import { byId, h, messageTime, randomId } from "./dom.js";
import { hueOf, initialOf } from "./chats.js";

/** Messages per history page. */
const PAGE = 50;
/** Pages looked through, after a reconnection, for the last message seen. */
const CATCH_UP_PAGES = 20;
const CATCH_UP_PAGE = 100;
/** Messages of one sender this close together are drawn as one group. */
const GROUP_MS = 5 * 60 * 1000;

/**
 * ctx: `api`, `socket`, `names` (user id → username), `me()`, `onSent(message)` (a
 * stored message of ours, acknowledged), `onGone(chatId)` (the chat answered 403/404).
 */
export function createConversation(ctx) {
  const pane = byId("chat-pane");
  const scroller = byId("messages");
  const list = byId("message-list");
  const pendingList = byId("pending-list");
  const status = byId("history-status");
  const input = byId("composer-input");
  const form = byId("composer");

  let chat = null;
  let generation = 0; // bumped on every open/close: late answers for another chat are dropped
  let loading = false; // the first page is on its way; live messages wait in `early`
  let early = [];
  let loadingOlder = false;
  let reachedStart = false;
  let historyError = null;
  let members = [];
  const shown = new Map(); // message id → its element
  const outbox = new Map(); // clientMsgId → { chatId, content, state, error }

  const isMine = (message) => message.senderId === ctx.me();
  const nameOf = (id) => (id === ctx.me() ? "You" : ctx.names.get(id) ?? "Former member");
  const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const scrollToBottom = () => {
    scroller.scrollTop = scroller.scrollHeight;
  };

  function messageElement(message) {
    const time = messageTime(message.createdAt);
    return h(
      "li",
      {
        class: `message ${isMine(message) ? "mine" : "theirs"}`,
        dataset: { id: message.id, sender: message.senderId, at: message.createdAt },
      },
      h("span", { class: `avatar small ${hueOf(message.senderId)}`, "aria-hidden": "true", text: initialOf(nameOf(message.senderId)) }),
      h(
        "div",
        { class: "bubble" },
        h(
          "div",
          { class: "meta" },
          h("span", { class: "author", text: nameOf(message.senderId) }),
          h("time", { datetime: message.createdAt, title: time.full, text: time.short }),
        ),
        h("p", { class: "text", text: message.content }),
      ),
    );
  }

  /** Marks `element` (and the one after it) as continuing the previous sender's group. */
  function regroup(element) {
    for (const el of [element, element?.nextElementSibling]) {
      if (!el) continue;
      const previous = el.previousElementSibling;
      el.classList.toggle(
        "continued",
        Boolean(previous) &&
          previous.dataset.sender === el.dataset.sender &&
          Date.parse(el.dataset.at) - Date.parse(previous.dataset.at) < GROUP_MS,
      );
    }
  }

  /** Shows a stored message before `reference` (or last); false if already shown. */
  function place(message, reference = null) {
    if (shown.has(message.id)) return false;
    settle(message);
    const element = messageElement(message);
    shown.set(message.id, element);
    list.insertBefore(element, reference);
    regroup(element);
    return true;
  }

  /** A stored message of ours leaves the outbox. */
  function settle(message) {
    if (message.clientMsgId && isMine(message) && outbox.delete(message.clientMsgId)) renderOutbox();
  }

  function renderStatus() {
    if (historyError) {
      status.replaceChildren(
        h("span", { text: `Could not load messages: ${historyError}` }),
        " ",
        h("button", { type: "button", class: "link", text: "Try again", onclick: () => (shown.size ? loadOlder() : loadNewest()) }),
      );
    } else if (loading || loadingOlder) {
      status.textContent = "Loading messages…";
    } else if (reachedStart) {
      status.textContent = shown.size ? "This is the beginning of the chat." : "No messages yet. Say hello!";
    } else {
      status.textContent = "";
    }
  }

  function renderOutbox() {
    const items = [...outbox.entries()].filter(([, item]) => chat && item.chatId === chat.id);
    pendingList.replaceChildren(
      ...items.map(([clientMsgId, item]) =>
        h(
          "li",
          { class: `message mine pending ${item.state}` },
          h(
            "div",
            { class: "bubble" },
            h("p", { class: "text", text: item.content }),
            h(
              "div",
              { class: "meta" },
              item.state === "failed"
                ? [
                    h("span", { class: "failure", text: `Not sent: ${item.error}` }),
                    h("button", { type: "button", class: "link", text: "Retry", onclick: () => deliver(clientMsgId) }),
                    h("button", {
                      type: "button",
                      class: "link",
                      text: "Discard",
                      onclick: () => {
                        outbox.delete(clientMsgId);
                        renderOutbox();
                      },
                    }),
                  ]
                : h("span", { text: item.state === "waiting" ? "Waiting for the connection…" : "Sending…" }),
            ),
          ),
        ),
      ),
    );
  }

  function forChat(chatId, task) {
    return (async () => {
      const mine = generation;
      const result = await task();
      return mine === generation && chat?.id === chatId ? result : undefined;
    })().catch((error) => {
      if (error.status === 403 || error.status === 404) ctx.onGone(chatId);
      throw error;
    });
  }

  async function loadNewest() {
    const chatId = chat.id;
    loading = true;
    historyError = null;
    renderStatus();
    try {
      const page = await forChat(chatId, () => ctx.api.messages(chatId, { limit: PAGE }));
      if (!page) return;
      list.replaceChildren();
      shown.clear();
      for (const message of page.toReversed()) place(message);
      for (const message of early) place(message);
      early = [];
      reachedStart = page.length < PAGE;
      loading = false;
      renderStatus();
      scrollToBottom();
      maybeLoadOlder();
    } catch (error) {
      if (chat?.id === chatId) {
        loading = false;
        historyError = error.message;
        renderStatus();
      }
    }
  }

  async function loadOlder() {
    const oldest = list.firstElementChild?.dataset.id;
    if (!chat || !oldest || loadingOlder) return;
    const chatId = chat.id;
    loadingOlder = true;
    historyError = null;
    renderStatus();
    try {
      const page = await forChat(chatId, () => ctx.api.messages(chatId, { limit: PAGE, before: oldest }));
      if (!page) return;
      // Keep what is on screen where it is while older messages appear above it.
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      const first = list.firstElementChild;
      for (const message of page.toReversed()) place(message, first);
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
      reachedStart = page.length < PAGE;
      loadingOlder = false;
      renderStatus();
      maybeLoadOlder();
    } catch (error) {
      if (chat?.id === chatId) {
        loadingOlder = false;
        historyError = error.message;
        renderStatus();
      }
    }
  }

  function maybeLoadOlder() {
    if (chat && !loading && !loadingOlder && !reachedStart && !historyError && scroller.scrollTop < 200) {
      loadOlder();
    }
  }

  async function loadMembers() {
    const chatId = chat.id;
    const list = await forChat(chatId, () => ctx.api.members(chatId)).catch(() => undefined);
    if (!list) return;
    members = list;
    for (const member of list) ctx.names.set(member.userId, member.username);
    byId("chat-subtitle").textContent = list.length === 1 ? "1 member" : `${list.length} members`;
    // Names learnt now replace "Former member" on messages already drawn.
    for (const element of shown.values()) {
      const author = element.querySelector(".author");
      const name = nameOf(element.dataset.sender);
      if (author.textContent !== name) {
        author.textContent = name;
        element.querySelector(".avatar").textContent = initialOf(name);
      }
    }
  }

  async function deliver(clientMsgId) {
    const item = outbox.get(clientMsgId);
    if (!item) return;
    item.state = "sending";
    renderOutbox();
    try {
      const message = await ctx.socket.emit("messages:create", {
        chatId: item.chatId,
        content: item.content,
        clientMsgId,
      });
      ctx.onSent(message);
    } catch (error) {
      if (!outbox.has(clientMsgId)) return;
      // Not known to be stored: sent again (same clientMsgId) once connected.
      if (error.kind === "offline" || error.kind === "timeout") item.state = "waiting";
      else Object.assign(item, { state: "failed", error: error.message });
      renderOutbox();
    }
  }

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const content = input.value;
    if (!chat || !content.trim()) return;
    input.value = "";
    const clientMsgId = randomId();
    outbox.set(clientMsgId, { chatId: chat.id, content, state: "sending", error: null });
    renderOutbox();
    scrollToBottom();
    deliver(clientMsgId);
  });

  scroller.addEventListener("scroll", maybeLoadOlder, { passive: true });

  return {
    /** The chat on screen, or null. */
    get current() {
      return chat;
    },
    get members() {
      return members;
    },
    open(next) {
      generation += 1;
      chat = next;
      members = [];
      early = [];
      reachedStart = false;
      loadingOlder = false;
      historyError = null;
      shown.clear();
      list.replaceChildren();
      byId("chat-title").textContent = next.name;
      byId("chat-subtitle").textContent = "";
      byId("no-chat").hidden = true;
      pane.hidden = false;
      renderOutbox();
      loadMembers();
      loadNewest();
    },
    /** Leaves the conversation (and drops its unsent messages when `drop`). */
    close({ drop = false } = {}) {
      if (drop && chat) for (const [id, item] of outbox) if (item.chatId === chat.id) outbox.delete(id);
      generation += 1;
      chat = null;
      shown.clear();
      list.replaceChildren();
      pendingList.replaceChildren();
      pane.hidden = true;
      byId("no-chat").hidden = false;
    },
    /** A stored message (live, or the ack of our own send). */
    onMessage(message) {
      settle(message);
      if (!chat || message.chatId !== chat.id) return;
      if (loading) {
        early.push(message);
        return;
      }
      const follow = atBottom() || isMine(message);
      if (!place(message)) return;
      renderStatus(); // no longer "No messages yet"
      if (follow) scrollToBottom();
    },
    /** The members changed: reload them (names, count). */
    membersChanged(chatId) {
      if (chat?.id === chatId) loadMembers();
    },
    reloadMembers() {
      if (chat) loadMembers();
    },
    /** Where a later catch-up starts: the chat on screen and its newest message shown. */
    mark() {
      return { chatId: chat?.id, messageId: list.lastElementChild?.dataset.id };
    },
    /**
     * After a reconnection, with the mark taken before rejoining the rooms: pages
     * history back to that message and shows what was missed, in order, before what
     * was heard live since; then sends the outbox again.
     */
    async catchUp(mark) {
      if (chat) {
        const chatId = chat.id;
        const anchor = mark.chatId === chatId ? shown.get(mark.messageId) : undefined;
        if (!anchor || loading) {
          await loadNewest();
        } else {
          const missed = [];
          let before;
          let found = false;
          for (let i = 0; i < CATCH_UP_PAGES && !found; i += 1) {
            const page = await forChat(chatId, () => ctx.api.messages(chatId, { limit: CATCH_UP_PAGE, before }));
            if (!page) return;
            const at = page.findIndex((m) => m.id === mark.messageId);
            found = at >= 0;
            missed.push(...(found ? page.slice(0, at) : page));
            if (page.length < CATCH_UP_PAGE) break;
            before = page[page.length - 1].id;
          }
          if (!found && missed.length >= CATCH_UP_PAGES * CATCH_UP_PAGE) {
            await loadNewest(); // too far behind: start again from the newest page
          } else {
            const follow = atBottom();
            // Messages heard live since rejoining are newer than all of these.
            const reference = anchor.nextElementSibling;
            for (const message of missed.toReversed()) place(message, reference);
            renderStatus();
            if (follow) scrollToBottom();
          }
        }
        loadMembers();
      }
      for (const [clientMsgId, item] of outbox) if (item.state === "waiting") deliver(clientMsgId);
    },
    /** Forgets everything (logging out). */
    reset() {
      outbox.clear();
      this.close();
    },
    focusComposer() {
      input.focus();
    },
  };
}
