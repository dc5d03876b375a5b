// messages:create and messages:get over Socket.IO.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  assertMessage,
  assertStillConnected,
  connectSio,
  createChat,
  emitWithAck,
  expectFailure,
  fullHistory,
  history,
  joinedSio,
  newUsers,
  randomUUID,
} from './helpers.mjs';

describe('messages:create', () => {
  test('stores the message, acks the Message and broadcasts messages:new to every socket in the room, the sender\'s included', async (t) => {
    const [owner, b, c] = await newUsers(3, 'msg');
    const chat = await createChat(owner, [b, c]);
    const sender = await joinedSio(owner, [chat.id], t);
    const receivers = [await joinedSio(b, [chat.id], t), await joinedSio(c, [chat.id], t)];

    const ack = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content: 'hello, world' });
    assertMessage(ack, { chatId: chat.id, senderId: owner.id, content: 'hello, world' });
    assert.ok(!('clientMsgId' in ack), 'no clientMsgId when none was given');

    for (const socket of [sender, ...receivers]) {
      assert.deepEqual(await socket.inbox.next('messages:new'), ack);
    }
    assert.deepEqual(await history(b, chat.id), [ack], 'the message is stored as broadcast');
    for (const socket of [sender, ...receivers]) await socket.inbox.nothing('messages:new');
  });

  test('clientMsgId is echoed in the ack, in messages:new and in history', async (t) => {
    const [owner, b] = await newUsers(2, 'msg');
    const chat = await createChat(owner, [b]);
    const sender = await joinedSio(owner, [chat.id], t);
    const receiver = await joinedSio(b, [chat.id], t);
    const clientMsgId = randomUUID();

    const ack = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content: 'with id', clientMsgId });
    assertMessage(ack, { chatId: chat.id, senderId: owner.id, content: 'with id', clientMsgId });
    assert.deepEqual(await receiver.inbox.next('messages:new'), ack);
    assert.deepEqual(await sender.inbox.next('messages:new'), ack);
    assert.deepEqual(await history(owner, chat.id), [ack]);
  });

  test('a member may send without joining the room; the sender\'s socket, not in the room, gets no messages:new', async (t) => {
    const [owner, b] = await newUsers(2, 'msg');
    const chat = await createChat(owner, [b]);
    const listener = await joinedSio(owner, [chat.id], t);
    const sender = await connectSio(b, t);

    const ack = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content: 'from outside the room' });
    assertMessage(ack, { chatId: chat.id, senderId: b.id, content: 'from outside the room' });
    assert.deepEqual(await listener.inbox.next('messages:new'), ack);
    await sender.inbox.nothing('messages:new');
    await sender.inbox.nothing('exception');
  });

  test('content of exactly 4096 Unicode scalar values (non-BMP) is accepted and kept intact', async (t) => {
    const [owner] = await newUsers(1, 'msg');
    const chat = await createChat(owner);
    const sender = await joinedSio(owner, [chat.id], t);
    const content = '😀'.repeat(4096);
    const ack = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content });
    assertMessage(ack, { chatId: chat.id, content });
    assert.deepEqual(await sender.inbox.next('messages:new'), ack);
  });

  test('a non-member\'s messages:create → exception {event:"messages:create"}; nothing is stored or broadcast', async (t) => {
    const [owner, stranger] = await newUsers(2, 'msg');
    const chat = await createChat(owner);
    const listener = await joinedSio(owner, [chat.id], t);
    const socket = await connectSio(stranger, t);

    await expectFailure(socket, 'messages:create', { chatId: chat.id, content: 'let me in' });
    await listener.inbox.nothing('messages:new');
    assert.deepEqual(await history(owner, chat.id), []);
    assertStillConnected(socket);
  });

  const invalid = {
    'blank content': (chatId) => ({ chatId, content: '   \n\t ' }),
    'empty content': (chatId) => ({ chatId, content: '' }),
    'content of 4097 characters': (chatId) => ({ chatId, content: 'a'.repeat(4097) }),
    'content that is not a string': (chatId) => ({ chatId, content: 42 }),
    'no content': (chatId) => ({ chatId }),
    'no chatId': () => ({ content: 'where to?' }),
    'a malformed chatId': () => ({ chatId: 'not-a-uuid', content: 'where to?' }),
    'an unknown chatId': () => ({ chatId: randomUUID(), content: 'where to?' }),
    'an empty clientMsgId': (chatId) => ({ chatId, content: 'x', clientMsgId: '' }),
    'a clientMsgId of 65 characters': (chatId) => ({ chatId, content: 'x', clientMsgId: 'k'.repeat(65) }),
    'a payload that is not an object': () => 'hello',
  };

  test('invalid messages:create payloads → exception {event:"messages:create"} and error ack; the socket stays connected and a later valid call works', async (t) => {
    const [owner, b] = await newUsers(2, 'msg');
    const chat = await createChat(owner, [b]);
    const socket = await joinedSio(owner, [chat.id], t);
    const listener = await joinedSio(b, [chat.id], t);

    for (const [what, payloadOf] of Object.entries(invalid)) {
      await t.test(what, async () => {
        await expectFailure(socket, 'messages:create', payloadOf(chat.id));
        assertStillConnected(socket);
      });
    }

    const ack = await emitWithAck(socket, 'messages:create', { chatId: chat.id, content: 'finally valid' });
    assertMessage(ack, { chatId: chat.id, senderId: owner.id, content: 'finally valid' });
    assert.deepEqual(await listener.inbox.next('messages:new'), ack, 'the first broadcast is the valid message');
    await listener.inbox.nothing('messages:new');
    assert.deepEqual(await history(owner, chat.id), [ack], 'only the valid message was stored');
    await socket.inbox.nothing('exception');
  });

  test('messages:create with no payload at all → exception {event:"messages:create"}', async (t) => {
    const [owner] = await newUsers(1, 'msg');
    const socket = await connectSio(owner, t);
    const ack = await socket.timeout(5000).emitWithAck('messages:create');
    assert.equal(ack?.status, 'error', JSON.stringify(ack));
    const exception = await socket.inbox.next('exception');
    assert.equal(exception.event, 'messages:create');
    assert.equal(exception.status, 'error');
    assertStillConnected(socket);
  });
});

describe('messages:create idempotency (clientMsgId)', () => {
  test('the same clientMsgId twice → the second ack is the first message; messages:new and history have it once', async (t) => {
    const [owner, b] = await newUsers(2, 'idem');
    const chat = await createChat(owner, [b]);
    const sender = await joinedSio(owner, [chat.id], t);
    const receiver = await joinedSio(b, [chat.id], t);
    const clientMsgId = randomUUID();

    const first = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content: 'only once', clientMsgId });
    assertMessage(first, { content: 'only once', clientMsgId });
    const second = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content: 'only once', clientMsgId });
    assert.deepEqual(second, first);

    assert.deepEqual(await receiver.inbox.next('messages:new'), first);
    assert.deepEqual(await sender.inbox.next('messages:new'), first);
    await receiver.inbox.nothing('messages:new');
    await sender.inbox.nothing('messages:new');
    assert.deepEqual(await history(b, chat.id), [first]);
  });

  test('a repeat with different content still acks the first message unchanged', async (t) => {
    const [owner] = await newUsers(1, 'idem');
    const chat = await createChat(owner);
    const sender = await joinedSio(owner, [chat.id], t);
    const clientMsgId = randomUUID();
    const first = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content: 'original', clientMsgId });
    const second = await emitWithAck(sender, 'messages:create', { chatId: chat.id, content: 'edited?', clientMsgId });
    assert.deepEqual(second, first);
    assert.deepEqual(await history(owner, chat.id), [first]);
  });

  test('two sends with the same clientMsgId without waiting → one message, both acks agree, one broadcast', async (t) => {
    const [owner, b] = await newUsers(2, 'idem');
    const chat = await createChat(owner, [b]);
    const sender = await joinedSio(owner, [chat.id], t);
    const receiver = await joinedSio(b, [chat.id], t);
    const clientMsgId = randomUUID();
    const payload = { chatId: chat.id, content: 'racing', clientMsgId };

    const [first, second] = await Promise.all([
      emitWithAck(sender, 'messages:create', payload),
      emitWithAck(sender, 'messages:create', payload),
    ]);
    assertMessage(first, { content: 'racing', clientMsgId });
    assert.deepEqual(second, first);
    assert.deepEqual(await receiver.inbox.next('messages:new'), first);
    await receiver.inbox.nothing('messages:new');
    assert.deepEqual(await history(owner, chat.id), [first]);
  });

  test('clientMsgId is scoped to sender and chat: another sender or another chat makes a new message', async (t) => {
    const [owner, b] = await newUsers(2, 'idem');
    const chat = await createChat(owner, [b]);
    const otherChat = await createChat(owner, [b]);
    const ownerSocket = await connectSio(owner, t);
    const bSocket = await connectSio(b, t);
    const clientMsgId = randomUUID();

    const mine = await emitWithAck(ownerSocket, 'messages:create', { chatId: chat.id, content: 'a', clientMsgId });
    const theirs = await emitWithAck(bSocket, 'messages:create', { chatId: chat.id, content: 'b', clientMsgId });
    const elsewhere = await emitWithAck(ownerSocket, 'messages:create', { chatId: otherChat.id, content: 'c', clientMsgId });
    for (const m of [mine, theirs, elsewhere]) assertMessage(m, { clientMsgId });
    assert.equal(new Set([mine.id, theirs.id, elsewhere.id]).size, 3);
    assert.deepEqual((await history(owner, chat.id)).map((m) => m.id), [theirs.id, mine.id]);
    assert.deepEqual((await history(owner, otherChat.id)).map((m) => m.id), [elsewhere.id]);
  });
});

describe('messages:get', () => {
  /** A chat with `count` messages sent in order by its owner; returns them oldest first. */
  async function chatWithMessages(t, count) {
    const [owner, member, stranger] = await newUsers(3, 'get');
    const chat = await createChat(owner, [member]);
    const socket = await connectSio(owner, t);
    const sent = [];
    for (let i = 0; i < count; i++) {
      sent.push(await emitWithAck(socket, 'messages:create', { chatId: chat.id, content: `m${i}` }));
    }
    return { owner, member, stranger, chat, socket, sent };
  }

  test('→ messages:get:success [Message] newest first, to the caller, and the same array to the ack', async (t) => {
    const { member, chat, sent, owner } = await chatWithMessages(t, 5);
    const listener = await joinedSio(owner, [chat.id], t);
    const socket = await connectSio(member, t); // a member who never joined the room

    const ack = await emitWithAck(socket, 'messages:get', { chatId: chat.id });
    assert.ok(Array.isArray(ack), JSON.stringify(ack));
    ack.forEach((m) => assertMessage(m, { chatId: chat.id, senderId: owner.id }));
    assert.deepEqual(ack, [...sent].reverse());
    assert.deepEqual(await socket.inbox.next('messages:get:success'), ack);
    await listener.inbox.nothing('messages:get:success');
  });

  test('take, skip and before page through history', async (t) => {
    const { chat, socket, sent } = await chatWithMessages(t, 6);
    const newestFirst = [...sent].reverse();
    const get = (payload) => emitWithAck(socket, 'messages:get', { chatId: chat.id, ...payload });

    assert.deepEqual(await get({ take: 2 }), newestFirst.slice(0, 2));
    assert.deepEqual(await get({ take: 2, skip: 1 }), newestFirst.slice(1, 3));
    assert.deepEqual(await get({ before: newestFirst[2].id }), newestFirst.slice(3));
    assert.deepEqual(await get({ before: newestFirst[1].id, take: 2 }), newestFirst.slice(2, 4));
    assert.deepEqual(await get({ before: newestFirst[5].id }), []);
    assert.deepEqual(await get({ take: 100 }), newestFirst);
    assert.deepEqual(await get({ take: 1 }), newestFirst.slice(0, 1));
    assert.deepEqual(await get({ skip: 6 }), []);
  });

  test('an empty chat → messages:get:success []', async (t) => {
    const [owner] = await newUsers(1, 'get');
    const chat = await createChat(owner);
    const socket = await connectSio(owner, t);
    assert.deepEqual(await emitWithAck(socket, 'messages:get', { chatId: chat.id }), []);
    assert.deepEqual(await socket.inbox.next('messages:get:success'), []);
  });

  test('out-of-range or malformed paging, a non-member and a bad chat id → exception {event:"messages:get"}', async (t) => {
    const { chat, socket, stranger, sent } = await chatWithMessages(t, 2);
    const cases = {
      'take 0': { chatId: chat.id, take: 0 },
      'take 101': { chatId: chat.id, take: 101 },
      'take -1': { chatId: chat.id, take: -1 },
      'take that is not a number': { chatId: chat.id, take: 'ten' },
      'skip -1': { chatId: chat.id, skip: -1 },
      'a malformed before': { chatId: chat.id, before: 'not-a-uuid' },
      'a before naming no message of this chat': { chatId: chat.id, before: randomUUID() },
      'a malformed chatId': { chatId: 'nope' },
      'an unknown chatId': { chatId: randomUUID() },
      'no chatId': {},
    };
    for (const [what, payload] of Object.entries(cases)) {
      await t.test(what, async () => {
        await expectFailure(socket, 'messages:get', payload);
        assertStillConnected(socket);
      });
    }
    await socket.inbox.nothing('messages:get:success');

    await t.test('a non-member', async () => {
      const strangerSocket = await connectSio(stranger, t);
      await expectFailure(strangerSocket, 'messages:get', { chatId: chat.id });
      await strangerSocket.inbox.nothing('messages:get:success');
    });

    // Still fine afterwards.
    assert.deepEqual(await emitWithAck(socket, 'messages:get', { chatId: chat.id }), [...sent].reverse());
  });

  test('socket history equals REST history', async (t) => {
    const { chat, socket, owner } = await chatWithMessages(t, 4);
    assert.deepEqual(await emitWithAck(socket, 'messages:get', { chatId: chat.id }), await fullHistory(owner, chat.id));
  });
});
