"""Activation memory of each heavy computation, measured by tracing it on fake tensors at the real shapes
(nexus.plan.trace): nothing is computed, yet every tensor torch would allocate is counted.

A generator's training step is traced at 2 and 3 blocks and extrapolated linearly to its depth (each block adds
the same saved tensors; checked against a full-depth trace in tests/test_plan.py). Gradients of parameters are
released as they are accumulated while tracing: the plan counts them with the model states."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from functools import lru_cache

import torch

from nexus.plan.trace import default_dtype, fake_tensors, peak_bytes


@dataclass(frozen=True)
class StepShape:
    """One training or sampling batch: clips (batch, 3, frames, height, width), context and prompt lengths."""
    batch: int
    frames: int
    height: int
    width: int
    context_len: int
    text_len: int = 512
    vlm_tokens: int = 256

    @property
    def latent(self) -> tuple[int, int, int]:
        from nexus.shapes import latent_shape
        return tuple(latent_shape(self.frames, self.height, self.width)[1:])


def freeze(cfg: dict) -> tuple:
    """A config dict as a hashable key for the traces' caches (lists become tuples, private keys dropped)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()
                        if not k.startswith("_")))


def _wan(cfg: tuple, layers: int, lora: tuple | None = None):
    """A Wan transformer of `layers` blocks made of fake tensors (call inside fake_tensors()), with diffusers' LoRA
    adapters if `lora`. Built on the meta device first: peft's cast of new adapters cannot run on fake tensors."""
    from diffusers import WanTransformer3DModel
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config({**dict(cfg), "num_layers": layers})
        if lora is not None:
            from peft import LoraConfig
            model.add_adapter(LoraConfig(**dict(lora)))
    return materialize(model)


def materialize(model: torch.nn.Module) -> torch.nn.Module:
    """Meta parameters and buffers -> fake CPU ones, assigned in place (Module.to_empty swaps tensors, which torch
    refuses for the weak-referenced meta tensors)."""
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None:
                module._parameters[name] = torch.nn.Parameter(torch.empty_like(p, device="cpu"), p.requires_grad)
        for name, b in module._buffers.items():
            if b is not None:
                module._buffers[name] = torch.empty_like(b, device="cpu")
    return model


def _release_grads(module: torch.nn.Module) -> None:
    for p in module.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(lambda q: setattr(q, "grad", None))


def _by_depth(trace, layers: int) -> int:
    """Traced at 2 and 3 blocks, extrapolated: from the second block on each adds the same (the first does not:
    with a frozen generator the peak moves from the forward to the backward, tests/test_plan.py)."""
    if layers <= 3:
        return trace(layers)
    two, three = trace(2), trace(3)
    return three + (layers - 3) * max(three - two, 0)


def _cast(dtype: torch.dtype | None):
    return torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext()


@lru_cache(maxsize=16)
def connector_step(connector: tuple, shape: StepShape, checkpointing: bool = True,
                   params_dtype: torch.dtype = torch.bfloat16, autocast: torch.dtype | None = None) -> tuple[int, int]:
    """(bytes the connector's forward leaves saved for its backward, peak bytes of its forward + backward)."""
    from nexus.models.connector import ConnectorConfig, OmniConnector
    from nexus.plan.trace import PeakMemory
    with fake_tensors(), default_dtype(params_dtype):
        conn = OmniConnector(ConnectorConfig(**dict(connector))).train()
        conn.gradient_checkpointing = checkpointing
        _release_grads(conn)
        hidden = torch.randn(shape.batch, shape.vlm_tokens, conn.config.vlm_dim)
        with PeakMemory() as mode:
            with _cast(autocast):
                q = conn(hidden, None, video=shape.frames > 1)
            saved = mode.now
            q.float().sum().backward()
        return saved, mode.peak


@lru_cache(maxsize=64)
def generator_step(generator: tuple, shape: StepShape, generator_train: str = "full", lora: tuple | None = None,
                   checkpointing: bool = True, params_dtype: torch.dtype = torch.bfloat16,
                   autocast: torch.dtype | None = None, context_grad: bool = True, layers: int | None = None) -> int:
    """Peak bytes of the generator's part of a training step (forward, flow loss, backward) above its weights.
    context_grad: the context needs a gradient (a connector trains through it)."""
    def trace(n: int) -> int:
        with fake_tensors(), default_dtype(params_dtype):
            gen = _wan(generator, n, lora if generator_train == "lora" else None).train(generator_train != "frozen")
            for name, p in gen.named_parameters():      # as AlignmentModule: full trains all, lora the adapters
                p.requires_grad_(generator_train == "full" or (generator_train == "lora" and "lora_" in name))
            if checkpointing:
                gen.enable_gradient_checkpointing()
            _release_grads(gen)
            b = shape.batch
            x0 = torch.randn(b, 16, *shape.latent)
            context = torch.randn(b, shape.context_len, gen.config.text_dim, requires_grad=context_grad)
            t = torch.full((b,), 500.0, dtype=torch.float32)

            def step():
                with _cast(autocast):
                    pred = gen(x0, t, context, return_dict=False)[0]
                    loss = (pred.float() - x0.float()).square().mean()
                if loss.requires_grad:
                    loss.backward()
            return peak_bytes(step)
    return _by_depth(trace, layers or dict(generator)["num_layers"])


def train_step(generator: tuple, shape: StepShape, connector: tuple | None = None, generator_train: str = "full",
               lora: tuple | None = None, checkpointing: bool = True, params_dtype: torch.dtype = torch.bfloat16,
               autocast: torch.dtype | None = None, layers: int | None = None) -> int:
    """Peak bytes of one stage-1 step (connector -> context -> generator -> flow loss -> backward) above the
    weights. params_dtype/autocast: bf16 weights (DeepSpeed) or fp32 weights under autocast (Lightning mixed).
    The connector is traced on its own: its saved tensors stay alive while the generator runs forward and back,
    and its own backward runs after the generator's has freed everything (tested against one joint trace)."""
    gen = generator_step(generator, shape, generator_train, lora, checkpointing, params_dtype, autocast,
                         connector is not None, layers)
    if connector is None:
        return gen
    saved, peak = connector_step(connector, shape, checkpointing, params_dtype, autocast)
    return max(saved + gen, peak)


@lru_cache(maxsize=64)
def generator_forward(generator: tuple, shape: StepShape, dtype: torch.dtype = torch.bfloat16,
                      batched_cfg: bool = True) -> int:
    """Peak bytes of one guided sampling forward (cond and null in one batch when batched_cfg), no grad."""
    def trace(n: int) -> int:
        with fake_tensors(), default_dtype(dtype), torch.no_grad():
            gen = _wan(generator, n).eval()
            b = shape.batch * (2 if batched_cfg else 1)
            z = torch.randn(b, 16, *shape.latent)
            context = torch.randn(b, shape.context_len, gen.config.text_dim)
            return peak_bytes(lambda: gen(z, torch.full((b,), 500.0), context, return_dict=False)[0])
    return _by_depth(trace, dict(generator)["num_layers"])


@lru_cache(maxsize=16)
def vae(shape: StepShape, direction: str, dtype: torch.dtype = torch.bfloat16, tiling: bool = False,
        config: str = "") -> int:
    """Peak bytes of the Wan VAE encoding a clip (`encode`) or decoding one latent (`decode`), no grad.
    config: the VAE's config.json text ("" : Wan2.1's VAE, diffusers' defaults)."""
    from diffusers import AutoencoderKLWan
    with fake_tensors(), default_dtype(dtype), torch.no_grad():
        model = AutoencoderKLWan.from_config(json.loads(config)) if config else AutoencoderKLWan()
        if tiling:
            model.enable_tiling()
        if direction == "encode":
            x = torch.randn(shape.batch, 3, shape.frames, shape.height, shape.width)
            return peak_bytes(lambda: model.encode(x).latent_dist.mode())
        z = torch.randn(1, 16, *shape.latent)
        return peak_bytes(lambda: model.decode(z).sample)


@lru_cache(maxsize=16)
def umt5(prompts: int, tokens: int = 512, config: str = "", dtype: torch.dtype = torch.bfloat16) -> int:
    """Peak bytes of UMT5 encoding `prompts` prompts padded to `tokens` (config: the encoder's config.json text,
    "": UMT5-XXL)."""
    from transformers import UMT5Config, UMT5EncoderModel
    from nexus.plan.sizes import UMT5_XXL
    with fake_tensors(), default_dtype(dtype), torch.no_grad():
        model = UMT5EncoderModel(UMT5Config(**(json.loads(config) if config else UMT5_XXL))).eval()
        ids = torch.zeros(prompts, tokens, dtype=torch.long)
        return peak_bytes(lambda: model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state)
