"""`tidings dkim list|rotate|activate|retire`: a hosted domain's DKIM keys and their rotation
(new keys published first, signing switched when told, old keys dropped once not signing)."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc
from tidings_cli.dkim import zone_record

RPC_TIMEOUT = 60.0
ALGORITHMS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}


def key_table(answer: mail_pb2.DkimRecordList) -> list[str]:
    """One line a key: selector, algorithm, whether it signs, and its record's name."""
    width = max((len(r.selector) for r in answer.records), default=8)
    return [f"  {r.selector:<{width}}  {r.algorithm:<14}  {'active' if r.active else 'published':<9}  {r.name}"
            for r in answer.records]


def _call(args: argparse.Namespace, method: Callable[[mail_pb2_grpc.AdminStub], Any]) -> mail_pb2.DkimRecordList:
    with grpc.insecure_channel(args.router) as channel:
        answer: mail_pb2.DkimRecordList = method(mail_pb2_grpc.AdminStub(channel))
    return answer


def cmd_list(args: argparse.Namespace) -> int:
    answer = _call(args, lambda admin: admin.DkimRecords(mail_pb2.AddDomainRequest(domain=args.domain),
                                                         timeout=RPC_TIMEOUT))
    print(f"DKIM keys of {answer.domain} (active: signs its mail; published: in DNS, signs nothing)")
    for line in key_table(answer):
        print(line)
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    algorithms = [ALGORITHMS[args.algorithm]] if args.algorithm else []
    request = mail_pb2.DkimRotation(domain=args.domain, algorithms=algorithms, selector=args.selector or "")
    answer = _call(args, lambda admin: admin.RotateDkim(request, timeout=RPC_TIMEOUT))
    selectors = " ".join(r.selector for r in answer.records)
    print(f"; new DKIM keys of {answer.domain}, not signing yet: publish these TXT records")
    for record in answer.records:
        print(zone_record(record.name, record.value))
    print(f"; once they resolve (and the zone's TTL has passed): tidings dkim activate {answer.domain} {selectors}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    request = mail_pb2.DkimSelectors(domain=args.domain, selectors=args.selectors)
    answer = _call(args, lambda admin: admin.ActivateDkim(request, timeout=RPC_TIMEOUT))
    print(f"{answer.domain} signs with {' '.join(args.selectors)} from now on (delivery workers within 5 minutes)")
    for line in key_table(answer):
        print(line)
    old = " ".join(r.selector for r in answer.records if not r.active)
    if old:
        print(f"keep the published keys in DNS until mail signed with them is read (days), then: "
              f"tidings dkim retire {answer.domain} {old}")
    return 0


def cmd_retire(args: argparse.Namespace) -> int:
    request = mail_pb2.DkimSelectors(domain=args.domain, selectors=args.selectors)
    answer = _call(args, lambda admin: admin.RetireDkim(request, timeout=RPC_TIMEOUT))
    names = ", ".join(f"{s}._domainkey.{answer.domain}" for s in args.selectors)
    print(f"retired {' '.join(args.selectors)}: remove the TXT record of {names} from DNS")
    for line in key_table(answer):
        print(line)
    return 0


def add_parsers(sub: Any) -> None:
    """`tidings dkim ...` under the command's subparsers."""
    dkim = sub.add_parser("dkim", help="a hosted domain's DKIM keys and their rotation").add_subparsers(
        dest="action", required=True)
    listing = dkim.add_parser("list", help="the domain's keys: selector, algorithm, active or only published")
    listing.add_argument("domain")
    listing.set_defaults(func=cmd_list)
    rotate = dkim.add_parser("rotate", help="new keys under new selectors, published but not signing: "
                                            "prints the TXT records to publish")
    rotate.add_argument("domain")
    rotate.add_argument("--algorithm", choices=sorted(ALGORITHMS),
                        help="only this algorithm's key (default: a new RSA and a new Ed25519 key)")
    rotate.add_argument("--selector", help="the new key's selector (with --algorithm; default rsaYEARx / edYEARx, "
                                           "x the next letter never used)")
    rotate.set_defaults(func=cmd_rotate)
    activate = dkim.add_parser("activate", help="sign with these selectors' keys instead of their algorithm's "
                                                "active key (which stays published)")
    activate.add_argument("domain")
    activate.add_argument("selectors", nargs="+", metavar="SELECTOR")
    activate.set_defaults(func=cmd_activate)
    retire = dkim.add_parser("retire", help="drop keys that no longer sign (their records can leave DNS)")
    retire.add_argument("domain")
    retire.add_argument("selectors", nargs="+", metavar="SELECTOR")
    retire.set_defaults(func=cmd_retire)
