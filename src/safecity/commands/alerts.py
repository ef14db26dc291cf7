"""``safecity alerts test SINK`` and ``safecity alerts status``: is a sink reachable, what waits."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from safecity.commands.common import FitTable, out, short_time, state
from safecity.errors import ConfigError

app = typer.Typer(help="Alert sinks (MQTT brokers, webhooks): test one, see what is pending.")


@app.command("test")
def test_cmd(sink: Annotated[str, typer.Argument(help="the sink's name in the config")]) -> None:
    """Send a test message and say whether the sink acknowledged it (exit 2 if not)."""
    from safecity.alerts.payloads import probe_message
    from safecity.alerts.sinks import MqttSink, WebhookSink

    alerts = state.config().alerts
    mqtt = {s.name: s for s in alerts.mqtt}
    hooks = {s.name: s for s in alerts.webhooks}
    names = sorted([*mqtt, *hooks])
    if sink not in mqtt and sink not in hooks:
        known = ", ".join(names) if names else "none are configured (alerts.mqtt, alerts.webhooks)"
        raise ConfigError(f"no alert sink is named {sink!r}; configured: {known}")
    nonce = uuid.uuid4().hex
    message = probe_message(sink, datetime.now(UTC), nonce)
    if sink in mqtt:
        config = mqtt[sink]
        target = MqttSink(config, f"safecity-test-{nonce[:8]}", announce=False)
        where = f"the MQTT broker {config.host}:{config.port} ({target.topic(message.topic)})"
        ack = "PUBACK" if config.qos == 1 else "PUBCOMP" if config.qos == 2 else None
    else:
        target = WebhookSink(hooks[sink])
        where, ack = hooks[sink].url, "2xx"
    started = time.monotonic()
    try:
        target.send([message], timeout=10.0)
    finally:
        target.close()
    took = (time.monotonic() - started) * 1000
    if ack is None:
        out.print(f"{sink}: sent to {where} with QoS 0, which is never acknowledged")
        return
    out.print(f"{sink}: {where} acknowledged the test message ({ack}) in {took:.0f} ms")


@app.command("status")
def status_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per sink: alerts pending, sent, failed attempts, last sent, last error."""
    from safecity.alerts.status import sink_status

    config = state.config()
    rows = sink_status(state.store(), config)
    if as_json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        out.print("no alert sinks are configured (alerts.mqtt, alerts.webhooks)")
        return
    table = [
        [
            r["sink"],
            r["kind"],
            str(r["pending"]) if r["started"] else "not started",
            str(r["sent"]),
            str(r["failed"]),
            short_time(r["last_sent_at"]),
            r["last_error"],
        ]
        for r in rows
    ]
    columns = ["sink", "kind", "pending", "sent", "failed", "last sent (UTC)", "last error"]
    out.print(FitTable(columns, table, wrap=("last error",), title="alert sinks"))
