"""`pip install .`, `pip install -e .` and `pip wheel .` work in a fresh virtual environment. The dependencies come
from the environment running the tests (a virtualenv, conda or the system Python: whichever it is), so nothing
large is installed twice and nothing depends on what the base Python has installed."""
import shutil
import site
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


def dependency_dirs() -> list[str]:
    """Where this interpreter finds its packages: its site folders and any site-packages on sys.path. Not the base
    Python's (`--system-site-packages` would give those: inside a virtualenv they are not where torch is)."""
    dirs = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else []),
            *(p for p in sys.path if Path(p).name in ("site-packages", "dist-packages"))]
    return list(dict.fromkeys(d for d in dirs if Path(d).is_dir()))


def make_venv(venv: Path, python: str = sys.executable, pip: bool = True, deps: list[str] | None = None) -> Path:
    """A fresh virtualenv of `python` that sees `deps` (default: this interpreter's package folders) through a
    .pth file, after its own site-packages. -> its python."""
    subprocess.run([python, "-m", "venv", *([] if pip else ["--without-pip"]), str(venv)], check=True)
    py = venv / "bin" / "python"
    own = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    (Path(own) / "_test_dependencies.pth").write_text("\n".join(deps or dependency_dirs()) + "\n")
    return py


def _imports_torch(py: Path) -> bool:
    return subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0


def test_the_install_venv_does_not_need_the_base_python(tmp_path):
    """The failure users saw: in a virtualenv whose base Python has no torch, `--system-site-packages` gives a venv
    without torch. Built here from a second Python (the OS's, which has no torch), holding this one's packages
    like a user's virtualenv does."""
    base = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                 if Path(p).is_file() and Path(p).resolve() != Path(sys.executable).resolve()
                 and not _imports_torch(Path(p))), None)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if base is None or version not in subprocess.run([base, "-V"], capture_output=True, text=True).stdout:
        pytest.skip(f"needs a second Python {version} without torch (e.g. the OS's /usr/bin/python3)")
    user_venv = make_venv(tmp_path / "user", base, pip=False)        # a user's venv: torch is in the venv only
    assert _imports_torch(user_venv)
    old = tmp_path / "old"           # what this test used to build inside it
    subprocess.run([str(user_venv), "-m", "venv", "--without-pip", "--system-site-packages", str(old)], check=True)
    assert not _imports_torch(old / "bin" / "python")
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from pathlib import Path; "
              f"from test_install import make_venv; make_venv(Path({str(tmp_path / 'new')!r}), sys.executable, False)")
    subprocess.run([str(user_venv), "-c", script], check=True, cwd=tmp_path)
    new = tmp_path / "new" / "bin" / "python"
    assert "include-system-site-packages = false" in (tmp_path / "new" / "pyvenv.cfg").read_text()
    assert _imports_torch(new)


@pytest.mark.slow
def test_pip_install_editable_and_wheel(tmp_path):
    src = source_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    py = make_venv(venv)

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
