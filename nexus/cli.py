"""The command-line layer of the tools in tools/: one place for help, errors, sweeps and logs.

Hydra tools (`hydra_tool`): the config is composed and checked (keys, config groups, types against the tool's
schema, required values) before the task runs, so a mistake is one line, `error: <message>`, exit code 2, and
nothing is created. `--debug` (or HYDRA_FULL_ERROR=1) shows the traceback instead. A single run composes the
config itself (Hydra makes no output folder); `-m`/`--multirun` goes through Hydra's launcher, and each job of
a sweep gets its own output folder: `<the folder the command names>/<swept key=value,...>`. Hydra's own flags
(`--cfg job`, `--info`, `--hydra-help`, ...) go to Hydra unchanged.

argparse tools (`run_tool`): the same one-line errors around their main function.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nexus import console
from nexus.errors import user_message

ROOT = Path(__file__).resolve().parents[1]
HYDRA_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--resolve", "--package", "-p", "--shell-completion",
               "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--run", "-r",
               "--experimental-rerun")


def _fail(e: BaseException, keys: list[str] | None = None) -> None:
    """One line and exit for a user's error; re-raise a bug (or anything under --debug)."""
    said = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else user_message(e, keys)
    if said is None:
        raise e
    msg, code = said
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def _flat_keys(cfg) -> list[str]:
    from omegaconf import OmegaConf

    def walk(d, prefix):
        for k, v in d.items():
            yield f"{prefix}{k}"
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
    return list(walk(OmegaConf.to_container(cfg, resolve=False), ""))


def compose(config_dir: str | Path, config_name: str, overrides: list[str]):
    """Compose a tool's config like Hydra does for a run."""
    from hydra import compose as hydra_compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose(config_name, overrides=overrides)


def _base_keys(config_dir, config_name) -> list[str]:
    try:
        return _flat_keys(compose(config_dir, config_name, []))
    except Exception:         # noqa: BLE001  only for a 'did you mean' hint
        return []


# ---- sweeps --------------------------------------------------------------------------------------------------
def swept_keys(overrides: list[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    return [o.key_or_group for o in OverridesParser.create().parse_overrides(overrides) if o.is_sweep_override()]


def job_suffix(task_overrides: list[str], swept: list[str], folder_keys: tuple[str, ...]) -> str:
    """`k=v,k2=v2` of this job's swept values, leaving out the keys that already name the folder."""
    parts = [o.lstrip("+~") for o in task_overrides
             if o.split("=", 1)[0].lstrip("+~") in swept and o.split("=", 1)[0].lstrip("+~") not in folder_keys]
    name = re.sub(r"[/\\\s'\"]+", "-", ",".join(parts))
    if len(name) > 120:
        import hashlib
        name = name[:100] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---- help ----------------------------------------------------------------------------------------------------
def help_text(doc: str, config_dir: Path, config_name: str, groups: tuple[str, ...]) -> str:
    lines = [doc.strip(), "", "Config groups (group=option):"]
    for g in groups:
        options = sorted(p.stem for p in (config_dir / g).glob("*.yaml"))
        lines.append(f"  {g}: {', '.join(options)}")
    rel = os.path.relpath(config_dir / f"{config_name}.yaml", ROOT)
    lines += ["", f"Every key and its default: {rel} (print the composed config: --cfg job).",
              "Flags: -m/--multirun sweeps (each job gets its own folder), --debug shows tracebacks, "
              "--hydra-help Hydra's own help."]
    return "\n".join(lines)


# ---- the entry points ------------------------------------------------------------------------------------------
@dataclass
class Tool:
    """A Hydra tool: where its config lives and how it is checked.

    folder_key: the config key naming the output folder (run.dir, out_dir), which a sweep job extends with its
    swept values; folder_keys: the keys that already make that folder distinct (run.name, ...);
    required: for keys that must be given, what to give (said when one is missing); defaults: overrides put
    before the user's (values the tool does not use but the shared config requires)."""
    doc: str
    config_dir: Path
    config_name: str
    schema: type | None = None
    groups: tuple[str, ...] = ()
    folder_key: str | None = None
    folder_keys: tuple[str, ...] = ()
    required: dict[str, str] = field(default_factory=dict)
    defaults: tuple[str, ...] = ()


def load_config(tool: Tool, overrides: list[str], swept: list[str] = ()):
    """The tool's config for these overrides, checked: keys, groups, required values, types (the schema).
    In a sweep, the swept keys are only checked to exist (each job checks its values)."""
    fixed = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in swept]
    cfg = compose(tool.config_dir, tool.config_name, [*tool.defaults, *fixed])
    _check_swept(cfg, [k for k in swept if f"+{k}=" not in " ".join(overrides)], tool.groups)
    return checked(tool, cfg)


def checked(tool: Tool, cfg):
    """Required values given, types right (the tool's schema): -> the typed config."""
    _check_required(cfg, tool.required)
    if tool.schema is None:
        return cfg
    from nexus.validation import validate
    return validate(cfg, tool.schema)


def _debug(argv: list[str]) -> list[str]:
    """--debug: tracebacks instead of one-line errors (as HYDRA_FULL_ERROR=1 does for Hydra)."""
    if "--debug" in argv:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    return [a for a in argv if a != "--debug"]


def hydra_tool(tool: Tool, task: Callable, argv: list[str] | None = None):
    """Run `task(cfg)` for a Hydra tool (see the module docstring)."""
    argv = _debug(list(sys.argv[1:] if argv is None else argv))
    if "-h" in argv or "--help" in argv:
        print(help_text(tool.doc, tool.config_dir, tool.config_name, tool.groups))
        return None
    console.quiet_third_party()
    if any(a.split("=", 1)[0] in HYDRA_FLAGS for a in argv):       # Hydra's own flags: Hydra's behaviour
        return _hydra_main(tool, task, argv)
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    unknown = [a for a in overrides if a.startswith("-")]
    swept: list[str] = []
    try:
        if unknown:
            from nexus.errors import UserError
            raise UserError(f"unknown option {unknown[0]}: overrides are key=value; flags are -m/--multirun, --debug, "
                            f"--help and Hydra's (--cfg job, --info, --hydra-help)")
        swept = swept_keys(overrides) if multirun else []
        cfg = load_config(tool, overrides, swept)
    except SystemExit:
        raise
    except Exception as e:        # noqa: BLE001  a user's mistake becomes one line; a bug is re-raised
        _fail(e, _base_keys(tool.config_dir, tool.config_name))
    if multirun:
        return _hydra_main(tool, _sweep_job(task, tool, swept), argv)
    console.capture()
    return _run(task, cfg)


def missing_keys(cfg, prefix: str = "") -> list[str]:
    """Keys whose value is ??? (not given), without resolving any interpolation."""
    from omegaconf import DictConfig
    out = []
    for k in cfg.keys():
        node = cfg._get_node(k)
        if isinstance(node, DictConfig):
            out += missing_keys(node, f"{prefix}{k}.")
        elif node is not None and node._is_missing():
            out.append(f"{prefix}{k}")
    return out


def _check_required(cfg, hints: dict[str, str] | None = None) -> None:
    from nexus.errors import UserError
    missing = missing_keys(cfg)
    if missing:
        hints = hints or {}
        raise UserError("; ".join(f"{k} is required: {hints.get(k, f'add {k}=<value>')}" for k in missing))


def _check_swept(cfg, swept: list[str], groups: tuple[str, ...]) -> None:
    """A swept key must exist (or be a config group), like any other override."""
    from omegaconf import OmegaConf
    from nexus.errors import UserError
    import difflib
    absent = object()
    for key in swept:
        if key in groups or OmegaConf.select(cfg, key, default=absent) is not absent:
            continue
        close = difflib.get_close_matches(key, _flat_keys(cfg), n=1)
        raise UserError(f"{key}: no such key" + (f"; did you mean {close[0]}?" if close else ""))


def _run(task: Callable, cfg):
    try:
        return task(cfg)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:        # noqa: BLE001
        _fail(e)


def _sweep_job(task: Callable, tool: Tool, swept: list[str]):
    """One job of a Hydra sweep: its own folder, and a command line (sys.argv) that names exactly this job, so
    Lightning's subprocess launcher starts the other ranks of this job, not the whole sweep again."""
    def job(cfg):
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf, open_dict
        task_overrides = list(HydraConfig.get().overrides.task)
        try:
            cfg = checked(tool, cfg)
        except Exception as e:    # noqa: BLE001
            _fail(e)
        if tool.folder_key:
            suffix = job_suffix(task_overrides, swept, tool.folder_keys)
            if suffix:
                folder = f"{OmegaConf.select(cfg, tool.folder_key)}/{suffix}"
                with open_dict(cfg):
                    OmegaConf.update(cfg, tool.folder_key, folder, merge=False)
                task_overrides = [o for o in task_overrides if o.split("=", 1)[0].lstrip("+~") != tool.folder_key]
                task_overrides.append(f"{tool.folder_key}={_quote(folder)}")
        sys.argv = [sys.argv[0], *task_overrides]
        console.capture()
        print(f"sweep job #{HydraConfig.get().job.num}: {' '.join(task_overrides)}", flush=True)
        return _run(task, cfg)
    return job


def _hydra_main(tool: Tool, task: Callable, argv: list[str]):
    import hydra
    sys.argv = [sys.argv[0], *tool.defaults, *argv]
    return hydra.main(config_path=str(tool.config_dir), config_name=tool.config_name, version_base=None)(task)()


def run_tool(main: Callable, argv: list[str] | None = None):
    """An argparse tool's main(argv) with one-line user errors (exit 2) instead of tracebacks."""
    console.quiet_third_party()
    argv = _debug(list(sys.argv[1:] if argv is None else argv))
    try:
        return main(argv)
    except SystemExit:
        raise
    except Exception as e:        # noqa: BLE001
        _fail(e)
