// The dialogs: a new chat (name and people), the members of the open chat (the owner
// adds and removes people and deletes the chat; a member leaves), and a confirmation.
// They are native <dialog>s: focus stays inside, Escape closes them.

import { byId, h, showError } from "./dom.js";
import { hueOf, initialOf } from "./chats.js";

/** People shown at once in a picker; the search narrows them down. */
const PICKER_ROWS = 50;

for (const button of document.querySelectorAll("dialog [data-close]")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}

/**
 * A searchable list of people with checkboxes. `exclude()` gives the ids not to offer.
 * The search filters the list already loaded (`GET /users`, every page).
 */
function createPicker(listElement, search, exclude, onChange) {
  const picked = new Map(); // id → username
  let users = [];
  let note = "Loading people…";

  function row(user) {
    return h(
      "li",
      {},
      h(
        "label",
        { class: "person" },
        h("input", {
          type: "checkbox",
          value: user.id,
          checked: picked.has(user.id),
          onchange: (event) => {
            if (event.target.checked) picked.set(user.id, user.username);
            else picked.delete(user.id);
            onChange?.([...picked.values()]);
          },
        }),
        h("span", { class: `avatar small ${hueOf(user.id)}`, "aria-hidden": "true", text: initialOf(user.username) }),
        h("span", { class: "person-name", text: user.username }),
      ),
    );
  }

  function render() {
    const query = search.value.trim().toLowerCase();
    const excluded = exclude();
    const matches = users.filter((u) => !excluded.has(u.id) && u.username.toLowerCase().includes(query));
    const rows = matches.slice(0, PICKER_ROWS).map(row);
    if (note) rows.push(h("li", { class: "empty", text: note }));
    else if (!matches.length) {
      rows.push(h("li", { class: "empty", text: query ? `Nobody matches “${search.value.trim()}”.` : "Nobody else to add." }));
    } else if (matches.length > PICKER_ROWS) {
      rows.push(h("li", { class: "empty", text: `${matches.length - PICKER_ROWS} more: type to narrow the list.` }));
    }
    listElement.replaceChildren(...rows);
  }

  search.addEventListener("input", render);
  // Enter in the search box picks the first match instead of submitting the form.
  search.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const first = listElement.querySelector("input[type=checkbox]:not(:checked)");
    if (first) first.click();
  });

  return {
    reset() {
      picked.clear();
      search.value = "";
      note = "Loading people…";
      users = [];
      onChange?.([]);
      render();
    },
    setUsers(list, problem) {
      users = list;
      note = problem ? `Could not load people: ${problem}` : "";
      render();
    },
    render,
    picked: () => [...picked.keys()],
  };
}

/** Resolves true when the person confirms `text` with `action`, false otherwise. */
export function confirmAction(text, action) {
  const dialog = byId("confirm-dialog");
  byId("confirm-text").textContent = text;
  byId("confirm-ok").textContent = action;
  const form = byId("confirm-form");
  return new Promise((resolve) => {
    const onSubmit = (event) => {
      event.preventDefault();
      dialog.returnValue = "ok";
      dialog.close();
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener(
      "close",
      () => {
        form.removeEventListener("submit", onSubmit);
        resolve(dialog.returnValue === "ok");
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    byId("confirm-ok").focus();
  });
}

/**
 * ctx: `api`, `names`, `me()`, `conversation` (the open chat and its members),
 * `onCreated(chat)`, `onGone(chat, reason)` (left or deleted here).
 */
export function createDialogs(ctx) {
  const newChat = byId("new-chat-dialog");
  const newChatForm = byId("new-chat-form");
  const newChatError = byId("new-chat-error");
  const membersDialog = byId("members-dialog");
  const membersError = byId("members-error");
  const addForm = byId("add-members-form");
  let membersOf = null; // the chat whose members the dialog shows
  let members = [];

  async function loadUsers(picker) {
    try {
      const users = await ctx.api.allUsers();
      for (const user of users) ctx.names.set(user.id, user.username);
      picker.setUsers(users);
    } catch (error) {
      picker.setUsers([], error.message);
    }
  }

  // A new chat.
  const newChatPicker = createPicker(
    byId("new-chat-people"),
    byId("new-chat-search"),
    () => new Set([ctx.me()]),
    (names) => {
      byId("new-chat-picked").textContent = names.length ? `With ${names.join(", ")}` : "Only you, for now.";
    },
  );

  byId("new-chat").addEventListener("click", () => {
    newChatForm.reset();
    newChatPicker.reset();
    showError(newChatError, null);
    newChat.showModal();
    byId("new-chat-name").focus();
    loadUsers(newChatPicker);
  });

  newChatForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = newChatForm.querySelector("[type=submit]");
    if (submit.disabled) return;
    submit.disabled = true;
    showError(newChatError, null);
    try {
      const chat = await ctx.api.createChat(byId("new-chat-name").value, newChatPicker.picked());
      newChat.close();
      ctx.onCreated(chat);
    } catch (error) {
      showError(newChatError, error);
    } finally {
      submit.disabled = false;
    }
  });

  // The members of the open chat.
  const addPicker = createPicker(
    byId("add-members-people"),
    byId("add-members-search"),
    () => new Set(members.map((m) => m.userId)),
  );

  const isOwner = () => membersOf?.ownerId === ctx.me();

  function renderMembers() {
    const owner = isOwner();
    byId("member-list").replaceChildren(
      ...members.map((member) =>
        h(
          "li",
          { class: "person", dataset: { id: member.userId } },
          h("span", { class: `avatar small ${hueOf(member.userId)}`, "aria-hidden": "true", text: initialOf(member.username) }),
          h("span", { class: "person-name", text: member.username }),
          member.userId === membersOf.ownerId ? h("span", { class: "badge", text: "owner" }) : null,
          member.userId === ctx.me() ? h("span", { class: "badge quiet", text: "you" }) : null,
          owner && member.userId !== ctx.me()
            ? h("button", {
                type: "button",
                class: "ghost danger small",
                "aria-label": `Remove ${member.username}`,
                text: "Remove",
                onclick: () => remove(member),
              })
            : null,
        ),
      ),
    );
    addForm.hidden = !owner;
    byId("delete-chat").hidden = !owner;
    byId("leave-chat").hidden = owner; // the owner leaving would delete the chat: that is "Delete"
    addPicker.render();
  }

  async function reload() {
    if (!membersOf) return;
    const chat = membersOf;
    try {
      const list = await ctx.api.members(chat.id);
      if (membersOf !== chat) return;
      members = list;
      for (const member of list) ctx.names.set(member.userId, member.username);
      renderMembers();
    } catch (error) {
      if (membersOf === chat) showError(membersError, error);
    }
  }

  async function run(task) {
    showError(membersError, null);
    try {
      await task();
    } catch (error) {
      showError(membersError, error);
    }
  }

  function remove(member) {
    const chat = membersOf;
    run(async () => {
      if (!(await confirmAction(`Remove ${member.username} from “${chat.name}”?`, "Remove"))) return;
      await ctx.api.removeMembers(chat.id, [member.userId]);
      await reload();
      ctx.conversation.reloadMembers();
    });
  }

  byId("members-button").addEventListener("click", () => {
    membersOf = ctx.conversation.current;
    if (!membersOf) return;
    members = ctx.conversation.members;
    byId("members-title").textContent = `Members of “${membersOf.name}”`;
    showError(membersError, null);
    addPicker.reset();
    renderMembers();
    membersDialog.showModal();
    reload();
    if (isOwner()) loadUsers(addPicker);
  });

  membersDialog.addEventListener("close", () => {
    membersOf = null;
  });

  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const chat = membersOf;
    const ids = addPicker.picked();
    if (!chat) return;
    if (!ids.length) {
      showError(membersError, { message: "Pick someone to add first.", fieldErrors: [] });
      return;
    }
    run(async () => {
      await ctx.api.addMembers(chat.id, ids);
      addPicker.reset();
      await reload();
      loadUsers(addPicker);
      ctx.conversation.reloadMembers();
    });
  });

  byId("leave-chat").addEventListener("click", () => {
    const chat = membersOf;
    run(async () => {
      if (!(await confirmAction(`Leave “${chat.name}”? You will no longer see its messages.`, "Leave"))) return;
      await ctx.api.leave(chat.id);
      membersDialog.close();
      ctx.onGone(chat, "left");
    });
  });

  byId("delete-chat").addEventListener("click", () => {
    const chat = membersOf;
    run(async () => {
      if (!(await confirmAction(`Delete “${chat.name}” with all its messages, for everyone?`, "Delete chat"))) return;
      await ctx.api.deleteChat(chat.id);
      membersDialog.close();
      ctx.onGone(chat, "deleted-here");
    });
  });

  return {
    /** The members of `chatId` changed elsewhere: refresh the dialog if it shows them. */
    membersChanged(chatId) {
      if (membersOf?.id === chatId) reload();
    },
    /** The chat is gone: close whatever shows it. */
    closeFor(chatId) {
      if (membersOf?.id !== chatId) return;
      const confirm = byId("confirm-dialog");
      if (confirm.open) confirm.close();
      membersDialog.close();
    },
    closeAll() {
      for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    },
  };
}
