"""Credentials given as references, read from Secrets Manager or Parameter Store at run time.

A storage provider's ``access_key`` / ``secret_key`` may name a Secrets Manager secret or
an SSM parameter instead of holding the key (:mod:`supervisor.config.credentials`). The
configuration keeps the reference everywhere it goes (deployment package, hand-off
document); the value is read here, when the provider's client is first made, by the
Lambda function and by the Batch job each with its own role and its own
``ClientFactory`` (so ``AWS_ENDPOINT_URL`` and the CLI's endpoint apply).

A value read is kept for :data:`DEFAULT_TTL_S` seconds per process: warm invocations do
not call the service again, and a rotated secret is picked up within that time (the
provider's client is then made again with the new keys). One secret read for both keys
(``key: access_key`` and ``key: secret_key`` of the same secret) is one call.

Values never leave this module but as the return value of :meth:`SecretResolver.resolve`:
a failure is one ``ConfigError`` line naming the field and the reference, never a value.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Optional

from .config.model import Credential, S3Provider, SecretRef
from .errors import ConfigError

__all__ = ["DEFAULT_TTL_S", "SecretResolver", "ClientFor"]

DEFAULT_TTL_S = 300.0
"""How long a value read is used before it is read again: the default of AWS's own
Parameters and Secrets Lambda extension (``SECRETS_MANAGER_TTL``, ``SSM_PARAMETER_STORE_TTL``)."""

ClientFor = Callable[[str, Optional[str]], Any]
"""Makes the boto3 client of a service (``secretsmanager``, ``ssm``) in a region
(``None``: the caller's own)."""

_Source = tuple[str, str, Optional[str], Optional[str], Optional[str]]


class SecretResolver:
    """Reads references and keeps each value ``ttl`` seconds; one instance per process.

    ``client_for`` makes the service clients (``ClientFactory`` passes its own
    maker); ``clock`` is monotonic seconds. Thread-safe.
    """

    def __init__(self, client_for: ClientFor, *, ttl: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._ttl = ttl
        self._clock = clock
        self._values: dict[_Source, tuple[float, str]] = {}
        self._clients: dict[tuple[str, Optional[str]], Any] = {}
        self._lock = threading.Lock()

    def credentials(self, provider: S3Provider, where: str) -> tuple[Optional[str], Optional[str]]:
        """The provider's access key and secret key, references read (``where``: the
        provider's field path, ``storage_providers.minio.lab``, for messages)."""
        return (self._value(provider.access_key, f"{where}.access_key"),
                self._value(provider.secret_key, f"{where}.secret_key"))

    def _value(self, credential: Optional[Credential], where: str) -> Optional[str]:
        if credential is None or isinstance(credential, str):
            return credential
        return self.resolve(credential, where)

    def resolve(self, ref: SecretRef, where: str) -> str:
        """The value ``ref`` names (its ``key`` field when it has one).

        Raises ``ConfigError`` (one line: ``where``, the reference, what failed) when
        it cannot be read or has no such field.
        """
        text = self._read(ref, where)
        if ref.key is None:
            value: Any = text
        else:
            try:
                document = json.loads(text)
            except ValueError:
                document = None
            if not isinstance(document, dict):
                raise ConfigError([f"{where}: {ref.describe()} is not a JSON object, so it "
                                   f"has no key {ref.key!r}"])
            if ref.key not in document:
                raise ConfigError([f"{where}: {ref.describe()} has no key {ref.key!r} "
                                   f"(it has: {', '.join(sorted(map(str, document))) or 'none'})"])
            value = document[ref.key]
        if not isinstance(value, str):
            raise ConfigError([f"{where}: {ref.describe()} is not text; a key is a string"])
        if not value:
            raise ConfigError([f"{where}: {ref.describe()} is empty"])
        return value

    def _read(self, ref: SecretRef, where: str) -> str:
        source: _Source = (ref.service, ref.name, ref.version_stage, ref.version_id, ref.region)
        now = self._clock()
        with self._lock:
            cached = self._values.get(source)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        text = self._fetch(ref, where)
        with self._lock:
            self._values[source] = (now, text)
        return text

    def _fetch(self, ref: SecretRef, where: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self._client(ref.service, ref.region)
            if ref.service == "ssm":
                answer = client.get_parameter(Name=ref.name, WithDecryption=True)
                text = answer.get("Parameter", {}).get("Value")
            else:
                params = {"SecretId": ref.name}
                if ref.version_stage:
                    params["VersionStage"] = ref.version_stage
                if ref.version_id:
                    params["VersionId"] = ref.version_id
                text = client.get_secret_value(**params).get("SecretString")
        except (ClientError, BotoCoreError) as exc:
            reason = " ".join(str(exc).split())
            raise ConfigError([f"{where}: cannot read {ref.describe()}: {reason}"]) from exc
        if not isinstance(text, str):
            raise ConfigError([f"{where}: {ref.describe()} holds no text (a binary secret "
                               "cannot be a key)"])
        return text

    def _client(self, service: str, region: Optional[str]) -> Any:
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                client = self._client_for(service, region)
                self._clients[(service, region)] = client
        return client
