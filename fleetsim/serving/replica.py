"""One model instance on `tp` chips: continuous batching with event skipping.

Between two changes of batch membership (an admission, a completion, a preemption) the batch is
fixed, so the kernel's closed-form `decode_run` gives the time of the next k decode steps at once:
the replica sleeps until the next completion (or until an arrival it could admit), then works out
how many steps ran. Events per request stay O(1), whatever the output length.

Decoding requests are kept in a heap keyed by the decode step at which they finish (the replica
counts its decode steps), so a membership change costs O(log batch) pure-Python work and no
per-token or per-request loop over the batch.

Chunked prefill skips events the same way: while the batch is fixed, the head of the prefill queue
takes the whole token budget left by the decoders every iteration, so the iterations until it
completes its prompt (or until a decoder finishes, or the KV cache fills) are known in advance;
one vectorised kernel call prices them and the replica wakes once, at the end of the iteration in
which the head's last chunk (and whatever of the budget is left, for the requests behind it) runs.

A prefill iteration that finishes every admitted prompt and changes nothing else at its end is
fused with the decode run after it (`_start_fused`): one event for both, the iteration's end
applied when anything next looks at the replica (`_settle`). There is no SimPy process: each
run's `Timer` calls `_on_timer` back, and a cut moves that callback to an earlier timer.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from typing import TYPE_CHECKING, Callable

import numpy as np
import simpy

from fleetsim.serving.requests import COMPLETED, RequestArrays

if TYPE_CHECKING:
    from fleetsim.scenario.serving import ContinuousBatching

_EPS = 1e-12
_RID_BITS = 40  # decode heap entries: finish step above, request id below (ids < 2**40)
_RID_MASK = (1 << _RID_BITS) - 1
_MEMO_MAX = 4096  # entries of a replica's kernel memo (cleared when full)
_SMALL_RUN = 8  # prefill runs up to this many iterations are priced in plain floats

# Power draw of a memory-bound iteration (decode at small batch) as a share of the dynamic power
# at full compute. ASSUMPTION: GPUs decoding at small batch are reported well below TDP while
# prefill and large batches reach it; no sourced figure in the reference notes, so a round 0.6.
MEMORY_BOUND_ACTIVITY = 0.6


def _ridge_tokens(kernel) -> float:
    """Tokens per iteration at which compute time equals the weight-read time (roofline ridge)."""
    read_s = kernel.step_time_s(0, 1, 1.0) - kernel.step_time_s(0, 0, 0.0)
    per_token_s = (kernel.step_time_s(8192, 0, 0.0, 0.0) - kernel.step_time_s(0, 0, 0.0)) / 8192
    if read_s <= 0 or per_token_s <= 0:
        return 1.0
    return max(read_s / per_token_s, 1.0)


class Timer:
    """A SimPy queue entry scheduled at exactly `t_s` with one callback (what `Timeout.__init__`
    does, without its delay arithmetic: `timeout(delay)` fires at now + delay, which can differ
    from a planned end time by a rounding step). Not a `simpy.Event`: nothing yields on it, and
    stepping the queue reads only `callbacks` and `_ok` (`Environment.step`, `_simulate`), so a
    slotted object with those is enough and cheaper to make."""

    __slots__ = ("callbacks",)
    _ok = True
    _value = None

    def __init__(self, env: simpy.Environment, t_s: float, callback=None) -> None:
        self.callbacks = [callback] if callback is not None else []
        heapq.heappush(env._queue, (t_s, _NORMAL, next(env._eid), self))


class _Deferred:
    """A run end not yet scheduled (see `Deferral`): it never fires."""

    __slots__ = ()
    callbacks = None


_NORMAL = simpy.events.NORMAL
_new_timer = object.__new__


class Deferral:
    """Run-end timeouts scheduled late: a run ending after the next arrival gets its timeout
    only when the arrival before its end has been routed (`flush`), so an arrival that cuts the
    run replaces a placeholder, not a scheduled timeout (one SimPy event saved per cut). The
    arrivals process sets `horizon` (the next arrival's time) and flushes after each arrival."""

    __slots__ = ("env", "horizon", "heap", "_seq", "plan_cuts", "until", "warmup")

    def __init__(self, env: simpy.Environment, plan_cuts: bool = False, until: float = 0.0,
                 warmup: float = 0.0) -> None:
        self.env = env
        self.horizon = 0.0
        self.heap: list = []
        self._seq = 0
        # A cut decode run's end may be applied when the cut is decided (`Replica._cut_run`):
        # only when nothing but arrivals reaches a replica (no crashes, no central queue
        # handing out slots) and nothing reads it before the end (the warm-up snapshot at
        # `warmup`, the window's end at `until`)
        self.plan_cuts = plan_cuts
        self.until = until
        self.warmup = warmup

    def clear_until(self, t_s: float) -> bool:
        """Whether nothing else happens anywhere in the window before `t_s`, for a caller whose
        event schedules nothing more after asking: no SimPy event is due first (every timer,
        process and monitor step is in the queue), no arrival is (`horizon`), and `t_s` is inside
        the window. Then what happens at `t_s` is the simulation's very next step: the caller
        may apply it now, as of `t_s`, with the same state and its events made in the same order."""
        q = self.env._queue
        return t_s < self.horizon and t_s < self.until and (not q or t_s < q[0][0])

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def flush(self) -> None:
        """Schedule every deferred run end up to `horizon` (stale entries: cut or crashed runs)."""
        heap = self.heap
        env = self.env
        horizon = self.horizon
        while heap and heap[0][0] <= horizon:
            t_end, _seq, rep, ev = heapq.heappop(heap)
            if rep._timer is not ev:
                continue
            timer = rep._timer = _new_timer(Timer)  # `Timer(env, max(t_end, now), rep._cb)`
            timer.callbacks = [rep._cb]
            heapq.heappush(env._queue, (max(t_end, env._now), _NORMAL, next(env._eid), timer))


class Replica:
    """A replica's queue, running batch and the SimPy process that serves them."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        pool_idx: int,
        kernel,
        batching: "ContinuousBatching",
        queue_limit: int | None,
        req: RequestArrays,
        on_done: Callable[..., None],
        index_in_pool: int = 0,
        memos: tuple[dict, dict] | None = None,
    ) -> None:
        self.env = env
        self.index = index  # unique in the window
        self.index_in_pool = index_in_pool  # what the tables call `replica`, beside `pool`
        self.pool_idx = pool_idx
        self.kernel = kernel
        # the per-request host cost (tokenisation, admission, streaming) delays every token the
        # client sees by the same amount: TTFT and end-to-end pay it once, TPOT not at all
        self._host_s = float(getattr(kernel, "request_overhead_s", 0.0))
        self.max_batch = batching.max_batch
        self.token_budget = batching.max_tokens_per_iter
        self.chunked = batching.chunked_prefill
        self.queue_limit = queue_limit
        self.kv_capacity = float(kernel.kv_capacity_tokens)
        self.req = req
        if len(req.prompt_list) > _RID_MASK:
            raise ValueError(f"{len(req.prompt_list)} requests: the decode heap keys ids below 2**{_RID_BITS}")
        self.on_done = on_done
        # Requests as plain lists for O(1) access in the hot path.
        self._prompt = req.prompt_list
        self._output = req.output_list
        self._cached = req.cached_list  # prefix-cache hits: prefill starts after them

        self.waiting: deque[int] = deque()
        self.prefilling: deque[list[int]] = deque()  # [rid, tokens_to_prefill, done, generated]
        # (`done` starts at the request's cached prefix: its KV is held, not recomputed)
        self.kv_prefill = 0.0  # KV tokens reserved by prefilling requests
        self.decoding: dict[int, int] = {}  # rid -> decode step at which it finishes (admission order)
        self.heap: list[int] = []  # finish_step << _RID_BITS | rid: ints compare faster than tuples
        self.step = 0  # decode steps done by this replica
        self.ctx = 0.0  # summed context (KV tokens) of decoding requests
        self.resume: dict[int, int] = {}  # preempted rid -> tokens generated before preemption
        self.outstanding_tokens = 0  # prompt + output tokens of requests assigned, not finished
        self.n_in = 0  # requests assigned to this replica and not finished (waiting or running)
        self.spare = self.max_batch  # max_batch - n_in: free batch slots (the central router's key)

        self.up = True
        self.down_intervals: list[list] = []  # [down_s, up_s or None]
        self._repaired: simpy.Event | None = None
        self.throttle = 1.0
        self.busy_s = 0.0  # time spent iterating, up to `_since`
        self.batch_area = 0.0  # integral of batch size over busy time, up to `_since`
        self.power_area = 0.0  # integral of power activity (0..1) over time, up to `_since`
        self._since = 0.0
        self._n_running = 0  # batch size of the iteration under way (0: idle)
        self._activity = 0.0  # power activity of the iteration under way
        # Tokens an iteration must process before compute, not weight reads, bounds it (the
        # roofline ridge): below it the chip is memory-bound and draws less power.
        self._ridge_tokens = _ridge_tokens(kernel)
        self._activity_per_token = (1.0 - MEMORY_BOUND_ACTIVITY) / self._ridge_tokens
        self.preemptions = 0
        self.completed = 0  # requests finished here (the conservation check counts these)
        self._idle = True  # nothing to run: the next arrival starts a run (`enqueue`)
        self._timer: simpy.Timeout | None = None  # set while in a decode run
        self._run = None
        self._run_start = 0.0
        self._run_k = 0
        self._run_cuttable = False
        self._kind = 0  # run under way: 0 decode run, 1 chunked-prefill run, 2 prefill iteration
        self._run_n = 0
        self._run_cum = None  # prefill run: cumulative end times of its iterations
        self._pf = None  # prefill run plan: (take, head-only iterations m, final chunks, n_dec)
        self._switch = None  # (time, n_running, tokens): the final iteration's start, for `_mark`
        self._stamps = None  # (time, rids): admissions stamped when the final iteration starts
        self.deferral: Deferral | None = None  # set by the window (see `Deferral`)
        # A decode replica's: the window's `Deferral`, for `clear_until` (its cut by a KV
        # transfer's arrival is that event's last act: the cut's end may be applied at once)
        self.ahead: Deferral | None = None
        # A prefill iteration whose requests all go on decoding is fused with the decode run that
        # follows it (one event, not two): `_fused` = (its end, chunks, n_dec) until that end is
        # applied (`_settle`). Not for subclasses whose requests leave after prefill.
        self._fused = None
        # Kernel answers for an empty replica's prefill iteration, and for the decode run after
        # it: pure functions of the kernel, so the replicas of a pool share them (`memos`, one
        # pair per pool and window: a prompt length one replica priced is a hit on the others)
        self._memo, self._run_memo = memos if memos is not None else ({}, {})
        self._can_fuse = type(self)._join_decode is Replica._join_decode
        # No SimPy process: each run's timer calls `_on_timer` (an arrival that cuts the run
        # moves the callback to an earlier timer), which ends the run and starts the next.
        self._cb = self._on_timer

    # ---- load figures the router reads: `n_in` (requests assigned, not finished) and
    # `outstanding_tokens`, kept as plain attributes so a router's min() over replicas is cheap.

    def queue_full(self, rid: int) -> bool:
        """True when `rid` would have to wait and the queue already holds `queue_limit` requests
        (queue_limit 0 makes a loss system: a request is taken only if it can join the batch)."""
        if self.queue_limit is None or len(self.waiting) < self.queue_limit:
            return False
        if self._fused is not None:
            self._settle(self.env._now)
        return bool(self.waiting) or not self._can_admit(rid)

    def fits_ever(self, rid: int) -> bool:
        return self._prompt[rid] + self._output[rid] <= self.kv_capacity

    # ---- arrivals ----------------------------------------------------------------------------
    def enqueue(self, rid: int) -> None:
        if self._fused is not None:
            self._settle(self.env._now)
        self.waiting.append(rid)
        self.n_in += 1
        self.spare -= 1
        self.outstanding_tokens += self._prompt[rid] + self._output[rid]
        if self._idle:
            self._idle = self._start() is None  # start the run now
        elif self._timer is not None and self._run_cuttable and len(self.waiting) == 1 and self._can_admit(rid):
            # FCFS: a newcomer can only join if nobody waits before it.
            if self.env._now == self._run_start:
                self._restart_run()  # the run has not begun: plan it again with the newcomer
            else:
                self._cut_run()

    def _arm(self, delay: float):
        """The event the serving process waits on to end the run `delay` from now (`_arm_at`)."""
        return self._arm_at(self.env._now + delay)

    def _arm_at(self, t_end: float):
        """The timer that ends the run at `t_end`: a `Timer`, or, when no arrival can come before
        it, a placeholder the `Deferral` turns into the timer at the last arrival before it. A
        run cut by an arrival then wastes no event."""
        d = self.deferral
        if d is None or not self._run_cuttable or t_end <= d.horizon:
            # (a run no arrival can cut gains nothing from deferring) `Timer(env, t_end, cb)`,
            # inline: the same queue entry without `__init__`'s call
            env = self.env
            ev = _new_timer(Timer)
            ev.callbacks = [self._cb]
            heapq.heappush(env._queue, (t_end, _NORMAL, next(env._eid), ev))
            return ev
        ev = _Deferred()  # never triggered itself: no event scheduled
        seq = d._seq = d._seq + 1  # (`next_seq`, inline)
        heapq.heappush(d.heap, (t_end, seq, self, ev))
        return ev

    def _drop(self, old) -> None:
        """The run's old timer no longer ends it (a placeholder has nothing to drop)."""
        if old.callbacks:
            old.callbacks.clear()  # (a replica's Timer has one callback: its own `_cb`)

    def _restart_run(self) -> None:
        """A newcomer at the very instant a run starts joins it, as at an iteration boundary."""
        old = self._timer
        self._switch = self._stamps = None
        self._run_cum = self._pf = None
        self._drop(old)
        self._start()  # never None: the batch was not empty

    def _cut_run(self) -> None:
        """Move the decode run's wake-up to the end of the step under way (the newcomer joins then).

        The process waits on `_timer`; re-pointing it at an earlier timeout is what SimPy's own
        `Process.interrupt` does internally, without the exception and the extra event.
        """
        env = self.env
        elapsed = env._now - self._run_start
        cum = self._run_cum
        if self._fused is not None:  # (not settled: still in the fused run's prefill iteration)
            self._run_cuttable = False
            self._run_k = 0  # the newcomer joins when the prefill iteration ends
            self._drop(self._timer)
            self._timer = self._arm_at(self._fused[0])
            return
        if cum is None:
            run = self._run
            k = run.steps_within(elapsed + _EPS)
            t_done = run.time_for_steps(k)
            if t_done < elapsed - 1e-9 or k == 0:
                k += 1  # a step is in progress: it finishes first
                t_done = run.time_for_steps(k)
        else:
            k = bisect_right(cum, elapsed + _EPS)
            t_done = cum[k - 1] if k else 0.0
            if t_done < elapsed - 1e-9 or k == 0:
                k += 1
                t_done = cum[k - 1]
        self._run_cuttable = False
        if k >= self._run_k:
            return
        self._run_k = k
        if cum is not None and k <= self._pf[1]:
            self._switch = None  # the final iteration will not run in this prefill run
            self._stamps = None
        self._drop(self._timer)
        now = env._now
        t_b = now + max(t_done - elapsed, 0.0)
        d = self.deferral
        if cum is None and ((d is not None and d.plan_cuts and t_b < d.horizon and t_b < d.until
                             and not now < d.warmup <= t_b)
                            or (self.ahead is not None and self.ahead.clear_until(t_b))):
            # No arrival can reach this replica before the step boundary t_b (the next one
            # comes later; for a decode replica, no KV transfer either) and nothing else looks
            # at it: end the run and start the next now, as of t_b (one event saved). No
            # decoder finishes at t_b (k < the run's steps).
            self._timer = None
            env._now = t_b
            self._end()
            self._idle = self._start() is None
            env._now = now
            return
        self._timer = self._arm_at(t_b)

    def _can_admit(self, rid: int) -> bool:
        running = len(self.decoding) + len(self.prefilling)
        if running >= self.max_batch:
            return False
        if running == 0:
            return True  # an empty replica always takes the head (routing refused what never fits)
        need = self._prompt[rid] + self.resume.get(rid, 0) + 1
        # Leave room for one more step of every running sequence (vLLM's watermark), so an
        # admission is not followed at once by a preemption.
        return self.ctx + self.kv_prefill + need + running + 1 <= self.kv_capacity

    # ---- the batching loop ------------------------------------------------------------------
    def _on_timer(self, _event) -> None:
        """The run under way has ended: apply it and start the next (or go idle)."""
        self._timer = None
        kind = self._kind
        if kind == 0 or kind == 3:  # `_end`'s decode-run case, inline (one call less per run)
            now = self.env._now
            if kind == 3 and self._fused is not None:
                self._settle(now)
            k = self._run_k
            step = self.step = self.step + k
            self.ctx += self._run_n * k
            heap = self.heap
            if heap and heap[0] < (step + 1) << _RID_BITS:  # (`_complete_due`'s own test)
                self._complete_due(now)
            # `_end`'s `_mark(now, 0)` only if nothing starts: a run starting now marks `now`
            # itself, and after a mark to idle at the same instant that one accounts the same
            # (nothing in between reads the areas)
            if self._start() is None:
                self._mark(now, 0)
                self._idle = True
            else:
                self._idle = False
            return
        self._end()
        self._idle = self._start() is None

    def _start(self):
        """Admit, make room, and begin the next run (a decode run, a chunked-prefill run or one
        unchunked prefill iteration); return its timer, or None when there is nothing to do."""
        if self.waiting:
            self._admit()
        if self.ctx + self.kv_prefill + len(self.decoding) > self.kv_capacity:
            self._make_room()
        if self.prefilling:
            if self.chunked:
                head = self.prefilling[0]
                if head[1] - head[2] > self.token_budget - len(self.decoding):
                    self._kind = 1  # the head needs several iterations: skip them
                    return self._start_prefill_run()
            return self._start_prefill_iteration()  # the head's prompt fits in this iteration
        n = len(self.decoding)
        if not n:
            return None
        self._kind = 0
        env = self.env
        run = self.kernel.decode_run(n, self.ctx, self.throttle)
        top = self.heap[0]  # the next finish step, unless the top entry is stale (preempted)
        k_next = ((top >> _RID_BITS) if self.decoding.get(top & _RID_MASK) == top >> _RID_BITS
                  else self._next_finish_step()) - self.step
        k_full = int((self.kv_capacity - self.ctx - self.kv_prefill) // n)
        k = max(min(k_next, k_full), 1)
        start = env._now
        self._mark(start, n, n)
        # Sleep until the next completion. An admissible arrival meanwhile moves the
        # wake-up to the end of the step under way (`_cut_run`), so a run costs one event.
        self._run, self._run_start, self._run_k, self._run_n = run, start, k, n
        self._run_cum = None
        self._run_cuttable = n < self.max_batch  # (nothing is prefilling here)
        self._timer = self._arm_at(start + run.time_for_steps(k))
        return self._timer

    def _end(self) -> None:
        kind = self._kind
        if kind == 1:
            self._end_prefill_run()
        elif kind == 2:
            self._end_prefill_iteration()
        else:  # 0: a decode run; 3: a prefill iteration fused with the decode run after it
            now = self.env._now
            if kind == 3 and self._fused is not None:
                self._settle(now)
            k = self._run_k
            self.step += k
            self.ctx += self._run_n * k
            self._mark(now, 0)
            self._complete_due(now)

    def _make_room(self) -> None:
        """Before an iteration: if every running sequence's next token would not fit in the KV
        cache, evict the newest request (a prefilling one first, then decoders), as vLLM does."""
        while self.ctx + self.kv_prefill + len(self.decoding) > self.kv_capacity:
            if self.prefilling and (self.decoding or len(self.prefilling) > 1):
                self._unadmit_newest_prefill()
            elif len(self.decoding) > 1:
                self._preempt()
            else:
                return  # one request alone always fits (the router refused what never fits)

    def _unadmit_newest_prefill(self) -> None:
        rid, total, _done, generated = self.prefilling.pop()
        self.kv_prefill -= total + 1
        if generated:
            self.resume[rid] = generated
        self.waiting.appendleft(rid)  # its prompt chunks so far are recomputed later
        self.preemptions += 1

    def _admit(self) -> None:
        """Move waiting requests into the batch while batch size and KV cache allow (FCFS)."""
        waiting = self.waiting
        prefilling = self.prefilling
        prompt = self._prompt
        while waiting:
            rid = waiting[0]
            running = len(self.decoding) + len(prefilling)
            if running:  # `_can_admit`, inline (an empty replica always takes the head)
                if running >= self.max_batch:
                    break
                need = prompt[rid] + self.resume.get(rid, 0) + 1
                if self.ctx + self.kv_prefill + need + running + 1 > self.kv_capacity:
                    break
            waiting.popleft()
            generated = self.resume.pop(rid, 0) if self.resume else 0
            tokens = prompt[rid] + generated
            prefilling.append([rid, tokens, self._cached[rid], generated])
            self.kv_prefill += tokens + 1

    def _start_prefill_iteration(self):
        """One iteration: prompt chunks of admitted requests plus one token for every decoder."""
        n_dec = len(self.decoding)
        budget = self.token_budget - n_dec
        chunks: list[tuple[list[int], int]] = []
        tokens = 0
        attended = 0.0
        admitted_s = self.req.admitted_s
        now = self.env._now
        chunked = self.chunked
        whole = True  # every chunk is the rest of its prompt
        for item in self.prefilling:
            done = item[2]
            remaining = item[1] - done
            if chunked:
                take = min(remaining, max(budget - tokens, 0))
            else:
                take = remaining if (tokens + remaining <= budget or not chunks) else 0
            if take <= 0:
                break
            if take < remaining:
                whole = False
            chunks.append((item, take))
            rid = item[0]
            a = admitted_s[rid]
            if a != a:  # NaN: its first chunk is scheduled now
                admitted_s[rid] = now
            tokens += take
            attended += take * (done + take / 2.0)
        if n_dec:
            dt = self.kernel.step_time_s(tokens, n_dec, self.ctx, attended, self.throttle)
        else:  # an empty replica's prefill: the same few shapes recur (pure function: memoised)
            key = (tokens, self.ctx, attended, self.throttle)
            dt = self._memo.get(key)
            if dt is None:
                dt = self.kernel.step_time_s(tokens, 0, self.ctx, attended, self.throttle)
                if len(self._memo) >= _MEMO_MAX:
                    self._memo.clear()
                self._memo[key] = dt
        self._mark(now, n_dec + len(chunks), tokens + n_dec)
        if whole and self._can_fuse and len(chunks) == len(self.prefilling):
            timer = self._start_fused(now + dt, chunks, n_dec)
            if timer is not None:
                return timer
        self._kind = 2
        self._pf = (chunks, n_dec)
        self._run_cuttable = False
        self._timer = self._arm_at(now + dt)
        return self._timer

    def _start_fused(self, t1: float, chunks: list, n_dec: int):
        """Plan the decode run that follows a prefill iteration ending at `t1` in which every
        prefilling request finishes its prompt, and return one timer for both; None when the
        iteration's end changes anything a plan made now cannot see (a request finishes, an
        admission or an eviction becomes due): then it gets its own event, as before.

        The state at `t1` is worked out here as `_end_prefill_iteration` and `_start` would
        leave it; `_settle` applies the iteration's end when anything looks at the replica at
        or after `t1` (an arrival, a crash, the window's end, the run's own end)."""
        output = self._output
        step1 = self.step + 1 if n_dec else self.step
        ctx1 = self.ctx + n_dec
        kv1 = self.kv_prefill
        if n_dec:
            top = self.heap[0]  # (as in `_start`: the top entry, unless stale)
            k_next = ((top >> _RID_BITS) if self.decoding.get(top & _RID_MASK) == top >> _RID_BITS
                      else self._next_finish_step())
        else:
            k_next = 1 << 62
        if k_next <= step1:
            return None  # a decoder finishes at t1
        for item, _take in chunks:
            rid, total, _done, generated = item
            left = output[rid] - generated - 1
            if left <= 0:
                return None  # its first token is its last
            kv1 -= total + 1
            ctx1 += total + 1
            if step1 + left < k_next:
                k_next = step1 + left
        n = n_dec + len(chunks)
        if ctx1 + kv1 + n > self.kv_capacity:
            return None  # room must be made at t1
        if self.waiting:
            rid = self.waiting[0]
            need = self._prompt[rid] + self.resume.get(rid, 0) + 1
            if n < self.max_batch and ctx1 + kv1 + need + n + 1 <= self.kv_capacity:
                return None  # the head of the queue is admitted at t1
        if n_dec:
            run = self.kernel.decode_run(n, ctx1, self.throttle)
        else:  # from an empty replica: as for its prefill iteration, the same runs recur
            key = (n, ctx1, self.throttle)
            run = self._run_memo.get(key)
            if run is None:
                run = self.kernel.decode_run(n, ctx1, self.throttle)
                if len(self._run_memo) >= _MEMO_MAX:
                    self._run_memo.clear()
                self._run_memo[key] = run
        k_full = int((self.kv_capacity - ctx1 - kv1) // n)
        k = max(min(k_next - step1, k_full), 1)
        self._kind = 3
        self._fused = (t1, chunks, n_dec)
        self._switch = (t1, n, n)  # the decode run's batch from t1 on (`_mark` settles it)
        self._run, self._run_start, self._run_k, self._run_n = run, t1, k, n
        self._run_cum = None
        self._run_cuttable = n < self.max_batch
        self._timer = self._arm_at(t1 + run.time_for_steps(k))
        return self._timer

    def _settle(self, now: float) -> None:
        """Apply a fused run's prefill-iteration end once `now` has reached it."""
        fused = self._fused
        if fused is None or now < fused[0]:
            return
        self._fused = None
        t1, chunks, n_dec = fused
        if n_dec:
            self.step += 1
            self.ctx += n_dec
        for item, take in chunks:
            item[2] += take
        prefilling = self.prefilling
        while prefilling and prefilling[0][2] >= prefilling[0][1]:
            rid, total, _done, generated = prefilling.popleft()
            self.kv_prefill -= total + 1
            self._join_decode(rid, total, generated + 1, t1)

    def _end_prefill_iteration(self) -> None:
        chunks, n_dec = self._pf
        self._pf = None
        now = self.env._now
        self._mark(now, 0)
        if n_dec:
            self.step += 1
            self.ctx += n_dec
            self._complete_due(now)
        for item, take in chunks:
            item[2] += take
        while self.prefilling and self.prefilling[0][2] >= self.prefilling[0][1]:
            rid, total, _done, generated = self.prefilling.popleft()
            self.kv_prefill -= total + 1
            self._join_decode(rid, total, generated + 1, now)

    def _start_prefill_run(self):
        """Chunked prefill, event skipping: the iterations up to the one in which the head of the
        prefill queue finishes its prompt, priced in one kernel call, one SimPy event.

        Before that last iteration the head takes the whole budget left by the decoders (nobody
        behind it gets a token), so iteration j has `take` prompt tokens, attended context growing
        by `take` per iteration and decode context growing by n_dec: a numpy row per iteration.
        The run also ends when a decoder finishes or the KV cache would fill (membership changes);
        an admissible arrival cuts it at the end of the iteration under way, as for decode runs.
        """
        env = self.env
        kernel = self.kernel
        now = env._now
        n_dec = len(self.decoding)
        room = self.token_budget - n_dec
        take = room if room > 0 else 0
        head = self.prefilling[0]
        done0 = head[2]
        remaining = head[1] - done0
        m = (remaining - 1) // take if take > 0 else 1 << 62  # head-only iterations
        k = m + 1
        if n_dec:
            k_next = self._next_finish_step() - self.step
            k_full = int((self.kv_capacity - self.ctx - self.kv_prefill) // n_dec)
            k = min(k, max(min(k_next, k_full), 1))
        h = min(m, k)
        admitted_s = self.req.admitted_s
        if h > _SMALL_RUN:
            j = np.arange(h, dtype=float)
            times = kernel.iteration_time_s(take, n_dec, self.ctx + n_dec * j,
                                            take * (done0 + take * j + take / 2.0), self.throttle)
            cum = np.cumsum(times).tolist()
        else:  # a few iterations: plain floats beat numpy's per-call overhead
            cum = []
            t = 0.0
            step_time_s, ctx, thr = kernel.step_time_s, self.ctx, self.throttle
            for i in range(h):
                t += step_time_s(take, n_dec, ctx + n_dec * i, take * (done0 + take * i + take / 2.0), thr)
                cum.append(t)
        chunks: list[tuple[list[int], int]] = []
        switch = None
        if k > m:  # the head's last chunk runs in this run: price that iteration as usual
            t_final = cum[-1] if h else 0.0
            head_done = done0 + take * m
            tokens = 0
            attended = 0.0
            budget = room
            for item in self.prefilling:
                left = item[1] - (head_done if item is head else item[2])
                give = min(left, max(budget - tokens, 0))
                if give <= 0:
                    break
                chunks.append((item, give))
                tokens += give
                attended += give * ((head_done if item is head else item[2]) + give / 2.0)
            ctx_f = self.ctx + n_dec * m
            dt = kernel.step_time_s(tokens, n_dec, ctx_f, attended, self.throttle)
            cum.append(t_final + dt)
            final = (n_dec + len(chunks), tokens + n_dec)
            new = [item[0] for item, _ in chunks
                   if admitted_s[item[0]] != admitted_s[item[0]] and not (h and item is head)]
            if h:
                switch = (now + t_final, final[0], final[1])
                self._stamps = (now + t_final, new) if new else None
            else:
                for rid in new:
                    admitted_s[rid] = now
        if h:
            if take and admitted_s[head[0]] != admitted_s[head[0]]:
                admitted_s[head[0]] = now  # its first chunk is scheduled now
            self._mark(now, n_dec + (1 if take else 0), take + n_dec)
        else:
            self._mark(now, final[0], final[1])
        self._switch = switch  # after `_mark`, which settles any earlier one
        self._pf = (take, m, chunks, n_dec, head)
        self._run_cum, self._run_start, self._run_k = cum, now, k
        self._run_cuttable = len(self.decoding) + len(self.prefilling) < self.max_batch
        self._timer = self._arm(cum[k - 1])
        return self._timer

    def _end_prefill_run(self) -> None:
        env = self.env
        e = self._run_k
        take, m, chunks, n_dec, head = self._pf
        self._run_cum = self._pf = None
        now = env._now
        self._mark(now, 0)
        self._apply_stamps(now)
        if n_dec:
            self.step += e
            self.ctx += n_dec * e
            self._complete_due(now)
        head[2] += take * min(e, m)
        if e > m:
            for item, give in chunks:
                if item is head:
                    item[2] = item[1]
                else:
                    item[2] += give
        while self.prefilling and self.prefilling[0][2] >= self.prefilling[0][1]:
            rid, total, _done, generated = self.prefilling.popleft()
            self.kv_prefill -= total + 1
            self._join_decode(rid, total, generated + 1, now)

    def settle(self, now: float) -> None:
        """At the window's end: record admissions of a prefill run's last iteration if it has
        started by `now` (the run's wake-up, which would record them, lies beyond the window),
        and the end of a fused run's prefill iteration if it is past."""
        self._settle(now)
        self._apply_stamps(now)

    def _apply_stamps(self, now: float) -> None:
        stamps = self._stamps
        if stamps is not None and now >= stamps[0]:
            admitted_s = self.req.admitted_s
            for rid in stamps[1]:
                if admitted_s[rid] != admitted_s[rid]:
                    admitted_s[rid] = stamps[0]
        self._stamps = None

    def _join_decode(self, rid: int, context: int, generated: int, now: float) -> None:
        first = self.req.first_token_s
        t = first[rid]
        if t != t:  # NaN: first token of this request
            first[rid] = now + self._host_s
        remaining = self._output[rid] - generated
        if remaining <= 0:
            self._finish(rid, now)
            return
        finish_step = self.step + remaining
        self.decoding[rid] = finish_step
        heapq.heappush(self.heap, (finish_step << _RID_BITS) | rid)
        self.ctx += context + 1

    def _next_finish_step(self) -> int:
        heap = self.heap
        decoding = self.decoding
        while True:
            top = heap[0]
            if decoding.get(top & _RID_MASK) == top >> _RID_BITS:
                return top >> _RID_BITS
            heapq.heappop(heap)  # stale entry of a preempted request

    def _mark(self, now: float, n_running: int, tokens: int = 0) -> None:
        """Account busy time, batch-size and power areas since the last mark, then start an
        iteration of `n_running` sequences processing `tokens` tokens (0, 0: idle). A prefill run
        whose last iteration differs leaves a `_switch` (its start time and figures): settled here."""
        sw = self._switch
        if sw is not None:
            self._switch = None
            t_sw = sw[0]
            if now > t_sw:  # the planned switch came first: account up to it, then start it
                if self._n_running:
                    dt = t_sw - self._since
                    self.busy_s += dt
                    self.batch_area += self._n_running * dt
                    self.power_area += self._activity * dt
                self._since = t_sw
                self._n_running = sw[1]
                if sw[1]:
                    self._activity = (MEMORY_BOUND_ACTIVITY + self._activity_per_token * sw[2]
                                      if sw[2] < self._ridge_tokens else 1.0)
        if self._n_running:
            dt = now - self._since
            self.busy_s += dt
            self.batch_area += self._n_running * dt
            self.power_area += self._activity * dt
        self._since = now
        self._n_running = n_running
        if n_running:
            self._activity = (MEMORY_BOUND_ACTIVITY + self._activity_per_token * tokens
                              if tokens < self._ridge_tokens else 1.0)

    def busy_at(self, now: float) -> tuple[float, float, float]:
        """(busy seconds, batch-size area, power-activity area) up to `now`, counting the
        iteration under way."""
        sw = self._switch
        if sw is not None and now > sw[0] and self._n_running:
            dt = sw[0] - self._since
            busy = self.busy_s + dt
            batch = self.batch_area + self._n_running * dt
            power = self.power_area + self._activity * dt
            act = (MEMORY_BOUND_ACTIVITY + self._activity_per_token * sw[2]
                   if sw[2] < self._ridge_tokens else 1.0)
            dt = now - sw[0]
            return busy + dt, batch + sw[1] * dt, power + act * dt
        if self._n_running:
            dt = now - self._since
            return (self.busy_s + dt, self.batch_area + self._n_running * dt,
                    self.power_area + self._activity * dt)
        return self.busy_s, self.batch_area, self.power_area

    def _complete_due(self, now: float) -> None:
        heap = self.heap
        if not heap or heap[0] >= (self.step + 1) << _RID_BITS:
            return  # nobody finishes at or before this step
        decoding = self.decoding
        prompt, output = self._prompt, self._output
        limit = (self.step + 1) << _RID_BITS  # entries finishing at or before this step
        while heap and heap[0] < limit:
            top = heapq.heappop(heap)
            rid = top & _RID_MASK
            if decoding.get(rid) != top >> _RID_BITS:
                continue  # stale entry of a preempted request
            del decoding[rid]
            tokens = prompt[rid] + output[rid]
            self.ctx -= tokens
            # `_finish`, inline (one call less per completion)
            req = self.req
            req.finish_s[rid] = now + self._host_s
            req.status[rid] = COMPLETED
            self.outstanding_tokens -= tokens
            self.n_in -= 1
            self.spare += 1
            self.completed += 1
            self.on_done(rid, self)

    def _finish(self, rid: int, now: float) -> None:
        req = self.req
        req.finish_s[rid] = now + self._host_s
        req.status[rid] = COMPLETED
        self.outstanding_tokens -= self._prompt[rid] + self._output[rid]
        self.n_in -= 1
        self.spare += 1
        self.completed += 1
        self.on_done(rid, self)

    def _preempt(self) -> None:
        """KV cache full: evict the most recently admitted decoder (recompute, as vLLM does)."""
        rid = next(reversed(self.decoding))
        finish_step = self.decoding.pop(rid)
        generated = self._output[rid] - (finish_step - self.step)
        self.ctx -= self._prompt[rid] + generated
        self.resume[rid] = generated
        self.waiting.appendleft(rid)
        self.preemptions += 1

    # ---- crashes -----------------------------------------------------------------------------
    def crash(self) -> list[int]:
        """Go down now; return the requests that were on this replica (the caller re-routes them)."""
        now = self.env._now
        self._settle(now)  # first tokens produced before the crash stand
        self.up = False
        self.down_intervals.append([now, None])
        rids = self.evacuate()
        # the iteration under way is lost
        if self._timer is not None:
            self._drop(self._timer)
            self._timer = None
        self._mark(now, 0)
        self._apply_stamps(now)
        self._run_cum = self._pf = None
        self._fused = None
        self._idle = False  # down: arrivals are not routed here; `restore` starts serving again
        self._repaired = self.env.event()
        self._repaired.callbacks.append(self._on_repaired)
        return rids

    def _on_repaired(self, _event) -> None:
        self._idle = self._start() is None

    def restore(self) -> None:
        """Back in service after a restart or repair."""
        self.up = True
        self.down_intervals[-1][1] = self.env._now
        self._repaired.succeed()

    def up_time_s(self, start_s: float, end_s: float) -> float:
        """Seconds this replica was up within [start_s, end_s]."""
        down = 0.0
        for a, b in self.down_intervals:
            b = end_s if b is None else b
            down += max(0.0, min(b, end_s) - max(a, start_s))
        return (end_s - start_s) - down

    def evacuate(self) -> list[int]:
        """Take every request off this replica (crash); the caller re-routes them."""
        rids = list(self.waiting) + [item[0] for item in self.prefilling] + list(self.decoding)
        self.waiting.clear()
        self.prefilling.clear()
        self.decoding.clear()
        self.heap.clear()
        self.resume.clear()
        self.ctx = 0.0
        self.kv_prefill = 0.0
        self.outstanding_tokens = 0
        self.n_in = 0
        self.spare = self.max_batch
        return rids
