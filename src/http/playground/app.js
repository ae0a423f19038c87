// The playground: a client of Pixie's public contract (API.md) and nothing else. REST with a
// bearer token; Socket.IO v5 over Engine.IO v4 on the browser's WebSocket, framed here (the
// handful of packet types the server speaks). Everything received is rendered as text, never
// as markup.

"use strict";

const $ = (id) => document.getElementById(id);

const ACK_MS = 10_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const PAGE = 100;
const STORE = {
  token: "pixie.token",
  conversation: "pixie.conversation",
  pending: "pixie.pending",
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A random id for `clientMessageId`; works outside secure contexts too. */
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

const whenFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  timeZone: "UTC",
});
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

function when(iso) {
  return iso ? whenFormat.format(new Date(iso)) : "";
}

function session() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the page still works, it just forgets on reload
  }
}

function load(key, fallback) {
  try {
    const raw = session()?.getItem(key);
    return raw === null || raw === undefined ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function save(key, value) {
  try {
    if (value === null || value === undefined) session()?.removeItem(key);
    else session()?.setItem(key, JSON.stringify(value));
  } catch {
    // a full or disabled storage only costs the reload
  }
}

// ---------------------------------------------------------------------------------------------
// REST

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let token = null;

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", `the server cannot be reached (${e.message})`);
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const error = data?.error ?? {};
    throw new ApiError(res.status, error.code ?? "http", error.message ?? `HTTP ${res.status}`);
  }
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// ---------------------------------------------------------------------------------------------
// Socket.IO v5 over Engine.IO v4, WebSocket transport only

/**
 * One logical connection that reconnects with backoff. `handlers`: `state(name, detail)`,
 * `connected()`, `event(name, payload)`, `rejected(message)`.
 */
class Realtime {
  constructor(auth, handlers) {
    this.auth = auth;
    this.handlers = handlers;
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.nextAck = 0;
    this.acks = new Map();
    this.retryTimer = null;
    this.heartbeat = null;
    this.silence = 45_000;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.heartbeat);
    this.drop("stopped");
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  /** Reconnect at once (the network came back, or the tab woke up). */
  nudge() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    const url = new URL("/socket.io/?EIO=4&transport=websocket", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.handlers.state(this.attempt === 0 ? "connecting" : "reconnecting", "connecting…");
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (e) => {
      if (this.ws === ws && typeof e.data === "string") this.packet(e.data);
    };
    ws.onclose = () => {
      if (this.ws === ws) this.closed();
    };
    // onerror is always followed by onclose; the reconnect happens there.
  }

  closed() {
    this.ws = null;
    clearTimeout(this.heartbeat);
    this.drop("disconnected");
    if (this.stopped) return;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const jittered = Math.round(delay * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.handlers.state("reconnecting", `reconnecting in ${Math.ceil(jittered / 1000)} s`);
    this.retryTimer = setTimeout(() => this.open(), jittered);
  }

  /** Fails every ack still awaited: their requests may be retried on the next connection. */
  drop(reason) {
    this.ready = false;
    for (const { reject, timer } of this.acks.values()) {
      clearTimeout(timer);
      reject(new Error(reason));
    }
    this.acks.clear();
  }

  /** A server that goes silent past its own ping interval and timeout is gone. */
  alive() {
    clearTimeout(this.heartbeat);
    this.heartbeat = setTimeout(() => this.ws?.close(), this.silence);
  }

  send(text) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  packet(data) {
    switch (data[0]) {
      case "0": {
        // OPEN: the handshake; then CONNECT to the default namespace with the token.
        const open = JSON.parse(data.slice(1));
        this.silence = (open.pingInterval ?? 25_000) + (open.pingTimeout ?? 20_000);
        this.alive();
        this.send(`40${JSON.stringify({ token: this.auth })}`);
        break;
      }
      case "2": // PING
        this.alive();
        this.send("3");
        break;
      case "1": // CLOSE
        this.ws?.close();
        break;
      case "4":
        this.message(data.slice(1));
        break;
      default:
        break;
    }
  }

  message(data) {
    const type = data[0];
    const body = data.slice(1);
    const split = /^(\d*)([\s\S]*)$/.exec(body);
    const id = split[1];
    const json = split[2] ? JSON.parse(split[2]) : null;
    switch (type) {
      case "0": // CONNECT
        this.ready = true;
        this.attempt = 0;
        this.handlers.state("online", "connected");
        this.handlers.connected();
        break;
      case "4": // CONNECT_ERROR: the token was refused; retrying would not help.
        this.stopped = true;
        this.handlers.rejected(json?.message ?? "refused");
        this.ws?.close(1000);
        break;
      case "1": // DISCONNECT by the server
        this.ws?.close();
        break;
      case "2": // EVENT
        if (Array.isArray(json) && typeof json[0] === "string") {
          this.handlers.event(json[0], json[1]);
        }
        break;
      case "3": {
        // ACK
        const waiting = this.acks.get(id);
        if (waiting) {
          this.acks.delete(id);
          clearTimeout(waiting.timer);
          waiting.resolve(Array.isArray(json) ? json[0] : json);
        }
        break;
      }
      default:
        break;
    }
  }

  /** Emits `name` and resolves with its ack; rejects when not connected or after `ms`. */
  request(name, payload, ms = ACK_MS) {
    if (!this.ready) return Promise.reject(new Error("not connected"));
    const id = String(this.nextAck++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error("no answer in time"));
      }, ms);
      this.acks.set(id, { resolve, reject, timer });
      this.send(`42${id}${JSON.stringify([name, payload])}`);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// State

let realtime = null;
let currentConversation = null; // id, or null for a new one
let olderCursor = null;
let conversationCursor = null;
/** Sends not yet acknowledged, by clientMessageId: retried with the same id after reconnects. */
let pending = new Map();
/** The clientMessageIds whose `chat:send` awaits its ack right now. */
const sending = new Set();
/**
 * Events of conversations other than the open one, kept while a send that starts a new
 * conversation awaits its ack: its answer may begin streaming before the ack names it.
 */
let early = [];
const EARLY_MAX = 1000;
const tasks = new Map();
/** The bubbles of the open conversation, by message id (or `c:<clientMessageId>` before ack). */
const bubbles = new Map();

function savePending() {
  save(STORE.pending, [...pending.values()]);
}

function setConnection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  const label = {
    "signed-out": "Signed out",
    connecting: "Connecting…",
    online: "Connected",
    reconnecting: "Offline",
    rejected: "Sign-in refused",
  }[state];
  node.textContent = text && state === "reconnecting" ? `${label}: ${text}` : label;
}

// ---------------------------------------------------------------------------------------------
// Sign-in

async function signIn(candidate) {
  token = candidate;
  const me = await api("GET", "/v1/me");
  save(STORE.token, candidate);
  $("sign-in").hidden = true;
  $("workspace").hidden = false;
  $("sign-out").hidden = false;
  $("enable-push").hidden = !pushSupported();
  $("who").hidden = false;
  $("who").textContent = `Signed in as ${me.id}`;
  pending = new Map(load(STORE.pending, []).map((p) => [p.clientMessageId, p]));
  currentConversation = load(STORE.conversation, null);
  connectedBefore = false;
  realtime = new Realtime(candidate, {
    state: setConnection,
    connected: onConnected,
    event: onEvent,
    rejected: (message) => {
      setConnection("rejected");
      signOut(`The server refused the token: ${message}.`);
    },
  });
  realtime.start();
  await Promise.all([
    openConversation(currentConversation),
    loadConversations(),
    loadTasks(),
    loadEvents(),
    loadMemories(),
    loadReminders(),
  ]);
  $("message").focus();
}

function signOut(reason = "") {
  realtime?.stop();
  realtime = null;
  token = null;
  for (const key of Object.values(STORE)) save(key, null);
  pending.clear();
  tasks.clear();
  bubbles.clear();
  for (const id of [...shownReminders.keys()]) hideReminder(id);
  $("workspace").hidden = true;
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("enable-push").hidden = true;
  $("push-state").hidden = true;
  $("who").hidden = true;
  $("sign-in-error").textContent = reason;
  if (!reason) setConnection("signed-out");
  $("user-id").focus();
}

$("sign-in-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("sign-in-error").textContent = "";
  const id = $("user-id").value.trim();
  const pasted = $("session-token").value.trim();
  let candidate;
  if (pasted) {
    candidate = pasted;
  } else if (/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    candidate = `dev:${id}`;
  } else {
    $("sign-in-error").textContent = id
      ? "A user id is 1 to 64 letters, digits, “_” or “-”."
      : "Enter a user id (dev mode) or paste a session token.";
    return;
  }
  try {
    await signIn(candidate);
    $("session-token").value = "";
  } catch (error) {
    token = null;
    $("sign-in-error").textContent =
      error.status === 401 ? `Not signed in: ${error.message}.` : `Sign-in failed: ${error.message}.`;
  }
});

$("sign-out").addEventListener("click", () => signOut());

// ---------------------------------------------------------------------------------------------
// Web Push: reminders as system notifications, also when no page is open

function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function base64urlBytes(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function setPushState(text) {
  $("push-state").textContent = text;
  $("push-state").hidden = !text;
}

/** Subscribes this browser with the server's VAPID key and stores the subscription. */
async function enablePush() {
  const button = $("enable-push");
  button.disabled = true;
  try {
    if ((await Notification.requestPermission()) !== "granted") {
      throw new Error("notifications are blocked for this page");
    }
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const { key } = await api("GET", "/v1/push/vapid-public-key");
    const serverKey = base64urlBytes(key);
    let subscription = await registration.pushManager.getSubscription();
    const bound = subscription?.options?.applicationServerKey;
    if (subscription && bound && new Uint8Array(bound).join() !== serverKey.join()) {
      // Made with another server key (the server's changed): push services would refuse it.
      await subscription.unsubscribe();
      subscription = null;
    }
    subscription ??= await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: serverKey,
    });
    await api("POST", "/v1/push/subscriptions", subscription.toJSON());
    button.textContent = "Push enabled";
    setPushState("Reminders will also arrive as notifications of this browser.");
  } catch (error) {
    button.disabled = false;
    setPushState(`Push could not be enabled: ${error.message}.`);
  }
}

$("enable-push").addEventListener("click", () => enablePush());

// ---------------------------------------------------------------------------------------------
// Realtime events

let connectedBefore = false;

function onConnected() {
  for (const item of pending.values()) transmit(item);
  if (!connectedBefore) {
    // The first connection: sign-in loaded the lists; only an answer in flight is missing.
    connectedBefore = true;
    resume();
    return;
  }
  // Events are not replayed: what changed while this page was away is fetched again, and the
  // open conversation reloaded (it resumes an answer still in flight).
  openConversation(currentConversation);
  loadConversations();
  loadTasks();
  loadEvents();
  loadMemories();
  loadReminders();
}

function onEvent(name, payload) {
  const conversation = payload?.conversationId ?? payload?.message?.conversationId;
  if (
    name.startsWith("chat:") &&
    conversation &&
    conversation !== currentConversation &&
    currentConversation === null &&
    awaitingNewConversation() &&
    early.length < EARLY_MAX
  ) {
    early.push({ name, payload });
  }
  switch (name) {
    case "chat:message":
      onMessage(payload.message);
      break;
    case "chat:delta":
      if (payload.conversationId === currentConversation) {
        const bubble = assistantBubble(payload.messageId);
        bubble.text.textContent += payload.text;
        scrollDown();
      }
      break;
    case "chat:tool":
      if (payload.conversationId === currentConversation) {
        addTool(assistantBubble(payload.messageId), payload.call);
      }
      if (["remember"].includes(payload.call?.name)) refreshMemories();
      break;
    case "chat:done":
      if (payload.conversationId === currentConversation) {
        renderMessage(payload.message);
        updateStop();
      }
      refreshConversations();
      refreshMemories();
      break;
    case "chat:error":
      onChatError(payload);
      break;
    case "task:created":
    case "task:updated":
      taskChanged(payload.task);
      break;
    case "task:deleted":
      taskDeleted(payload.id);
      break;
    case "reminder:due":
      showReminder(payload.reminder);
      break;
    case "reminder:updated":
      // Snoozed, dismissed or cancelled anywhere: it is no longer due here either.
      if (payload.reminder?.status !== "fired") hideReminder(payload.reminder?.id);
      break;
    case "event:created":
    case "event:updated":
    case "event:deleted":
      // Recurring events expand server-side: the week is fetched again.
      refreshEvents();
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Reminders: in-page notifications with snooze and dismiss

/** The notifications shown, by reminder id. */
const shownReminders = new Map();
const NOTIFICATIONS_MAX = 10;
const SNOOZE_MINUTES = 10;

function showReminder(reminder) {
  if (!reminder?.id || reminder.status !== "fired") return;
  hideReminder(reminder.id);
  const snooze = el("button", {
    type: "button",
    class: "secondary",
    text: `Snooze ${SNOOZE_MINUTES} min`,
    onclick: () => act(reminder, "reminder:snooze", {
      id: reminder.id,
      until: new Date(Date.now() + SNOOZE_MINUTES * 60_000).toISOString(),
    }),
  });
  const dismiss = el("button", {
    type: "button",
    text: "Dismiss",
    onclick: () => act(reminder, "reminder:dismiss", { id: reminder.id }),
  });
  const note = el(
    "article",
    { class: "notification", "data-id": reminder.id, role: "alert" },
    el("p", { class: "title", text: reminder.text }),
    el("p", {
      class: "when",
      text: `${reminder.firedLate ? "Missed reminder" : "Reminder"} · ${when(reminder.dueAt)}`,
    }),
    el("div", { class: "row" }, snooze, dismiss),
  );
  shownReminders.set(reminder.id, note);
  $("notifications").prepend(note);
  // The oldest go when too many wait.
  for (const [id, node] of [...shownReminders].slice(NOTIFICATIONS_MAX)) {
    node.remove();
    shownReminders.delete(id);
  }
}

function hideReminder(id) {
  shownReminders.get(id)?.remove();
  shownReminders.delete(id);
}

async function act(reminder, event, payload) {
  const note = shownReminders.get(reminder.id);
  for (const button of note?.querySelectorAll("button") ?? []) button.disabled = true;
  try {
    const ack = await realtime.request(event, payload);
    if (ack?.ok) {
      hideReminder(reminder.id);
      return;
    }
  } catch {
    // Not connected: the buttons come back; the reminder is still due.
  }
  for (const button of note?.querySelectorAll("button") ?? []) button.disabled = false;
}

/** Reminders that fired while no page was open (or missed while offline) and wait still. */
async function loadReminders() {
  let page;
  try {
    page = await api("GET", `/v1/reminders${query({ status: "fired", limit: NOTIFICATIONS_MAX })}`);
  } catch {
    return;
  }
  for (const reminder of page.items) showReminder(reminder);
}

function onMessage(message) {
  refreshConversations();
  if (message.conversationId !== currentConversation) return;
  renderMessage(message);
}

function onChatError(payload) {
  if (payload.conversationId !== currentConversation) return;
  let bubble = payload.messageId ? bubbles.get(payload.messageId) : null;
  if (!bubble) {
    bubble = assistantBubble(payload.messageId ?? `error:${randomId()}`);
  }
  bubble.node.dataset.state = "error";
  const retry = payload.retryable ? " You can send it again." : "";
  setProblem(bubble, `The answer failed (${payload.code}): ${payload.message}.${retry}`);
  updateStop();
}

async function resume() {
  const conversation = currentConversation;
  if (!conversation || !realtime?.ready) return;
  let ack;
  try {
    ack = await realtime.request("chat:resume", { conversationId: conversation });
  } catch {
    return; // disconnected again: the next connection resumes
  }
  if (!ack?.ok || conversation !== currentConversation) return;
  if (ack.inFlight) {
    const bubble = assistantBubble(ack.messageId);
    bubble.text.textContent = ack.text;
    bubble.node.dataset.state = "streaming";
    updateStop();
    scrollDown();
  } else if ([...bubbles.values()].some((b) => b.node.dataset.state === "streaming")) {
    // An answer finished while this page was away: take the stored one.
    openConversation(conversation);
  }
}

// ---------------------------------------------------------------------------------------------
// Chat pane

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function bubbleFor(key, role) {
  let bubble = bubbles.get(key);
  if (bubble) return bubble;
  const text = el("p", { class: "text" });
  const meta = el("p", { class: "meta" });
  const tools = el("ul", { class: "tools", "aria-label": "Tool calls" });
  const node = el("li", { class: `message ${role}` }, text, tools, meta);
  bubble = { node, text, tools, meta, problem: null, callIds: new Set() };
  bubbles.set(key, bubble);
  $("messages").append(node);
  $("chat-empty").hidden = true;
  return bubble;
}

function assistantBubble(messageId) {
  const existing = bubbles.get(messageId);
  if (existing) return existing;
  const bubble = bubbleFor(messageId, "assistant");
  bubble.node.dataset.state = "streaming";
  bubble.node.dataset.id = messageId;
  bubble.meta.textContent = "Pixie is answering…";
  updateStop();
  return bubble;
}

function addTool(bubble, call) {
  if (!call || bubble.callIds.has(call.id)) return;
  bubble.callIds.add(call.id);
  const status = call.status === "ok" ? "ok" : "error";
  const detail = status === "ok" ? "" : `: ${call.error ?? "failed"}`;
  bubble.tools.append(
    el("li", { class: "tool", "data-status": status, "data-name": call.name, text: `${call.name} ${status === "ok" ? "✓" : "✗"}${detail}` }),
  );
}

function setProblem(bubble, text) {
  if (!bubble.problem) {
    bubble.problem = el("p", { class: "problem", role: "alert" });
    bubble.node.append(bubble.problem);
  }
  bubble.problem.textContent = text;
}

/** Renders a stored message, replacing its pending or streaming bubble. */
function renderMessage(message) {
  let bubble = bubbles.get(message.id);
  if (!bubble && message.clientMessageId) {
    const key = `c:${message.clientMessageId}`;
    bubble = bubbles.get(key);
    if (bubble) {
      bubbles.delete(key);
      bubbles.set(message.id, bubble);
    }
  }
  bubble ??= bubbleFor(message.id, message.role);
  bubble.node.dataset.id = message.id;
  bubble.node.dataset.state = "done";
  bubble.text.textContent = message.content;
  bubble.meta.textContent = `${message.role === "user" ? "You" : "Pixie"} · ${timeFormat.format(new Date(message.createdAt))}`;
  for (const call of message.toolCalls ?? []) addTool(bubble, call);
  if (bubble.problem) bubble.problem.remove();
  bubble.problem = null;
  scrollDown();
}

function updateStop() {
  const streaming = [...bubbles.values()].some((b) => b.node.dataset.state === "streaming");
  $("stop").hidden = !streaming;
}

async function openConversation(id, { keepPending = true } = {}) {
  currentConversation = id;
  save(STORE.conversation, id);
  bubbles.clear();
  $("messages").replaceChildren();
  olderCursor = null;
  $("older-messages").hidden = true;
  markCurrentConversation();
  if (id) {
    try {
      const page = await api("GET", `/v1/conversations/${id}/messages${query({ limit: 50 })}`);
      if (id !== currentConversation) return;
      const live = [...bubbles.values()].filter((b) => b.node.dataset.state === "streaming");
      for (const message of page.items) renderMessage(message);
      // An answer that began streaming while the history was on its way goes after it.
      for (const bubble of live) $("messages").append(bubble.node);
      olderCursor = page.nextCursor;
      $("older-messages").hidden = !olderCursor;
    } catch (error) {
      if (error.status === 404) {
        // deleted elsewhere
        currentConversation = null;
        save(STORE.conversation, null);
      } else {
        showChatNotice(`History could not be loaded: ${error.message}.`);
      }
    }
  }
  if (keepPending) {
    for (const item of pending.values()) {
      if ((item.conversationId ?? null) === currentConversation) pendingBubble(item);
    }
  }
  $("chat-empty").hidden = bubbles.size > 0;
  updateStop();
  resume();
}

function showChatNotice(text) {
  const bubble = bubbleFor(`notice:${randomId()}`, "assistant");
  bubble.node.dataset.state = "error";
  setProblem(bubble, text);
}

$("older-messages").addEventListener("click", async () => {
  const id = currentConversation;
  if (!id || !olderCursor) return;
  const page = await api(
    "GET",
    `/v1/conversations/${id}/messages${query({ before: olderCursor, limit: 50 })}`,
  ).catch(() => null);
  if (!page || id !== currentConversation) return;
  const first = $("messages").firstChild;
  for (const message of page.items) {
    if (bubbles.has(message.id)) continue;
    const bubble = bubbleFor(message.id, message.role);
    $("messages").insertBefore(bubble.node, first);
    renderMessage(message);
  }
  olderCursor = page.nextCursor;
  $("older-messages").hidden = !olderCursor;
});

function pendingBubble(item) {
  const bubble = bubbleFor(`c:${item.clientMessageId}`, "user");
  bubble.text.textContent = item.text;
  if (bubble.node.dataset.state !== "done") {
    bubble.node.dataset.state = "sending";
    bubble.meta.textContent = "Sending…";
  }
  return bubble;
}

/**
 * The conversation a send of the "new conversation" view made becomes the open one. After a
 * retry, its answer may have gone to a connection that is gone: the conversation is loaded.
 */
function adopt(id, retried) {
  const replay = early.filter((e) => e.payload?.conversationId === id);
  early = [];
  if (retried) {
    openConversation(id);
    return;
  }
  currentConversation = id;
  save(STORE.conversation, id);
  markCurrentConversation();
  for (const { name, payload } of replay) onEvent(name, payload);
}

function awaitingNewConversation() {
  return [...pending.values()].some((p) => p.conversationId === null);
}

function send(text) {
  const item = { clientMessageId: randomId(), text, conversationId: currentConversation };
  pending.set(item.clientMessageId, item);
  savePending();
  pendingBubble(item);
  scrollDown();
  transmit(item);
}

/** Sends one pending message; it stays pending (retried on reconnect) until acknowledged. */
async function transmit(item) {
  if (!realtime?.ready || sending.has(item.clientMessageId)) return;
  sending.add(item.clientMessageId);
  item.tries = (item.tries ?? 0) + 1;
  const payload = { clientMessageId: item.clientMessageId, text: item.text };
  if (item.conversationId) payload.conversationId = item.conversationId;
  let ack;
  try {
    ack = await realtime.request("chat:send", payload);
  } catch {
    sending.delete(item.clientMessageId);
    // Not acknowledged: if still connected, try again shortly (the server deduplicates).
    if (realtime?.ready && pending.has(item.clientMessageId)) {
      setTimeout(() => transmit(item), 2000);
    }
    return;
  }
  sending.delete(item.clientMessageId);
  const bubble = bubbles.get(`c:${item.clientMessageId}`);
  if (ack?.ok) {
    pending.delete(item.clientMessageId);
    savePending();
    if (bubble) {
      bubbles.delete(`c:${item.clientMessageId}`);
      const stored = bubbles.get(ack.messageId);
      if (stored && stored !== bubble) {
        bubble.node.remove(); // the echo arrived first
      } else {
        bubbles.set(ack.messageId, bubble);
        bubble.node.dataset.id = ack.messageId;
        bubble.node.dataset.state = "done";
        bubble.meta.textContent = "You · sent";
      }
    }
    if (item.conversationId === null && currentConversation === null) {
      adopt(ack.conversationId, item.tries > 1);
    }
    refreshConversations();
    return;
  }
  const code = ack?.error?.code ?? "error";
  if (code === "rate_limited" || code === "unavailable") {
    // Worth another try later; it keeps its id.
    if (bubble) bubble.meta.textContent = `Not sent yet (${code}); retrying…`;
    setTimeout(() => transmit(item), 5000);
    return;
  }
  pending.delete(item.clientMessageId);
  savePending();
  if (bubble) {
    bubble.node.dataset.state = "failed";
    bubble.meta.textContent = "Not sent";
    setProblem(bubble, `Not sent (${code}): ${ack?.error?.message ?? "refused"}.`);
  }
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("message");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  send(text);
});

$("message").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

$("stop").addEventListener("click", () => {
  if (currentConversation && realtime?.ready) {
    realtime.request("chat:cancel", { conversationId: currentConversation }).catch(() => {});
  }
});

$("new-conversation").addEventListener("click", () => {
  openConversation(null);
  $("message").focus();
});

// ---------------------------------------------------------------------------------------------
// Conversations

function conversationLabel(c) {
  return c.title || `Chat of ${when(c.lastMessageAt ?? c.createdAt)}`;
}

/** Marks the open conversation in the list, and names it above the chat. */
function markCurrentConversation() {
  let title = currentConversation ? "Conversation" : "New conversation";
  for (const button of $("conversation-list").querySelectorAll("button")) {
    const current = button.dataset.id === currentConversation;
    button.setAttribute("aria-current", String(current));
    if (current) title = button.textContent;
  }
  $("chat-title").textContent = title;
}

function conversationItem(c) {
  return el(
    "li",
    {},
    el("button", {
      type: "button",
      "data-id": c.id,
      text: conversationLabel(c),
      title: conversationLabel(c),
      onclick: () => openConversation(c.id),
    }),
  );
}

async function loadConversations() {
  try {
    const page = await api("GET", `/v1/conversations${query({ limit: 30 })}`);
    $("conversation-list").replaceChildren(...page.items.map(conversationItem));
    conversationCursor = page.nextCursor;
    $("more-conversations").hidden = !conversationCursor;
    markCurrentConversation();
  } catch {
    // shown again on the next change or reconnect
  }
}
const refreshConversations = debounce(loadConversations, 300);

$("more-conversations").addEventListener("click", async () => {
  if (!conversationCursor) return;
  const page = await api(
    "GET",
    `/v1/conversations${query({ limit: 30, cursor: conversationCursor })}`,
  ).catch(() => null);
  if (!page) return;
  $("conversation-list").append(...page.items.map(conversationItem));
  conversationCursor = page.nextCursor;
  $("more-conversations").hidden = !conversationCursor;
  markCurrentConversation();
});

// ---------------------------------------------------------------------------------------------
// Tasks: a snapshot over REST, then kept current by task:* events

let taskLoads = 0;
let liveDuringLoad = [];

async function loadTasks() {
  const generation = ++taskLoads;
  liveDuringLoad = [];
  let page;
  try {
    page = await api("GET", `/v1/tasks${query({ limit: PAGE })}`);
  } catch {
    return;
  }
  if (generation !== taskLoads) return;
  tasks.clear();
  for (const task of page.items) tasks.set(task.id, task);
  // Changes that arrived while the snapshot was on its way are newer than it.
  for (const change of liveDuringLoad) change();
  liveDuringLoad = [];
  renderTasks();
}

function taskChanged(task) {
  liveDuringLoad.push(() => tasks.set(task.id, task));
  tasks.set(task.id, task);
  renderTasks();
}

function taskDeleted(id) {
  liveDuringLoad.push(() => tasks.delete(id));
  tasks.delete(id);
  renderTasks();
}

function renderTasks() {
  const open = (t) => t.status !== "completed" && t.status !== "cancelled";
  const sorted = [...tasks.values()].sort((a, b) => {
    if (open(a) !== open(b)) return open(a) ? -1 : 1;
    const due = (t) => (t.dueAt ? Date.parse(t.dueAt) : Infinity);
    return due(a) - due(b) || Date.parse(b.createdAt) - Date.parse(a.createdAt);
  });
  $("task-list").replaceChildren(
    ...sorted.map((task) => {
      const done = task.status === "completed";
      const box = el("input", {
        type: "checkbox",
        checked: done,
        "aria-label": `Done: ${task.title}`,
        onchange: (e) => setTaskDone(task, e.target.checked),
      });
      return el(
        "li",
        { class: done ? "done" : "", "data-id": task.id },
        box,
        el("span", { class: "grow title", text: task.title }),
        task.dueAt ? el("span", { class: "when", text: when(task.dueAt) }) : null,
      );
    }),
  );
  $("tasks-empty").hidden = tasks.size > 0;
}

async function setTaskDone(task, done) {
  try {
    taskChanged(await api("PATCH", `/v1/tasks/${task.id}`, { status: done ? "completed" : "pending" }));
  } catch {
    renderTasks(); // put the box back as it was
  }
}

// ---------------------------------------------------------------------------------------------
// Events: the next seven days, occurrences of recurring events expanded by the server

async function loadEvents() {
  const from = new Date();
  from.setHours(0, 0, 0, 0);
  const to = new Date(from);
  to.setDate(to.getDate() + 7);
  let page;
  try {
    page = await api(
      "GET",
      `/v1/events${query({ from: from.toISOString(), to: to.toISOString(), limit: 200 })}`,
    );
  } catch {
    return;
  }
  $("event-list").replaceChildren(
    ...page.items.map((event) => {
      const start = event.isAllDay ? dayFormat.format(new Date(event.startAt)) : when(event.startAt);
      const repeat = event.occurrenceOf || event.recurrence ? " ↻" : "";
      return el(
        "li",
        { "data-id": event.occurrenceOf ?? event.id },
        el("span", { class: "grow title", text: `${event.title}${repeat}` }),
        el("span", { class: "when", text: start }),
      );
    }),
  );
  $("events-empty").hidden = page.items.length > 0;
}
const refreshEvents = debounce(loadEvents, 150);

// ---------------------------------------------------------------------------------------------
// Memories (no live events in the contract: fetched again after each answer)

async function loadMemories() {
  let page;
  try {
    page = await api("GET", `/v1/memories${query({ limit: PAGE })}`);
  } catch {
    return;
  }
  $("memory-list").replaceChildren(
    ...page.items.map((memory) =>
      el(
        "li",
        { "data-id": memory.id },
        el("span", { class: "grow", text: memory.content }),
        el("button", {
          type: "button",
          class: "secondary small",
          text: "Delete",
          "aria-label": `Delete memory: ${memory.content}`,
          onclick: () => deleteMemory(memory.id),
        }),
      ),
    ),
  );
  $("memories-empty").hidden = page.items.length > 0;
}
const refreshMemories = debounce(loadMemories, 300);

async function deleteMemory(id) {
  try {
    await api("DELETE", `/v1/memories/${id}`);
  } catch (error) {
    if (error.status !== 404) return;
  }
  loadMemories();
}

// ---------------------------------------------------------------------------------------------
// Search

$("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("search-query").value.trim();
  if (!q) return;
  const results = $("search-results");
  try {
    const found = await api("GET", `/v1/search${query({ q, limit: 20 })}`);
    results.replaceChildren(
      ...found.items.map((item) =>
        el(
          "li",
          { "data-kind": item.kind },
          el("span", { class: "kind", text: item.kind }),
          el("span", { class: "grow", text: item.snippet }),
        ),
      ),
    );
    if (found.items.length === 0) results.replaceChildren(el("li", { class: "empty", text: "Nothing found." }));
  } catch (error) {
    results.replaceChildren(el("li", { class: "error", text: `Search failed: ${error.message}.` }));
  }
});

// ---------------------------------------------------------------------------------------------
// Start

window.addEventListener("online", () => realtime?.nudge());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") realtime?.nudge();
});

const saved = load(STORE.token, null);
if (saved) {
  signIn(saved).catch((error) => {
    signOut(error.status === 401 ? "Your session has ended; sign in again." : "");
    if (error.status !== 401) $("sign-in-error").textContent = `Sign-in failed: ${error.message}.`;
  });
} else {
  $("user-id").focus();
}
