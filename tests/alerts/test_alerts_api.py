"""GET /api/v1/alerts: what each sink still has to take, for auditors and admins only."""

from __future__ import annotations

import numpy as np
import pytest
from alerts.alerts_support import SECRET
from api.api_support import add_role_users, signed_in
from argon2 import PasswordHasher
from governance.governance_support import make_event

from safecity.alerts.dispatcher import AlertDispatcher
from safecity.api.app import create_app
from safecity.api.context import ApiContext
from safecity.config import SafecityConfig
from safecity.store import open_store
from safecity.store.sink import StoreSink


def test_pending_per_sink_for_auditors_not_viewers(tmp_path, receiver, monkeypatch):
    monkeypatch.setattr(
        "safecity.access.users._hasher", PasswordHasher(time_cost=1, memory_cost=1024)
    )
    config = SafecityConfig.model_validate(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'safecity.db'}", "media_dir": tmp_path / "m"},
            "alerts": {
                "webhooks": [
                    {"name": "hook", "url": receiver.url, "secret": SECRET},
                    {"name": "idle", "url": receiver.url, "secret": SECRET},
                ]
            },
        }
    )
    store = open_store(config.store.url, config.store.media_dir)
    add_role_users(store)
    dispatcher = AlertDispatcher(store, config.alerts)
    dispatcher.deliver(dispatcher.sinks[0])  # "hook" has a cursor; "idle" never ran
    receiver.status = 500
    StoreSink(store).write_many(
        make_event(np.zeros((8, 8, 3), np.uint8), track_id=i) for i in range(3)
    )
    with pytest.raises(Exception, match="HTTP 500"):
        dispatcher.deliver(dispatcher.sinks[0])
    app = create_app(ApiContext(config, store))

    body = signed_in(app, "ada").get("/api/v1/alerts").json()
    sinks = {s["sink"]: s for s in body["sinks"]}
    assert sinks["hook"]["pending"] == 3 and sinks["hook"]["failed"] == 1
    assert "HTTP 500" in sinks["hook"]["last_error"] and sinks["hook"]["started"]
    assert sinks["idle"]["started"] is False and sinks["idle"]["pending"] == 0
    assert signed_in(app, "aude").get("/api/v1/alerts").status_code == 200
    assert signed_in(app, "vic").get("/api/v1/alerts").status_code == 403
    store.close()
