"""Remove what deploy made for one function (``supervisor rm``); idempotent.

Order: stop the triggers (notification entries, S3's invoke grants), the
function, its layer versions and log group; then Batch in the order it
requires (queue, compute environment, job definitions), the launch template
and the .pyz artifacts; buckets last, and only those this function's deploy
created that are empty and serve no other notification (others are reported
``kept`` with the reason).
"""
from __future__ import annotations

from ..aws import ClientFactory
from ..config import FunctionConfig
from .apigw import remove_rest_apis
from .batch import (
    compute_environments_using_template,
    remove_compute_environment,
    remove_job_definitions,
    remove_job_queue,
)
from .ec2 import all_default_user_data, remove_launch_template
from .lambda_fn import remove_function, remove_layer_versions, remove_permissions
from .logs import remove_log_group
from .names import DEFAULT_LAYER_NAME, names_of
from .plan import runs_containers_on_lambda
from .requests import Outcome
from .s3 import remove_artifacts, remove_bucket, remove_notifications, remove_object
from .waiting import DEFAULT_WAITING, Waiting

__all__ = ["remove"]


def remove(config: FunctionConfig, clients: ClientFactory, *,
           layer_name: str = DEFAULT_LAYER_NAME, waiting: Waiting = DEFAULT_WAITING) -> list[Outcome]:
    """Delete the function's resources; one outcome per resource considered.

    Batch resources are removed only for ``lambda-batch`` and ``batch``
    functions. Removing twice is harmless: the second time every outcome is
    ``unchanged`` (or ``kept``). Raises ``ProvisionError``.
    """
    names = names_of(config, layer_name)
    s3 = clients.client("s3")
    lam = clients.client("lambda")
    outcomes = remove_rest_apis(clients.client("apigateway"), names.function,
                                expected=bool(config.raw.get("api_gateway")))
    for bucket in names.input_buckets:
        outcomes.append(remove_notifications(s3, bucket, names.function))
    outcomes.extend(remove_permissions(lam, names.function))
    outcomes.append(remove_function(lam, names.function))
    outcomes.extend(remove_object(s3, names.deployment_bucket, names.code_key,
                                  "lambda-code"))
    outcomes.extend(remove_layer_versions(lam, names.layer, names.function))
    if runs_containers_on_lambda(config):  # deploy attached the udocker layer too
        outcomes.extend(remove_layer_versions(lam, names.udocker_layer, names.function))
    outcomes.append(remove_log_group(clients.client("logs"), names.log_group,
                                     owned=config.log_retention_days is not None))
    if config.delegates:
        batch = clients.client("batch")
        outcomes.append(remove_job_queue(batch, names.job_queue, waiting))
        env = remove_compute_environment(batch, names.compute_environment, waiting)
        outcomes.append(env)
        outcomes.extend(remove_job_definitions(batch, names.job_definition))
        users = compute_environments_using_template(batch, names.launch_template,
                                                    names.compute_environment)
        if env.action == "kept":
            users.append(names.compute_environment)
        ec2 = clients.client("ec2")
        outcomes.append(remove_launch_template(ec2, names.launch_template, users))
        templates = all_default_user_data(ec2)  # those left may share the staging bucket

        def used_by(uri: str) -> list[str]:
            return sorted(name for name, data in templates.items() if uri in data)

        outcomes.extend(remove_artifacts(s3, names.staging_bucket, names.artifact_prefix,
                                         used_by))
    for bucket in names.buckets:
        outcomes.append(remove_bucket(s3, bucket, names.function))
    return outcomes
