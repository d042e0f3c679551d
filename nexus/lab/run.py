"""The shapes lab, stage by stage (docs/lab.md). Each stage writes `<root>/stages/<name>.json` when it
has finished (what it made, its settings, how long it took); a rerun skips the finished stages whose settings
are unchanged and redoes the rest, so a killed lab resumes (a killed training resumes from its last checkpoint,
as tools/fit.py always does). The generators and stage 1 train through tools/fit.py, are exported by
tools/export.py and sampled by tools/sample.py, each run as its own process, exactly as a user runs them.

  world          training shards (plain captions of the training scenes) and the held-out test prompts
  text           the tokenizer and the frozen UMT5 both generators share
  vae            the VAE: the shipped weights (data/lab/vae, checked against their sha256) or trained here
  understanding  the understanding model (Qwen2.5-VL architecture) taught what every training caption means
  features       tools/precompute.py: the frozen VAE, UMT5 and understanding model run once over the training
                 shards (the generators and stage 1 then train on data.kind=features, 5-10x faster here)
  generators     the small and the large generator, pretrained alone on plain captions (recipe lab_generator)
  stage1         connector + small generator aligned with the understanding model (recipe lab_stage1)
  validation     each generator's guidance scale, chosen on plain captions of training scenes (never a test
                 prompt): the scale of the grid with the best plain score, for small_only and for large_only
  experiment     every strategy on the held-out prompts and seeds through tools/sample.py, read by the judge
  diagnosis      nexus.lab.diagnose: does the understanding model carry reasoning, does stage 1 read the connector
  report         the table (Markdown + JSON), the plot, W&B, the samples side by side (report/compare/index.html)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nexus.errors import RunStopped
from nexus.provenance import read_json, write_json

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_VAE = ROOT / "data" / "lab" / "vae"
RECIPES = {"generators": "lab_generator", "stage1": "lab_stage1"}     # the tools/fit.py recipe of each training stage
STAGES = ("world", "text", "vae", "understanding", "features", "generators", "stage1", "validation", "experiment",
          "diagnosis", "report")


@dataclass
class Settings:
    """What a lab run is made of; `scale` presets below."""
    per_scene: int = 40           # training images per training scene
    size: int = 64
    vae_steps: int = 6000         # when the VAE is trained here (--train-vae or no shipped weights)
    understanding_steps: int = 300
    small_steps: int = 1500
    large_steps: int = 1500
    stage1_steps: int = 1000
    sample_steps: int = 20
    val_scenes: int = 25          # training scenes whose plain captions choose the guidance scales
    guidance_grid: list = field(default_factory=lambda: [0.5, 1.0, 2.0])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    test_scenes: int | None = None    # None: every held-out scene
    sweep: bool = True            # the RMS modes and the gamma_w sweep (one seed)
    strategies: list | None = None    # None: every configuration of nexus.lab.experiment.configs; else these
    seed: int = 0


SCALES = {"full": Settings(),
          "ci": Settings(per_scene=2, vae_steps=4, understanding_steps=4, small_steps=4, large_steps=4,
                         stage1_steps=40, sample_steps=2, seeds=[0], test_scenes=1, sweep=False,
                         val_scenes=1, guidance_grid=[1.0], strategies=["small_only", "large_only", "upfb"])}


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Lab:
    root: Path
    settings: Settings
    logger: str = "csv"          # the loggers of the training runs and of the report: csv | wandb | none
    train_vae: bool = False

    # ---- folders --------------------------------------------------------------------------------------------
    def path(self, *parts) -> Path:
        return self.root.joinpath(*parts)

    # ---- stage bookkeeping ----------------------------------------------------------------------------------
    def stage_settings(self, name: str) -> dict:
        """What a stage's output depends on: its own settings and those of the stages before it."""
        s = asdict(self.settings)
        own = {"world": ["per_scene", "size", "seed"], "text": ["seed"], "vae": ["vae_steps", "size", "seed"],
               "understanding": ["understanding_steps", "seed"], "features": [],
               "generators": ["small_steps", "large_steps"],
               "stage1": ["stage1_steps"], "validation": ["val_scenes", "guidance_grid", "sample_steps"],
               "experiment": ["sample_steps", "seeds", "test_scenes", "sweep", "strategies"], "diagnosis": [],
               "report": []}[name]
        own = {k: s[k] for k in own}
        # what the code decides also makes a stage's output: the networks' shapes and the recipes' settings
        from nexus.lab import parts
        own |= {"features": {"small": parts.SMALL, "large": parts.LARGE},
                "understanding": {"vlm": parts.VLM_TEXT}}.get(name, {})
        if name in RECIPES:            # its values, not its comments
            from omegaconf import OmegaConf
            own["recipe"] = digest(OmegaConf.to_container(OmegaConf.load(ROOT / "recipes" / "recipe" /
                                                                         f"{RECIPES[name]}.yaml")))
        before = STAGES[:STAGES.index(name)]
        return {"own": own, "vae": "train" if self.train_vae else "shipped",
                "before": [(self.done(b) or {}).get("settings_digest") for b in before]}

    def done(self, name: str) -> dict | None:
        try:
            return read_json(self.path("stages", f"{name}.json"))
        except ValueError:          # a marker cut short: the stage is not done
            return None

    def finished(self, name: str) -> bool:
        d = self.done(name)
        return d is not None and d.get("settings_digest") == digest(self.stage_settings(name))

    def run(self, only: list[str] | None = None, log=print) -> dict:
        """Run the stages in order (or `only` those), skipping the finished ones; -> {stage: its record}."""
        records = {}
        for i, name in enumerate(STAGES, start=1):
            if only and name not in only:
                continue
            missing = [n for n in STAGES[:i - 1] if not self.finished(n)]
            if missing:       # a chosen stage on top of stages that are absent or stale
                raise RunStopped(f"stage {name} builds on {', '.join(missing)}, not run in {self.root} with these "
                                 f"settings: run `python tools/lab.py --root {self.root}` (it skips what is finished)")
            if self.finished(name):
                log(f"[{i}/{len(STAGES)}] {name}: done before ({self.path('stages', name + '.json')}), skipped")
                records[name] = self.done(name)
                continue
            for later in STAGES[i:]:                 # what was built on the old output is stale now
                self.path("stages", f"{later}.json").unlink(missing_ok=True)
            log(f"[{i}/{len(STAGES)}] {name} ...")
            start = time.time()
            info = getattr(self, f"stage_{name}")(log)
            settings = self.stage_settings(name)
            records[name] = {"stage": name, "info": info, "seconds": round(time.time() - start, 1),
                             "settings": settings, "settings_digest": digest(settings)}
            self.path("stages").mkdir(parents=True, exist_ok=True)
            write_json(self.path("stages", f"{name}.json"), records[name])
            log(f"[{i}/{len(STAGES)}] {name}: done in {records[name]['seconds']:.0f} s")
        return records

    # ---- helpers --------------------------------------------------------------------------------------------
    def scenes(self):
        from nexus.lab.world import split
        train, test = split(seed=self.settings.seed)
        return train, test[: self.settings.test_scenes] if self.settings.test_scenes else test

    def tool(self, script: str, *args: str, log=print) -> None:
        """Run one of the framework's tools as a user would: its own process, its own output."""
        cmd = [sys.executable, str(ROOT / "tools" / script), *args]
        log("$ " + " ".join(cmd[1:]))
        env = dict(os.environ, WANDB_MODE=os.environ.get("WANDB_MODE", "offline"))
        r = subprocess.run(cmd, cwd=ROOT, env=env)
        if r.returncode != 0:
            raise RunStopped(f"tools/{script} failed (exit {r.returncode}, its output above says why); rerun "
                             f"tools/lab.py to resume from this stage")

    def fit_overrides(self, steps: int) -> list[str]:
        return [f"run.root={self.path('runs')}", f"logger={self.logger}", "trainer.enable_model_summary=false",
                f"trainer.max_steps={steps}", f"trainer.log_every_n_steps={min(50, max(1, steps // 20))}",
                f"seed={self.settings.seed}"]

    # ---- stages ---------------------------------------------------------------------------------------------
    def stage_world(self, log) -> dict:
        from nexus.lab.data import test_prompts, write_jsonl, write_training_shards
        train, test = self.scenes()
        out = self.path("data", "train")
        shutil.rmtree(out, ignore_errors=True)
        shards = write_training_shards(out, train, self.settings.per_scene, self.settings.size, self.settings.seed)
        prompts = test_prompts(test)
        write_jsonl(self.path("data", "test_prompts.jsonl"), prompts)
        write_jsonl(self.path("data", "eval_prompts.jsonl"),
                    [{"id": p["id"], "prompt": p["prompt"]} for p in prompts if p["kind"] == "plain"][:4])
        import numpy as np
        chosen = np.random.default_rng(self.settings.seed).permutation(len(train))[: self.settings.val_scenes]
        write_jsonl(self.path("data", "val_prompts.jsonl"),      # plain captions the generators trained on
                    [p for p in test_prompts([train[i] for i in sorted(chosen)]) if p["kind"] == "plain"])
        return {"train_scenes": len(train), "test_scenes": len(test), "train_images": len(train) * self.settings.per_scene,
                "shards": len(shards), "test_prompts": len(prompts)}

    def stage_text(self, log) -> dict:
        from nexus.lab.parts import build_text
        shutil.rmtree(self.path("parts", "text"), ignore_errors=True)
        build_text(self.path("parts", "text"), self.scenes()[0], self.settings.seed)
        return {"folder": str(self.path("parts", "text"))}

    def stage_vae(self, log) -> dict:
        from nexus.lab.parts import train_vae
        out = self.path("parts", "vae")
        shutil.rmtree(out, ignore_errors=True)
        if not self.train_vae and (SHIPPED_VAE / "SHA256").is_file():
            check_shipped(SHIPPED_VAE)
            shutil.copytree(SHIPPED_VAE, out)
            return {"source": "shipped", **json.loads((SHIPPED_VAE / "lab.json").read_text())}
        train, test = self.scenes()
        return {"source": "trained", **train_vae(out, train, test, self.settings.vae_steps, seed=self.settings.seed,
                                                 log=log)}

    def stage_understanding(self, log) -> dict:
        from nexus.lab.parts import build_vlm, train_vlm
        out = self.path("models", "vlm")
        shutil.rmtree(out, ignore_errors=True)
        train, test = self.scenes()
        build_vlm(out, train, self.settings.seed)
        return train_vlm(out, train, test, self.settings.understanding_steps, seed=self.settings.seed, log=log)

    def stage_features(self, log) -> dict:
        from nexus.lab.parts import LARGE, SMALL, build_wan
        for which, config in (("small", SMALL), ("large", LARGE)):     # fresh transformers + the lab's VAE and UMT5
            shutil.rmtree(self.path("parts", f"wan_{which}_init"), ignore_errors=True)
            build_wan(self.path("parts", f"wan_{which}_init"), config, self.path("parts", "vae"),
                      self.path("parts", "text"), self.settings.seed)
        out = self.path("data", "features")
        shutil.rmtree(out, ignore_errors=True)
        size = str(self.settings.size)
        self.tool("precompute.py", "--shards", str(self.path("data", "train")), "--out", str(out), "--wan",
                  str(self.path("parts", "wan_small_init")), "--vlm", str(self.path("models", "vlm")), "--num-frames",
                  "1", "--height", size, "--width", size, "--batch-size", "32", "--dtype", "fp32", "--devices", "1",
                  "--accelerator", "cpu", "--num-workers", "1", "--maxcount", "1024", "--no-progress", log=log)
        return {"folder": str(out), "shards": len(list(out.glob("*.tar")))}

    def feature_overrides(self) -> list[str]:
        feats = self.path("data", "features")
        return ["data.kind=features", f"data.shards={feats}", f"model.null_features={feats / 'null.safetensors'}"]

    def stage_generators(self, log) -> dict:
        info = {}
        for which, steps in (("small", self.settings.small_steps), ("large", self.settings.large_steps)):
            base = self.path("parts", f"wan_{which}_init")
            self.tool("fit.py", f"recipe={RECIPES['generators']}", f"paths.wan={base}", f"run.name={which}",
                      *self.feature_overrides(), *self.fit_overrides(steps), log=log)
            run = self.path("runs", "lab_generator", which)
            out = self.path("models", f"wan_{which}")
            self.tool("export.py", str(run / "checkpoints" / "last.ckpt"), str(out), "--dtype", "fp32", "--overwrite",
                      log=log)
            info[which] = {"run": str(run), "folder": str(out), "losses": losses(run)}
        return info

    def stage_stage1(self, log) -> dict:
        self.tool("fit.py", f"recipe={RECIPES['stage1']}", f"paths.wan={self.path('models', 'wan_small')}",
                  f"paths.vlm={self.path('models', 'vlm')}", *self.feature_overrides(),
                  f"eval.prompt_file={self.path('data', 'eval_prompts.jsonl')}", "run.name=default",
                  f"eval.every_n_steps={max(1, self.settings.stage1_steps // 2)}",
                  f"eval.sampling.num_steps={self.settings.sample_steps}",
                  *self.fit_overrides(self.settings.stage1_steps), log=log)
        run = self.path("runs", "lab_stage1", "default")
        self.tool("export.py", str(run / "checkpoints" / "last.ckpt"), str(self.path("models", "stage1")), "--dtype",
                  "fp32", "--overwrite", log=log)
        return {"run": str(run), "folder": str(self.path("models", "stage1")), "losses": losses(run)}

    def stage_validation(self, log) -> dict:
        from nexus.lab.experiment import judge_folder
        prompts = self.path("data", "val_prompts.jsonl")
        grid = self.settings.guidance_grid
        if len(grid) == 1:          # nothing to choose between
            return {"guidance_small": grid[0], "guidance_large": grid[0], "plain_score": None, "prompts": str(prompts)}
        scores = {}
        for which in ("small", "large"):
            for g in grid:
                out = self.path("validation", which, f"guidance{g}")
                self.tool("sample.py", *self.sample_overrides(out, 0, prompts), f"bridge.strategy={which}_only",
                          f"sampling.guidance_{which}={g}", log=log)
                scores.setdefault(which, {})[g] = judge_folder(out, prompts)["plain_score"]
            log(f"validation: {which}_only plain score by guidance {scores[which]}")
        best = {w: best_guidance(s) for w, s in scores.items()}
        return {"guidance_small": best["small"], "guidance_large": best["large"], "plain_score": scores,
                "prompts": str(prompts)}

    def stage_experiment(self, log) -> dict:
        from nexus.lab.experiment import configs, ground_truth, judge_folder
        prompts = self.path("data", "test_prompts.jsonl")
        results = {"ground_truth": {0: ground_truth(prompts, self.settings.size)}}
        for name, overrides, sweep in configs(self.settings.sample_steps):
            if (sweep and not self.settings.sweep) or (self.settings.strategies is not None
                                                       and name not in self.settings.strategies):
                continue
            for seed in self.settings.seeds[:1] if sweep else self.settings.seeds:
                out = self.path("samples", name, f"seed{seed}")
                self.tool("sample.py", *self.sample_overrides(out, seed), *overrides, log=log)
                results.setdefault(name, {})[seed] = judge_folder(out, prompts)
        write_json(self.path("experiment.json"), results)     # the root exists: the world stage wrote into it
        return {"configs": list(results), "file": str(self.path("experiment.json"))}

    def stage_diagnosis(self, log) -> dict:
        from nexus.lab.diagnose import connector_use, understanding_probe
        probe = understanding_probe(self.path("models", "vlm"), *self.scenes(), seed=self.settings.seed)
        log(f"understanding probe (fitted on plain training captions), held-out accuracy: {probe}")
        use = connector_use(self.path("models", "stage1"), self.path("data", "features"), seed=self.settings.seed)
        log(f"stage-1 small generator's flow loss by context: {use}")
        return {"understanding_probe": probe, "connector_use": use}

    def sample_overrides(self, out: Path, seed: int, prompts: Path | None = None) -> list[str]:
        """tools/sample.py on the lab's models; the experiment's with the guidance scales validation chose."""
        chosen = (self.done("validation") or {}).get("info", {}) if prompts is None else {}
        # the context lengths the models were trained with (recipes lab_generator, lab_stage1), as their exports say
        trained = {"text_len": read_json(self.path("models", "wan_large", "nexus.json"))["text_len"],
                   "context_len": read_json(self.path("models", "stage1", "nexus.json"))["context_len"]}
        return [f"paths.small={self.path('models', 'wan_small')}", f"paths.large={self.path('models', 'wan_large')}",
                f"paths.vlm={self.path('models', 'vlm')}", f"small.export={self.path('models', 'stage1')}",
                f"prompt_file={prompts or self.path('data', 'test_prompts.jsonl')}", f"out_dir={out}",
                *[f"sampling.{k}={chosen[k]}" for k in ("guidance_small", "guidance_large") if k in chosen],
                "sampling.num_frames=1",
                f"sampling.height={self.settings.size}", f"sampling.width={self.settings.size}",
                f"sampling.num_steps={self.settings.sample_steps}", f"sampling.seed={seed}", "sampling.dtype=fp32",
                *[f"sampling.{k}={v}" for k, v in trained.items()], "sampling.progress=false",
                "sampling.batch_size=32", "trainer.accelerator=cpu", "trainer.devices=1"]

    def stage_report(self, log) -> dict:
        from nexus.lab.experiment import report
        records = {name: self.done(name) for name in STAGES[:-1]}
        results = json.loads(self.path("experiment.json").read_text())
        paths = report(results, records, self.path("report"), self.logger, log)
        return paths | {"compare": self.compare_page(results, log)}

    def compare_page(self, results: dict, log) -> str:
        """Every strategy's first-seed samples side by side (nexus.evaluation.compare), linked from lab.md."""
        from nexus.evaluation.compare import compare_folders
        names = [n for n in results if n != "ground_truth"]
        folders = [self.path("samples", n, f"seed{self.settings.seeds[0]}") for n in names]
        index = compare_folders(folders, self.path("report", "compare"), labels=names, height=128, overwrite=True,
                                log=log)
        with open(self.path("report", "lab.md"), "a") as f:
            f.write(f"\nSamples side by side (seed {self.settings.seeds[0]}, every strategy): "
                    f"[compare/index.html](compare/index.html)\n")
        return str(index)


def best_guidance(scores: dict[float, float]) -> float:
    """The guidance scale with the best plain score; a tie goes to the smaller scale."""
    return max(scores, key=lambda g: (scores[g], -g))


def losses(run: Path) -> dict:
    """First and last logged training loss of a tools/fit.py run (its CSV log), and the number logged."""
    import csv
    rows = []
    for f in sorted(Path(run).glob("csv/version_*/metrics.csv")):
        rows += [float(r["train/loss"]) for r in csv.DictReader(open(f)) if r.get("train/loss")]
    return {"first": rows[0], "last": rows[-1], "logged": len(rows)} if rows else {}


def ship_vae(trained: Path, command: str, dest: Path = SHIPPED_VAE) -> Path:
    """Copy a VAE the lab trained (<root>/parts/vae) into the repository's data/lab/vae with the sha256 of each
    file and how it was made, so a fresh lab can start from it (docs/lab.md)."""
    info = json.loads((Path(trained) / "lab.json").read_text())
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(trained, dest)
    files = sorted(p.name for p in dest.iterdir() if p.name not in ("SHA256", "SOURCE.md"))
    (dest / "SHA256").write_text("".join(f"{hashlib.sha256((dest / f).read_bytes()).hexdigest()}  {f}\n"
                                         for f in files))
    (dest / "SOURCE.md").write_text(
        "# The shapes lab's VAE\n\nThe Wan VAE architecture (`nexus/lab/parts.py` VAE) trained by the lab itself on "
        "its own renders (`nexus.lab.parts.train_vae`), shipped because training it takes longer than the rest of the "
        f"lab.\n\n- Command: `{command}`\n- Settings: {info['steps']} steps, seed 0, batch 8, 64x64 single frames\n"
        f"- Held-out reconstruction PSNR: {info['psnr']:.2f} dB; training time {info['seconds'] / 60:.0f} min on the "
        "2-core CPU machine\n- `SHA256` lists every file's checksum; the lab checks them before using the weights.\n"
        "- License: made by this project, under the project's license.\n")
    return dest


def check_shipped(folder: Path) -> None:
    """The shipped VAE's files against the sha256 list written when it was made."""
    for line in (folder / "SHA256").read_text().splitlines():
        want, name = line.split()
        got = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        if got != want:
            raise ValueError(f"{folder / name}: sha256 {got} != {want} (SHA256); restore it from the repository or "
                             f"train the VAE here (tools/lab.py --train-vae)")
