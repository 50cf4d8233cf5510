"""Prefill and decode on different instances (possibly different chips), joined by a KV link.

A `role: prefill` pool runs each request's prompt (continuous batching, its own batch and KV
limits) and, instead of decoding, hands the request's KV cache to its `handoff.decode_pool`
over a link: transfer time = link latency + prompt tokens x KV bytes per token / link
bandwidth. The first token reaches the client when the transfer ends (TTFT includes it), and
the request joins the decode instance with the most free KV room among those it fits (or, when
none has room now, the least loaded one it ever fits, where it waits). A `role: decode` replica
holds the whole prompt's KV and computes only the first output token as input, then decodes.
A one-token request is finished by its prefill instance (nothing to hand off).
"""

from __future__ import annotations

from fleetsim.serving.replica import Replica, Timer
from fleetsim.serving.requests import CRASH_NO_REPLICA, EXCEEDS_KV


class PrefillReplica(Replica):
    """A replica that prefills, then hands its requests to a decode pool."""

    def __init__(self, *args, handoff=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handoff = handoff
        self.handed_off = 0  # requests passed on (the conservation check counts these)
        self._handoff_s: list[float] = []  # when each was passed on (the pool's prefilled req/s)

    def handed_off_since(self, t_s: float) -> int:
        return sum(1 for t in self._handoff_s if t >= t_s)

    def fits_ever(self, rid: int) -> bool:
        return self._prompt[rid] + 1 <= self.kv_capacity

    def _join_decode(self, rid: int, context: int, generated: int, now: float) -> None:
        if self._output[rid] - generated <= 0:
            super()._join_decode(rid, context, generated, now)  # one token: done here
            return
        # leave this replica: its batch slot and the tokens it counted for the request
        prompt = self._prompt[rid]
        self.outstanding_tokens -= prompt + self._output[rid]
        self.n_in -= 1
        self.spare += 1
        self.handed_off += 1
        self._handoff_s.append(now)
        self.on_done(rid, self)  # the router's load index: the request left this replica (no look-up)
        h = self.handoff  # `Handoff.send`, inline (one call less per request)
        h.in_transit.add(rid)
        _Transfer(h.env, h.env._now + (h.latency_s + prompt * h.s_per_token), h._cb).rid = rid


class DecodeReplica(Replica):
    """A replica that receives prefilled requests: the prompt's KV arrives over the link."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cached = self._prompt  # the whole prompt is in KV: only the first token is input


class _Transfer(Timer):
    """A KV transfer's arrival: a `Timer` that carries its request id."""

    __slots__ = ("rid",)


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
        self._cb = self._on_arrive  # (bound once: a transfer's callback)

    def transfer_s(self, prompt_tokens: int) -> float:
        return self.latency_s + prompt_tokens * self.s_per_token

    def _on_arrive(self, ev) -> None:
        """A transfer (sent by `PrefillReplica._join_decode`) has arrived: the first token
        reaches the client, and the request joins a decode replica."""
        rid = ev.rid
        self.in_transit.discard(rid)
        req = self.req
        if req.first_token_s[rid] != req.first_token_s[rid]:  # NaN: the client sees it now
            req.first_token_s[rid] = self.env._now + self.host_s
        target = self._choose(rid)
        if target is None:  # no decode replica up, or none the request ever fits
            up = any(r.up for r in self.decode)
            self.on_reject(rid, EXCEEDS_KV if up else CRASH_NO_REPLICA)
            return
        req.pool_idx[rid] = target.pool_idx
        req.replica[rid] = target.index_in_pool
        # the first token came from prefill: the decode replica computes it only as input
        resume = target.resume
        resume[rid] = max(resume.get(rid, 0), 1)
        target.enqueue(rid)

    def _choose(self, rid: int) -> DecodeReplica | None:
        """The up decode replica with the most free KV tokens that the request fits now; else
        the least loaded one it fits at all (it waits there); None when none is up."""
        need = self.req.prompt_list[rid] + self.req.output_list[rid]
        best, best_room, fallback = None, -1.0, None
        for r in self.decode:
            if not r.up or need > r.kv_capacity:  # (`Replica.fits_ever`, inlined)
                continue
            room = r.kv_capacity - r.outstanding_tokens
            if room >= need and room > best_room:
                best, best_room = r, room
            if fallback is None or r.outstanding_tokens < fallback.outstanding_tokens:
                fallback = r
        return best or fallback
