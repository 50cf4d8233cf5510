"""Signal a real `fleetsim run` while it simulates: shared by the interrupt tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SERVING = Path(__file__).resolve().parent.parent / "scenarios" / "serving_quickstart.yaml"


def signal_a_simulating_run(tmp_path, sig, preexec_fn=None):
    """Start a long serving run and send `sig` once it says it simulates (its progress line: so no
    -q and no $CI, which quiets progress), not a second after its folder appears: a faster machine
    had finished simulating by then, a slower one not yet started. Returns (returncode, folder,
    stderr text)."""
    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    with open(log, "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetsim.cli", "run", str(SERVING), "-o", str(out),
             "--set", "serving.duration_s=20000"],
            stdout=subprocess.DEVNULL, stderr=err_file, text=True,
            env={**env, "FLEETSIM_CACHE_DIR": str(tmp_path / "cache")}, preexec_fn=preexec_fn,
        )
    try:
        deadline = time.monotonic() + 120
        while "serving window:" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before the signal (rc {proc.returncode}):\n" + log.read_text()
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, log.read_text()
