// Handshake: who may connect, over Socket.IO and over `/ws`.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';

import {
  ABSENCE_MS,
  JWT_SECRET,
  assertMessage,
  connectSio,
  createChat,
  emitWithAck,
  newUser,
  nowSeconds,
  openWs,
  randomUUID,
  refused,
  signJwt,
  sioSocket,
  sleep,
  unsignedJwt,
  WsClient,
} from './helpers.mjs';

/** Proves the socket acts as `user`: it may send to `user`'s own chat, as `user`. */
async function assertActsAs(socket, user) {
  const chat = await createChat(user);
  const payload = { chatId: chat.id, content: 'who am I' };
  const message = socket instanceof WsClient ? await socket.emitWithAck('messages:create', payload) : await emitWithAck(socket, 'messages:create', payload);
  assertMessage(message, { chatId: chat.id, senderId: user.id, content: 'who am I' });
}

/** Replaces a token's payload, keeping its header and signature. */
function tampered(token, payload) {
  const [head, , signature] = token.split('.');
  return `${head}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
}

const needsSecret = JWT_SECRET ? {} : { skip: 'JWT_SECRET of the server not given to the suite' };

/** Tokens the server must refuse, each made for `user`. */
function badTokens(user) {
  const iat = nowSeconds();
  return {
    'a garbage token': 'garbage',
    'an empty token': '',
    'a token signed with another key': signJwt({ sub: user.id, iat, exp: iat + 600 }, randomBytes(32).toString('hex')),
    'an unsigned alg:none token': unsignedJwt({ sub: user.id, iat, exp: iat + 600 }),
    "a real token whose payload was changed to another user's id": tampered(user.token, { sub: randomUUID(), iat, exp: iat + 600 }),
  };
}

describe('Socket.IO handshake', () => {
  test('a valid auth.token connects over the websocket transport and acts as its user', async (t) => {
    const user = await newUser('hs');
    const socket = await connectSio(user, t);
    assert.equal(socket.connected, true);
    assert.equal(socket.io.engine.transport.name, 'websocket');
    await assertActsAs(socket, user);
  });

  test('a token in an Authorization: Bearer header connects (polling transport)', async (t) => {
    const user = await newUser('hs');
    const socket = await connectSio(null, t, {
      transports: ['polling'],
      extraHeaders: { Authorization: `Bearer ${user.token}` },
    });
    assert.equal(socket.io.engine.transport.name, 'polling');
    await assertActsAs(socket, user);
  });

  test('a token in the `token` query parameter connects', async (t) => {
    const user = await newUser('hs');
    const socket = await connectSio(null, t, { query: { token: user.token } });
    await assertActsAs(socket, user);
  });

  test('the default transports (polling, then upgrade to websocket) connect and work', async (t) => {
    const user = await newUser('hs');
    const socket = sioSocket(user, { transports: undefined }, t);
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    if (socket.io.engine.transport.name !== 'websocket') {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the transport was not upgraded to websocket within 5 s')), 5000);
        socket.io.engine.once('upgrade', (transport) => {
          clearTimeout(timer);
          resolve(transport);
        });
      });
    }
    assert.equal(socket.io.engine.transport.name, 'websocket');
    await assertActsAs(socket, user);
  });

  test('an event emitted before "connect" (buffered by the client, flushed with the handshake) is answered, on every one of 200 sockets', async (t) => {
    const user = await newUser('hs');
    const chat = await createChat(user);
    const sockets = Array.from({ length: 200 }, () => sioSocket(user, {}, t));
    // socket.io-client buffers these and sends them the moment the server's CONNECT arrives.
    const acks = await Promise.allSettled(sockets.map((s) => emitWithAck(s, 'chats:connect', { chatIds: [chat.id] })));
    const lost = acks.filter((a) => a.status === 'rejected').length;
    assert.equal(lost, 0, `${lost} of 200 first events got no answer; first: ${acks.find((a) => a.status === 'rejected')?.reason?.message}`);
    for (const a of acks) assert.deepEqual(a.value, { chatIds: [chat.id] });
  });

  test('a missing token is refused with connect_error "Unauthorized"', async (t) => {
    const socket = sioSocket(null, {}, t);
    const err = await refused(socket);
    assert.equal(err.message, 'Unauthorized');
    assert.equal(socket.connected, false);
  });

  test('a missing token is refused with connect_error "Unauthorized" over polling too', async (t) => {
    const socket = sioSocket(null, { transports: ['polling'] }, t);
    const err = await refused(socket);
    assert.equal(err.message, 'Unauthorized');
  });

  test('an auth.token that is not a string is refused with "Unauthorized"', async (t) => {
    const socket = sioSocket(null, { auth: { token: 12345 } }, t);
    const err = await refused(socket);
    assert.equal(err.message, 'Unauthorized');
  });

  test('bad tokens in auth.token are refused with connect_error "Unauthorized"', async (t) => {
    const user = await newUser('hs');
    for (const [what, token] of Object.entries(badTokens(user))) {
      const socket = sioSocket(null, { auth: { token } }, t);
      const err = await refused(socket);
      assert.equal(err.message, 'Unauthorized', what);
      assert.equal(socket.connected, false, what);
    }
  });

  test('bad tokens in the `token` query parameter are refused with "Unauthorized"', async (t) => {
    const user = await newUser('hs');
    for (const [what, token] of Object.entries(badTokens(user))) {
      const err = await refused(sioSocket(null, { query: { token } }, t));
      assert.equal(err.message, 'Unauthorized', what);
    }
  });

  test('bad tokens in the Authorization header (polling transport) are refused with "Unauthorized"', async (t) => {
    const user = await newUser('hs');
    for (const [what, token] of Object.entries(badTokens(user))) {
      if (token === '') continue;
      const socket = sioSocket(null, { transports: ['polling'], extraHeaders: { Authorization: `Bearer ${token}` } }, t);
      const err = await refused(socket);
      assert.equal(err.message, 'Unauthorized', what);
    }
  });

  test('a refused socket never gets "connect" afterwards', async (t) => {
    const socket = sioSocket(null, { auth: { token: 'garbage' } }, t);
    let connects = 0;
    socket.on('connect', () => connects++);
    await refused(socket);
    await sleep(ABSENCE_MS);
    assert.equal(connects, 0);
    assert.equal(socket.connected, false);
  });

  test('a token signed with the server key for a real user connects (control for the forged-token tests)', needsSecret, async (t) => {
    const user = await newUser('hs');
    const iat = nowSeconds();
    const socket = await connectSio({ ...user, token: signJwt({ sub: user.id, iat, exp: iat + 600 }, JWT_SECRET) }, t);
    await assertActsAs(socket, user);
  });

  test('an expired token is refused with "Unauthorized"', needsSecret, async (t) => {
    const user = await newUser('hs');
    const iat = nowSeconds() - 3600;
    const token = signJwt({ sub: user.id, iat, exp: iat + 900 }, JWT_SECRET);
    const err = await refused(sioSocket(null, { auth: { token } }, t));
    assert.equal(err.message, 'Unauthorized');
  });

  test('a well-signed token of a user that does not exist is refused with "Unauthorized"', needsSecret, async (t) => {
    const iat = nowSeconds();
    const token = signJwt({ sub: randomUUID(), iat, exp: iat + 600 }, JWT_SECRET);
    const err = await refused(sioSocket(null, { auth: { token } }, t));
    assert.equal(err.message, 'Unauthorized');
  });
});

describe('/ws handshake', () => {
  async function assertRefused401(options) {
    await assert.rejects(openWs(options), (err) => {
      assert.equal(err.statusCode, 401, `${JSON.stringify(options)}: ${err.message}`);
      assert.match(String(err.headers?.['content-type']), /^application\/problem\+json/, 'a 401 is a problem document');
      return true;
    });
  }

  test('no token → HTTP 401 before the upgrade', async () => {
    await assertRefused401({});
  });

  test('a bad token in ?token= or in the Authorization header → HTTP 401 before the upgrade', async () => {
    const user = await newUser('hs');
    for (const [what, token] of Object.entries(badTokens(user))) {
      if (token === '') continue; // `?token=` empty is "no token", covered above
      await assertRefused401({ query: token, label: what });
      await assertRefused401({ header: `Bearer ${token}`, label: what });
    }
  });

  test('an expired token → HTTP 401 before the upgrade', needsSecret, async () => {
    const user = await newUser('hs');
    const iat = nowSeconds() - 3600;
    const token = signJwt({ sub: user.id, iat, exp: iat + 900 }, JWT_SECRET);
    await assertRefused401({ query: token });
    await assertRefused401({ header: `Bearer ${token}` });
  });

  test('a valid ?token= upgrades and acts as its user', async (t) => {
    const user = await newUser('hs');
    const client = await openWs({ query: user.token }, t);
    assert.equal(client.open, true);
    await assertActsAs(client, user);
  });

  test('a valid Authorization: Bearer header upgrades and acts as its user', async (t) => {
    const user = await newUser('hs');
    const client = await openWs({ header: `Bearer ${user.token}` }, t);
    assert.equal(client.open, true);
    await assertActsAs(client, user);
  });
});
