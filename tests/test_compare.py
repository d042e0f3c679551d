"""tools/compare.py: sample folders side by side. The grid videos hold each folder's frames under its label, the
page links only files it wrote and escapes every text, bad input is one line with exit code 2, and a real
headless Chromium plays every video on the page (skipped where /usr/bin/chromium is absent; CI installs it)."""
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from helpers import ROOT
from nexus.data.video import decode_mp4, write_mp4
from nexus.evaluation.grid import grid

CHROMIUM = Path("/usr/bin/chromium")
ODD = 'a red <ball> & "quotes"'        # a prompt HTML would misread unless escaped
SCRIPTED = "<script>alert(1)</script>"


def load_tool():
    spec = importlib.util.spec_from_file_location("compare_tool", ROOT / "tools" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def run_tool(*argv: str):
    from nexus.cli import run_tool as run
    return run(TOOL.main, [str(a) for a in argv])


@pytest.fixture(scope="module")
def real(tmp_path_factory, tiny_models):
    """Two folders written by tools/sample.py itself (one process: a sweep over the strategy), 2 prompts."""
    out = tmp_path_factory.mktemp("samples")
    prompts = out / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "ball", "prompt": ODD}) + "\n" + json.dumps({"id": "cube", "prompt":
                                                                                      "a blue cube"}) + "\n")
    r = subprocess.run([sys.executable, "tools/sample.py", "-m", "bridge.strategy=small_only,upfb",
                        f"prompt_file={prompts}", f"out_dir={out}", f"paths.small={tiny_models['wan']}",
                        f"paths.large={tiny_models['wan_large']}", f"paths.vlm={tiny_models['vlm']}",
                        "paths.tiny_models=null", "sampling.num_steps=2", "sampling.num_frames=5",
                        "sampling.progress=false"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    small, upfb = out / "bridge.strategy=small_only", out / "bridge.strategy=upfb"
    # scores in tools/evaluate.py's layout (<videos>/eval/scores.json), for the page to show
    (upfb / "eval").mkdir()
    (upfb / "eval" / "scores.json").write_text(json.dumps({
        "videos": 2, "scores": {"temporal_flickering": 0.8125}, "vbench": {"quality": 0.5, "total": None},
        "rows": [{"id": "ball", "prompt": ODD, "temporal_flickering": 0.75},
                 {"id": "cube", "prompt": "a blue cube", "temporal_flickering": 0.875}]}))
    return small, upfb


def bright_clip(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """Smooth bright frames (a codec keeps them close), each frame another shade, so held frames are seen."""
    y, x = np.mgrid[0:h, 0:w]
    frames = [150 + 40 * np.sin(x / w * 3 + i + seed)[..., None] + 30 * np.cos(y / h * 2)[..., None] * [1, 0.5, 0]
              for i in range(t)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def synthetic_folder(path: Path, like: Path, clips: dict[str, tuple[str, np.ndarray]], **settings) -> Path:
    """A sample folder with known frames: real samples.json (from `like`) with `settings` changed."""
    path.mkdir()
    record = json.loads((like / "samples.json").read_text())
    for key, value in settings.items():
        group, name = key.split("__")
        record["settings"][group][name] = value
    (path / "samples.json").write_text(json.dumps(record))
    (path / "prompts.jsonl").write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, (p, _) in
                                                clips.items()))
    for i, (_, frames) in clips.items():
        write_mp4(path / f"{i}.mp4", frames)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, real):
    root = tmp_path_factory.mktemp("synthetic")
    s1 = synthetic_folder(root / "s1", real[0], {"x #1": (SCRIPTED, bright_clip(6, 32, 32, 0)),   # "#": quoted in src
                                                 "y": ("common", bright_clip(6, 32, 32, 1))},
                          bridge__strategy="switch", sampling__seed=7)
    s2 = synthetic_folder(root / "s2", real[0], {"y2": ("common", bright_clip(4, 48, 64, 2)),
                                                 "z": ("only here", bright_clip(4, 48, 64, 3))})
    return s1, s2


@pytest.fixture(scope="module")
def page(tmp_path_factory, real, synthetic):
    """tools/compare.py over the two real folders and a synthetic one whose prompts differ."""
    out = tmp_path_factory.mktemp("compare") / "page"
    import contextlib
    import io
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        index = run_tool(*real, synthetic[0], "--labels", "small_only,upfb,switch", "--out", out)
    return Path(index), printed.getvalue()


class Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.srcs, self.rows = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "src" in a or "href" in a:
            self.srcs.append(a.get("src") or a.get("href"))
        if tag == "tr":
            self.rows.append(a.get("class"))


def test_grid_columns_are_the_sources_under_their_labels(tmp_path, synthetic):
    from nexus.evaluation.compare import compare_folders
    s1, s2 = synthetic
    index = compare_folders([s1, s2], tmp_path / "out", labels=["one", "two"], height=64, log=lambda m: None)
    (common,) = [p for p in (index.parent / "videos").iterdir() if p.name.endswith("-y.mp4")]
    out = decode_mp4(str(common)).astype(int)
    # padded to the longest (6 frames); 32 -> 64 doubles the first column, 48x64 -> 64x86 the second
    assert out.shape == (6, 64, 64 + 86, 3)
    src = decode_mp4(str(s1 / "y.mp4")).astype(int).repeat(2, axis=1).repeat(2, axis=2)
    below = slice(24, None)                                       # under the label box
    assert np.abs(out[:, below, :64] - src[:, below]).mean() < 3   # the same frames, within codec tolerance
    assert np.abs(out[:, :8, :16] - src[:, :8, :16]).mean() > 60   # the label is drawn over the corner
    held = out[:, below, 64:]
    assert np.abs(held[4] - held[3]).mean() < 1 and np.abs(held[5] - held[3]).mean() < 1   # last frame held
    assert np.abs(held[3] - held[2]).mean() > 3
    assert sorted(p.name[0] for p in (index.parent / "videos").iterdir()) == ["0"] * 3     # nothing half-written
    short = grid([bright_clip(6, 32, 32, 0), bright_clip(4, 32, 32, 1)], ["a", "b"], 32, "shortest")
    assert short.shape == (4, 32, 64, 3)


def test_the_page_links_its_own_files_escapes_text_and_marks_differences(page, real):
    index, printed = page
    text = index.read_text()
    parsed = Page(text)
    srcs = [s for s in parsed.srcs if s]
    assert len(srcs) == 4 and all(not s.startswith(("/", "file:", "http")) for s in srcs)     # relative only
    assert all((index.parent / unquote(s)).is_file() for s in srcs)
    assert "a red &lt;ball&gt; &amp; &quot;quotes&quot;" in text and ODD not in text
    assert SCRIPTED not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # the settings that differ are highlighted: the strategy and the seed (7 in the synthetic folder)
    assert re.search(r"<tr class=differs><th>bridge\.strategy</th><td>small_only</td><td>upfb</td><td>switch</td>",
                     text)
    assert re.search(r"<tr class=differs><th>sampling\.seed</th><td>0</td><td>0</td><td>7</td>", text)
    assert re.search(r"<tr><th>sampling\.num_steps</th><td>2</td>", text)                  # shown, not highlighted
    assert "<td>0.7500</td>" in text and "<td>0.8125</td>" in text      # upfb's scores: per video and mean
    assert "class=missing" in text
    assert printed.count("warning: prompt") == 4 and "missing from small_only, upfb" in printed
    assert printed.strip().splitlines()[-1] == f"wrote {index}"


@pytest.mark.parametrize("case", ["no folder", "no samples.json", "labels", "out is a file", "out under a file",
                                  "out not empty"])
def test_bad_input_is_one_line_naming_the_flag(tmp_path, real, capsys, case):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "v.mp4").write_bytes(b"")
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    out = {"out is a file": tmp_path / "file", "out under a file": tmp_path / "file" / "page",
           "out not empty": tmp_path / "full"}.get(case, tmp_path / "page")
    folders = {"no folder": [tmp_path / "nope", real[0]], "no samples.json": [real[0], plain]}.get(case, list(real))
    labels = ["--labels", "only_one"] if case == "labels" else []
    with pytest.raises(SystemExit) as e:
        run_tool(*folders, *labels, "--out", out)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    said = {"no folder": f"folders: {tmp_path / 'nope'}: no such folder",
            "no samples.json": f"folders: {plain} has no samples.json",
            "labels": "--labels only_one: 1 label for 2 folders",
            "out is a file": f"--out {out}: {out} is a file, not a folder",
            "out under a file": f"--out {out}: {tmp_path / 'file'} is a file",
            "out not empty": "exists and is not empty; pass --overwrite"}[case]
    assert said in err[0], err
    assert not (tmp_path / "page").exists() and sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                  "(apt-get install chromium; .ci/run installs it)")
def test_every_video_plays_in_headless_chromium(tmp_path, page):
    index, _ = page
    copy = tmp_path / "copied"                  # a copied page still works: it links only its own files
    shutil.copytree(index.parent, copy)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=10000"]

    def chromium(*args, profile):
        return subprocess.run([str(CHROMIUM), *flags, f"--user-data-dir={tmp_path / profile}", *args,
                               (copy / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    dom = chromium("--dump-dom", profile="profile-dom").stdout
    statuses = re.findall(r"<video[^>]*>", dom)
    assert len(statuses) == 4, dom[-2000:]
    assert all('data-status="loaded"' in v for v in statuses), statuses        # decoded, videoWidth > 0
    assert "<title>compare: 4/4 loaded, 0 errors</title>" in dom
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2000", profile="profile-shot")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (2000, 1280) and pixels.std() > 20      # not a blank page
