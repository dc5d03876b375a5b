// Live membership: REST changes to a chat's members reach the sockets at once.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  addMembers,
  assertMessage,
  assertStillConnected,
  connectSio,
  createChat,
  deleteChat,
  emitWithAck,
  expectFailure,
  joinedSio,
  joinedWs,
  leaveChat,
  newUsers,
  removeMembers,
} from './helpers.mjs';

/** Sends `count` messages from `speaker` and waits until `witness` (in the room) has them all. */
async function chatter(speaker, witness, chatId, count, label) {
  const sent = [];
  for (let i = 0; i < count; i++) {
    sent.push(await emitWithAck(speaker, 'messages:create', { chatId, content: `${label} ${i}` }));
  }
  for (const message of sent) {
    assertMessage(message, { chatId });
    assert.deepEqual(await witness.inbox.next('messages:new', { where: (m) => m.id === message.id }), message);
  }
  return sent;
}

/** A chat of `owner` with members b and c, each with a socket in its room. */
async function roomOfThree(t) {
  const [owner, b, c] = await newUsers(3, 'live');
  const chat = await createChat(owner, [b, c]);
  const ownerSocket = await joinedSio(owner, [chat.id], t);
  const bSocket = await joinedSio(b, [chat.id], t);
  const cSocket = await joinedSio(c, [chat.id], t);
  return { owner, b, c, chat, ownerSocket, bSocket, cSocket };
}

describe('live membership', () => {
  test('owner removes B over REST → chats:member:removed to B\'s sockets and the room; B then receives nothing more from the chat', async (t) => {
    const { owner, b, chat, ownerSocket, bSocket, cSocket } = await roomOfThree(t);
    const bIdle = await connectSio(b, t); // B's second socket, never joined

    await removeMembers(owner, chat.id, [b]);
    const removed = { chatId: chat.id, userIds: [b.id] };
    for (const socket of [bSocket, bIdle, ownerSocket, cSocket]) {
      assert.deepEqual(await socket.inbox.next('chats:member:removed'), removed, socket.inbox.label);
    }

    await chatter(cSocket, ownerSocket, chat.id, 3, 'after removal');
    await bSocket.inbox.nothing('messages:new');
    await bIdle.inbox.nothing('messages:new');

    // B is no longer a member: sending, joining and reading are refused; the socket stays.
    await expectFailure(bSocket, 'messages:create', { chatId: chat.id, content: 'am I still here?' });
    await expectFailure(bSocket, 'chats:connect', { chatIds: [chat.id] });
    await expectFailure(bSocket, 'messages:get', { chatId: chat.id });
    assertStillConnected(bSocket);
    await ownerSocket.inbox.nothing('messages:new');
  });

  test('B leaves over REST (DELETE …/members/me) → the same chats:member:removed, and nothing more reaches B', async (t) => {
    const { b, chat, ownerSocket, bSocket, cSocket } = await roomOfThree(t);

    await leaveChat(b, chat.id);
    const removed = { chatId: chat.id, userIds: [b.id] };
    for (const socket of [bSocket, ownerSocket, cSocket]) {
      assert.deepEqual(await socket.inbox.next('chats:member:removed'), removed, socket.inbox.label);
    }
    await chatter(ownerSocket, cSocket, chat.id, 3, 'after leaving');
    await bSocket.inbox.nothing('messages:new');
    await expectFailure(bSocket, 'messages:create', { chatId: chat.id, content: 'back?' });
    assertStillConnected(bSocket);
  });

  test('a removed member who is added again must join again before hearing the chat', async (t) => {
    const { owner, b, chat, ownerSocket, bSocket, cSocket } = await roomOfThree(t);
    await removeMembers(owner, chat.id, [b]);
    await bSocket.inbox.next('chats:member:removed');

    await addMembers(owner, chat.id, [b]);
    assert.deepEqual(await cSocket.inbox.next('chats:member:added'), { chatId: chat.id, userIds: [b.id] });
    await chatter(ownerSocket, cSocket, chat.id, 2, 'before rejoining');
    await bSocket.inbox.nothing('messages:new');

    assert.deepEqual(await emitWithAck(bSocket, 'chats:connect', { chatIds: [chat.id] }), { chatIds: [chat.id] });
    const [heard] = await chatter(ownerSocket, cSocket, chat.id, 1, 'after rejoining');
    assert.deepEqual(await bSocket.inbox.next('messages:new'), heard);
  });

  test('owner adds members over REST → chats:member:added {chatId, userIds} to the room; the new member can join and hear', async (t) => {
    const [owner, b, d, e] = await newUsers(4, 'live');
    const chat = await createChat(owner, [b]);
    const ownerSocket = await joinedSio(owner, [chat.id], t);
    const bSocket = await joinedSio(b, [chat.id], t);

    const added = await addMembers(owner, chat.id, [d, e]);
    assert.deepEqual(added, { count: 2 });
    for (const socket of [ownerSocket, bSocket]) {
      const event = await socket.inbox.next('chats:member:added');
      assert.deepEqual(Object.keys(event).sort(), ['chatId', 'userIds']);
      assert.equal(event.chatId, chat.id);
      assert.deepEqual([...event.userIds].sort(), [d.id, e.id].sort());
    }

    const dSocket = await joinedSio(d, [chat.id], t);
    const [message] = await chatter(bSocket, ownerSocket, chat.id, 1, 'welcome');
    assert.deepEqual(await dSocket.inbox.next('messages:new'), message);
  });

  test('owner deletes the chat over REST → chats:deleted {chatId} to the room; afterwards nothing more, and sending to it fails', async (t) => {
    const { owner, chat, ownerSocket, bSocket, cSocket } = await roomOfThree(t);

    await deleteChat(owner, chat.id);
    for (const socket of [ownerSocket, bSocket, cSocket]) {
      assert.deepEqual(await socket.inbox.next('chats:deleted'), { chatId: chat.id }, socket.inbox.label);
    }

    await expectFailure(bSocket, 'messages:create', { chatId: chat.id, content: 'hello?' });
    await expectFailure(ownerSocket, 'messages:create', { chatId: chat.id, content: 'hello?' });
    await expectFailure(cSocket, 'chats:connect', { chatIds: [chat.id] });
    await expectFailure(cSocket, 'messages:get', { chatId: chat.id });
    for (const socket of [ownerSocket, bSocket, cSocket]) {
      await socket.inbox.nothing('messages:new');
      await socket.inbox.nothing('chats:deleted');
      assertStillConnected(socket);
    }
  });

  test('the owner removing themself over REST deletes the chat → chats:deleted to the room', async (t) => {
    const { owner, chat, bSocket, cSocket } = await roomOfThree(t);
    await removeMembers(owner, chat.id, [owner]);
    for (const socket of [bSocket, cSocket]) {
      assert.deepEqual(await socket.inbox.next('chats:deleted'), { chatId: chat.id }, socket.inbox.label);
    }
    await expectFailure(bSocket, 'messages:create', { chatId: chat.id, content: 'anyone?' });
  });

  test('the owner leaving (DELETE …/members/me) deletes the chat → chats:deleted to the room', async (t) => {
    const { owner, chat, bSocket, cSocket } = await roomOfThree(t);
    await leaveChat(owner, chat.id);
    for (const socket of [bSocket, cSocket]) {
      assert.deepEqual(await socket.inbox.next('chats:deleted'), { chatId: chat.id }, socket.inbox.label);
    }
    await expectFailure(cSocket, 'messages:create', { chatId: chat.id, content: 'anyone?' });
  });

  test('a removed /ws client gets chats:member:removed and nothing more from the chat', async (t) => {
    const [owner, b] = await newUsers(2, 'live');
    const chat = await createChat(owner, [b]);
    const ownerSocket = await joinedSio(owner, [chat.id], t);
    const bWs = await joinedWs(b, [chat.id], t);

    await removeMembers(owner, chat.id, [b]);
    assert.deepEqual(await bWs.inbox.next('chats:member:removed'), { chatId: chat.id, userIds: [b.id] });
    assert.deepEqual(await ownerSocket.inbox.next('chats:member:removed'), { chatId: chat.id, userIds: [b.id] });
    await chatter(ownerSocket, ownerSocket, chat.id, 3, 'after the ws removal');
    await bWs.inbox.nothing('messages:new');
    assert.equal(bWs.open, true);
  });

  test('a /ws client in a deleted chat\'s room gets chats:deleted', async (t) => {
    const [owner, b] = await newUsers(2, 'live');
    const chat = await createChat(owner, [b]);
    const bWs = await joinedWs(b, [chat.id], t);
    await deleteChat(owner, chat.id);
    assert.deepEqual(await bWs.inbox.next('chats:deleted'), { chatId: chat.id });
    assert.equal(bWs.open, true);
  });
});
