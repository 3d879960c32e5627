"""Windows and thresholds the verdicts use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How long to watch and how much change counts, per target."""

    window: float = 60.0
    """Seconds of history a growth verdict looks back over."""
    stall_after: float = 30.0
    """Seconds without consumption, items waiting, before STALL."""
    min_growth: int = 5
    """Smallest rise over the window that counts as growing."""
    min_members: int = 3
    """Queues that share a pattern form a family from this many members."""
    history: int = 120
    """Most points kept per queue; memory stays flat with uptime."""
    min_span_share: float = 0.75
    """Share of the window that history must cover before LEAK is called."""

    def __post_init__(self) -> None:
        if self.window <= 0 or self.stall_after <= 0:
            raise ValueError("window and stall_after must be positive seconds")
        if self.min_members < 2 or self.history < 4:
            raise ValueError("min_members must be >= 2 and history >= 4")
