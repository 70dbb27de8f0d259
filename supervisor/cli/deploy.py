"""``supervisor deploy`` and ``supervisor rm``: a function definition's AWS resources.

Both read a whole FDL file. ``deploy`` refuses a workflow whose functions
trigger each other in a loop (every function of the file is checked, even
with ``-n``), then deploys each function (or the one named) with
:func:`supervisor.provision.deploy`; ``--dry-run`` prints the plan and calls
no AWS API at all. ``rm`` removes with :func:`supervisor.provision.remove`.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..config import FunctionConfig, from_fdl
from ..config.scarcfg import Defaults, default_path, read_defaults
from ..config.sources import TAKEN_FROM_DEFAULTS
from ..errors import ConfigError
from ..provision import Deployment, Outcome, deploy, remove
from ..provision.ignored import ignored_fdl_keys, ignored_keys
from ..provision.plain_keys import plain_keys_note
from ..workflow import check_loops
from .args import Subparsers, add_command
from .artefacts import add_artefact_options, artefacts_of
from .context import Context
from .output import Column, shorten, table

__all__ = ["register", "run_deploy", "run_rm", "select", "outcomes_text", "plan_text"]

OUTCOME_COLUMNS: tuple[Column, ...] = (("resource", "resource"), ("name", "name"),
                                       ("action", "action"), ("detail", "detail"))
PLAN_COLUMNS: tuple[Column, ...] = (("resource", "resource"), ("name", "name"),
                                    ("settings", "settings"))
SETTINGS_WIDTH = 70

DEPLOY_EXAMPLES = """
  supervisor deploy -f scar-plants.yaml       # buckets, trigger, function, layer, Batch
  supervisor deploy -f workflow.yaml -n step-2  # one function of the file
  supervisor deploy -f scar-plants.yaml --dry-run --json   # the plan, no AWS call
  supervisor deploy -f scar-plants.yaml --layer-zip artefacts/supervisor-layer.zip \\
      --pyz artefacts/supervisor-batch.pyz     # as supervisor build -o artefacts wrote them
"""
RM_EXAMPLES = """
  supervisor rm -f scar-plants.yaml
  supervisor rm -f workflow.yaml -n step-2
"""


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``deploy`` and ``rm``."""
    parser = add_command(
        subparsers, "deploy", common=common, func=run_deploy, examples=DEPLOY_EXAMPLES,
        summary="create or update the AWS resources of a function definition (FDL)",
        description="Create or update, idempotently, everything the functions of an FDL "
                    "file need: buckets, the S3 trigger, the Lambda function and the "
                    "supervisor layer, and for lambda-batch/batch the Batch compute "
                    "environment, job queue and job definition. Nothing is created when "
                    "a read-only check fails (role, subnets, ...).")
    _fdl_options(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (account id as <account-id>); call nothing")
    add_artefact_options(parser)
    parser = add_command(
        subparsers, "rm", common=common, func=run_rm, examples=RM_EXAMPLES,
        summary="remove what deploy created for a function definition",
        description="Remove the trigger, the function, its layer versions and log group, the "
                    "Batch resources, and the buckets deploy created when they are empty "
                    "(others are reported as kept, with the reason). Removing twice is "
                    "harmless.")
    _fdl_options(parser)


def _fdl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", type=Path, required=True, metavar="FDL",
                        help="the function definition file (YAML)")
    parser.add_argument("-n", "--name", help="only this function of the file")
    parser.add_argument("--config", type=Path, metavar="SCAR_CFG",
                        help="SCAR's defaults file read under the definition (default: "
                             "$SCAR_CONFIG_FOLDER/scar.cfg, else ~/.scar/scar.cfg, if present)")


def fdl_defaults(args: argparse.Namespace) -> Defaults:
    """SCAR's defaults for this run: ``--config``, else the default file if there is one."""
    if args.config is not None:
        return read_defaults(args.config, required=True)
    return read_defaults(default_path(os.environ))


def function_account(config: FunctionConfig) -> tuple[Optional[str], Optional[str]]:
    """The function's own ``boto_profile`` and ``region`` (SCAR's FDL keys), None when unset;
    SCAR's placeholder profile ``default`` means the run's own credentials."""
    profile, region = config.raw.get("boto_profile"), config.raw.get("region")
    return (profile if isinstance(profile, str) and profile not in ("", "default") else None,
            region if isinstance(region, str) and region.strip() else None)


def fdl_document(path: Path) -> Mapping[str, Any]:
    """The FDL file as a mapping (already checked by from_fdl)."""
    from ..config.sources import _load_document

    return _load_document(path.read_text(encoding="utf-8"), str(path))


def note_defaults(ctx: Context, configs: Sequence[FunctionConfig]) -> None:
    """Say, per function, which keys SCAR's defaults file supplied."""
    for config in configs:
        taken = config.raw.get(TAKEN_FROM_DEFAULTS)
        if isinstance(taken, Mapping) and taken.get("keys"):
            ctx.note(f"{config.name}: from {taken.get('source')}: "
                     f"{', '.join(map(str, taken['keys']))}")


def select(configs: Sequence[FunctionConfig], name: Optional[str]) -> list[FunctionConfig]:
    """The functions named ``name`` (all when None); ``ConfigError`` when none is."""
    if name is None:
        return list(configs)
    chosen = [c for c in configs if c.name == name]
    if not chosen:
        defined = ", ".join(c.name for c in configs) or "none"
        raise ConfigError([f"functions: no function named {name!r}; defined: {defined}"])
    return chosen


def _settings(fields: dict[str, Any]) -> str:
    return shorten(json.dumps(fields, separators=(",", ":"), default=str), SETTINGS_WIDTH)


def plan_text(deployment: Deployment) -> str:
    """A dry run as text: where, and one line per resource with its settings, shortened."""
    plan = deployment.plan
    rows = [dict(row, settings=_settings(row["settings"])) for row in plan.summary()]
    return (f"{plan.function}: dry run in {plan.region}, nothing was called "
            f"(--json shows every setting)\n{table(rows, PLAN_COLUMNS)}")


def outcomes_text(title: str, outcomes: Sequence[Outcome]) -> str:
    """A title line and one table row per resource."""
    return f"{title}\n{table([o.to_dict() for o in outcomes], OUTCOME_COLUMNS)}"


def run_deploy(args: argparse.Namespace, ctx: Context) -> int:
    """Deploy the file's functions (or the one named); print the outcomes or the plan."""
    configs = from_fdl(args.file, check_files=True, defaults=fdl_defaults(args))
    check_loops(configs)
    note_defaults(ctx, select(configs, args.name))
    done: list[Deployment] = []
    for line in ignored_fdl_keys(fdl_document(args.file)):
        ctx.note(line)
    chosen = select(configs, args.name)
    artefacts = artefacts_of(args, chosen, ctx)
    for config in chosen:
        for line in ignored_keys(config, config.name):
            ctx.note(line)
        plain_keys = plain_keys_note(config, config.name)
        if plain_keys is not None:
            ctx.note(plain_keys)
        if not args.dry_run:
            ctx.note(f"deploying {config.name} ({config.execution_mode}) ...")
        profile, region = function_account(config)
        done.append(deploy(config, ctx.clients_for(profile, region),
                           layer_zip=artefacts.layer_zip, batch_pyz=artefacts.batch_pyz,
                           udocker_layer_zip=artefacts.udocker_layer_zip,
                           region=region or ctx.region, dry_run=args.dry_run))

    def text() -> str:
        return "\n\n".join(
            plan_text(d) if d.dry_run else outcomes_text(
                f"{d.plan.function}: deployed in {d.plan.region} "
                f"(account {d.plan.account_id})", d.outcomes)
            for d in done)

    ctx.emit([d.to_dict() for d in done], text)
    return 0


def run_rm(args: argparse.Namespace, ctx: Context) -> int:
    """Remove the file's functions (or the one named); print the outcomes."""
    removed: list[tuple[str, list[Outcome]]] = []
    for config in from_fdl(args.file, args.name, check_files=False,
                           defaults=fdl_defaults(args)):
        ctx.note(f"removing {config.name} ...")
        removed.append((config.name, remove(config, ctx.clients_for(*function_account(config)))))
    ctx.emit([{"function": name, "outcomes": [o.to_dict() for o in outcomes]}
              for name, outcomes in removed],
             lambda: "\n\n".join(outcomes_text(f"{name}: removed", outcomes)
                                 for name, outcomes in removed))
    return 0
