"""Prefill and decode on different instances (possibly different chips), joined by a KV link.

A `role: prefill` pool runs each request's prompt (continuous batching, its own batch and KV
limits) and, instead of decoding, hands the request's KV cache to its `handoff.decode_pool`
over a link: transfer time = link latency + prompt tokens x KV bytes per token / link
bandwidth. The first token reaches the client when the transfer ends (TTFT includes it), and
the request joins the decode instance with the most free KV room among those it fits (or, when
none has room now, the least loaded one it ever fits, where it waits). A `role: decode` replica
holds the whole prompt's KV and computes only the first output token as input, then decodes.
A one-token request is finished by its prefill instance (nothing to hand off).

Speed, with the same results: a transfer is one `Timer` (no `Timeout`, no closure), and a decode
instance plans the cut an arriving request makes in its run (`DecodeHorizon`, as `Deferral`
lets colocated replicas do for arrivals): when no transfer can reach its pool before the step
boundary at which the newcomer joins, the run ends and the next starts at once, as of that
boundary, instead of through an event of its own.
"""

from __future__ import annotations

import heapq
import math

from fleetsim.serving.replica import Replica, Timer
from fleetsim.serving.requests import CRASH_NO_REPLICA, EXCEEDS_KV


class PrefillReplica(Replica):
    """A replica that prefills, then hands its requests to a decode pool."""

    def __init__(self, *args, handoff=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handoff = handoff
        self.handed_off = 0  # requests passed on (the conservation check counts these)
        self._handoff_s: list[float] = []  # when each was passed on (the pool's prefilled req/s)
        self.t_end = math.inf  # when the run under way ends (valid while `_timer` is set)

    def _arm_at(self, t_end: float):
        self.t_end = t_end  # (`DecodeHorizon`: no handoff from here before the run's end)
        return super()._arm_at(t_end)

    def handed_off_since(self, t_s: float) -> int:
        return sum(1 for t in self._handoff_s if t >= t_s)

    def fits_ever(self, rid: int) -> bool:
        return self._prompt[rid] + 1 <= self.kv_capacity

    def _join_decode(self, rid: int, context: int, generated: int, now: float) -> None:
        if self._output[rid] - generated <= 0:
            super()._join_decode(rid, context, generated, now)  # one token: done here
            return
        # leave this replica: its batch slot and the tokens it counted for the request
        self.outstanding_tokens -= self._prompt[rid] + self._output[rid]
        self.n_in -= 1
        self.spare += 1
        self.handed_off += 1
        self._handoff_s.append(now)
        self.on_done(rid)  # the router's load index: the request left this replica
        self.handoff.send(rid, now)


class DecodeReplica(Replica):
    """A replica that receives prefilled requests: the prompt's KV arrives over the link."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cached = self._prompt  # the whole prompt is in KV: only the first token is input

    def _arm_at(self, t_end: float):
        # never deferred: the arrivals' `Deferral` does not know when transfers come
        return Timer(self.env, t_end, self._cb)

    def receive(self, rid: int) -> None:
        self.resume[rid] = max(self.resume.get(rid, 0), 1)  # the first token came from prefill
        self.enqueue(rid)


class Handoff:
    """The KV link from one prefill pool to its decode pool, and the requests in transit."""

    def __init__(self, env, req, kv_bytes_per_token: float, link_gbps: float, latency_s: float,
                 decode: list[DecodeReplica], on_reject, host_s: float = 0.0) -> None:
        self.env, self.req = env, req
        self.host_s = host_s  # the engine's per-request host cost: the client sees tokens this late
        self.s_per_token = kv_bytes_per_token / (link_gbps * 1e9)
        self.latency_s = latency_s
        self.decode = decode
        self.on_reject = on_reject  # (rid, reason): the router's final rejection
        self.in_transit: set[int] = set()
        self._due: list[tuple[float, int]] = []  # (arrival time, rid) of transfers, stale ones kept
        self.prefill: list[PrefillReplica] = []  # the replicas that send over this link

    def next_arrival_bound(self, next_request_s: float) -> float:
        """No transfer arrives before this time: the earliest in transit, or the earliest end of
        a prefill run (or of one started by the next request, at `next_request_s` or later)
        plus the link latency (a transfer takes at least that)."""
        due, in_transit = self._due, self.in_transit
        while due and due[0][1] not in in_transit:
            heapq.heappop(due)
        t = next_request_s
        for r in self.prefill:
            if r._timer is not None and r.t_end < t:
                t = r.t_end
        t += self.latency_s
        return due[0][0] if due and due[0][0] < t else t

    def transfer_s(self, prompt_tokens: int) -> float:
        return self.latency_s + prompt_tokens * self.s_per_token

    def send(self, rid: int, now: float) -> None:
        self.in_transit.add(rid)
        # `env.timeout(transfer)` fires at now + transfer: the same time, one object less
        t = self.env._now + (self.latency_s + self.req.prompt_list[rid] * self.s_per_token)
        heapq.heappush(self._due, (t, rid))
        Timer(self.env, t, self._on_arrive).rid = rid

    def _on_arrive(self, ev) -> None:
        self._arrive(ev.rid)

    def _arrive(self, rid: int) -> None:
        self.in_transit.discard(rid)
        req = self.req
        if req.first_token_s[rid] != req.first_token_s[rid]:  # NaN: the client sees it now
            req.first_token_s[rid] = self.env.now + self.host_s
        target = self._choose(rid)
        if target is None:  # no decode replica up, or none the request ever fits
            up = any(r.up for r in self.decode)
            self.on_reject(rid, EXCEEDS_KV if up else CRASH_NO_REPLICA)
            return
        req.pool_idx[rid] = target.pool_idx
        req.replica[rid] = target.index_in_pool
        target.receive(rid)

    def _choose(self, rid: int) -> DecodeReplica | None:
        """The up decode replica with the most free KV tokens that the request fits now; else
        the least loaded one it fits at all (it waits there); None when none is up."""
        need = self.req.prompt_list[rid] + self.req.output_list[rid]
        best, best_room, fallback = None, -1.0, None
        for r in self.decode:
            if not r.up or not r.fits_ever(rid):
                continue
            room = r.kv_capacity - r.outstanding_tokens
            if room >= need and room > best_room:
                best, best_room = r, room
            if fallback is None or r.outstanding_tokens < fallback.outstanding_tokens:
                fallback = r
        return best or fallback


class DecodeHorizon:
    """What a decode pool's replicas read as their `deferral` in `Replica._cut_run`: `horizon`
    is a time before which no transfer reaches the pool (the arrivals' `Deferral` gives the next
    request's time), so a cut at an earlier step boundary may be applied when it is decided.
    `plan_cuts`, `until` and `warmup` as the arrivals' `Deferral` sets them. Decode replicas
    never defer their timers (`DecodeReplica._arm_at`)."""

    __slots__ = ("arrivals", "links", "plan_cuts", "until", "warmup")

    def __init__(self, arrivals, links: list[Handoff]) -> None:
        self.arrivals = arrivals
        self.links = links
        self.plan_cuts, self.until, self.warmup = arrivals.plan_cuts, arrivals.until, arrivals.warmup

    @property
    def horizon(self) -> float:
        nxt = self.arrivals.horizon
        return min((h.next_arrival_bound(nxt) for h in self.links), default=math.inf)
