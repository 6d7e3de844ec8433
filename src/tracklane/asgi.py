"""The app object uvicorn imports in each server process (`tracklane.asgi:app`; settings from the environment).

An entry point, like `tracklane.cli`: it alone (with the command line and tests) may import the
composition root, which is why it lives beside it and not inside `tracklane.web`.

Body limits, rate limits and trusted proxies are the app's own and hold under any server. The head, body
and idle timeouts of connections live in the HTTP protocol `tracklane serve` gives uvicorn
(`tracklane.web.connections`); a bare `uvicorn tracklane.asgi:app` has none of them, and should be run with
`--no-proxy-headers` so that only `TRACKLANE_TRUSTED_PROXIES` decides whose `X-Forwarded-For` is believed.
"""

from __future__ import annotations

from tracklane.bootstrap import create_app
from tracklane.settings import Settings

app = create_app(Settings())
