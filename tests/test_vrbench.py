"""VR-Bench: case reading, robust parsing and scoring against values worked out by hand; the real tiny
Qwen2.5-VL judge end to end (both modes, cache reuse, bad videos, generation through the inference module);
reports and Kendall tau by hand."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT
from nexus.data.video import write_mp4
from nexus.evaluation.vrbench.agreement import agreement, kendall
from nexus.evaluation.vrbench.cases import Case, Question, load_cases
from nexus.evaluation.vrbench.judge import check_judge, encode, load_judge, one_question_prompt, sample_frames
from nexus.evaluation.vrbench.parse import parse_answers
from nexus.evaluation.vrbench.report import report
from nexus.evaluation.vrbench.run import evaluate
from nexus.evaluation.vrbench.scores import aggregate, case_scores
from nexus.inference.prompts import load_prompts
from nexus.models.loading import LayoutError

SHARED = ROOT.parent / "shared" / "vrbench"
QIDS = [f"q{i}" for i in range(1, 9)]
WEIGHTS = [1, 2, 1, 2, 1, 1, 1, 1]          # sum 10; L1 = q1-2 (3), L2 = q3-5 (4), L3 = q6-8 (3)


def cli(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def case(case_id="DRF_900", dimension="DRF"):
    questions = tuple(Question(q, f"is {q} true?", w) for q, w in zip(QIDS, WEIGHTS))
    return Case(case_id, dimension, "a ball rolls", questions)


def entry(case_id, category="Dynamic Reference Frame", **change):
    e = {"id": case_id, "category": category, "prompt_en": "a train passes", "evaluation": {"evaluation_questions": [
        {"id": q, "question": f"{q}?", "weight": w} for q, w in zip(QIDS, WEIGHTS)]}}
    e.update(change)
    return e


def test_public_cases_match_the_prompt_loader():
    cases, problems = load_cases(SHARED)
    assert problems == [] and len(cases) == 216
    assert [c.id for c in cases] == [p.id for p in load_prompts(prompt_file=str(SHARED))]   # same video names
    assert {"ETV_022", "ETV_022_2"} <= {c.id for c in cases}
    counts = {d: sum(c.dimension == d for c in cases) for d in ("MMC", "CCR", "DRF")}
    assert counts == {"MMC": 24, "CCR": 29, "DRF": 28}
    assert all([q.id for q in c.questions] == QIDS and {q.weight for q in c.questions} <= {1.0, 2.0} for c in cases)


def test_bad_cases_are_reported_and_skipped(tmp_path):
    bad_weight = entry("DRF_003")
    bad_weight["evaluation"]["evaluation_questions"][2]["weight"] = "two"
    good, no_prompt, bad_cat = entry("DRF_001"), entry("DRF_002"), entry("DRF_004", category="Cooking")
    del no_prompt["prompt_en"]
    no_questions = entry("DRF_005", evaluation={})
    (tmp_path / "a.json").write_text(json.dumps({"Dynamic Reference Frame": {"prompts": [
        good, no_prompt, bad_weight, bad_cat, no_questions, {"category": "x"}]}}))
    (tmp_path / "b.json").write_text("{not json")
    cases, problems = load_cases(tmp_path)
    assert [c.id for c in cases] == ["DRF_001"]
    text = "\n".join(problems)
    assert len(problems) == 6, text
    assert f"{tmp_path / 'a.json'}: case DRF_002: missing field 'prompt_en'" in text
    assert ("case DRF_003: field 'evaluation.evaluation_questions[2].weight' must be a positive number, got 'two'"
            in text)
    assert "case DRF_004: field 'category' is 'Cooking'" in text
    assert "case DRF_005: missing field 'evaluation.evaluation_questions'" in text
    assert "case #5 (no 'id')" in text and f"{tmp_path / 'b.json'}: skipped, not readable" in text
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_cases(tmp_path / "missing")


MALFORMED = [   # (judge reply, expected answers)
    ('Sure! Here is my evaluation:\n```json\n{"answers": {"q1": {"answer": "yes", "reason": "a {curly} brace"}, '
     '"q2": {"answer": "NO."}, "q3": {"answer": "Yes, clearly"}, "q4": {"answer": true}, "q5": {"answer": "maybe"}, '
     '"q6": {"answer": "No"}, "q7": "YES", "q8": {"answer": "Yes",},}}\n```\nHope this helps.',
     ["Yes", "No", "Yes", "Yes", None, "No", "Yes", "Yes"]),
    ("{'answers': {'Q1': {'answer': 'Yes'}, 'q2': {'answer': 'No'}}}", ["Yes", "No"] + [None] * 6),
    ('{"answers": {"q1": {"answer": "Yes", "reason": "x"}, "q2": {"answer": "No", "rea',      # cut off mid-reply
     ["Yes", "No"] + [None] * 6),
    ("/ow penit<vf penit", [None] * 8),
    ('{"q3": "no", "q4": "Yes"}', [None, None, "No", "Yes", None, None, None, None]),
]


@pytest.mark.parametrize("reply,expected", MALFORMED)
def test_parse_malformed_replies(reply, expected):
    assert parse_answers(reply, QIDS) == dict(zip(QIDS, expected))


def test_scores_by_hand():
    answers = parse_answers(MALFORMED[0][0], QIDS)      # q5 unparsed -> No
    s = case_scores(case(), answers)
    # Yes on q1 (1), q3 (1), q4 (2), q7 (1), q8 (1) = 6 of 10; L1 1/3; L2 (1 + 2)/4; L3 (1 + 1)/3
    assert s["score"] == pytest.approx(0.6) and s["unparsed"] == 1
    assert (s["L1"], s["L2"], s["L3"]) == pytest.approx((1 / 3, 0.75, 2 / 3))
    rows = {"a": s, "b": case_scores(case(), parse_answers(MALFORMED[3][0], QIDS)),        # garbage: all No -> 0
            "c": case_scores(case(dimension="CAC"), parse_answers(MALFORMED[1][0], QIDS))}  # q1 Yes: 1/10
    agg = aggregate(rows)
    assert agg["dimensions"]["DRF"]["score"] == pytest.approx(30.0) and agg["dimensions"]["DRF"]["cases"] == 2
    assert agg["dimensions"]["CAC"]["score"] == pytest.approx(10.0)
    assert agg["categories"]["HL-Phys"]["score"] == pytest.approx(30.0)
    assert agg["categories"]["Emb-Phys"]["score"] == pytest.approx(10.0) and "HL-Comm" not in agg["categories"]
    assert agg["overall"]["score"] == pytest.approx(20.0)     # mean of dimensions (the case mean would be 23.3)
    assert agg["overall"]["L1"] == pytest.approx(((100 / 3 + 0) / 2 + 100 / 3) / 2)
    assert agg["unparsed"] == 1 + 8 + 6


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three 12-frame clips, an unreadable file; PCR_001 has no video."""
    out = tmp_path_factory.mktemp("vrbench_videos")
    for i, c in enumerate(["DRF_001", "CAC_001", "ETV_022_2"]):
        write_mp4(out / f"{c}.mp4", np.random.RandomState(i).randint(0, 255, (12, 32, 32, 3)).astype(np.uint8))
    (out / "BBR_001.mp4").write_bytes(b"not a video")
    return out


ONLY = "DRF_001,CAC_001,ETV_022_2,BBR_001,PCR_001"


def test_tiny_judge_generate_mode_caches_and_skips_bad_videos(tmp_path, tiny_models, videos):
    run = lambda: evaluate(SHARED, videos, tiny_models["vlm"], tmp_path / "run", mode="generate",   # noqa: E731
                           max_new_tokens=8, dtype="fp32", only=ONLY)
    first = run()
    assert (first["judged"], first["cached"]) == (3, 0)
    problems = "\n".join(first["problems"])
    assert "BBR_001: unreadable video" in problems and "PCR_001: no video" in problems
    # the random judge never writes JSON: every answer is unparsed, counted, and scored as No
    assert first["unparsed"] == 24 and first["overall"]["score"] == 0.0
    assert json.loads((tmp_path / "run" / "scores.json").read_text())["cases"].keys() == {"DRF_001", "CAC_001",
                                                                                         "ETV_022_2"}
    assert (tmp_path / "run" / "vrbench_table.md").is_file() and (tmp_path / "run" / "cases.csv").is_file()
    assert (run()["judged"], run()["cached"]) == (0, 3)              # a re-run judges nothing
    write_mp4(videos / "DRF_001.mp4", np.zeros((12, 32, 32, 3), np.uint8))
    again = run()
    assert (again["judged"], again["cached"]) == (1, 2)             # only the changed video


def test_tiny_judge_prob_mode_by_hand(tmp_path, tiny_models, videos):
    result = evaluate(SHARED, videos, tiny_models["vlm"], tmp_path / "run", mode="prob", dtype="fp32",
                      only="CAC_001,ETV_022_2", cache=tmp_path / "cache")
    cases = {c.id: c for c in load_cases(SHARED)[0]}
    entries = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("*.json")]
    assert len(entries) == 2
    for e in entries:   # the score follows from the cached probabilities: Yes iff P(yes) > 0.5
        qs = cases[e["case"]].questions
        by_hand = sum(q.weight for q in qs if e["probs"][q.id] > 0.5) / sum(q.weight for q in qs)
        assert result["cases"][e["case"]]["score"] == pytest.approx(by_hand)
        assert all(0 < p < 1 for p in e["probs"].values())
    # batching the eight questions (left padding) gives what one question alone gives; the frames matter
    judge, c = load_judge(tiny_models["vlm"], "fp32"), cases["CAC_001"]
    frames = sample_frames(videos / "CAC_001.mp4", 16)
    assert len(frames) == 12
    cached = next(e for e in entries if e["case"] == "CAC_001")["probs"]
    alone = encode(judge, frames, [one_question_prompt(c, c.questions[3], len(frames))])
    p = judge.model(**alone, logits_to_keep=1).logits[0, -1, list(judge.yes_no)].softmax(-1)[0].item()
    assert p == pytest.approx(cached["q4"], abs=1e-5)
    other = encode(judge, frames[::-1], [one_question_prompt(c, c.questions[3], len(frames))])
    assert judge.model(**other, logits_to_keep=1).logits[0, -1, list(judge.yes_no)].softmax(-1)[0].item() != p


def test_judge_folder_that_is_not_a_vlm(tmp_path, tiny_models, videos):
    with pytest.raises(LayoutError, match="not a vision-language model: its config.json has model_type 'umt5'"):
        check_judge(Path(tiny_models["wan"]) / "text_encoder")
    with pytest.raises(LayoutError, match="no such folder"):
        check_judge(tmp_path / "nowhere")
    r = cli("tools/vrbench.py", "evaluate", "--cases", SHARED, "--videos", videos,
            "--judge", f"{tiny_models['wan']}/vae", "--out", tmp_path / "run", "--only", "DRF_001")
    assert r.returncode == 2 and "is not a vision-language model: its config.json has model_type" in r.stderr
    assert not (tmp_path / "run" / "scores.json").exists()


def test_generate_through_the_inference_module(tmp_path, tiny_models):
    overrides = (f"recipe=tiny paths.tiny_models={Path(tiny_models['wan']).parent} run.root={tmp_path} "
                 "sampling.num_steps=2 sampling.num_frames=5 sampling.progress=false bridge.strategy=upfb")
    result = evaluate(SHARED, tmp_path / "videos", tiny_models["vlm"], tmp_path / "run", mode="prob", dtype="fp32",
                      only="ETV_022_2", generate=overrides)
    assert (tmp_path / "videos" / "ETV_022_2.mp4").is_file() and result["judged"] == 1 and result["problems"] == []


def test_report_and_rank_agreement_by_hand(tmp_path):
    def run(name, scores):      # one DRF case per score, q1 .. q8 Yes for the first k questions
        rows = {f"DRF_{i:03d}": case_scores(case(f"DRF_{i:03d}"), {q: "Yes" for q in QIDS[:k]})
                for i, k in enumerate(scores)}
        result = {"name": name, **aggregate(rows), "cases": rows}
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.json").write_text(json.dumps(result))
        return tmp_path / name
    a, b = run("upfb", [1, 3, 5, 8]), run("large_only", [0, 5, 3, 8])
    paths = report([a, b], tmp_path / "report")
    table = (tmp_path / "report" / "vrbench_table.md").read_text()
    assert "| upfb |" in table and "| large_only |" in table and paths[-1].read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report" / "vrbench_table.csv").read_text().splitlines()[0].startswith("run,DRF,ETV,MMC,HL-Phys")
    # case scores a: .1 .4 .7 1 ; b: 0 .7 .4 1 -> 5 concordant, 1 discordant pair of 6: tau = 4/6
    r = agreement([a], [b])
    assert r["case"]["n"] == 4 and r["case"]["tau"] == pytest.approx(4 / 6)
    human = tmp_path / "human.csv"
    human.write_text("case,score\nDRF_000,1\nDRF_001,2\nDRF_002,3\nDRF_003,5\n")
    assert agreement([a], [human])["case"]["tau"] == pytest.approx(1.0)
    assert kendall({("x",): 1.0}, {("x",): 2.0})["tau"] is None
    r = cli("tools/rank_agreement.py", "--a", a, "--b", human, "--json", tmp_path / "tau.json")
    assert r.returncode == 0 and "| case | 4 | 1.000 |" in r.stdout, r.stderr[-2000:]
    assert json.loads((tmp_path / "tau.json").read_text())["dimension"]["n"] == 1
    human.write_text("case,score\nXYZ_1,1\n")
    with pytest.raises(ValueError, match="no dimension for case 'XYZ_1'"):
        agreement([a], [human])
