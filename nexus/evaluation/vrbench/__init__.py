"""VR-Bench (paper Sec. 3.4, App. B): cases, a transformers VLM judge, scores, reports, judge agreement.

cases.py    the public JSON files -> validated Case objects (bad cases reported and skipped)
judge.py    a local Qwen-VL-family folder -> yes/no answers, by generation (reference) or by token probabilities
parse.py    robust parsing of the judge's JSON reply
scores.py   case, layer, dimension, category and overall scores
run.py      the evaluation loop: videos (given or generated) -> cached judge answers -> scores.json
report.py   Markdown/CSV table and radar chart over several runs
agreement.py  Kendall tau between two judges, or a judge and human scores (paper App. D.2, D.6)
"""
