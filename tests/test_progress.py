"""Progress bars: on by default, off by argument or by $TQDM_DISABLE (the study runner's)."""

from __future__ import annotations

import pytest

from afss_utils.progress import OFF_ENV, bar, enabled


@pytest.mark.parametrize(
    "env, progress, expected",
    [
        (None, True, True),
        (None, False, False),
        ("1", True, False),
        ("true", True, False),
        (" Yes ", True, False),
        ("0", True, True),
        ("", True, True),
        ("0", False, False),
    ],
)
def test_enabled_by_argument_and_environment(monkeypatch, env, progress, expected):
    if env is None:
        monkeypatch.delenv(OFF_ENV, raising=False)
    else:
        monkeypatch.setenv(OFF_ENV, env)
    assert enabled(progress) is expected
    b = bar(range(3), progress=progress)
    assert b.disable is not expected and list(b) == [0, 1, 2]  # a silent bar still iterates


def test_bar_over_nothing(monkeypatch):
    monkeypatch.delenv(OFF_ENV, raising=False)
    with bar(total=0, desc="empty") as b:
        assert b.total == 0 and not b.disable
