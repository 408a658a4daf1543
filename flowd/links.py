"""The links flowd puts in messages, and the tokens in them: unsubscribe (per contact and
channel), approval decisions (per approval and approver), the open pixel and click redirects
(per message and link).

Every token is a MAC under the server's `links` key (kept in the database, so links stay valid
across restarts): it cannot be forged, and it cannot be enumerated (192 bits for unsubscribe
tokens, 256 for approvals, 128 for tracking). An unsubscribe token reveals nothing (it is looked up by its hash);
a tracking token names its message and link, and is checked by recomputing its MAC in constant
time — so a click can only ever lead to a URL that was in that very message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Callable

_UNSUBSCRIBE_BYTES = 24
_TRACKING_BYTES = 16
_APPROVAL_BYTES = 32
MAX_TRACKED_LINKS = 500   # a message's links beyond this are left as they are
# href="http…" / href='http…' in an HTML part: the links a click may be counted on.
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(https?://[^"'\s<>]{1,4096})\2""", re.IGNORECASE)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(key: bytes, *parts: str, size: int) -> str:
    return _b64(hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).digest()[:size])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def unsubscribe_token(key: bytes, project_id: str, contact_id: str, channel: str) -> str:
    """The same for every message to this contact on this channel (so the store keeps one
    row per contact and channel, by the token's hash)."""
    return _mac(key, "unsubscribe", project_id, contact_id, channel, size=_UNSUBSCRIBE_BYTES)


def approval_token(key: bytes, approval_id: str, approver: str | None) -> str:
    """256 bits naming one approval and approver (None: the link in the step's output). The
    same each time, so a step tried again mails the links its first attempt may have sent;
    looked up by its hash, like an unsubscribe token."""
    return _mac(key, "approval", approval_id, approver or "", size=_APPROVAL_BYTES)


def open_token(key: bytes, message_id: str) -> str:
    return f"{message_id}.{_mac(key, 'open', message_id, size=_TRACKING_BYTES)}"


def click_token(key: bytes, message_id: str, index: int) -> str:
    return f"{message_id}.{index}.{_mac(key, 'click', message_id, str(index), size=_TRACKING_BYTES)}"


def read_open_token(key: bytes, token: str) -> str | None:
    """The message id an open token names, or None when it is not one this server made."""
    message_id, _, mac = token.rpartition(".")
    if not message_id or "." in message_id:
        return None
    expected = _mac(key, "open", message_id, size=_TRACKING_BYTES)
    return message_id if hmac.compare_digest(mac, expected) else None


def read_click_token(key: bytes, token: str) -> tuple[str, int] | None:
    """(message id, link index) of a click token, or None when it is not one this server
    made."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 6 or (
            parts[1] != str(int(parts[1]))):   # one spelling per link: no leading zeros
        return None
    message_id, index, mac = parts[0], int(parts[1]), parts[2]
    expected = _mac(key, "click", message_id, str(index), size=_TRACKING_BYTES)
    return (message_id, index) if hmac.compare_digest(mac, expected) else None


def track_links(html: str, click_url: Callable[[int], str]) -> tuple[str, list[str]]:
    """Every http(s) link of `html` rewritten to its click URL; returns the new html and the
    original URLs, in order (a link's index in that list is in its token)."""
    links: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        if len(links) >= MAX_TRACKED_LINKS:
            return match.group(0)
        links.append(_unescape_amp(match.group(3)))
        return f"{match.group(1)}{match.group(2)}{click_url(len(links) - 1)}{match.group(2)}"

    return _HREF.sub(rewrite, html), links


def add_open_pixel(html: str, pixel_url: str) -> str:
    pixel = (f'<img src="{pixel_url}" width="1" height="1" alt="" '
             'style="display:block;border:0;width:1px;height:1px" />')
    closing = html.lower().rfind("</body>")
    if closing < 0:
        return html + pixel
    return html[:closing] + pixel + html[closing:]


def _unescape_amp(url: str) -> str:
    # In HTML an attribute's & is written &amp;; the redirect goes to the URL it stands for.
    return url.replace("&amp;", "&")
