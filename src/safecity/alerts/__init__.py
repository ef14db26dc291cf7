"""Alerts: object events, review requests and confirmed matches, told to MQTT and webhooks.

:mod:`~safecity.alerts.payloads` says what a message holds (and withholds),
:mod:`~safecity.alerts.streams` what the database has for a sink past its cursor,
:mod:`~safecity.alerts.sinks` how a broker or endpoint acknowledges,
:mod:`~safecity.alerts.dispatcher` the at-least-once loop, and
:mod:`~safecity.alerts.status` what is pending per sink.
"""
