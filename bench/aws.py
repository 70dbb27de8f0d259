"""The runner's own view of the moto server: buckets, inputs, output checks, Batch queues."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional

import boto3
from boto3.s3.transfer import TransferConfig

__all__ = ["FAKE_ENV", "Fixture"]

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

_TRANSFER = TransferConfig(multipart_chunksize=16 * 1024 * 1024, max_concurrency=4)


class Fixture:
    """Clients on the moto server, a bench bucket, and helpers to seed and check runs."""

    def __init__(self, endpoint: str) -> None:
        kwargs: dict[str, Any] = dict(endpoint_url=endpoint, region_name="us-east-1",
                                      aws_access_key_id="bench",
                                      aws_secret_access_key="bench")
        self.s3 = boto3.client("s3", **kwargs)
        self.batch = boto3.client("batch", **kwargs)
        self.dynamodb = boto3.client("dynamodb", **kwargs)
        self._ec2 = boto3.client("ec2", **kwargs)
        self._iam = boto3.client("iam", **kwargs)
        self._network: Optional[dict[str, str]] = None
        self.bucket = f"bench-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=self.bucket)

    @staticmethod
    def fresh_prefix(label: str) -> str:
        """A key prefix no other run uses."""
        return f"{label}-{uuid.uuid4().hex[:12]}"

    def put(self, key: str, body: bytes) -> tuple[int, str]:
        """Upload a small input; its size and ETag."""
        answer = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return len(body), str(answer["ETag"])

    def put_file(self, key: str, path: Path) -> tuple[int, str]:
        """Upload a big input from a file; its size and ETag."""
        self.s3.upload_file(str(path), self.bucket, key, Config=_TRANSFER)
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        return int(head["ContentLength"]), str(head["ETag"])

    def copy(self, source: str, key: str) -> tuple[int, str]:
        """A fresh key holding a copy of ``source`` (server-side: faster than an upload)."""
        self.s3.copy_object(Bucket=self.bucket, Key=key,
                            CopySource={"Bucket": self.bucket, "Key": source})
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        return int(head["ContentLength"]), str(head["ETag"])

    def outputs(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix``: key -> size."""
        found: dict[str, int] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                        Prefix=prefix):
            for item in page.get("Contents", []):
                found[str(item["Key"])] = int(item["Size"])
        return found

    def body(self, key: str) -> bytes:
        """A small object's content."""
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def delete_prefix(self, prefix: str) -> None:
        """Remove a run's objects (the big ones would fill the server's memory)."""
        keys = list(self.outputs(prefix))
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start:start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})

    def batch_network(self) -> dict[str, str]:
        """A subnet, a security group and the IAM roles a compute environment needs (made
        once: the roles have fixed names)."""
        if self._network is None:
            self._network = self._make_network()
        return dict(self._network)

    def _make_network(self) -> dict[str, str]:
        vpc = self._ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self._ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = self._ec2.create_security_group(GroupName="bench", Description="bench",
                                                VpcId=vpc)["GroupId"]
        trust = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"},
             "Action": "sts:AssumeRole"}]})
        role = self._iam.create_role(RoleName="bench-batch-service",
                                     AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        self._iam.create_role(RoleName="bench-ecs-instance", AssumeRolePolicyDocument=trust)
        profile = self._iam.create_instance_profile(
            InstanceProfileName="bench-ecs-instance")["InstanceProfile"]["Arn"]
        self._iam.add_role_to_instance_profile(InstanceProfileName="bench-ecs-instance",
                                               RoleName="bench-ecs-instance")
        return {"subnet": subnet, "security_group": group, "service_role": role,
                "instance_profile": profile}

    def batch_queue(self, network: Mapping[str, str], name: str) -> None:
        """A compute environment, job queue and job definition all called ``name``."""
        env = self.batch.create_compute_environment(
            computeEnvironmentName=name, type="MANAGED", state="ENABLED",
            computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 2, "desiredvCpus": 0,
                              "instanceTypes": ["m3.medium"], "subnets": [network["subnet"]],
                              "securityGroupIds": [network["security_group"]],
                              "instanceRole": network["instance_profile"]},
            serviceRole=network["service_role"])
        self.batch.create_job_queue(
            jobQueueName=name, state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1,
                                      "computeEnvironment": env["computeEnvironmentArn"]}])
        self.batch.register_job_definition(
            jobDefinitionName=name, type="container",
            containerProperties={"image": "busybox", "command": ["supervisor-batch"],
                                 "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                          {"type": "MEMORY", "value": "1024"}]})

    def history_table(self, name: str) -> None:
        """A DynamoDB table as ``history.table`` wants it: string partition key ``id``."""
        self.dynamodb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])

    def job_exists(self, job_id: str) -> bool:
        """Whether Batch knows the job (SubmitJob really happened)."""
        return bool(self.batch.describe_jobs(jobs=[job_id])["jobs"])
