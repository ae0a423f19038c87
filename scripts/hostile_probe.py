#!/usr/bin/env python3
"""Hostile-input probe: runs a pixie binary on a fresh database and measures what a hostile
client costs it. By hand, to compare two builds:

    python3 scripts/hostile_probe.py target/release/pixie [OTHER_BINARY ...]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and psql. Each binary gets its own
database (dropped afterwards) and reports:

- metrics: resident memory before and after 10,000 requests with made-up methods, and the
  size and time of one /metrics scrape afterwards;
- gzip: peak resident memory while 8 clients post a 200 KB gzip body that inflates to 200 MB;
- rrule: time to list one day for a user with 300 series of FREQ=HOURLY;BYMINUTE=0..59;
  BYSECOND=0..59 from year 1 (written to the database directly, as old rows), and how long
  /healthz takes meanwhile;
- slow bodies: of 200 connections that declare a 100,000-byte body and send a byte every 2 s,
  how many the server still holds after 30 s.
"""

import gzip
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

PG = "postgres://postgres@127.0.0.1:5432"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(addr, raw, timeout=120):
    """Sends raw bytes, returns (status, body bytes, seconds)."""
    started = time.monotonic()
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return None, b"", time.monotonic() - started
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d+)", head)
    return (int(match.group(1)) if match else None), body, time.monotonic() - started


def get(addr, path, token=None, timeout=120):
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    raw = f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode()
    return request(addr, raw, timeout)


class Server:
    def __init__(self, binary):
        self.db = f"pixie_probe_{uuid.uuid4().hex[:10]}"
        self.data = tempfile.mkdtemp(prefix="pixie-probe-")
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("PIXIE") or key == "RUST_LOG":
                del env[key]
        env.update({
            "PIXIE__DATABASE__URL": f"{PG}/{self.db}",
            "PIXIE__SERVER__DATA_DIR": self.data,
            "PIXIE__SERVER__BIND": "127.0.0.1:0",
            "PIXIE__LOG__LEVEL": "warn,pixie=info",
            "CLERK_WEBHOOK_SECRET": SECRET,
        })
        # Started in its data directory: the defaults, not a ./config.toml of the caller's.
        self.proc = subprocess.Popen([os.path.abspath(binary), "serve"], env=env, cwd=self.data,
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        for line in self.proc.stderr:
            found = re.search(r"listening on http://(\S+)", line)
            if found:
                host, port = found.group(1).rsplit(":", 1)
                self.addr = (host, int(port))
                break
        else:
            raise RuntimeError(f"{binary} exited before listening")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        for _ in range(100):
            if get(self.addr, "/readyz")[0] == 200:
                break
            time.sleep(0.1)

    def rss(self):
        return rss_kib(self.proc.pid)

    def psql(self, sql):
        subprocess.run(["psql", "-q", f"{PG}/{self.db}", "-c", sql], check=True,
                       stdout=subprocess.DEVNULL)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["psql", "-q", f"{PG}/postgres", "-c",
                        f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def probe_metrics(server):
    before = server.rss()
    with socket.create_connection(server.addr) as s:
        s.settimeout(10)
        reader = s.makefile("rb")
        for i in range(10_000):
            method = f"Q{i:07d}XXXXXXXXXXXXXXXXXXXXXXXX"
            s.sendall(f"{method} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            length = 0
            while True:
                line = reader.readline()
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line in (b"\r\n", b""):
                    break
            reader.read(length)
    after = server.rss()
    status, body, took = get(server.addr, "/metrics")
    return {"rss_before_kib": before, "rss_after_kib": after, "scrape_bytes": len(body),
            "scrape_s": round(took, 3), "rss_after_scrape_kib": server.rss()}


def probe_gzip(server):
    bomb = gzip.compress(bytes(200_000_000), compresslevel=9)
    peak = [server.rss()]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss())
            time.sleep(0.02)

    statuses = []

    def send(i):
        head = (f"POST /webhooks/clerk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Encoding: gzip\r\nsvix-id: msg_{i}\r\n"
                f"svix-timestamp: {int(time.time())}\r\nsvix-signature: v1,AAAA\r\n"
                f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n").encode()
        try:
            statuses.append(request(server.addr, head + bomb)[0])
        except OSError as e:
            statuses.append(f"error: {e}")

    before = server.rss()
    threading.Thread(target=watch, daemon=True).start()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    stop.set()
    return {"bomb_bytes": len(bomb), "statuses": sorted(map(str, statuses)),
            "rss_before_kib": before, "rss_peak_kib": peak[0]}


def probe_rrule(server):
    get(server.addr, "/v1/me", "dev:mallory")
    rule = "FREQ=HOURLY;BYMINUTE={};BYSECOND={}".format(
        ",".join(map(str, range(60))), ",".join(map(str, range(60))))
    server.psql(
        "INSERT INTO events (id, user_id, title, start_at, end_at, recurrence, created_at, "
        "updated_at) SELECT gen_random_uuid(), 'mallory', 'tick', '0001-01-01T00:00:00Z', "
        f"'0001-01-01T00:00:01Z', '{rule}', now(), now() FROM generate_series(1, 300)")
    result = {}

    def listing():
        status, body, took = get(server.addr,
                                 "/v1/events?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z",
                                 "dev:mallory", timeout=60)
        result["listing_status"] = status
        result["listing_s"] = round(took, 3)

    t = threading.Thread(target=listing)
    t.start()
    time.sleep(0.2)
    status, _, took = get(server.addr, "/healthz", timeout=30)
    result["healthz_meanwhile"] = status
    result["healthz_s"] = round(took, 3)
    t.join()
    return result


def probe_slow_bodies(server):
    conns = []
    for _ in range(200):
        s = socket.create_connection(server.addr)
        s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev:slow\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        s.setblocking(False)
        conns.append(s)
    started = time.monotonic()
    closed = set()
    while time.monotonic() - started < 30:
        for i, s in enumerate(conns):
            if i in closed:
                continue
            try:
                data = s.recv(65536)
                if data == b"":
                    closed.add(i)
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
                continue
            try:
                s.send(b" ")
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(2)
    for s in conns:
        s.close()
    return {"connections": len(conns), "still_held_after_30s": len(conns) - len(closed)}


def main():
    for binary in sys.argv[1:] or ["target/release/pixie"]:
        report = {"binary": binary}
        for name, probe in [("metrics", probe_metrics), ("gzip", probe_gzip),
                            ("rrule", probe_rrule), ("slow_bodies", probe_slow_bodies)]:
            server = Server(binary)
            try:
                report[name] = probe(server)
            finally:
                server.stop()
        print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
