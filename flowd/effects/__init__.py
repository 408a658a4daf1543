"""Side effects that steps perform on the outside world.

`flowd.effects.base` holds what steps and the engine see: a `Protocol` per effect, the
`Effects` bundle, `EffectFailed` (the one failure every effect raises) and `RecordingEffects`
(performs nothing, records everything: the dry run's). The implementations live beside it:
`flowd.effects.http` is the one outbound HTTP client every step that calls out uses (webhook,
http_request and later ones): it enforces the private-network guard on the address actually
connected to, never follows redirects, caps response bodies and bounds every call with a timeout;
`flowd.effects.signing` signs webhook deliveries (Standard Webhooks); `flowd.effects.mail`
builds RFC 5322 messages and hands them to a mail provider (the outbox, or SMTP on reused
connections). `flowd.effects.sms` (outbox, Twilio), `flowd.effects.push` (outbox, FCM, with
`flowd.effects.google_oauth` for its access tokens) and `flowd.effects.slack` (incoming
webhooks) are providers of the same interface (`MessageProvider`), handed the messages of
`flowd.effects.outgoing`. `flowd.effects.ai_providers` speaks to language models (Ollama's
`/api/chat`, any OpenAI-compatible `/v1/chat/completions`) for the `Ai` effect of
`flowd.ai_service`. `flowd.effects.messages` is what the messaging steps ask of the email
effect (`flowd.mailer`) and of the other channels (`flowd.messenger`), which add suppression
and the message record around a provider.
"""
