"""Checks of what a tool is given, made before any work: output paths that can be written, input files of the
right kind, and argparse `type=` functions for counts, sizes and numbers. Each failure is a UserError naming the
key or flag, the value, what is wrong and what to change (nexus.errors: one line, exit code 2).

Light on purpose (the standard library; omegaconf for configs; torch only to count CUDA devices on a GPU build):
the tools call these right after reading their arguments, before torch or any model loads, so a mistake costs a
second, not a model load.

  output_folder(key, path)            a folder that exists or can be made (no ancestor is a file, writable)
  output_file(key, path)              a file that can be written (its folder passes output_folder)
  json_file / jsonl_file / text_file  an input file that reads as what it should be (file_kind names the others)
  lightning_checkpoint(key, path)     a Lightning checkpoint (file or DeepSpeed folder), without loading it
  weights_file / weights_folder       a safetensors / torch weights file by its magic number; a model folder
  device(key, value)                  a torch device this machine has
  ArgumentParser, positive_int, nonnegative_int, finite_float, positive_float, fraction, devices, choices_of ...
                                      argparse with one-line errors, and its type= functions
  slurm_time(key, value)              a SLURM time limit
  fit_/sample_/evaluate_/watch_inputs_outputs(cfg)   what each Hydra tool reads and writes, checked first

One module per kind of check: files.py (what a file is, inputs read as what they should be), weights.py
(checkpoints and weights, recognised without loading them), outputs.py (writable outputs, devices), arguments.py
(argparse and its types, SLURM times), tools.py (each Hydra tool's inputs and outputs). Their public names are
this package's, so a tool reads `checks.output_folder(...)`.
"""
from nexus.errors import UserError  # noqa: F401  (the error every check raises)
from nexus.checks.files import existing_file, file_kind, json_file, jsonl_file, named, text_file, text_of  # noqa: F401
from nexus.checks.weights import (LIGHTNING_KEYS, WEIGHT_KINDS, checkpoint_problem, lightning_checkpoint,
                                  torch_file_keys, weights_file, weights_folder, weights_kind)  # noqa: F401
from nexus.checks.outputs import cuda_devices, device, output_file, output_folder  # noqa: F401
from nexus.checks.arguments import (ArgumentParser, auto_or_positive_int, choices_of, devices, finite_float, float_in,
                                    fraction, nonnegative_float, nonnegative_int, positive_float, positive_int,
                                    slurm_time)  # noqa: F401
from nexus.checks.tools import (NETWORK_FOLDERS, evaluate_inputs_outputs, export_or_checkpoint, fit_inputs_outputs,
                                metric_networks, prompts_input, run_folder, sample_inputs_outputs, tiny_models_folder,
                                watch_inputs_outputs)  # noqa: F401
