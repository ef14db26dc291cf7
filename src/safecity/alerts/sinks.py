"""Where alerts go: an MQTT broker (paho-mqtt 2) or a signed HTTP(S) webhook.

A sink's :meth:`send` returns only what the far end *acknowledged*: MQTT QoS 1/2
messages once the broker's PUBACK/PUBCOMP came back (``wait_for_publish``), a
webhook message once the endpoint answered 2xx. The dispatcher moves its cursor
by that count and no further, so a message is never taken as delivered because
it was merely handed to a socket. (QoS 0 has no acknowledgement: it counts as
sent once written, and may be lost.)

On any failure an MQTT sink drops its connection and paho's queue with it: the
dispatcher sends again what was not acknowledged, rather than paho resending its
own copies on reconnect as well (fewer duplicates; receivers drop them by id).

Webhook signature (README "### Alerts"): headers ``X-Safecity-Id`` (the message
id), ``X-Safecity-Timestamp`` (unix seconds) and ``X-Safecity-Signature``
(``sha256=`` + hex ``HMAC-SHA256(secret, f"{timestamp}.{body}")``): a receiver
recomputes it, refuses an old timestamp and drops an id it has seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Protocol

from safecity.alerts.payloads import Message
from safecity.config import MqttSinkConfig, WebhookSinkConfig
from safecity.errors import SafecityError

log = logging.getLogger(__name__)

ID_HEADER = "X-Safecity-Id"
TIMESTAMP_HEADER = "X-Safecity-Timestamp"
SIGNATURE_HEADER = "X-Safecity-Signature"


class AlertSinkError(SafecityError):
    """A sink did not acknowledge; ``acked`` messages (a prefix of the batch) did arrive."""

    def __init__(self, reason: str, acked: int = 0) -> None:
        super().__init__(reason)
        self.acked = acked


class Sink(Protocol):
    name: str
    authorisations: list[int]

    def send(self, messages: list[Message], timeout: float) -> int: ...

    def close(self) -> None: ...


def signature(secret: str, timestamp: int, body: str) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``: what a receiver recomputes."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected alert is not an acknowledged one (and a POST must not become a GET)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


class WebhookSink:
    """JSON POST per message, signed; 2xx is the acknowledgement."""

    def __init__(self, config: WebhookSinkConfig) -> None:
        self.config = config
        self.name = config.name
        self.authorisations = list(config.authorisations)
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, messages: list[Message], timeout: float) -> int:
        """POST each in turn; stops (returning how many arrived) when ``timeout`` is spent."""
        deadline = time.monotonic() + timeout
        acked = 0
        for message in messages:
            if message.mqtt_only:
                acked += 1
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._post(message, min(left, self.config.timeout_s))
            except AlertSinkError as error:
                raise AlertSinkError(str(error), acked) from None
            acked += 1
        return acked

    def _post(self, message: Message, timeout: float) -> None:
        body = message.json()
        timestamp = int(time.time())
        request = urllib.request.Request(
            self.config.url,
            data=body.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "safecity-alerts",
                ID_HEADER: message.message_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature(self.config.secret, timestamp, body),
            },
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            reason = f"{self.config.url} answered HTTP {error.code} {error.reason}"
            raise AlertSinkError(reason) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise AlertSinkError(f"cannot POST to {self.config.url}: {reason}") from None
        if not 200 <= status < 300:
            raise AlertSinkError(f"{self.config.url} answered HTTP {status}")

    def close(self) -> None:
        pass


class MqttSink:
    """A connection to one broker; ``<prefix>/available`` is online while it lasts.

    The last will (``offline``, retained) tells subscribers when the connection
    drops without a goodbye; :meth:`close` says ``offline`` itself.
    """

    def __init__(self, config: MqttSinkConfig, client_id: str, *, announce: bool = True) -> None:
        """``announce=False`` (``safecity alerts test``): no ``available`` messages, no will."""
        self.config = config
        self.announce = announce
        self.name = config.name
        self.authorisations = list(config.authorisations)
        self.client_id = client_id
        self._client = None
        self._connected = threading.Event()
        self._refused = ""

    def topic(self, relative: str) -> str:
        return f"{self.config.topic_prefix.rstrip('/')}/{relative}"

    def _connect(self, timeout: float):  # -> paho Client
        import paho.mqtt.client as mqtt

        config = self.config
        where = f"MQTT broker {config.host}:{config.port}"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
        )
        client.connect_timeout = max(1.0, timeout)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            try:
                client.tls_set(
                    ca_certs=str(config.ca_file) if config.ca_file else None,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError) as error:
                raise AlertSinkError(f"{where}: cannot use the TLS settings: {error}") from None
        if self.announce:
            client.will_set(self.topic("available"), "offline", qos=1, retain=True)
        self._connected.clear()
        self._refused = ""

        def on_connect(_client, _userdata, _flags, reason_code, _properties) -> None:  # type: ignore[no-untyped-def]
            if reason_code.is_failure:
                self._refused = str(reason_code)
            self._connected.set()

        def on_disconnect(_client, _userdata, _flags, _reason_code, _properties) -> None:  # type: ignore[no-untyped-def]
            self._connected.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        try:
            client.connect(config.host, config.port, keepalive=30)
        except (OSError, ssl.SSLError) as error:
            raise AlertSinkError(f"cannot reach the {where}: {error.strerror or error}") from None
        client.loop_start()
        if not self._connected.wait(timeout) or self._refused:
            client.loop_stop()
            client.disconnect()
            reason = self._refused or f"no answer within {timeout:.0f} s"
            raise AlertSinkError(f"the {where} refused the connection: {reason}")
        if self.announce:
            online = client.publish(self.topic("available"), "online", qos=1, retain=True)
            online.wait_for_publish(timeout)
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.loop_stop()
            client.disconnect()

    def send(self, messages: list[Message], timeout: float) -> int:
        if self._client is None or not self._client.is_connected():
            self._drop()
            self._client = self._connect(timeout)
        client = self._client
        infos = [
            client.publish(self.topic(m.topic), m.json(), qos=self.config.qos, retain=m.retain)
            for m in messages
        ]
        deadline = time.monotonic() + timeout
        for acked, info in enumerate(infos):
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as error:
                self._drop()
                raise AlertSinkError(f"MQTT publish failed: {error}", acked) from None
            if not info.is_published():
                self._drop()
                raise AlertSinkError(
                    f"the MQTT broker {self.config.host}:{self.config.port} did not "
                    f"acknowledge within {timeout:.0f} s",
                    acked,
                )
        return len(infos)

    def close(self) -> None:
        """Say ``offline`` (retained) and disconnect."""
        client = self._client
        if client is not None and client.is_connected() and self.announce:
            with contextlib.suppress(RuntimeError, ValueError):
                offline = client.publish(self.topic("available"), "offline", qos=1, retain=True)
                offline.wait_for_publish(2.0)
        self._drop()


def open_sinks(config, client_id: str) -> list[Sink]:  # config: AlertsConfig
    """One sink per configured broker and webhook, none connected yet."""
    sinks: list[Sink] = [MqttSink(c, f"{client_id}-{c.name}") for c in config.mqtt]
    sinks += [WebhookSink(c) for c in config.webhooks]
    return sinks
