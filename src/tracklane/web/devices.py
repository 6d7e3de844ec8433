"""User-agent parsing into a ClickDevice: ua-parser (rules and Rust matcher maintained upstream) for device,
system and browser; bots by the maintained `crawler-user-agents` pattern list, plus HTTP libraries, command-line
tools and headless or automated browsers, plus what ua-parser knows as spiders.

The patterns are prepared once at import: the literal ones (almost all) in a table keyed by their first three
characters, looked up at each position of the user agent; the few true regular expressions compiled one by one.
Each distinct user agent is judged once (a bounded LRU cache).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from crawleruseragents import CRAWLER_USER_AGENTS_DATA  # type: ignore[import-untyped]
from ua_parser import parse

from tracklane.domain.model import ClickDevice

_TABLETS = ("ipad", "tablet", "kindle", "nexus 7", "nexus 9", "sm-t")
_MOBILE_OS = ("ios", "android", "windows phone", "blackberry os", "kaios")

#: Clients that are no person's browser, beyond the crawler list (which covers curl, Wget, python-requests,
#: Go-http-client, okhttp, HeadlessChrome and many more): matched ignoring case.
EXTRA_BOT_PATTERNS: Final = (
    r"^java/",
    r"^curl",
    r"^wget",
    r"go-http-client",
    r"okhttp",
    r"python-(requests|urllib|httpx)",
    r"aiohttp",
    r"headlesschrome",
    r"phantomjs",
    r"puppeteer",
    r"playwright",
    r"selenium",
    r"electron/.*\bheadless",
    r"^node-fetch|^undici|^axios/",
    r"^(libwww-perl|lwp-|guzzlehttp|rest-client|ruby|dart:io|reqwest|hackney|httpclient)",
    r"^(mozilla/5\.0)?\s*$",
)

_META = re.compile(r"[.^$*+?{}\[\]|()\\]")
_KEY = 3


def _literal(pattern: str) -> str | None:
    """The text a pattern matches when it is a plain string (escaped punctuation allowed), else None."""
    if _META.search(re.sub(r"\\[^A-Za-z0-9]", "", pattern)):
        return None
    return re.sub(r"\\([^A-Za-z0-9])", r"\1", pattern)


def _prepare() -> tuple[dict[str, tuple[str, ...]], tuple[str, ...], tuple[re.Pattern[str], ...]]:
    table: dict[str, list[str]] = {}
    short: list[str] = []
    expressions: list[re.Pattern[str]] = [re.compile(p, re.IGNORECASE) for p in EXTRA_BOT_PATTERNS]
    for entry in CRAWLER_USER_AGENTS_DATA:
        pattern = str(entry["pattern"])
        literal = _literal(pattern)
        if literal is None:
            expressions.append(re.compile(pattern))
        elif len(literal) < _KEY:
            short.append(literal)
        else:
            table.setdefault(literal[:_KEY], []).append(literal)
    return {k: tuple(v) for k, v in table.items()}, tuple(short), tuple(expressions)


_LITERALS, _SHORT, _EXPRESSIONS = _prepare()


@lru_cache(maxsize=8192)
def is_bot(user_agent: str) -> bool:
    """Whether the user agent is a crawler, an HTTP library or tool, or a headless or automated browser."""
    for start in range(len(user_agent) - _KEY + 1):
        candidates = _LITERALS.get(user_agent[start : start + _KEY])
        if candidates and any(user_agent.startswith(c, start) for c in candidates):
            return True
    if any(s in user_agent for s in _SHORT):
        return True
    return any(e.search(user_agent) for e in _EXPRESSIONS)


@lru_cache(maxsize=4096)
def detect_device(user_agent: str | None) -> ClickDevice:
    """Bots (see `is_bot`, and ua-parser's spiders) are device type `bot`; the rest is mobile, tablet or
    desktop. A missing user agent is unknown (and not a browser: a bot)."""
    if not user_agent or not user_agent.strip():
        return ClickDevice("unknown", None, None, is_bot=True)
    text = user_agent[:1024]
    result = parse(text)
    device = (result.device.family if result.device else "") or ""
    os_family = result.os.family if result.os else None
    browser = result.user_agent.family if result.user_agent else None
    if device == "Spider" or is_bot(text):
        return ClickDevice("bot", os_family, browser, is_bot=True)
    lowered = (device + " " + text).lower()
    if any(marker in lowered for marker in _TABLETS) or (os_family == "Android" and "mobile" not in text.lower()):
        kind = "tablet"
    elif os_family and os_family.lower() in _MOBILE_OS:
        kind = "mobile"
    elif os_family or browser:
        kind = "desktop"
    else:
        kind = "unknown"
    return ClickDevice(kind, os_family, browser, is_bot=False)
