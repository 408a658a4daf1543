"""The SMS, push and Slack channels of a server (or of a dry run): each provider made from its
settings — a missing or unusable setting is a `ConfigError` at start, not a failed send hours
later — and each wrapped in its `Messenger`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowd.channel_rules import PushRules, SlackRules, SmsRules
from flowd.clock import Clock
from flowd.config import Config, PushConfig, SlackConfig, SmsConfig
from flowd.effects.base import Http, MessageProvider
from flowd.effects.google_oauth import load_service_account
from flowd.effects.outgoing import RecordingProvider
from flowd.effects.push import FcmProvider, OutboxPushProvider
from flowd.effects.slack import SlackProvider
from flowd.effects.sms import OutboxSmsProvider, TwilioProvider
from flowd.errors import ConfigError
from flowd.ingest import Ingest
from flowd.messenger import Messenger
from flowd.store import Store


@dataclass
class Channels:
    sms: Messenger
    push: Messenger
    slack: Messenger

    async def start(self) -> None:
        for messenger in (self.sms, self.push, self.slack):
            await messenger.start()

    async def close(self) -> None:
        for messenger in (self.sms, self.push, self.slack):
            await messenger.close()

    def effects(self) -> dict[str, Any]:
        """The `Effects` fields they are."""
        return {"sms": self.sms, "push": self.push, "slack": self.slack}


def sms_provider(sms: SmsConfig) -> MessageProvider[Any]:
    if sms.provider == "outbox":
        return OutboxSmsProvider()
    try:
        return TwilioProvider(sms.account_sid, sms.auth_token, sender=sms.sender,
                              messaging_service_sid=sms.messaging_service_sid,
                              base_url=sms.base_url, timeout=sms.timeout_seconds)
    except ValueError as exc:
        raise ConfigError(f"[sms]: {exc}") from None


def push_provider(push: PushConfig, clock: Clock) -> MessageProvider[Any]:
    if push.provider == "outbox":
        return OutboxPushProvider()
    if not push.service_account_file:
        raise ConfigError("[push]: provider = \"fcm\" needs service_account_file (a Firebase "
                          "service-account JSON key file)")
    try:
        account = load_service_account(push.service_account_file)
        return FcmProvider(account, clock, base_url=push.base_url,
                           token_url=push.token_url or None, timeout=push.timeout_seconds)
    except ValueError as exc:
        raise ConfigError(f"[push]: {exc}") from None


def build_channels(config: Config, store: Store, clock: Clock, ingest: Ingest,
                   http: Http) -> Channels:
    """`http`: the guarded client, for the webhook URLs authors write in slack steps."""
    slack: SlackConfig = config.slack
    return Channels(
        sms=Messenger(store, clock, sms_provider(config.sms), SmsRules(ingest)),
        push=Messenger(store, clock, push_provider(config.push, clock), PushRules(ingest)),
        slack=Messenger(store, clock, SlackProvider(guarded=http, default_url=slack.webhook_url,
                                                    timeout=slack.timeout_seconds),
                        SlackRules(slack.webhook_url)))


def recording_channels(store: Store, clock: Clock, ingest: Ingest,
                       slack_webhook_url: str = "") -> Channels:
    """Channels that send nothing (the dry run's): every message is recorded, all accepted."""
    return Channels(
        sms=Messenger(store, clock, RecordingProvider(), SmsRules(ingest)),
        push=Messenger(store, clock, RecordingProvider(), PushRules(ingest)),
        slack=Messenger(store, clock, RecordingProvider(), SlackRules(slack_webhook_url)))
