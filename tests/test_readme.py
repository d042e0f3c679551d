"""Every command in the documentation's bash blocks works as written. The documentation is README.md and the
pages under docs/, read in one fixed order: README.md first, then the pages in the order the README's link table
(its rows `| [name](docs/<page>.md) | ... |`) lists them. The commands a CPU runs in seconds (EXECUTE) are executed,
in that combined order, in a scratch folder laid out like the repository, so a command may use what an earlier
one made (export after fit: DEPENDS lists those pairs and a test checks the order keeps them); a command identical
to one already executed is not run again. Every other command is dry-run (its config composed and checked against
the tool's schema, or its flags parsed, or `tools/submit.py --dry-run`), so a documented command that Hydra or a
tool would refuse fails CI. The links are checked too: every page is linked from the README, every relative link
in the README, CHANGELOG.md and the pages resolves (and its #anchor names a heading of the target)."""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

# run for real (CPU, seconds): the tiny commands, matched on the start of the command
EXECUTE = (
    "python tools/fit.py recipe=tiny",
    "python tools/sample.py prompt=",
    "python tools/sample.py small.export=runs/tiny/default/checkpoints/last.ckpt",
    "python tools/evaluate.py recipe=tiny",
    "python tools/watch_eval.py recipe=tiny",
    "python tools/export.py runs/tiny/default/checkpoints/last.ckpt",
    "python tools/export.py runs/tiny/plain/checkpoints/last.ckpt",
    "python tools/bench_train.py recipe=tiny",
    "python tools/plot_schedule.py",
    "python tools/vrbench.py evaluate --generate recipe=tiny",
    "python tools/convert.py tiny-bundle",
    "python tools/convert.py omnivideo --bundle runs/.tiny_release",
    "python tools/sample.py recipe=lumos_nexus_release small.export=exports/tiny_release",
    "python tools/compare.py runs/tiny/samples/small_only runs/tiny/samples/upfb",
)

# executed commands that use what an earlier executed one made: (the later one, the one it needs first)
DEPENDS = (
    ("python tools/sample.py small.export=runs/tiny/default/checkpoints/last.ckpt", "python tools/fit.py recipe=tiny"),
    ("python tools/evaluate.py recipe=tiny videos=runs/tiny/samples/upfb", "python tools/sample.py prompt="),
    ("python tools/watch_eval.py recipe=tiny run_dir=runs/tiny/default", "python tools/fit.py recipe=tiny"),
    ("python tools/export.py runs/tiny/default/checkpoints/last.ckpt", "python tools/fit.py recipe=tiny"),
    ("python tools/export.py runs/tiny/plain/checkpoints/last.ckpt",
     "python tools/fit.py recipe=tiny model.conditioning=umt5 run.name=plain"),
    ("python tools/convert.py omnivideo --bundle runs/.tiny_release", "python tools/convert.py tiny-bundle"),
    ("python tools/sample.py recipe=lumos_nexus_release small.export=exports/tiny_release",
     "python tools/convert.py omnivideo --bundle runs/.tiny_release"),
    ("python tools/compare.py runs/tiny/samples/small_only runs/tiny/samples/upfb",
     "python tools/sample.py prompt=a red square moves from left to right bridge.strategy=small_only"),
)


def linked_pages() -> list[Path]:
    """The docs/*.md pages the README's link table lists, in its order (a page not there yet is still listed)."""
    out = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("|"):
            for target in re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", line):
                if ROOT / target not in out:
                    out.append(ROOT / target)
    return out


def documentation() -> list[Path]:
    """README.md, then the linked pages that exist, in the table's order: the order commands are run in."""
    return [ROOT / "README.md", *(p for p in linked_pages() if p.is_file())]


def installs(words: list[str]) -> bool:
    """The install steps (a virtualenv, pip, apt-get) are CI's own (.ci/run does them), not run here."""
    return "pip" in words[:2] or words[0] in ("apt-get", ".", "source") or words[:3] == ["python", "-m", "venv"]


PYTHON = "# python\n"      # marks a ```python block among the commands: run when it needs no GPU and no real weights


def readme_commands() -> list[tuple[dict, str]]:
    """(environment, command) for each command in the ```bash blocks of the documentation (README.md, then the
    pages, in documentation()'s order), continuations joined, `export` lines applied to the commands after them in
    the block, comments dropped; each ```python block is one command, PYTHON + its code."""
    text = "\n".join(p.read_text() for p in documentation())
    out = []
    for language, block in re.findall(r"```(bash|python)\n(.*?)```", text, re.S):
        if language == "python":         # a Python example, whole (PYTHON)
            out.append(({}, PYTHON + block))
            continue
        env = {}
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line, comments=True)
            if words[0] == "export":
                env.update(w.split("=", 1) for w in words[1:])
                continue
            while words:            # `a && b`: two commands; `pip`/`apt-get install` are CI's install step, not run here
                part, words = (words[:words.index("&&")], words[words.index("&&") + 1:]) if "&&" in words \
                    else (words, [])
                if not installs(part):
                    out.append((dict(env), shlex.join(part)))
    return out


class _Parsed(Exception):
    pass


def dry_run(env: dict, command: str, cwd: Path) -> None:
    words = [os.path.expandvars(w) if "$" in w else w for w in shlex.split(command)]
    for k, v in env.items():
        words = [w.replace(f"${k}", v) for w in words]
    if words[:3] == ["python", "-m", "pytest"]:
        return                                            # this suite itself
    assert words[0] == "python" and words[1].startswith("tools/"), f"not a tool command: {command}"
    tool, args = Path(words[1]).stem, words[2:]
    spec = importlib.util.spec_from_file_location(f"readme_{tool}", ROOT / "tools" / f"{tool}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if tool == "plan":                                # a Hydra tool whose first argument picks the config
        from nexus.cli import load_config
        which, overrides, _ = module.split(args)
        load_config(module.TOOLS[which], overrides)
        return
    if hasattr(module, "TOOL"):                       # a Hydra tool: exactly the checks the tool makes first
        from nexus.cli import load_config, swept_keys
        multirun = "-m" in args
        overrides = [a for a in args if not a.startswith("-")]
        load_config(module.TOOL, overrides, swept_keys(overrides) if multirun else [])
        return
    if tool == "submit":
        from nexus.slurm.submit import submit
        old = Path.cwd()
        os.chdir(cwd)
        try:
            job, script = submit([*args, "--dry-run"])
        finally:
            os.chdir(old)
        assert job is None and "srun" in script
        return
    original, argv = argparse.ArgumentParser.parse_args, sys.argv

    def parse_only(self, argv=None, namespace=None):
        raise _Parsed(original(self, argv, namespace))
    argparse.ArgumentParser.parse_args = parse_only
    try:
        if inspect.signature(module.main).parameters:    # main(argv): the tools here
            module.main(args)
        else:                                             # main() reading sys.argv
            sys.argv = [words[1], *args]
            module.main()
    except _Parsed:
        return
    finally:
        argparse.ArgumentParser.parse_args, sys.argv = original, argv
    raise AssertionError(f"{command}: the tool did not parse its arguments")


def scratch_repo(tmp_path: Path) -> Path:
    """A folder laid out like the repository (tools, nexus, recipes, data linked) where outputs land."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("tools", "nexus", "recipes", "data"):
        (work / name).symlink_to(ROOT / name)
    return work


def _executed(command: str) -> bool:
    if command.startswith(PYTHON):
        return False
    return any(" ".join(shlex.split(command)).startswith(p) for p in EXECUTE)


def test_the_readme_has_commands_for_every_tool():
    tools = {Path(shlex.split(c)[1]).stem for _, c in readme_commands() if c.startswith("python tools/")}
    documented = {p.stem for p in (ROOT / "tools").glob("*.py")}
    assert documented <= tools, f"tools without an example in the README or docs/: {sorted(documented - tools)}"


def test_executed_commands_come_after_what_they_need():
    executed = [" ".join(shlex.split(c)) for _, c in readme_commands() if _executed(c)]
    for later, earlier in DEPENDS:
        at = [i for i, c in enumerate(executed) if c.startswith(later)]
        before = [i for i, c in enumerate(executed) if c.startswith(earlier)]
        assert at, f"no executed command starts with {later!r}"
        assert before and min(before) < min(at), f"{later!r} runs before {earlier!r} (order: {documentation()})"


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown page (lower case, punctuation dropped, spaces -> -)."""
    seen, out = {}, set()
    for heading in re.findall(r"^#+ +(.+?) *#*$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M),
                              flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def test_every_page_is_linked_from_the_readme():
    pages = set((ROOT / "docs").glob("*.md"))
    assert pages, "no docs/*.md pages"
    assert pages <= set(linked_pages()), f"pages not in the README's table: {sorted(map(str, pages - set(linked_pages())))}"


def test_every_relative_link_resolves():
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in files:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())):
            if re.match(r"[a-z]+:", target):              # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_changelog_exists_and_is_linked():
    changelog = ROOT / "CHANGELOG.md"
    assert changelog.is_file()
    assert "](CHANGELOG.md)" in (ROOT / "README.md").read_text()
    assert {"issue 10", "issue 11", "issue 22"} <= set(re.findall(r"issue \d+", changelog.read_text().lower()))


@pytest.mark.slow
def test_every_readme_command_runs_or_dry_runs(tmp_path):
    work = scratch_repo(tmp_path)
    env = {**os.environ, "WANDB_MODE": "offline", "NEXUS_WAN_PATH": "", "NEXUS_VLM_PATH": ""}
    executed, dry = [], []
    for block_env, command in readme_commands():
        if command.startswith(PYTHON):          # tiny examples run as a script in the scratch repo; others compile
            code = command[len(PYTHON):]
            if "cuda" in code or "exports/lumos-nexus" in code or "/models/" in code:
                compile(code, "<documentation>", "exec")
                dry.append(code)
                continue
            script = work / f"example_{len(executed)}.py"
            script.write_text(code)
            r = subprocess.run([sys.executable, script.name], cwd=work, env=env, capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, f"{code}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
            executed.append((block_env, code))
            continue
        if _executed(command):
            if (block_env, command) in executed:          # the same command again (README, then its page): done
                continue
            r = subprocess.run(command, shell=True, cwd=work, env={**env, **block_env}, capture_output=True,
                               text=True, timeout=600)
            assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
            assert "Traceback" not in r.stderr, f"{command}\n{r.stderr[-3000:]}"
            executed.append((block_env, command))
        else:
            try:
                dry_run(block_env, command, work)
            except Exception as e:
                raise AssertionError(f"documented command refused: {command}\n{type(e).__name__}: {e}") from e
            dry.append(command)
    assert len(executed) >= 8 and len(dry) >= 15, (executed, dry)
    # what the executed commands made, as the README says
    assert (work / "runs/tiny/default/checkpoints/last.ckpt").is_file()
    assert (work / "runs/tiny/samples/upfb/prompts.jsonl").is_file()
    assert (work / "runs/tiny/samples/trained/samples.json").is_file()
    assert (work / "runs/tiny/samples/upfb/eval/scores.json").is_file()
    assert (work / "exports/tiny/connector/model.safetensors").is_file()
    assert (work / "tiny-upfb.mp4").is_file() and (work / "tiny-large_only.mp4").is_file()     # the pipeline example
    assert (work / "exports/tiny_pipeline/model_index.json").is_file()
    assert (work / "exports/tiny_release/nexus.json").is_file()
    assert len(list((work / "runs/lumos_nexus_release/samples/upfb").glob("*.mp4"))) == 1
