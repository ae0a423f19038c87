// The playground page (src/http/playground/) in a real browser: Debian's chromium, headless,
// driven by playwright-core, as a person uses it.
//
// Run by `cargo test --test api playground`, which starts the servers and sets:
//   PIXIE_URL             a server on the offline assistant
//   PIXIE_SLOW_URL        a server whose model streams "Hel", waits for the release, then
//                         streams "lo", " world" (one-shot: only the resume test uses it)
//   PIXIE_SLOW_CONTROL    POST <it>/release lets the slow model go on
//   PIXIE_CHROMIUM        the browser binary
//   PIXIE_SCREENSHOT_DIR  where the screenshots go

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { env, rest, user } from "../e2e/support.mjs";

const WAIT_MS = 15_000;
const TEST_MS = 90_000;

const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: env("PIXIE_CHROMIUM"), headless: true });
});

after(async () => {
  await browser?.close();
});

/**
 * A page in a context of its own (its own storage, like another device), with every console
 * error, uncaught exception and failed request recorded.
 */
async function open(t, { viewport = DESKTOP, colorScheme = "light", isMobile = false } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, isMobile, hasTouch: isMobile });
  t.after(() => context.close());
  const page = await context.newPage();
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("requestfailed", (request) => {
    // A WebSocket the test itself cut is not the page's fault; everything else is.
    if (!request.url().includes("/socket.io/")) {
      problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
    }
  });
  page.setDefaultTimeout(WAIT_MS);
  return { context, page, problems };
}

async function signIn(page, base, id) {
  await page.goto(`${base}/`);
  await page.getByLabel("User id", { exact: true }).fill(id);
  await page.getByRole("button", { name: "Sign in" }).click();
  await online(page);
}

async function online(page) {
  await page.locator('#connection[data-state="online"]').waitFor();
}

async function say(page, text) {
  const input = page.getByLabel("Message", { exact: true });
  await input.fill(text);
  await input.press("Enter");
}

async function shoot(page, name) {
  const path = join(env("PIXIE_SCREENSHOT_DIR"), `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

function noProblems(...pages) {
  const all = pages.flatMap((p) => p.problems);
  assert.deepEqual(all, [], `the page reported problems:\n${all.join("\n")}`);
}

/** Tomorrow at 09:00, local time. */
function tomorrowAt9() {
  const day = new Date();
  day.setDate(day.getDate() + 1);
  day.setHours(9, 0, 0, 0);
  return day;
}

test("sign in, chat, and every page of the user stays current", { timeout: TEST_MS }, async (t) => {
  const base = env("PIXIE_URL");
  const id = user("plants");
  const a = await open(t);
  await signIn(a.page, base, id);
  await a.page.waitForFunction(() => document.activeElement?.id === "message");

  // Shift+Enter is a new line, not a send.
  const input = a.page.getByLabel("Message", { exact: true });
  await input.fill("first line");
  await input.press("Shift+Enter");
  await input.pressSequentially("second line");
  assert.equal(await input.inputValue(), "first line\nsecond line");
  assert.equal(await a.page.locator("#messages li").count(), 0, "Shift+Enter sent the message");

  await say(a.page, "add a task to water the plants tomorrow");
  const mine = a.page.locator('#messages li.user[data-state="done"]');
  await mine.filter({ hasText: "add a task to water the plants tomorrow" }).waitFor();
  const answer = a.page.locator('#messages li.assistant[data-state="done"]');
  await answer.waitFor();
  await answer.locator('.tool[data-name="create_task"][data-status="ok"]').waitFor();
  const answerText = (await answer.locator(".text").textContent()).trim();
  assert.match(answerText, /water the plants/i, `the answer: ${answerText}`);
  assert.equal(await input.inputValue(), "", "the input is cleared after sending");

  const task = a.page.locator("#task-list li", { hasText: /water the plants/i });
  await task.waitFor();
  assert.notEqual((await task.locator(".when").textContent()).trim(), "", "the task shows its due time");
  const stored = await rest(base, "GET", "/v1/tasks", id);
  assert.equal(stored.body.items.length, 1, JSON.stringify(stored.body));
  assert.match(stored.body.items[0].title, /water the plants/i);
  // The conversation is listed, and current.
  await a.page.locator('#conversation-list button[aria-current="true"]').waitFor();

  // A second device of the same user, at phone width, sees the task and the conversation.
  const b = await open(t, { viewport: PHONE, isMobile: true });
  await signIn(b.page, base, id);
  await b.page.locator("#task-list li", { hasText: /water the plants/i }).waitFor();
  await b.page.locator("#conversation-list button").first().click();
  await b.page.locator("#messages li.assistant", { hasText: /water the plants/i }).waitFor();

  // A change made over REST shows on both pages without a reload.
  const created = await rest(base, "POST", "/v1/tasks", id, { title: "Call the plumber" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  for (const { page } of [a, b]) {
    await page.locator("#task-list li", { hasText: "Call the plumber" }).waitFor();
  }
  const done = await rest(base, "PATCH", `/v1/tasks/${created.body.id}`, id, { status: "completed" });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  await a.page.locator("#task-list li.done", { hasText: "Call the plumber" }).waitFor();
  // Ticking a task on one page completes it for the other.
  await b.page.getByLabel(/Done: .*water the plants/i).check();
  await a.page.locator("#task-list li.done", { hasText: /water the plants/i }).waitFor();
  const watered = await rest(base, "GET", "/v1/tasks?status=completed", id);
  assert.equal(watered.body.items.length, 2, JSON.stringify(watered.body));

  // A recurring event made over REST: its occurrences of the week, expanded by the server.
  const start = tomorrowAt9();
  const event = await rest(base, "POST", "/v1/events", id, {
    title: "Standup",
    startAt: start.toISOString(),
    endAt: new Date(start.getTime() + 15 * 60_000).toISOString(),
    recurrence: "FREQ=DAILY;COUNT=3",
  });
  assert.equal(event.status, 201, JSON.stringify(event.body));
  for (const { page } of [a, b]) {
    await page.locator("#event-list li", { hasText: "Standup" }).nth(2).waitFor();
  }
  assert.equal(await a.page.locator("#event-list li", { hasText: "Standup" }).count(), 3);

  // A chat on the second device: the first sees the memory it made, and the conversation.
  await b.page.getByRole("button", { name: "New conversation" }).click();
  await say(b.page, "remember that my sister's birthday is 3 May");
  await b.page.locator('#messages li.assistant[data-state="done"] .tool[data-name="remember"]').waitFor();
  const memory = a.page.locator("#memory-list li", { hasText: "sister's birthday is 3 May" });
  await memory.waitFor();
  await a.page.locator("#conversation-list li").nth(1).waitFor();

  // Search, by meaning or by words, over the user's own data.
  await a.page.getByLabel("Search your messages, tasks, events and memories").fill("sister birthday");
  await a.page.getByRole("button", { name: "Search", exact: true }).click();
  await a.page.locator('#search-results li[data-kind="memory"]', { hasText: "3 May" }).waitFor();

  // Screenshots: desktop and phone, light and dark.
  await shoot(a.page, "desktop-light");
  await a.page.emulateMedia({ colorScheme: "dark" });
  await shoot(a.page, "desktop-dark");
  await shoot(b.page, "phone-light");
  await b.page.emulateMedia({ colorScheme: "dark" });
  await shoot(b.page, "phone-dark");
  // At phone width nothing is wider than the screen.
  const overflow = await b.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= PHONE.width, `the page is ${overflow} px wide at ${PHONE.width} px`);

  // Deleting a memory.
  await a.page.getByRole("button", { name: /Delete memory: .*sister/ }).click();
  await memory.waitFor({ state: "detached" });
  const memories = await rest(base, "GET", "/v1/memories", id);
  assert.equal(memories.body.items.length, 0, JSON.stringify(memories.body));

  noProblems(a, b);
});

test("a page reloaded mid-answer resumes the answer", { timeout: TEST_MS }, async (t) => {
  const base = env("PIXIE_SLOW_URL");
  const a = await open(t);
  await signIn(a.page, base, user("reload"));
  await say(a.page, "hello there");
  const streaming = a.page.locator('#messages li.assistant[data-state="streaming"]');
  await streaming.filter({ hasText: "Hel" }).waitFor();

  await a.page.reload();
  await online(a.page);
  // The history (the question) and the answer so far, still streaming.
  await a.page.locator('#messages li.user[data-state="done"]', { hasText: "hello there" }).waitFor();
  await streaming.filter({ hasText: "Hel" }).waitFor();
  assert.equal((await streaming.locator(".text").textContent()), "Hel");
  await a.page.getByRole("button", { name: "Stop answer" }).waitFor();

  const released = await fetch(`${env("PIXIE_SLOW_CONTROL")}/release`, { method: "POST" });
  assert.equal(released.status, 200);
  const done = a.page.locator('#messages li.assistant[data-state="done"]');
  await done.waitFor();
  assert.equal(await done.locator(".text").textContent(), "Hello world");
  assert.equal(await a.page.locator("#messages li.assistant").count(), 1, "one answer");
  assert.equal(await a.page.getByRole("button", { name: "Stop answer" }).isVisible(), false);
  noProblems(a);
});

test("a send whose ack is lost is retried with its clientMessageId after reconnecting", { timeout: TEST_MS }, async (t) => {
  const base = env("PIXIE_URL");
  const id = user("retry");
  const a = await open(t);
  // The first chat:send reaches the server, but its ack and everything after it is lost, and
  // the connection drops.
  const sends = [];
  let cut = false;
  await a.context.routeWebSocket(/\/socket\.io\//, (ws) => {
    const server = ws.connectToServer();
    let blackhole = false;
    ws.onMessage((message) => {
      if (typeof message === "string" && /^42\d*\["chat:send"/.test(message)) {
        sends.push(JSON.parse(message.replace(/^42\d*/, ""))[1]);
        if (!cut) {
          cut = true;
          blackhole = true;
          server.send(message);
          setTimeout(() => {
            ws.close({ code: 1001 });
            server.close();
          }, 500);
          return;
        }
      }
      server.send(message);
    });
    server.onMessage((message) => {
      if (!blackhole) ws.send(message);
    });
  });
  await signIn(a.page, base, id);
  await say(a.page, "add a task to repot the fern tomorrow");
  await a.page.locator('#connection[data-state="reconnecting"]').waitFor();
  await online(a.page);
  await a.page.locator('#messages li.assistant[data-state="done"]', { hasText: /repot the fern/i }).waitFor();
  await a.page.locator("#task-list li", { hasText: /repot the fern/i }).waitFor();

  assert.ok(sends.length >= 2, `the send was retried: ${JSON.stringify(sends)}`);
  assert.ok(
    sends.every((s) => s.clientMessageId === sends[0].clientMessageId && s.text === sends[0].text),
    `every retry carries the same clientMessageId: ${JSON.stringify(sends)}`,
  );
  // Stored once, answered once: one turn ran.
  const conversations = await rest(base, "GET", "/v1/conversations", id);
  assert.equal(conversations.body.items.length, 1, JSON.stringify(conversations.body));
  const messages = await rest(base, "GET", `/v1/conversations/${conversations.body.items[0].id}/messages`, id);
  const roles = messages.body.items.map((m) => m.role);
  assert.deepEqual(roles, ["user", "assistant"], JSON.stringify(messages.body));
  const tasks = await rest(base, "GET", "/v1/tasks", id);
  assert.equal(tasks.body.items.length, 1, JSON.stringify(tasks.body));
  assert.equal(await a.page.locator("#messages li.user").count(), 1, "one bubble for the message");
  noProblems(a);
});

test("a due reminder shows on every page, and snoozing or dismissing it on one clears it on the others", { timeout: TEST_MS }, async (t) => {
  const base = env("PIXIE_URL");
  const id = user("reminders");
  // Fired while no page was open: shown once the user signs in.
  const missed = await rest(base, "POST", "/v1/reminders", id, {
    text: "Take the bins out",
    dueAt: new Date(Date.now() + 300).toISOString(),
  });
  assert.equal(missed.status, 201);
  await new Promise((resolve) => setTimeout(resolve, 1500));

  const a = await open(t);
  const b = await open(t, { viewport: PHONE, isMobile: true });
  await signIn(a.page, base, id);
  await signIn(b.page, base, id);
  const bins = (p) => p.page.locator(".notification", { hasText: "Take the bins out" });
  await bins(a).waitFor();
  await bins(b).waitFor();

  const tea = await rest(base, "POST", "/v1/reminders", id, {
    text: "Tea is ready",
    dueAt: new Date(Date.now() + 1500).toISOString(),
  });
  assert.equal(tea.status, 201);
  const teaNote = (p) => p.page.locator(".notification", { hasText: "Tea is ready" });
  await teaNote(a).waitFor();
  await teaNote(b).waitFor();
  await shoot(a.page, "reminder-desktop-light");
  await shoot(b.page, "reminder-phone-light");

  // Snoozed on the desktop: gone on both, and scheduled ten minutes on.
  await teaNote(a).getByRole("button", { name: "Snooze 10 min" }).click();
  await teaNote(a).waitFor({ state: "detached" });
  await teaNote(b).waitFor({ state: "detached" });
  const snoozed = await rest(base, "GET", `/v1/reminders/${tea.body.id}`, id);
  assert.equal(snoozed.body.status, "scheduled");
  const ahead = Date.parse(snoozed.body.dueAt) - Date.now();
  assert.ok(ahead > 9 * 60_000 && ahead <= 10 * 60_000, `snoozed ${ahead} ms ahead`);

  // Dismissed on the phone: gone on both.
  await bins(b).getByRole("button", { name: "Dismiss" }).click();
  await bins(b).waitFor({ state: "detached" });
  await bins(a).waitFor({ state: "detached" });
  const dismissed = await rest(base, "GET", `/v1/reminders/${missed.body.id}`, id);
  assert.equal(dismissed.body.status, "dismissed");
  noProblems(a, b);
});

test("Enable push registers the service worker and stores the subscription; a push shows a notification", { timeout: TEST_MS }, async (t) => {
  const base = env("PIXIE_URL");
  const id = user("push");
  const a = await open(t);
  await a.context.grantPermissions(["notifications"], { origin: base });
  // Headless chromium here reaches no push service (FCM), so PushManager.subscribe is replaced
  // by one that answers with keys made by this test, at a loopback endpoint (dev mode accepts
  // it). The service worker, the permission, the page's request and the push event are real.
  const ecdh = crypto.createECDH("prime256v1");
  ecdh.generateKeys();
  const keys = {
    p256dh: ecdh.getPublicKey().toString("base64url"),
    auth: crypto.randomBytes(16).toString("base64url"),
  };
  const endpoint = "http://127.0.0.1:9/push/playground";
  await a.context.addInitScript(({ endpoint, keys }) => {
    let current = null;
    PushManager.prototype.getSubscription = async () => current;
    PushManager.prototype.subscribe = async (options) => {
      const key = new Uint8Array(options.applicationServerKey);
      globalThis.subscribedWith = btoa(String.fromCharCode(...key))
        .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
      current = {
        endpoint,
        options: { applicationServerKey: key.buffer },
        toJSON: () => ({ endpoint, expirationTime: null, keys }),
        unsubscribe: async () => true,
      };
      return current;
    };
  }, { endpoint, keys });
  await signIn(a.page, base, id);
  await a.page.getByRole("button", { name: "Enable push" }).click();
  await a.page.getByRole("button", { name: "Push enabled" }).waitFor();
  await a.page.locator("#push-state", { hasText: "notifications of this browser" }).waitFor();

  const vapid = await rest(base, "GET", "/v1/push/vapid-public-key", id);
  assert.equal(await a.page.evaluate(() => globalThis.subscribedWith), vapid.body.key);
  const stored = await rest(base, "GET", "/v1/push/subscriptions", id);
  assert.deepEqual(stored.body.map((s) => s.endpoint), [endpoint], JSON.stringify(stored.body));
  const script = await a.page.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL);
  assert.equal(script, `${base}/sw.js`);

  // A push as the push service would hand it to the worker: a notification, tagged with the
  // reminder's id.
  const cdp = await a.context.newCDPSession(a.page);
  const registration = new Promise((resolve) =>
    cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
      const found = registrations.find((r) => r.scopeURL === `${base}/` && !r.isDeleted);
      if (found) resolve(found.registrationId);
    }),
  );
  await cdp.send("ServiceWorker.enable");
  const reminder = { id: crypto.randomUUID(), text: "Water the plants", dueAt: new Date().toISOString(), status: "fired" };
  await cdp.send("ServiceWorker.deliverPushMessage", {
    origin: base,
    registrationId: await registration,
    data: JSON.stringify({ type: "reminder", reminder }),
  });
  const deadline = Date.now() + WAIT_MS;
  let shown = [];
  while (Date.now() < deadline) {
    shown = await a.page.evaluate(async () =>
      (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, tag: n.tag })),
    );
    if (shown.length) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(shown, [{ title: "Water the plants", tag: reminder.id }], "the notifications shown");
  await shoot(a.page, "push-enabled-desktop-light");
  noProblems(a);
});
