"""`pip install .`, `pip install -e .` and `pip wheel .` work in a fresh virtual environment (the dependencies
come from the machine's site-packages, so nothing large is installed twice)."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT


def source_tree(dest: Path) -> Path:
    """The repository's tracked files (what a clone has), without run outputs."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    files = listed.stdout.split() if listed.returncode == 0 and listed.stdout else None
    if files is None:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns("runs", ".git", "*.egg-info", "build", "dist"))
        return dest
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


@pytest.mark.slow
def test_pip_install_editable_and_wheel(tmp_path):
    src = source_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"

    def pip(*args):
        r = subprocess.run([str(py), "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]

    def where() -> str:        # imported from outside the source tree, as a user's script would
        r = subprocess.run([str(py), "-c", "import nexus, nexus.cli, nexus.upfb.fusion; print(nexus.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.strip()

    pip("install", "--no-deps", str(src))
    assert where().startswith(str(venv)) and "site-packages" in where()
    pip("install", "--no-deps", "-e", str(src))
    assert where() == str(src / "nexus" / "__init__.py")
    pip("wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(src))
    (wheel,) = (tmp_path / "dist").glob("nexus-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"nexus/cli.py", "nexus/upfb/fusion.py", "nexus/training/run_dir.py"} <= set(names)
    assert not any(n.startswith(("tests/", "tools/")) for n in names)
