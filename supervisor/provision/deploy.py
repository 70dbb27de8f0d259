"""Deploy one function: plan, preflight (reads only), apply; or a dry run (no calls)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..aws import ClientFactory
from ..config import FunctionConfig
from .apply import apply
from .errors import ProvisionError, translated
from .names import DEFAULT_LAYER_NAME
from .plan import (
    DEFAULT_BATCH_PYZ,
    DEFAULT_LAYER_ZIP,
    DEFAULT_UDOCKER_LAYER_ZIP,
    PLACEHOLDER_ACCOUNT_ID,
    build_plan,
)
from .preflight import preflight
from .requests import Outcome, Plan
from .waiting import DEFAULT_WAITING, Waiting

__all__ = ["Deployment", "deploy", "caller_account", "client_region", "NO_REGION"]

#: What a deploy without a region says: every place a region is read from, first wins.
NO_REGION = ("no AWS region configured: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), "
             "or put 'region = REGION' in the profile's section of ~/.aws/config "
             "(AWS_CONFIG_FILE; the profile is --profile, else AWS_PROFILE, else default)")


@dataclass(frozen=True)
class Deployment:
    """What a deploy planned and did (``outcomes`` is empty for a dry run)."""

    plan: Plan
    outcomes: tuple[Outcome, ...]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the plan summary and the outcomes."""
        return {"function": self.plan.function, "dry_run": self.dry_run,
                "account_id": self.plan.account_id, "region": self.plan.region,
                "placeholder_account": self.plan.placeholder_account,
                "plan": self.plan.summary(), "outcomes": [o.to_dict() for o in self.outcomes]}


def caller_account(clients: ClientFactory) -> str:
    """The caller's account id (STS ``GetCallerIdentity``)."""
    with translated("cannot identify the AWS account (sts get-caller-identity)"):
        return str(clients.client("sts").get_caller_identity()["Account"])


def client_region(clients: ClientFactory) -> str:
    """The region boto3 resolved (no API call: it is read from the client's settings)."""
    from botocore.exceptions import NoRegionError

    try:
        region = clients.client("lambda").meta.region_name
    except NoRegionError as exc:
        raise ProvisionError(NO_REGION) from exc
    if not region:
        raise ProvisionError(NO_REGION)
    return str(region)


def deploy(config: FunctionConfig, clients: ClientFactory, *,
           layer_zip: Path = DEFAULT_LAYER_ZIP, batch_pyz: Path = DEFAULT_BATCH_PYZ,
           layer_name: str = DEFAULT_LAYER_NAME, region: Optional[str] = None,
           udocker_layer_zip: Path = DEFAULT_UDOCKER_LAYER_ZIP,
           dry_run: bool = False, waiting: Waiting = DEFAULT_WAITING) -> Deployment:
    """Create or update everything ``config`` needs; idempotent.

    ``dry_run`` builds the plan with the placeholder account id
    (``<account-id>``) and calls no AWS API at all. Otherwise: the account id
    from STS, the plan, a read-only preflight (missing role, subnets, ... fail
    here, before anything is created), then apply. Raises ``ProvisionError``
    (or ``ConfigError`` from the configuration).
    """
    region = region or client_region(clients)
    if dry_run:
        plan = build_plan(config, account_id=PLACEHOLDER_ACCOUNT_ID, region=region,
                          layer_zip=layer_zip, batch_pyz=batch_pyz, layer_name=layer_name,
                          udocker_layer_zip=udocker_layer_zip, placeholder_account=True)
        return Deployment(plan=plan, outcomes=(), dry_run=True)
    account_id = caller_account(clients)
    plan = build_plan(config, account_id=account_id, region=region, layer_zip=layer_zip,
                      batch_pyz=batch_pyz, layer_name=layer_name,
                      udocker_layer_zip=udocker_layer_zip)
    preflight(plan, clients)
    outcomes = apply(plan, clients, waiting=waiting)
    return Deployment(plan=plan, outcomes=tuple(outcomes), dry_run=False)
