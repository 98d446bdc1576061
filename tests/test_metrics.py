"""The gateway's /metrics: prometheus_client's exposition of every metric it always had plus build info,
readable by Prometheus's own parser, served at the address the operator chose (not only 127.0.0.1)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from gateway.ingest.metrics import BATCH_BUCKETS, GatewayMetrics, rhizome_version, serve_metrics
from gateway.process.settings import Settings, from_env
from gateway.store.db import make_session_factory
from tests.scrape import families, parse, scrape


def busy() -> GatewayMetrics:
    m = GatewayMetrics(received=7, stored=5, duplicates=1, incidents=2)
    m.dead_letters.update({"not_json": 2, 'we"ird\\reason\n': 1})  # escaped by the exposition, not by us
    for seconds in (0.003, 0.04, 0.04, 9.0):
        m.observe_batch(seconds)
    return m


def test_the_exposition_parses_and_keeps_every_metric_and_its_meaning(sqlite_engine: Engine) -> None:
    text = busy().render(make_session_factory(sqlite_engine))
    samples = parse(text)
    assert samples["rhizome_messages_received_total"] == {(): 7}
    assert samples["rhizome_readings_stored_total"] == {(): 5}
    assert samples["rhizome_duplicates_total"] == {(): 1}
    assert samples["rhizome_incidents_total"] == {(): 2}
    assert samples["rhizome_dead_letters_total"] == {
        (("reason", "not_json"),): 2,
        (("reason", 'we"ird\\reason\n'),): 1,
    }
    buckets = {labels[0][1]: n for labels, n in samples["rhizome_batch_seconds_bucket"].items()}
    assert list(buckets) == [repr(b) for b in BATCH_BUCKETS] + ["+Inf"]  # the same bounds as before
    assert (buckets["0.005"], buckets["0.05"], buckets["5.0"], buckets["+Inf"]) == (1, 3, 3, 4)  # cumulative
    assert samples["rhizome_batch_seconds_count"] == {(): 4}
    assert samples["rhizome_batch_seconds_sum"][()] == pytest.approx(9.083)
    assert samples["rhizome_outbox_backlog"] == {(): 0}  # read from the (empty) store
    assert samples["rhizome_build_info"] == {(("version", rhizome_version()),): 1}
    assert rhizome_version() not in ("", "unknown")  # installed with `pip install -e .`
    assert families(text)["rhizome_dead_letters"] == "counter"


def test_without_a_store_the_counters_are_still_served() -> None:
    samples = parse(busy().render(None))
    assert "rhizome_outbox_backlog" not in samples and samples["rhizome_readings_stored_total"] == {(): 5}


def test_metrics_are_served_at_the_configured_address(sqlite_engine: Engine) -> None:
    server, thread = serve_metrics(busy(), make_session_factory(sqlite_engine), "127.0.0.2", 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.2"
        assert parse(scrape("127.0.0.2", port))["rhizome_readings_stored_total"] == {(): 5}
        with pytest.raises(OSError):  # bound to that address only
            scrape("127.0.0.1", port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_metrics_address_comes_from_the_environment_and_defaults_to_loopback() -> None:
    assert Settings().metrics_host == "127.0.0.1"
    assert from_env({"RHIZOME_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"
