"""A cache that cannot go stale: the key follows the package's source and the content of the
question (with the workload's rate normalised out), and the cache never shows in summary.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fleetsim
from fleetsim.serving import goodput
from fleetsim.serving.capacity import capacity

FAST = ["serving.goodput.precision=0.1", "serving.goodput.max_windows=30",
        "serving.goodput.requests_per_window=400", "serving.goodput.duration_s=150",
        "serving.goodput.warmup_s=20"]


def test_touching_any_source_file_changes_the_key(tmp_path):
    pkg = Path(goodput.__file__).resolve().parents[1]
    copy = tmp_path / "fleetsim"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
    base = goodput.source_digest(copy)
    assert base == goodput.source_digest(pkg)  # content, not location
    files = sorted(p for p in copy.rglob("*") if p.suffix in (".py", ".yaml", ".csv") and p.is_file())
    assert len(files) > 50
    seen = {base}
    for f in files:
        original = f.read_bytes()
        f.write_bytes(original + b"\n")
        goodput.source_digest.cache_clear()
        d = goodput.source_digest(copy)
        assert d not in seen, f"editing {f.relative_to(copy)} left the key unchanged"
        seen.add(d)
        f.write_bytes(original)
    goodput.source_digest.cache_clear()


def test_capacity_key_covers_what_the_serving_world_imports(tmp_path):
    """The capacity key hashes only CAPACITY_PARTS: every fleetsim module a capacity search
    imports (read from sys.modules in a fresh interpreter, not from that list) must lie in it,
    and an edit in a layer above (fleet, report) must leave the key alone."""
    import subprocess
    import sys

    code = ("import sys, fleetsim.serving.capacity, fleetsim.serving.goodput, fleetsim.serving.window; "
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('fleetsim.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    pkg = Path(goodput.__file__).resolve().parents[1]
    for mod in out.split():
        top = mod.split(".")[1]
        part = top if (pkg / top).is_dir() else top + ".py"
        assert part in goodput.CAPACITY_PARTS, f"capacity imports {mod}, which its cache key does not hash"
    copy = tmp_path / "fleetsim"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
    key = lambda: goodput.source_digest(copy, goodput.CAPACITY_PARTS)
    base = key()
    for rel, changes in (("fleet/__init__.py", False), ("report/__init__.py", False),
                         ("kernel/latency.py", True), ("catalog/chips.yaml", True)):
        f = copy / rel
        original = f.read_bytes()
        f.write_bytes(original + b"\n")
        goodput.source_digest.cache_clear()
        assert (key() != base) is changes, rel
        f.write_bytes(original)
    goodput.source_digest.cache_clear()


def test_key_follows_source_and_content_not_rate(quickstart_path, monkeypatch):
    scen = fleetsim.load_scenario(quickstart_path)
    pool, wl, g = scen.serving.pools["h20"], scen.serving.workloads["chat"], scen.serving.goodput
    chips, models = fleetsim.api.resolve_catalogs(scen)
    key = lambda w=wl, p=pool: goodput.cache_key(p, w, g, "jsq", chips["h20"], models[w.model], 7,
                                                 scen.base_dir)
    k0 = key()
    doubled = wl.model_copy(update={"arrival": wl.arrival.model_copy(update={"rate_per_s": 9.0})})
    assert key(doubled) == k0
    longer = wl.model_copy(update={"output_tokens": wl.output_tokens.model_copy(update={"median": 300})})
    assert key(longer) != k0
    assert key(p=pool.model_copy(update={"tp": 8})) != k0
    assert key(p=pool.model_copy(update={"replicas": 99})) == k0  # the cell sets replicas
    monkeypatch.setattr(goodput, "source_digest", lambda root=None, parts=None: "edited")
    assert key() != k0


def test_same_shape_at_twice_the_rate_hits(quickstart_path):
    from fleetsim.results.cache import ResultCache

    scen = fleetsim.load_scenario(quickstart_path, FAST + ["serving.goodput.cell_replicas=2"])
    first = capacity(scen, "domestic", "chat", cache=ResultCache())
    twice = scen.with_overrides(["serving.workloads.chat.arrival.rate_per_s=9.0"])
    second = capacity(twice, "domestic", "chat", cache=ResultCache())
    assert second.cached and second.goodput_rps == first.goodput_rps


def test_identical_runs_give_identical_summary_bytes(quickstart_path, tmp_path):
    scen = fleetsim.load_scenario(quickstart_path, FAST + [
        "serving.goodput.enabled=true", "serving.duration_s=60", "serving.warmup_s=10",
        "serving.goodput.cell_replicas=3"])
    fleetsim.run(scen, out_dir=tmp_path / "a")  # computes
    fleetsim.run(scen, out_dir=tmp_path / "b")  # memo hits
    a, b = (tmp_path / "a" / "summary.json").read_bytes(), (tmp_path / "b" / "summary.json").read_bytes()
    assert a == b and b"cached" not in a
    ta = json.loads((tmp_path / "a" / "manifest.json").read_text())["timings_s"]
    tb = json.loads((tmp_path / "b" / "manifest.json").read_text())["timings_s"]
    assert ta["goodput_cache_misses"] == 2 and tb["goodput_cache_misses"] == 0
    assert tb["goodput_cache_memo_hits"] + tb["goodput_cache_disk_hits"] == 2
    # from disk in a fresh process: clear the memo, same bytes again
    from fleetsim.serving import capacity as cap

    cap._MEMO.clear()
    fleetsim.run(scen, out_dir=tmp_path / "c")
    assert (tmp_path / "c" / "summary.json").read_bytes() == a
    tc = json.loads((tmp_path / "c" / "manifest.json").read_text())["timings_s"]
    assert tc["goodput_cache_disk_hits"] == 2
