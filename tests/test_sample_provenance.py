"""A sample folder never mixes settings and says what made its videos (samples.json, prompts.jsonl), and
tools/evaluate.py scores it against the prompts it was given."""
import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from helpers import ROOT, compose_fit, tiny_overrides
from nexus.errors import UserError
from nexus.evaluation.run import evaluate_folder
from nexus.inference.launch import sample
from nexus.provenance import content_sha256
from nexus.training.launch import fit


def compose_in(folder, name, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / folder), version_base=None):
        return compose(name, overrides=list(overrides))


def run_sample(tmp_path, tiny_models, *extra):
    return sample(compose_in("recipes/sample", "sample", f"run.root={tmp_path}/runs", f"paths.small={tiny_models['wan']}",
                             f"paths.large={tiny_models['wan_large']}", f"paths.vlm={tiny_models['vlm']}",
                             "paths.tiny_models=null", "sampling.num_steps=2", "sampling.num_frames=5",
                             "sampling.progress=false", *extra))


def record(folder) -> dict:
    return json.loads((Path(folder) / "samples.json").read_text())


def manifest(folder) -> list[dict]:
    return [json.loads(line) for line in (Path(folder) / "prompts.jsonl").read_text().splitlines()]


def test_other_settings_are_refused_and_overwrite_starts_afresh(tmp_path, tiny_models):
    (first,) = run_sample(tmp_path, tiny_models, "prompt=a red ball")
    folder, before = Path(first).parent, Path(first).read_bytes()
    rec = record(folder)
    assert rec["settings"]["bridge"]["gamma_w"] == 0.3 and rec["settings"]["sampling"]["num_steps"] == 2
    assert "progress" not in rec["settings"]["sampling"] and rec["weights"]["export"] is None
    assert rec["weights"]["small"]["path"] == str(Path(tiny_models["wan"]).resolve())
    assert manifest(folder) == [{"id": "00000-a-red-ball", "prompt": "a red ball"}]
    with pytest.raises(UserError, match=r"holds videos made with other settings \(bridge\.gamma_w: 0\.3 -> 0\.5;.*"
                                        r"run\.name=<name>.*overwrite=true to delete its 1 videos"):
        run_sample(tmp_path, tiny_models, "prompt=a red ball", "bridge.gamma_w=0.5")
    with pytest.raises(UserError, match=r"sampling\.seed: 0 -> 1"):
        run_sample(tmp_path, tiny_models, "prompt=another prompt", "sampling.seed=1")
    assert Path(first).read_bytes() == before and record(folder) == rec                # untouched
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["00000-a-red-ball.mp4"]
    (again,) = run_sample(tmp_path, tiny_models, "prompt=a red ball", "bridge.gamma_w=0.5", "overwrite=true")
    assert again == first and Path(again).read_bytes() != before                      # made anew, with 0.5
    assert record(folder)["settings"]["bridge"]["gamma_w"] == 0.5 and len(record(folder)["launches"]) == 1


def test_same_settings_add_prompts_but_a_prompt_text_cannot_change(tmp_path, tiny_models):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "a red ball"}\n')
    run_sample(tmp_path, tiny_models, f"prompt_file={prompts}")
    prompts.write_text('{"id": "a", "prompt": "a red ball"}\n{"id": "b", "prompt": "a blue cube"}\n')
    paths = run_sample(tmp_path, tiny_models, f"prompt_file={prompts}")
    folder = Path(paths[0]).parent
    assert [Path(p).name for p in paths] == ["a.mp4", "b.mp4"]
    assert manifest(folder) == [{"id": "a", "prompt": "a red ball"}, {"id": "b", "prompt": "a blue cube"}]
    assert [x["prompts"] for x in record(folder)["launches"]] == [1, 2]
    prompts.write_text('{"id": "a", "prompt": "a green cone"}\n')
    with pytest.raises(UserError, match=r"holds the video of prompt id a for another text \('a red ball', now "
                                        r"'a green cone'\)"):
        run_sample(tmp_path, tiny_models, f"prompt_file={prompts}")


def test_a_folder_without_a_record_is_refused_and_an_empty_one_is_not(tmp_path, tiny_models):
    folder = tmp_path / "runs" / "tiny" / "samples" / "upfb"
    folder.mkdir(parents=True)
    (folder / "old.mp4").write_bytes(b"not a video")
    with pytest.raises(UserError, match=r"holds 1 videos but no record of what made them \(samples\.json\)"):
        run_sample(tmp_path, tiny_models, "prompt=x")
    (folder / "old.mp4").unlink()
    (folder / "samples.json").write_text(json.dumps({"settings": {}, "weights": {}, "created": "then", "launches": []}))
    run_sample(tmp_path, tiny_models, "prompt=x")              # no video to keep apart: it becomes this one's
    assert record(folder)["settings"]["bridge"]["strategy"] == "upfb" and record(folder)["created"] != "then"


@pytest.mark.slow
def test_a_checkpoint_trained_further_is_refused_and_its_export_recorded(tmp_path, tiny_models, tiny_shards):
    over = tiny_overrides(tmp_path / "stage1", tiny_models, tiny_shards)
    fit(compose_fit(*over, "trainer.max_steps=2"))
    ckpt = tmp_path / "stage1" / "runs" / "tiny" / "default" / "checkpoints" / "last.ckpt"
    run_sample(tmp_path, tiny_models, "prompt=x")                                    # the stock small Wan
    with pytest.raises(UserError, match=r"paths\.vlm: null -> \".*small\.export: null -> \""):
        run_sample(tmp_path, tiny_models, "prompt=x", f"small.export={ckpt}")
    (video,) = run_sample(tmp_path, tiny_models, "prompt=x", f"small.export={ckpt}", "run.name=trained")
    folder = Path(video).parent
    export = record(folder)["weights"]["export"]
    assert export["kind"] == "checkpoint" and export["source"] == str(ckpt.resolve()) and export["global_step"] == 2
    assert export["content_sha256"] == content_sha256(export["export_folder"])
    fit(compose_fit(*over, "trainer.max_steps=3"))                                   # train further
    with pytest.raises(UserError, match=r"small\.export: \"[0-9a-f]+\" -> \"[0-9a-f]+\""):
        run_sample(tmp_path, tiny_models, "prompt=x", f"small.export={ckpt}", "run.name=trained")
    run_sample(tmp_path, tiny_models, "prompt=x", f"small.export={ckpt}", "run.name=trained", "overwrite=true")
    assert record(folder)["weights"]["export"]["global_step"] == 3
    assert len(list((folder / ".stage1").iterdir())) == 1                            # the stale export is gone


def test_evaluate_scores_the_prompts_the_videos_were_made_from(tmp_path, tiny_models):
    (video,) = run_sample(tmp_path, tiny_models, "prompt=a red square moves right")
    folder = Path(video).parent
    shutil.copy(video, folder / "stray.mp4")                   # not made by this folder's commands
    cfg = compose_in("recipes/evaluate", "evaluate", "recipe=tiny", f"videos={folder}",
                     f"paths.tiny_models={Path(tiny_models['wan']).parent}",
                     "metrics.dimensions=[temporal_flickering,clip_text_similarity]")
    result = evaluate_folder(cfg)
    assert [r["prompt"] for r in result["rows"]] == ["a red square moves right"]        # not the file name
    assert result["prompts_from"] == str(folder / "prompts.jsonl")
    assert result["errors"] == [{"file": "stray.mp4", "error": f"no prompt for it in {folder / 'prompts.jsonl'}"}]
    assert result["samples"]["settings"]["bridge"]["strategy"] == "upfb"
    md = (folder / "eval" / "scores.md").read_text()
    assert f"Prompts from: {folder / 'prompts.jsonl'}." in md and "Videos made by: strategy upfb, 2 steps" in md
