// chats:connect / chats:disconnect: joining and leaving chat rooms.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  assertMessage,
  assertStillConnected,
  connectSio,
  createChat,
  emitWithAck,
  expectFailure,
  joinedSio,
  newUsers,
  randomUUID,
} from './helpers.mjs';

/** `speaker` (joined to the chat) sends; returns the Message once the speaker has heard it. */
async function say(speaker, chatId, content) {
  const message = await emitWithAck(speaker, 'messages:create', { chatId, content });
  assertMessage(message, { chatId, content });
  const heard = await speaker.inbox.next('messages:new', { where: (m) => m.id === message.id });
  assert.deepEqual(heard, message);
  return message;
}

describe('chats:connect', () => {
  test('joining own chats → chats:connect:success {chatIds} to the caller, and the same payload to the ack', async (t) => {
    const [owner, member] = await newUsers(2, 'room');
    const owned = await createChat(owner, [member]);
    const joinedAsMember = await createChat(member, [owner]);
    const socket = await connectSio(owner, t);
    const chatIds = [owned.id, joinedAsMember.id];

    const ack = await emitWithAck(socket, 'chats:connect', { chatIds });
    assert.deepEqual(ack, { chatIds });
    assert.deepEqual(await socket.inbox.next('chats:connect:success'), { chatIds });
    await socket.inbox.nothing('chats:connect:success');
    await socket.inbox.nothing('exception');
  });

  test('after chats:connect the socket receives the chat\'s messages:new', async (t) => {
    const [owner, member] = await newUsers(2, 'room');
    const chat = await createChat(owner, [member]);
    const listener = await joinedSio(member, [chat.id], t);
    const speaker = await joinedSio(owner, [chat.id], t);
    const sent = await say(speaker, chat.id, 'hello room');
    assert.deepEqual(await listener.inbox.next('messages:new'), sent);
  });

  test('connecting to the same chat twice still delivers each message once', async (t) => {
    const [owner, member] = await newUsers(2, 'room');
    const chat = await createChat(owner, [member]);
    const listener = await joinedSio(member, [chat.id], t);
    assert.deepEqual(await emitWithAck(listener, 'chats:connect', { chatIds: [chat.id] }), { chatIds: [chat.id] });
    const speaker = await joinedSio(owner, [chat.id], t);
    const sent = await say(speaker, chat.id, 'once');
    assert.deepEqual(await listener.inbox.next('messages:new'), sent);
    await listener.inbox.nothing('messages:new');
  });

  test('rooms are per socket: a second socket of the same user hears nothing until it joins itself', async (t) => {
    const [owner, member] = await newUsers(2, 'room');
    const chat = await createChat(owner, [member]);
    const joined = await joinedSio(member, [chat.id], t);
    const notJoined = await connectSio(member, t);
    const speaker = await joinedSio(owner, [chat.id], t);
    const sent = await say(speaker, chat.id, 'only the joined socket');
    assert.deepEqual(await joined.inbox.next('messages:new'), sent);
    await notJoined.inbox.nothing('messages:new');
  });

  // Each case: the chat ids to name, given one chat the caller owns (valid) and a chat
  // of somebody else (foreign).
  const refusals = {
    'a chat the caller is not a member of, beside a valid one': ({ valid, foreign }) => ({ chatIds: [valid, foreign] }),
    'a well-formed but unknown chat id, beside a valid one': ({ valid }) => ({ chatIds: [valid, randomUUID()] }),
    'a malformed chat id, beside a valid one': ({ valid }) => ({ chatIds: [valid, 'not-a-uuid'] }),
  };

  for (const [what, payloadOf] of Object.entries(refusals)) {
    test(`naming ${what} → exception and error ack, and NOTHING is joined`, async (t) => {
      const [caller, friend, stranger] = await newUsers(3, 'room');
      const chat = await createChat(caller, [friend]);
      const foreign = await createChat(stranger);
      const socket = await connectSio(caller, t);

      await expectFailure(socket, 'chats:connect', payloadOf({ valid: chat.id, foreign: foreign.id }));
      await socket.inbox.nothing('chats:connect:success');

      // The valid chat was not joined either: a message to it does not reach this socket.
      const speaker = await joinedSio(friend, [chat.id], t);
      await say(speaker, chat.id, 'the caller must not hear this');
      await socket.inbox.nothing('messages:new');

      // The socket is still usable, and a correct join works.
      assertStillConnected(socket);
      assert.deepEqual(await emitWithAck(socket, 'chats:connect', { chatIds: [chat.id] }), { chatIds: [chat.id] });
      const later = await say(speaker, chat.id, 'now the caller hears this');
      assert.deepEqual(await socket.inbox.next('messages:new'), later);
    });
  }

  const badPayloads = {
    'an empty chatIds list': { chatIds: [] },
    'no chatIds at all': {},
    'chatIds that is not an array': { chatIds: 'x' },
    'a payload that is not an object': 'chats',
  };
  for (const [what, payload] of Object.entries(badPayloads)) {
    test(`chats:connect with ${what} → exception {event:"chats:connect"} and error ack`, async (t) => {
      const [caller] = await newUsers(1, 'room');
      const socket = await connectSio(caller, t);
      await expectFailure(socket, 'chats:connect', payload);
      await socket.inbox.nothing('chats:connect:success');
      assertStillConnected(socket);
    });
  }

  test('only a member may join: a non-member\'s chats:connect for a chat alone is refused', async (t) => {
    const [owner, stranger] = await newUsers(2, 'room');
    const chat = await createChat(owner);
    const socket = await connectSio(stranger, t);
    await expectFailure(socket, 'chats:connect', { chatIds: [chat.id] });
    const speaker = await joinedSio(owner, [chat.id], t);
    await say(speaker, chat.id, 'private');
    await socket.inbox.nothing('messages:new');
  });
});

describe('chats:disconnect', () => {
  test('leaving → chats:disconnect:success {chatIds} and ack; afterwards the chat\'s messages no longer arrive', async (t) => {
    const [owner, member] = await newUsers(2, 'room');
    const chat = await createChat(owner, [member]);
    const other = await createChat(owner, [member]);
    const listener = await joinedSio(member, [chat.id, other.id], t);
    const speaker = await joinedSio(owner, [chat.id, other.id], t);

    const ack = await emitWithAck(listener, 'chats:disconnect', { chatIds: [chat.id] });
    assert.deepEqual(ack, { chatIds: [chat.id] });
    assert.deepEqual(await listener.inbox.next('chats:disconnect:success'), { chatIds: [chat.id] });

    await say(speaker, chat.id, 'after leaving');
    // The other room is still joined: its message arrives, the left room's does not.
    const stillHeard = await say(speaker, other.id, 'still joined here');
    assert.deepEqual(await listener.inbox.next('messages:new'), stillHeard);
    await listener.inbox.nothing('messages:new');
  });

  test('leaving a room one is not in is not an error', async (t) => {
    const [caller, stranger] = await newUsers(2, 'room');
    const memberButNotJoined = await createChat(caller);
    const notAMember = await createChat(stranger);
    const socket = await connectSio(caller, t);

    for (const chatIds of [[memberButNotJoined.id], [notAMember.id]]) {
      assert.deepEqual(await emitWithAck(socket, 'chats:disconnect', { chatIds }), { chatIds });
      assert.deepEqual(await socket.inbox.next('chats:disconnect:success'), { chatIds });
    }
    await socket.inbox.nothing('exception');
    assertStillConnected(socket);
  });

  test('leaving and joining again resumes delivery', async (t) => {
    const [owner, member] = await newUsers(2, 'room');
    const chat = await createChat(owner, [member]);
    const listener = await joinedSio(member, [chat.id], t);
    const speaker = await joinedSio(owner, [chat.id], t);
    await emitWithAck(listener, 'chats:disconnect', { chatIds: [chat.id] });
    await say(speaker, chat.id, 'missed');
    assert.deepEqual(await emitWithAck(listener, 'chats:connect', { chatIds: [chat.id] }), { chatIds: [chat.id] });
    const back = await say(speaker, chat.id, 'heard again');
    assert.deepEqual(await listener.inbox.next('messages:new'), back);
    await listener.inbox.nothing('messages:new');
  });

  test('chats:disconnect with a malformed chat id → exception {event:"chats:disconnect"}', async (t) => {
    const [caller] = await newUsers(1, 'room');
    const socket = await connectSio(caller, t);
    await expectFailure(socket, 'chats:disconnect', { chatIds: ['not-a-uuid'] });
    assertStillConnected(socket);
  });
});
