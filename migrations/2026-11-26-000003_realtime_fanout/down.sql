DROP TABLE realtime_payloads;
