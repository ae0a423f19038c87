"""Drives Pixie's /mcp with the official MCP Python SDK, as another AI client would.

    client.py URL TOKEN MODE < calls.json > results.json

TOKEN "-" sends none. MODE is the SDK's connect mode: "legacy" (the initialize handshake and a session) or "auto"
(whatever the SDK negotiates). calls.json is a list of {"name": ..., "arguments": {...}};
results.json holds the negotiated version, the tools listed, and for each call either the
tool result as it came over the wire or the protocol error it raised.
"""

import asyncio
import json
import sys
import traceback

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client


def wire(model):
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


# The HTTP statuses the SDK's requests got (it folds them into JSON-RPC errors).
STATUSES = []


async def record(response):
    STATUSES.append(response.status_code)


async def main(url, token, mode, calls):
    headers = {"Authorization": f"Bearer {token}"} if token != "-" else {}
    http = httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [record]})
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        out = {
            "protocolVersion": client.protocol_version,
            "tools": [wire(tool) for tool in (await client.list_tools()).tools],
            "calls": [],
        }
        for call in calls:
            try:
                result = await client.call_tool(call["name"], call.get("arguments"))
                out["calls"].append({"result": wire(result)})
            except MCPError as error:
                out["calls"].append({"error": {"code": error.code, "message": error.message}})
        return out


if __name__ == "__main__":
    url, token, mode = sys.argv[1:4]
    try:
        out = asyncio.run(main(url, token, mode, json.load(sys.stdin)))
    except Exception as refused:  # the connection itself refused (e.g. 401)
        out = {"refused": "".join(traceback.format_exception(refused))}
    out["statuses"] = STATUSES
    print(json.dumps(out))
