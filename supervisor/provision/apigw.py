"""API Gateway: the REST API in front of a function, as SCAR makes it (apply and remove).

The API has one ``{proxy+}`` resource under the root with an ``ANY`` method and
an ``AWS_PROXY`` integration to the function, deployed to stage ``scar`` by
default, so SCAR's endpoint ``https://<id>.execute-api.<region>.amazonaws.com/
scar/launch`` answers. The ``X-Amz-Invocation-Type`` header is passed on, so
``Event`` makes the invocation asynchronous. The API carries the tag
``supervisor:function`` = the function's name: that is how deploy finds it
again, ``rm`` deletes it and ``invoke --api`` reaches it.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from .errors import translated
from .lambda_fn import function_statements
from .requests import STAGE, Action, Outcome, RestApiRequest, endpoint_url

__all__ = ["api_gateway_request", "find_api", "integration_function", "ensure_rest_api",
           "remove_rest_apis"]

STATEMENT_ID = "supervisor-apigateway"
_HEADER = "X-Amz-Invocation-Type"
_METHOD_PARAMETER = f"method.request.header.{_HEADER}"
_INTEGRATION_PARAMETER = f"integration.request.header.{_HEADER}"
_NAME = re.compile(r"[A-Za-z0-9 ._-]{1,128}")
_KEYS = frozenset({"name", "stage_name", "boto_profile", "region", "endpoint", "http_method",
                   "path_part"})


def api_gateway_request(raw: Any, function_name: str, function_arn: str, region: str,
                        account_id: str, problems: list[str]) -> Optional[RestApiRequest]:
    """The request of a function's ``api_gateway`` key (None without one).

    SCAR's own keys that name its fixed settings (``endpoint``, ``http_method``,
    ``path_part``) are accepted; ``name`` is required.
    """
    if raw in (None, {}):
        return None
    if not isinstance(raw, Mapping):
        problems.append("api_gateway: must be a mapping with a name (api_gateway: {name: …})")
        return None
    name, stage = raw.get("name"), raw.get("stage_name", STAGE)
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        problems.append(f"api_gateway: unknown keys {', '.join(unknown)}; allowed: "
                        f"{', '.join(sorted(_KEYS))}")
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        problems.append("api_gateway.name: missing or not a name of 1-128 letters, digits, "
                        "spaces, '.', '_' or '-'")
        return None
    if not (isinstance(stage, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,128}", stage)):
        problems.append("api_gateway.stage_name: must be letters, digits, '_' or '-'")
        return None
    return RestApiRequest(name=name, function_name=function_name, function_arn=function_arn,
                          region=region, account_id=account_id, stage=stage)


def find_api(apigw: Any, function_name: str) -> Optional[Mapping[str, Any]]:
    """The REST API deploy made for ``function_name`` (its tag), or None."""
    with translated(f"cannot list the REST APIs of {function_name}"):
        for page in apigw.get_paginator("get_rest_apis").paginate():
            for api in page.get("items", []):
                if (api.get("tags") or {}).get(RestApiRequest.tag) == function_name:
                    found: Mapping[str, Any] = api
                    return found
    return None


def _proxy_resource(apigw: Any, api_id: str) -> tuple[str, Optional[str]]:
    """The root resource's id and the ``{proxy+}`` resource's id (None when missing)."""
    root, proxy = "", None
    with translated(f"cannot read the resources of REST API {api_id}"):
        for page in apigw.get_paginator("get_resources").paginate(restApiId=api_id):
            for resource in page.get("items", []):
                if resource.get("path") == "/":
                    root = str(resource["id"])
                elif resource.get("pathPart") == "{proxy+}" and \
                        resource.get("parentId") is not None:
                    proxy = str(resource["id"])
    return root, proxy


def integration_function(apigw: Any, api_id: str) -> Optional[str]:
    """The function ARN the API's ``ANY /{proxy+}`` integration invokes, or None."""
    _, proxy = _proxy_resource(apigw, api_id)
    return None if proxy is None else _integrated(apigw, api_id, proxy)


def _integrated(apigw: Any, api_id: str, proxy: str) -> Optional[str]:
    """The function ARN resource ``proxy``'s ``ANY`` integration invokes, or None."""
    from botocore.exceptions import ClientError

    try:
        uri = str(apigw.get_integration(restApiId=api_id, resourceId=proxy,
                                        httpMethod="ANY").get("uri", ""))
    except ClientError:
        return None
    found = re.search(r"/functions/(arn:[^/]+)/invocations$", uri)
    return found.group(1) if found else None


def _stage_deployed(apigw: Any, api_id: str, stage: str) -> bool:
    with translated(f"cannot read the stages of REST API {api_id}"):
        stages = apigw.get_stages(restApiId=api_id).get("item", [])
    return any(s.get("stageName") == stage for s in stages)


def _integrate(apigw: Any, api_id: str, proxy: str, request: RestApiRequest) -> None:
    with translated(f"cannot set up REST API {request.name}"):
        apigw.put_method(restApiId=api_id, resourceId=proxy, httpMethod="ANY",
                         authorizationType="NONE",
                         requestParameters={_METHOD_PARAMETER: False})
        apigw.put_integration(restApiId=api_id, resourceId=proxy, httpMethod="ANY",
                              type="AWS_PROXY", integrationHttpMethod="POST",
                              uri=request.integration_uri,
                              requestParameters={_INTEGRATION_PARAMETER: _METHOD_PARAMETER})
        apigw.create_deployment(restApiId=api_id, stageName=request.stage)


def _grant(lam: Any, request: RestApiRequest, api_id: str) -> bool:
    """Let the API invoke the function; True when the grant was added or replaced."""
    source = request.source_arn(api_id)
    found = next((s for s in function_statements(lam, request.function_name)
                  if s.get("Sid") == STATEMENT_ID), None)
    if found is not None and source in str(found.get("Condition", "")):
        return False
    with translated(f"cannot grant REST API {request.name} to invoke "
                    f"{request.function_name}"):
        if found is not None:
            lam.remove_permission(FunctionName=request.function_name, StatementId=STATEMENT_ID)
        lam.add_permission(FunctionName=request.function_name, StatementId=STATEMENT_ID,
                           Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com",
                           SourceArn=source)
    return True


def ensure_rest_api(apigw: Any, lam: Any, request: RestApiRequest) -> Outcome:
    """Create the API (or repair its resource, integration and stage) and the grant."""
    api = find_api(apigw, request.function_name)
    action: Action = "unchanged"
    if api is None or api.get("name") != request.name:
        if api is not None:  # renamed in the FDL: the old one goes
            with translated(f"cannot delete REST API {api.get('name')}"):
                apigw.delete_rest_api(restApiId=api["id"])
        with translated(f"cannot create REST API {request.name}"):
            api = apigw.create_rest_api(
                name=request.name, description=f"supervisor: {request.function_name}",
                endpointConfiguration={"types": ["REGIONAL"]},
                tags={RestApiRequest.tag: request.function_name})
        action = "created"
    api_id = str(api["id"])
    root, proxy = _proxy_resource(apigw, api_id)
    if proxy is None:
        with translated(f"cannot create the resource of REST API {request.name}"):
            proxy = str(apigw.create_resource(restApiId=api_id, parentId=root,
                                              pathPart="{proxy+}")["id"])
    if _integrated(apigw, api_id, proxy) != request.function_arn or \
            not _stage_deployed(apigw, api_id, request.stage):
        _integrate(apigw, api_id, proxy, request)
        action = action if action == "created" else "updated"
    if _grant(lam, request, api_id) and action == "unchanged":
        action = "updated"
    return Outcome(request.kind, request.name, action, api_id,
                   endpoint_url(api_id, request.region, request.stage))


def remove_rest_apis(apigw: Any, function_name: str, expected: bool) -> list[Outcome]:
    """Delete every REST API deploy made for ``function_name`` (the grant goes with the
    function). ``expected``: the definition has ``api_gateway``, so finding none is said."""
    outcomes: list[Outcome] = []
    while True:
        api = find_api(apigw, function_name)
        if api is None:
            break
        with translated(f"cannot delete REST API {api.get('name')}"):
            apigw.delete_rest_api(restApiId=api["id"])
        outcomes.append(Outcome(RestApiRequest.kind, str(api.get("name")), "deleted",
                                str(api["id"])))
    if outcomes or not expected:
        return outcomes
    return [Outcome(RestApiRequest.kind, f"{function_name}/*", "unchanged",
                    detail="none of ours")]
