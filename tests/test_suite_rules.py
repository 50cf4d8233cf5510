"""Rules of the suite itself: property tests draw the same examples everywhere, and the browser
test fails (never skips) in CI when chromium is missing."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings


def test_hypothesis_is_deterministic_locally_and_in_ci():
    if os.environ.get("HYPOTHESIS_PROFILE", "deterministic") != "deterministic":
        pytest.skip("an explicit HYPOTHESIS_PROFILE was asked for")
    assert settings.default.derandomize is True and settings.default.database is None
    # a property test written without its own settings gets no wall-clock deadline either
    from hypothesis import HealthCheck

    assert settings.default.deadline is None and HealthCheck.too_slow in settings.default.suppress_health_check


def test_browser_test_fails_in_ci_without_chromium(monkeypatch, tmp_path):
    import test_report

    monkeypatch.setattr(test_report, "_chromium", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is missing in CI"):
        test_report.render(tmp_path / "page.html", tmp_path)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        test_report.render(tmp_path / "page.html", tmp_path)
