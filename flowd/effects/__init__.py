"""Side effects that steps perform on the outside world.

`flowd.effects.http` is the one outbound HTTP client every step that calls out uses (webhook,
http_request and later ones): it enforces the private-network guard on the address actually
connected to, never follows redirects, caps response bodies and bounds every call with a timeout.
"""
