"""``supervisor invoke --api``: a request body through the function's REST API.

On AWS the body is posted to the API's endpoint, as ``scar invoke`` does
(``X-Amz-Invocation-Type: Event`` with ``--async``). Against any other
endpoint (the embedded one of local mode, a moto server) there is no
``execute-api`` host: the request goes to the function the API integrates,
as the event API Gateway would send it, through Lambda's Invoke.
"""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import SupervisorError
from ..gateway import INVOCATION_HEADER, Route, is_aws_endpoint, proxy_event, resolve
from .context import Context
from .errors import CliError
from .invoke import answer_text, failure, invoke_with

__all__ = ["run_api_invoke", "request_body"]

_TIMEOUT = 30.0  # s: API Gateway's own limit for a synchronous integration is 29 s


def request_body(args: argparse.Namespace) -> bytes:
    """The body ``--data``/``--data-file`` give (empty without either)."""
    if args.data_file is not None:
        try:
            data: bytes = args.data_file.read_bytes()
        except OSError as exc:
            raise CliError(f"--data-file {args.data_file}: {exc.strerror or exc}") from exc
        return data
    return args.data.encode("utf-8") if args.data is not None else b""


def run_api_invoke(args: argparse.Namespace, ctx: Context) -> int:
    """Find the function's API, then post the body to it (or hand it over as API
    Gateway would); print the answer."""
    body = request_body(args)
    apigw = ctx.clients.client("apigateway")
    try:
        route = resolve(apigw, args.name)
    except SupervisorError as exc:
        raise CliError(str(exc)) from exc
    result: dict[str, Any] = {"function": args.name, "api_id": route.api_id,
                              "endpoint": route.url}
    headers = {"Content-Type": "application/octet-stream"}
    if args.asynchronous:
        headers[INVOCATION_HEADER] = "Event"
    if is_aws_endpoint(apigw.meta.endpoint_url):
        return _post(ctx, route, body, headers, args.asynchronous, result)
    ctx.note(f"{route.url}: no execute-api host at this endpoint; the request goes to "
             f"{route.function_arn.rsplit(':', 1)[-1]} as API Gateway would send it")
    event = proxy_event(route, body, headers=headers)
    return invoke_with(ctx, ctx.clients.invoker(), route.function_arn, event,
                       asynchronous=args.asynchronous, result=result, what=route.url)


def _post(ctx: Context, route: Route, body: bytes, headers: dict[str, str],
          asynchronous: bool, result: dict[str, Any]) -> int:
    import urllib3

    try:
        response = urllib3.PoolManager().request(
            "POST", route.url, body=body, headers=headers,
            timeout=urllib3.Timeout(connect=10.0, read=_TIMEOUT), retries=False)
    except urllib3.exceptions.HTTPError as exc:
        raise CliError(f"{route.url}: {exc}") from exc
    text = response.data.decode("utf-8", "replace")
    answer: Any = {"statusCode": response.status, "body": text}
    result.update(status_code=response.status, payload=text)
    ctx.emit(result, lambda: answer_text(answer) if not asynchronous
             else f"queued the request for {route.url} (HTTP {response.status})")
    problem = failure(None, answer) if not asynchronous or response.status >= 400 else None
    if problem:
        raise CliError(problem)
    return 0
