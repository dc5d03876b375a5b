// Errors go to the caller alone, as `exception`, and never close the socket.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  assertException,
  assertMessage,
  assertStillConnected,
  connectWs,
  createChat,
  emitWithAck,
  joinedSio,
  newUsers,
  randomUUID,
} from './helpers.mjs';

const BARRAGE = [
  ['chats:connect', { chatIds: [] }],
  ['chats:connect', { chatIds: ['x'] }],
  ['chats:connect', { chatIds: [randomUUID()] }],
  ['chats:connect', null],
  ['chats:disconnect', { chatIds: 'x' }],
  ['messages:create', { chatId: randomUUID(), content: 'x' }],
  ['messages:create', { chatId: 'x', content: 'x' }],
  ['messages:create', { content: 'x' }],
  ['messages:create', { chatId: randomUUID(), content: 'y'.repeat(5000) }],
  ['messages:get', { chatId: randomUUID() }],
  ['messages:get', { chatId: 'x', take: 1000 }],
  ['messages:get', 7],
];

describe('errors never close the socket', () => {
  test('a barrage of failing events over Socket.IO: each is an exception to the caller only, and the socket keeps working', async (t) => {
    const [owner, b] = await newUsers(2, 'err');
    const chat = await createChat(owner, [b]);
    const socket = await joinedSio(owner, [chat.id], t);
    const bystander = await joinedSio(b, [chat.id], t);

    for (const [event, payload] of BARRAGE) socket.emit(event, payload);
    const exceptions = await socket.inbox.count('exception', BARRAGE.length);
    assert.deepEqual(exceptions.map((e) => e.event), BARRAGE.map(([event]) => event), 'one exception per failing event, in order');
    exceptions.forEach((e, i) => assertException(e, BARRAGE[i][0]));

    // An event the contract does not define is refused like any other failure, and
    // does not break the socket either.
    socket.emit('no:such:event', { x: 1 });
    const [unknown] = (await socket.inbox.count('exception', BARRAGE.length + 1)).slice(BARRAGE.length);
    assertException(unknown, 'no:such:event');
    assert.equal(unknown.message, 'unknown event');

    assertStillConnected(socket);
    const message = await emitWithAck(socket, 'messages:create', { chatId: chat.id, content: 'still alive' });
    assertMessage(message, { chatId: chat.id, content: 'still alive' });
    assert.deepEqual(await bystander.inbox.next('messages:new'), message);
    // The room's message came after every failing event was answered: an exception
    // leaked to the bystander would have arrived before it.
    assert.deepEqual(bystander.inbox.all('exception'), [], 'exceptions go to the caller alone');
    assertStillConnected(socket);
  });

  test('the same barrage over /ws: each is an exception, and the connection stays open', async (t) => {
    const [owner] = await newUsers(1, 'err');
    const chat = await createChat(owner);
    const client = await connectWs(owner, t);

    for (const [event, payload] of BARRAGE) client.send(event, payload);
    const exceptions = await client.inbox.count('exception', BARRAGE.length);
    exceptions.forEach((e, i) => assertException(e, BARRAGE[i][0]));
    client.send('no:such:event', { x: 1 });
    const [unknown] = (await client.inbox.count('exception', BARRAGE.length + 1)).slice(BARRAGE.length);
    assertException(unknown, 'no:such:event');
    assert.equal(unknown.message, 'unknown event');

    assert.equal(client.open, true);
    assert.equal(client.closed, null);
    assertMessage(await client.emitWithAck('messages:create', { chatId: chat.id, content: 'still alive' }), { content: 'still alive' });
  });
});
