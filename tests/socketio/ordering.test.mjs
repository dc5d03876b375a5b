// Ordering: every receiver gets a chat's messages in the order the server stored them,
// none missing, none twice; history is exactly the reverse.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  assertMessage,
  createChat,
  emitWithAck,
  fullHistory,
  joinedSio,
  joinedWs,
  newUsers,
} from './helpers.mjs';

const COUNT = 300;
const BURST_TIMEOUT = 30_000;

/** Emits `count` messages without waiting for acks; resolves with the acks in send order. */
function burst(socket, chatId, count, label) {
  return Promise.all(
    Array.from({ length: count }, (_, i) => new Promise((resolve, reject) => {
      socket.timeout(BURST_TIMEOUT).emit('messages:create', { chatId, content: `${label} #${i}` }, (err, ack) => {
        if (err) reject(new Error(`no ack for ${label} #${i}: ${err.message}`));
        else resolve(ack);
      });
    })),
  );
}

describe('ordering', () => {
  test(`one sender emits ${COUNT} messages without awaiting; every receiver gets all of them exactly once, in send order; history is the reverse`, { timeout: 60_000 }, async (t) => {
    const [sender, b, c, d] = await newUsers(4, 'ord');
    const chat = await createChat(sender, [b, c, d]);
    const receivers = [await joinedSio(b, [chat.id], t), await joinedSio(c, [chat.id], t)];
    const wsReceiver = await joinedWs(d, [chat.id], t);
    const senderSocket = await joinedSio(sender, [chat.id], t);

    const acks = await burst(senderSocket, chat.id, COUNT, 'burst');
    acks.forEach((ack, i) => assertMessage(ack, { chatId: chat.id, senderId: sender.id, content: `burst #${i}` }));
    assert.equal(new Set(acks.map((m) => m.id)).size, COUNT, 'every message has its own id');

    const expected = acks.map((m) => m.content);
    for (const socket of [...receivers, senderSocket, wsReceiver]) {
      const got = await socket.inbox.count('messages:new', COUNT, { timeout: BURST_TIMEOUT });
      assert.deepEqual(got.map((m) => m.content), expected, `${socket.inbox.label}: all ${COUNT} in send order`);
      assert.deepEqual(got, acks, `${socket.inbox.label}: each broadcast equals its ack`);
      socket.inbox.drain();
    }
    for (const socket of [...receivers, wsReceiver]) await socket.inbox.nothing('messages:new');

    const newestFirst = await fullHistory(b, chat.id);
    assert.deepEqual(newestFirst, [...acks].reverse(), 'REST history is exactly the reverse of the delivery order');
    assert.deepEqual(await emitWithAck(receivers[0], 'messages:get', { chatId: chat.id, take: 100 }), [...acks].reverse().slice(0, 100));
  });

  test('two senders at once: every receiver sees the same single order, and history is its reverse', { timeout: 60_000 }, async (t) => {
    const [a, b, c, d] = await newUsers(4, 'ord');
    const chat = await createChat(a, [b, c, d]);
    const receivers = [await joinedSio(c, [chat.id], t), await joinedWs(d, [chat.id], t)];
    const senderA = await joinedSio(a, [chat.id], t);
    const senderB = await joinedSio(b, [chat.id], t);
    const each = 100;

    const [acksA, acksB] = await Promise.all([burst(senderA, chat.id, each, 'A'), burst(senderB, chat.id, each, 'B')]);
    const orders = [];
    for (const socket of [...receivers, senderA, senderB]) {
      const got = await socket.inbox.count('messages:new', 2 * each, { timeout: BURST_TIMEOUT });
      assert.equal(new Set(got.map((m) => m.id)).size, 2 * each, `${socket.inbox.label}: none twice`);
      // Each sender's own messages keep their send order.
      assert.deepEqual(got.filter((m) => m.senderId === a.id), acksA, `${socket.inbox.label}: A's order`);
      assert.deepEqual(got.filter((m) => m.senderId === b.id), acksB, `${socket.inbox.label}: B's order`);
      orders.push(got.map((m) => m.id));
    }
    for (const order of orders.slice(1)) assert.deepEqual(order, orders[0], 'every receiver sees the same order');
    const newestFirst = await fullHistory(c, chat.id);
    assert.deepEqual(newestFirst.map((m) => m.id), [...orders[0]].reverse(), 'history is the reverse of the delivery order');
  });
});
