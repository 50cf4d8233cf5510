"""Routers: pick a replica for each request among the up replicas that serve its model.

Chosen in the scenario by `router.kind`; adding one is one function plus one registry entry.
"""

from __future__ import annotations

import heapq
from collections import deque
from operator import attrgetter
from typing import Callable

import numpy as np

from fleetsim.serving.replica import Replica
from fleetsim.serving.requests import EXCEEDS_KV, NO_REPLICA, QUEUE_FULL, REJECTED, RequestArrays

Choose = Callable[["Router", list[Replica], int], Replica]


def _round_robin(router: "Router", replicas: list[Replica], model: int) -> Replica:
    i = router.rr_next[model] % len(replicas)
    router.rr_next[model] = i + 1
    return replicas[i]


def _jsq(router: "Router", replicas: list[Replica], model: int) -> Replica:
    if replicas is router._up_cache.get(model):  # all up replicas: the index, O(log n)
        return router._index[model].top()
    return min(replicas, key=_load)


def _least_tokens(router: "Router", replicas: list[Replica], model: int) -> Replica:
    if replicas is router._up_cache.get(model):
        return router._index[model].top()
    return min(replicas, key=_tokens)


def _power_of_two(router: "Router", replicas: list[Replica], model: int) -> Replica:
    n = len(replicas)
    if n == 1:
        return replicas[0]
    pairs = router._pairs.get(n)  # `draw_pair`'s next pair inline while its block lasts
    a, b = divmod(pairs.pop(), n) if pairs else router.draw_pair(n)
    ra, rb = replicas[a], replicas[b]
    return ra if ra.n_in <= rb.n_in else rb


_load = attrgetter("n_in")
_spare = attrgetter("spare")
_tokens = attrgetter("outstanding_tokens")


class LoadIndex:
    """The up replicas of one model in a lazy-deletion heap keyed by a load figure, ties to the
    lowest position (as min() over the list would): `top` and `update` cost O(log n) amortised.
    The router calls `update(replica)` whenever that replica's figure changes (it assigns and
    is told of completions); entries whose stamp is out of date are dropped when they surface."""

    def __init__(self, replicas: list[Replica], key: Callable[[Replica], float]) -> None:
        self.key = key
        self.pos = {r.index: i for i, r in enumerate(replicas)}
        self.stamp = [0] * len(replicas)  # by position: the stamp of each replica's live entry
        self.heap = [(key(r), i, 0, r) for i, r in enumerate(replicas)]
        heapq.heapify(self.heap)
        self.limit = 4 * len(replicas) + 64

    def top(self) -> Replica:
        heap, stamp = self.heap, self.stamp
        while True:
            _, i, st, r = heap[0]
            if st == stamp[i]:
                return r
            heapq.heappop(heap)

    def update(self, r: Replica) -> None:
        i = self.pos.get(r.index)
        if i is None:  # not up (its pool's list was rebuilt without it)
            return
        stamp = self.stamp
        st = stamp[i] = stamp[i] + 1
        heap = self.heap
        heapq.heappush(heap, (self.key(r), i, st, r))
        if len(heap) > self.limit:  # compact: one live entry per replica
            self.heap = [e for e in heap if e[2] == stamp[e[1]]]
            heapq.heapify(self.heap)


_INDEX_KEYS: dict[str, Callable[[Replica], float]] = {
    "jsq": _load, "least_tokens": _tokens, "central": lambda r: -r.spare,
}


ROUTERS: dict[str, Choose] = {
    "round_robin": _round_robin,
    "jsq": _jsq,
    "power_of_two": _power_of_two,
    "least_tokens": _least_tokens,
}


class Router:
    """Routes by model, then by the chosen policy; rejects with a reason rather than dropping."""

    def __init__(
        self,
        kind: str,
        replicas_by_model: dict[int, list[Replica]],
        req: RequestArrays,
        request_model: list[int],
        rng: np.random.Generator,
        now: Callable[[], float],
    ) -> None:
        # `central` has no per-arrival choice: it hands the next free slot to the head of its queue.
        self.central = kind == "central"
        self.choose = None if self.central else ROUTERS[kind]
        self.all_by_model = replicas_by_model
        self.req = req
        self.request_model = request_model
        self.rng = rng
        self.now = now
        self.rr_next = {m: 0 for m in replicas_by_model}
        # `central`: one FCFS queue per model in the router; a request goes to a replica only
        # when one has a free batch slot, so with max_batch 1 a pool is exactly an M/G/c queue.
        self.held: dict[int, deque[int]] = {m: deque() for m in replicas_by_model}
        self._up_cache: dict[int, list[Replica]] = {}
        # per model, the largest KV cache among the up replicas when they all take requests that
        # fit it (`Replica.fits_ever`): whether any up replica fits a request, in O(1)
        self._fit_cap: dict[int, float | None] = {}
        # per model, `central`'s queue bound when every up replica has a queue limit (their sum)
        self._held_max: dict[int, int | None] = {}
        # jsq, least_tokens and central keep the up replicas in a heap per model (O(log n) per
        # event instead of a scan); replicas by (pool, replica) to update it on a completion
        self._index_key = _INDEX_KEYS.get(kind)
        self._index: dict[int, LoadIndex] = {}
        self._by_slot = {(r.pool_idx, r.index_in_pool): r
                         for reps in replicas_by_model.values() for r in reps}
        self.first_routes = 0  # requests that have arrived (the conservation check counts these)
        self.rejected = 0
        self._pairs: dict[int, list[int]] = {}

    def draw_pair(self, n: int) -> tuple[int, int]:
        """Two distinct replica indices out of n, drawn in numpy blocks (one block per n), kept
        as one int a * n + b per pair: a window of a few hundred requests then pays for the
        4,096 draws (about 90 us) but not for 4,096 tuples (about 350 us more)."""
        pairs = self._pairs.get(n)
        if not pairs:
            a = self.rng.integers(0, n, size=4096)
            b = (a + self.rng.integers(1, n, size=4096)) % n
            pairs = self._pairs[n] = (a * n + b).tolist()
        return divmod(pairs.pop(), n)

    def replicas_changed(self) -> None:
        """Call when a replica goes down or comes back."""
        self._up_cache.clear()
        self._fit_cap.clear()
        self._held_max.clear()
        self._index.clear()
        if self.central:
            for model in self.held:
                self._dispatch_held(model)

    def on_done(self, rid: int, replica: Replica | None = None) -> None:
        """`replica` (found from the request's columns when not given) finished `rid` or passed
        it on: update its load in the index; with a central queue, give its free slot to the
        next request."""
        if self._index_key is None:  # (`central` always has an index)
            return
        model = self.request_model[rid]
        index = self._index.get(model)
        if replica is None:
            replica = self._by_slot.get((int(self.req.pool_idx[rid]), int(self.req.replica[rid])))
        if index is not None and replica is not None:  # (a decode replica is not indexed)
            index.update(replica)
        if self.central and self.held[model]:
            self._dispatch_held(model)

    def _dispatch_held(self, model: int) -> None:
        held = self.held[model]
        if not held:
            return
        up = self._up(model)
        if not up:
            return
        while held:
            # `_free_replica`'s common case inline: the index's top has a free slot and fits
            rid = held[0]
            replica = self._index[model].top()
            if replica.spare <= 0:
                return
            if not replica.fits_ever(rid):
                replica = self._free_replica(rid, model, up)
                if replica is None:
                    return
            held.popleft()
            self._assign(rid, replica, model)

    def _free_replica(self, rid: int, model: int, up: list[Replica]) -> Replica | None:
        """The up replica (of `up`, the model's) with the most free batch slots that can hold
        `rid` (None if none)."""
        if not up:
            return None
        best = self._index[model].top()  # most free slots, lowest position among ties
        if best.spare <= 0:
            return None
        if best.fits_ever(rid):
            return best
        fitting = [r for r in up if r.spare > 0 and r.fits_ever(rid)]
        return max(fitting, key=_spare) if fitting else None

    def _assign(self, rid: int, replica: Replica, model: int | None = None) -> None:
        req = self.req
        req.pool_idx[rid] = replica.pool_idx
        req.replica[rid] = replica.index_in_pool
        replica.enqueue(rid)
        if self._index_key is not None:
            index = self._index.get(self.request_model[rid] if model is None else model)
            if index is not None:
                index.update(replica)

    def _route_central(self, rid: int, model: int, up: list[Replica]) -> None:
        cap = self._fit_cap.get(model)
        if (self.req.prompt_list[rid] + self.req.output_list[rid] > cap if cap is not None
                else not any(r.fits_ever(rid) for r in up)):
            self._reject(rid, EXCEEDS_KV)
            return
        held = self.held[model]
        if not held:
            replica = self._free_replica(rid, model, up)
            if replica is not None:
                self._assign(rid, replica, model)
                return
        held_max = self._held_max.get(model)
        if held_max is not None and len(held) >= held_max:
            self._reject(rid, QUEUE_FULL)
            return
        if held and self.req.attempts[rid] > 1:
            # A retry (its replica crashed) keeps its place by arrival time, ahead of newer ones.
            arrival = self.req.arrival_s
            i = 0
            while i < len(held) and arrival[held[i]] <= arrival[rid]:
                i += 1
            held.insert(i, rid)
        else:
            held.append(rid)

    def _up(self, model: int) -> list[Replica]:
        up = self._up_cache.get(model)
        if up is None:
            up = self._up_cache[model] = [r for r in self.all_by_model.get(model, ()) if r.up]
            plain = all(type(r).fits_ever is Replica.fits_ever for r in up)
            self._fit_cap[model] = max((r.kv_capacity for r in up), default=0.0) if plain else None
            limits = [r.queue_limit for r in up]
            self._held_max[model] = (sum(limits) if all(q is not None for q in limits)
                                     else None)
            if self._index_key is not None and up:
                self._index[model] = LoadIndex(up, self._index_key)
        return up

    def route(self, rid: int, reject_reason: int = NO_REPLICA) -> None:
        req = self.req
        attempts = req.attempts[rid] + 1
        req.attempts[rid] = attempts
        if attempts == 1:
            self.first_routes += 1
        else:  # a retry: it is on no replica until routed again
            req.pool_idx[rid] = -1
            req.replica[rid] = -1
        model = self.request_model[rid]
        up = self._up_cache.get(model)  # (`_up`'s cached list, without the call)
        if up is None:
            up = self._up(model)
        if not up:
            self._reject(rid, reject_reason)
            return
        if self.central:
            self._route_central(rid, model, up)
            return
        replica = self.choose(self, up, model)
        if not replica.fits_ever(rid):
            fitting = [r for r in up if r.fits_ever(rid)]
            if not fitting:
                self._reject(rid, EXCEEDS_KV)
                return
            replica = self.choose(self, fitting, model)
        if replica.queue_limit is not None and replica.queue_full(rid):  # (no limit: no call)
            req.pool_idx[rid] = replica.pool_idx  # the pool that turned it away owns the miss
            self._reject(rid, QUEUE_FULL)
            return
        self._assign(rid, replica, model)

    def reject(self, rid: int, reason: int) -> None:
        """Reject a request that left the router (a handoff with nowhere to go)."""
        self._reject(rid, reason)

    def _reject(self, rid: int, reason: int) -> None:
        """Final: the request is rejected with its reason; its pool_idx names the pool that turned
        it away (queue full on that pool's replica) or is -1 when no pool could take it."""
        self.rejected += 1
        self.req.status[rid] = REJECTED
        self.req.reject_reason[rid] = reason
        self.req.finish_s[rid] = self.now()
