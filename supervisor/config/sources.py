"""Where configurations come from: the Lambda's sources (``load``) and FDL files."""
from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ..errors import ConfigError
from .fields import (
    _DEFAULT_TASK_ROOT,
    DEFAULT_CONFIG_PATH,
    ENV_CONFIG,
    ENV_CONFIG_PATH,
    _join,
    _kind,
    _overlaps,
    _Section,
    _show,
    _unique,
    yaml_loader,
)
from .model import FunctionConfig
from .parse import _parse, parse


def _yaml_problem(exc: Exception) -> str:
    """One line saying what is wrong and where, without quoting the document."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        what = exc.problem or exc.context or "syntax error"
        mark = exc.problem_mark
        if mark is not None:
            return f"{what} at line {mark.line + 1}, column {mark.column + 1}"
        return what
    return " ".join(str(exc).split())

if TYPE_CHECKING:
    from .scarcfg import Defaults


MAX_DEPTH = 64
"""How deeply a configuration may nest (a real one nests 5 levels)."""
MAX_NODES = 100_000
"""How many values a configuration may hold once YAML's aliases are expanded."""


def check_bounded(document: Any, source: str) -> None:
    """Refuse a document nested deeper than :data:`MAX_DEPTH` or larger than
    :data:`MAX_NODES` values with its aliases expanded (a YAML "billion laughs"), before
    anything walks it. The walk stops at the bound: it costs at most that much. Pure."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError([f"{source}: more than {MAX_NODES} values once its YAML "
                               "aliases are expanded; a function configuration is far smaller"])
        if depth > MAX_DEPTH:
            raise ConfigError([f"{source}: nested more than {MAX_DEPTH} levels deep; a "
                               "function configuration is far shallower"])
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _load_document(text: str, source: str) -> Mapping[str, Any]:
    """Parse YAML (or JSON) text that must hold a mapping of bounded size and depth."""
    document: Any = None
    parsed = False
    too_deep = ConfigError([f"{source}: nested more than {MAX_DEPTH} levels deep; a function "
                            "configuration is far shallower"])
    if text.lstrip().startswith("{"):  # JSON is YAML, and much cheaper to read
        try:
            document, parsed = json.loads(text), True
        except ValueError:
            pass
        except RecursionError:
            raise too_deep from None
    if not parsed:
        import yaml

        try:
            document = yaml.load(text, Loader=yaml_loader())
        except yaml.YAMLError as exc:
            raise ConfigError([f"{source}: invalid YAML: {_yaml_problem(exc)}"]) from exc
        except RecursionError:
            raise too_deep from None
    check_bounded(document, source)
    if not isinstance(document, Mapping):
        raise ConfigError([f"{source}: the document is {_kind(document)}, not a mapping; "
                           "must be a YAML mapping of settings"])
    return document


def _read(file: Path, source: str) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text; must be a YAML file"]) from exc
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read {str(file)!r}: "
                           f"{exc.strerror or type(exc).__name__}"]) from exc


def _decode_inline(text: str) -> Mapping[str, Any]:
    """``FUNCTION_CONFIG``: base64 of YAML, or YAML/JSON text that is not base64."""
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return _load_document(text, f"{ENV_CONFIG} (not base64, read as YAML text)")
    return _load_document(decoded, f"{ENV_CONFIG} (base64)")


#: Parsed configurations by what they were read from (warm invocations read the same).
_LOADED: dict[tuple[Any, ...], FunctionConfig] = {}
_LOADED_MAX = 8


def _source_key(environ: Mapping[str, str], default_path: Path,
                check_files: bool) -> Optional[tuple[Any, ...]]:
    """What the configuration ``load`` would read depends on: the inline text, or the
    file's identity and modification time, and the variables that change the result
    (None: no file to read, let ``load`` say so)."""
    inline = environ.get(ENV_CONFIG, "")
    if inline.strip():
        source: tuple[Any, ...] = ("inline", inline)
    else:
        file = Path(environ.get(ENV_CONFIG_PATH, "") or default_path)
        try:
            info = file.stat()
        except (OSError, ValueError):
            return None
        source = ("file", str(file), info.st_ino, info.st_size, info.st_mtime_ns)
    variables = tuple(environ.get(name, "") for name in (
        "LAMBDA_TASK_ROOT", "AWS_LAMBDA_FUNCTION_NAME", *(n for n, _ in ENV_OVERRIDES)))
    return (*source, variables, str(default_path), check_files)


def load(environ: Mapping[str, str], *, default_path: Path = DEFAULT_CONFIG_PATH,
         check_files: bool = True) -> FunctionConfig:
    """The function's configuration, from the first source found (see :func:`read`).

    A configuration already read from the same text (or the same unchanged file)
    with the same variables is not parsed again: a warm invocation reuses it.
    """
    key = _source_key(environ, default_path, check_files)
    if key is not None and key in _LOADED:
        return _LOADED[key]
    config = read(environ, default_path=default_path, check_files=check_files)
    if key is not None:
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = config
    return config


def read(environ: Mapping[str, str], *, default_path: Path = DEFAULT_CONFIG_PATH,
         check_files: bool = True) -> FunctionConfig:
    """The function's configuration, from the first source found, parsed now.

    1. env ``FUNCTION_CONFIG``: base64 of YAML (plain YAML or JSON text is
       accepted too); a relative ``init_script`` is resolved against
       ``LAMBDA_TASK_ROOT`` (default ``/var/task``);
    2. the file named by env ``FUNCTION_CONFIG_PATH`` (it must exist);
    3. ``default_path``.

    A file's relative ``init_script`` is resolved against the file's directory.
    The document is one function's flat configuration or an FDL entry; a whole
    FDL file is accepted too, selecting its only function or the one named by
    ``AWS_LAMBDA_FUNCTION_NAME``. Raises ``ConfigError``.
    """
    inline = environ.get(ENV_CONFIG, "")
    if inline.strip():
        document = _decode_inline(inline)
        base_dir = Path(environ.get("LAMBDA_TASK_ROOT") or _DEFAULT_TASK_ROOT)
    else:
        named = environ.get(ENV_CONFIG_PATH, "")
        if named:
            file, source = Path(named), f"{ENV_CONFIG_PATH}={named}"
        elif default_path.is_file():
            file, source = default_path, str(default_path)
        else:
            raise ConfigError([
                f"no function configuration found: set env {ENV_CONFIG} (base64 YAML), or env "
                f"{ENV_CONFIG_PATH} (a YAML file), or provide {default_path}"])
        document = _load_document(_read(file, source), source)
        base_dir = file.parent
    document = with_environment_overrides(document, environ)
    if "functions" in document and "name" not in document and "lambda" not in document:
        wanted = environ.get("AWS_LAMBDA_FUNCTION_NAME") or None
        configs = _fdl_configs(document, base_dir, None, check_files)
        if len(configs) == 1:
            return configs[0]
        chosen = [c for c in configs if c.name == wanted]
        if not chosen:
            raise ConfigError([f"functions: the FDL defines {len(configs)} functions "
                               f"({', '.join(c.name for c in configs)}) and "
                               f"AWS_LAMBDA_FUNCTION_NAME={wanted or ''} names none of them; "
                               "give one function's configuration"])
        return chosen[0]
    return parse(document, base_dir=base_dir, check_files=check_files)


ENV_OVERRIDES: tuple[tuple[str, str], ...] = (("EXECUTION_MODE", "execution_mode"),
                                              ("LOG_LEVEL", "log_level"))
"""The function's environment variables that win over its configuration, as in
faas-supervisor: ``EXECUTION_MODE`` and ``LOG_LEVEL``."""


def with_environment_overrides(document: Mapping[str, Any],
                               environ: Mapping[str, str]) -> Mapping[str, Any]:
    """``document`` with ``EXECUTION_MODE``/``LOG_LEVEL`` from ``environ`` in its ``lambda``
    section (or at its top, for a flat configuration). Pure; parse checks the values."""
    overrides = {key: environ[name].strip() for name, key in ENV_OVERRIDES
                 if environ.get(name, "").strip()}
    if not overrides:
        return document
    section = document.get("lambda")
    if isinstance(section, Mapping):
        return {**document, "lambda": {**section, **overrides}}
    if "functions" in document and "name" not in document:
        return document  # a whole FDL file: the function is chosen first
    return {**document, **overrides}


def _names_file(text: str) -> bool:
    if not text or "\n" in text or len(text) > 4096:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def from_fdl(path_or_text: str | Path, name: Optional[str] = None, *,
             check_files: bool = True,
             defaults: Optional["Defaults"] = None) -> list[FunctionConfig]:
    """The functions of a whole FDL file, in file order.

    ``path_or_text`` is a ``Path``, a string naming an existing file (relative
    ``init_script`` paths are resolved against its directory), or FDL text
    (resolved against the current directory). Both the list form
    ``functions: {aws: [{lambda: ..., batch: ..., ...}]}`` with top-level
    ``storage_providers`` and the older ``functions: {NAME: {image, init_script,
    s3: {input_bucket}, environment, ...}}`` are read; in the older form
    ``input_bucket: B`` means input ``B/<function>/input`` and output
    ``B/<function>/output``, as SCAR lays it out (:func:`old_form_path`).
    ``name`` selects one function. ``defaults`` (SCAR's ``scar.cfg``, see
    :mod:`supervisor.config.scarcfg`) lie under every function; each config's
    ``raw["_defaults_taken"]`` lists the keys they supplied. Raises ``ConfigError``
    listing every problem.
    """
    if isinstance(path_or_text, Path) or _names_file(path_or_text):
        file = Path(path_or_text)
        text, base_dir, source = _read(file, str(file)), file.parent, str(file)
    else:
        text, base_dir, source = path_or_text, Path.cwd(), "FDL text"
        stripped = text.strip()
        if stripped and "\n" not in stripped and ":" not in stripped and "{" not in stripped:
            raise ConfigError([f"{stripped!r}: no such FDL file"])
    return _fdl_configs(_load_document(text, source), base_dir, name, check_files, defaults)


TAKEN_FROM_DEFAULTS = "_defaults_taken"
"""The ``raw`` key that lists what SCAR's defaults file supplied (``--dry-run`` shows it)."""


def _defaulted(entry: Mapping[str, Any], defaults: Optional["Defaults"],
               flat: bool) -> Mapping[str, Any]:
    if not defaults:
        return entry
    from .scarcfg import merge_defaults

    merged, taken = merge_defaults(entry, defaults, flat=flat)
    if taken:
        merged[TAKEN_FROM_DEFAULTS] = {"source": defaults.source, "keys": taken}
    return merged


def _entry_name(entry: Mapping[str, Any]) -> Optional[str]:
    section = entry.get("lambda")
    value = section.get("name") if isinstance(section, Mapping) else entry.get("name")
    return value if isinstance(value, str) else None


def _from_old_form(name: str, body: Mapping[str, Any], path: str,
                   problems: list[str]) -> dict[str, Any]:
    """``functions: {NAME: {image, s3: {input_bucket}, environment, ...}}`` as the flat form."""
    flat: dict[str, Any] = {k: v for k, v in body.items()
                            if k not in ("image", "image_file", "s3", "environment")}
    flat["name"] = name
    container = dict(body["container"]) if isinstance(body.get("container"), Mapping) else {}
    for key in ("image", "image_file"):
        if body.get(key) is not None:
            container.setdefault(key, body[key])
    env = body.get("environment")
    if isinstance(env, Mapping):
        variables = env["Variables"] if isinstance(env.get("Variables"), Mapping) else env
        container["environment"] = {"Variables": dict(variables)}
    elif env is not None:
        problems.append(f"{path}.environment: {_show(env)} is not a mapping; must map "
                        "variable names to values (optionally under Variables)")
    if container:
        flat["container"] = container
    s3 = _Section.at(body, path, problems).section("s3", "buckets (input_bucket, output_bucket)")
    bucket = s3.opt_text("input_bucket", "must be a bucket name")
    if bucket is not None and bucket.strip("/"):
        out_bucket = s3.opt_text("output_bucket", "must be a bucket name")
        flat.setdefault("input", [{"storage_provider": "s3",
                                   "path": old_form_path(bucket, name, "input")}])
        flat.setdefault("output", [{"storage_provider": "s3", "path": old_form_path(
            out_bucket if out_bucket and out_bucket.strip("/") else bucket.split("/")[0],
            name, "output")}])
    elif bucket is not None:
        s3.problem("input_bucket", "is empty", "must be a bucket name")
    return flat


def old_form_path(bucket: str, function: str, kind: str) -> str:
    """SCAR's layout for ``s3: {input_bucket, output_bucket}``: a bucket with a folder is
    used as it is; a bare bucket gets the function's own folder, ``B/<function>/input``
    (and ``.../output``), so one function's outputs can be the next one's input. Pure."""
    bucket = bucket.strip("/")
    return bucket if "/" in bucket else f"{bucket}/{function}/{kind}"


def _fdl_configs(document: Mapping[str, Any], base_dir: Path, name: Optional[str],
                 check_files: bool,
                 defaults: Optional["Defaults"] = None) -> list[FunctionConfig]:
    functions = document.get("functions")
    if not isinstance(functions, Mapping):
        wrong = "missing" if functions is None else f"{_kind(functions)} is not a mapping"
        raise ConfigError([f"functions: {wrong}; an FDL file has functions: {{aws: [{{lambda: "
                           "..., batch: ...}]}} or the older functions: {NAME: {...}}"])
    shared = document.get("storage_providers")
    if shared is not None and not isinstance(shared, Mapping):
        raise ConfigError([f"storage_providers: {_kind(shared)} is not a mapping; must map "
                           "provider kinds (s3) to named providers"])
    general: list[str] = []
    entries: list[tuple[str, Optional[str], Mapping[str, Any]]] = []
    if "aws" in functions or any(isinstance(v, list) for v in functions.values()):
        section = _Section.at(functions, "functions", general)
        for where, entry in section.entries("aws", "function entries {lambda: ..., batch: ...}"):
            if isinstance(entry, Mapping):
                entries.append((where, _entry_name(entry), _defaulted(entry, defaults, False)))
            else:
                general.append(f"{where}: {_show(entry)} is not a mapping; must be a "
                               "function entry {lambda: ..., batch: ...}")
    else:
        for fname, body in functions.items():
            where = _join("functions", fname)
            if isinstance(body, Mapping):
                entries.append((where, str(fname), _defaulted(
                    _from_old_form(str(fname), body, where, general), defaults, True)))
            else:
                general.append(f"{where}: {_show(body)} is not a mapping; must be the "
                               "function's settings")
    if not entries and not general:
        raise ConfigError(["functions: no functions defined; add functions: {aws: [{lambda: "
                           "{name: ...}}]}"])
    if name is not None and all(n != name for _, n, _ in entries):
        defined = ", ".join(n for _, n, _ in entries if n) or "none"
        raise ConfigError([f"functions: no function named {name!r}; defined: {defined}"])

    problems: list[str] = [] if name is not None else general
    parsed: list[tuple[str, FunctionConfig]] = []
    first_of: dict[str, str] = {}
    for where, fname, entry in entries:
        wanted = name is None or fname == name
        if fname is not None and fname in first_of and wanted:
            lam = ".lambda" if isinstance(entry.get("lambda"), Mapping) else ""
            problems.append(f"{where}{lam}.name: {fname!r} is also the name of "
                            f"{first_of[fname]}; function names must be unique")
        elif fname is not None:
            first_of[fname] = where
        try:
            config = _parse(entry, base_dir=base_dir, path=where, check_files=check_files,
                            shared_providers=shared)
        except ConfigError as exc:
            if wanted:
                problems.extend(exc.problems)
            continue
        parsed.append((where, config))
    chosen = [(w, c) for w, c in parsed if name is None or c.name == name]
    for where, config in chosen:
        if not config.delegates or config.handoff_bucket is None:
            continue
        folder = f"{config.handoff_bucket}/{config.handoff_prefix}"
        for other_where, other in parsed:
            for source in other.input:
                if other is not config and _overlaps(folder, source.path):
                    problems.append(
                        f"{where}.handoff.prefix: the hand-off folder s3://{folder} is inside "
                        f"input path {source.path!r} of {other.name} ({other_where}), so "
                        "every delegation would trigger that function; set handoff.bucket or "
                        "handoff.prefix to a place outside every input path")
    if problems:
        raise ConfigError(_unique(problems))
    return [c for _, c in chosen]
