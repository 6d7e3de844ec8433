"""The app object uvicorn imports in each server process (`tracklane.asgi:app`; settings from the environment).

An entry point, like `tracklane.cli`: it alone (with the command line and tests) may import the
composition root, which is why it lives beside it and not inside `tracklane.web`.
"""

from __future__ import annotations

from tracklane.bootstrap import create_app
from tracklane.settings import Settings

app = create_app(Settings())
