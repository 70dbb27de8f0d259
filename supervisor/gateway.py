"""Reaching a function through the REST API deploy made for it (``api_gateway`` in the FDL).

:func:`resolve` finds the function's API (by its ``supervisor:function`` tag),
its stage, its public endpoint and the function its integration invokes.
:func:`proxy_event` is the event API Gateway's ``AWS_PROXY`` integration
sends the function for one HTTP request: what ``supervisor invoke --api``
sends directly where there is no ``execute-api`` host to post to (a local or
emulated endpoint), and what the handler reads as a direct invocation
(:mod:`supervisor.direct`).
"""
from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from .errors import SupervisorError
from .provision.apigw import find_api, integration_function
from .provision.requests import STAGE, endpoint_url

__all__ = ["Route", "resolve", "proxy_event", "is_aws_endpoint", "INVOCATION_HEADER"]

INVOCATION_HEADER = "X-Amz-Invocation-Type"
RESOURCE = "/{proxy+}"
PATH = "/launch"  # SCAR's endpoint path


@dataclass(frozen=True)
class Route:
    """Where a function's API is and what it invokes."""

    api_id: str
    stage: str
    region: str
    url: str  # the public endpoint (SCAR's .../<stage>/launch)
    function_arn: str


def resolve(apigw: Any, function: str) -> Route:
    """The route of ``function``'s REST API; ``SupervisorError`` (one line) when it has none."""
    api = find_api(apigw, function)
    if api is None:
        raise SupervisorError(f"{function}: no REST API was deployed for it (add "
                              "api_gateway: {name: <api name>} to its definition and deploy)")
    api_id = str(api["id"])
    stages = [str(s.get("stageName")) for s in apigw.get_stages(restApiId=api_id).get("item", [])]
    if not stages:
        raise SupervisorError(f"{function}: REST API {api.get('name')} has no deployed stage "
                              "(deploy again)")
    stage = STAGE if STAGE in stages else stages[0]
    target = integration_function(apigw, api_id)
    if target is None:
        raise SupervisorError(f"{function}: REST API {api.get('name')} has no Lambda "
                              "integration on ANY /{proxy+} (deploy again)")
    region = str(apigw.meta.region_name or "us-east-1")
    return Route(api_id=api_id, stage=stage, region=region,
                 url=endpoint_url(api_id, region, stage), function_arn=target)


def is_aws_endpoint(url: Optional[str]) -> bool:
    """Whether a client's endpoint is AWS's own (so ``execute-api`` hosts exist)."""
    host = urlsplit(url or "").hostname or ""
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


def _body(data: bytes) -> tuple[str, bool]:
    """API Gateway passes text as is and base64-encodes binary bodies."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def proxy_event(route: Route, body: bytes, *, method: str = "POST",
                headers: Optional[Mapping[str, str]] = None,
                query: Optional[Mapping[str, str]] = None,
                account_id: str = "") -> dict[str, Any]:
    """The ``AWS_PROXY`` event of one request to ``route`` (REST API payload format 1.0)."""
    text, encoded = _body(body)
    all_headers = {"Host": urlsplit(route.url).hostname or "", **dict(headers or {})}
    now = time.time()
    return {
        "resource": RESOURCE, "path": PATH, "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query
        else None,
        "pathParameters": {"proxy": PATH.lstrip("/")}, "stageVariables": None,
        "requestContext": {
            "resourcePath": RESOURCE, "httpMethod": method, "path": f"/{route.stage}{PATH}",
            "stage": route.stage, "apiId": route.api_id, "accountId": account_id,
            "requestId": str(uuid.uuid4()), "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(now * 1000),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "identity": {"sourceIp": "127.0.0.1"}},
        "body": text, "isBase64Encoded": encoded,
    }
