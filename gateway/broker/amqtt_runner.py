"""Run an amqtt broker from a JSON config until SIGTERM/SIGINT: the fallback when Mosquitto is absent.

Usage: ``python -m gateway.broker.amqtt_runner CONFIG.json``. Started by
``gateway.broker.embedded.EmbeddedBroker``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("gateway.amqtt_runner")


class _DropPortProbes(logging.Filter):
    """Hide amqtt's errors for connections that send nothing: readiness probes, not real faults."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record except the empty-connection complaints."""
        return "No data to decode MQTT packet fixed header" not in record.getMessage()


async def _serve(config: dict[str, Any]) -> None:
    """Start the broker, wait for a stop signal, then shut it down so clients see a clean close."""
    from amqtt.broker import Broker  # imported here, after warnings are silenced

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(config)
    await broker.start()
    log.info("amqtt broker listening on %s", config["listeners"]["default"]["bind"])
    await stop.wait()
    log.info("stopping amqtt broker")
    await broker.shutdown()
    log.info("amqtt broker stopped")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse the config path, silence amqtt's deprecation noise and serve."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gateway.broker.amqtt_runner CONFIG.json", file=sys.stderr)
        return 2
    # amqtt 0.12 warns about crypt/psutil deprecations that are irrelevant here and only clutter the log.
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("amqtt.broker").addFilter(_DropPortProbes())
    logging.getLogger("transitions").setLevel(logging.WARNING)
    config = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
