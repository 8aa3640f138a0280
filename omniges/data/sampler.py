"""MultiTaskSampler: which task each training step trains, by ratio, deterministic by (seed, step).

A pure function of the step makes resume exact: a restarted run asks for step k and gets the task the
uninterrupted run trained at step k.
"""

from __future__ import annotations

from fractions import Fraction
from math import lcm
from typing import Literal

import numpy as np

TASKS = ("a2g", "t2g", "g2t", "g2a")


class MultiTaskSampler:
    """Tasks drawn i.i.d. by ratio (`probability`) or cycled in exact proportion (`round_robin`)."""

    def __init__(self, ratios: dict[str, float], *, mode: Literal["probability", "round_robin"] = "probability",
                 seed: int = 0):
        unknown = set(ratios) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; expected some of {TASKS}")
        ratios = {task: float(r) for task, r in ratios.items() if r > 0}
        if not ratios:
            raise ValueError("task ratios must include at least one positive ratio")
        if mode not in ("probability", "round_robin"):
            raise ValueError(f"mode must be 'probability' or 'round_robin', got {mode!r}")
        self.tasks = sorted(ratios)
        total = sum(ratios.values())
        self.probabilities = np.array([ratios[t] / total for t in self.tasks])
        self.mode, self.seed = mode, seed
        self.cycle = self._cycle(ratios) if mode == "round_robin" else []

    def _cycle(self, ratios: dict[str, float]) -> list[str]:
        """Smallest integer counts with the ratios, interleaved so each task is spread evenly over the cycle."""
        fractions = {t: Fraction(r).limit_denominator(100) for t, r in ratios.items()}
        scale = lcm(*(f.denominator for f in fractions.values()))
        counts = {t: int(f * scale) for t, f in fractions.items()}
        slots = [((i + 0.5) / counts[t], t) for t in self.tasks for i in range(counts[t])]
        return [task for _, task in sorted(slots)]

    def task_at(self, step: int) -> str:
        if self.mode == "round_robin":
            return self.cycle[step % len(self.cycle)]
        rng = np.random.default_rng([self.seed, step])
        return self.tasks[int(rng.choice(len(self.tasks), p=self.probabilities))]
