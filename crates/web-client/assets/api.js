// The REST half of the server's API (docs/API.md): one function per route used, each
// answering the parsed JSON or throwing an ApiError built from the problem body.

/** A failed request: `message` is the problem's `detail`, `fieldErrors` its `errors[]`. */
export class ApiError extends Error {
  constructor(status, problem, fallback) {
    super(problem?.detail || problem?.title || fallback || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.fieldErrors = Array.isArray(problem?.errors)
      ? problem.errors.map((e) => (e.field ? `${e.field}: ${e.message}` : String(e.message)))
      : [];
  }
}

/** Largest page of `GET /users`. */
const USERS_PAGE = 1000;

/**
 * The API client. `token()` gives the current access token (or null); `onUnauthorized`
 * is called when an authenticated request gets 401 (expired or revoked token).
 */
export function createApi({ token, onUnauthorized }) {
  async function request(method, path, body) {
    const headers = { accept: "application/json" };
    const bearer = token();
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new ApiError(0, null, "The server cannot be reached. Check the connection and try again.");
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && bearer) onUnauthorized(error);
      throw error;
    }
    return data;
  }

  const chat = (id) => `/chats/${encodeURIComponent(id)}`;

  return {
    register: (username, password) => request("POST", "/auth/register", { username, password }),
    login: (username, password) => request("POST", "/auth/login", { username, password }),
    /** Every user, page after page (`GET /users`, oldest first). */
    async allUsers() {
      const users = [];
      let after = null;
      for (;;) {
        const query = new URLSearchParams({ limit: String(USERS_PAGE) });
        if (after) query.set("after", after);
        const page = await request("GET", `/users?${query}`);
        users.push(...page);
        if (page.length < USERS_PAGE) return users;
        after = page[page.length - 1].id;
      }
    },
    /** Answers whether the token is still accepted (401 goes to onUnauthorized). */
    checkToken: () => request("GET", "/users?limit=1"),
    chats: () => request("GET", "/chats"),
    createChat: (name, members) =>
      request("POST", "/chats", members.length ? { name, members } : { name }),
    deleteChat: (id) => request("DELETE", chat(id)),
    members: (id) => request("GET", `${chat(id)}/members`),
    addMembers: (id, members) => request("POST", `${chat(id)}/members`, { members }),
    removeMembers: (id, members) => request("DELETE", `${chat(id)}/members`, { members }),
    leave: (id) => request("DELETE", `${chat(id)}/members/me`),
    /** A page of history, newest first; `before` a message id. */
    messages(id, { limit, before } = {}) {
      const query = new URLSearchParams();
      if (limit) query.set("limit", String(limit));
      if (before) query.set("before", before);
      return request("GET", `${chat(id)}/messages?${query}`);
    },
  };
}
