// Web Push end to end: the server pushes a due reminder to a push service written here, which
// checks the request as RFC 8030 / 8292 describe it and decrypts the aes128gcm payload
// (RFC 8291) with each browser's own keys, through npm's http_ece: an implementation other
// than the server's.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import { after, before, test } from "node:test";

import ece from "http_ece";

import { env, rest, user } from "../e2e/support.mjs";

const base = env("PIXIE_URL");

/** A push service: records every push, and answers each path's planned statuses first. */
class PushService {
  constructor() {
    this.pushes = [];
    this.plan = new Map();
    this.changed = () => {};
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const status = this.plan.get(req.url)?.shift() ?? 201;
        this.pushes.push({
          path: req.url,
          method: req.method,
          headers: req.headers,
          body: Buffer.concat(chunks),
          status,
        });
        const headers = status === 201 ? { location: `${req.url}/m${this.pushes.length}` } : {};
        if (status === 429) headers["retry-after"] = "1";
        res.writeHead(status, headers).end();
        this.changed();
      });
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.origin = `http://127.0.0.1:${this.server.address().port}`;
  }

  to(path) {
    return this.pushes.filter((p) => p.path === path);
  }

  /** Resolves once `ready()` holds; fails with what arrived after `ms`. */
  async until(ready, ms = 20_000) {
    const deadline = Date.now() + ms;
    while (!ready()) {
      const left = deadline - Date.now();
      assert.ok(left > 0, `timed out; pushes: ${JSON.stringify(this.pushes.map((p) => [p.path, p.status]))}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.changed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** What a browser's PushManager holds: a P-256 key pair and an auth secret. */
function browser() {
  const ecdh = crypto.createECDH("prime256v1");
  ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  return {
    ecdh,
    auth,
    keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: auth.toString("base64url") },
  };
}

function decrypt(push, device) {
  return JSON.parse(
    ece
      .decrypt(push.body, {
        version: "aes128gcm",
        privateKey: device.ecdh,
        authSecret: device.auth.toString("base64url"),
      })
      .toString("utf8"),
  );
}

/** Checks the VAPID header (RFC 8292): the JWT verifies with the server's public key. */
function checkVapid(header, serverKey, audience) {
  const match = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(header ?? "");
  assert.ok(match, `Authorization is a vapid header: ${header}`);
  const [, jwt, k] = match;
  assert.equal(k, serverKey, "k is the server's VAPID public key");
  const [head, claims, signature] = jwt.split(".");
  const point = Buffer.from(serverKey, "base64url");
  const key = crypto.createPublicKey({
    format: "jwk",
    key: {
      kty: "EC",
      crv: "P-256",
      x: point.subarray(1, 33).toString("base64url"),
      y: point.subarray(33).toString("base64url"),
    },
  });
  const verified = crypto.verify(
    "sha256",
    Buffer.from(`${head}.${claims}`),
    { key, dsaEncoding: "ieee-p1363" },
    Buffer.from(signature, "base64url"),
  );
  assert.ok(verified, "the JWT's ES256 signature verifies with k");
  assert.equal(JSON.parse(Buffer.from(head, "base64url")).alg, "ES256");
  const body = JSON.parse(Buffer.from(claims, "base64url"));
  assert.equal(body.aud, audience, "aud is the push service's origin");
  const now = Date.now() / 1000;
  assert.ok(body.exp > now && body.exp <= now + 24 * 3600, `exp within 24 h: ${body.exp}`);
  assert.match(body.sub, /^(mailto:|https:)/);
}

const service = new PushService();
before(() => service.start());
after(() => service.server.close());

test("a due reminder is pushed, encrypted and signed, once to every subscription; 410 removes one, 429 is retried", async () => {
  const me = user("push");
  const { status, body: vapid } = await rest(base, "GET", "/v1/push/vapid-public-key", me);
  assert.equal(status, 200);
  assert.equal(Buffer.from(vapid.key, "base64url").length, 65);

  const devices = { "/push/a": browser(), "/push/b": browser(), "/push/c": browser() };
  const ids = {};
  for (const [path, device] of Object.entries(devices)) {
    const reply = await rest(base, "POST", "/v1/push/subscriptions", me, {
      endpoint: `${service.origin}${path}`,
      expirationTime: null,
      keys: device.keys,
    });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
    assert.deepEqual(Object.keys(reply.body).sort(), ["createdAt", "endpoint", "id"]);
    ids[path] = reply.body.id;
  }
  // The same browser subscribing again keeps its subscription.
  const again = await rest(base, "POST", "/v1/push/subscriptions", me, {
    endpoint: `${service.origin}/push/a`,
    keys: devices["/push/a"].keys,
  });
  assert.equal(again.body.id, ids["/push/a"]);

  service.plan.set("/push/b", [410]);
  service.plan.set("/push/c", [429]);
  const due = new Date(Date.now() + 1500).toISOString();
  const created = await rest(base, "POST", "/v1/reminders", me, { text: "call mom", dueAt: due });
  assert.equal(created.status, 201);
  const reminder = created.body;

  await service.until(
    () =>
      service.to("/push/a").length >= 1 &&
      service.to("/push/b").length >= 1 &&
      service.to("/push/c").length >= 2,
  );

  const delivered = [
    [service.to("/push/a")[0], devices["/push/a"]],
    [service.to("/push/c")[1], devices["/push/c"]],
  ];
  for (const [push, device] of delivered) {
    assert.equal(push.method, "POST");
    assert.equal(push.headers["content-encoding"], "aes128gcm");
    const ttl = Number(push.headers.ttl);
    assert.ok(Number.isInteger(ttl) && ttl > 0 && ttl <= 3600, `TTL ${push.headers.ttl}`);
    assert.equal(push.headers.urgency, "high");
    assert.equal(push.headers.topic, reminder.id.replaceAll("-", ""));
    checkVapid(push.headers.authorization, vapid.key, service.origin);
    const payload = decrypt(push, device);
    assert.equal(payload.type, "reminder");
    assert.equal(payload.reminder.id, reminder.id);
    assert.equal(payload.reminder.text, "call mom");
    assert.equal(payload.reminder.status, "fired");
  }
  // Only the subscription's own keys open it.
  assert.throws(() => decrypt(service.to("/push/a")[0], devices["/push/c"]));

  // The 410 removed /push/b; the others stay.
  const deadline = Date.now() + 5000;
  let listed;
  do {
    listed = (await rest(base, "GET", "/v1/push/subscriptions", me)).body.map((s) => s.id);
    if (listed.length === 2) break;
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < deadline);
  assert.deepEqual(listed.sort(), [ids["/push/a"], ids["/push/c"]].sort());

  // Once per device: nothing more arrives.
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(service.to("/push/a").length, 1);
  assert.equal(service.to("/push/b").length, 1);
  assert.equal(service.to("/push/c").length, 2);
});
