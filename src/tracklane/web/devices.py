"""User-agent parsing (ua-parser, whose rules and Rust matcher are maintained upstream) into a ClickDevice."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

from tracklane.domain.model import ClickDevice

_TABLETS = ("ipad", "tablet", "kindle", "nexus 7", "nexus 9", "sm-t")
_MOBILE_OS = ("ios", "android", "windows phone", "blackberry os", "kaios")


@lru_cache(maxsize=4096)
def detect_device(user_agent: str | None) -> ClickDevice:
    """Bots are the crawlers ua-parser knows as spiders; the rest is mobile, tablet or desktop."""
    if not user_agent:
        return ClickDevice()
    result = parse(user_agent[:1024])
    device = (result.device.family if result.device else "") or ""
    os_family = result.os.family if result.os else None
    browser = result.user_agent.family if result.user_agent else None
    if device == "Spider":
        return ClickDevice("bot", os_family, browser, is_bot=True)
    lowered = (device + " " + user_agent).lower()
    if any(marker in lowered for marker in _TABLETS) or (os_family == "Android" and "mobile" not in user_agent.lower()):
        kind = "tablet"
    elif os_family and os_family.lower() in _MOBILE_OS:
        kind = "mobile"
    elif os_family or browser:
        kind = "desktop"
    else:
        kind = "unknown"
    return ClickDevice(kind, os_family, browser, is_bot=False)
