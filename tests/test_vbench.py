"""VBench-style metrics against values worked out by hand on synthetic videos."""
import pytest
import torch

from nexus.evaluation.vbench import FeatureConsistency, TemporalFlickering, consistency_score


def test_flickering_static_flickering_and_batches():
    static = torch.full((1, 4, 8, 8, 3), 77, dtype=torch.uint8)
    flicker = torch.zeros(1, 4, 8, 8, 3, dtype=torch.uint8)
    flicker[:, 1::2] = 51                                   # every step changes by 51: (255 - 51) / 255 = 0.8
    m = TemporalFlickering()
    m.update(static)
    assert m.compute().item() == 1.0
    m.update(flicker)
    assert m.compute().item() == pytest.approx((1.0 + 0.8) / 2)
    m.reset()
    m.update(torch.cat([flicker, flicker]))
    assert m.compute().item() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="uint8 videos"):
        m.update(static.float())


def test_consistency_by_hand():
    # features: f0 = e1, f1 = e1, f2 = e2 -> i=1: (1 + 1)/2 = 1; i=2: (cos(f1,f2)=0, cos(f0,f2)=0) -> 0; mean 0.5
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert consistency_score(f).item() == pytest.approx(0.5)
    # negative cosines are clipped at 0
    assert consistency_score(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])).item() == 0.0
    # a moving square: features = the square's position; consistency falls as it moves
    def video(step):
        v = torch.zeros(5, 16, 16, 3, dtype=torch.uint8)
        for t in range(5):
            v[t, 4:8, 2 + step * t: 6 + step * t] = 255
        return v
    embed = lambda v: v.float().flatten(1)                  # noqa: E731  raw pixels as features
    still, moving = FeatureConsistency(embed), FeatureConsistency(embed)
    still.update(video(0)[None])
    moving.update(video(2)[None])
    assert still.compute().item() == pytest.approx(1.0)
    # shift 2 of a 4-wide square: cos(prev) = 2/4 always; cos(first) = 2/4 at i = 1, then 0
    # -> per frame (0.5+0.5)/2, (0.5+0)/2 x 3 -> mean (0.5 + 0.75) / 4 = 0.3125
    assert moving.compute().item() == pytest.approx(0.3125)


def test_motion_smoothness_by_hand():
    from nexus.evaluation.vbench import MotionSmoothness
    ramp = torch.stack([torch.full((8, 8, 3), 10 * t, dtype=torch.uint8) for t in range(5)])   # linear: exact
    jump = torch.zeros(5, 8, 8, 3, dtype=torch.uint8)
    jump[1::2] = 60                                          # odd frames 60, their neighbours' mean 0
    m = MotionSmoothness()
    m.update(torch.stack([ramp, jump]))
    assert m.per_video == pytest.approx([1.0, (255 - 60) / 255])
    assert m.compute().item() == pytest.approx((1.0 + 195 / 255) / 2)
    # an even frame count: the last frame has no right neighbour and is left out
    six = torch.cat([jump, torch.full((1, 8, 8, 3), 200, dtype=torch.uint8)])
    m.reset()
    m.update(six[None])
    assert m.per_video == pytest.approx([195 / 255])


def _texture(shift, frames=9):
    g = torch.Generator().manual_seed(0)
    tex = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(96, 96), mode="bilinear")[0]
    tex = (tex * 255).byte().permute(1, 2, 0)
    return torch.stack([tex[10:74, shift * t: shift * t + 64] for t in range(frames)])


def test_dynamic_degree_rule_and_flow():
    from nexus.evaluation.vbench import DynamicDegree, is_dynamic, top_flow_magnitude
    # 256 px short side: threshold 6 px; 16 frames: 4 pairs must exceed it
    assert not is_dynamic([7, 7, 7, 5], 256, 16)
    assert is_dynamic([7, 7, 7, 7], 256, 16)
    assert is_dynamic([13] * 10, 512, 40)                   # 512 px -> 12 px; 40 frames -> 10 pairs, all > 12
    assert not is_dynamic([13] * 9 + [11], 512, 40)
    moving = _texture(3)
    assert top_flow_magnitude(moving[0], moving[1]) == pytest.approx(3.0, abs=0.5)   # a 3 px shift
    static = moving[:1].repeat(9, 1, 1, 1)
    m = DynamicDegree(fps=8)                                 # interval round(8/8) = 1: every frame
    m.update(torch.stack([moving, static]))                  # 64 px -> threshold 1.5 px; 9 frames -> 2 pairs
    assert m.per_video == [1.0, 0.0]
    assert m.compute().item() == 0.5
    slow = DynamicDegree(fps=8)
    slow.update(_texture(1)[None])                           # 1 px < 1.5 px: not dynamic
    assert slow.per_video == [0.0]


@pytest.fixture(scope="module")
def eval_nets(tmp_path_factory):
    from nexus.evaluation.tiny import ensure_tiny_eval_models
    return ensure_tiny_eval_models(tmp_path_factory.mktemp("evalnets"))


def test_aesthetic_and_text_similarity_against_transformers(eval_nets):
    """Frames already at the networks' 32 px need no resize: the expected values are built from CLIPModel and
    the head directly, with the CLIP normalisation written out."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, CLIPModel
    from nexus.evaluation.suite import build_suite
    suite = build_suite(eval_nets, only=["aesthetic_quality", "clip_text_similarity", "background_consistency"])
    assert suite.labels == {"aesthetic_quality": "proxy", "clip_text_similarity": "proxy",
                            "background_consistency": "proxy"}      # tiny networks are not VBench's
    g = torch.Generator().manual_seed(3)
    videos = torch.randint(0, 256, (2, 3, 32, 32, 3), generator=g, dtype=torch.uint8)
    prompts = ["a red ball bouncing", "the colour of a clear sky"]
    suite.update(videos, prompts)
    got = suite.per_video()

    clip = CLIPModel.from_pretrained(eval_nets["clip"]).eval()
    tok = AutoTokenizer.from_pretrained(eval_nets["clip"])
    head = load_file(eval_nets["aesthetic_head"])
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    for v, p, row in zip(videos, prompts, got):
        with torch.no_grad():
            img = clip.get_image_features(pixel_values=(v.permute(0, 3, 1, 2) / 255.0 - mean) / std).pooler_output
            t = tok([p], return_tensors="pt")
            txt = clip.get_text_features(**t).pooler_output
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        aesthetic = ((img @ head["weight"].T + head["bias"]) / 10).mean().item()
        assert row["aesthetic_quality"] == pytest.approx(aesthetic, abs=1e-5)
        assert row["clip_text_similarity"] == pytest.approx((img @ txt.T).clamp_min(0).mean().item(), abs=1e-5)
        c = img @ img.T                                        # consistency over 3 frames, by the formula
        expect = ((c[1, 0].clamp_min(0) * 2) / 2 + (c[2, 1].clamp_min(0) + c[2, 0].clamp_min(0)) / 2) / 2
        assert row["background_consistency"] == pytest.approx(expect.item(), abs=1e-5)
    assert suite.compute()["aesthetic_quality"] == pytest.approx(sum(r["aesthetic_quality"] for r in got) / 2)


def test_suite_without_networks_reports_unavailable():
    from nexus.evaluation.suite import build_suite
    suite = build_suite({})
    assert set(suite.metrics) == {"temporal_flickering", "motion_smoothness", "dynamic_degree"}
    assert suite.labels == {"temporal_flickering": "exact", "motion_smoothness": "proxy", "dynamic_degree": "proxy"}
    assert set(suite.unavailable) == {"subject_consistency", "background_consistency", "aesthetic_quality",
                                      "imaging_quality", "clip_text_similarity"}
    assert "metrics.networks.dino" in suite.unavailable["subject_consistency"]
    with pytest.raises(KeyError, match="unknown dimension"):
        build_suite({}, only=["sharpness"])


def test_bad_networks_are_named(eval_nets, tmp_path):
    from nexus.evaluation.suite import build_suite
    from nexus.models.loading import LayoutError
    with pytest.raises(LayoutError, match="DINO: .* has no config.json"):
        build_suite({"dino": str(tmp_path)})
    with pytest.raises(LayoutError, match="DINO: .*expected one of ViTModel"):
        build_suite({"dino": eval_nets["clip"]})
    torch.save({"weight": torch.zeros(1, 5), "bias": torch.zeros(1)}, tmp_path / "head.pth")
    with pytest.raises(ValueError, match=r"expected weight \(1, 16\)"):
        build_suite(dict(eval_nets, aesthetic_head=str(tmp_path / "head.pth")))
    with pytest.raises(FileNotFoundError, match="aesthetic head: no file"):
        build_suite(dict(eval_nets, aesthetic_head=str(tmp_path / "none.pth")))


def test_aggregation_against_vbench_constants():
    from nexus.evaluation.suite import aggregate
    raw = {"subject_consistency": 0.95, "background_consistency": 0.96, "temporal_flickering": 0.97,
           "motion_smoothness": 0.98, "dynamic_degree": 0.6, "aesthetic_quality": 0.62, "imaging_quality": 0.66}
    n = {"subject_consistency": (0.95 - 0.1462) / (1 - 0.1462), "background_consistency": (0.96 - 0.2615) / (1 - 0.2615),
         "temporal_flickering": (0.97 - 0.6293) / (1 - 0.6293), "motion_smoothness": (0.98 - 0.706) / (0.9975 - 0.706),
         "dynamic_degree": 0.6, "aesthetic_quality": 0.62, "imaging_quality": 0.66}
    quality = (sum(n.values()) - 0.5 * 0.6) / 6.5
    out = aggregate(raw)
    assert out["normalised"] == pytest.approx(n)
    assert out["quality"] == pytest.approx(quality)
    assert out["semantic"] is None and out["total"] is None and out["complete"]["quality"]
    sem = {"scene": 0.5, "appearance_style": 0.2, "color": 0.8}
    out = aggregate({**raw, **sem})
    semantic = (0.5 / 0.8222 + (0.2 - 0.0009) / (0.2855 - 0.0009) + 0.8) / 3
    assert out["semantic"] == pytest.approx(semantic)
    assert out["total"] == pytest.approx((4 * quality + semantic) / 5)
    assert not out["complete"]["semantic"]
    partial = aggregate({"temporal_flickering": 0.97, "dynamic_degree": 1.0})      # over what is present
    assert partial["quality"] == pytest.approx((n["temporal_flickering"] + 0.5 * 1.0) / 1.5)


def test_single_frame_samples_skip_the_temporal_dimensions():
    from nexus.evaluation.suite import TEMPORAL, build_suite
    suite = build_suite(num_frames=1)
    assert not set(suite.metrics) & set(TEMPORAL)
    assert {k: v for k, v in suite.unavailable.items() if k in TEMPORAL} == dict.fromkeys(
        ("temporal_flickering", "motion_smoothness", "dynamic_degree", "subject_consistency", "background_consistency"),
        "single-frame samples have no temporal dimension")
    assert "temporal_flickering" in build_suite(num_frames=5).metrics
