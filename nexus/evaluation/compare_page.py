"""The viewer's static page (nexus.evaluation.compare): per prompt its grid video, the prompt, and a table of each
folder's settings (the keys that differ highlighted) and scores, where tools/evaluate.py scored the folder."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from nexus.evaluation.compare import Entry, Run

# always shown, differing or not: what a researcher asks first about a column
KEY_SETTINGS = ("bridge.strategy", "sampling.num_steps", "sampling.guidance_small", "sampling.guidance_large",
                "sampling.seed", "weights.export")


def flat_settings(record: dict) -> dict[str, str]:
    """samples.json -> {"bridge.strategy": "upfb", ..., "weights.export": "<path> (<id>)", "git.commit": ...}."""
    out = {}

    def walk(prefix: str, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = "-" if value is None else str(value)
    walk("", record.get("settings", {}))
    for name, w in (record.get("weights") or {}).items():
        if not w:
            out[f"weights.{name}"] = "-"
            continue
        ident = w.get("content_sha256") or w.get("id") or w.get("fingerprint") or ""
        where = w.get("path") or w.get("source") or ""
        kind = f"{w['kind']} " if w.get("kind") else ""
        step = f", step {w['global_step']}" if w.get("global_step") is not None else ""
        out[f"weights.{name}"] = f"{kind}{where} ({ident[:12]}{step})"
    if record.get("git"):
        out["git.commit"] = f"{str(record['git'].get('commit'))[:10]}{' (dirty)' if record['git'].get('dirty') else ''}"
    return out


def shown_settings(runs: list[Run]) -> tuple[list[str], set[str]]:
    """The keys the tables show (the key settings, then every key that differs) and which of them differ."""
    flat = [flat_settings(r.record) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differ = {k for k in keys if len({f.get(k, "-") for f in flat}) > 1}
    return [*KEY_SETTINGS, *[k for k in keys if k in differ and k not in KEY_SETTINGS]], differ


def score_names(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(k for r in runs if r.scores for k in r.scores.get("scores", {})))


def mean_scores(run: Run) -> dict[str, float]:
    if not run.scores:
        return {}
    agg = {f"vbench_{k}": v for k, v in (run.scores.get("vbench") or {}).items()
           if k in ("quality", "semantic", "total") and isinstance(v, (int, float))}
    return {**run.scores.get("scores", {}), **agg}


def video_scores(run: Run, pid: str | None) -> dict[str, float]:
    rows = {r.get("id"): r for r in (run.scores or {}).get("rows", [])}
    return {k: v for k, v in rows.get(pid, {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ---- the page --------------------------------------------------------------------------------------------
E = html.escape
STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}video{max-width:100%;background:#000;display:block}
table{border-collapse:collapse;margin:.5em 0 2em;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:left;vertical-align:top}td{max-width:28em;overflow-wrap:anywhere}
tr.differs td,tr.differs th{background:#fff3b0}td.missing{color:#999}
section{margin-bottom:2.5em}h2{font-size:16px;margin:.2em 0}.note{color:#555;font-size:13px}"""
# each <video> records whether it decoded (data-status), and the title counts them: a test (and a person
# reading the title) sees a video that does not play
SCRIPT = """(function(){var vs=document.querySelectorAll('video'),n=vs.length;
function done(){var ok=0,bad=0;vs.forEach(function(v){if(v.dataset.status==='loaded')ok++;
if(v.dataset.status==='error')bad++;});document.title='compare: '+ok+'/'+n+' loaded, '+bad+' errors';}
vs.forEach(function(v){function loaded(){if(v.videoWidth>0){v.dataset.status='loaded';}else{v.dataset.status='error';}
done();}v.addEventListener('loadeddata',loaded);
v.addEventListener('error',function(){v.dataset.status='error';done();});
if(v.readyState>=2){loaded();}});done();})();"""


def _table(runs: list[Run], rows: list[tuple[str, list[str], bool]]) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{E(r.label)}</th>" for r in runs) + "</tr>"
    body = "".join(f"<tr{' class=differs' if differs else ''}><th>{E(name)}</th>"
                   + "".join(f"<td{' class=missing' if v == 'missing' else ''}>{E(v)}</td>" for v in values) + "</tr>"
                   for name, values, differs in rows)
    return f"<table>{head}{body}</table>"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def setting_rows(runs: list[Run], keys: list[str], differ: set[str], present=None) -> list:
    flat = [flat_settings(r.record) for r in runs]
    present = present or [True] * len(runs)
    return [(k, [f.get(k, "-") if p else "missing" for f, p in zip(flat, present)], k in differ) for k in keys]


def page(runs: list[Run], entries: list[Entry], names: list[str], frames: str, height: int) -> str:
    keys, differ = shown_settings(runs)
    dims = score_names(runs)
    means = [mean_scores(r) for r in runs]
    agg = [k for k in ("vbench_quality", "vbench_semantic", "vbench_total") if any(k in m for m in means)]
    summary = [("folder", [str(r.folder) for r in runs], False), ("videos", [str(len(r.files)) for r in runs], False),
               *setting_rows(runs, keys, differ),
               ("scores from", [str(r.scores_from) if r.scores_from else "-" for r in runs], False),
               *[(f"mean {d}", [_fmt(m.get(d)) for m in means], False) for d in [*dims, *agg]]]
    parts = [f"<h1>{len(runs)} sample folders side by side, {len(entries)} prompts</h1>",
             f"<p class=note>Columns, left to right: {E(', '.join(r.label for r in runs))}. Every column is resized to "
             f"{height} px high; clips of other lengths are "
             + ("padded to the longest (its last frame held)" if frames == "longest" else "trimmed to the shortest")
             + ". Highlighted rows: settings that differ between the folders. Scores: tools/evaluate.py's, where a "
             "folder has them.</p>", _table(runs, summary)]
    for n, (entry, name) in enumerate(zip(entries, names), start=1):
        have = [i is not None for i in entry.ids]
        rows = [("video", [i if i else "missing" for i in entry.ids], False),
                *setting_rows(runs, keys, differ, have)]
        per = [video_scores(r, i) for r, i in zip(runs, entry.ids)]
        rows += [(d, [_fmt(p.get(d)) if h else "missing" for p, h in zip(per, have)], False) for d in dims]
        parts.append(f"<section id=p{n}><h2>{n}. {E(entry.text)}</h2>"
                     f"<video controls muted loop preload=auto src=\"videos/{E(quote(name))}.mp4\"></video>"
                     f"{_table(runs, rows)}</section>")
    return ("<!doctype html>\n<html><head><meta charset=utf-8><title>compare</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts)
            + f"\n<script>{SCRIPT}</script></body></html>\n")
