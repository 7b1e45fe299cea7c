"""``{{ link('https://example.com/offer') }}`` in an SMS body (DESIGN A8): the template
function that renders a short tracking URL and remembers which code stands for which link,
so the request can tell the sender (``SmsRequest.links``). Pure.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from services.common.links import link_code, short_url


class TrackedLinks:
    """The ``link`` function of one SMS: the same SMS and link always give the same code."""

    def __init__(self, secret: bytes, idempotency_key: str, link_domain: str) -> None:
        self._secret = secret
        self._key = idempotency_key
        self._domain = link_domain
        self.codes: dict[str, str] = {}  # code -> original URL

    def __call__(self, url: object) -> str:
        target = str(url).strip()
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # Never a redirect to javascript:, data: or a relative path.
            raise ValueError("link() needs an absolute http(s) URL")
        code = link_code(self._secret, self._key, target)
        self.codes[code] = target
        return short_url(self._domain, code)
