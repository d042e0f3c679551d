"""Export the trainable weights of a stage-1 checkpoint (docs/export.md).

  python tools/export.py runs/tiny/default/checkpoints/last.ckpt exports/tiny [--dtype bf16] [--overwrite]
      safetensors in nexus's layout: connector/, transformer/ (or transformer_lora/), nexus.json, and a pipeline
      index (model_index.json, scheduler/): LumosNexusPipeline.from_pretrained(out) loads it [--large <Wan 14B>]
  python tools/export.py runs/lumos_release_stage1/default/checkpoints/last.ckpt release-out --format omnivideo
      the release's layout (adapter/, vision_head/, transformer/model.pt, special_tokens/, unconditioned_context/,
      wan/wanxiang1_3b/), so the reference scripts and Omni-Video tooling load nexus-trained weights; the first
      argument may also be an export folder (e.g. tools/convert.py omnivideo's output). The connector must have the
      release's architecture (connector=omnivideo_v1).
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus import checks  # noqa: E402


def check_paths(a) -> None:
    """The checkpoint (or, with --format omnivideo, an export folder) and the output folder, before torch loads."""
    src = Path(a.checkpoint)
    if not src.exists():
        raise checks.UserError(f"checkpoint={a.checkpoint}: no such file or folder, so neither a checkpoint file nor a "
                               f"DeepSpeed checkpoint folder: pass e.g. runs/<recipe>/<run>/checkpoints/last.ckpt")
    if not (a.format == "omnivideo" and (src / "connector").is_dir()):
        checks.lightning_checkpoint("checkpoint", a.checkpoint,
                                    "pass a stage-1 checkpoint, e.g. runs/<recipe>/<run>/checkpoints/last.ckpt"
                                    + (", or an export folder (connector/, ...)" if a.format == "omnivideo" else ""))
    checks.output_folder("out", a.out)
    if a.large and not Path(a.large).is_dir():
        raise checks.UserError(f"--large={a.large}: no such folder; pass the large generator's folder (Wan2.1-T2V-14B "
                               f"or Wan2.2-T2V-A14B)")


def main(argv=None) -> None:
    p = checks.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .ckpt file or a DeepSpeed checkpoint folder (e.g. checkpoints/last.ckpt); "
                                      "with --format omnivideo also an export folder")
    p.add_argument("out", help="output folder")
    p.add_argument("--format", default="nexus", choices=["nexus", "omnivideo"])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--large", help="the large generator folder the pipeline folder names (LumosNexusPipeline."
                                   "from_pretrained(out) then loads it; else pass large= there)")
    a = p.parse_args(argv)
    check_paths(a)
    from nexus.export import export_checkpoint
    if a.format == "nexus":
        out = export_checkpoint(a.checkpoint, a.out, a.dtype, a.overwrite, large=a.large)
    else:
        from nexus.convert.omnivideo_write import write_bundle
        src, out = Path(a.checkpoint), Path(a.out)
        if out.exists() and not a.overwrite:
            raise FileExistsError(f"{out} exists: pass --overwrite or choose another folder")
        if (src / "connector").is_dir():
            out = write_bundle(src, out, a.overwrite)
        else:     # a checkpoint: through nexus's export first (in a temporary folder beside the output)
            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=f".{out.name}-export-", dir=out.parent) as tmp:
                out = write_bundle(export_checkpoint(src, Path(tmp) / "export", a.dtype), out, a.overwrite)
    print(f"exported {a.checkpoint} -> {out}")


if __name__ == "__main__":
    from nexus.cli import run_tool
    run_tool(main)
