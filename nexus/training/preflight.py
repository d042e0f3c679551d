"""Checks run before anything heavy loads: each failure names the key, the value and what to change."""
from __future__ import annotations

from nexus.models.conditioning import required_context_len
from nexus.models.connector import ConnectorConfig
from nexus.models.loading import VLM_LAYOUT, WAN_LAYOUT, check_folder, generator_config, vlm_hidden_size
from nexus.shapes import check_clip_shape


def preflight(wan_path: str | None, vlm_path: str | None, kind: str, num_frames: int, height: int, width: int,
              connector: dict, context_len: int, conditioning: str = "connector", text_len: int = 512,
              init_from: str | None = None) -> None:
    check_clip_shape(num_frames, height, width)
    raw = kind == "raw"
    wan = check_folder("paths.wan", wan_path, WAN_LAYOUT, None if raw else ("transformer",), env="NEXUS_WAN_PATH")
    if conditioning == "umt5":      # a generator on its own: no connector, no VLM
        return
    cc = ConnectorConfig(**connector)
    source = init_from or wan      # model.init_from: the generator is the export's
    text_dim = generator_config(source)["text_dim"]
    if cc.out_dim != text_dim:
        raise ValueError(f"model.connector.out_dim={cc.out_dim} does not match the generator's text_dim={text_dim} "
                         f"({source}): set model.connector.out_dim={text_dim}")
    need = required_context_len(cc.num_tokens, text_len)
    if context_len < need:
        raise ValueError(f"model.context_len={context_len} cannot hold {cc.num_tokens} connector tokens + "
                         f"{text_len} UMT5 tokens (model.text_len) + 4 markers: set model.context_len>={need}")
    if raw:
        vlm = check_folder("paths.vlm", vlm_path, VLM_LAYOUT, env="NEXUS_VLM_PATH")
        hidden = vlm_hidden_size(vlm)
        if hidden != cc.vlm_dim:
            raise ValueError(f"the VLM at paths.vlm={vlm_path} has hidden size {hidden} but "
                             f"model.connector.vlm_dim={cc.vlm_dim}: set model.connector.vlm_dim={hidden} "
                             f"(or point paths.vlm at the VLM the connector was built for)")
