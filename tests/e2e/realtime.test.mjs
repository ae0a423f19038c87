// The realtime API (API.md, "Realtime: Socket.IO v4 over WebSocket") through the stock
// socket.io-client, as a JavaScript client uses it.
//
// Run by `cargo test --test api socketio_client`, which starts the servers and sets:
//   PIXIE_URL           a server on the offline assistant
//   PIXIE_SLOW_URL      a server whose model streams "Hel", then waits for the release,
//                       then streams "lo", " world" (the release is one-shot: only the resume
//                       test may use this server)
//   PIXIE_SLOW_CONTROL  POST <it>/release lets the slow model go on

import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { io } from "socket.io-client";
import { env, rest, user } from "./support.mjs";

const ACK_MS = 5000;
const WAIT_MS = 10000;
const TEST_MS = 30000;

/**
 * A socket with every event it receives recorded (from before it connects), so that a test
 * can wait for an event that may already have arrived.
 */
function open(url, auth) {
  const options = { transports: ["websocket"], reconnection: false, forceNew: true };
  if (auth !== undefined) options.auth = auth;
  const socket = io(url, options);
  const events = [];
  const waiters = new Set();
  socket.onAny((name, payload) => {
    events.push({ name, payload });
    for (const waiter of waiters) {
      if (waiter.name === name && waiter.match(payload)) {
        waiters.delete(waiter);
        waiter.resolve(payload);
      }
    }
  });
  const disconnects = [];
  socket.on("disconnect", (reason) => disconnects.push(reason));
  return {
    socket,
    events,
    disconnects,
    names: () => events.map((e) => e.name),
    /** The first `name` event whose payload matches, received already or within `ms`. */
    waitFor(name, match = () => true, ms = WAIT_MS) {
      const seen = events.find((e) => e.name === name && match(e.payload));
      if (seen) return Promise.resolve(seen.payload);
      return new Promise((resolve, reject) => {
        const waiter = { name, match, resolve };
        waiters.add(waiter);
        setTimeout(() => {
          if (waiters.delete(waiter)) {
            reject(
              new Error(
                `no ${name} event within ${ms} ms; received: ${JSON.stringify(events)}`,
              ),
            );
          }
        }, ms).unref();
      });
    },
    close() {
      socket.close();
    },
  };
}

/** Resolves once connected; rejects with the connect_error. */
function connected(client, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`neither connect nor connect_error within ${ms} ms`)),
      ms,
    );
    client.socket.once("connect", () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A signed-in socket of `id`; closed when the test ends. */
async function connect(t, url, id) {
  const client = open(url, { token: `dev:${id}` });
  t.after(() => client.close());
  return connected(client);
}

/** The connect_error of a socket opened with this auth (undefined: no auth object). */
async function refusal(t, url, auth) {
  const client = open(url, auth);
  t.after(() => client.close());
  try {
    await connected(client);
  } catch (err) {
    return err;
  }
  assert.fail(`the server accepted the socket (auth ${JSON.stringify(auth)})`);
}

function ack(client, event, payload) {
  return client.socket.timeout(ACK_MS).emitWithAck(event, payload);
}

function assertSent(reply, what) {
  assert.equal(reply?.ok, true, `${what} should ack ok: ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.conversationId, "string", `conversationId in ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.messageId, "string", `messageId in ${JSON.stringify(reply)}`);
}

function assertInvalid(reply, what) {
  assert.equal(reply?.ok, false, `${what} should be refused: ${JSON.stringify(reply)}`);
  assert.equal(
    reply.error?.code,
    "validation_failed",
    `${what} should fail validation: ${JSON.stringify(reply)}`,
  );
  assert.equal(typeof reply.error.message, "string", `${what}: error.message in ${JSON.stringify(reply)}`);
}

const doneIn = (conversationId) => (p) => p?.conversationId === conversationId;

test("a bad token is refused with connect_error unauthenticated", { timeout: TEST_MS }, async (t) => {
  const err = await refusal(t, env("PIXIE_URL"), { token: "nope" });
  assert.equal(err.message, "unauthenticated", `connect_error: ${err}`);
});

test("a missing token is refused with connect_error unauthenticated", { timeout: TEST_MS }, async (t) => {
  const url = env("PIXIE_URL");
  const noAuth = await refusal(t, url, undefined);
  assert.equal(noAuth.message, "unauthenticated", `connect_error without auth: ${noAuth}`);
  const emptyAuth = await refusal(t, url, {});
  assert.equal(emptyAuth.message, "unauthenticated", `connect_error with auth {}: ${emptyAuth}`);
});

test("chat:send acks, then the answer streams as chat:delta before chat:done", { timeout: TEST_MS }, async (t) => {
  const client = await connect(t, env("PIXIE_URL"), user("alice"));
  const sent = await ack(client, "chat:send", {
    clientMessageId: "m1",
    text: "add a task buy milk tomorrow",
  });
  assertSent(sent, "chat:send");

  const done = await client.waitFor("chat:done", doneIn(sent.conversationId));
  assert.equal(done.message?.role, "assistant", `chat:done: ${JSON.stringify(done)}`);
  assert.equal(done.message.conversationId, sent.conversationId);

  const names = client.names();
  const doneAt = names.indexOf("chat:done");
  const deltas = client.events.filter((e) => e.name === "chat:delta");
  assert.ok(deltas.length > 0, `no chat:delta before chat:done: ${names}`);
  assert.ok(
    names.lastIndexOf("chat:delta") < doneAt,
    `a chat:delta came after chat:done: ${names}`,
  );
  for (const { payload } of deltas) {
    assert.equal(payload.conversationId, sent.conversationId, `delta ${JSON.stringify(payload)}`);
    assert.equal(payload.messageId, done.message.id, `delta ${JSON.stringify(payload)}`);
  }
  const streamed = deltas.map((e) => e.payload.text).join("");
  assert.equal(streamed, done.message.content, "the deltas add up to the final message");
});

test("the user's other sockets get the echo and the task; the sender and other users do not", { timeout: TEST_MS }, async (t) => {
  const url = env("PIXIE_URL");
  const alice = user("alice");
  const phone = await connect(t, url, alice);
  const laptop = await connect(t, url, alice);
  const bob = await connect(t, url, user("bob"));

  const sent = await ack(phone, "chat:send", {
    clientMessageId: "m1",
    text: "add a task buy milk tomorrow",
  });
  assertSent(sent, "chat:send");

  const echo = await laptop.waitFor("chat:message", (p) => p?.message?.id === sent.messageId);
  assert.equal(echo.message.role, "user", `echo: ${JSON.stringify(echo)}`);
  assert.equal(echo.message.conversationId, sent.conversationId);
  assert.equal(echo.message.content, "add a task buy milk tomorrow");
  const created = await laptop.waitFor("task:created");
  assert.match(created.task?.title ?? "", /milk/, `task:created: ${JSON.stringify(created)}`);
  await laptop.waitFor("chat:done", doneIn(sent.conversationId));

  const onPhone = await phone.waitFor("task:created");
  assert.equal(onPhone.task.id, created.task.id, "the same task on both sockets");
  await phone.waitFor("chat:done", doneIn(sent.conversationId));

  await sleep(500);
  const ownEcho = phone.events.filter(
    (e) => e.name === "chat:message" && e.payload?.message?.role === "user",
  );
  assert.deepEqual(ownEcho, [], "the sending socket gets no echo of its own message");
  assert.deepEqual(bob.events, [], "another user's socket gets nothing");
});

test("a retry with the same clientMessageId acks the same message and starts no second turn", { timeout: TEST_MS }, async (t) => {
  const url = env("PIXIE_URL");
  const alice = user("alice");
  const first = await connect(t, url, alice);
  const payload = { clientMessageId: "retry-1", text: "add a task buy milk tomorrow" };
  const sent = await ack(first, "chat:send", payload);
  assertSent(sent, "chat:send");

  // A retry while the answer is in flight, as after a reconnect, from a new socket.
  const second = await connect(t, url, alice);
  const retried = await ack(second, "chat:send", payload);
  assert.deepEqual(retried, sent, "the retry acks the same message");

  await first.waitFor("chat:done", doneIn(sent.conversationId));
  // And one after the answer is done.
  const late = await ack(first, "chat:send", payload);
  assert.deepEqual(late, sent, "a retry after the answer acks the same message");
  await sleep(300);

  const listed = await rest(url, "GET", `/v1/conversations/${sent.conversationId}/messages`, alice);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  const roles = listed.body.items.map((m) => m.role);
  assert.deepEqual(roles, ["user", "assistant"], `messages: ${JSON.stringify(listed.body.items)}`);
  assert.equal(listed.body.items[0].id, sent.messageId);
  const dones = first.events.filter((e) => e.name === "chat:done");
  assert.ok(
    dones.every((e) => e.payload.message.id === dones[0].payload.message.id),
    `chat:done for more than one answer: ${JSON.stringify(dones)}`,
  );
});

test("invalid chat:send payloads ack validation_failed and the socket stays connected", { timeout: TEST_MS }, async (t) => {
  const client = await connect(t, env("PIXIE_URL"), user("alice"));

  assertInvalid(
    await ack(client, "chat:send", { clientMessageId: "long", text: "x".repeat(8001) }),
    "text of 8001 characters",
  );
  assertInvalid(await ack(client, "chat:send", "add a task buy milk"), "a string payload");
  assertInvalid(await ack(client, "chat:send", { text: "hello" }), "a payload without clientMessageId");
  assertInvalid(
    await ack(client, "chat:send", { clientMessageId: "extra", text: "hello", extra: 1 }),
    "a payload with an unknown field",
  );

  assert.equal(client.socket.connected, true, "still connected");
  assert.deepEqual(client.disconnects, [], "no disconnect");
  const sent = await ack(client, "chat:send", { clientMessageId: "valid", text: "list my tasks" });
  assertSent(sent, "a valid chat:send after the invalid ones");
  await client.waitFor("chat:done", doneIn(sent.conversationId));
  assert.deepEqual(client.disconnects, [], "no disconnect");
});

test("a task created over REST reaches every socket of the user", { timeout: TEST_MS }, async (t) => {
  const url = env("PIXIE_URL");
  const alice = user("alice");
  const phone = await connect(t, url, alice);
  const laptop = await connect(t, url, alice);
  const bob = await connect(t, url, user("bob"));

  const created = await rest(url, "POST", "/v1/tasks", alice, { title: "from rest" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  for (const [name, client] of [["phone", phone], ["laptop", laptop]]) {
    const event = await client.waitFor("task:created", (p) => p?.task?.id === created.body.id);
    assert.deepEqual(event.task, created.body, `task:created on the ${name}`);
  }
  await sleep(300);
  assert.deepEqual(bob.events, [], "another user's socket gets nothing");
});

test("a socket that reconnects mid-answer resumes it with chat:resume", { timeout: TEST_MS }, async (t) => {
  const url = env("PIXIE_SLOW_URL");
  const control = env("PIXIE_SLOW_CONTROL");
  const alice = user("alice");

  const a = await connect(t, url, alice);
  const sent = await ack(a, "chat:send", { clientMessageId: "resume-1", text: "say hello" });
  assertSent(sent, "chat:send");
  const first = await a.waitFor("chat:delta", doneIn(sent.conversationId));
  assert.equal(first.text, "Hel", `first delta: ${JSON.stringify(first)}`);
  a.close();

  const b = await connect(t, url, alice);
  const resumed = await ack(b, "chat:resume", { conversationId: sent.conversationId });
  assert.deepEqual(
    resumed,
    { ok: true, inFlight: true, messageId: first.messageId, text: "Hel" },
    "chat:resume mid-answer",
  );

  const released = await fetch(`${control}/release`, { method: "POST" });
  assert.equal(released.status, 200, "the slow model's control endpoint");

  const done = await b.waitFor("chat:done", doneIn(sent.conversationId));
  assert.equal(done.message?.content, "Hello world", `chat:done: ${JSON.stringify(done)}`);
  assert.equal(done.message.id, first.messageId);
  const later = b.events
    .filter((e) => e.name === "chat:delta" && e.payload.conversationId === sent.conversationId)
    .map((e) => e.payload.text)
    .join("");
  assert.equal(resumed.text + later, done.message.content, "resumed text + later deltas");

  const after = await ack(b, "chat:resume", { conversationId: sent.conversationId });
  assert.deepEqual(after, { ok: true, inFlight: false }, "chat:resume after the answer");
});

test("erasing the user ends their sockets with session:ended, then an io server disconnect", { timeout: TEST_MS }, async (t) => {
  const url = env("PIXIE_URL");
  const alice = user("alice");
  const phone = await connect(t, url, alice);
  const laptop = await connect(t, url, alice);
  const bob = await connect(t, url, user("bob"));

  const erased = await rest(url, "DELETE", "/v1/me", alice);
  assert.equal(erased.status, 204, JSON.stringify(erased.body));
  for (const [name, client] of [["phone", phone], ["laptop", laptop]]) {
    const ended = await client.waitFor("session:ended");
    assert.equal(ended.reason, "user_erased", `session:ended on the ${name}: ${JSON.stringify(ended)}`);
    const deadline = Date.now() + WAIT_MS;
    while (client.disconnects.length === 0 && Date.now() < deadline) await sleep(20);
    assert.deepEqual(client.disconnects, ["io server disconnect"], `the ${name}'s disconnect`);
  }
  assert.ok(bob.socket.connected, "another user's socket stays");
  const sent = await ack(bob, "chat:send", { clientMessageId: "after-erasure", text: "help" });
  assertSent(sent, "bob's chat:send");
});
