"""What one mode adds to another, measured in alternating blocks on a shared machine.

Two modes (plain, audited) run in short blocks, one after the other, which goes first
alternating. Each pair of neighbouring blocks saw the same machine, so the difference
of their medians is one sample of what the second mode adds, free of the drift (other
work, CPU frequency, a growing table) that moves both over minutes. The estimate is the
median of those differences, with a 95 % interval from resampling the pairs
(bootstrap): if the interval's top is under the goal, so is the cost, at that
confidence, not just in the run that happened to be quiet.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Added:
    """Seconds; ``plain`` and ``audited`` are medians of every request in each mode."""

    plain: float
    audited: float
    added: float  # median over the block pairs of (audited - plain) block medians
    low: float  # 95 % interval of ``added``
    high: float
    pairs: int

    def percent(self, value: float) -> float:
        return value / self.plain * 100

    def row(self) -> str:
        """The columns every audit bench prints."""
        return (f"{self.plain * 1e3:8.3f} {self.audited * 1e3:8.3f} "
                f"{self.added * 1e3:+8.3f} {self.percent(self.added):+6.1f} % "
                f"[{self.percent(self.low):+5.1f}, {self.percent(self.high):+5.1f}] %")


HEADER = (f"{'plain ms':>8} {'audited':>8} {'added ms':>8} {'added':>8} "
          f"{'95 % interval':>16}")


def paired(blocks: list[tuple[list[float], list[float]]], *, resamples: int = 4000,
           seed: int = 20261126) -> Added:
    """``blocks``: (plain times, audited times) of each pair of neighbouring blocks."""
    if not blocks:
        raise ValueError("no block pairs measured")
    diffs = [statistics.median(a) - statistics.median(p) for p, a in blocks]
    rng = random.Random(seed)
    boot = sorted(statistics.median(rng.choices(diffs, k=len(diffs)))
                  for _ in range(resamples))
    plain = statistics.median(t for p, _ in blocks for t in p)
    audited = statistics.median(t for _, a in blocks for t in a)
    return Added(plain, audited, statistics.median(diffs), boot[int(resamples * 0.025)],
                 boot[int(resamples * 0.975) - 1], len(blocks))
