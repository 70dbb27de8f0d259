"""Storage-provider keys as references: parsing, writing back out, reading with a cache."""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import boto3.session
import pytest
import yaml

from supervisor.aws import ClientFactory
from supervisor.config import SecretRef, from_fdl, parse, to_json, to_yaml
from supervisor.errors import ConfigError
from supervisor.provision.plain_keys import plain_keys_note
from supervisor.secretrefs import DEFAULT_TTL_S, SecretResolver

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lab-AbCdEf"
PARAMETER_ARN = "arn:aws:ssm:eu-west-1:123456789012:parameter/lab/secret"


def function(access_key: Any, secret_key: Any, kind: str = "minio") -> dict[str, Any]:
    provider: dict[str, Any] = {"access_key": access_key, "secret_key": secret_key}
    if kind == "minio":
        provider["endpoint"] = "http://127.0.0.1:9000"
    return {"name": "fn", "container": {"image": "busybox"},
            "input": [{"path": "bucket/in"}],
            "output": [{"storage_provider": f"{kind}.lab", "path": "bucket/out"}],
            "storage_providers": {kind: {"lab": provider}}}


def provider_of(data: dict[str, Any]) -> Any:
    providers = parse(data, check_files=False).storage_providers
    (provider,) = providers.values()
    return provider


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data, check_files=False)
    return list(info.value.problems)


# --------------------------------------------------------------------------- parsing

def test_mapping_references_name_a_secret_field_or_a_parameter() -> None:
    provider = provider_of(function({"secretsmanager": "lab", "key": "access_key"},
                                    {"ssm": "/lab/secret"}))
    assert provider.access_key == SecretRef("secretsmanager", "lab", key="access_key")
    assert provider.secret_key == SecretRef("ssm", "/lab/secret")
    assert provider.references


def test_a_secret_reference_may_pick_a_version() -> None:
    provider = provider_of(function(
        {"secretsmanager": "lab", "key": "a", "version_stage": "AWSPREVIOUS"},
        {"secretsmanager": "lab", "key": "s", "version_id": "v-1"}, kind="s3"))
    assert provider.access_key.version_stage == "AWSPREVIOUS"
    assert provider.secret_key.version_id == "v-1"


def test_arn_strings_are_read_as_ecs_value_from_references() -> None:
    provider = provider_of(function(f"{SECRET_ARN}:access_key::", PARAMETER_ARN))
    assert provider.access_key == SecretRef("secretsmanager", SECRET_ARN, key="access_key",
                                            text=f"{SECRET_ARN}:access_key::")
    assert provider.access_key.region == "eu-west-1"
    assert provider.secret_key == SecretRef("ssm", PARAMETER_ARN, text=PARAMETER_ARN)
    whole = provider_of(function(SECRET_ARN + ":a:AWSCURRENT:v1", SECRET_ARN)).access_key
    assert (whole.key, whole.version_stage, whole.version_id) == ("a", "AWSCURRENT", "v1")


def test_plain_keys_stay_plain_and_a_key_in_the_nested_auth_form_may_be_a_reference() -> None:
    assert provider_of(function("AKID", "not-an-arn:value")).secret_key == "not-an-arn:value"
    data = function(None, None, kind="s3")
    data["storage_providers"]["s3"]["lab"] = {"auth": {"access_key": "AKID",
                                                       "secret_key": {"ssm": "/lab/s"}}}
    provider = provider_of(data)
    assert (provider.access_key, provider.secret_key) == ("AKID", SecretRef("ssm", "/lab/s"))
    assert not provider_of(function("AKID", "SECRET")).references


@pytest.mark.parametrize("value, problem", [
    ({"key": "secret_key"}, "secret_key: a mapping without secretsmanager or ssm; must be the "
                            "key itself, {secretsmanager: NAME, key: FIELD}, {ssm: NAME} or"),
    ({"secretsmanager": "a", "ssm": "/b"}, "secret_key: both secretsmanager and ssm are set"),
    ({"ssm": "/p", "version_stage": "AWSCURRENT"},
     "secret_key: unknown version_stage in this ssm reference; a reference to ssm takes ssm, "
     "key"),
    ({"secretsmanager": "a", "keys": "x"},
     "secret_key: unknown keys in this secretsmanager reference; a reference to "
     "secretsmanager takes secretsmanager, key, version_stage, version_id"),
    ({"secretsmanager": ""}, "secret_key.secretsmanager: is empty or has spaces around it; "
                             "must be a name or an ARN"),
    ({"ssm": None}, "secret_key.ssm: missing; must be a name or an ARN"),
    ({"secretsmanager": "a", "key": 3}, "secret_key.key: an integer is not a string; "
                                        "must be a key"),
    (["SECRET"], "secret_key: a list is not a string or a reference; must be the key itself"),
    ("arn:aws:secretsmanager:eu-west-1:lab", "secret_key: not a valid secretsmanager ARN; "
     "must be arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:FIELD[:VERSION_STAGE"),
    ("arn:aws:ssm:eu-west-1:123456789012:lab", "secret_key: not a valid ssm ARN; must be "
                                               "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME"),
])
def test_a_wrong_reference_is_one_problem_naming_the_field_and_the_forms(
        value: Any, problem: str) -> None:
    problems = problems_of(function({"ssm": "/lab/access"}, value))
    assert len(problems) == 1, problems
    assert problems[0].startswith("storage_providers.minio.lab." + problem), problems[0]
    assert "\n" not in problems[0] and "SECRET" not in problems[0]


def test_a_reference_for_one_key_and_none_for_the_other_is_refused() -> None:
    data = function({"ssm": "/lab/access"}, None)
    assert problems_of(data) == ["storage_providers.minio.lab: only one of access_key and "
                                 "secret_key is set; set both or neither"]


# --------------------------------------------------------------------------- written back out

@pytest.mark.parametrize("write", [to_yaml, to_json])
def test_references_are_written_back_out_as_they_were_given(write: Any) -> None:
    data = function({"secretsmanager": "lab", "key": "access_key", "version_stage": "S"},
                    PARAMETER_ARN)
    config = parse(data, check_files=False)
    document = yaml.safe_load(write(config))
    lab = document["storage_providers"]["minio"]["lab"]
    assert lab["access_key"] == {"secretsmanager": "lab", "key": "access_key",
                                 "version_stage": "S"}
    assert lab["secret_key"] == PARAMETER_ARN
    assert "s3" not in document["storage_providers"]  # a MinIO provider stays under minio
    assert parse(document, check_files=False) == config


def test_a_reference_replaced_in_code_is_written_as_it_is_now() -> None:
    config = parse(function({"secretsmanager": "lab", "key": "a", "version_stage": "OLD"},
                            {"ssm": "/s"}), check_files=False)
    lab = config.storage_providers["minio.lab"]
    changed = dataclasses.replace(config, storage_providers={"minio.lab": dataclasses.replace(
        lab, access_key=SecretRef("secretsmanager", "lab", key="a"))})
    document = yaml.safe_load(to_yaml(changed))
    written = document["storage_providers"]["minio"]["lab"]
    assert written["access_key"] == {"secretsmanager": "lab", "key": "a"}  # no stale stage
    assert parse(document, check_files=False) == changed


def test_fdl_top_level_providers_with_references_reach_every_function() -> None:
    configs = from_fdl("""
functions:
  aws:
  - lambda: {name: one, container: {image: busybox}, input: [{path: b/in}],
             output: [{storage_provider: s3.lab, path: b/out}]}
  - lambda: {name: two, container: {image: busybox}, input: [{path: c/in}]}
storage_providers:
  s3:
    lab:
      access_key: {secretsmanager: lab, key: access_key}
      secret_key: {secretsmanager: lab, key: secret_key}
""")
    assert {c.storage_providers["lab"].secret_key for c in configs} == {
        SecretRef("secretsmanager", "lab", key="secret_key")}


# --------------------------------------------------------------------------- deploy's note

def test_deploy_names_plain_keys_in_one_line_and_says_nothing_of_references() -> None:
    plain = parse(function("AKID", "SECRET-VALUE"), check_files=False)
    note = plain_keys_note(plain, "fn")
    assert note is not None and "\n" not in note
    assert note.startswith("fn: storage_providers.minio.lab.access_key, "
                           "storage_providers.minio.lab.secret_key are plain text")
    assert "{secretsmanager: NAME, key: secret_key}" in note
    assert "AKID" not in note and "SECRET-VALUE" not in note
    half = parse(function({"ssm": "/a"}, "SECRET-VALUE"), check_files=False)
    assert (plain_keys_note(half) or "").startswith(
        "storage_providers.minio.lab.secret_key is plain text")
    referenced = parse(function({"ssm": "/a"}, {"ssm": "/s"}), check_files=False)
    assert plain_keys_note(referenced, "fn") is None


# --------------------------------------------------------------------------- reading

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSecrets:
    """Secrets Manager and SSM in memory: what each read call asked for."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.parameters: dict[str, str] = {}
        self.calls: list[tuple[str, Optional[str], dict[str, Any]]] = []
        self.region: Optional[str] = None

    def client_for(self, service: str, region: Optional[str]) -> "FakeSecrets":
        self.region = region
        return self

    def get_secret_value(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("secretsmanager", self.region, params))
        if params["SecretId"] not in self.secrets:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": "Secrets Manager can't find the "
                                                    "specified secret."}}, "GetSecretValue")
        return {"SecretString": self.secrets[params["SecretId"]]}

    def get_parameter(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("ssm", self.region, params))
        return {"Parameter": {"Value": self.parameters[params["Name"]]}}


@pytest.fixture
def store() -> FakeSecrets:
    fake = FakeSecrets()
    fake.secrets["lab"] = json.dumps({"access_key": "AK-1", "secret_key": "SK-1"})
    fake.parameters["/lab/secret"] = "SK-SSM"
    return fake


def test_both_keys_of_one_secret_are_one_call_and_a_warm_read_calls_nothing(
        store: FakeSecrets) -> None:
    clock = FakeClock()
    resolver = SecretResolver(store.client_for, clock=clock)
    provider = provider_of(function({"secretsmanager": "lab", "key": "access_key"},
                                    {"secretsmanager": "lab", "key": "secret_key"}))
    assert resolver.credentials(provider, "p") == ("AK-1", "SK-1")
    clock.now += DEFAULT_TTL_S - 1
    assert resolver.credentials(provider, "p") == ("AK-1", "SK-1")
    assert store.calls == [("secretsmanager", None, {"SecretId": "lab"})]


def test_a_rotated_secret_is_read_again_once_the_cache_time_has_passed(
        store: FakeSecrets) -> None:
    clock = FakeClock()
    resolver = SecretResolver(store.client_for, clock=clock)
    ref = SecretRef("secretsmanager", "lab", key="secret_key")
    assert resolver.resolve(ref, "p") == "SK-1"
    store.secrets["lab"] = json.dumps({"access_key": "AK-1", "secret_key": "SK-2"})
    clock.now += DEFAULT_TTL_S - 1
    assert resolver.resolve(ref, "p") == "SK-1"
    clock.now += 1
    assert resolver.resolve(ref, "p") == "SK-2"
    assert len(store.calls) == 2
    assert DEFAULT_TTL_S == 300


def test_parameters_are_decrypted_and_arns_are_read_in_their_region(store: FakeSecrets) -> None:
    resolver = SecretResolver(store.client_for)
    store.parameters[PARAMETER_ARN] = "SK-ARN"
    store.secrets[SECRET_ARN] = json.dumps({"k": "V"})
    assert resolver.resolve(SecretRef("ssm", "/lab/secret"), "p") == "SK-SSM"
    assert resolver.resolve(SecretRef("ssm", PARAMETER_ARN), "p") == "SK-ARN"
    assert resolver.resolve(SecretRef("secretsmanager", SECRET_ARN, key="k",
                                      version_stage="AWSCURRENT"), "p") == "V"
    assert store.calls == [
        ("ssm", None, {"Name": "/lab/secret", "WithDecryption": True}),
        ("ssm", "eu-west-1", {"Name": PARAMETER_ARN, "WithDecryption": True}),
        ("secretsmanager", "eu-west-1", {"SecretId": SECRET_ARN, "VersionStage": "AWSCURRENT"})]


@pytest.mark.parametrize("ref, message", [
    (SecretRef("secretsmanager", "gone", key="secret_key"),
     "storage_providers.s3.lab.secret_key: cannot read Secrets Manager secret 'gone' key "
     "'secret_key': An error occurred (ResourceNotFoundException) when calling the "
     "GetSecretValue operation: Secrets Manager can't find the specified secret."),
    (SecretRef("secretsmanager", "lab", key="password"),
     "storage_providers.s3.lab.secret_key: Secrets Manager secret 'lab' key 'password' has "
     "no key 'password' (it has: access_key, secret_key)"),
    (SecretRef("ssm", "/lab/secret", key="secret_key"),
     "storage_providers.s3.lab.secret_key: SSM parameter '/lab/secret' key 'secret_key' is "
     "not a JSON object, so it has no key 'secret_key'"),
])
def test_an_unreadable_reference_is_one_line_naming_it_and_never_the_value(
        store: FakeSecrets, ref: SecretRef, message: str) -> None:
    resolver = SecretResolver(store.client_for)
    with pytest.raises(ConfigError) as info:
        resolver.resolve(ref, "storage_providers.s3.lab.secret_key")
    assert str(info.value) == message
    for value in ("AK-1", "SK-1", "SK-SSM"):
        assert value not in str(info.value)


# --------------------------------------------------------------------------- the provider client

def factory(store: FakeSecrets, clock: FakeClock) -> ClientFactory:
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                                    region_name="eu-west-1")
    return ClientFactory(session=session, endpoint_url="http://127.0.0.1:9",
                         secrets=SecretResolver(store.client_for, clock=clock))


def keys_of(client: Any) -> tuple[str, str]:
    credentials = client._get_credentials()
    return credentials.access_key, credentials.secret_key


def test_the_provider_client_is_made_with_the_keys_read_and_anew_after_a_rotation(
        store: FakeSecrets) -> None:
    clock = FakeClock()
    root = factory(store, clock)
    providers = parse(function({"secretsmanager": "lab", "key": "access_key"},
                               {"ssm": "/lab/secret"}), check_files=False).storage_providers
    first = root.with_providers(providers).s3("minio.lab")
    assert keys_of(first) == ("AK-1", "SK-SSM")
    assert root.with_providers(providers).s3("minio.lab") is first  # a warm invocation
    assert len(store.calls) == 2
    store.parameters["/lab/secret"] = "SK-ROTATED"
    clock.now += DEFAULT_TTL_S
    rotated = root.with_providers(providers).s3("minio.lab")
    assert rotated is not first and keys_of(rotated) == ("AK-1", "SK-ROTATED")
    assert root.s3() is root.with_providers(providers).s3()  # the default client untouched


def test_a_provider_whose_reference_cannot_be_read_gets_no_client(store: FakeSecrets) -> None:
    providers = parse(function({"secretsmanager": "gone", "key": "a"}, {"ssm": "/lab/secret"},
                               kind="s3"), check_files=False).storage_providers
    with pytest.raises(ConfigError, match=r"^storage_providers\.s3\.lab\.access_key: cannot "
                                          r"read Secrets Manager secret 'gone' key 'a': "):
        factory(store, FakeClock()).with_providers(providers).s3("s3.lab")

