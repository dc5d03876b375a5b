// Flow control: nothing lost under a burst that stock clients make, and a client that
// stops reading is really closed, with the documented reason, while its room goes on.
// (docs/API.md, "Flow control".)

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  api,
  assertStillConnected,
  connectSio,
  createChat,
  emitWithAck,
  fullHistory,
  joinedSio,
  joinedWs,
  newUsers,
  randomUUID,
} from './helpers.mjs';

/** Resolves with the first `count` payloads of `event` on `emitter`, rejecting after `timeoutMs`. */
function collect(emitter, event, count, timeoutMs, label) {
  const got = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${label}: ${got.length} of ${count} "${event}" within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const handler = (data) => {
      got.push(data);
      if (got.length === count) {
        clearTimeout(timer);
        emitter.off(event, handler);
        resolve(got);
      }
    };
    emitter.on(event, handler);
  });
}

/** The net.Socket under a socket.io-client socket on the WebSocket transport. */
function tcpOf(socket) {
  const tcp = socket.io.engine.transport.ws?._socket;
  assert.ok(tcp, 'a socket.io-client socket on the WebSocket transport has a TCP socket');
  return tcp;
}

/** Resolves with the reason of the socket's next `disconnect`. */
function disconnected(socket, timeoutMs, label) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label}: no "disconnect" within ${timeoutMs} ms`)), timeoutMs);
    socket.once('disconnect', (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/** Sends `count` messages of `content` into `chatId` without waiting; resolves with every ack. */
function flood(sender, chatId, count, content) {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      sender.timeout(120_000).emitWithAck('messages:create', { chatId, content: `${i} ${content}` })),
  );
}

/**
 * Sends `count` messages with at most `window` unacknowledged at once; resolves with
 * every ack, in order. The acks and the room's copies of 4 KB messages come back to this
 * one Node process: sent all at once, they would arrive faster than it reads them, and
 * its own sockets would be cut off as slow consumers (rightly).
 */
async function floodWindowed(sender, chatId, count, content, window = 32) {
  const acks = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      acks[i] = await sender.timeout(120_000).emitWithAck('messages:create', { chatId, content: `${i} ${content}` });
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return acks;
}

describe('flow control', () => {
  test('a burst of 2,000 messages:create sent without waiting reaches all 100 members in order, every one acked, nobody disconnected', async (t) => {
    const COUNT = 2000;
    const [owner, ...others] = await newUsers(100, 'burst');
    const chat = await createChat(owner, others);
    const receivers = [];
    for (const user of others) receivers.push(await joinedSio(user, [chat.id], t));
    const sender = await joinedSio(owner, [chat.id], t);
    const everyone = [sender, ...receivers];
    const exceptions = [];
    sender.on('exception', (e) => exceptions.push(e));
    const arrivals = everyone.map((socket, i) => collect(socket, 'messages:new', COUNT, 120_000, `member ${i}`));

    const acks = await Promise.all(
      Array.from({ length: COUNT }, (_, i) =>
        sender.timeout(120_000).emitWithAck('messages:create', {
          chatId: chat.id,
          content: `burst ${i}`,
          clientMsgId: randomUUID(),
        })),
    );

    assert.deepEqual(exceptions, [], 'the sender got no exception');
    assert.equal(acks.length, COUNT);
    acks.forEach((ack, i) => assert.equal(ack.content, `burst ${i}`, `ack ${i} is the stored message`));
    const sentIds = acks.map((a) => a.id);
    const heard = await Promise.all(arrivals);
    heard.forEach((messages, i) => {
      assert.deepEqual(messages.map((m) => m.id), sentIds, `member ${i} heard every message once, in send order`);
    });
    for (const socket of everyone) assertStillConnected(socket);
    const stored = await fullHistory(owner, chat.id);
    assert.deepEqual(stored.map((m) => m.id).reverse(), sentIds, 'history holds them all, in the same order');
  });

  test('3,000 events emitted without waiting by a stock client each get their ack', async (t) => {
    const COUNT = 3000;
    const [owner] = await newUsers(1, 'acks');
    const chat = await createChat(owner);
    const socket = await connectSio(owner, t);
    const answers = await Promise.all(
      Array.from({ length: COUNT }, (_, i) =>
        socket.timeout(60_000).emitWithAck(i % 2 === 0 ? 'chats:connect' : 'messages:get', i % 2 === 0
          ? { chatIds: [chat.id] }
          : { chatId: chat.id, take: 1 })),
    );
    assert.equal(answers.length, COUNT);
    answers.forEach((answer, i) => {
      if (i % 2 === 0) assert.deepEqual(answer, { chatIds: [chat.id] }, `ack ${i}`);
      else assert.deepEqual(answer, [], `ack ${i}`);
    });
    assertStillConnected(socket);
  });

  test('a reader that keeps up is never cut off, however many frames it has read (15,000 here)', async (t) => {
    const COUNT = 15_000;
    const BATCH = 2_500;
    const [owner, readerUser] = await newUsers(2, 'long');
    const chat = await createChat(owner, [readerUser]);
    const reader = await joinedSio(readerUser, [chat.id], t);
    const sender = await connectSio(owner, t);
    const heard = collect(reader, 'messages:new', COUNT, 120_000, 'reader');
    for (let sent = 0; sent < COUNT; sent += BATCH) {
      await flood(sender, chat.id, BATCH, 'short');
    }
    assert.equal((await heard).length, COUNT);
    assertStillConnected(reader);
    assertStillConnected(sender);
  });

  test('a Socket.IO client that stops reading is closed at its budget ("transport close"); the room receives everything', async (t) => {
    const [owner, slowUser, fastUser] = await newUsers(3, 'slow');
    const chat = await createChat(owner, [slowUser, fastUser]);
    const slow = await joinedSio(slowUser, [chat.id], t);
    const fast = await joinedSio(fastUser, [chat.id], t);
    const sender = await connectSio(owner, t);
    const closing = disconnected(slow, 120_000, 'slow reader');

    // The slow reader's process stops reading its socket; 5,000 messages of 4 KB (20 MB)
    // are far more than its budget and the kernel's buffers hold.
    tcpOf(slow).pause();
    const COUNT = 5000;
    const heard = collect(fast, 'messages:new', COUNT, 120_000, 'fast reader');
    const acks = await floodWindowed(sender, chat.id, COUNT, 'x'.repeat(4000));
    assert.deepEqual((await heard).map((m) => m.id), acks.map((a) => a.id), 'the fast reader heard everything');

    // Reading again, the slow reader gets what was already on its way, then the end.
    const before = slow.inbox.all('messages:new').length;
    tcpOf(slow).resume();
    const reason = await closing;
    assert.ok(['transport close', 'transport error'].includes(reason), `disconnect reason: ${reason}`);
    const got = slow.inbox.all('messages:new').map((m) => m.id);
    assert.ok(got.length >= before && got.length < COUNT, `the slow reader was cut off (${got.length} of ${COUNT})`);
    assert.deepEqual(got, acks.slice(0, got.length).map((a) => a.id), 'what it got is a gap-free prefix');
    assertStillConnected(fast);

    // It recovers as the docs say: reconnect, then page the history it missed.
    const again = await joinedSio(slowUser, [chat.id], t);
    assertStillConnected(again);
    const history = await fullHistory(slowUser, chat.id);
    assert.equal(history.length, COUNT);
  });

  test('a /ws client that stops reading is closed at its budget with 4008 "slow consumer"; the room receives everything', async (t) => {
    const [owner, slowUser, fastUser] = await newUsers(3, 'slow');
    const chat = await createChat(owner, [slowUser, fastUser]);
    const slow = await joinedWs(slowUser, [chat.id], t);
    const fast = await joinedSio(fastUser, [chat.id], t);
    const sender = await connectSio(owner, t);
    const closing = new Promise((resolve) => slow.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

    slow.ws._socket.pause();
    const COUNT = 5000;
    const heard = collect(fast, 'messages:new', COUNT, 120_000, 'fast reader');
    const acks = await floodWindowed(sender, chat.id, COUNT, 'x'.repeat(4000));
    assert.deepEqual((await heard).map((m) => m.id), acks.map((a) => a.id), 'the fast reader heard everything');

    slow.ws._socket.resume();
    assert.deepEqual(await closing, { code: 4008, reason: 'slow consumer' });
    const got = slow.inbox.all('messages:new').map((m) => m.id);
    assert.ok(got.length < COUNT, `the slow reader was cut off (${got.length} of ${COUNT})`);
    assert.deepEqual(got, acks.slice(0, got.length).map((a) => a.id), 'what it got is a gap-free prefix');
  });

  test('a /ws client\'s close frame is answered with a close frame', async (t) => {
    const [user] = await newUsers(1, 'close');
    const chat = await createChat(user);
    const client = await joinedWs(user, [chat.id], t);
    const closed = new Promise((resolve) => client.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    client.ws.close(1000, 'bye');
    // Without the server's answer the client would see 1006 (abnormal closure).
    assert.deepEqual(await closed, { code: 1000, reason: 'bye' });
    assert.equal((await api('GET', '/healthz')).status, 200);
  });
});
