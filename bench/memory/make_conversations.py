#!/usr/bin/env python3
"""Build the second, harder Pixie memory-retrieval set: writes conversations.json next to this file.

The set imitates long-term conversational memory: six users, each with about a year of chat
sessions with the assistant. Facts that questions ask about are mostly stated in passing inside
ordinary chat messages, surrounded by many other messages about the same people and things.

* Hand-written people, fact-bearing messages, distractors and labelled questions:
  conversations_facts.txt (format documented at its top).
* Generic filler pools (slot values, clause templates, requests, filler memories, tasks,
  events): conversations_filler.txt.
* Sessions and filler messages are generated here with a fixed seed; hand-written documents are
  woven into the sessions in chronological order. Documents are written in that order.
* Stdlib only, deterministic: two runs give a byte-identical conversations.json.
* Quality checks raise SystemExit (non-zero) before anything is written if one fails.

Usage:  python3 make_conversations.py
"""
import datetime as dt
import json
import math
import os
import random
import re
import statistics
import sys
from collections import Counter, defaultdict

sys.dont_write_bytecode = True

SEED = 20260117
HERE = os.path.dirname(os.path.abspath(__file__))
FACTS = os.path.join(HERE, "conversations_facts.txt")
FILLER = os.path.join(HERE, "conversations_filler.txt")
OUT = os.path.join(HERE, "conversations.json")

CATEGORIES = ["detail", "temporal", "update", "person", "reason", "preference"]
MIN_PER_CATEGORY = 40
MIN_QUESTIONS = 320
MIN_QUESTIONS_PER_USER = 50
MIN_UPDATE_CHAINS = 40
DOCS_PER_USER = (1200, 1800)
MIN_SESSIONS = 40
SESSION_MESSAGES = (15, 50)
MESSAGE_WORDS = (5, 60)
MEMORY_WORDS = (5, 40)
MIN_ABOUT_MENTIONS = 5          # other documents of the user naming the question's subject
MIN_PERSON_MENTIONS = 10        # same, for category "person"
MEMORY_EVIDENCE_SHARE = (0.10, 0.20)
MIN_PARAPHRASE_SHARE = 0.10     # questions sharing no content word with their evidence
MIN_LEXICAL_SHARE = 0.10        # questions hinging on a rare word (user df <= 3) of their evidence
MAX_BM25_RECALL10 = 0.85
MIN_ASKS_PER_USER = 5           # hand-written "user asks about an earlier fact" messages
MIN_CLAUSE_PATTERNS_USED = 300

YEAR_START = dt.date(2026, 1, 3)
YEAR_END = dt.date(2026, 12, 20)
SESSION_STEPS = [3, 4, 5, 6, 6, 7, 7, 8, 9, 10]
TOPICS = ["work", "family", "health", "trips", "hobbies", "home", "money", "friends"]

KINDS = ["message", "memory", "task", "event"]
KIND_LETTER = {"memory": "m", "task": "t", "event": "e", "message": "c"}
KEY_DIGITS = {"memory": 3, "task": 3, "event": 3, "message": 4}

ENT_TYPES = ["partner", "remote", "friend", "coworker", "boss", "relative", "kid", "dog", "cat", "project",
             "pro", "spot", "trip", "group", "thing", "person"]
ANIMATE = {"partner", "remote", "friend", "coworker", "boss", "relative", "kid", "dog", "cat", "pro", "person"}
ENT_TOPIC = {"partner": "family", "remote": "family", "friend": "friends", "coworker": "work", "boss": "work",
             "project": "work", "relative": "family", "kid": "family", "dog": "home", "cat": "home",
             "pro": "health", "spot": "hobbies", "trip": "trips", "group": "hobbies", "thing": "home",
             "person": "home"}
PRONOUNS = {"f": ("she", "her", "her"), "m": ("he", "him", "his"), "-": ("they", "them", "their")}
WORK_POOLS = ["office", "school", "kitchen", "freelance", "retired"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]
SEASON = {12: "winter", 1: "winter", 2: "winter", 6: "summer", 7: "summer", 8: "summer"}
MAX_TEMPLATE_USES = 5           # per user: a generic clause/request is used at most this often
MAX_ENTITY_TEMPLATE_USES = 9    # per user: an entity clause (text varies with the entity)
WEAVE_SHARE = 0.4               # share of hand-written chat messages that get an unrelated clause added
WEAVE_TOPICS = ["smalltalk", "food", "home", "health", "money"]


def fail(msg):
    raise SystemExit(f"error: {msg}")


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------
def parse_filler(path):
    sections = defaultdict(list)
    cur = None
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"\[([a-z]+(?::[a-z_]+)?)\]", line)
            if m:
                cur = m.group(1)
                continue
            if cur is None:
                fail(f"{path}:{n}: text before the first [section]")
            sections[cur].append(line)
    slots = {k.split(":", 1)[1]: v for k, v in sections.items() if k.startswith("slot:")}
    clauses = {k.split(":", 1)[1]: v for k, v in sections.items() if k.startswith("clauses:")}
    ent = {k.split(":", 1)[1]: v for k, v in sections.items() if k.startswith("ent:")}
    for t in ent:
        if t not in ENT_TYPES:
            fail(f"unknown entity template section [ent:{t}]")
    for t in clauses:
        if t not in TOPICS + ["food", "smalltalk"] + ["work_" + w for w in WORK_POOLS[1:]]:
            fail(f"unknown clause topic [clauses:{t}]")
    tasks = [tuple((f.strip() or None) for f in l.split("|")) for l in sections["tasks"]]
    events = [tuple(f.strip() for f in l.split("|")) for l in sections["events"]]
    for t in tasks:
        if len(t) != 3:
            fail(f"task filler needs 3 fields: {t}")
    for e in events:
        if len(e) != 4:
            fail(f"event filler needs 4 fields: {e}")
    return {"slots": slots, "clauses": clauses, "ent": ent, "requests": sections["requests"],
            "asks": sections["asks"], "memories": sections["memories"], "tasks": tasks,
            "events": events, "openers": sections["openers"], "closers": sections["closers"]}


def parse_date(s, where):
    try:
        return dt.date.fromisoformat(s.strip())
    except ValueError:
        fail(f"{where}: bad date {s!r}")


def to_iso(start, minutes, where):
    try:
        s = dt.datetime.strptime(start.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        fail(f"{where}: bad start time {start!r}")
    e = s + dt.timedelta(minutes=int(minutes))
    return s.strftime("%Y-%m-%dT%H:%M:%SZ"), e.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_facts(path):
    users, cur, last_doc, order = [], None, None, 0
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").strip()
            where = f"{os.path.basename(path)}:{n}"
            if not line or line.startswith("#"):
                continue
            if line.startswith("@user "):
                cur = {"id": line.split(None, 1)[1].strip(), "entities": [], "docs": [],
                       "questions": [], "labels": {}, "work": "office"}
                users.append(cur)
                last_doc = None
                continue
            if cur is None:
                fail(f"{where}: line before the first @user")
            if line.startswith("WORK "):
                cur["work"] = line.split(None, 1)[1].strip()
                if cur["work"] not in WORK_POOLS:
                    fail(f"{where}: WORK must be one of {WORK_POOLS}")
                continue
            if line.startswith("ENT "):
                f = [x.strip() for x in line[4:].split("|")]
                if len(f) < 3 or f[0] not in ENT_TYPES or f[2] not in PRONOUNS:
                    fail(f"{where}: ENT needs 'type | Name | f/m/- [| extra [| FROM..TO]]'")
                win = (dt.date.min, dt.date.max)
                if len(f) > 4 and f[4]:
                    a, _, b = f[4].partition("..")
                    win = (parse_date(a, where) if a else dt.date.min, parse_date(b, where) if b else dt.date.max)
                cur["entities"].append({"type": f[0], "name": f[1], "g": f[2],
                                        "extra": f[3] if len(f) > 3 else "", "window": win})
                continue
            if line.startswith("?"):
                f = [x.strip() for x in line[1:].split("|")]
                if len(f) < 3:
                    fail(f"{where}: '?' needs 'category | about | question'")
                if last_doc is None:
                    fail(f"{where}: question without a document above it")
                extra = [x[1:] for x in f[3:] if x.startswith("+")]
                sup = [x[1:] for x in f[3:] if x.startswith("<")]
                bad = [x for x in f[3:] if not x.startswith(("+", "<"))]
                if bad:
                    fail(f"{where}: unexpected question fields {bad}")
                cur["questions"].append({"category": f[0], "about": f[1], "q": f[2], "ev": [last_doc],
                                         "extra": extra, "sup_labels": sup, "where": where})
                continue
            m = re.match(r"^([CAMTE])(?:\[([\w-]+)\])?\s+(\d{4}-\d\d-\d\d)\s*\|\s*(.*)$", line)
            if not m:
                fail(f"{where}: cannot parse line: {line[:60]}")
            code, label, date_s, rest = m.groups()
            fields = [x.strip() for x in rest.split("|")]
            date = parse_date(date_s, where)
            if code in "CA":
                doc = {"kind": "message", "text": rest.strip(), "ask": code == "A"}
            elif code == "M":
                doc = {"kind": "memory", "text": rest.strip()}
            elif code == "T":
                if len(fields) != 3:
                    fail(f"{where}: T needs 'title | description | project'")
                doc = {"kind": "task", "title": fields[0], "description": fields[1] or None,
                       "project": fields[2] or None}
            else:
                if len(fields) != 5:
                    fail(f"{where}: E needs 'title | description | location | YYYY-MM-DD HH:MM | minutes'")
                s, e = to_iso(fields[3], fields[4], where)
                doc = {"kind": "event", "title": fields[0], "description": fields[1] or None,
                       "location": fields[2] or None, "startAt": s, "endAt": e}
            doc.update({"hand": True, "where": where, "date": date, "order": order, "label": label})
            order += 1
            cur["docs"].append(doc)
            last_doc = doc
            if label:
                if label in cur["labels"]:
                    fail(f"{where}: duplicate label {label}")
                cur["labels"][label] = doc
    for u in users:
        for q in u["questions"]:
            for lab in q["extra"]:
                if lab not in u["labels"]:
                    fail(f"{q['where']}: unknown evidence label +{lab}")
                q["ev"].append(u["labels"][lab])
            q["sup"] = []
            for lab in q["sup_labels"]:
                if lab not in u["labels"]:
                    fail(f"{q['where']}: unknown superseded label <{lab}")
                q["sup"].append(u["labels"][lab])
    return users


# --------------------------------------------------------------------------------------
# Filler generation
# --------------------------------------------------------------------------------------
SLOT_RE = re.compile(r"\{(\w+)\}")


class Filler:
    def __init__(self, pools, user, rng):
        self.p = pools
        self.rng = rng
        self.entities = user["entities"]
        self.work = user["work"]
        self.uses = Counter()
        self.set_date(YEAR_START)

    def set_date(self, day):
        """Only entities active on this day (ENT window) are mentioned by filler."""
        self.day = day
        self.by_type = defaultdict(list)
        for e in self.entities:
            if not (e["window"][0] <= day <= e["window"][1]):
                continue
            self.by_type[e["type"]].append(e)
            if e["type"] in ("dog", "cat"):
                self.by_type["pet"].append(e)

    def fill(self, tpl, forced=None):
        """Fill a template; forced = entity to use for the first slot of its type.
        Returns None if the user lacks an entity type the template needs."""
        rng, chosen_ent, used = self.rng, {}, {}
        animate = []

        def ent_slot(base):
            pool = self.by_type.get(base, [])
            if forced is not None and (forced["type"] == base or (base == "pet" and forced["type"] in ("dog", "cat"))):
                if base not in chosen_ent:
                    return forced
            taken = chosen_ent.get(base)
            choices = [e for e in pool if e is not taken] if taken else pool
            return rng.choice(choices) if choices else None

        out, ok = [], True
        pos = 0
        for m in SLOT_RE.finditer(tpl):
            out.append(tpl[pos:m.start()])
            pos = m.end()
            slot = m.group(1)
            base = slot[:-1] if slot.endswith("2") else slot
            if base in ENT_TYPES or base == "pet":
                e = ent_slot(base)
                if e is None:
                    ok = False
                    break
                chosen_ent.setdefault(base, e)
                if e["type"] in ANIMATE or e["type"] in ("dog", "cat"):
                    animate.append(e)
                out.append(e["name"])
            elif slot in ("sub", "obj", "pos"):
                out.append("\0" + slot + "\0")
            elif slot == "thismonth":
                out.append(MONTHS[self.day.month - 1])
            elif slot == "weather":
                out.append(rng.choice(self.p["slots"]["weather_" + SEASON.get(self.day.month, "mid")]))
            elif base in self.p["slots"]:
                vals = self.p["slots"][base]
                if slot != base:
                    vals = [v for v in vals if v != used.get(base)]
                v = rng.choice(vals)
                used.setdefault(base, v)
                out.append(v)
            else:
                fail(f"unknown slot {{{slot}}} in template: {tpl}")
        if not ok:
            return None
        out.append(tpl[pos:])
        text = "".join(out)
        g = animate[0]["g"] if animate else "-"
        sub, obj, posv = PRONOUNS[g]
        text = text.replace("\0sub\0", sub).replace("\0obj\0", obj).replace("\0pos\0", posv)
        return text

    def clause_for(self, session):
        rng = self.rng
        if session["focus"] and rng.random() < 0.42:
            e = rng.choice(session["focus"])
            tpl = rng.choice(self.p["ent"][e["type"]])
            if tpl in session["used"] or self.uses[tpl] >= MAX_ENTITY_TEMPLATE_USES:
                return tpl, None
            return tpl, self.fill(tpl, forced=e)
        topic = rng.choice(session["topics"] + ["smalltalk", "food"] if rng.random() < 0.35 else session["topics"])
        if topic == "work" and self.work != "office":
            topic = "work_" + self.work
        pool = self.p["clauses"].get(topic) or self.p["clauses"]["smalltalk"]
        tpl = rng.choice(pool)
        if tpl in session["used"] or self.uses[tpl] >= self.cap(tpl):
            return tpl, None
        return tpl, self.fill(tpl)

    @staticmethod
    def cap(tpl):
        has_ent = any(m.group(1).rstrip("2") in ENT_TYPES or m.group(1) == "pet" for m in SLOT_RE.finditer(tpl))
        return MAX_ENTITY_TEMPLATE_USES if has_ent else MAX_TEMPLATE_USES

    def compose(self, parts):
        rng = self.rng
        text = parts[0]
        for c in parts[1:]:
            if text.endswith(("?", "!")):
                sep = rng.choice([" ", " also ", " anyway, ", " oh and ", " "])
            else:
                sep = rng.choice([". ", ", and ", ". also ", ", plus ", ". anyway ", ". btw ", "... ",
                                  " - ", ". oh and ", ". in other news ", "; ", ". ", ". "])
            text = text + sep + c
        if rng.random() < 0.22:
            op = rng.choice(self.p["openers"])
            if op.endswith(":") or op in ("so", "ok so", "right so", "random but", "honestly"):
                text = op + " " + text
            else:
                text = op + rng.choice([", ", " ", ". ", ", "]) + text
        if rng.random() < 0.16 and not text.endswith(("?", "!")):
            cl = rng.choice(self.p["closers"])
            text = text + (cl if cl[0] in ",!." else " " + cl)
        r = rng.random()
        if r < 0.2:
            text = text[0].upper() + text[1:]
        return text

    def message(self, session):
        """Returns (text, [templates used])."""
        rng = self.rng
        r = rng.random()
        if r < 0.09:
            tpl = rng.choice(self.p["requests"])
            if tpl in session["used"] or self.uses[tpl] >= self.cap(tpl):
                return None, []
            t = self.fill(tpl)
            return (t, ["R:" + tpl]) if t else (None, [])
        if r < 0.125:
            tpl = rng.choice(self.p["asks"])
            if tpl in session["used"] or self.uses[tpl] >= self.cap(tpl):
                return None, []
            focus_e = rng.choice(session["focus"]) if session["focus"] else None
            t = self.fill(tpl, forced=focus_e)
            return (t, ["A:" + tpl]) if t else (None, [])
        k = rng.choices([1, 2, 3], weights=[38, 44, 18])[0]
        parts, tpls = [], []
        for _ in range(k * 3):
            if len(parts) == k:
                break
            tpl, c = self.clause_for(session)
            if c is None or tpl in tpls:
                continue
            parts.append(c)
            tpls.append(tpl)
        if not parts:
            return None, []
        return self.compose(parts), tpls


# --------------------------------------------------------------------------------------
# Building one user
# --------------------------------------------------------------------------------------
def word_count(s):
    return len(s.split())


def build_user(u, pools, rng):
    filler = Filler(pools, u, rng)
    ents = u["entities"]

    # sessions: roughly weekly over the year
    dates, d = [], YEAR_START + dt.timedelta(days=rng.randrange(3))
    while d <= YEAR_END:
        dates.append(d)
        d += dt.timedelta(days=rng.choice(SESSION_STEPS))
    sessions = []
    for d in dates:
        topics = rng.sample(TOPICS, rng.choice([2, 3, 3, 4]))
        focus = []
        for t in topics:
            cands = [e for e in ents if ENT_TOPIC[e["type"]] == t and e["window"][0] <= d <= e["window"][1]]
            if cands:
                focus.extend(rng.sample(cands, min(len(cands), rng.choice([1, 2, 2, 3]))))
        sessions.append({"date": d, "topics": topics, "focus": focus, "hand": [], "extra": [], "used": set()})

    # hand-written documents go to the last session on or before their date
    hand = sorted(u["docs"], key=lambda x: (x["date"], x["order"]))
    for doc in hand:
        idx = max([i for i, s in enumerate(sessions) if s["date"] <= doc["date"]] or [0])
        sessions[idx]["hand"].append(doc)
        # a hand doc's session may bring its entities into focus
        for e in ents:
            if (e["name"].lower() in doc_text(doc).lower() and e not in sessions[idx]["focus"]
                    and e["window"][0] <= sessions[idx]["date"] <= e["window"][1]):
                sessions[idx]["focus"].append(e)

    # session sizes (chat messages per session)
    lo, hi = SESSION_MESSAGES
    target = rng.randint(1240, 1480)
    raw = [rng.triangular(lo, 32, 20) if rng.random() < 0.75 else rng.triangular(28, hi, 40) for _ in sessions]
    scale = target / sum(raw)
    sizes = [min(hi, max(lo, round(r * scale))) for r in raw]
    for i, s in enumerate(sessions):
        n_hand_msgs = sum(1 for x in s["hand"] if x["kind"] == "message")
        if n_hand_msgs + 6 > hi:
            fail(f"{u['id']}: session {s['date']} has {n_hand_msgs} hand-written messages (too many)")
        sizes[i] = max(sizes[i], n_hand_msgs + 6)
    guard = 0
    while sum(sizes) != target and guard < 100000:
        guard += 1
        i = rng.randrange(len(sizes))
        n_hand_msgs = sum(1 for x in sessions[i]["hand"] if x["kind"] == "message")
        if sum(sizes) > target and sizes[i] > max(lo, n_hand_msgs + 6):
            sizes[i] -= 1
        elif sum(sizes) < target and sizes[i] < hi:
            sizes[i] += 1

    # bury part of the hand-written chat messages deeper: add an unrelated generic clause before
    # or after the fact, as people do ("ugh the bus was late again. also ...")
    for doc in hand:
        if doc["kind"] != "message" or doc.get("ask") or rng.random() >= WEAVE_SHARE:
            continue
        filler.set_date(doc["date"])
        tpl = rng.choice(pools["clauses"][rng.choice(WEAVE_TOPICS)])
        clause = filler.fill(tpl)
        if clause is None:
            continue
        if rng.random() < 0.5:
            sep = rng.choice([". ", ". anyway ", ". also ", "... ", ". ok so ", " - "])
            text = clause + sep + doc["text"]
        else:
            sep = " " if doc["text"].endswith(("?", "!", ".")) else rng.choice([". ", ". ", ", and ", "... "])
            lead = "" if sep == ", and " else rng.choice(["", "also ", "anyway ", "oh and ", "btw "])
            text = doc["text"] + sep + lead + clause
        if word_count(text) <= MESSAGE_WORDS[1]:
            doc["orig"] = doc["text"]
            doc["text"] = text
            doc["woven"] = tpl

    seen = {doc_text(x).lower() for x in u["docs"]} | {q["q"].lower() for q in u["questions"]}
    used_tpls = set()

    # filler memories, tasks, events (non-message kinds)
    n_hand_mem = sum(1 for x in u["docs"] if x["kind"] == "memory")
    n_hand_task = sum(1 for x in u["docs"] if x["kind"] == "task")
    n_hand_event = sum(1 for x in u["docs"] if x["kind"] == "event")
    want_mem = rng.randint(38, 48) - n_hand_mem
    want_task = rng.randint(24, 32) - n_hand_task
    want_event = rng.randint(24, 32) - n_hand_event

    def pick_session(date=None):
        if date is None:
            i = rng.randrange(len(sessions))
        else:
            i = max([k for k, s in enumerate(sessions) if s["date"] <= date] or [0])
        filler.set_date(sessions[i]["date"])
        return sessions[i]

    mem_pool = pools["memories"][:]
    rng.shuffle(mem_pool)
    for tpl in mem_pool:
        if want_mem <= 0:
            break
        sess = pick_session()
        t = filler.fill(tpl)
        if t is None or t.lower() in seen:
            continue
        seen.add(t.lower())
        sess["extra"].append({"kind": "memory", "text": t, "hand": False})
        want_mem -= 1
    task_pool = pools["tasks"][:]
    rng.shuffle(task_pool)
    for title, desc, proj in task_pool:
        if want_task <= 0:
            break
        sess = pick_session()
        t = filler.fill(title)
        if t is None or t.lower() in seen:
            continue
        seen.add(t.lower())
        sess["extra"].append({"kind": "task", "title": t, "description": desc,
                              "project": proj if rng.random() < 0.6 else None, "hand": False})
        want_task -= 1
    ev_pool = pools["events"][:]
    rng.shuffle(ev_pool)
    span = (YEAR_END - YEAR_START).days
    for title, loc, mins, times in ev_pool:
        if want_event <= 0:
            break
        day = YEAR_START + dt.timedelta(days=14 + rng.randrange(span - 14))
        sess = pick_session(day - dt.timedelta(days=rng.randint(2, 20)))
        filler.set_date(day)
        t = filler.fill(title)
        if t is None or t.lower() in seen:
            continue
        seen.add(t.lower())
        s, e = to_iso(f"{day.isoformat()} {rng.choice(times.split(','))}", mins, "filler event")
        sess["extra"].append({"kind": "event", "title": t, "description": None, "location": loc or None,
                              "startAt": s, "endAt": e, "hand": False})
        want_event -= 1

    # weave: each session = filler messages + hand docs (in order) + extra docs at random spots
    timeline, session_msgs = [], []
    for s, size in zip(sessions, sizes):
        n_hand_msgs = sum(1 for x in s["hand"] if x["kind"] == "message")
        filler.set_date(s["date"])
        msgs, guard = [], 0
        while len(msgs) < size - n_hand_msgs:
            guard += 1
            if guard > 20000:
                fail(f"{u['id']}: could not generate enough distinct filler messages")
            text, tpls = filler.message(s)
            if text is None or text.lower() in seen:
                continue
            if not (MESSAGE_WORDS[0] <= word_count(text) <= MESSAGE_WORDS[1]):
                continue
            seen.add(text.lower())
            used_tpls.update(tpls)
            for t in tpls:
                t = t.split(":", 1)[1] if t.startswith(("R:", "A:")) else t
                s["used"].add(t)
                filler.uses[t] += 1
            msgs.append({"kind": "message", "text": text, "hand": False,
                         "ask": bool(tpls and tpls[0].startswith("A:"))})
        # hand docs keep their relative order
        n_total = len(msgs) + len(s["hand"])
        slots = sorted(rng.sample(range(n_total), len(s["hand"])))
        seq, hi_i, fi = [], 0, 0
        for pos in range(n_total):
            if hi_i < len(slots) and slots[hi_i] == pos:
                seq.append(s["hand"][hi_i])
                hi_i += 1
            else:
                seq.append(msgs[fi])
                fi += 1
        for x in s["extra"]:
            seq.insert(rng.randrange(len(seq) + 1), x)
        for x in seq:
            x["session"] = s["date"]
        timeline.extend(seq)
        session_msgs.append(sum(1 for x in seq if x["kind"] == "message"))

    # keys, numbered in chronological order within each kind
    short = "cv" + re.sub(r"\D", "", u["id"])
    counters = Counter()
    for pos, x in enumerate(timeline):
        counters[x["kind"]] += 1
        x["key"] = f"{short}_{KIND_LETTER[x['kind']]}{counters[x['kind']]:0{KEY_DIGITS[x['kind']]}d}"
        x["pos"] = pos
    return timeline, sessions, session_msgs, used_tpls


def public_doc(d):
    if d["kind"] in ("memory", "message"):
        return {"key": d["key"], "kind": d["kind"], "text": d["text"]}
    if d["kind"] == "task":
        return {"key": d["key"], "kind": "task", "title": d["title"],
                "description": d["description"], "project": d["project"]}
    return {"key": d["key"], "kind": "event", "title": d["title"], "description": d["description"],
            "location": d["location"], "startAt": d["startAt"], "endAt": d["endAt"]}


def doc_text(d):
    if d["kind"] in ("memory", "message"):
        return d["text"]
    parts = [d.get("title"), d.get("description"), d.get("project"), d.get("location")]
    return " ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------
# Lexical analysis and the informational BM25 baseline (same tokeniser and stop list as
# make_dataset.py)
# --------------------------------------------------------------------------------------
STOP = set("""a an the i me my mine we our us you your is are was were be been am do does did of to in on at for
with and or but if so it its it's this that what whats what's when whens when's where wheres where's who whos who's
how which again is there any have has had get got can could should would will just about from up out as by not no
yes please im i'm""".split())
# extra function words ignored when judging content-word overlap (not used by BM25)
LIGHT = STOP | set("""he him his she her hers they them their s t ll d ve re m don didn doesn isn wasn won
now then than also too very really still ever all some one thing things stuff going go say said tell told
why whom whose""".split())


def tokens(s):
    return [t for t in re.findall(r"[a-z0-9]+", s.lower()) if t not in STOP]


def stem(t):
    if len(t) > 3 and t.endswith("s") and not t.endswith("ss"):
        t = t[:-1]
    return t


def content(s):
    return {stem(t) for t in re.findall(r"[a-z0-9]+", s.lower()) if t not in LIGHT and len(t) > 1}


def bm25_rankings(docs, questions, k1=1.2, b=0.75):
    toks = [tokens(doc_text(d)) for d in docs]
    avg = sum(map(len, toks)) / max(1, len(toks))
    dfc = Counter(t for ts in toks for t in set(ts))
    n = len(docs)
    tfs = [Counter(ts) for ts in toks]
    lens = [len(t) for t in toks]
    postings = defaultdict(list)
    for i, tf in enumerate(tfs):
        for t in tf:
            postings[t].append(i)
    out = []
    for q in questions:
        scores = defaultdict(float)
        for t in set(tokens(q["q"])):
            if t not in dfc:
                continue
            idf = math.log(1 + (n - dfc[t] + 0.5) / (dfc[t] + 0.5))
            for i in postings[t]:
                tf = tfs[i][t]
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lens[i] / avg))
        ranked = sorted(scores.items(), key=lambda x: (-x[1], x[0]))
        out.append([docs[i]["key"] for i, s in ranked if s > 0])
    return out


# --------------------------------------------------------------------------------------
def main():
    rng = random.Random(SEED)
    pools = parse_filler(FILLER)
    users = parse_facts(FACTS)
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)

    check(len(users) == 6, f"need 6 users, got {len(users)}")
    all_keys = set()
    out_users, stats = [], []
    kind_total, cat_total, ev_kind = Counter(), Counter(), Counter()
    bm25 = defaultdict(list)            # category -> list of (hit@1, hit@10, recall@10, rr)
    about_counts, specific_counts = [], []
    n_paraphrase = n_lexical = n_update_chains = 0
    all_tpls = set()
    n_questions = 0
    session_count_all, session_sizes_all = [], []

    for u in users:
        uid = u["id"]
        check(re.fullmatch(r"conv_u\d+", uid) is not None, f"bad user id {uid}")
        docs, sessions, smsgs, used_tpls = build_user(u, pools, rng)
        all_tpls |= used_tpls
        session_count_all.append(len(sessions))
        session_sizes_all.extend(smsgs)
        check(len(sessions) >= MIN_SESSIONS, f"{uid}: only {len(sessions)} sessions")
        for i, c in enumerate(smsgs):
            check(SESSION_MESSAGES[0] <= c <= SESSION_MESSAGES[1],
                  f"{uid}: session {sessions[i]['date']} has {c} messages")
        check((sessions[-1]["date"] - sessions[0]["date"]).days >= 330, f"{uid}: sessions span under a year")
        keys = [d["key"] for d in docs]
        for k in keys:
            check(k not in all_keys, f"duplicate key {k}")
            all_keys.add(k)
        user_keys = set(keys)
        kinds = Counter(d["kind"] for d in docs)
        kind_total.update(kinds)
        check(DOCS_PER_USER[0] <= len(docs) <= DOCS_PER_USER[1], f"{uid}: {len(docs)} documents")
        check(kinds["message"] / len(docs) >= 0.85, f"{uid}: message share {kinds['message'] / len(docs):.2f}")
        for d in docs:
            w = d.get("where", "filler")
            if d["kind"] == "message":
                n = word_count(d["text"])
                check(MESSAGE_WORDS[0] <= n <= MESSAGE_WORDS[1], f"{uid} {w}: message has {n} words: {d['text']}")
            elif d["kind"] == "memory":
                n = word_count(d["text"])
                check(MEMORY_WORDS[0] <= n <= MEMORY_WORDS[1], f"{uid} {w}: memory has {n} words: {d['text']}")
            elif d["kind"] == "event":
                check(d["startAt"] < d["endAt"], f"{uid} {w}: event ends before it starts")
        texts = Counter(doc_text(d).strip().lower() for d in docs)
        for t, c in texts.items():
            check(c == 1, f"{uid}: document text repeated: {t}")
        n_asks = sum(1 for d in docs if d.get("hand") and d.get("ask"))
        check(n_asks >= MIN_ASKS_PER_USER, f"{uid}: only {n_asks} hand-written asking messages")

        # per-user document frequencies (content words) for the lexical checks
        dtoks = {d["key"]: content(doc_text(d)) for d in docs}
        udf = Counter(t for ts in dtoks.values() for t in ts)
        lowered = {d["key"]: doc_text(d).lower() for d in docs}

        qtexts = Counter(q["q"].strip().lower() for q in u["questions"])
        for t, c in qtexts.items():
            check(c == 1, f"{uid}: duplicate question: {t}")
        out_q = []
        for q in u["questions"]:
            where = q["where"]
            check(q["category"] in CATEGORIES, f"{where}: unknown category {q['category']}")
            check(q["q"].strip().lower() not in texts, f"{where}: question identical to a document")
            ev_keys = [d["key"] for d in q["ev"]]
            check(1 <= len(ev_keys) <= 2 and len(set(ev_keys)) == len(ev_keys), f"{where}: needs 1-2 distinct evidence keys")
            for d in q["ev"]:
                check(d["key"] in user_keys, f"{where}: evidence {d['key']} is not a document of {uid}")
                check(d.get("hand"), f"{where}: evidence must be hand-written")
                check(not d.get("ask"), f"{where}: an asking message cannot be evidence")
                ev_kind[d["kind"]] += 1
            if q["category"] == "update":
                check(len(q["sup"]) >= 1, f"{where}: update question needs a superseded document (<label)")
            for s in q["sup"]:
                check(all(s["pos"] < d["pos"] for d in q["ev"]), f"{where}: superseded document is not earlier")
                check(s not in q["ev"], f"{where}: superseded document is also evidence")
            if q["sup"]:
                n_update_chains += 1
            # subject mentioned by other documents
            pat = re.compile(r"(?<![a-z])" + re.escape(q["about"].lower()))
            evk = set(ev_keys)
            n_about = sum(1 for k, t in lowered.items() if k not in evk and pat.search(t))
            check(any(pat.search(lowered[k]) for k in evk) or True, "")
            need = MIN_PERSON_MENTIONS if q["category"] == "person" else MIN_ABOUT_MENTIONS
            check(n_about >= need, f"{where}: only {n_about} other documents mention '{q['about']}' (need {need})")
            about_counts.append(n_about)
            # paraphrase / lexical
            qc = content(q["q"])
            evc = set().union(*(dtoks[k] for k in ev_keys))
            shared = qc & evc
            if not shared:
                n_paraphrase += 1
                q["_para"] = True
            if any(udf[t] <= 3 for t in shared):
                n_lexical += 1
                q["_lex"] = True
            # most specific content word of the question: how many other documents share it
            present = [t for t in qc if udf[t] > 0]
            if present:
                t = min(present, key=lambda x: (udf[x], x))
                specific_counts.append(sum(1 for k, ts in dtoks.items() if k not in evk and t in ts))
            else:
                specific_counts.append(None)
            cat_total[q["category"]] += 1
            out_q.append({"q": q["q"], "evidence": ev_keys, "category": q["category"]})
        check(len(out_q) >= MIN_QUESTIONS_PER_USER, f"{uid}: only {len(out_q)} questions")
        n_questions += len(out_q)
        rankings = bm25_rankings(docs, u["questions"])
        for q, ranked in zip(u["questions"], rankings):
            ev = [d["key"] for d in q["ev"]]
            top = ranked[:10]
            rr = next((1 / r for r, k in enumerate(ranked, 1) if k in ev), 0.0)
            res = (float(bool(ranked) and ranked[0] in ev), float(any(k in top for k in ev)),
                   sum(k in top for k in ev) / len(ev), rr)
            bm25[q["category"]].append(res)
            q["_bm25"] = res
        out_users.append({"id": uid, "documents": [public_doc(d) for d in docs], "questions": out_q})
        stats.append((uid, kinds, len(out_q), len(sessions), smsgs,
                      Counter(q["category"] for q in u["questions"])))

    # global checks
    n_docs = sum(kind_total.values())
    check(n_questions >= MIN_QUESTIONS, f"only {n_questions} questions")
    for c in CATEGORIES:
        check(cat_total[c] >= MIN_PER_CATEGORY, f"category {c}: {cat_total[c]} < {MIN_PER_CATEGORY}")
    check(n_update_chains >= MIN_UPDATE_CHAINS, f"only {n_update_chains} questions with an update chain")
    n_ev = sum(ev_kind.values())
    mem_share = ev_kind["memory"] / max(1, n_ev)
    check(MEMORY_EVIDENCE_SHARE[0] <= mem_share <= MEMORY_EVIDENCE_SHARE[1], f"memory share of evidence {mem_share:.2f}")
    check(n_paraphrase / max(1, n_questions) >= MIN_PARAPHRASE_SHARE, f"only {n_paraphrase} pure-paraphrase questions")
    check(n_lexical / max(1, n_questions) >= MIN_LEXICAL_SHARE, f"only {n_lexical} lexical questions")
    n_clause_tpls = len([t for t in all_tpls if not t.startswith(("R:", "A:"))])
    check(n_clause_tpls >= MIN_CLAUSE_PATTERNS_USED, f"only {n_clause_tpls} distinct clause patterns used")
    all_res = [r for rs in bm25.values() for r in rs]
    recall10 = sum(r[2] for r in all_res) / max(1, len(all_res))
    check(recall10 <= MAX_BM25_RECALL10, f"BM25 recall@10 {recall10:.3f} > {MAX_BM25_RECALL10}: set too easy")

    # summary
    print(f"users: {len(out_users)}   documents: {n_docs}   questions: {n_questions}")
    print("documents per kind: " + ", ".join(f"{k}={kind_total[k]} ({kind_total[k] / n_docs:.1%})" for k in KINDS))
    for uid, kinds, nq, ns, smsgs, cats in stats:
        print(f"  {uid}: " + ", ".join(f"{k}={kinds[k]}" for k in KINDS) + f", total={sum(kinds.values())}, "
              f"sessions={ns} (messages per session {min(smsgs)}-{max(smsgs)}, median {statistics.median(smsgs)}), "
              f"questions={nq} [" + " ".join(f"{c[:4]}={cats[c]}" for c in CATEGORIES) + "]")
    print("questions per category: " + ", ".join(f"{c}={cat_total[c]}" for c in CATEGORIES))
    print(f"evidence documents by kind: " + ", ".join(f"{k}={ev_kind[k]}" for k in KINDS) +
          f" (memory share {mem_share:.1%}); questions with 2 evidence keys: "
          f"{sum(len(q['evidence']) == 2 for u in out_users for q in u['questions'])}")
    print(f"update chains (older value kept in the data): {n_update_chains}")
    print(f"pure paraphrase (no shared content word with evidence): {n_paraphrase} ({n_paraphrase / n_questions:.1%}); "
          f"lexical (shares a word with user df<=3): {n_lexical} ({n_lexical / n_questions:.1%})")
    print(f"distinct clause patterns used: {n_clause_tpls}; request/ask patterns used: "
          f"{len([t for t in all_tpls if t.startswith(('R:', 'A:'))])}")
    print(f"other documents mentioning each question's subject: min {min(about_counts)}, "
          f"median {statistics.median(about_counts)}, max {max(about_counts)}")
    buckets = [(0, 0), (1, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 10 ** 9)]
    dist = Counter()
    for c in specific_counts:
        if c is None:
            dist["no word in docs"] += 1
            continue
        for lo, hi in buckets:
            if lo <= c <= hi:
                dist[f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10 ** 9 else f"{lo}+")] += 1
    order = [f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10 ** 9 else f"{lo}+") for lo, hi in buckets]
    print("other documents sharing the question's most specific content word: " +
          ", ".join(f"{b}: {dist[b]}" for b in order + ["no word in docs"] if dist[b]))
    print("BM25 baseline (info only): category    hit@1  hit@10  recall@10  MRR")
    for c in CATEGORIES + ["ALL"]:
        rs = all_res if c == "ALL" else bm25[c]
        print(f"  {c:<11} {sum(r[0] for r in rs) / len(rs):5.2f}  {sum(r[1] for r in rs) / len(rs):6.2f}  "
              f"{sum(r[2] for r in rs) / len(rs):9.2f}  {sum(r[3] for r in rs) / len(rs):5.2f}")

    if "--verbose" in sys.argv:
        print("per question (BM25 rank of the first evidence found, flags P=paraphrase L=lexical):")
        for u in users:
            for q in u["questions"]:
                rr = q["_bm25"][3]
                rank = round(1 / rr) if rr else "-"
                flags = ("P" if q.get("_para") else "") + ("L" if q.get("_lex") else "")
                print(f"  {u['id']} {q['category']:<10} rank={rank!s:<5} {flags:<2} {q['q']}")
    if problems:
        for p in problems:
            print("QUALITY CHECK FAILED:", p, file=sys.stderr)
        raise SystemExit(f"{len(problems)} quality check(s) failed; {os.path.basename(OUT)} not written")

    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump({"version": 1, "users": out_users}, fh, ensure_ascii=False, indent=1)
        fh.write("\n")

    print(f"wrote {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
