"""tools/evaluate.py over a folder of mp4 files and tools/watch_eval.py over a run's checkpoints."""
import csv
import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from helpers import ROOT, compose_fit, tiny_overrides
from nexus.data.video import decode_mp4, write_mp4
from nexus.evaluation.run import evaluate_folder, prompt_from_name
from nexus.evaluation.watch import watch
from nexus.training.launch import fit


def _compose(folder: str, name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "recipes" / folder), version_base=None):
        return compose(name, overrides=list(overrides))


def test_evaluate_folder_scores_and_reports(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    static = np.full((5, 32, 32, 3), 120, np.uint8)
    flicker = static.copy()
    flicker[1::2] = 200
    write_mp4(videos / "a_static_grey_square-0.mp4", static)
    write_mp4(videos / "flicker.mp4", flicker)
    (videos / "broken.mp4").write_bytes(b"not a video")
    cfg = _compose("evaluate", "evaluate", f"videos={videos}", "metrics.dimensions=[temporal_flickering]")
    with pytest.warns(UserWarning, match="skipping broken.mp4"):
        result = evaluate_folder(cfg)
    assert result["videos"] == 2 and [e["file"] for e in result["errors"]] == ["broken.mp4"]
    rows = {r["id"]: r for r in result["rows"]}
    assert rows["a_static_grey_square-0"]["prompt"] == "a static grey square"      # VBench-style name
    # the exact formula on the decoded (compressed) frames, written out here
    for vid in rows:
        x = torch.from_numpy(decode_mp4(str(videos / f"{vid}.mp4"))).float()
        expect = (255 - (x[1:] - x[:-1]).abs().mean()) / 255
        assert rows[vid]["temporal_flickering"] == pytest.approx(expect.item(), abs=1e-6)
    assert rows["a_static_grey_square-0"]["temporal_flickering"] > 0.99 > rows["flicker"]["temporal_flickering"]
    saved = json.loads((videos / "eval" / "scores.json").read_text())
    assert saved["scores"] == pytest.approx(result["scores"])
    assert saved["vbench"]["quality"] == pytest.approx((result["scores"]["temporal_flickering"] - 0.6293) / 0.3707)
    md = (videos / "eval" / "scores.md").read_text()
    assert "| temporal_flickering |" in md and "broken.mp4" in md
    assert prompt_from_name("a_cat_runs-12") == "a cat runs"
    with pytest.raises(FileNotFoundError, match="no mp4 files"):
        evaluate_folder(_compose("evaluate", "evaluate", f"videos={tmp_path}"))


def test_watch_eval_each_checkpoint_once(tmp_path, tiny_models, tiny_shards):
    def train(steps):
        fit(compose_fit(*tiny_overrides(tmp_path, tiny_models, tiny_shards, f"trainer.max_steps={steps}",
                                        "checkpoint.every_n_steps=2", "checkpoint.keep_last=5")))
    run = tmp_path / "runs" / "tiny" / "default"
    cfg = _compose("sample", "watch_eval", "recipe=tiny", f"run_dir={run}", "once=true", "logger=csv",
                   f"paths.small={tiny_models['wan']}", f"paths.large={tiny_models['wan_large']}",
                   f"paths.vlm={tiny_models['vlm']}", "paths.tiny_models=null", "prompts=[a red ball,a blue cube]",
                   "sampling.num_steps=2", "sampling.progress=false", "metrics.dimensions=[temporal_flickering]")
    train(2)
    assert list(watch(cfg)) == ["step00000002.ckpt"]
    assert list(watch(cfg)) == []                                      # nothing new: nothing twice
    train(4)                                                           # the same command resumes to step 4
    assert list(watch(cfg)) == ["step00000004.ckpt"]
    root = run / "eval_watch"
    done = json.loads((root / "done.json").read_text())
    assert {k: v["step"] for k, v in done.items()} == {"step00000002.ckpt": 2, "step00000004.ckpt": 4}
    for step in ("step00000002", "step00000004"):
        assert sorted(p.name for p in (root / step).glob("*.mp4")) == ["000.mp4", "001.mp4"]
        assert not (root / step / ".stage1").exists()                # the temporary export is gone
        scores = json.loads((root / step / "scores.json").read_text())
        assert scores["checkpoint"].endswith(f"{step}.ckpt") and scores["videos"] == 2
    logged = [r for f in sorted(root.glob("csv/version_*/metrics.csv")) for r in csv.DictReader(f.open())]
    assert [int(r["step"]) for r in logged] == [2, 4]
    assert float(logged[1]["eval/temporal_flickering"]) == pytest.approx(done["step00000004.ckpt"]["scores"][
        "temporal_flickering"])
    with pytest.raises(FileNotFoundError, match="no checkpoints/ folder"):
        watch(_compose("sample", "watch_eval", "recipe=tiny", f"run_dir={tmp_path}", "once=true"))
