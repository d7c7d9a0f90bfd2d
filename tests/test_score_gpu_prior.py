"""scripts/score_gpu_prior.py: ships weights only when they beat the bundled prior everywhere, and then
installs them and rewrites the card's rows and GPU section (scores injected; the protocol itself is
svimg.priors.evaluate's, tested in test_priors_evaluate.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "svimg" / "priors" / "weights" / "bundled.pt"


@pytest.fixture
def follow_up(monkeypatch, tmp_path):
    """The script as a module, its repository paths moved into tmp_path (a copy of the card, no weights)."""
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import score_gpu_prior as s

    (tmp_path / "docs").mkdir()
    (tmp_path / "svimg" / "priors" / "weights").mkdir(parents=True)
    shutil.copy(s.CARD, tmp_path / "docs" / "bundled_prior.md")
    monkeypatch.setattr(s, "REPO", tmp_path)
    monkeypatch.setattr(s, "CARD", tmp_path / "docs" / "bundled_prior.md")
    monkeypatch.setattr(s, "SCORE_JSON", tmp_path / "docs" / "bundled_prior_gpu_score.json")
    return s


def _inject_scores(monkeypatch, s, candidate_gain: dict):
    """score(): the first call (the candidate) returns 30 dB + gain per (size, sigma), the second 30 dB."""
    calls = []

    def fake(prior, sizes, frames):
        first = not calls
        calls.append(prior)
        return {size: [dict(sigma=sigma, prior_tweedie=30.0 + (candidate_gain[(size, sigma)] if first else 0.0),
                            prior_seconds=1.0) for sigma in (0.05, 0.1, 0.2)] for size in sizes}

    monkeypatch.setattr(s, "score", fake)


def test_refuses_when_worse_anywhere(follow_up, monkeypatch, tmp_path, capsys):
    gains = {(256, 0.05): 0.5, (256, 0.1): 0.4, (256, 0.2): -0.01, (64, 0.05): 0.2, (64, 0.1): 0.1, (64, 0.2): 0.3}
    _inject_scores(monkeypatch, follow_up, gains)
    assert follow_up.main([str(BUNDLED), "--ship"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "256px s=0.2: -0.01 dB" in out
    assert not any((tmp_path / "svimg" / "priors" / "weights").iterdir())


def test_ships_when_better_everywhere(follow_up, monkeypatch, tmp_path, capsys):
    gains = {(size, sigma): 0.25 for size in (256, 64) for sigma in (0.05, 0.1, 0.2)}
    _inject_scores(monkeypatch, follow_up, gains)
    assert follow_up.main([str(BUNDLED), "--ship"]) == 0
    shipped = tmp_path / "svimg" / "priors" / "weights" / "bundled.pt"
    assert shipped.read_bytes() == BUNDLED.read_bytes()
    card = follow_up.CARD.read_text()
    from svimg.priors.base import file_sha256

    assert f"| sha256 | `{file_sha256(shipped)}` |" in card
    assert "| 256x256 | 0.1 | 30.25 | 30.00 | +0.25 |" in card
    _inject_scores(monkeypatch, follow_up, gains)
    assert follow_up.main([str(BUNDLED), "--ship"]) == 0  # a second shipment replaces the section
    assert follow_up.CARD.read_text().count("## GPU run") == 1
    assert "SHIPPED" in capsys.readouterr().out


def test_without_ship_nothing_is_installed(follow_up, monkeypatch, tmp_path):
    _inject_scores(monkeypatch, follow_up, {(size, sigma): 1.0 for size in (256, 64) for sigma in (0.05, 0.1, 0.2)})
    assert follow_up.main([str(BUNDLED)]) == 0
    assert not any((tmp_path / "svimg" / "priors" / "weights").iterdir())
