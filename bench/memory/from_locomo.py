#!/usr/bin/env python3
"""Turns the public LoCoMo benchmark into this folder's format, for `cargo bench --bench memory`.

LoCoMo ("Evaluating Very Long-Term Conversational Memory of LLM Agents", ACL 2024,
github.com/snap-research/locomo) holds ten long conversations between two people with
labelled questions. Its licence is not ours, so its data is not in this repository: get
`data/locomo10.zip` (or its unpacked folder) from that repository, then

    python3 bench/memory/from_locomo.py path/to/locomo10.zip /tmp/locomo.json
    PIXIE_BENCH_SETS=/tmp/locomo.json PIXIE_BENCH_PARTS=quality cargo bench --bench memory

As the issue that introduced hybrid recall measured it: every dialog turn is one memory of
that conversation's user ("Speaker: text", and the caption of a photo the turn shares), every
question of categories 1-4 with evidence is a query (category 5 is adversarial: its answer is
not in the conversation), and its evidence turns are the documents to find.
Python 3.11, stdlib only; the output is deterministic.
"""

import io
import json
import re
import sys
import zipfile
from pathlib import Path


def conversations(source: Path):
    """(name, parsed JSON) of every conversation file under the zip or folder."""
    if source.is_dir():
        files = sorted(source.rglob("*.json"))
        return [(f.stem, json.loads(f.read_text())) for f in files]
    with zipfile.ZipFile(source) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".json"))
        return [(Path(n).stem, json.load(io.TextIOWrapper(z.open(n), "utf-8"))) for n in names]


def dia_ids(evidence: str):
    """Evidence as written ("D1:3", and a few malformed ones such as "D:11:26" or
    "D8:6; D9:17") as canonical "D<session>:<turn>" ids."""
    return [f"D{s}:{t}" for s, t in re.findall(r"D:?(\d+):(\d+)", evidence)]


def convert(name, data):
    user = f"locomo_{name}"
    documents, keys = [], {}
    sessions = sorted(
        (int(k.split("_")[1]), v)
        for k, v in data.items()
        if re.fullmatch(r"session_\d+", k) and isinstance(v, list)
    )
    for _, turns in sessions:
        for turn in turns:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            key = f"{user}_m{len(documents) + 1:04d}"
            keys[turn["dia_id"]] = key
            documents.append({"key": key, "kind": "memory", "text": text})
    questions, dropped = [], 0
    for qa in data.get("qa", []):
        if qa.get("category") == 5:
            continue
        evidence = [keys[d] for e in qa.get("evidence", []) for d in dia_ids(e) if d in keys]
        if not evidence:
            dropped += 1
            continue
        questions.append(
            {
                "q": qa["question"],
                "evidence": sorted(set(evidence)),
                "category": {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}[
                    qa["category"]
                ],
            }
        )
    return {"id": user, "documents": documents, "questions": questions}, dropped


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: from_locomo.py LOCOMO10_ZIP_OR_FOLDER OUT.json")
    users, dropped = [], 0
    for name, data in conversations(Path(sys.argv[1])):
        if "qa" not in data:
            continue
        user, lost = convert(name, data)
        users.append(user)
        dropped += lost
    if not users:
        sys.exit(f"no LoCoMo conversations found in {sys.argv[1]}")
    Path(sys.argv[2]).write_text(json.dumps({"version": 1, "users": users}, indent=1))
    docs = sum(len(u["documents"]) for u in users)
    qs = sum(len(u["questions"]) for u in users)
    print(
        f"{len(users)} conversations, {docs} turns, {qs} questions "
        f"({dropped} without findable evidence left out)"
    )


if __name__ == "__main__":
    main()
