"""Rented chips draw power and are (mostly) US chips: Mélange's toy fleet, all rented A100 and
A10G, counts in energy, power and US dependence."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import fleetsim
from fleetsim.api import load_scenario

MELANGE = pathlib.Path(__file__).parent.parent / "scenarios" / "examples" / "melange_toy.yaml"


@pytest.fixture(scope="module")
def melange():
    return fleetsim.run(load_scenario(MELANGE))


def test_rented_chips_draw_power_and_energy(melange):
    """1 A100 (TDP 400 W) and 3 A10G (300 W) rented every day: the fleet's draw lies between a
    quarter of their TDP and all of it, times the PUE; energy is that draw for 24 h; none of it
    is billed as power (the rent is all-in)."""
    s = melange.summary["fleet"]
    sc = melange.scenario
    pue = sc.fleet.finance.pue
    tdp_w = 1 * 400 + 3 * 300
    day = melange.timeline.groupby("date")[["power_mw", "energy_mwh", "power_usd"]].sum()
    assert np.all(day["power_mw"] * 1e6 <= tdp_w * pue + 1e-6)
    assert np.all(day["power_mw"] * 1e6 >= 0.25 * tdp_w * pue)
    assert np.allclose(day["energy_mwh"], day["power_mw"] * 24.0)
    assert (day["power_usd"] == 0).all() and s["ledger_usd_by_kind"]["power"] == 0.0
    served_mtok = 30.0 * 86400 * 7 / 1e6
    assert s["energy_kwh_per_mtok"] == pytest.approx(day["energy_mwh"].sum() * 1000 / served_mtok, rel=1e-2)
    assert s["energy_kwh_per_mtok"] > 0


def test_rented_nvidia_chips_are_us_supplied(melange):
    assert melange.summary["fleet"]["us_dependence_share_end"] == 1.0
    assert melange.summary["fleet"]["us_dependence_share_mean"] == 1.0


def test_a_rent_channel_can_say_it_is_not_us_controlled():
    res = fleetsim.run(load_scenario(MELANGE, ["fleet.channels.cloud.us_controlled=false"]))
    assert res.summary["fleet"]["us_dependence_share_end"] == 0.0
    # energy does not depend on who controls the supply
    assert res.summary["fleet"]["energy_kwh_per_mtok"] > 0


def test_console_over_futures_names_the_rented_chips(melange):
    """The console over several futures printed 'fleet at end (chips): a100 0, a10g 0' for a fleet
    that is all rented, and nothing about the rentals (only the one-future console had the line)."""
    from fleetsim.results.display import fleet_text

    assert melange.summary["futures"]["replications"] > 1
    text = fleet_text(melange.summary)
    line = next(ln for ln in text.splitlines() if "rented at end" in ln)
    assert "a100 1" in line and "a10g 3" in line and "rental USD" in line, text
