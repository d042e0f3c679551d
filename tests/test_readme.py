"""Every command in the README's bash blocks works as written: the ones a CPU runs in seconds are executed, in
README order, in a scratch folder laid out like the repository; every other one is dry-run (its config composed
and checked against the tool's schema, or its flags parsed, or `tools/submit.py --dry-run`), so a README
command that Hydra or a tool would refuse fails CI."""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import subprocess
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
)


def readme_commands() -> list[tuple[dict, str]]:
    """(environment, command) for each command in the README's ```bash blocks, continuations joined,
    `export` lines applied to the commands after them in the block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
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
                if "pip" not in part[:2] and part[0] != "apt-get":
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
    original = argparse.ArgumentParser.parse_args

    def parse_only(self, argv=None, namespace=None):
        raise _Parsed(original(self, argv, namespace))
    argparse.ArgumentParser.parse_args = parse_only
    try:
        module.main(args)
    except _Parsed:
        return
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError(f"{command}: the tool did not parse its arguments")


def scratch_repo(tmp_path: Path) -> Path:
    """A folder laid out like the repository (tools, nexus, recipes, data linked) where outputs land."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("tools", "nexus", "recipes", "data"):
        (work / name).symlink_to(ROOT / name)
    return work


def test_the_readme_has_commands_for_every_tool():
    tools = {Path(shlex.split(c)[1]).stem for _, c in readme_commands() if c.startswith("python tools/")}
    documented = {p.stem for p in (ROOT / "tools").glob("*.py")}
    assert documented <= tools, f"tools without a README example: {sorted(documented - tools)}"


@pytest.mark.slow
def test_every_readme_command_runs_or_dry_runs(tmp_path):
    work = scratch_repo(tmp_path)
    env = {**os.environ, "WANDB_MODE": "offline", "NEXUS_WAN_PATH": "", "NEXUS_VLM_PATH": ""}
    executed, dry = [], []
    for block_env, command in readme_commands():
        if any(" ".join(shlex.split(command)).startswith(p) for p in EXECUTE):
            r = subprocess.run(command, shell=True, cwd=work, env={**env, **block_env}, capture_output=True,
                               text=True, timeout=600)
            assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
            assert "Traceback" not in r.stderr, f"{command}\n{r.stderr[-3000:]}"
            executed.append(command)
        else:
            try:
                dry_run(block_env, command, work)
            except Exception as e:
                raise AssertionError(f"README command refused: {command}\n{type(e).__name__}: {e}") from e
            dry.append(command)
    assert len(executed) >= 8 and len(dry) >= 15, (executed, dry)
    # what the executed commands made, as the README says
    assert (work / "runs/tiny/default/checkpoints/last.ckpt").is_file()
    assert (work / "runs/tiny/samples/upfb/prompts.jsonl").is_file()
    assert (work / "runs/tiny/samples/trained/samples.json").is_file()
    assert (work / "runs/tiny/samples/upfb/eval/scores.json").is_file()
    assert (work / "exports/tiny/connector/model.safetensors").is_file()
    assert (work / "exports/tiny_release/nexus.json").is_file()
    assert len(list((work / "runs/lumos_nexus_release/samples/upfb").glob("*.mp4"))) == 1
