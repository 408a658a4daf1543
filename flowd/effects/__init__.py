"""Side effects that steps perform on the outside world.

`flowd.effects.base` holds what steps and the engine see: a `Protocol` per effect, the
`Effects` bundle, `EffectFailed` (the one failure every effect raises) and `RecordingEffects`
(performs nothing, records everything: the dry run's). The implementations live beside it:
`flowd.effects.http` is the one outbound HTTP client every step that calls out uses (webhook,
http_request and later ones): it enforces the private-network guard on the address actually
connected to, never follows redirects, caps response bodies and bounds every call with a timeout;
`flowd.effects.signing` signs webhook deliveries (Standard Webhooks); `flowd.effects.mail`
builds RFC 5322 messages and hands them to a mail provider (the outbox, or SMTP on reused
connections). `flowd.effects.messages` is what the `send_email` step asks of the email effect
(`flowd.mailer`, which adds suppression, the message record and links around a provider).
"""
