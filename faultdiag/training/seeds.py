"""Independent seeds for each source of a training's randomness, all derived from the run seed."""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed", "INIT", "SHUFFLE", "TRAIN_NOISE", "VAL_NOISE", "TARGET", "AUGMENT"]

# Tags: one per source of randomness of a training run.
INIT, SHUFFLE, TRAIN_NOISE, VAL_NOISE, TARGET, AUGMENT = 0, 1, 2, 3, 4, 5


def derive_seed(seed: int, tag: int) -> int:
    """An independent 63-bit seed for source ``tag`` of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, tag]).generate_state(2, np.uint32).astype(np.uint64)
               .dot(np.array([1 << 31, 1], dtype=np.uint64)))
