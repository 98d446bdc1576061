"""Fuzz the MQTT contract parser: every input must parse to a valid message or raise ProtocolError with a
known reason. Anything else (an OverflowError, a plain ValueError, a RecursionError...) is a crash: in the
gateway it would kill the store writer on every redelivery of the same message.

Inputs come from seeded mutation of valid messages (bytes flipped, inserted, cut; JSON fields replaced with
hostile values; topic levels mangled) plus Hypothesis strategies (arbitrary bytes and JSON-shaped objects).
A message that parses must survive a round trip through `encode`.

    .venv/bin/python bench/fuzz.py [--inputs 100000] [--hypothesis 10000] [--seed 1]

Prints a table (inputs, parsed ok, rejected by reason, crashes), then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.contract.payloads import (
    MAX_PAYLOAD_BYTES,
    METRICS,
    Message,
    StateMessage,
    StockReport,
    Telemetry,
    encode,
    parse_message,
)
from gateway.contract.reasons import ProtocolError, Reason

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REASONS = frozenset(get_args(Reason))
TELEMETRY = "rhizome/v1/utuado/pump-1/utuado-pump-1-pump/telemetry"
STOCK = "rhizome/v1/utuado/hub/utuado-hub-stock/stock"
STATE = "rhizome/v1/utuado/pump-1/utuado-pump-1-pump/state"

SEEDS: list[tuple[str, bytes]] = [
    (TELEMETRY, encode(Telemetry(7, NOW, {"flow_lpm": 41.5, "running": True, "pressure_kpa": 310.0}))),
    (TELEMETRY, encode(Telemetry(2**53 - 1, NOW, {"temperature_c": -4.5, "door_open": False}, ("E17",)))),
    (
        TELEMETRY,
        b'{"v":1,"device":"utuado-pump-1-pump","seq":3,"ts":"2026-11-26T07:59:00-04:00",'
        b'"metrics":{"battery_v":12.1,"rssi_dbm":-71}}',
    ),
    (STOCK, encode(StockReport(8, NOW, {"rice": 120.5, "drinking-water": 4000.0}))),
    (STATE, encode(StateMessage("online", 3))),
    (STATE, encode(StateMessage("offline", 3, NOW, clean=True))),
]

# Values that have broken parsers before: limits of ints and floats, odd timestamps, odd strings, nesting.
HOSTILE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**53,
    2**53 - 1,
    2**63,
    2**64 + 1,
    -(2**63),
    10**400,
    -(10**400),
    0.0,
    -0.0,
    1e-320,
    1.5,
    1e308,
    -1e308,
    5e-324,
    "",
    "x",
    "1",
    "true",
    "null",
    "NaN",
    "\u0000",
    "\ud800",
    "\udfff",
    "\u202e",
    "é",
    "💧",
    "a" * 1000,
    [],
    {},
    [1],
    {"a": 1},
    [[[[[]]]]],
    "2026-11-26T11:59:00Z",
    "2026-11-26T11:59:00",
    "2026-11-26T11:59:00+25:00",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "2019-12-31T23:59:59Z",
    "2026-11-26T12:10:01Z",
    "2026-11-26",
    "20261126T115900Z",
    "2026-11-26T11:59:00.123456789Z",
    "2026-W48-4T11:59Z",
    "\u0662\u0660\u0662\u0666-11-26T11:59:00Z",
]
RAW_HOSTILE: list[bytes] = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"1" * 5000,
    b"-" + b"9" * 4400,
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b'"\\ud800"',
    b'"\\u0000"',
    b"1E+999999999",
    b"0e-99999999999",
    b"[1,]",
    b"{,}",
    b"",
]
JSON_BYTES = b'{}[]",:\\0123456789.eE+-tfn '
TOPIC_LEVELS: list[str] = [
    "",
    "+",
    "#",
    "utuado",
    "Utuado",
    "a" * 48,
    "a" * 49,
    "-a",
    "a-",
    "a--b",
    "é",
    "💧",
    "a b",
    "a\u0000b",
    "telemetry",
    "stock",
    "state",
    "command",
    "x" * 70000,
    "a/b",
    "$SYS",
    "rhizome",
    "v1",
]


@dataclass
class Tally:
    """Outcomes of one family of inputs."""

    inputs: int = 0
    ok: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    crashes: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def check(tally: Tally, topic: str, payload: bytes) -> None:
    """Feed one input to the parser and file the outcome."""
    tally.inputs += 1
    try:
        message = parse_message(topic, payload, now=NOW)
    except ProtocolError as exc:
        if exc.reason in REASONS:
            tally.reasons[exc.reason] += 1
            return
        _crash(tally, topic, payload, f"unknown reason {exc.reason!r}")
        return
    except Exception as exc:  # the point of the exercise: anything else is a crash
        _crash(tally, topic, payload, f"{exc.__class__.__name__}: {exc}"[:120])
        return
    try:  # whatever is accepted is well-formed: it survives encode and parses back to the same message
        again = parse_message(str(message.topic), encode(message.body), now=NOW)
    except Exception as exc:
        _crash(tally, topic, payload, f"round trip: {exc.__class__.__name__}: {exc}"[:120])
        return
    if again != _to_millisecond(message):
        _crash(tally, topic, payload, "round trip changed the message")
        return
    tally.ok += 1


def _to_millisecond(message: Message) -> Message:
    """The message as `encode` writes it: timestamps carry milliseconds, finer digits are accepted but cut."""
    ts = getattr(message.body, "ts", None)
    if ts is None:
        return message
    cut = ts.replace(microsecond=ts.microsecond // 1000 * 1000)
    return dataclasses.replace(message, body=dataclasses.replace(message.body, ts=cut))


def _crash(tally: Tally, topic: str, payload: bytes, what: str) -> None:
    kind = what.split(":")[0]
    tally.crashes[kind] += 1
    if tally.crashes[kind] <= 2:  # a couple of examples of every kind of crash
        tally.examples.append(f"{what} <- topic {topic[:80]!r}, payload {payload[:120]!r}")


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """One to four byte edits: flip, insert, delete, repeat a slice, cut, or splice in a hostile token."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = bytes([rng.randrange(256)])
        elif op == 2 and out:
            del out[at : at + rng.randint(1, 8)]
        elif op == 3 and out:
            end = min(len(out), at + rng.randint(1, 40))
            out[at:at] = out[at:end] * rng.randint(1, 50)
        elif op == 4:
            del out[at:]
        elif op == 5:
            out[at:at] = rng.choice(RAW_HOSTILE)
        else:
            out[at:at] = bytes([rng.choice(JSON_BYTES)])
    return bytes(out)


def mutate_json(rng: random.Random, data: bytes) -> bytes:
    """Replace, add, drop or rename fields of a valid message, at the top level or one level down."""
    obj: dict[str, Any] = json.loads(data)
    inner = [k for k, v in obj.items() if isinstance(v, dict)]
    target = obj[rng.choice(inner)] if inner and rng.random() < 0.5 else obj
    keys = list(target)
    op = rng.randrange(5)
    if op == 0 and keys:
        target[rng.choice(keys)] = rng.choice(HOSTILE)
    elif op == 1:
        name = rng.choice(
            [*METRICS, "v", "seq", "ts", "device", "faults", "levels", "extra", "\ud800", "\x00"]
        )
        target[name] = rng.choice(HOSTILE)
    elif op == 2 and keys:
        del target[rng.choice(keys)]
    elif op == 3 and keys:
        key = rng.choice(keys)
        target[key + rng.choice(["_", "X", "\u0000", " "])] = target.pop(key)
    else:
        target["device"] = rng.choice(["utuado-pump-1-pump", "utuado-hub-stock", "other", 7, None, "\ud800"])
    text = json.dumps(obj, allow_nan=True)
    if rng.random() < 0.2:  # a raw token JSON cannot express from Python values
        text = text.replace(" 1", " " + rng.choice(RAW_HOSTILE).decode("latin-1"), 1)
    return text.encode("utf-8", "surrogatepass")


def mutate_topic(rng: random.Random, topic: str) -> str:
    """Replace, add or drop topic levels."""
    levels = topic.split("/")
    op = rng.randrange(4)
    if op == 0:
        levels[rng.randrange(len(levels))] = rng.choice(TOPIC_LEVELS)
    elif op == 1:
        levels.insert(rng.randrange(len(levels) + 1), rng.choice(TOPIC_LEVELS))
    elif op == 2 and len(levels) > 1:
        del levels[rng.randrange(len(levels))]
    else:
        levels = [rng.choice(TOPIC_LEVELS) for _ in range(rng.randint(0, 8))]
    return "/".join(levels)


def random_inputs(rng: random.Random, count: int) -> Iterator[tuple[str, str, bytes]]:
    """`count` (family, topic, payload) triples from the mutation families, in a fixed seeded order."""
    families: list[tuple[str, Callable[[], tuple[str, bytes]]]] = []

    def seed() -> tuple[str, bytes]:
        return rng.choice(SEEDS)

    families.append(("bytes mutated", lambda: (lambda t, p: (t, mutate_bytes(rng, p)))(*seed())))
    families.append(("fields mutated", lambda: (lambda t, p: (t, mutate_json(rng, p)))(*seed())))
    families.append(("topic mutated", lambda: (lambda t, p: (mutate_topic(rng, t), p))(*seed())))
    families.append(("oversized", lambda: (rng.choice(SEEDS)[0], _oversized(rng))))
    weights = [40, 40, 15, 5]
    for _ in range(count):
        name, make = rng.choices(families, weights)[0]
        topic, payload = make()
        yield name, topic, payload


def _oversized(rng: random.Random) -> bytes:
    padding = rng.choice([MAX_PAYLOAD_BYTES - 200, MAX_PAYLOAD_BYTES - 30, MAX_PAYLOAD_BYTES, 70_000])
    return b'{"v":1,"seq":1,"ts":"2026-11-26T11:59:00Z","metrics":{"flow_lpm":1.0' + b" " * padding + b"}}"


def hypothesis_inputs(tally: Tally, examples: int, seed: int) -> None:
    """Arbitrary bytes and JSON-shaped objects on valid and arbitrary topics, generated by Hypothesis."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.integers(min_value=-(10**500), max_value=10**500)
        | st.floats()
        | st.text(max_size=12)
        | st.sampled_from(HOSTILE)
    )
    values = st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=12,
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "v": st.just(1) | values,
            "seq": st.integers(min_value=-1, max_value=2**54) | values,
            "ts": st.sampled_from(HOSTILE[-17:]) | st.datetimes(timezones=st.timezones()).map(str) | values,
            "metrics": st.dictionaries(st.sampled_from([*METRICS, "bogus"]), values, max_size=4) | values,
            "levels": st.dictionaries(st.text(max_size=8) | st.sampled_from(["rice", "water"]), values)
            | values,
            "state": st.sampled_from(["online", "offline", "sleeping"]) | values,
            "session": st.integers() | values,
            "clean": st.booleans() | values,
            "faults": st.lists(st.text(max_size=40), max_size=20) | values,
            "device": st.sampled_from(["utuado-pump-1-pump", "x"]) | values,
        },
    )
    bodies = fields.map(lambda d: json.dumps(d, allow_nan=True).encode("utf-8", "surrogatepass"))
    in_range = st.sampled_from(sorted(METRICS)).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.booleans() if METRICS[name][0] == "bool" else st.floats(METRICS[name][1], METRICS[name][2]),
        )
    )
    valid = st.builds(
        lambda seq, at, metrics: encode(Telemetry(seq, at, dict(metrics))),
        st.integers(0, 2**53 - 1),
        st.datetimes(datetime(2020, 1, 1), datetime(2026, 11, 26), timezones=st.just(UTC)),
        st.lists(in_range, min_size=1, max_size=6),
    )
    payloads = bodies | valid | st.binary(max_size=300)
    topics = st.sampled_from([TELEMETRY, STOCK, STATE]) | st.text(max_size=80)

    @hseed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(topic=topics, payload=payloads)
    def run(topic: str, payload: bytes) -> None:
        check(tally, topic, payload)

    run()


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="seeded mutations of valid messages")
    parser.add_argument("--hypothesis", type=int, default=10_000, help="Hypothesis examples on top")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    rng = random.Random(args.seed)
    tallies: dict[str, Tally] = {}
    started = time.perf_counter()
    next_log = started + 15
    for i, (family, topic, payload) in enumerate(random_inputs(rng, args.inputs)):
        check(tallies.setdefault(family, Tally()), topic, payload)
        if time.perf_counter() >= next_log:
            print(f"  {i + 1:,} of {args.inputs:,} mutated inputs", file=sys.stderr)
            next_log += 15
    if args.hypothesis:
        print(
            f"  {args.inputs:,} mutated inputs done; {args.hypothesis:,} Hypothesis examples", file=sys.stderr
        )
        try:
            hypothesis_inputs(tallies.setdefault("hypothesis", Tally()), args.hypothesis, args.seed)
        except Exception:  # the harness itself failed: say so, never report it as a clean run
            traceback.print_exc()
            return 2
    elapsed = time.perf_counter() - started
    total = Tally()
    for tally in tallies.values():
        total.inputs += tally.inputs
        total.ok += tally.ok
        total.reasons.update(tally.reasons)
        total.crashes.update(tally.crashes)
        total.examples += tally.examples
    print(f"{'family':16} {'inputs':>9} {'parsed ok':>10} {'rejected':>9} {'crashes':>8}")
    for name, t in [*tallies.items(), ("total", total)]:
        print(f"{name:16} {t.inputs:9,} {t.ok:10,} {sum(t.reasons.values()):9,} {sum(t.crashes.values()):8,}")
    print(f"\nrejected by reason ({len(total.reasons)} of {len(REASONS)} reasons seen):")
    for reason, n in total.reasons.most_common():
        print(f"  {reason:22} {n:9,}")
    if total.crashes:
        print("\ncrashes:")
        for what, n in total.crashes.most_common():
            print(f"  {what:40} {n:9,}")
        for example in total.examples[:10]:
            print(f"  e.g. {example}")
    print(f"\n{total.inputs:,} inputs in {elapsed:.1f} s")
    result = {
        "inputs": total.inputs,
        "parsed_ok": total.ok,
        "rejected": sum(total.reasons.values()),
        "crashes": sum(total.crashes.values()),
        "reasons_seen": len(total.reasons),
        "rejected_by_reason": dict(total.reasons.most_common()),
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(result))
    return 1 if total.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
