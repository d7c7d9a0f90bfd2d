"""scripts/napari_deps.sh checks every package the headless napari tests need (not only xvfb-run)."""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "napari_deps.sh"


def _missing(tmp_path, absent: set[str]) -> str:
    """Run the script with a fake dpkg-query that reports every package installed except ``absent``."""
    fake = tmp_path / "dpkg-query"
    cases = " ".join(sorted(absent)) or "none"
    fake.write_text("#!/bin/sh\n"
                    'for a; do last="$a"; done\n'  # the package is the last argument
                    f'for p in {cases}; do [ "$last" = "$p" ] && exit 1; done\n'
                    'printf "install ok installed"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("absent", [set(), {"libgl1-mesa-dri"}, {"libxcb-cursor0", "xvfb"}])
def test_lists_exactly_the_missing_packages(tmp_path, absent):
    assert set(_missing(tmp_path, absent).split()) == absent


def test_mesa_is_checked_even_when_xvfb_is_there(tmp_path):
    assert _missing(tmp_path, {"libgl1-mesa-dri", "libegl1"}) == "libgl1-mesa-dri libegl1"
