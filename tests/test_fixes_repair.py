"""RepairShop: a unit whose own chip is scrapped keeps waiting on the spare shelf."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from fleetsim.reliability import EventLog, RepairShop
from fleetsim.scenario.reliability import RepairConfig

FIX = {"kind": "fixed"}
H = 3600.0


def test_lost_chip_unit_comes_back_with_another_units_repaired_chip():
    """Hand-computed: no spares, fixed repair 5 h, swap 1 h.
    Unit 0 crashes at 0 h; its chip is scrapped at 5 h (lost_share 1). Unit 1 crashes at 1 h
    with lost_share 0; its chip is repaired at 6 h and reaches the shelf. Unit 0 has waited
    longest (FIFO shelf), so it takes that chip: back at 6 + 1 = 7 h as 'repaired'. Unit 1 then
    waits with an empty shelf (one chip was lost, so one unit stays down)."""
    lost = RepairConfig(
        transient_share=0.0, lost_share=1.0, repair_h=FIX | {"value": 5}, swap_h=FIX | {"value": 1}
    )
    kept = lost.model_copy(update={"lost_share": 0.0})
    env = simpy.Environment()
    log = EventLog()
    shop = RepairShop(env, lost, np.random.default_rng(0), spares=0, log=log)
    procs = {}

    def crash(t_h, unit, cfg):
        yield env.timeout(t_h * H)
        shop.cfg = cfg  # the crash draws its outcome from the shop's config when it starts
        procs[unit] = env.process(shop.repair(unit, 8))

    env.process(crash(0.0, 0, lost))
    env.process(crash(1.0, 1, kept))
    env.run(until=500 * H)

    o = procs[0].value
    assert (o.kind, o.crash_s, o.up_s) == ("repaired", 0.0, 7 * H)
    assert procs[1].is_alive  # its chip went to unit 0; nothing else will come
    assert shop.shelf.level == 0
    c = shop.counts
    assert (c["lost_for_good"], c["chips_lost"], c["repaired"], c["spare_swap"]) == (1, 1, 1, 0)
    ev = log.to_arrays()
    assert list(ev["kind"]) == ["lost_for_good", "repair_done"]
    assert list(ev["time_s"]) == [5 * H, 7 * H]
    assert list(ev["replica"]) == [0, 0]


def test_lost_chip_unit_takes_a_spare_returned_later():
    """One spare, no queue, repair 5 h, swap 1 h. Unit 1 crashes at 0 h and takes the spare
    (back at 1 h); its chip is repaired at 5 h. Unit 0 crashes at 0.5 h (lost_share 1) onto an
    empty shelf and takes unit 1's repaired chip at 5 h: back at 6 h as 'repaired'. Its own chip
    is scrapped at 5.5 h, after it already had a chip, so only chips_lost counts it."""
    cfg = RepairConfig(
        transient_share=0.0, lost_share=0.0, repair_h=FIX | {"value": 5}, swap_h=FIX | {"value": 1}
    )
    env = simpy.Environment()
    shop = RepairShop(env, cfg, np.random.default_rng(0), spares=1)
    procs = {}

    def crash(t_h, unit, lost_share):
        yield env.timeout(t_h * H)
        shop.cfg = cfg.model_copy(update={"lost_share": lost_share})
        procs[unit] = env.process(shop.repair(unit, 8))

    env.process(crash(0.0, 1, 0.0))
    env.process(crash(0.5, 0, 1.0))
    env.run()
    assert (procs[1].value.kind, procs[1].value.up_s) == ("spare_swap", 1 * H)
    assert (procs[0].value.kind, procs[0].value.up_s) == ("repaired", 6 * H)
    assert shop.counts["chips_lost"] == 1 and shop.counts["lost_for_good"] == 0
    assert shop.shelf.level == 0


@pytest.mark.parametrize("seed", range(6))
def test_no_unit_waits_while_a_chip_sits_on_the_shelf(seed):
    """Random crashes (random lost share, spares, technicians), run until every bench is done.
    Chip conservation gives, exactly: shelf level - units still waiting
    = initial spares - chips lost; and with the new rule no unit waits while a chip is on the
    shelf, so min(shelf level, units waiting) = 0. (The old rule broke the second: a unit whose
    chip was lost gave up even when a repaired chip reached the shelf later.)"""
    rng = np.random.default_rng(seed)
    cfg = RepairConfig(
        transient_share=0.2,
        lost_share=float(rng.uniform(0.2, 0.8)),
        repair_h={"kind": "lognormal", "median": 10.0, "sigma": 0.8},
        swap_h=FIX | {"value": 1},
        technicians=int(rng.integers(1, 4)),
    )
    env = simpy.Environment()
    spares = int(rng.integers(0, 4))
    shop = RepairShop(env, cfg, np.random.default_rng(seed + 100), spares=spares)
    crash_h = np.sort(rng.uniform(0, 200, size=40))
    procs = []

    def crash(t_h, unit):
        yield env.timeout(t_h * H)
        procs.append(env.process(shop.repair(unit, 8)))

    for unit, t_h in enumerate(crash_h):
        env.process(crash(float(t_h), unit))
    env.run()  # ends when only waiting units (blocked on the shelf) are left
    waiting = sum(p.is_alive for p in procs)
    c = shop.counts
    assert c["in_repair"] == 0 and len(procs) == c["crashes"] == 40
    assert c["restart"] + c["spare_swap"] + c["repaired"] + waiting == c["crashes"]
    assert shop.shelf.level - waiting == spares - c["chips_lost"]
    assert min(shop.shelf.level, waiting) == 0
