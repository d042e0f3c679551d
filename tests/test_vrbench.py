"""VR-Bench: case reading; the reference protocol (prompt text per dimension written from the reference
evaluators, frame indices, case set, reply reading rule for rule) and the lenient one; scoring against values
worked out by hand; the real tiny Qwen2.5-VL judge end to end (both modes, both protocols, cache reuse, bad
videos, generation through the inference module); reports and Kendall tau by hand."""
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
from nexus.evaluation.vrbench.parse import Dropped, lenient_answers, read_reply, reference_answers
from nexus.evaluation.vrbench.protocol import frame_indices, reference_case_set, reference_prompt
from nexus.evaluation.vrbench.report import report
from nexus.evaluation.vrbench.run import evaluate
from nexus.evaluation.vrbench.scores import aggregate, case_scores, dropped_scores
from nexus.inference.prompts import load_prompts
from nexus.models.loading import LayoutError

SHARED = ROOT.parent / "shared" / "vrbench"
DATA = ROOT / "data" / "vrbench"
QIDS = [f"q{i}" for i in range(1, 9)]
WEIGHTS = [1, 2, 1, 2, 1, 1, 1, 1]          # sum 10; L1 = q1-2 (3), L2 = q3-5 (4), L3 = q6-8 (3)


def cli(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def case(case_id="DRF_900", dimension="DRF"):
    questions = tuple(Question(q, f"is {q} true?", w) for q, w in zip(QIDS, WEIGHTS))
    return Case(case_id, dimension, "a ball rolls", questions, raw_id=case_id)


def entry(case_id, category="Dynamic Reference Frame", **change):
    e = {"id": case_id, "category": category, "prompt_en": "a train passes", "evaluation": {"evaluation_questions": [
        {"id": q, "question": f"{q}?", "weight": w} for q, w in zip(QIDS, WEIGHTS)]}}
    e.update(change)
    return e


def test_public_cases_match_the_prompt_loader():
    cases, problems = load_cases(DATA)
    assert problems == [] and len(cases) == 216
    assert [c.id for c in cases] == [p.id for p in load_prompts(prompt_file=str(DATA))]   # same video names
    assert {"ETV_022", "ETV_022_2"} <= {c.id for c in cases}
    counts = {d: sum(c.dimension == d for c in cases) for d in ("MMC", "CCR", "DRF")}
    assert counts == {"MMC": 24, "CCR": 29, "DRF": 28}
    assert all([q.id for q in c.questions] == QIDS and {q.weight for q in c.questions} <= {1.0, 2.0} for c in cases)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/vrbench is not beside this clone (CI has it)")
def test_the_shipped_cases_are_the_public_ones():
    """data/vrbench (what the tools read) holds the public VR-Bench files byte for byte."""
    assert [p.name for p in sorted(DATA.glob("*.json"))] == [p.name for p in sorted(SHARED.glob("*.json"))]
    assert [p.read_bytes() for p in sorted(DATA.glob("*.json"))] == [p.read_bytes() for p in sorted(SHARED.glob("*.json"))]


def test_reference_case_set_keeps_the_last_of_a_repeated_id():
    cases, _ = load_cases(DATA)
    kept, notes = reference_case_set(cases)
    assert len(kept) == 215 and [c.id for c in cases if c not in kept] == ["ETV_022"]
    etv = json.loads((DATA / "ETV_prompts.json").read_text())["Energy Transfer Visualization"]["prompts"]
    second = [e for e in etv if e["id"] == "ETV_022"][1]
    kept_022 = next(c for c in kept if c.raw_id == "ETV_022")
    assert kept_022.id == "ETV_022_2" and kept_022.prompt == second["prompt_en"]
    assert notes == ["ETV_022: the id ETV_022 appears again later in its file; the reference keeps the last case "
                     "with an id (ETV_022_2 here), so this one is not judged"]
    with pytest.raises(ValueError, match="ETV_022 is not in the reference case set: .* the later case, ETV_022_2 here"):
        evaluate(DATA, DATA, "/nonexistent", "/tmp/nexus-never", only="ETV_022")


# The reference evaluators (Lumos-Custom vr_bench_eval/evaluators/<DIM>_evaluator.py) open their prompt with a
# persona of their own, then share one body; written here from reading them, independently of data/vrbench/prompts.
PERSONA = {
    "DRF": 'You are an objective video reasoning evaluator specializing in the "{category}" metric.\n'
           "You will analyze the video and answer the following binary (Yes/No) questions.",
    "ETV": "You are an objective evaluator analyzing how energy transfer is depicted in a video.\n"
           "Your task is to assess whether the generated video demonstrates realistic energy flow,\n"
           "directionality, and physical plausibility in accordance with physics-based reasoning.",
    "MMC": "You are an objective evaluator analyzing material memory consistency in videos.\n"
           "Your goal is to assess whether an object's deformation, recovery, and residual traces\n"
           "match realistic material properties and physical memory behavior.",
    "CAR": "You are an objective evaluator analyzing conceptual action understanding in videos.\n"
           "Your goal is to decide whether the actions collectively express the abstract concept intended.",
    "CCR": "You are an objective cultural evaluator analyzing videos for cultural commonsense reasoning.\n"
           "Your goal is to assess whether the video accurately represents cultural symbols,\n"
           "attire, rituals, and social interactions consistent with the described culture.",
    "PCR": "You are an objective evaluator analyzing preventive causal reasoning in videos.\n"
           "Your task is to assess whether the video demonstrates anticipation of risk and\n"
           "preventive actions that logically avoid a potential negative outcome.",
    "BBR": "You are an objective evaluator analyzing biological and ecological realism in generated videos.\n"
           "Your task is to assess whether the video demonstrates the specific behaviors and properties described "
           "in each question.",
    "CAC": "You are an objective evaluator analyzing concurrent actions in videos.\n"
           "Your goal is to determine whether multiple actions are performed simultaneously\n"
           "with realistic timing, coordination, and physical plausibility.",
}
DEFAULT_INSTRUCTION = {   # used only when a case has no evaluation.overall_instruction
    "DRF": "Answer 'Yes' or 'No' to each question and briefly explain your reasoning for each.",
    "ETV": "Answer 'Yes' or 'No' to each question and briefly explain reasoning.",
    "CCR": "Answer 'Yes' or 'No' for each question and justify briefly.",
    "PCR": "Answer 'Yes' or 'No' for each question and give reasoning.",
    **dict.fromkeys(("MMC", "CAR", "BBR", "CAC"), "Answer 'Yes' or 'No' to each question and explain briefly."),
}


def expected_prompt(e: dict, dim: str) -> str:
    ev = e["evaluation"]
    qs = ev["evaluation_questions"]
    q_text = "\n".join(f"{i + 1}. {q['question']} (weight: {q['weight']})" for i, q in enumerate(qs))
    answers = ",\n    ".join(f'"{q["id"]}": {{"answer": "Yes or No", "reason": "..."}}' for q in qs)
    persona = PERSONA[dim].format(category=e["category"])
    return f"""
{persona}

EVALUATION PRINCIPLES:
1. Answer "Yes" if you can observe the described behavior/property in the video frames, even if it's partially visible or somewhat ambiguous
2. Answer "Yes" if the behavior/property is reasonably demonstrated, even if not perfect
3. Give the benefit of the doubt - if the behavior/property appears to be present or can be reasonably inferred, answer "Yes"
4. Answer "No" only if the behavior/property is clearly absent or contradicts what is shown
5. Consider the overall context and intent of the prompt when evaluating
6. Each question should be evaluated based on what you observe in the video frames

=== Video Task ===
Video ID: {e["id"]}
Prompt: {e["prompt_en"]}
Description: {e.get("description", "")}

=== Evaluation Context ===
{ev.get("evaluation_description", "")}

=== Evaluation Questions ===
{q_text}

{ev.get("overall_instruction", DEFAULT_INSTRUCTION[dim])}

=== Required JSON Output ===
{{
  "video_id": "{e["id"]}",
  "answers": {{
    {answers}
  }}
}}

IMPORTANT RULES:
- Output only valid JSON. Each answer must be exactly "Yes" or "No" (case-sensitive)
- Be reasonable: Answer "Yes" when the behavior/property is present or can be reasonably inferred
- If the behavior/property appears to be present (even partially), answer "Yes"
- Only answer "No" if the behavior/property is clearly absent
- Provide brief reasoning in the "reason" field explaining your decision
""".strip()   # noqa: E501


@pytest.mark.parametrize("dim", list(PERSONA))
def test_reference_prompt_per_dimension(dim, tmp_path):
    raw = json.loads(next(DATA.glob(f"{dim}_*.json")).read_text())
    entries = next(iter(raw.values()))["prompts"]
    e = [x for x in entries if x["id"] == "ETV_022"][-1] if dim == "ETV" else entries[0]   # ETV: the second ETV_022
    c = next(c for c in reference_case_set(load_cases(DATA)[0])[0] if c.raw_id == e["id"])
    assert reference_prompt(c) == expected_prompt(e, dim)
    assert dim != "ETV" or (c.id == "ETV_022_2" and "Video ID: ETV_022\n" in reference_prompt(c))
    # without overall_instruction the dimension's own default; an integer weight prints as the file writes it
    e = json.loads(json.dumps(e))
    del e["evaluation"]["overall_instruction"]
    e["evaluation"]["evaluation_questions"][0]["weight"] = 2
    (tmp_path / "one.json").write_text(json.dumps({e["category"]: {"prompts": [e]}}))
    (c,), _ = load_cases(tmp_path / "one.json")
    assert reference_prompt(c) == expected_prompt(e, dim) and "(weight: 2)\n" in reference_prompt(c)


def test_reference_frame_indices():
    assert frame_indices(81, 16) == [0, 5, 10, 16, 21, 26, 32, 37, 42, 48, 53, 58, 64, 69, 74, 80]
    assert frame_indices(121, 16) == list(range(0, 121, 8))
    assert frame_indices(33, 16) == [0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 32]
    assert frame_indices(12, 16) == list(range(12))


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


MALFORMED = [   # (judge reply, expected lenient answers)
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
def test_lenient_reads_malformed_replies(reply, expected):
    assert lenient_answers(reply, QIDS) == dict(zip(QIDS, expected))


def reply(*answers, extra=""):
    return json.dumps({"video_id": "X", "answers": {q: {"answer": a, "reason": "..."} for q, a in zip(QIDS, answers)}})


N = None
DROP = "dropped"
# (reply, reference reading by the seven JSON evaluators, by DRF's evaluator, lenient reading); readings list
# q1.. (the rest None) and were worked out by following the reference code by hand
PROTOCOL_CASES = {
    "clean, fenced": ("```json\n" + reply(*["Yes"] * 4, *["No"] * 4) + "\n```",
                      ["Yes"] * 4 + ["No"] * 4, ["Yes"] * 4 + ["No"] * 4, ["Yes"] * 4 + ["No"] * 4),
    "single quotes": ("{'answers': {'q1': {'answer': 'Yes'}, 'q2': {'answer': 'No'}}}",
                      [], [], ["Yes", "No"]),
    "truncated": ('{"answers": {"q1": {"answer": "Yes", "reason": "x"}, "q2": {"answer": "No", "rea',
                  [], ["Yes", "No"], ["Yes", "No"]),                      # DRF: its first pattern per question
    "trailing comma": ('{"answers": {"q1": {"answer": "Yes"}, "q2": {"answer": "Yes"},}}',
                       [], ["Yes", "Yes"], ["Yes", "Yes"]),
    "qN lines": ("q1: Yes\nq2: No\nq3: yes", [], ["Yes", "No", "Yes"], ["Yes", "No", "Yes"]),
    '"Yes."': (reply("Yes.", "No.", "yes", "YES"), [N, N, "Yes", "Yes"], [N, N, "Yes", "Yes"],
               ["Yes", "No", "Yes", "Yes"]),
    "placeholder echoed": (reply("Yes or No", "No"), [N, "No"], [N, "No"], [N, "No"]),
    "reason before answer, cut off": ('{"answers": {"q1": {"reason": "there is no doubt", "answer": "Yes"}, "q2": '
                                      '{"reason": "no train is visible", "answ', [], [], ["Yes"]),
    "draft, then final": ('Draft: {"answers": {"q1": {"answer": "No"}, "q2": {"answer": "No"}}}\nFinal: '
                          '{"answers": {"q1": {"answer": "Yes"}, "q2": {"answer": "Yes"}}}',
                          [], ["No", "No"], ["Yes", "Yes"]),       # DRF's first pattern finds the draft
    "answers as strings": ('{"answers": {"q1": "Yes", "q2": "No"}}', DROP, DROP, ["Yes", "No"]),
    "answer true": ('{"answers": {"q1": {"answer": true}}}', DROP, [], ["Yes"]),    # DRF: str(True) is not yes
    "bare number": ("42", [], DROP, []),                     # DRF lets the TypeError of `"answers" in 42` through
    "answers a list": ('{"answers": ["Yes", "No"]}', DROP, [], []),   # DRF asks for an object, then patterns
}


@pytest.mark.parametrize("name", list(PROTOCOL_CASES))
def test_replies_under_both_protocols(name):
    raw, json_ref, drf_ref, lenient = PROTOCOL_CASES[name]
    full = lambda got: dict(zip(QIDS, got + [None] * (8 - len(got))))    # noqa: E731
    for c, ref in ((case("CAC_900", "CAC"), json_ref), (case(), drf_ref)):
        if ref == DROP:
            with pytest.raises(Dropped):
                reference_answers(raw, c)
            assert read_reply(raw, c, "reference") == {"answers": None, "dropped": read_reply(raw, c, "reference")[
                "dropped"], "nonreference": False} and read_reply(raw, c, "reference")["dropped"]
        else:
            assert reference_answers(raw, c) == full(ref), c.dimension
        got = read_reply(raw, c, "lenient")
        assert got["answers"] == full(lenient) and got["dropped"] is None
        assert got["nonreference"] == (ref == DROP or full(ref) != full(lenient))


def test_scores_by_hand():
    answers = lenient_answers(MALFORMED[0][0], QIDS)      # q5 unparsed -> No
    s = case_scores(case(), answers)
    # Yes on q1 (1), q3 (1), q4 (2), q7 (1), q8 (1) = 6 of 10; L1 1/3; L2 (1 + 2)/4; L3 (1 + 1)/3
    assert s["score"] == pytest.approx(0.6) and s["unparsed"] == 1
    assert (s["L1"], s["L2"], s["L3"]) == pytest.approx((1 / 3, 0.75, 2 / 3))
    rows = {"a": s, "b": case_scores(case(), lenient_answers(MALFORMED[3][0], QIDS)),        # garbage: all No -> 0
            "c": case_scores(case(dimension="CAC"), lenient_answers(MALFORMED[1][0], QIDS))}  # q1 Yes: 1/10
    agg = aggregate(rows)
    assert agg["dimensions"]["DRF"]["score"] == pytest.approx(30.0) and agg["dimensions"]["DRF"]["cases"] == 2
    assert agg["dimensions"]["CAC"]["score"] == pytest.approx(10.0)
    assert agg["categories"]["HL-Phys"]["score"] == pytest.approx(30.0)
    assert agg["categories"]["Emb-Phys"]["score"] == pytest.approx(10.0) and "HL-Comm" not in agg["categories"]
    assert agg["overall"]["score"] == pytest.approx(20.0)     # mean of dimensions (the case mean would be 23.3)
    assert agg["overall"]["L1"] == pytest.approx(((100 / 3 + 0) / 2 + 100 / 3) / 2)
    assert agg["unparsed"] == 1 + 8 + 6
    assert not agg["overall"]["complete"] and agg["overall"]["missing"] == ["ETV", "MMC", "CAR", "CCR", "PCR", "BBR"]
    assert agg["categories"]["Emb-Phys"]["missing"] == ["BBR"] and not agg["complete"]


def test_reference_rounding_and_dropped_cases_by_hand():
    yes = lambda k: {q: "Yes" for q in QIDS[:k]}    # noqa: E731
    # weights 1 2 1 2 1 1 1 1 (10): Yes on q1 = 0.1; on q1-q3 = 0.4; on q1 and q2 of 3 of L1... by hand:
    one = case_scores(case("DRF_1"), yes(1), digits=4)     # 1/10; L1 1/3 -> 0.3333
    three = case_scores(case("DRF_2"), yes(7), digits=4)   # 9/10; L3 2/3 -> 0.6667
    assert (one["score"], one["L1"], three["score"], three["L3"]) == (0.1, 0.3333, 0.9, 0.6667)
    rows = {"DRF_1": one, "DRF_2": three, "DRF_3": dropped_scores(case("DRF_3"), "the answer to q1 is \"Yes\""),
            "CAC_1": case_scores(case("CAC_1", "CAC"), yes(2), digits=4)}       # 3/10
    agg = aggregate(rows, expected={"DRF": 3, "CAC": 2}, digits=4)
    drf = agg["dimensions"]["DRF"]
    # the dropped case leaves the mean: (0.1 + 0.9) / 2 = 0.5; L1 (0.3333 + 1) / 2 = 0.66665, which is 0.666649...
    # in binary, so round(., 4) = 0.6666 -> 66.66 on the paper's scale
    assert (drf["score"], drf["cases"], drf["dropped"], drf["complete"]) == (50.0, 2, 1, True)
    assert drf["L1"] == 66.66
    cac = agg["dimensions"]["CAC"]
    assert (cac["score"], cac["complete"]) == (30.0, False)       # 1 of 2 cases judged
    assert agg["dropped"] == 1 and not agg["complete"]
    assert agg["categories"]["Emb-Phys"]["score"] == 30.0 and agg["categories"]["Emb-Phys"]["missing"] == ["BBR"]


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
    run = lambda protocol="reference": evaluate(DATA, videos, tiny_models["vlm"], tmp_path / "run",  # noqa: E731
                                                mode="generate", max_new_tokens=8, dtype="fp32", only=ONLY,
                                                protocol=protocol)
    first = run()
    assert (first["judged"], first["cached"]) == (3, 0)
    problems = "\n".join(first["problems"])
    assert "BBR_001: unreadable video" in problems and "PCR_001: no video" in problems
    # the random judge never writes JSON: every answer is unparsed, counted, and scored as No
    assert first["unparsed"] == 24 and first["overall"]["score"] == 0.0
    assert first["protocol"] == "reference" and first["deviations"] == ["max_new_tokens=8 (reference: 1024)",
                                                                         "dtype=fp32 (reference: bf16)"]
    assert first["judge_info"]["model_type"] == "qwen2_5_vl" and len(first["judge_info"]["fingerprint"]) == 16
    assert not first["complete"] and first["overall"]["missing"] == ["MMC", "CAR", "CCR", "PCR", "BBR"]
    assert first["dimensions"]["DRF"] == {"score": 0.0, "L1": 0.0, "L2": 0.0, "L3": 0.0, "cases": 1, "dropped": 0,
                                          "expected": 28, "complete": False}
    assert all(isinstance(r["raw"], str) for r in first["cases"].values())
    lenient = run("lenient")             # the cached raw replies, read the other way: no judge call
    assert (lenient["judged"], lenient["cached"], lenient["protocol"]) == (0, 3, "lenient")
    assert json.loads((tmp_path / "run" / "scores.json").read_text())["cases"].keys() == {"DRF_001", "CAC_001",
                                                                                         "ETV_022_2"}
    assert (tmp_path / "run" / "vrbench_table.md").is_file() and (tmp_path / "run" / "cases.csv").is_file()
    assert (run()["judged"], run()["cached"]) == (0, 3)              # a re-run judges nothing
    write_mp4(videos / "DRF_001.mp4", np.zeros((12, 32, 32, 3), np.uint8))
    again = run()
    assert (again["judged"], again["cached"]) == (1, 2)             # only the changed video


def test_tiny_judge_prob_mode_by_hand(tmp_path, tiny_models, videos):
    result = evaluate(DATA, videos, tiny_models["vlm"], tmp_path / "run", mode="prob", dtype="fp32",
                      only="CAC_001,ETV_022_2", cache=tmp_path / "cache")
    cases = {c.id: c for c in load_cases(DATA)[0]}
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


def test_a_video_sampled_from_another_prompt_is_not_judged(tmp_path, tiny_models, videos):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("DRF_001.mp4", "CAC_001.mp4"):
        (folder / name).write_bytes((videos / name).read_bytes())
    (folder / "prompts.jsonl").write_text(json.dumps({"id": "DRF_001", "prompt": "a red cube on a table"}) + "\n")
    result = evaluate(DATA, folder, tiny_models["vlm"], tmp_path / "run", mode="prob", dtype="fp32",
                      only="DRF_001,CAC_001")
    assert list(result["cases"]) == ["CAC_001"]
    assert result["problems"] == [f"DRF_001: {folder / 'DRF_001.mp4'} was sampled from another prompt ('a red cube on "
                                  f"a table', says {folder / 'prompts.jsonl'}); re-generate it from the case's prompt"]
    assert result["protocol"] == "prob" and result["deviations"][0].startswith("mode=prob")


def test_judge_folder_that_is_not_a_vlm(tmp_path, tiny_models, videos):
    with pytest.raises(LayoutError, match="not a vision-language model: its config.json has model_type 'umt5'"):
        check_judge(Path(tiny_models["wan"]) / "text_encoder")
    with pytest.raises(LayoutError, match="no such folder"):
        check_judge(tmp_path / "nowhere")
    r = cli("tools/vrbench.py", "evaluate", "--cases", DATA, "--videos", videos,
            "--judge", f"{tiny_models['wan']}/vae", "--out", tmp_path / "run", "--only", "DRF_001")
    assert r.returncode == 2 and "is not a vision-language model: its config.json has model_type" in r.stderr
    assert not (tmp_path / "run" / "scores.json").exists()


def test_generate_through_the_inference_module(tmp_path, tiny_models):
    overrides = (f"recipe=tiny paths.tiny_models={Path(tiny_models['wan']).parent} run.root={tmp_path} "
                 "sampling.num_steps=2 sampling.num_frames=5 sampling.progress=false bridge.strategy=upfb")
    result = evaluate(DATA, tmp_path / "videos", tiny_models["vlm"], tmp_path / "run", mode="prob", dtype="fp32",
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
    header = (tmp_path / "report" / "vrbench_table.csv").read_text().splitlines()[0]
    assert header.startswith("run,DRF,ETV,MMC,HL-Phys") and header.endswith(",protocol,judge,complete")
    # only DRF was judged: HL-Phys and Overall are marked incomplete, the other dimensions show "-", not 0
    assert "| upfb | 55.00 | - | - | 55.00* |" in table and "- upfb, Overall: not judged: ETV, MMC, CAR" in table
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
