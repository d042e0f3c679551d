"""`tools/watch_eval.py`: evaluate each new checkpoint of a stage-1 run as a job of its own, so the large
generator never has to fit beside training. For every step checkpoint (checkpoints/step<N>.ckpt, a file or a
DeepSpeed folder once its `latest` tag exists) not yet in <run dir>/eval_watch/done.json: export it, sample the
prompt set with the recipe's strategy (UPFB by default), score the videos, write scores.json/.md under
eval_watch/step<N>/ and log them at step N, then record it as done. A restarted watcher skips what is done.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nexus import console
from nexus.data.video import atomic_write
from nexus.evaluation.callback import eval_prompts
from nexus.evaluation.run import logged_values, read_folder, score_videos, suite_from_config, write_report
from nexus.inference.launch import sample
from nexus.training.loggers import check_logger, make_logger

STEP = re.compile(r"^step(\d+)\.ckpt$")


def ready_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete step checkpoints, oldest first (plain saves are renamed into place whole)."""
    found = []
    for p in (run_dir / "checkpoints").glob("step*.ckpt"):
        m = STEP.match(p.name)
        if m and (p.is_file() or (p / "latest").is_file()):
            found.append((int(m.group(1)), p))
    return sorted(found)


def _done(state: Path) -> dict:
    return json.loads(state.read_text()) if state.is_file() else {}


def _mark(state: Path, done: dict) -> None:
    with atomic_write(state) as f:
        f.write(json.dumps(done, indent=2).encode())


def evaluate_checkpoint(cfg: DictConfig, ckpt: Path, out: Path, prompt_file: Path, suite) -> dict:
    c = cfg.copy()
    OmegaConf.set_struct(c, False)
    c.small.export, c.out_dir, c.prompt, c.prompt_file = str(ckpt), str(out), None, str(prompt_file)
    sample(c)
    shutil.rmtree(out / ".stage1", ignore_errors=True)     # the checkpoint's export: as big as the model
    errors: list = []
    result = score_videos(suite, read_folder(out, str(prompt_file), errors)) | {"errors": errors,
                                                                              "checkpoint": str(ckpt)}
    write_report(result, out, title=f"VBench-style scores of {ckpt.name} ({cfg.bridge.strategy})")
    return result


def watch(cfg: DictConfig) -> dict[str, dict]:
    run_dir = Path(cfg.run_dir)
    if not (run_dir / "checkpoints").is_dir():
        raise FileNotFoundError(f"run_dir={run_dir}: no checkpoints/ folder; point it at a stage-1 run directory "
                                f"(runs/<recipe>/<run name>)")
    check_logger(cfg.logger)             # before a checkpoint is sampled and scored
    prompts = eval_prompts(cfg.get("prompts"), cfg.get("prompt_file"), "prompt_file")      # bad prompts fail before any loading
    root = run_dir / "eval_watch"
    root.mkdir(exist_ok=True)
    console.attach_log(root / "watch_eval.log")
    prompt_file = root / "prompts.jsonl"
    with atomic_write(prompt_file) as f:
        f.write("".join(json.dumps({"id": p.id, "prompt": p.text}) + "\n" for p in prompts).encode())
    state, logger, suite, evaluated = root / "done.json", None, None, {}
    idle_since = time.monotonic()
    while True:
        done = _done(state)
        todo = [(s, p) for s, p in ready_checkpoints(run_dir) if p.name not in done]
        for step, ckpt in todo:
            print(f"evaluating {ckpt} (step {step})", flush=True)
            suite = suite or suite_from_config(cfg.metrics, cfg.paths.get("tiny_models"))     # loaded once
            result = evaluate_checkpoint(cfg, ckpt, root / ckpt.stem, prompt_file, suite)
            if logger is None:
                logger = make_logger(cfg.logger, str(root), name=f"{run_dir.parent.name}/{run_dir.name}/eval",
                                     project=cfg.logger_project)
            if logger:
                logger.log_metrics(logged_values(result), step=step)
                logger.save()
            done[ckpt.name] = {"step": step, "scores": result["scores"]}
            _mark(state, done)                 # recorded only once its scores are written
            evaluated[ckpt.name] = result
            idle_since = time.monotonic()
        if cfg.once or (cfg.stop_after_idle_s and time.monotonic() - idle_since > cfg.stop_after_idle_s):
            break
        time.sleep(cfg.poll_s)
    if logger and type(logger).__name__ == "WandbLogger":
        logger.experiment.finish()
    print(f"evaluated {len(evaluated)} new checkpoint(s); {len(_done(state))} in {state}")
    return evaluated
