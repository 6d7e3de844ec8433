"""The attribution trace: the ordered list of decisions that explains a conversion's outcome.

Each step belongs to a side of the deal: `revenue` (what the advertiser owes), `payout` (what the partner
earns) or neither (a decision both may read: the click, the window, the status). A role's view of the trace
is built from the steps of its side and the common ones, so a step about payout never reaches an
advertiser. Steps stored before sides existed carry none: their side follows from the step's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Side(StrEnum):
    REVENUE = "revenue"
    PAYOUT = "payout"


#: The side of the steps recorded before steps carried one (only these two names are one-sided).
_SIDE_OF_STEP = {"revenue": Side.REVENUE, "payout": Side.PAYOUT}
_SIDES = {side.value: side for side in Side}


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One decision: what was checked (`step`), what it found (`outcome`) and why (`detail`).

    The detail of a common step (no side) names no money of either side.
    """

    step: str
    outcome: str
    detail: str
    side: Side | None = None
    at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        """The stored form (a JSON object)."""
        stored: dict[str, object] = {"step": self.step, "outcome": self.outcome, "detail": self.detail}
        if self.side is not None:
            stored["side"] = self.side.value
        if self.at is not None:
            stored["at"] = self.at.isoformat()
        return stored

    @classmethod
    def from_json(cls, stored: Mapping[str, object]) -> TraceStep:
        """A stored step; one without a side gets the side its name implies."""
        step = str(stored.get("step", ""))
        side = stored.get("side")
        at = stored.get("at")
        return cls(
            step=step,
            outcome=str(stored.get("outcome", "")),
            detail=str(stored.get("detail", "")),
            side=_SIDES[side] if isinstance(side, str) and side in _SIDES else _SIDE_OF_STEP.get(step),
            at=datetime.fromisoformat(at) if isinstance(at, str) else None,
        )

    def seen_by(self, side: Side) -> bool:
        """Whether a party of `side` may read this step: its own side's steps and the common ones."""
        return self.side is None or self.side is side


def stored_steps(steps: Iterable[TraceStep]) -> list[dict[str, object]]:
    return [step.to_json() for step in steps]


def read_steps(stored: Iterable[Mapping[str, object]]) -> tuple[TraceStep, ...]:
    return tuple(TraceStep.from_json(step) for step in stored)


@dataclass(slots=True)
class Trace:
    """Steps in the order they were decided."""

    steps: list[TraceStep] = field(default_factory=list)

    def add(self, step: str, outcome: str, detail: str, side: Side | None = None) -> None:
        self.steps.append(TraceStep(step, outcome, detail, side))
