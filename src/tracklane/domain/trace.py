"""The attribution trace: the ordered list of decisions that explains a conversion's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Trace:
    """Steps in the order they were decided; each says what was checked and what it found."""

    steps: list[dict[str, object]] = field(default_factory=list)

    def add(self, step: str, outcome: str, detail: str) -> None:
        self.steps.append({"step": step, "outcome": outcome, "detail": detail})
