"""boto3 clients, made once per process and passed in to the steps that use them.

The endpoint, region and credentials come from boto3's own resolution
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, the execution role), exactly as on AWS;
a named storage provider (``storage_providers.s3.<id>``) brings its own keys,
region and endpoint. Keys given as references are read when the provider's client is
made, through this factory's own clients (:mod:`supervisor.secretrefs`), and again once
their cache time has passed: a rotated key gives a new client.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping, Optional

from .config import S3Provider
from .errors import ConfigError
from .secretrefs import SecretResolver

__all__ = ["ClientFactory", "DEFAULT_PROVIDER", "bounded_timeout"]

DEFAULT_PROVIDER = "s3"

# Client settings by purpose. "batch": SubmitJob is retried by the hand-off itself, within
# its deadline (botocore's backoff, up to 20 s a pause, and its 60 s read timeout could
# outlast the seconds a Lambda has left). "invoke": a synchronous Invoke waits as long as
# the function runs (up to 900 s) and must never be sent twice (a read timeout is retried).
_SETTINGS: dict[str, dict[str, Any]] = {
    "batch": {"retries": {"total_max_attempts": 1, "mode": "standard"},
              "connect_timeout": 5, "read_timeout": 15},
    "invoke": {"retries": {"total_max_attempts": 1, "mode": "standard"},
               "read_timeout": 910},
    # Reading a provider's keys happens on the record's path: a few short tries.
    "secrets": {"retries": {"total_max_attempts": 3, "mode": "standard"},
                "connect_timeout": 5, "read_timeout": 10},
}
_DEFAULT_SETTINGS: dict[str, Any] = {"retries": {"total_max_attempts": 6, "mode": "standard"}}
# A bounded client (``ClientFactory.bounded``): one attempt, connect and read timeouts of a
# power of two seconds in this range, so a process makes a few such clients, not one a call.
_BOUNDED = "bounded-"
_BOUNDED_MIN_S = 0.25
_BOUNDED_MAX_S = 64.0


def bounded_timeout(seconds: float) -> float:
    """The timeout a client bounded to ``seconds`` gets: the largest power of two not above
    it, at least 0.25 s and at most 64 s. Pure."""
    timeout = _BOUNDED_MAX_S
    while timeout > _BOUNDED_MIN_S and timeout > seconds:
        timeout /= 2
    return timeout


def _settings(purpose: str) -> dict[str, Any]:
    if purpose.startswith(_BOUNDED):
        seconds = float(purpose[len(_BOUNDED):])
        return {"retries": {"total_max_attempts": 1, "mode": "standard"},
                "connect_timeout": seconds, "read_timeout": seconds}
    return _SETTINGS.get(purpose, _DEFAULT_SETTINGS)


def _provider_key(provider: str) -> str:
    """``s3.<id>`` -> ``<id>``; ``minio.<id>`` as it is (see ``config.parse.provider_key``)."""
    kind, _, ident = provider.partition(".")
    return ident if kind == "s3" else provider


def _provider_path(provider: str) -> str:
    """The field path of a named provider: ``storage_providers.s3.<id>`` / ``.minio.<id>``."""
    return f"storage_providers.{provider}"


_Keys = tuple[Optional[str], Optional[str]]


class ClientFactory:
    """Creates and caches boto3 clients; one instance serves a whole process.

    ``providers`` maps a provider id (the part after ``s3.``) to its settings;
    ``endpoint_url`` (the local endpoint, the CLI's ``--endpoint-url``) is used
    by every default-provider client instead of boto3's own resolution.
    Clients are thread-safe once made; creation is serialised with a lock.
    ``secrets`` reads keys given as references (default: a ``SecretResolver``
    over this factory's session, shared by every factory made by ``with_providers``).
    """

    def __init__(self, session: Optional[Any] = None,
                 providers: Optional[Mapping[str, S3Provider]] = None,
                 endpoint_url: Optional[str] = None,
                 secrets: Optional[SecretResolver] = None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._providers: Mapping[str, S3Provider] = dict(providers or {})
        # Shared with every factory made by with_providers: a client is built once per
        # process (building one costs tens of milliseconds), keyed by what it is made from.
        self._clients: dict[tuple[str, str, Optional[S3Provider], str], Any] = {}
        # The keys read from references that each provider client was made with.
        self._made_with: dict[tuple[str, str, Optional[S3Provider], str], _Keys] = {}
        self._lock = threading.Lock()
        self._root = self
        self._secrets = secrets or SecretResolver(self._secrets_client)

    def with_providers(self, providers: Mapping[str, S3Provider]) -> "ClientFactory":
        """A factory with other named providers, sharing this one's session and clients."""
        root = self._root
        other = ClientFactory(None, providers, root._endpoint_url)
        other._root = root
        other._clients = root._clients
        other._made_with = root._made_with
        other._lock = root._lock
        other._secrets = root._secrets
        return other

    def _get_session(self) -> Any:
        root = self._root
        if root._session is None:
            import boto3.session

            root._session = boto3.session.Session()
        return root._session

    def client(self, service: str) -> Any:
        """The default-credentials client for ``service``."""
        return self._cached(service, DEFAULT_PROVIDER)

    def invoker(self) -> Any:
        """A Lambda client for ``Invoke``: one attempt, a read timeout past Lambda's 900 s."""
        return self._cached("lambda", DEFAULT_PROVIDER, purpose="invoke")

    def bounded(self, service: str, seconds: float) -> Any:
        """A default-credentials client for ``service`` that gives up in about ``seconds``:
        connect and read timeouts of ``bounded_timeout(seconds)`` and one attempt (its caller
        retries, within its own deadline). Made once per process for each such timeout."""
        return self._cached(service, DEFAULT_PROVIDER,
                            purpose=f"{_BOUNDED}{bounded_timeout(seconds)}")

    def s3(self, storage_provider: str = DEFAULT_PROVIDER) -> Any:
        """The S3 client for ``"s3"`` or a named ``"s3.<id>"`` storage provider."""
        return self._cached("s3", storage_provider)

    def _cached(self, service: str, provider: str, purpose: str = "") -> Any:
        settings = None
        if provider != DEFAULT_PROVIDER:
            settings = self._providers.get(_provider_key(provider))
        key = (service, provider, settings, purpose)
        keys = None  # read outside the lock: it may call Secrets Manager or SSM
        if settings is not None and settings.references:
            keys = self._secrets.credentials(settings, _provider_path(provider))
        client = self._clients.get(key)
        if client is None or self._made_with.get(key) != keys:
            with self._lock:
                client = self._clients.get(key)
                if client is None or self._made_with.get(key) != keys:
                    client = self._make(service, provider, purpose or service, keys)
                    self._clients[key] = client
                    if keys is not None:
                        self._made_with[key] = keys
        return client

    def _secrets_client(self, service: str, region: Optional[str]) -> Any:
        """A default-credentials client that reads references (``SecretResolver``'s maker)."""
        from botocore.config import Config

        kwargs: dict[str, Any] = {"config": Config(**_SETTINGS["secrets"])}
        if region:
            kwargs["region_name"] = region
        if self._root._endpoint_url:
            kwargs["endpoint_url"] = self._root._endpoint_url
        return self._get_session().client(service, **kwargs)

    def _make(self, service: str, provider: str, purpose: str,
              keys: Optional[_Keys] = None) -> Any:
        from botocore.config import Config

        config = Config(max_pool_connections=32,
                        **_settings(purpose))
        if provider == DEFAULT_PROVIDER:
            if self._endpoint_url:
                return self._get_session().client(service, config=config,
                                                  endpoint_url=self._endpoint_url)
            return self._get_session().client(service, config=config)
        settings = self._providers.get(_provider_key(provider))
        if settings is None:
            known = ", ".join(["s3"] + [k if k.startswith("minio.") else f"s3.{k}"
                                        for k in sorted(self._providers)])
            raise ConfigError([f"storage provider {provider!r} is not defined; defined: {known}"])
        kwargs: dict[str, Any] = {"config": config}
        if settings.region:
            kwargs["region_name"] = settings.region
        if settings.endpoint:
            kwargs["endpoint_url"] = settings.endpoint
        access_key, secret_key = keys or (settings.access_key, settings.secret_key)
        if isinstance(access_key, str) and isinstance(secret_key, str) and access_key \
                and secret_key:
            kwargs["aws_access_key_id"] = access_key
            kwargs["aws_secret_access_key"] = secret_key
        return self._get_session().client(service, **kwargs)
