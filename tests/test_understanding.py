"""The understanding block: any transformers VLM folder (Qwen2.5-VL, Qwen3-VL) -> last hidden states."""
import torch
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

from nexus.models import loading, understanding
from nexus.models.tiny import SPECIALS, VLM_TEXT, _tokenizer


def test_qwen25_vl_hidden_states_follow_the_instruction(tiny_models):
    tok, vlm = loading.load_vlm(tiny_models["vlm"])
    text = understanding.vlm_texts(tok, ["a red square"])[0]
    assert text == "<|im_start|>user\nGenerate a video about:\na red square<|im_end|>\n<|im_start|>assistant\n"
    a, b = understanding.vlm_hidden_states(tok, vlm, ["a red square moves left", "a blue circle"])
    n = len(tok(understanding.vlm_texts(tok, ["a blue circle"])).input_ids[0])
    assert b.shape == (n, 64) and a.shape[0] > n
    # right padding and the mask: the short prompt alone gives the same states as inside the batch
    (alone,) = understanding.vlm_hidden_states(tok, vlm, ["a blue circle"])
    assert torch.allclose(alone, b, atol=1e-5)
    # and they are the model's own last layer
    ids = tok(understanding.vlm_texts(tok, ["a blue circle"]), return_tensors="pt").input_ids
    ref = vlm(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
    assert torch.allclose(ref, alone, atol=1e-5)
    assert loading.vlm_hidden_size(tiny_models["vlm"]) == 64


def test_qwen3_vl_folder_loads_and_encodes(tmp_path):
    tok = _tokenizer("<|endoftext|>", "<|im_end|>", t5_style=False)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    text = dict(VLM_TEXT, hidden_size=48, head_dim=16, num_attention_heads=3, num_key_value_heads=1,
                rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3],
                                 "mrope_interleaved": True},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=48, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[0], num_position_embeddings=16)
    cfg = Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                        vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen3VLForConditionalGeneration(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert loading.vlm_hidden_size(tmp_path) == 48
    t, vlm = loading.load_vlm(tmp_path)
    assert type(vlm).__name__ == "Qwen3VLForConditionalGeneration"
    (h,) = understanding.vlm_hidden_states(t, vlm, ["a green square bounces"])
    assert h.shape[1] == 48 and torch.isfinite(h).all()


def test_umt5_features_do_not_depend_on_the_padding(tiny_models):
    """encode_umt5 pads to the longest prompt, not to Wan's 512: the masked padding changes no real token."""
    from nexus.models.loading import load_umt5
    from nexus.models.text import encode_umt5
    tok, enc = load_umt5(tiny_models["wan"])
    prompts = ["a red square moves left", "the colour of a clear sky, a circle bouncing off the walls", ""]
    t = tok(prompts, padding="max_length", max_length=512, truncation=True, return_tensors="pt")
    with torch.no_grad():
        full = enc(t.input_ids, t.attention_mask).last_hidden_state
    for got, row, n in zip(encode_umt5(tok, enc, prompts), full, t.attention_mask.sum(1)):
        assert got.shape == (int(n), full.shape[-1])
        torch.testing.assert_close(got, row[: int(n)], rtol=0, atol=1e-5)
