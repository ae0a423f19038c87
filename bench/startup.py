#!/usr/bin/env python3
"""Times `pixie serve` from spawn to the first 200 of /readyz.

Cold: the database does not exist (created and migrated at start). Warm: it does.
Usage: startup.py PIXIE_BINARY ADMIN_URL RUNS
"""
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def psql(admin_url, sql):
    subprocess.run(["psql", "-q", admin_url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_start(binary, db_url):
    port = free_port()
    env = dict(os.environ, PIXIE__DATABASE__URL=db_url,
               PIXIE__SERVER__BIND=f"127.0.0.1:{port}", PIXIE__LOG__LEVEL="warn")
    started = time.perf_counter()
    proc = subprocess.Popen([binary, "serve"], env=env, cwd="/tmp",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready(port):
            if proc.poll() is not None:
                raise SystemExit(f"pixie exited with {proc.returncode}")
            if time.perf_counter() - started > 30:
                raise SystemExit("pixie did not become ready in 30 s")
            time.sleep(0.001)
        return (time.perf_counter() - started) * 1000
    finally:
        proc.terminate()
        proc.wait()


def main():
    binary, admin_url, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    name = "pixie_bench_startup"
    db_url = admin_url.rsplit("/", 1)[0] + "/" + name
    cold, warm = [], []
    for _ in range(runs):
        psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cold.append(one_start(binary, db_url))
        warm.append(one_start(binary, db_url))
    psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    for label, xs in (("cold start (create db + migrations) to /readyz 200", cold),
                      ("warm restart to /readyz 200", warm)):
        print(f"{label}: median {statistics.median(xs):.0f} ms, "
              f"min {min(xs):.0f} ms, max {max(xs):.0f} ms over {len(xs)} runs")


if __name__ == "__main__":
    main()
