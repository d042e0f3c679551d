"""The released model's understanding prompt (prompt_recipe=vila_llama3) on a tiny Llama-3-style folder: VILA's
`llama_3` conversation, two BOS, the pad-or-eos mask, whole-sequence last hidden states."""
import pytest
import torch

from nexus.models import loading, understanding
from nexus.models.encoders import FrozenEncoders
from nexus.models.tiny_llama import write_tiny_llama3

PROMPT = "a red square moves left"
# the pieces tokenized one by one (tokenizer BOS, then the text's specials and segments), concatenated
IDS = [
    0, 0, 2, 87, 93, 278, 73, 81, 3, 203, 203, 61, 287, 267, 270, 267, 225, 76, 73, 80, 84, 74, 89, 80, 225, 80,
    309, 89, 69, 285, 225, 261, 72, 225, 90, 304, 77, 292, 267, 283, 77, 278, 261, 88, 18, 225, 61, 287, 267, 270,
    267, 70, 266, 303, 317, 82, 72, 312, 278, 261, 72, 289, 73, 225, 90, 304, 89, 271, 277, 82, 88, 300, 88, 289,
    281, 289, 73, 317, 87, 312, 307, 86, 83, 319, 268, 16, 225, 261, 72, 267, 283, 77, 278, 289, 73, 317, 87, 312,
    274, 272, 76, 267, 225, 90, 69, 280, 73, 88, 93, 276, 74, 264, 69, 87, 79, 87, 317, 87, 77, 82, 75, 225, 82,
    281, 89, 269, 80, 225, 80, 309, 89, 69, 285, 18, 4, 2, 89, 87, 312, 3, 203, 203, 43, 300, 296, 88, 73, 267, 225,
    319, 318, 267, 70, 287, 88, 30, 203, 69, 225, 270, 72, 262, 308, 69, 270, 316, 83, 90, 268, 293, 74, 88, 4, 2,
    69, 283, 77, 278, 261, 88, 3, 203, 203, 63, 43, 41, 50, 67, 58, 45, 40, 65, 1]
BOS, EOS = 0, 1        # <|begin_of_text|>, <|end_of_text|> in the tiny vocabulary
TEXT = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision "
        "assistant. You are able to understand the visual content that the user provides, and assist the user with a "
        "variety of tasks using natural language.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nGenerate a "
        "video about:\na red square moves left<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[GEN_VID]"
        "<|end_of_text|>")


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    folder = write_tiny_llama3(tmp_path_factory.mktemp("llm"))
    tok, model = loading.load_vlm(folder)
    return folder, tok, model


def test_prompt_text_and_ids(llm):
    folder, tok, _ = llm
    assert understanding.vila_llama3_text(PROMPT) == TEXT
    assert understanding.vlm_texts(tok, [PROMPT], prompt_recipe="vila_llama3") == [TEXT]
    # the reference does not strip the prompt (chat_template does)
    assert "about:\n a red square \n<|eot_id|>" in understanding.vila_llama3_text(" a red square \n")
    assert tok.bos_token_id == BOS and tok.eos_token_id == EOS and tok.pad_token_id is None
    ids, mask = understanding.vila_llama3_ids(tok, TEXT)
    assert ids == IDS and len(ids) == 193
    assert ids[:3] == [BOS, BOS, tok.convert_tokens_to_ids("<|start_header_id|>")]     # tokenizer BOS + the text's
    # no pad token: the mask falls back to eos and is 0 exactly at the <|end_of_text|> positions (here the last)
    assert [i for i, m in enumerate(mask) if m == 0] == [i for i, t in enumerate(ids) if t == EOS] == [192]


def test_hidden_states_whole_sequence_and_batch_invariant(llm):
    _, tok, model = llm
    (h,) = understanding.vlm_hidden_states(tok, model, [PROMPT], prompt_recipe="vila_llama3")
    ids = torch.tensor([IDS])
    ref = model(input_ids=ids, attention_mask=ids.ne(EOS).long(), output_hidden_states=True).hidden_states[-1][0]
    assert h.shape == (193, 64) and torch.allclose(h, ref, atol=1e-6)     # the masked last position included
    unmasked = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
    assert not torch.allclose(h[-1], unmasked[-1], atol=1e-4)             # the mask is really applied
    prompts = ["a red square moves left across the frame", "a blue circle"]
    batch = understanding.vlm_hidden_states(tok, model, prompts, prompt_recipe="vila_llama3")
    for p, b in zip(prompts, batch):
        (alone,) = understanding.vlm_hidden_states(tok, model, [p], prompt_recipe="vila_llama3")
        assert b.shape == alone.shape and b.shape[0] == len(tok(understanding.vila_llama3_text(p)).input_ids)
        torch.testing.assert_close(b, alone, rtol=0, atol=1e-5)
    assert batch[0].shape[0] > batch[1].shape[0]


def test_a_pad_token_tokenizer_masks_only_pads(llm):
    folder, _, _ = llm
    tok, model = loading.load_vlm(folder)
    tok.add_special_tokens({"pad_token": "<|finetune_right_pad_id|>"})
    model.resize_token_embeddings(len(tok))
    ids, mask = understanding.vila_llama3_ids(tok, TEXT)
    assert ids == IDS and all(mask)                    # <|end_of_text|> stays visible
    prompts = ["a red square moves left across the frame", "a blue circle"]
    batch = understanding.vlm_hidden_states(tok, model, prompts, prompt_recipe="vila_llama3")
    for p, b in zip(prompts, batch):
        (alone,) = understanding.vlm_hidden_states(tok, model, [p], prompt_recipe="vila_llama3")
        ids = torch.tensor([tok(understanding.vila_llama3_text(p)).input_ids])
        ref = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states[-1][0]
        torch.testing.assert_close(b, alone, rtol=0, atol=1e-5)
        torch.testing.assert_close(alone, ref, rtol=0, atol=1e-5)


def test_causal_lm_folder_loads(llm, tiny_models):
    folder, _, model = llm
    assert type(model).__name__ == "LlamaForCausalLM"
    assert loading.is_causal_lm(folder) and not loading.is_causal_lm(tiny_models["vlm"])
    assert loading.vlm_hidden_size(folder) == 64 and loading.vlm_hidden_size(tiny_models["vlm"]) == 64


def test_frozen_encoders_recipe_and_vlm_dtype(llm, tiny_models):
    folder, tok, _ = llm
    enc = FrozenEncoders.load(tiny_models["wan"], folder, torch.float32, prompt_recipe="vila_llama3",
                              vlm_dtype=torch.float16)
    assert enc.prompt_recipe == "vila_llama3" and enc.vlm.dtype == torch.float16 and enc.umt5.dtype == torch.float32
    feats = enc.prompts([PROMPT, ""])
    empty = len(tok(understanding.vila_llama3_text("")).input_ids)
    assert [v.shape for v in feats["vlm"]] == [(193, 64), (empty, 64)] and empty < 193
    assert feats["vlm"][0].dtype == torch.float16
    same = FrozenEncoders.load(tiny_models["wan"], folder, torch.float32)    # vlm_dtype=None: the same dtype
    assert same.vlm.dtype == torch.float32 and same.prompt_recipe == "chat_template"


def test_unknown_recipe_refused(llm):
    _, tok, model = llm
    for call in (lambda: understanding.vlm_texts(tok, [PROMPT], prompt_recipe="vila"),
                 lambda: understanding.vlm_hidden_states(tok, model, [PROMPT], prompt_recipe="vila"),
                 lambda: FrozenEncoders.load("/nonexistent", "/nonexistent", prompt_recipe="vila")):
        with pytest.raises(ValueError, match=r"prompt_recipe='vila'.*chat_template.*vila_llama3"):
            call()
    # chat_template stays the default: a tokenizer without a chat template reads the stripped instruction
    assert understanding.vlm_texts(tok, [" a red square "]) == ["Generate a video about:\na red square"]
