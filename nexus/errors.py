"""What the tools print for a failure: a user's mistake or a run stopped on purpose is one line, a bug is a
traceback. The tools (nexus.cli) turn the errors recognised here into `error: <message>` and an exit code."""
from __future__ import annotations

import difflib
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TOOLS = PACKAGE.parent / "tools"


class UserError(ValueError):
    """Bad input: the message names the key, the value and what to change (exit code 2)."""


class RunStopped(RuntimeError):
    """A run stopped for a reason its message explains (a NaN loss, too many unreadable samples): exit code 1,
    no traceback. What was saved before it stays."""


# raised by our own checks on input; from inside a library they are bugs (or the library's own message)
_INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


def _raised_by_us(e: BaseException) -> bool:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    f = Path(tb.tb_frame.f_code.co_filename).resolve()
    return f.is_relative_to(PACKAGE) or f.is_relative_to(TOOLS)


def one_line(text: str) -> str:
    """A message on one line: line breaks (and the indentation after them) become '; '."""
    return re.sub(r"\s*\n\s*", "; ", str(text).strip())


def config_error_message(e: BaseException, keys: list[str] | None = None) -> str | None:
    """Hydra's and OmegaConf's errors about the command line or the config, said in one line naming the key;
    None when `e` is not one of them. keys: the config's keys, for a 'did you mean' on an unknown key."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
    if isinstance(e, MissingConfigException):
        group = getattr(e, "missing_cfg_file", "") or ""
        options = getattr(e, "options", None)
        m = re.search(r"Could not find '([^']+)'", str(e))
        what = (m.group(1) if m else group).rsplit("/", 1)
        if options and len(what) == 2:
            return f"{what[0]}={what[1]}: no such {what[0]}; choose one of {', '.join(sorted(options))}"
        return one_line(str(e).split("\nConfig search path")[0])
    if isinstance(e, OverrideParseException):
        return one_line(f"cannot read the override {e}: values with spaces, braces, commas or '=' need quotes "
                        f"around the value inside the shell quotes, e.g. 'data.shards=\"/data/shard-{{000..009}}.tar\"'")
    if isinstance(e, MissingMandatoryValue):
        m = re.search(r"Missing mandatory value: ([\w.]+)", str(e))
        key = m.group(1) if m else getattr(e, "full_key", "?")
        return f"{key} is required: add {key}=<value>"
    if isinstance(e, OmegaConfBaseException):
        key = getattr(e, "full_key", None)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        m = re.match(r"Value '(.*?)' (?:of type '\w+' )?could not be converted to (\w+)", first)
        if key and m:
            return f"{key}={m.group(1)}: expected {m.group(2).lower()}"
        return f"{key}: {first}" if key else one_line(first)
    if isinstance(e, HydraException):
        text = str(e).split("\nConfig search path")[0]
        m = re.search(r"Could not override '([^']+)'", text)
        if m or "not in struct" in text or "Key '" in text:
            key = m.group(1) if m else (re.search(r"Key '([^']+)'", text) or [None, "?"])[1]
            close = difflib.get_close_matches(key, keys or [], n=1)
            hint = f"; did you mean {close[0]}?" if close else "; to add a key that is not in the config use +key=value"
            return f"{key}: no such key{hint}"
        cause = e.__cause__
        if cause is not None and (isinstance(cause, UserError) or
                                  isinstance(cause, _INPUT_ERRORS) and _raised_by_us(cause)):
            return one_line(str(cause))
        return one_line(text)
    return None


def user_message(e: BaseException, keys: list[str] | None = None) -> tuple[str, int] | None:
    """(one-line message, exit code) for an error a user can act on; None for a bug (show the traceback)."""
    if getattr(e, "table", False):      # an error line, then a table that only reads as a table (the memory plan)
        return str(e).strip(), 2
    if isinstance(e, UserError):
        return one_line(str(e)), 2
    if isinstance(e, RunStopped):
        return one_line(str(e)), 1
    msg = config_error_message(e, keys)
    if msg is not None:
        return msg, 2
    if isinstance(e, _INPUT_ERRORS) and _raised_by_us(e):
        return one_line(str(e)), 2
    return None
