// The playground's service worker: shows a pushed reminder (Web Push, `{type: "reminder",
// reminder}`) as a system notification, one per reminder (tagged with its id, so a repeated push
// replaces it), and focuses or opens the page when it is clicked.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let message = null;
  try {
    message = event.data?.json() ?? null;
  } catch {
    message = null;
  }
  const reminder = message?.type === "reminder" ? message.reminder : null;
  if (!reminder?.id) return;
  const due = new Date(reminder.dueAt);
  const when = Number.isNaN(due.getTime())
    ? ""
    : due.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  event.waitUntil(
    self.registration.showNotification(String(reminder.text ?? "Reminder"), {
      body: when ? `Reminder · ${when}` : "Reminder",
      tag: reminder.id,
      data: { reminderId: reminder.id },
      icon: "{{icon.svg}}",
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    (async () => {
      const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const page = pages.find((client) => new URL(client.url).pathname === "/");
      if (page) return page.focus();
      return self.clients.openWindow("/");
    })(),
  );
});
