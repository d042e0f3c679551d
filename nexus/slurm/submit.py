"""tools/submit.py in library form: split the overrides into submit's and the job's, check them before anything
is written, write `<run dir>/slurm/<job>.sbatch` (+ the command and the resolved config) and run sbatch."""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from nexus.slurm.resume import newest_checkpoint, zero_world_size
from nexus.slurm.script import sbatch_header, sbatch_script

ROOT = Path(__file__).resolve().parents[2]
JOBS = ("fit", "watch_eval")
SET_BY_SUBMIT = ("trainer.devices", "trainer.num_nodes", "trainer.accelerator")


class SubmitError(ValueError):
    """Bad input to tools/submit.py: the message says what to change."""


def load(name: str, overrides: list[str]) -> DictConfig:
    try:
        with initialize_config_dir(config_dir=str(ROOT / "recipes"), version_base=None):
            return compose(name, overrides=overrides)
    except HydraException as e:
        raise SubmitError(str(e).split("\nConfig search path")[0]) from None


def split_overrides(args: list[str]) -> tuple[list[str], list[str], bool]:
    """-> (submit's overrides, the job's overrides, dry run): a key of recipes/submit.yaml is submit's."""
    own = set(OmegaConf.load(ROOT / "recipes" / "submit.yaml"))
    dry = "--dry-run" in args
    mine, job = [], []
    for a in args:
        if a == "--dry-run":
            continue
        if a.startswith("-"):
            raise SubmitError(f"unknown option {a}: overrides are key=value; the only option is --dry-run")
        key = a.split("=", 1)[0].lstrip("+~")
        if key in SET_BY_SUBMIT:
            raise SubmitError(f"{a}: tools/submit.py sets {key} from nodes=, gpus_per_node= and accelerator=; "
                              f"use those instead")
        (mine if key in own else job).append(a)
    return mine, job, dry


def check_counts(s: DictConfig) -> None:
    if s.job not in JOBS:
        raise SubmitError(f"job={s.job}: choose one of {', '.join(JOBS)}")
    for key in ("nodes", "gpus_per_node", "cpus_per_task"):
        if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 1:
            raise SubmitError(f"{key}={s[key]}: {key} must be >= 1 (a whole number)")
    if s.accelerator not in ("gpu", "cpu"):
        raise SubmitError(f"accelerator={s.accelerator}: choose gpu or cpu")
    if not isinstance(s.signal_lead, int) or s.signal_lead < 0:
        raise SubmitError(f"signal_lead={s.signal_lead}: seconds before the time limit, >= 0 (0: no signal)")
    from nexus.checks import slurm_time
    slurm_time("time", s.time)


def batch_override(s: DictConfig, fit: DictConfig) -> list[str]:
    """global_batch_size -> data.batch_size per GPU; the GPUs (x accumulation) must divide it."""
    if s.global_batch_size is None:
        return []
    if fit.data.get("buckets"):
        raise SubmitError("global_batch_size does not apply with data.buckets (their batch_size is per GPU): "
                          "drop global_batch_size or set the buckets' batch sizes")
    accum = fit.trainer.accumulate_grad_batches
    share = s.nodes * s.gpus_per_node * accum
    if s.global_batch_size < 1 or s.global_batch_size % share:
        ok = [k * share for k in range(1, 4)]
        raise SubmitError(f"global_batch_size={s.global_batch_size} is not divisible by nodes x gpus_per_node x "
                          f"trainer.accumulate_grad_batches = {s.nodes} x {s.gpus_per_node} x {accum} = {share}: "
                          f"use e.g. global_batch_size={ok[0]} or {ok[1]}, or change nodes/gpus_per_node")
    return [f"data.batch_size={s.global_batch_size // share}"]


def fit_job(s: DictConfig, overrides: list[str]) -> tuple[Path, list[str], DictConfig]:
    """-> (run dir, the fit command, its composed config). Fails on an unknown recipe or key now."""
    placed = [f"trainer.devices={s.gpus_per_node}", f"trainer.num_nodes={s.nodes}"]
    placed += ["trainer.accelerator=cpu"] if s.accelerator == "cpu" else []
    cfg = load("fit", overrides + placed)
    placed += batch_override(s, cfg)
    cfg = load("fit", overrides + placed)
    run_dir = Path(cfg.run.dir)
    try:        # refused now rather than by the job once it starts
        from nexus.schema import Fit
        from nexus.validation import validate
        from nexus.training.run_dir import plan_run
        plan_run(validate(cfg, Fit))
    except ValueError as e:
        raise SubmitError(str(e)) from None
    check_zero_world(run_dir, cfg, s.nodes * s.gpus_per_node)
    return run_dir, [s.python or sys.executable, "tools/fit.py", *overrides, *placed], cfg


def check_zero_world(run_dir: Path, cfg: DictConfig, world: int) -> None:
    """DeepSpeed 0.19 loads a ZeRO optimizer state only on the world size that wrote it: say so before queueing."""
    ckpt = newest_checkpoint(run_dir) if cfg.run.resume == "auto" else None
    wrote = zero_world_size(ckpt)
    if wrote and wrote != world:
        raise SubmitError(f"{ckpt} is a ZeRO checkpoint written by {wrote} GPUs, this job has nodes x gpus_per_node "
                          f"= {world}: DeepSpeed cannot re-partition its optimizer state; resume with {wrote} GPUs, "
                          f"or export the weights (tools/export.py) and start a new run.name")


def watch_job(s: DictConfig, overrides: list[str]) -> tuple[Path, list[str], DictConfig]:
    """The checkpoint watcher: recipe=/run.*= name the run (unless run_dir=); the rest goes to watch_eval.py."""
    names_run = [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".")[0] in ("recipe", "run")]
    run_dir = Path(s.run_dir) if s.run_dir else Path(load("fit", names_run).run.dir)
    rest = [o for o in overrides if o not in names_run]
    command = [s.python or sys.executable, "tools/watch_eval.py", f"recipe={s.watch_recipe}", f"run_dir={run_dir}"]
    return run_dir, [*command, *rest], s


def build_script(s: DictConfig, run_dir: Path, command: list[str], argv: list[str]) -> str:
    fit = s.job == "fit"
    tasks, nodes = (s.gpus_per_node, s.nodes) if fit else (1, 1)
    gpus = tasks if s.accelerator == "gpu" else 0
    header = sbatch_header(f"nexus-{s.job}-{run_dir.parent.name}-{run_dir.name}", nodes, tasks, gpus,
                           s.cpus_per_task, s.time, str(run_dir.resolve() / "slurm"), s.partition, s.account, s.qos, s.mem,
                           s.signal_lead if fit else None, list(s.sbatch))
    note = "tools/submit.py " + " ".join(shlex.quote(a) for a in argv if a != "--dry-run")
    return sbatch_script(header, str(Path.cwd()), list(s.setup), command, note)


def run_sbatch(script: Path) -> str:
    """sbatch the script -> the job id; sbatch's own message, with the partitions there are, when it refuses."""
    if shutil.which("sbatch") is None:
        raise SubmitError(f"sbatch is not on the PATH: run tools/submit.py on a SLURM login node (or load the "
                          f"slurm module); the script is written at {script}; --dry-run prints it without sbatch")
    r = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if r.returncode:
        msg = r.stderr.strip() or r.stdout.strip()
        if "partition" in msg.lower():
            parts = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
            msg += f"\nset partition= to one of: {', '.join(parts) or '(sinfo lists none)'} (see sinfo)"
        raise SubmitError(f"sbatch refused {script}:\n{msg}")
    return r.stdout.strip().split(";")[0]


def submit(argv: list[str]) -> tuple[str | None, str]:
    """-> (job id or None for a dry run, the script text)."""
    mine, overrides, dry = split_overrides(argv)
    s = load("submit", mine)
    dry = dry or s.dry_run
    check_counts(s)
    run_dir, command, cfg = (fit_job if s.job == "fit" else watch_job)(s, overrides)
    text = build_script(s, run_dir, command, argv)
    if dry:
        return None, text
    from nexus.checks import output_folder, run_folder
    if s.job == "fit":
        run_folder("run.dir", run_dir, "run.root", cfg.run.root)
    output_folder("run_dir" if s.job == "watch_eval" and s.run_dir else "run.dir", run_dir / "slurm")
    out = run_dir / "slurm"
    out.mkdir(parents=True, exist_ok=True)
    script = out / f"{s.job}.sbatch"
    script.write_text(text)
    (out / f"{s.job}.command").write_text(" ".join(shlex.quote(a) for a in command) + "\n")
    OmegaConf.save(cfg, out / f"{s.job}.config.yaml", resolve=False)
    return run_sbatch(script), text
