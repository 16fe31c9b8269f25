"""moto's S3 as a real HTTP endpoint on a loopback port chosen by the kernel, for the tests of
blobs in S3 (storage_node/blobs.py): the nodes talk to it over HTTP as they would to AWS."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

ACCESS_KEY = "tidings-test-access"
SECRET_KEY = "tidings-test-secret-not-echoed"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    client: Any   # a boto3 S3 client with the test credentials

    def bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "blobs/") -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {obj["Key"] for page in pages for obj in page.get("Contents", ())}

    def env(self, bucket: str) -> dict[str, str]:
        """The variables that point a storage node (or `tidings blobs gc`) at `bucket`."""
        return {"TIDINGS_S3_BUCKET": bucket, "TIDINGS_S3_ENDPOINT": self.url, "TIDINGS_S3_REGION": REGION,
                "TIDINGS_S3_ACCESS_KEY": ACCESS_KEY, "TIDINGS_S3_SECRET_KEY": SECRET_KEY}


@contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY)
        yield S3Endpoint(url, client)
    finally:
        server.stop()
