"""Redaction cost per KiB of captured text, on generated but realistic chat transcripts.

    .venv/bin/python bench/redaction.py            # ~20 s
    .venv/bin/python bench/redaction.py --quick    # ~5 s

Transcripts are built from a fixed seed: a system prompt, user and assistant turns of prose,
Markdown lists, code blocks, JSON snippets, numbers, dates, versions, URLs and file paths. The
"with values" set plants a few values of each kind (keys, addresses, phones, cards, IBANs, IPs)
per transcript; the "no match" set has none. Each case is timed as the writer runs it:
the walk ``redact_record`` does over a span's input and output, and, for reference,
the plain ``Redactor.text`` on the joined text and ``orjson.dumps`` of the same record (what the
writer already pays per record), as a same-run ratio. Times are CPU time, the best of the
rounds, each bounded in count and time. Targets: default kinds <= 20 us/KiB, all kinds <= 60 us/KiB.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.redaction import BUILTIN_KINDS, Redactor

SEED = 1717
_VOCABULARY = (
    "the a to of and in is it you that for on with this be can are as your if not or have we "
    "will do at by from an but use so all there which when what more one how data service "
    "request response error time user value function file model token cache retry timeout "
    "configure client server query result test build deploy version update change list order "
    "check first then also make sure each because should could would need see example set get"
)
WORDS = _VOCABULARY.split(" ")
CODE = [
    "```python\nimport asyncio\n\nasync def fetch(session, url: str) -> dict:\n"
    "    for attempt in range(5):\n        async with session.get(url, timeout=30) as resp:\n"
    "            if resp.status in (429, 503):\n                await asyncio.sleep(2 ** attempt)\n"
    "                continue\n            return await resp.json()\n```",
    "```js\nconst total = items.reduce((sum, item) => sum + item.price * item.qty, 0);\n"
    "console.log(`total: ${total.toFixed(2)}`);\n```",
    "```bash\npip install -r requirements.txt && pytest -q tests/ --maxfail=1\n```",
    '```json\n{"id": 42, "items": [1, 2, 3], "total": 19.99, "at": "2024-03-15T10:30:00Z"}\n```',
    "```sql\nSELECT user_id, count(*) FROM orders WHERE created_at > '2024-01-01' GROUP BY 1;\n```",
]
EXTRAS = [
    "See https://docs.example.com/guide/retries#backoff for details.",
    "It was fixed in version 2.3.1 (build 10.0.19041.1).",
    "On 2024-03-15 we measured a p99 of 120 ms at 1,500 requests per second.",
    "The file lives at /var/lib/app/config.yaml and is read at start-up.",
    "Order #88231 shipped on 12/03/2024; total: $1,249.00.",
    "Use `std::vector<int>` or a `HashMap<String, u32>` here.",
    "Times are 10:30:00 UTC; the job runs every 15 minutes.",
]
PLANTED = [
    "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0h",
    "AWS: AKIAIOSFODNN7EXAMPLE / ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "write to jane.doe@example.com or support@acme.io",
    "call +44 20 7946 0958 or (555) 123-4567",
    "card 4111 1111 1111 1111 exp 12/27",
    "IBAN DE89 3704 0044 0532 0130 00",
    "the server at 192.168.1.20 and 2001:db8::8a2e:370:7334",
]


def prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
        out.append(" ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!", ":"]))
    return " ".join(out)


def turn(rng: random.Random, planted: bool) -> str:
    parts = [prose(rng, rng.randint(2, 6))]
    if rng.random() < 0.5:
        parts.append("\n".join(f"- {prose(rng, 1)}" for _ in range(rng.randint(2, 4))))
    if rng.random() < 0.4:
        parts.append(rng.choice(CODE))
    if rng.random() < 0.6:
        parts.append(rng.choice(EXTRAS))
    if planted:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(PLANTED))
    return "\n\n".join(parts)


def span_record(rng: random.Random, planted: bool) -> dict[str, Any]:
    messages = [{"role": "system", "content": "You are a helpful assistant. " + prose(rng, 2)}]
    for i in range(rng.randint(2, 6)):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": turn(rng, planted and role == "user")})
    answer = "\n\n".join(turn(rng, False) for _ in range(rng.randint(1, 3)))
    return {"id": "span:t:s", "kind": "span", "started_ms": 0, "trace": {"trace_id": "t"},
            "span": {"span_id": "s", "model": "gpt-4o-mini", "input": {"messages": messages},
                     "output": {"text": answer, "tool_calls": []}}}  # fmt: skip


def text_of(record: dict[str, Any]) -> str:
    span = record["span"]
    return "\n".join([m["content"] for m in span["input"]["messages"]] + [span["output"]["text"]])


def timed(work: Callable[[], None], reps: int, budget_s: float) -> float:
    """CPU seconds of one call of ``work``: the best of ``reps`` rounds, each bounded in count
    and time. CPU time of this process, and the best round, because the machine is shared:
    other processes stretch wall time, not the work done here."""
    samples = []
    for _ in range(reps):
        calls, started = 0, time.process_time()
        while calls < 2000 and (calls == 0 or time.process_time() - started < budget_s):
            work()
            calls += 1
        samples.append((time.process_time() - started) / calls)
    return min(samples)


def measure(records: list[dict[str, Any]], redactor: Redactor, reps: int, budget: float) -> dict:
    kib = sum(len(text_of(r).encode()) for r in records) / 1024
    texts = [text_of(r) for r in records]

    def records_once() -> None:  # what redact_record does to a span, minus the in-place mark
        for record in records:
            counts: dict[str, int] = {}
            redactor.value(record["span"]["input"], counts)
            redactor.value(record["span"]["output"], counts)

    def texts_once() -> None:
        for text in texts:
            redactor.text(text, {})

    def dumps_once() -> None:
        for record in records:
            orjson.dumps(record)

    record_s = timed(records_once, reps, budget)
    text_s = timed(texts_once, reps, budget)
    dumps_s = timed(dumps_once, reps, budget)
    return {
        "kib": kib,
        "record_us_per_kib": record_s * 1e6 / kib,
        "text_us_per_kib": text_s * 1e6 / kib,
        "dumps_us_per_kib": dumps_s * 1e6 / kib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer transcripts and rounds")
    parser.add_argument("--transcripts", type=int, default=200)
    args = parser.parse_args()
    count = 40 if args.quick else args.transcripts
    reps, budget = (3, 0.2) if args.quick else (5, 0.5)
    rng = random.Random(SEED)
    sets = {"with values": [span_record(rng, True) for _ in range(count)],
            "no match": [span_record(rng, False) for _ in range(count)]}  # fmt: skip
    redactors = {"default (secret)": Redactor(), "all kinds": Redactor(BUILTIN_KINDS),
                 "all kinds, hash": Redactor(BUILTIN_KINDS, "hash", key=b"bench")}  # fmt: skip
    print(f"{count} transcripts per set; CPU time, best of {reps} rounds; "
          "us per KiB of captured text (lower is better)\n")  # fmt: skip
    print(f"{'set':12} {'kinds':18} {'KiB':>7} {'record':>8} {'text':>8} {'dumps':>7} "
          f"{'record/dumps':>13}")  # fmt: skip
    results = []
    for set_name, records in sets.items():
        for kinds, redactor in redactors.items():
            row = measure(records, redactor, reps, budget)
            ratio = row["record_us_per_kib"] / row["dumps_us_per_kib"]
            print(
                f"{set_name:12} {kinds:18} {row['kib']:7.0f} {row['record_us_per_kib']:8.2f} "
                f"{row['text_us_per_kib']:8.2f} {row['dumps_us_per_kib']:7.2f} {ratio:13.1f}"
            )
            results.append({"set": set_name, "kinds": kinds, **row})
    print("\n" + orjson.dumps(results).decode())


if __name__ == "__main__":
    main()
