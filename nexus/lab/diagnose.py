"""The shapes lab's diagnostics: where the knowledge a reasoning caption needs gets lost, measured on the lab's own
networks, never on a test prompt's sample.

understanding_probe  Do the understanding model's hidden states carry a reasoning caption's attribute the way they
                     carry a plain caption's? A probe (one learned query per attribute attending over the states,
                     then a linear classifier: the connector's way of reading them) is fitted on the plain captions
                     of the training scenes and read on held-out captions, plain and reasoning, per attribute.
connector_use        Does the stage-1 small generator read the connector's tokens? Its flow loss on training
                     samples at fixed noise levels with the full context, with the UMT5 half or the connector's
                     input (the VLM states) replaced by the empty prompt's, and with both replaced. A connector
                     that is not read leaves the loss unchanged when its input goes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nexus.lab.world import ATTRIBUTES, BACKGROUNDS, COLOURS, POSITIONS, SHAPES, plain_caption, reasoning_caption

VALUES = {"colour": list(COLOURS), "shape": list(SHAPES), "position": list(POSITIONS), "background": list(BACKGROUNDS)}


def understanding_probe(vlm_folder: Path, train, test, steps: int = 600, seed: int = 0) -> dict:
    """-> {"plain": held-out plain accuracy (mean over attributes), "reasoning_<attribute>": held-out accuracy}."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from nexus.models.conditioning import pad_tokens
    from nexus.models.understanding import vlm_hidden_states
    tok = AutoTokenizer.from_pretrained(vlm_folder)
    vlm = AutoModelForImageTextToText.from_pretrained(vlm_folder).eval()

    def states(captions):
        with torch.no_grad():
            return pad_tokens(vlm_hidden_states(tok, vlm, captions))

    def labels(scenes):
        return torch.tensor([[VALUES[a].index(s.value(a)) for a in ATTRIBUTES] for s in scenes])

    torch.manual_seed(seed)
    d = vlm.config.text_config.hidden_size
    queries = torch.nn.Parameter(torch.randn(len(ATTRIBUTES), d) * 0.02)
    heads = torch.nn.ModuleList(torch.nn.Linear(d, len(VALUES[a])) for a in ATTRIBUTES)

    def logits(x, mask):
        att = torch.einsum("qd,bld->bql", queries, x) / d ** 0.5
        z = torch.einsum("bql,bld->bqd", att.masked_fill(~mask[:, None], -1e9).softmax(-1), x)
        return [h(z[:, i]) for i, h in enumerate(heads)]

    x, mask = states([plain_caption(s) for s in train])
    y = labels(train)
    opt = torch.optim.Adam([queries, *heads.parameters()], 3e-3)
    for _ in range(steps):
        loss = sum(torch.nn.functional.cross_entropy(o, y[:, i]) for i, o in enumerate(logits(x, mask)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = {}
    with torch.no_grad():
        y = labels(test)
        hits = [(o.argmax(-1) == y[:, i]).float().mean().item()
                for i, o in enumerate(logits(*states([plain_caption(s) for s in test])))]
        out["plain"] = float(np.mean(hits))
        for i, a in enumerate(ATTRIBUTES):
            o = logits(*states([reasoning_caption(s, a) for s in test]))[i]
            out[f"reasoning_{a}"] = (o.argmax(-1) == y[:, i]).float().mean().item()
    return out


def training_features(folder: Path, n: int) -> list[dict]:
    """The first n samples of tools/precompute.py's shards in `folder`, read as the training DataModule reads them."""
    from nexus.data.datamodule import DecodedShards
    from nexus.data.shards import ShardIndex
    shards = DecodedShards(ShardIndex(sorted(Path(folder).glob("*.tar"))), "features", 1, 0, 0)
    return [shards[i] for i in range(min(n, len(shards)))]


@torch.no_grad()
def connector_use(export: Path, features: Path, n: int = 64, sigmas=(0.5, 0.95), seed: int = 0) -> dict:
    """-> {"sigma<s>": {"full", "umt5_null", "connector_null", "both_null": mean flow loss}}."""
    from diffusers import WanTransformer3DModel

    from nexus import flow
    from nexus.export import load_connector
    from nexus.models.conditioning import pad_tokens, small_context
    from nexus.models.encoders import load_null_features
    context_len = json.loads((Path(export) / "nexus.json").read_text())["context_len"]
    gen = WanTransformer3DModel.from_pretrained(Path(export) / "transformer").eval()
    connector = load_connector(Path(export) / "connector").eval()
    null = load_null_features(Path(features) / "null.safetensors")
    feats = training_features(features, n)
    x0 = torch.stack([f["latents"] for f in feats])
    umt5, vlm = [f["umt5"] for f in feats], [f["vlm"] for f in feats]

    def context(states, texts):
        tokens = connector(*pad_tokens(states), video=False)
        return small_context(tokens, texts, connector.markers, context_len)
    contexts = {"full": context(vlm, umt5), "umt5_null": context(vlm, [null["umt5"]] * len(feats)),
                "connector_null": context([null["vlm"]] * len(feats), umt5),
                "both_null": context([null["vlm"]] * len(feats), [null["umt5"]] * len(feats))}
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    out = {}
    for s in sigmas:
        sigma = torch.full((len(feats),), float(s))
        xt = flow.noisy_latents(x0, noise, sigma)
        out[f"sigma{s}"] = {k: flow.flow_loss(gen(xt, sigma * 1000, c, return_dict=False)[0], x0, noise, sigma).item()
                            for k, c in contexts.items()}
    return out
