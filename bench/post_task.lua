-- wrk script: POST /v1/tasks as the benchmark user.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer dev:bench"
wrk.body = '{"title": "Benchmark task", "priority": "medium", "dueAt": "2026-12-01T09:00:00Z"}'
