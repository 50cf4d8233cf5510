"""Per-request state of one serving window, held in preallocated numpy arrays.

Simulation code writes into these arrays by index; `results` turns them into a table once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNFINISHED, COMPLETED, REJECTED = 0, 1, 2
STATUS_NAMES = ("unfinished", "completed", "rejected")

# Why a request was rejected (code 0 means not rejected).
REJECT_REASONS = ("", "queue_full", "no_replica", "exceeds_kv", "crash_no_replica")
QUEUE_FULL, NO_REPLICA, EXCEEDS_KV, CRASH_NO_REPLICA = 1, 2, 3, 4


@dataclass
class RequestArrays:
    """Inputs (arrival, tokens, class) and outcomes of every request of a window."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    class_idx: np.ndarray
    class_names: list[str]
    class_workloads: list[str] = field(default_factory=list)  # workload of each class (SLO, model)
    cached_tokens: np.ndarray | None = None  # prompt tokens whose KV a prefix cache already holds

    def __post_init__(self) -> None:
        if not self.class_workloads:
            self.class_workloads = list(self.class_names)
        n = len(self.arrival_s)
        if self.cached_tokens is None:
            self.cached_tokens = np.zeros(n, dtype=np.int64)
        self.pool_idx = np.full(n, -1, dtype=np.int32)
        self.replica = np.full(n, -1, dtype=np.int32)
        self.admitted_s = np.full(n, np.nan)
        self.first_token_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.status = np.zeros(n, dtype=np.int8)
        self.reject_reason = np.zeros(n, dtype=np.int8)
        self.attempts = np.zeros(n, dtype=np.int16)
        # Plain lists for the per-event hot path (list indexing is ~5x faster than numpy's).
        self.prompt_list: list[int] = self.prompt_tokens.tolist()
        self.output_list: list[int] = self.output_tokens.tolist()
        self.cached_list: list[int] = self.cached_tokens.tolist()

    def __len__(self) -> int:
        return len(self.arrival_s)

    def counts(self) -> dict[str, int]:
        """Conservation: arrived = completed + rejected + unfinished."""
        return {
            "arrived": int(len(self)),
            "completed": int(np.count_nonzero(self.status == COMPLETED)),
            "rejected": int(np.count_nonzero(self.status == REJECTED)),
            "unfinished": int(np.count_nonzero(self.status == UNFINISHED)),
        }


def cached_prefix_tokens(prompt_tokens: np.ndarray, hit_share: float) -> np.ndarray:
    """Prompt tokens served from the prefix cache: the class's hit share of each prompt, rounded
    down, and never the last token (its logits give the first output token)."""
    prompt = np.asarray(prompt_tokens, dtype=np.int64)
    if hit_share <= 0:
        return np.zeros_like(prompt)
    return np.minimum(np.floor(hit_share * prompt).astype(np.int64), np.maximum(prompt - 1, 0))
