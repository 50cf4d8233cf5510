"""Prefill and decode on different instances (possibly different chips), joined by a KV link.

A `role: prefill` pool runs each request's prompt (continuous batching, its own batch and KV
limits) and, instead of decoding, hands the request's KV cache to its `handoff.decode_pool`
over a link: transfer time = link latency + prompt tokens x KV bytes per token / link
bandwidth. The first token reaches the client when the transfer ends (TTFT includes it), and
the request joins the decode instance with the most free KV room among those it fits (or, when
none has room now, the least loaded one it ever fits, where it waits). A `role: decode` replica
holds the whole prompt's KV; the first output token (computed by prefill) is the request's input
to its first decode step, so the request joins the decode batch at the next step boundary.
A one-token request is finished by its prefill instance (nothing to hand off).
"""

from __future__ import annotations

import heapq

from fleetsim.serving.replica import _MEMO_MAX, _RID_BITS, MEMORY_BOUND_ACTIVITY, Replica, Timer
from fleetsim.serving.requests import CRASH_NO_REPLICA, EXCEEDS_KV


class PrefillReplica(Replica):
    """A replica that prefills, then hands its requests to a decode pool."""

    def __init__(self, *args, handoff=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handoff = handoff
        self.handed_off = 0  # requests passed on (the conservation check counts these)
        self._handoff_s: list[float] = []  # when each was passed on (the pool's prefilled req/s)
        self._last = False  # the hand-off is the last thing its event does (`_on_timer`)

    def handed_off_since(self, t_s: float) -> int:
        return sum(1 for t in self._handoff_s if t >= t_s)

    def fits_ever(self, rid: int) -> bool:
        return self._prompt[rid] + 1 <= self.kv_capacity

    # A prefill replica never decodes (its requests leave when their prompt is done), so its
    # cycle is: an arrival at an idle replica starts a one-request iteration, the iteration's end
    # hands its requests on and starts the next. Both are inlined here for that case (the same
    # arithmetic in the same order as `Replica.enqueue`/`_start`/`_admit`/
    # `_start_prefill_iteration` and `_on_timer`/`_end_prefill_iteration`/`_mark`); anything
    # else (a queue, a prefill run, a fused or switched run, a down replica) takes the general path.

    def enqueue(self, rid: int) -> None:
        if not self._idle or self._fused is not None or self._switch is not None or self.prefilling:
            super().enqueue(rid)
            return
        prompt = self._prompt[rid]
        self.n_in += 1
        self.spare -= 1
        self.outstanding_tokens += prompt + self._output[rid]
        generated = self.resume.pop(rid, 0) if self.resume else 0
        tokens = prompt + generated
        done = self._cached[rid]
        take = tokens - done
        if take <= 0 or (self.chunked and take > self.token_budget):
            self.waiting.append(rid)  # (as `Replica.enqueue` left it before `_start`)
            if generated:
                self.resume[rid] = generated
            self._idle = self._start() is None
            return
        item = [rid, tokens, done, generated]
        self.prefilling.append(item)
        self.kv_prefill += tokens + 1
        env = self.env
        now = env._now
        admitted_s = self.req.admitted_s
        if admitted_s[rid] != admitted_s[rid]:  # NaN: its first chunk is scheduled now
            admitted_s[rid] = now
        attended = 0.0 + take * (done + take / 2.0)
        key = (take, self.ctx, attended, self.throttle)
        memo = self._memo
        dt = memo.get(key)
        if dt is None:
            dt = self.kernel.step_time_s(take, 0, self.ctx, attended, self.throttle)
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[key] = dt
        # `_mark(now, 1, take)` on an idle replica
        self._since = now
        self._n_running = 1
        self._activity = (MEMORY_BOUND_ACTIVITY + self._activity_per_token * take
                          if take < self._ridge_tokens else 1.0)
        self._kind = 2
        self._pf = ([(item, take)], 0)
        self._run_cuttable = False
        self._timer = Timer(env, now + dt, self._cb)
        self._idle = False

    def _on_timer(self, _event) -> None:
        self._timer = None
        if self._kind != 2 or self._switch is not None:
            self._end()
            self._idle = self._start() is None
            return
        # `_end_prefill_iteration` with no decoders, `_mark(now, 0)` inline
        chunks = self._pf[0]
        self._pf = None
        now = self.env._now
        n_running = self._n_running
        if n_running:
            dt = now - self._since
            self.busy_s += dt
            self.batch_area += n_running * dt
            self.power_area += self._activity * dt
        self._since = now
        self._n_running = 0
        for item, take in chunks:
            item[2] += take
        prefilling = self.prefilling
        waiting = self.waiting
        while prefilling and prefilling[0][2] >= prefilling[0][1]:
            rid, total, _done, generated = prefilling.popleft()
            self.kv_prefill -= total + 1
            # the last hand-off of an iteration after which the replica idles is this event's
            # last act: its transfer may run ahead (`_join_decode`)
            self._last = not prefilling and not waiting and self.ahead is not None
            self._join_decode(rid, total, generated + 1, now)
        self._last = False
        if waiting or prefilling:
            self._idle = self._start() is None
        else:
            self._idle = True

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
        h = self.handoff  # the link model, inline: latency + prompt x KV bytes per token / bandwidth
        env = h.env
        t = env._now + (h.latency_s + prompt * h.s_per_token)
        if self._last and self.ahead.clear_until(t):
            # nothing else happens before the KV arrives: the arrival is the simulation's next
            # step, taken now as of t (one SimPy event less)
            self._last = False
            now = env._now
            env._now = t
            h.arrive(rid)
            env._now = now
            return
        h.in_transit.add(rid)
        _Transfer(env, t, h._cb).rid = rid


class DecodeReplica(Replica):
    """A replica that receives prefilled requests: the prompt's KV arrives over the link."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cached = self._prompt  # the whole prompt is in KV: only the first token is input

    def _admit(self) -> None:
        """`Replica._admit`, except that a request whose prompt KV is all here and which has
        one token to compute (the first output token, from prefill) joins the decode batch at
        once: that token is its input to the next decode step, as for a colocated request
        after its prefill iteration, so it gets no one-token prefill iteration of its own. A
        request preempted later (several generated tokens to recompute) is prefilled as usual."""
        waiting = self.waiting
        prefilling = self.prefilling
        decoding = self.decoding
        prompt_of = self._prompt
        resume = self.resume
        while waiting:
            rid = waiting[0]
            prompt = prompt_of[rid]
            running = len(decoding) + len(prefilling)
            if running and (running >= self.max_batch or self.ctx + self.kv_prefill + prompt
                            + resume.get(rid, 0) + running + 2 > self.kv_capacity):
                break  # (`_can_admit`, inline; an empty replica always takes the head)
            waiting.popleft()
            generated = resume.pop(rid, 0) if resume else 0
            if generated == 1:  # `_join_decode(rid, prompt, 1, now)`, inline, as the colocated prefill's end calls it
                remaining = self._output[rid] - 1
                first = self.req.first_token_s
                if remaining <= 0 or first[rid] != first[rid]:
                    self._join_decode(rid, prompt, 1, self.env._now)  # (never for a handed-off request)
                    continue
                finish_step = self.step + remaining
                decoding[rid] = finish_step
                heapq.heappush(self.heap, (finish_step << _RID_BITS) | rid)
                self.ctx += prompt + 1
                continue
            tokens = prompt + generated
            prefilling.append([rid, tokens, prompt, generated])
            self.kv_prefill += tokens + 1


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

    def _on_arrive(self, ev) -> None:
        """A transfer (sent by `PrefillReplica._join_decode`) has arrived: the first token
        reaches the client, and the request joins a decode replica."""
        rid = ev.rid
        self.in_transit.discard(rid)
        self.arrive(rid)

    def arrive(self, rid: int) -> None:
        """The request's KV has arrived (now): the first token reaches the client, and the
        request joins a decode replica."""
        req = self.req
        first = req.first_token_s
        t = first[rid]
        if t != t:  # NaN: the client sees it now
            first[rid] = self.env._now + self.host_s
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
        decode = self.decode
        if len(decode) == 1:  # one replica: it, if up and the request fits it (`_scan`'s answer)
            r = decode[0]
            return r if r.up and self.req.prompt_list[rid] + self.req.output_list[rid] <= r.kv_capacity else None
        return self._scan(rid)

    def _scan(self, rid: int) -> DecodeReplica | None:
        """`_choose` over the decode replicas one by one."""
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
