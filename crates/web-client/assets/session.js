// The login session of this browser tab: the access token and who it belongs to, kept
// in sessionStorage (gone when the tab closes, never in a URL or a cookie).

const KEY = "messenger.session";

/** The user id (`sub`) a token names; the client reads it, the server checks it. */
function subjectOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub ?? null;
  } catch {
    return null;
  }
}

/** The stored session, or null when there is none or it has expired. */
export function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    if (session?.token && session.userId && session.expiresAt > Date.now()) return session;
  } catch {
    // A damaged entry is no session.
  }
  sessionStorage.removeItem(KEY);
  return null;
}

/** Keeps the answer of `POST /auth/login`; returns the session, or null if unreadable. */
export function saveSession(login, username) {
  const userId = subjectOf(login.access_token);
  if (!userId) return null;
  const session = {
    token: login.access_token,
    userId,
    username,
    expiresAt: Date.now() + Number(login.expires_in) * 1000,
  };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}
