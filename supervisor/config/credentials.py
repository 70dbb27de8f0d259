"""A storage provider's ``access_key`` / ``secret_key``: the key, or a reference to it. Pure.

Each of the two is one of:

- the key itself, a string (SCAR's form; it then travels with the configuration: into the
  deployment package and the hand-off document);
- ``{secretsmanager: NAME_OR_ARN}``: the secret's ``SecretString``; with ``key: FIELD``, one
  field of it read as a JSON object; ``version_stage`` / ``version_id`` pick a version;
- ``{ssm: NAME_OR_ARN}``: the parameter's value (a ``SecureString`` decrypted); ``key: FIELD``
  as above;
- the ARN strings ECS and Batch take in a secret's ``valueFrom``:
  ``arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:FIELD[:VERSION_STAGE[:VERSION_ID]]]``
  and ``arn:aws:ssm:REGION:ACCOUNT:parameter/NAME``.

A reference is kept as it is written wherever the configuration goes; the value is read
at run time (``supervisor.secrets``), by the Lambda function and by the Batch job each
with its own role.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Union

from .fields import _kind, _Section
from .model import Credential, SecretRef, SecretService

__all__ = ["read_credential", "credential_value", "ALLOWED"]

ALLOWED = ("must be the key itself, {secretsmanager: NAME, key: FIELD}, {ssm: NAME} "
           "or an arn:aws:secretsmanager:… / arn:aws:ssm:… ARN")

_LOOKS_LIKE_ARN = re.compile(r"arn:aws[a-z-]*:(secretsmanager|ssm):")
_SECRET_ARN = re.compile(
    r"(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^:\s]+)"
    r"(?::([^:\s]*)(?::([^:\s]*)(?::([^:\s]*))?)?)?")
_PARAMETER_ARN = re.compile(r"arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/\S+")
_ARN_FORMS = {
    "secretsmanager": "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME"
                      "[:FIELD[:VERSION_STAGE[:VERSION_ID]]]",
    "ssm": "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME",
}
_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "secretsmanager": ("key", "version_stage", "version_id"),
    "ssm": ("key",),
}


def read_credential(section: _Section, key: str) -> Optional[Credential]:
    """``section[key]`` as a credential; ``None`` when absent or blank. A wrong value is
    recorded as one problem naming the field and the forms allowed, never showing it."""
    value = section.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Mapping):
        return _read_mapping(section, key, value)
    if not isinstance(value, str):
        section.problem(key, f"{_kind(value)} is not a string or a reference", ALLOWED)
        return None
    looks = _LOOKS_LIKE_ARN.match(value)
    if looks is None:
        return value
    service = looks.group(1)
    ref = _from_arn(value)
    if ref is None:
        section.problem(key, f"not a valid {service} ARN", f"must be {_ARN_FORMS[service]}")
    return ref


def _from_arn(text: str) -> Optional[SecretRef]:
    secret = _SECRET_ARN.fullmatch(text)
    if secret is not None:
        name, field, stage, version = secret.groups()
        return SecretRef("secretsmanager", name, key=field or None,
                         version_stage=stage or None, version_id=version or None, text=text)
    if _PARAMETER_ARN.fullmatch(text):
        return SecretRef("ssm", text, text=text)
    return None


def _read_mapping(section: _Section, key: str, value: Mapping[Any, Any]) -> Optional[SecretRef]:
    services = [s for s in _OPTIONS if s in value]
    if len(services) != 1:
        wrong = ("both secretsmanager and ssm are set" if services else
                 "a mapping without secretsmanager or ssm")
        section.problem(key, wrong, ALLOWED)
        return None
    service: SecretService = "secretsmanager" if services[0] == "secretsmanager" else "ssm"
    before = len(section.problems)
    ref = _Section.at(value, section.path(key), section.problems, redact=True)
    allowed = (service, *_OPTIONS[service])
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        section.problem(key, f"unknown {', '.join(unknown)} in this {service} reference",
                        f"a reference to {service} takes {', '.join(allowed)}")
    name = _word(ref, service, "must be a name or an ARN")
    options = {option: _word(ref, option, f"must be a {option.replace('_', ' ')}")
               for option in _OPTIONS[service] if ref.get(option) is not None}
    if name is None or len(section.problems) > before:
        return None
    return SecretRef(service, name, **options)


def _word(ref: _Section, option: str, allowed: str) -> Optional[str]:
    """``ref[option]`` as a non-empty string without spaces around it (a name, an ARN, a
    field, a version stage or id); ``None`` after recording a problem."""
    value = ref.get(option)
    if isinstance(value, str) and value.strip() and value == value.strip():
        return value
    if value is None:
        wrong = "missing"
    elif isinstance(value, str):
        wrong = "is empty or has spaces around it"
    else:
        wrong = f"{ref.show(value)} is not a string"
    ref.problem(option, wrong, allowed)
    return None


def credential_value(credential: Optional[Credential]) -> Union[None, str, dict[str, str]]:
    """How a credential is written back out: the key, the ARN string, or the mapping."""
    if credential is None or isinstance(credential, str):
        return credential
    if credential.text is not None:
        return credential.text
    out: dict[str, str] = {credential.service: credential.name}
    for option in _OPTIONS[credential.service]:
        value = getattr(credential, option)
        if value is not None:
            out[option] = value
    return out
