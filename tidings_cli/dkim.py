"""`tidings domain dkim DOMAIN`: the DKIM TXT records a hosted domain must publish, in
zone-file form (strings of at most 255 characters, RFC 1035 3.3.14)."""
from __future__ import annotations

import argparse

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc

TXT_STRING_LIMIT = 255


def txt_strings(value: str, limit: int = TXT_STRING_LIMIT) -> list[str]:
    """`value` cut into TXT strings: the tags before "p=" in one, the key in pieces of `limit`."""
    head, sep, key = value.partition("p=")
    parts = [head, sep + key] if sep and head else [value]
    return [part[i:i + limit] for part in parts for i in range(0, len(part), limit)]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def zone_record(name: str, value: str) -> str:
    """One TXT record to paste into a zone file: `NAME. IN TXT ( "..." "..." )`."""
    strings = txt_strings(value)
    indent = "\n" + " " * (len(name) + len(". IN TXT ( "))
    return f"{name.rstrip('.')}. IN TXT ( {indent.join(_quoted(s) for s in strings)} )"


def cmd_domain_dkim(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.router) as channel:
        answer = mail_pb2_grpc.AdminStub(channel).DkimRecords(mail_pb2.AddDomainRequest(domain=args.domain),
                                                              timeout=60)
    print(f"; DKIM keys of {answer.domain}: publish these TXT records")
    for record in answer.records:
        print(zone_record(record.name, record.value))
    return 0
