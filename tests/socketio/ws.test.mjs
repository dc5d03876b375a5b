// The plain WebSocket `/ws`: frames, acks, errors, and rooms shared with Socket.IO.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  assertErrorAck,
  assertException,
  assertMessage,
  connectWs,
  createChat,
  emitWithAck,
  joinedSio,
  joinedWs,
  newUsers,
  randomUUID,
} from './helpers.mjs';

describe('/ws frames', () => {
  test('{event:"messages:create", data, ack:7} → {event:"ack", ack:7, data: Message}', async (t) => {
    const [owner] = await newUsers(1, 'ws');
    const chat = await createChat(owner);
    const client = await connectWs(owner, t);

    const clientMsgId = randomUUID();
    const frame = await client.request('messages:create', { chatId: chat.id, content: 'over ws', clientMsgId }, 7);
    assert.deepEqual(Object.keys(frame).sort(), ['ack', 'data', 'event']);
    assert.equal(frame.event, 'ack');
    assert.equal(frame.ack, 7);
    assertMessage(frame.data, { chatId: chat.id, senderId: owner.id, content: 'over ws', clientMsgId });
  });

  test('chats:connect → {event:"chats:connect:success", data:{chatIds}} and the ack carries the same data', async (t) => {
    const [owner] = await newUsers(1, 'ws');
    const chat = await createChat(owner);
    const client = await connectWs(owner, t);
    const frame = await client.request('chats:connect', { chatIds: [chat.id] }, 0);
    assert.deepEqual(frame, { event: 'ack', ack: 0, data: { chatIds: [chat.id] } });
    assert.deepEqual(await client.inbox.next('chats:connect:success'), { chatIds: [chat.id] });
    // Every server frame is {event, data}.
    for (const text of client.raw) {
      const parsed = JSON.parse(text);
      const keys = Object.keys(parsed).sort();
      assert.ok(JSON.stringify(keys) === '["data","event"]' || JSON.stringify(keys) === '["ack","data","event"]', text);
    }
  });

  test('a frame without ack gets its event but no ack frame', async (t) => {
    const [owner] = await newUsers(1, 'ws');
    const chat = await createChat(owner);
    const client = await connectWs(owner, t);
    client.send('chats:connect', { chatIds: [chat.id] });
    assert.deepEqual(await client.inbox.next('chats:connect:success'), { chatIds: [chat.id] });
    client.send('messages:create', { chatId: chat.id, content: 'no ack wanted' });
    assertMessage(await client.inbox.next('messages:new'), { chatId: chat.id, content: 'no ack wanted' });
    await client.inbox.nothing('ack');
  });

  test('messages:get over /ws → messages:get:success and the ack, newest first', async (t) => {
    const [owner] = await newUsers(1, 'ws');
    const chat = await createChat(owner);
    const client = await connectWs(owner, t);
    const first = await client.emitWithAck('messages:create', { chatId: chat.id, content: 'one' });
    const second = await client.emitWithAck('messages:create', { chatId: chat.id, content: 'two' });
    const page = await client.emitWithAck('messages:get', { chatId: chat.id, take: 10 });
    assert.deepEqual(page, [second, first]);
    assert.deepEqual(await client.inbox.next('messages:get:success'), page);
  });

  test('an error → {event:"exception", data:{status:"error", message, event}} plus an error ack; the connection stays open', async (t) => {
    const [owner, stranger] = await newUsers(2, 'ws');
    const chat = await createChat(stranger);
    const client = await connectWs(owner, t);

    const frame = await client.request('messages:create', { chatId: chat.id, content: 'not my chat' }, 3);
    assert.equal(frame.event, 'ack');
    assert.equal(frame.ack, 3);
    assertErrorAck(frame.data);
    assertException(await client.inbox.next('exception'), 'messages:create');

    for (const [event, data] of [
      ['chats:connect', { chatIds: [chat.id] }],
      ['chats:connect', { chatIds: [] }],
      ['messages:create', { chatId: 'bad', content: 'x' }],
      ['messages:create', { chatId: chat.id, content: '' }],
      ['messages:get', { chatId: chat.id, take: 0 }],
    ]) {
      assertErrorAck(await client.emitWithAck(event, data));
      assertException(await client.inbox.next('exception'), event);
    }
    assert.equal(client.open, true);
    assert.equal(client.closed, null);

    const mine = await createChat(owner);
    assertMessage(await client.emitWithAck('messages:create', { chatId: mine.id, content: 'still here' }), { content: 'still here' });
  });

  test('a malformed JSON frame → exception, and the connection stays open', async (t) => {
    const [owner] = await newUsers(1, 'ws');
    const chat = await createChat(owner);
    const client = await connectWs(owner, t);

    client.sendRaw('{"event": "messages:create", "data": {');
    const exception = await client.inbox.next('exception');
    assert.equal(exception.status, 'error');
    assert.equal(typeof exception.message, 'string');
    assert.ok(exception.message.length > 0);
    assert.equal(client.open, true);

    for (const text of ['not json at all', '[1, 2, 3]', '42', '{"data": {}}']) {
      client.sendRaw(text);
      const e = await client.inbox.next('exception');
      assert.equal(e.status, 'error', text);
    }
    assert.equal(client.open, true);
    assertMessage(await client.emitWithAck('messages:create', { chatId: chat.id, content: 'recovered' }), { content: 'recovered' });
  });
});

describe('Socket.IO and /ws share rooms', () => {
  test('a socket.io client and a /ws client in the same chat hear each other\'s messages', async (t) => {
    const [a, b] = await newUsers(2, 'mix');
    const chat = await createChat(a, [b]);
    const sio = await joinedSio(a, [chat.id], t);
    const ws = await joinedWs(b, [chat.id], t);

    const fromSio = await emitWithAck(sio, 'messages:create', { chatId: chat.id, content: 'from socket.io' });
    assertMessage(fromSio, { chatId: chat.id, senderId: a.id });
    assert.deepEqual(await ws.inbox.next('messages:new'), fromSio);
    assert.deepEqual(await sio.inbox.next('messages:new'), fromSio);

    const fromWs = await ws.emitWithAck('messages:create', { chatId: chat.id, content: 'from /ws' });
    assertMessage(fromWs, { chatId: chat.id, senderId: b.id });
    assert.deepEqual(await sio.inbox.next('messages:new'), fromWs);
    assert.deepEqual(await ws.inbox.next('messages:new'), fromWs);

    await sio.inbox.nothing('messages:new');
    await ws.inbox.nothing('messages:new');
  });

  test('a /ws chats:disconnect stops delivery from socket.io senders', async (t) => {
    const [a, b] = await newUsers(2, 'mix');
    const chat = await createChat(a, [b]);
    const sio = await joinedSio(a, [chat.id], t);
    const ws = await joinedWs(b, [chat.id], t);
    assert.deepEqual(await ws.emitWithAck('chats:disconnect', { chatIds: [chat.id] }), { chatIds: [chat.id] });
    assert.deepEqual(await ws.inbox.next('chats:disconnect:success'), { chatIds: [chat.id] });
    const sent = await emitWithAck(sio, 'messages:create', { chatId: chat.id, content: 'gone' });
    assert.deepEqual(await sio.inbox.next('messages:new'), sent);
    await ws.inbox.nothing('messages:new');
  });

  test('a /ws chats:connect naming a foreign chat joins nothing', async (t) => {
    const [a, b, stranger] = await newUsers(3, 'mix');
    const chat = await createChat(a, [b]);
    const foreign = await createChat(stranger);
    const ws = await connectWs(b, t);
    assertErrorAck(await ws.emitWithAck('chats:connect', { chatIds: [chat.id, foreign.id] }));
    assertException(await ws.inbox.next('exception'), 'chats:connect');
    const sio = await joinedSio(a, [chat.id], t);
    const sent = await emitWithAck(sio, 'messages:create', { chatId: chat.id, content: 'not for ws' });
    assert.deepEqual(await sio.inbox.next('messages:new'), sent);
    await ws.inbox.nothing('messages:new');
    await ws.inbox.nothing('chats:connect:success');
  });
});
