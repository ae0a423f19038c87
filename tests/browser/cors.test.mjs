// CORS in a real browser: a page on another origin (served here, on a loopback port) calls the
// REST API with a bearer token, as a frontend at app.example.com calls api.example.com.
//
// Run by `cargo test --test api playground`, which starts the servers and sets:
//   PIXIE_URL              a dev-mode server: any loopback origin may call it
//   PIXIE_CORS_CLOSED_URL  a server whose server.cors_origins lists another origin only
//   PIXIE_CHROMIUM         the browser binary

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { chromium } from "playwright-core";
import { env, rest, user } from "../e2e/support.mjs";

let browser;
let site;
let origin;

before(async () => {
  browser = await chromium.launch({ executablePath: env("PIXIE_CHROMIUM"), headless: true });
  // The frontend's own origin: an empty page, with no policy of its own in the way.
  site = createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>app</title>");
  });
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${site.address().port}`;
});

after(async () => {
  await browser?.close();
  site?.close();
});

/** Runs a cross-origin fetch in the page; returns what the page could read, or the failure. */
function call(page, url, init) {
  return page.evaluate(
    async ({ url, init }) => {
      try {
        const res = await fetch(url, init);
        return {
          status: res.status,
          requestId: res.headers.get("x-request-id"),
          body: await res.json(),
        };
      } catch (e) {
        return { failed: `${e.name}: ${e.message}` };
      }
    },
    { url, init },
  );
}

test("a page on another origin uses the REST API, and an unlisted one cannot", async (t) => {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const console = [];
  page.on("console", (m) => console.push(`${m.type()}: ${m.text()}`));
  await page.goto(`${origin}/`);

  const api = env("PIXIE_URL");
  const id = user("cors");
  // Authorization and a JSON body make this a preflighted request.
  const created = await call(page, `${api}/v1/tasks`, {
    method: "POST",
    headers: {
      authorization: `Bearer dev:${id}`,
      "content-type": "application/json",
      "x-request-id": "from-the-browser-1",
    },
    body: JSON.stringify({ title: "Made from another origin" }),
  });
  assert.equal(created.status, 201, JSON.stringify(created));
  assert.equal(created.body.title, "Made from another origin");
  assert.equal(created.requestId, "from-the-browser-1", "x-request-id is exposed to the page");
  const patched = await call(page, `${api}/v1/tasks/${created.body.id}`, {
    method: "PATCH",
    headers: { authorization: `Bearer dev:${id}`, "content-type": "application/json" },
    body: JSON.stringify({ status: "completed" }),
  });
  assert.equal(patched.status, 200, JSON.stringify(patched));
  // An error is readable too: the app can show the contract's error body.
  const missing = await call(page, `${api}/v1/tasks/00000000-0000-4000-8000-000000000000`, {
    headers: { authorization: `Bearer dev:${id}` },
  });
  assert.equal(missing.status, 404, JSON.stringify(missing));
  assert.equal(missing.body.error.code, "not_found");
  const stored = await rest(api, "GET", "/v1/tasks?status=completed", id);
  assert.equal(stored.body.items.length, 1, JSON.stringify(stored.body));

  // A server that lists another origin: the browser refuses to let the page read anything.
  const refused = await call(page, `${env("PIXIE_CORS_CLOSED_URL")}/v1/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer dev:${id}`, "content-type": "application/json" },
    body: JSON.stringify({ title: "Must not be made" }),
  });
  assert.match(refused.failed ?? "", /TypeError/, JSON.stringify(refused));
  assert.ok(
    console.some((line) => line.includes("blocked by CORS policy")),
    `the browser names CORS as the reason: ${JSON.stringify(console)}`,
  );
  // The preflight failed, so the request itself was never sent.
  const none = await rest(env("PIXIE_CORS_CLOSED_URL"), "GET", "/v1/tasks", id);
  assert.equal(none.body.items.length, 0, JSON.stringify(none.body));
});
