// Shared helpers for the wire-compatibility suite: REST set-up, a socket.io-client
// factory, a plain `/ws` client, an inbox that records every event a socket receives
// (so nothing is missed between an ack and a later wait), and shape assertions.
//
// The contract is shared/contract/API.md; the suite runs against SERVER_URL.

import assert from 'node:assert/strict';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

export const SERVER_URL = (() => {
  const url = process.env.SERVER_URL;
  if (!url) throw new Error('SERVER_URL is not set (e.g. SERVER_URL=http://127.0.0.1:3000 node --test)');
  return url.replace(/\/+$/, '');
})();

/** The server's signing key, when the runner shares it (enables forged-token tests). */
export const JWT_SECRET = process.env.JWT_SECRET || null;

export const PASSWORD = 'correct horse battery staple';
/** How long to wait for something that must arrive. */
export const ARRIVAL_MS = 5000;
/** How long to watch for something that must NOT arrive. */
export const ABSENCE_MS = 300;

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A username nobody else in this server has: 3–64 chars, no whitespace. */
export function uniqueName(tag = 'u') {
  return `js_${tag}_${randomBytes(6).toString('hex')}`;
}

// ---------------------------------------------------------------------------------
// REST

/** One REST call; returns `{status, headers, body}` (body parsed when JSON). */
export async function api(method, path, { token, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${SERVER_URL}${path}`, init);
  const text = await response.text();
  let parsed = text;
  if (text.length > 0) {
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: keep the text for the assertion message.
    }
  } else {
    parsed = null;
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

function expectStatus(res, status, what) {
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
}

/** Registers and logs in a fresh user: `{id, username, createdAt, token}`. */
export async function newUser(tag = 'u') {
  const username = uniqueName(tag);
  const registered = await api('POST', '/auth/register', { body: { username, password: PASSWORD } });
  expectStatus(registered, 201, 'POST /auth/register');
  const login = await api('POST', '/auth/login', { body: { username, password: PASSWORD } });
  expectStatus(login, 200, 'POST /auth/login');
  assert.equal(typeof login.body.access_token, 'string');
  return { ...registered.body, token: login.body.access_token };
}

/** Several fresh users at once. */
export function newUsers(count, tag = 'u') {
  return Promise.all(Array.from({ length: count }, (_, i) => newUser(`${tag}${i}`)));
}

/** `POST /chats` by `owner` with `members` (users or ids); returns the Chat. */
export async function createChat(owner, members = [], name = `chat ${randomBytes(3).toString('hex')}`) {
  const body = { name };
  if (members.length > 0) body.members = members.map(idOf);
  const res = await api('POST', '/chats', { token: owner.token, body });
  expectStatus(res, 201, 'POST /chats');
  return res.body;
}

export async function addMembers(owner, chatId, members) {
  const res = await api('POST', `/chats/${chatId}/members`, { token: owner.token, body: { members: members.map(idOf) } });
  expectStatus(res, 201, 'POST /chats/{id}/members');
  return res.body;
}

export async function removeMembers(owner, chatId, members) {
  const res = await api('DELETE', `/chats/${chatId}/members`, { token: owner.token, body: { members: members.map(idOf) } });
  expectStatus(res, 204, 'DELETE /chats/{id}/members');
}

export async function leaveChat(user, chatId) {
  const res = await api('DELETE', `/chats/${chatId}/members/me`, { token: user.token });
  expectStatus(res, 204, 'DELETE /chats/{id}/members/me');
}

export async function deleteChat(owner, chatId) {
  const res = await api('DELETE', `/chats/${chatId}`, { token: owner.token });
  expectStatus(res, 204, 'DELETE /chats/{id}');
}

/** One page of `GET /chats/{id}/messages`. */
export async function history(user, chatId, { limit, before } = {}) {
  const params = new URLSearchParams();
  if (limit !== undefined) params.set('limit', String(limit));
  if (before !== undefined) params.set('before', before);
  const query = params.size > 0 ? `?${params}` : '';
  const res = await api('GET', `/chats/${chatId}/messages${query}`, { token: user.token });
  expectStatus(res, 200, 'GET /chats/{id}/messages');
  return res.body;
}

/** The whole history of a chat, newest first, paged by `before`. */
export async function fullHistory(user, chatId) {
  const all = [];
  let before;
  for (;;) {
    const page = await history(user, chatId, { limit: 100, before });
    all.push(...page);
    if (page.length < 100) return all;
    before = page[page.length - 1].id;
  }
}

function idOf(userOrId) {
  return typeof userOrId === 'string' ? userOrId : userOrId.id;
}

// ---------------------------------------------------------------------------------
// Tokens

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An HS256 JWT signed with `secret` (any secret: forged or the server's). */
export function signJwt(payload, secret) {
  const head = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/** An unsigned `alg: none` JWT. */
export function unsignedJwt(payload) {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------------
// Inbox: every event a socket received, in arrival order.

export class Inbox {
  constructor(label) {
    this.label = label;
    /** @type {{event: string, data: unknown, taken: boolean}[]} */
    this.items = [];
    this.waiters = new Set();
  }

  push(event, data) {
    this.items.push({ event, data, taken: false });
    for (const waiter of this.waiters) waiter();
  }

  /** Payloads of every `event` received so far (taken or not). */
  all(event, where = () => true) {
    return this.items.filter((i) => i.event === event && where(i.data)).map((i) => i.data);
  }

  /** Waits until `check()` returns a value other than undefined, or rejects on timeout. */
  wait(check, timeoutMs, describe) {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const value = check();
        if (value === undefined) return false;
        this.waiters.delete(attempt);
        clearTimeout(timer);
        resolve(value);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(attempt);
        reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${describe()}; ` +
          `received: ${this.summary()}`));
      }, timeoutMs);
      this.waiters.add(attempt);
      attempt();
    });
  }

  /** The next not-yet-taken `event` (matching `where`), waiting for it if need be. */
  next(event, { timeout = ARRIVAL_MS, where = () => true } = {}) {
    return this.wait(() => {
      const item = this.items.find((i) => !i.taken && i.event === event && where(i.data));
      if (!item) return undefined;
      item.taken = true;
      return item.data;
    }, timeout, () => `"${event}"`);
  }

  /** Waits until `count` payloads of `event` (matching `where`) have arrived in all; returns them. */
  count(event, count, { timeout = ARRIVAL_MS, where = () => true } = {}) {
    return this.wait(() => {
      const found = this.all(event, where);
      return found.length >= count ? found : undefined;
    }, timeout, () => `${count} x "${event}" (have ${this.all(event, where).length})`);
  }

  /** Asserts that no not-yet-taken `event` (matching `where`) is here or arrives within `ms`. */
  async nothing(event, { ms = ABSENCE_MS, where = () => true } = {}) {
    await sleep(ms);
    const unexpected = this.items.filter((i) => !i.taken && i.event === event && where(i.data)).map((i) => i.data);
    assert.deepEqual(unexpected, [], `${this.label}: expected no "${event}", got ${JSON.stringify(unexpected)}`);
  }

  /** Marks everything received so far as taken. */
  drain() {
    for (const item of this.items) item.taken = true;
  }

  summary() {
    const text = JSON.stringify(this.items.map((i) => [i.event, i.data]));
    return text.length > 1500 ? `${text.slice(0, 1500)}…` : text;
  }
}

// ---------------------------------------------------------------------------------
// Socket.IO

/**
 * A socket.io-client socket for `user` (or `null`: no credentials), with `socket.inbox`
 * recording every server event. Reconnection is off; the socket is closed after the
 * test when `t` is given. Options are passed to `io()`; by default the token goes in
 * `auth` and only the WebSocket transport is used.
 */
export function sioSocket(user, options = {}, t) {
  const socket = io(SERVER_URL, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: ARRIVAL_MS,
    ...(user ? { auth: { token: user.token } } : {}),
    ...options,
  });
  socket.inbox = new Inbox(`socket.io(${user ? user.username : 'anonymous'})`);
  socket.onAny((event, data) => socket.inbox.push(event, data));
  socket.disconnects = [];
  socket.on('disconnect', (reason) => socket.disconnects.push(reason));
  if (t) t.after(() => socket.close());
  return socket;
}

/** Resolves when the socket is connected; rejects with the `connect_error`. */
export function connected(socket, timeoutMs = ARRIVAL_MS) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no "connect" within ${timeoutMs} ms`));
    }, timeoutMs);
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/** A connected socket.io-client socket for `user`. */
export async function connectSio(user, t, options = {}) {
  const socket = sioSocket(user, options, t);
  await connected(socket);
  return socket;
}

/** A connected socket that has joined `chatIds` (asserting success). */
export async function joinedSio(user, chatIds, t, options = {}) {
  const socket = await connectSio(user, t, options);
  const ack = await emitWithAck(socket, 'chats:connect', { chatIds });
  assert.deepEqual(ack, { chatIds }, `chats:connect ack for ${user.username}`);
  await socket.inbox.next('chats:connect:success');
  return socket;
}

/** The next `event` on a socket.io socket (or any EventEmitter), rejecting on timeout. */
export function once(socket, event, timeoutMs = ARRIVAL_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`no "${event}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const handler = (data) => {
      clearTimeout(timer);
      resolve(data);
    };
    socket.once(event, handler);
  });
}

/** Emits with an ack callback; resolves with the ack's payload, rejects after 5 s. */
export async function emitWithAck(socket, event, payload) {
  try {
    return await socket.timeout(ARRIVAL_MS).emitWithAck(event, payload);
  } catch (err) {
    throw new Error(`no ack for "${event}" ${JSON.stringify(payload)?.slice(0, 200)} within ${ARRIVAL_MS} ms ` +
      `(connected: ${socket.connected}, sid ${socket.id}): ${err.message}; received: ${socket.inbox?.summary() ?? '?'}`);
  }
}

/** Resolves with the `connect_error` of a socket that must be refused. */
export function refused(socket, timeoutMs = ARRIVAL_MS) {
  return connected(socket, timeoutMs).then(
    () => assert.fail('the server accepted a connection it had to refuse'),
    (err) => err,
  );
}

// ---------------------------------------------------------------------------------
// Plain WebSocket (`/ws`)

export const WS_URL = `${SERVER_URL.replace(/^http/, 'ws')}/ws`;

/** A `/ws` client: JSON text frames `{event, data, ack?}`, every server frame in `inbox`. */
export class WsClient {
  constructor(ws, label) {
    this.ws = ws;
    this.nextAck = 1;
    this.inbox = new Inbox(label);
    this.closed = null;
    this.raw = [];
    ws.on('message', (bytes, isBinary) => {
      const text = bytes.toString('utf8');
      this.raw.push(text);
      if (isBinary) {
        this.inbox.push('<binary>', text);
        return;
      }
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        this.inbox.push('<not json>', text);
        return;
      }
      if (frame && frame.event === 'ack') this.inbox.push('ack', frame);
      else if (frame && typeof frame.event === 'string') this.inbox.push(frame.event, frame.data);
      else this.inbox.push('<no event>', frame);
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one frame `{event, data}` (plus `ack` when given). */
  send(event, data, ack) {
    const frame = { event, data };
    if (ack !== undefined) frame.ack = ack;
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends a text frame as is. */
  sendRaw(text) {
    this.ws.send(text);
  }

  /** Sends `{event, data, ack: n}` and resolves with the whole ack frame `{event:"ack", ack:n, data}`. */
  request(event, data, ack = this.nextAck++) {
    this.send(event, data, ack);
    return this.inbox.next('ack', { where: (f) => f.ack === ack });
  }

  /** The ack's `data`, like socket.io's emitWithAck. */
  async emitWithAck(event, data) {
    return (await this.request(event, data)).data;
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/**
 * Opens `/ws`. `auth` is `{query: token}` or `{header: 'Bearer …'}` or nothing.
 * Resolves with a WsClient, or rejects with an error carrying `statusCode` and `body`
 * when the server answers the upgrade with another status.
 */
export function openWs({ query, header, label = 'ws' } = {}, t) {
  const url = query !== undefined ? `${WS_URL}?token=${encodeURIComponent(query)}` : WS_URL;
  const ws = new WebSocket(url, header !== undefined ? { headers: { authorization: header } } : {});
  const client = new WsClient(ws, label);
  if (t) t.after(() => client.close());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`/ws did not open within ${ARRIVAL_MS} ms`));
    }, ARRIVAL_MS);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(client);
    });
    ws.once('unexpected-response', (req, res) => {
      // The connection outlives the request (keep-alive): close it ourselves.
      const connection = res.socket;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const err = new Error(`/ws answered ${res.statusCode} instead of upgrading`);
        err.statusCode = res.statusCode;
        err.headers = res.headers;
        err.body = Buffer.concat(chunks).toString('utf8');
        req.destroy();
        connection?.destroy();
        reject(err);
      });
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A `/ws` client for `user` (token in the query). */
export function connectWs(user, t) {
  return openWs({ query: user.token, label: `ws(${user.username})` }, t);
}

/** A `/ws` client for `user` that has joined `chatIds` (asserting success). */
export async function joinedWs(user, chatIds, t) {
  const client = await connectWs(user, t);
  const ack = await client.request('chats:connect', { chatIds });
  assert.deepEqual(ack, { event: 'ack', ack: ack.ack, data: { chatIds } });
  assert.deepEqual(await client.inbox.next('chats:connect:success'), { chatIds });
  return client;
}

// ---------------------------------------------------------------------------------
// Shapes

/** A Message as the contract defines it; `clientMsgId` only when expected. */
export function assertMessage(message, { chatId, senderId, content, clientMsgId } = {}) {
  assert.ok(message && typeof message === 'object' && !Array.isArray(message), `not a Message: ${JSON.stringify(message)}`);
  const keys = ['chatId', 'content', 'createdAt', 'id', 'senderId'];
  if (clientMsgId !== undefined) keys.push('clientMsgId');
  assert.deepEqual(Object.keys(message).sort(), keys.sort(), `Message fields: ${JSON.stringify(message)}`);
  assert.match(message.id, UUID_RE);
  assert.match(message.chatId, UUID_RE);
  assert.match(message.senderId, UUID_RE);
  assert.match(message.createdAt, TIMESTAMP_RE);
  assert.equal(typeof message.content, 'string');
  if (chatId !== undefined) assert.equal(message.chatId, chatId);
  if (senderId !== undefined) assert.equal(message.senderId, senderId);
  if (content !== undefined) assert.equal(message.content, content);
  if (clientMsgId !== undefined) assert.equal(message.clientMsgId, clientMsgId);
}

/** An ack that reports failure: exactly `{status: "error", message}`. */
export function assertErrorAck(ack) {
  assert.ok(ack && typeof ack === 'object', `not an error ack: ${JSON.stringify(ack)}`);
  assert.deepEqual(Object.keys(ack).sort(), ['message', 'status'], `error ack fields: ${JSON.stringify(ack)}`);
  assert.equal(ack.status, 'error');
  assert.equal(typeof ack.message, 'string');
  assert.ok(ack.message.length > 0, 'an error ack says why');
}

/** An `exception` payload: exactly `{status: "error", message, event}`. */
export function assertException(payload, event) {
  assert.ok(payload && typeof payload === 'object', `not an exception: ${JSON.stringify(payload)}`);
  assert.deepEqual(Object.keys(payload).sort(), ['event', 'message', 'status'], `exception fields: ${JSON.stringify(payload)}`);
  assert.equal(payload.status, 'error');
  assert.equal(typeof payload.message, 'string');
  assert.ok(payload.message.length > 0, 'an exception says why');
  if (event !== undefined) assert.equal(payload.event, event);
}

/**
 * Emits `event` with `payload` on a socket.io socket (or WsClient) that must fail:
 * asserts the error ack and the `exception` to the caller; returns the exception.
 */
export async function expectFailure(socket, event, payload) {
  const ack = await (socket instanceof WsClient ? socket.emitWithAck(event, payload) : emitWithAck(socket, event, payload));
  assertErrorAck(ack);
  const exception = await socket.inbox.next('exception');
  assertException(exception, event);
  return exception;
}

/** Asserts a socket.io socket is still connected and was never disconnected. */
export function assertStillConnected(socket) {
  assert.equal(socket.connected, true, 'the socket is still connected');
  assert.deepEqual(socket.disconnects, [], 'the socket was never disconnected');
}

export { randomUUID };
