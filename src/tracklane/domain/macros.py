"""The macro catalogue shared by destination URLs and partner postbacks, and its expansion.

A macro is `{name}` with a name from `CATALOGUE`. Macros may stand only in the path and the query of
a URL; each value is percent-encoded as it is put in, so a value can never change the URL's shape.
An unknown macro is refused when the template is saved (`validate_template`), so expansion never
meets one. A macro with no value expands to the empty string.

A partner postback may use only the macros a partner may see (`partner_macros`): never what the
advertiser pays or sends (`revenue`, `advertiser_id`, `adv1`..`adv5`), and the sale `amount` only on a
postback bound to an offer that shares it (`Offer.share_amount_with_partners`).

Destination and fallback URLs may also use `{click_token}` (`DESTINATION_MACROS`): the click's token, which
lets the browser SDK on the landing page convert that click through the pixel. It exists only at click time,
so no other template may name it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import quote, urlsplit

from tracklane.domain.errors import InvalidParameter

CATALOGUE: frozenset[str] = frozenset(
    {
        "transaction_id", "offer_id", "partner_id", "advertiser_id",
        "sub1", "sub2", "sub3", "sub4", "sub5", "source_id",
        "event_id", "event_name", "conversion_id", "payout", "revenue", "amount", "currency",
        "order_id", "status", "adv1", "adv2", "adv3", "adv4", "adv5", "timestamp",
    }
)  # fmt: skip

#: The click token (`tracklane.domain.postback.click_token`): a destination or fallback URL macro only.
CLICK_TOKEN = "click_token"
#: What a destination or fallback URL may name: the catalogue and the click token.
DESTINATION_MACROS: frozenset[str] = CATALOGUE | {CLICK_TOKEN}

#: Macros whose values a partner never sees: what the advertiser pays, who it is, what it sends along.
PARTNER_HIDDEN: frozenset[str] = frozenset({"revenue", "advertiser_id", "adv1", "adv2", "adv3", "adv4", "adv5"})
#: The sale amount: seen by partners only where the offer shares it.
AMOUNT = "amount"

_MACRO = re.compile(r"\{([^{}]*)\}")
MAX_URL_LENGTH = 4096


def validate_template(template: object, field: str, macros: frozenset[str] = CATALOGUE) -> str:
    """Check a URL template: absolute http(s), macros of `macros` only, macros only in path and query."""
    if not isinstance(template, str) or not template.strip():
        raise InvalidParameter(field, "must be a non-empty URL")
    template = template.strip()
    if len(template) > MAX_URL_LENGTH:
        raise InvalidParameter(field, f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in template):
        raise InvalidParameter(field, "must not contain whitespace")
    unknown = sorted({name for name in _MACRO.findall(template) if name not in macros})
    if unknown:
        raise InvalidParameter(field, "unknown macro " + ", ".join("{" + n + "}" for n in unknown))
    try:
        parts = urlsplit(template)
    except ValueError as error:  # a bracketed host that is no IPv6 address, an unclosed bracket
        raise InvalidParameter(field, f"is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParameter(field, "must be an absolute http:// or https:// URL")
    if _MACRO.search(parts.netloc) or _MACRO.search(parts.fragment):
        raise InvalidParameter(field, "macros are allowed only in the path and the query")
    return template


def partner_macros(amount_shared: bool) -> frozenset[str]:
    """The macros a partner may see: the catalogue without `PARTNER_HIDDEN`, and `amount` only if shared."""
    visible = CATALOGUE - PARTNER_HIDDEN
    return visible if amount_shared else visible - {AMOUNT}


def macros_in(template: str) -> frozenset[str]:
    return frozenset(_MACRO.findall(template))


def refuse_partner_hidden(template: str, field: str) -> None:
    """A partner template naming a macro no partner may see is refused, naming those macros."""
    hidden = sorted(macros_in(template) & PARTNER_HIDDEN)
    if hidden:
        raise InvalidParameter(field, f"{_names(hidden)} may not be used: a partner never sees revenue, "
                                      "the advertiser id or adv1..adv5")  # fmt: skip


def refuse_unshared_amount(template: str, field: str, why: str) -> None:
    """A partner template naming `{amount}` where the sale amount is not shared is refused, saying `why`."""
    if AMOUNT in macros_in(template):
        raise InvalidParameter(field, f"{_names([AMOUNT])} may not be used: {why}")


def _names(names: list[str]) -> str:
    return ", ".join("{" + name + "}" for name in names)


def expand(template: str, values: Mapping[str, str | None]) -> str:
    """Expand every macro of a validated template, percent-encoding each value."""
    return "".join(
        text if name is None else quote(value, safe="") if (value := values.get(name)) else ""
        for text, name in _pieces(template)
    )


#: A piece of a template: literal text (name None), or the destination macro `name`.
_Piece = tuple[str, str | None]


@lru_cache(maxsize=4096)
def _pieces(template: str) -> tuple[_Piece, ...]:
    """The template cut into literal text and macros, once per template (a click expands one of a few
    destinations). Macros are those of the path and the query: the host and the fragment are kept as
    written, and so is a name that is not a destination macro."""
    parts = urlsplit(template)
    pieces: list[_Piece] = [(f"{parts.scheme}://{parts.netloc}", None)]
    pieces += _macro_pieces(parts.path)
    if parts.query or template.find("?") != -1:
        pieces += [("?", None), *_macro_pieces(parts.query)]
    if parts.fragment:
        pieces.append(("#" + parts.fragment, None))
    return tuple(pieces)


def _macro_pieces(text: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    end = 0
    for match in _MACRO.finditer(text):
        pieces.append((text[end : match.start()], None))
        name = match.group(1)
        pieces.append(("", name) if name in DESTINATION_MACROS else (match.group(0), None))
        end = match.end()
    pieces.append((text[end:], None))
    return pieces
