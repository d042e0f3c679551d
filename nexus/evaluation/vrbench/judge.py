"""A transformers VLM from a local folder as the VR-Bench judge (reference: Qwen3-VL-30B-A3B-Instruct, bf16).

Both modes see the same input: `frames` frames at the reference's indices (protocol.frame_indices), given as
images, then text.
  generate  the reference protocol: the reference's prompt for the case's dimension (protocol.reference_prompt),
            greedy decoding with its settings; the raw reply is kept and read by parse.read_reply
  prob      a project extension, not the reference: one forward pass per case, the questions batched
            (left-padded): P(yes) = softmax over the logits of the "Yes" and "No" tokens at the answer position;
            Yes when P(yes) > 0.5; P(yes) is kept
Inputs are built the Qwen-VL way (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): the folder's chat template places one
<|image_pad|> per image, which is expanded to the image's token count (grid / merge_size^2), exactly what the
transformers processors do, but without their video processor, which needs torchvision (not a dependency).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nexus.data.video import iter_frames
from nexus.evaluation.vrbench.cases import Case, Question
from nexus.evaluation.vrbench.protocol import frame_indices, reference_prompt, spec
from nexus.models.loading import DTYPES, LayoutError, check_folder, read_config
from nexus.provenance import fingerprint

IMAGE_PAD = "<|image_pad|>"
JUDGE_LAYOUT = {"config": ("config.json",), "tokenizer": ("tokenizer.json", "tokenizer_config.json"),
                "image processor": ("preprocessor_config.json",)}
MODES = ("generate", "prob")
ONE_QUESTION = ("These are {n} frames sampled uniformly in time from a generated video, in order.\n"
                "The video was generated from this prompt: \"{prompt}\"\n"
                "Judge what the frames show, not the prompt.\nQuestion: {question}\nAnswer with Yes or No only.")


@dataclass
class Judge:
    model: torch.nn.Module
    tokenizer: object
    images: object            # the folder's image processor
    template: str
    image_token_id: int
    yes_no: tuple[int, int]   # first token of "Yes" and of "No"


def prompt_version(mode: str) -> str:
    """A hash of what the judge is sent: the reference templates and settings, or the prob mode's prompt."""
    return spec()["version"] if mode == "generate" else hashlib.sha256(ONE_QUESTION.encode()).hexdigest()[:8]


def judge_info(folder: str | Path) -> dict:
    """The judge's identity for reports and caches: folder, architecture, and a fingerprint of its files (sha256
    over every file's path, size, first and last MiB), so two folders with the same name are told apart."""
    root = Path(folder).resolve()
    cfg = read_config(root / "config.json")
    return {"folder": str(root), "name": root.name, "model_type": cfg.get("model_type"),
            "architectures": cfg.get("architectures"), "fingerprint": fingerprint(root)}


def identity(info: dict, mode: str, frames: int, max_new_tokens: int, dtype: str) -> str:
    """What a cached reply depends on besides the case and the video bytes."""
    tokens = f"|max_new_tokens={max_new_tokens}" if mode == "generate" else ""
    return (f"{info['name']}@{info['fingerprint'][:12]}|{mode}|frames={frames}{tokens}|{dtype}"
            f"|prompt={prompt_version(mode)}")


def check_judge(path: str | Path | None) -> Path:
    """Raise LayoutError naming what is wrong before any weights load."""
    root = check_folder("--judge", path, JUDGE_LAYOUT, parts=("config",), env="NEXUS_JUDGE_PATH")
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as VLMS
    cfg = read_config(root / "config.json")
    if cfg.get("model_type") not in VLMS:
        raise LayoutError(f"--judge {path} is not a vision-language model: its config.json has model_type "
                          f"{cfg.get('model_type')!r} (architectures {cfg.get('architectures')}). Give a transformers "
                          f"image-text-to-text folder, e.g. Qwen3-VL-30B-A3B-Instruct.")
    check_folder("--judge", path, JUDGE_LAYOUT, env="NEXUS_JUDGE_PATH")
    if "merge_size" not in read_config(root / "preprocessor_config.json"):
        raise LayoutError(f"--judge {path}: preprocessor_config.json has no merge_size; the judge reads Qwen-VL-family "
                          f"folders (Qwen2-VL, Qwen2.5-VL, Qwen3-VL)")
    return root


def _template(root: Path, tokenizer) -> str:
    """The processor's chat template (it handles images) when the folder has one, else the tokenizer's."""
    if (root / "chat_template.jinja").is_file():
        return (root / "chat_template.jinja").read_text()
    if (root / "chat_template.json").is_file():
        return read_config(root / "chat_template.json")["chat_template"]
    if not getattr(tokenizer, "chat_template", None):
        raise LayoutError(f"--judge {root}: no chat template (chat_template.jinja, chat_template.json or in "
                          f"tokenizer_config.json)")
    return tokenizer.chat_template


def load_judge(path: str | Path, dtype: str = "bf16", device: str = "cpu") -> Judge:
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
    root = check_judge(path)
    tok = AutoTokenizer.from_pretrained(root)
    image_token_id = tok.convert_tokens_to_ids(IMAGE_PAD)
    if image_token_id is None or image_token_id == tok.unk_token_id:
        raise LayoutError(f"--judge {path}: the tokenizer has no {IMAGE_PAD} token (not a Qwen-VL-family folder)")
    yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", "No"))
    if yes == no:
        raise LayoutError(f"--judge {path}: 'Yes' and 'No' start with the same token; the prob mode cannot tell "
                          f"them apart")
    template = _template(root, tok)
    images = AutoImageProcessor.from_pretrained(root)
    model = AutoModelForImageTextToText.from_pretrained(root, dtype=DTYPES[dtype], device_map=str(device))
    return Judge(model.eval().requires_grad_(False), tok, images, template, image_token_id, (yes, no))


def sample_frames(video: str | Path, n: int) -> list[np.ndarray]:
    """n frames at the reference's indices over the whole video (all of them when it is shorter)."""
    frames = list(iter_frames(str(video)))
    return [frames[i] for i in frame_indices(len(frames), n)]


def one_question_prompt(case: Case, question: Question, frames: int) -> str:
    return ONE_QUESTION.format(n=frames, prompt=case.prompt, question=question.text)


def encode(judge: Judge, frames: list[np.ndarray], texts: list[str]) -> dict[str, torch.Tensor]:
    """The frames + each text -> one left-padded batch (row i: the images, then texts[i], then the answer slot)."""
    from PIL import Image
    pixels = judge.images(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
    counts = (pixels["image_grid_thw"].prod(-1) // judge.images.merge_size ** 2).tolist()
    rows = []
    for text in texts:
        content = [{"type": "image"}] * len(frames) + [{"type": "text", "text": text}]
        chat = judge.tokenizer.apply_chat_template([{"role": "user", "content": content}], chat_template=judge.template,
                                                   tokenize=False, add_generation_prompt=True)
        parts = chat.split(IMAGE_PAD)
        if len(parts) != len(frames) + 1:
            raise ValueError(f"the judge's chat template placed {len(parts) - 1} {IMAGE_PAD} for {len(frames)} images")
        chat = parts[0] + "".join(IMAGE_PAD * k + p for k, p in zip(counts, parts[1:]))
        rows.append(judge.tokenizer(chat, add_special_tokens=False)["input_ids"])
    width = max(map(len, rows))
    pad = judge.tokenizer.pad_token_id if judge.tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    device, dtype = judge.model.device, judge.model.dtype
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "mm_token_type_ids": ((ids == judge.image_token_id) & mask.bool()).long().to(device),   # 1 = image token
            "pixel_values": pixels["pixel_values"].repeat(len(texts), 1).to(device, dtype),
            "image_grid_thw": pixels["image_grid_thw"].repeat(len(texts), 1).to(device)}


@torch.no_grad()
def ask_all(judge: Judge, case: Case, frames: list[np.ndarray], max_new_tokens: int = 1024) -> dict:
    """The reference protocol: its prompt, greedy decoding -> {"raw": the decoded reply, stripped}."""
    inputs = encode(judge, frames, [reference_prompt(case)])
    # temperature 0 / top_p 1 / top_k 1 in the reference only restate greedy decoding; passing None keeps
    # transformers from warning that they are unused when do_sample is False
    out = judge.model.generate(**inputs, do_sample=False, temperature=None, top_p=None, top_k=None,
                               max_new_tokens=max_new_tokens)
    return {"raw": judge.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()}


@torch.no_grad()
def ask_each(judge: Judge, case: Case, frames: list[np.ndarray]) -> dict:
    """P(yes) per question from one batched forward pass -> {"answers", "probs"}."""
    inputs = encode(judge, frames, [one_question_prompt(case, q, len(frames)) for q in case.questions])
    logits = judge.model(**inputs, logits_to_keep=1).logits[:, -1, list(judge.yes_no)].float()
    p_yes = logits.softmax(-1)[:, 0].tolist()
    return {"answers": {q.id: "Yes" if p > 0.5 else "No" for q, p in zip(case.questions, p_yes)},
            "probs": {q.id: p for q, p in zip(case.questions, p_yes)}}
