"""The app object uvicorn imports in each server process (settings from the environment)."""

from __future__ import annotations

from tracklane.bootstrap import create_app
from tracklane.settings import Settings

app = create_app(Settings())
