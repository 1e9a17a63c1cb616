"""Alerts: messages built from events, channels that deliver them, and the dispatcher in between.

    from transitwatch.alerts import Dispatcher
    channels = {"ops": {"type": "webhook", "url": "https://hooks.example.net/tw", "secret": "s3cret"}}
    dispatcher = Dispatcher.from_config(store, channels, routes={"KP": ["ops"]}, base_url="https://tw.example.net")
    dispatcher.dispatch(events, now)  # every event known so far, at each call; the time is explicit

``build_dispatcher(watch_config)`` does the same from a watch.yml, and ``dispatcher.process`` is
the watcher's ``on_events`` callback.

See docs/alerts.md for the channel keys, the messages and how to verify a webhook's signature.
"""

from transitwatch.alerts.channels import (
    CHANNEL_TYPES,
    POLICY_SETTINGS,
    Channel,
    ChannelConfigError,
    ChannelError,
    EmailChannel,
    JsonLinesChannel,
    Setting,
    SlackChannel,
    SyslogChannel,
    WebhookChannel,
    make_channel,
    signature,
    verify_signature,
)
from transitwatch.alerts.dispatcher import (
    ChannelPolicy,
    DeliveryReport,
    Dispatcher,
    DispatcherSettings,
    build_dispatcher,
)
from transitwatch.alerts.messages import CLOSE, OPEN, SUMMARY, Alert, MessageContext, build_alert, phases

__all__ = [
    "CHANNEL_TYPES",
    "CLOSE",
    "OPEN",
    "POLICY_SETTINGS",
    "SUMMARY",
    "Alert",
    "Channel",
    "ChannelConfigError",
    "ChannelError",
    "ChannelPolicy",
    "DeliveryReport",
    "Dispatcher",
    "DispatcherSettings",
    "EmailChannel",
    "JsonLinesChannel",
    "MessageContext",
    "Setting",
    "SlackChannel",
    "SyslogChannel",
    "WebhookChannel",
    "build_alert",
    "build_dispatcher",
    "make_channel",
    "phases",
    "signature",
    "verify_signature",
]
