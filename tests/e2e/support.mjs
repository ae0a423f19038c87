// What the Node end-to-end suites (tests/e2e/, tests/browser/) share.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

/** A variable `cargo test --test api` set for the suite; a clear failure when run alone. */
export function env(name) {
  const value = process.env[name];
  assert.ok(
    value,
    `${name} is not set: run these tests through \`cargo test --test api\` (the socketio_client ` +
      "and playground tests), which starts the servers",
  );
  return value.replace(/\/+$/, "");
}

/** A fresh dev user id for one test. */
export function user(name) {
  return `${name}_${randomBytes(6).toString("hex")}`;
}

/** A REST call as the dev user `id`: its status and parsed body. */
export async function rest(base, method, path, id, body) {
  const headers = { authorization: `Bearer dev:${id}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}
