// The login screen: log in, or create an account and log in with it.

import { byId, showError } from "./dom.js";
import { saveSession } from "./session.js";
import { ApiError } from "./api.js";

/**
 * Wires the login form. `onLoggedIn(session)` runs after a successful login.
 * Returns `show(note)`, which shows the screen with an optional note (why one has to
 * log in again).
 */
export function createLogin(api, onLoggedIn) {
  const form = byId("login-form");
  const username = byId("login-username");
  const password = byId("login-password");
  const submit = byId("login-submit");
  const error = byId("login-error");
  const note = byId("login-note");
  let registering = false;

  function setMode(register) {
    registering = register;
    byId("login-title").textContent = register ? "Create an account" : "Log in";
    submit.textContent = register ? "Create account" : "Log in";
    password.autocomplete = register ? "new-password" : "current-password";
    byId("login-switch-text").textContent = register ? "Have an account?" : "New here?";
    byId("login-switch").textContent = register ? "Log in" : "Create an account";
    showError(error, null);
  }

  byId("login-switch").addEventListener("click", () => {
    setMode(!registering);
    username.focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    const name = username.value.trim();
    if (!name || !password.value) {
      showError(error, new ApiError(400, { detail: "Enter a username and a password." }));
      (name ? password : username).focus();
      return;
    }
    submit.disabled = true;
    showError(error, null);
    try {
      if (registering) await api.register(name, password.value);
      const session = saveSession(await api.login(name, password.value), name);
      if (!session) throw new ApiError(0, { detail: "The server sent a token this client cannot read." });
      password.value = "";
      setMode(false);
      onLoggedIn(session);
    } catch (err) {
      showError(error, err);
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });

  return {
    show(message) {
      note.textContent = message || "Log in to talk with your team.";
      note.classList.toggle("warning", Boolean(message));
      byId("main-view").hidden = true;
      byId("login-view").hidden = false;
      (username.value ? password : username).focus();
    },
  };
}
