"""Ingestion fed raw (topic, payload) pairs, no broker: readings, stock ledger, device state, dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.contract.payloads import StateMessage, StockReport, Telemetry, encode
from gateway.ingest.messages import Ingestor, RawMessage
from gateway.store.db import make_session_factory
from gateway.store.models import DeadLetter, Device, DeviceStateChange, Reading, Stock, StockLedgerEntry
from gateway.store.region import load_region
from tests.conftest import tiny_region_data

NOW = datetime.now(UTC).replace(microsecond=0)
PUMP = "rhizome/v1/utuado/pump-1/utuado-pump-1-pump"
HUB = "rhizome/v1/utuado/hub/utuado-hub-stock"


def feed(engine: Engine, ingestor: Ingestor, *messages: tuple[str, bytes]):  # type: ignore[no-untyped-def]
    with make_session_factory(engine).begin() as session:
        result = ingestor.process(session, [RawMessage(t, p, NOW) for t, p in messages])
        ingestor.flush_activity(session)  # normally every few seconds
        return result


def telemetry(seq: int, **metrics: float | bool) -> bytes:
    return encode(Telemetry(seq, NOW - timedelta(seconds=1), metrics or {"flow_lpm": 40.0}))


def stock(seq: int, **levels: float) -> bytes:
    return encode(StockReport(seq, NOW - timedelta(seconds=1), levels))


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_readings_are_stored_once_even_when_redelivered(ingest_store: tuple[Engine, Ingestor]) -> None:
    engine, ingestor = ingest_store
    first = feed(engine, ingestor, (f"{PUMP}/telemetry", telemetry(1)), (f"{PUMP}/telemetry", telemetry(2)))
    again = feed(engine, ingestor, (f"{PUMP}/telemetry", telemetry(2)))
    assert (first.stored, again.stored, again.duplicates) == (2, 0, 1)
    with Session(engine) as session:
        assert count(session, Reading) == 2
        device = session.scalars(select(Device).where(Device.slug == "utuado-pump-1-pump")).one()
        assert (device.state, device.last_seq) == ("online", 2)


def test_stock_report_updates_stock_and_appends_to_the_ledger(ingest_store: tuple[Engine, Ingestor]) -> None:
    engine, ingestor = ingest_store
    feed(engine, ingestor, (f"{HUB}/stock", stock(5, water=650, rice=200)))
    feed(engine, ingestor, (f"{HUB}/stock", stock(4, water=999)))  # late store-and-forward report
    with Session(engine) as session:
        rows = session.execute(
            text(
                "SELECT g.slug, s.quantity FROM stock s JOIN goods g ON g.id = s.good_id "
                "JOIN sites t ON t.id = s.site_id WHERE t.slug = 'hub' "
                "AND t.community_id = (SELECT id FROM communities WHERE slug='utuado')"
            )
        )
        levels = {slug: quantity for slug, quantity in rows}
        assert levels == {"water": 650, "rice": 200}
        sensor = session.scalars(select(StockLedgerEntry).where(StockLedgerEntry.source == "sensor")).all()
        assert [(e.delta, e.quantity_after, e.seq) for e in sensor] == [
            (150, 650, 5)
        ]  # rice unchanged: no entry


def test_the_ledger_is_append_only_in_the_database(ingest_store: tuple[Engine, Ingestor]) -> None:
    engine, _ = ingest_store
    for statement in ("UPDATE stock_ledger SET delta = 0", "DELETE FROM stock_ledger"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


def test_negative_stock_is_refused_by_the_database(ingest_store: tuple[Engine, Ingestor]) -> None:
    engine, _ = ingest_store
    with pytest.raises(DBAPIError), Session(engine) as session, session.begin():
        session.scalars(select(Stock)).first().quantity = -1  # type: ignore[union-attr]


def test_birth_and_will_are_paired_by_session(ingest_store: tuple[Engine, Ingestor]) -> None:
    engine, ingestor = ingest_store
    state = f"{PUMP}/state"
    feed(engine, ingestor, (state, encode(StateMessage("online", 2))))
    feed(engine, ingestor, (state, encode(StateMessage("offline", 1))))  # a late will of session 1: ignored
    with Session(engine) as session:
        assert (
            session.scalars(select(Device.state).where(Device.slug == "utuado-pump-1-pump")).one() == "online"
        )
    feed(engine, ingestor, (state, encode(StateMessage("offline", 2))))
    with Session(engine) as session:
        assert (
            session.scalars(select(Device.state).where(Device.slug == "utuado-pump-1-pump")).one()
            == "offline"
        )
        reasons = session.scalars(select(DeviceStateChange.reason).order_by(DeviceStateChange.id)).all()
        assert reasons == ["birth", "last will"]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{PUMP}/telemetry", b"{", "not_json"),
        ("rhizome/v1/utuado/pump-1/nobody/telemetry", telemetry(1), "unknown_device"),
        ("rhizome/v1/jayuya/hub/utuado-pump-1-pump/telemetry", telemetry(1), "device_topic_mismatch"),
        (f"{HUB}/stock", stock(1, flour=3), "unknown_good"),
        ("garbage", b"\x00\x01", "topic_invalid"),
    ],
)
def test_bad_messages_are_dead_lettered_byte_for_byte(
    ingest_store: tuple[Engine, Ingestor], topic: str, payload: bytes, reason: str
) -> None:
    engine, ingestor = ingest_store
    result = feed(engine, ingestor, (topic, payload), (f"{PUMP}/telemetry", telemetry(9)))
    assert result.dead_letters == {reason: 1}
    assert result.stored == 1  # the good message next to it is kept
    with Session(engine) as session:
        letter = session.scalars(select(DeadLetter)).one()
        assert (letter.topic, letter.payload, letter.reason) == (topic, payload, reason)
        assert letter.detail


def test_a_device_provisioned_after_start_is_found(ingest_store: tuple[Engine, Ingestor]) -> None:
    engine, ingestor = ingest_store
    data = tiny_region_data()
    data["communities"][1]["sites"][0]["devices"].append(  # type: ignore[index]
        {"slug": "jayuya-hub-cold", "kind": "cold_room", "interval_s": 60}
    )
    with make_session_factory(engine).begin() as session:
        load_region(session, data)
    body = json.dumps(
        {"v": 1, "seq": 1, "ts": (NOW - timedelta(seconds=1)).isoformat(), "metrics": {"temperature_c": 4.0}}
    ).encode()
    assert feed(engine, ingestor, ("rhizome/v1/jayuya/hub/jayuya-hub-cold/telemetry", body)).stored == 1


def test_every_kind_of_bad_message_is_dead_lettered_and_good_traffic_between_them_is_stored(
    ingest_store: tuple[Engine, Ingestor],
) -> None:
    from tests.test_protocol import BAD
    from tests.test_protocol import NOW as PROTOCOL_NOW

    engine, ingestor = ingest_store
    good_ts = PROTOCOL_NOW - timedelta(seconds=30)
    reading = encode(Telemetry(1, good_ts, {"flow_lpm": 3.0}))
    cases = [
        *BAD,
        ("rhizome/v1/utuado/pump-1/nobody/telemetry", reading, "unknown_device"),
        ("rhizome/v1/jayuya/hub/utuado-pump-1-pump/telemetry", reading, "device_topic_mismatch"),
        (f"{HUB}/stock", encode(StockReport(1, good_ts, {"flour": 3})), "unknown_good"),
    ]
    assert len({reason for *_, reason in cases}) >= 20 and len(cases) >= 50
    batch = []
    for seq, (topic, payload, _reason) in enumerate(cases, start=1):
        batch.append(RawMessage(topic, payload, PROTOCOL_NOW))
        good = encode(Telemetry(1000 + seq, good_ts, {"flow_lpm": 12.0}))
        batch.append(RawMessage(f"{PUMP}/telemetry", good, PROTOCOL_NOW))
    with make_session_factory(engine).begin() as session:
        result = ingestor.process(session, batch)
    assert result.stored == len(cases)
    with Session(engine) as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert [(d.topic, d.payload, d.reason) for d in letters] == [tuple(c) for c in cases]


def test_details_quoting_nul_or_lone_surrogates_are_stored_escaped(
    ingest_store: tuple[Engine, Ingestor],
) -> None:
    engine, ingestor = ingest_store
    cases = [
        b'{"v":1,"seq":1,"ts":"2026-01-01T00:00:00Z","metrics":{"\\ud800":1}}',  # unknown_metric names it
        b'{"v":1,"seq":1,"ts":"2026-01-01T00:00:00Z","metrics":{"flow_lpm":1},"\\u0000":2}',  # field_unknown
    ]
    result = feed(engine, ingestor, *[(f"{PUMP}/telemetry", raw) for raw in cases])
    assert result.dead_letters == {"unknown_metric": 1, "field_unknown": 1}
    with Session(engine) as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert [(d.payload, d.detail) for d in letters] == [(cases[0], "\\ud800"), (cases[1], "\\x00")]


def test_a_validator_bug_dead_letters_the_message_instead_of_crashing(
    ingest_store: tuple[Engine, Ingestor], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.ingest.messages

    def broken(topic: str, payload: bytes, *, now: datetime | None = None) -> None:
        raise OverflowError("date value out of range")

    engine, ingestor = ingest_store
    monkeypatch.setattr(gateway.ingest.messages, "parse_message", broken)
    result = feed(engine, ingestor, (f"{PUMP}/telemetry", telemetry(1)))
    assert result.dead_letters == {"parser_error": 1}
    with Session(engine) as session:
        letter = session.scalars(select(DeadLetter)).one()
    assert (letter.payload, letter.detail) == (telemetry(1), "OverflowError: date value out of range")
