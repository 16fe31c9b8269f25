"""DKIM key rotation in the directory entry: new keys published but not signing, activation
in place of the algorithm's active key, retirement of keys that do not sign; every refusal
leaves the entry as it was."""
from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from router.dkim_keys import ED25519_SHA256, RSA_SHA256, DkimKeys
from router.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.unit.router.test_dkim_keys import FakeDirectory

YEAR = time.gmtime().tm_year


def state(keys: DkimKeys, domain: str = "example.test") -> dict[str, bool]:
    return {k.selector: k.active for k in asyncio.run(keys.records(domain))}


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory({"example.test"})


def test_rotate_adds_inactive_keys_under_the_next_selectors_and_activate_switches(directory: FakeDirectory) -> None:
    keys = DkimKeys(directory)
    new = asyncio.run(keys.rotate("Example.TEST"))
    assert [(k.selector, k.algorithm, k.active) for k in new] == [
        (f"rsa{YEAR}b", RSA_SHA256, False), (f"ed{YEAR}b", ED25519_SHA256, False)]
    assert all(k.private_pem == b"" for k in new)
    assert [k.selector for k in asyncio.run(keys.signing_keys("example.test"))] == [f"rsa{YEAR}a", f"ed{YEAR}a"]
    asyncio.run(keys.activate("example.test", [f"rsa{YEAR}b", f"ed{YEAR}b"]))
    assert state(keys) == {f"rsa{YEAR}a": False, f"ed{YEAR}a": False, f"rsa{YEAR}b": True, f"ed{YEAR}b": True}
    assert [k.selector for k in asyncio.run(keys.signing_keys("example.test"))] == [f"rsa{YEAR}b", f"ed{YEAR}b"]


def test_one_algorithm_under_a_named_selector_and_a_retired_selector_is_not_reused(
        directory: FakeDirectory) -> None:
    keys = DkimKeys(directory)
    [new] = asyncio.run(keys.rotate("example.test", [ED25519_SHA256], "Brisbane"))
    assert (new.selector, new.record_name) == ("brisbane", "brisbane._domainkey.example.test")
    asyncio.run(keys.activate("example.test", ["brisbane"]))
    assert state(keys) == {f"rsa{YEAR}a": True, f"ed{YEAR}a": False, "brisbane": True}
    asyncio.run(keys.retire("example.test", [f"ed{YEAR}a"]))
    assert state(keys) == {f"rsa{YEAR}a": True, "brisbane": True}
    # ed{YEAR}a was published once (resolvers may still cache it): the next default is ...b
    assert [k.selector for k in asyncio.run(keys.rotate("example.test", [ED25519_SHA256]))] == [f"ed{YEAR}b"]
    with pytest.raises(AlreadyExists, match="not used again"):
        asyncio.run(keys.rotate("example.test", [RSA_SHA256], f"ed{YEAR}a"))


@pytest.mark.parametrize("change, error, message", [
    (lambda k: k.retire("example.test", [f"rsa{YEAR}a"]), FailedPrecondition, "signs example.test's mail"),
    (lambda k: k.retire("example.test", ["nosuch", f"ed{YEAR}b"]), NotFound, "no DKIM key with selector nosuch"),
    (lambda k: k.activate("example.test", ["nosuch"]), NotFound, "no DKIM key with selector nosuch"),
    (lambda k: k.activate("example.test", [f"rsa{YEAR}b", f"rsa{YEAR}a"]), InvalidArgument, "one selector per"),
    (lambda k: k.activate("example.test", []), InvalidArgument, "at least one selector"),
    (lambda k: k.activate("elsewhere.test", [f"rsa{YEAR}a"]), NotFound, "elsewhere.test is not hosted"),
    (lambda k: k.rotate("elsewhere.test"), NotFound, "elsewhere.test is not hosted"),
    (lambda k: k.rotate("example.test", None, "s1"), InvalidArgument, "say which algorithm"),
    (lambda k: k.rotate("example.test", ["rsa-sha1"]), InvalidArgument, "unknown DKIM algorithm rsa-sha1"),
    (lambda k: k.rotate("example.test", [RSA_SHA256], "bad_selector"), InvalidArgument, "not a DKIM selector"),
    (lambda k: k.rotate("example.test", [RSA_SHA256], f"rsa{YEAR}b"), AlreadyExists, "has or had"),
], ids=["retire-active", "retire-unknown", "activate-unknown", "activate-two-rsa", "activate-none",
        "activate-unhosted", "rotate-unhosted", "rotate-selector-for-two", "rotate-bad-algorithm",
        "rotate-bad-selector", "rotate-taken"])
def test_a_refused_change_changes_nothing(directory: FakeDirectory, change: object, error: type[Exception],
                                          message: str) -> None:
    keys = DkimKeys(directory)
    asyncio.run(keys.rotate("example.test"))
    before = dict(directory.entries)
    with pytest.raises(error, match=re.escape(message)):
        asyncio.run(change(keys))  # type: ignore[operator]
    assert directory.entries == before


def test_keys_stored_before_rotation_existed_all_sign(directory: FakeDirectory) -> None:
    keys = DkimKeys(directory)
    asyncio.run(keys.create("example.test"))
    entry = json.loads(directory.entries["dkim:example.test"])
    for key in entry["keys"]:
        del key["active"]
    directory.entries["dkim:example.test"] = json.dumps(entry).encode()
    assert len(asyncio.run(keys.signing_keys("example.test"))) == 2
    asyncio.run(keys.rotate("example.test", [RSA_SHA256]))
    assert len(asyncio.run(keys.signing_keys("example.test"))) == 2
