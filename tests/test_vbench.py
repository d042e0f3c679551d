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
