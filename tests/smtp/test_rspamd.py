"""The rspamd adapter against Debian's real rspamd (3.4), run by this module with its own
config directory (``--var LOCAL_CONFDIR=...`` over /etc/rspamd) on loopback ports: the
normal worker's ``/checkv2``, the controller's ``/learnspam`` and ``/learnham`` (Bayes on
sqlite3, no redis).

A prefilter of the test config (``rspamd.local.lua``) forces the action a message's
Subject asks for (``[rspamd-action:greylist]``), so every action rspamd can answer is
seen through the edge: ``reject`` is 550 5.7.1, ``add header`` and ``rewrite subject``
deliver with the rule RSPAMD_SPAM (filed to Spam by the router), ``soft reject`` and
``greylist`` are 451 4.7.1, ``no action`` delivers without it; rspamd down is 451 4.7.0.
GTUBE goes to rspamd directly (the edge's own GTUBE check refuses it before rspamd).

rspamd compiles its regular expressions with Hyperscan on a first start (about 10 s);
the compiled cache is kept between runs in the system's temporary directory, so later
starts take about 1.5 s.
"""
from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from smtp_edge.pipeline import rspamd
from smtp_edge.pipeline.content import GTUBE
from tests.fake_mail import FakeMail
from tests.smtp.conftest import EdgeFactory

RSPAMD = shutil.which("rspamd")
HS_CACHE = Path(tempfile.gettempdir()) / "tidings-rspamd-hyperscan"
CACHE_GLOBS = ("*.hs", "*.hs.unser", "*.hsmc", "*.hsmc.unser", "*.hsmp", "*.hsmp.unser")

pytestmark = pytest.mark.skipif(RSPAMD is None, reason="rspamd is not installed (make setup installs Debian's rspamd)")

FORCE_ACTION_LUA = r"""
-- Tidings tests: the action a message's Subject asks for, as a prefilter's pre-result.
local wanted_actions = {['reject'] = true, ['add header'] = true, ['rewrite subject'] = true,
                        ['soft reject'] = true, ['greylist'] = true, ['no action'] = true}
rspamd_config:register_symbol({
  name = 'TIDINGS_TEST_ACTION',
  type = 'prefilter',
  callback = function(task)
    local subject = task:get_subject() or ''
    local wanted = subject:match('%[rspamd%-action:([%a ]+)%]')
    if wanted and wanted_actions[wanted] then
      task:set_pre_result(wanted, 'tidings test: ' .. wanted)
    end
  end,
})
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(local: Path, db: Path, log: Path, normal: int, controller: int, proxy: int) -> None:
    override = local / "override.d"
    override.mkdir(parents=True)
    (override / "worker-normal.inc").write_text(f'bind_socket = "127.0.0.1:{normal}";\ncount = 1;\n')
    (override / "worker-controller.inc").write_text(
        f'bind_socket = "127.0.0.1:{controller}";\ncount = 1;\nsecure_ip = "127.0.0.1";\n')
    (override / "worker-proxy.inc").write_text(f'bind_socket = "127.0.0.1:{proxy}";\ncount = 1;\n')
    (override / "logging.inc").write_text(f'type = "file";\nfilename = "{log}";\nlevel = "warning";\n')
    # no network here: DNS to a loopback port where nothing answers fails at once
    (override / "options.inc").write_text('dns {\n  nameserver = ["127.0.0.1:53"];\n  timeout = 0.2s;\n'
                                          '  retransmits = 1;\n}\n')
    (override / "classifier-bayes.conf").write_text(
        'backend = "sqlite3";\nmin_learns = 1;\nlearn_condition = "return function() return true end";\n'
        f'statfile {{\n  symbol = "BAYES_HAM";\n  spam = false;\n  path = "{db}/bayes.ham.sqlite";\n}}\n'
        f'statfile {{\n  symbol = "BAYES_SPAM";\n  spam = true;\n  path = "{db}/bayes.spam.sqlite";\n}}\n')
    (local / "rspamd.local.lua").write_text(FORCE_ACTION_LUA)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ping", timeout=1).text.strip() == "pong"
    except httpx.HTTPError:
        return False


class Rspamd:
    def __init__(self, base: Path) -> None:
        assert RSPAMD is not None
        self.base = base
        self.db, self.run, self.local = base / "db", base / "run", base / "local"
        self.log = base / "rspamd.log"
        normal, controller, proxy = free_port(), free_port(), free_port()
        self.url, self.controller = f"http://127.0.0.1:{normal}", f"http://127.0.0.1:{controller}"
        for directory in (self.db, self.run):
            directory.mkdir(parents=True)
        write_config(self.local, self.db, self.log, normal, controller, proxy)
        for pattern in CACHE_GLOBS:
            for cached in HS_CACHE.glob(pattern):
                shutil.copy2(cached, self.db / cached.name)
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name  # -i: root allowed
        self.argv = [RSPAMD, "-f", "-i", "-u", user, "-g", group, "-c", "/etc/rspamd/rspamd.conf",
                     f"--var=DBDIR={self.db}", f"--var=RUNDIR={self.run}", f"--var=LOGDIR={base}",
                     f"--var=LOCAL_CONFDIR={self.local}"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> float:
        started = time.monotonic()
        self.process = subprocess.Popen(self.argv, stdout=open(self.base / "stdout.log", "ab"),  # noqa: SIM115
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        while not (answers(self.url) and answers(self.controller)):
            if self.process.poll() is not None:
                raise RuntimeError(f"rspamd exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"rspamd not answering after {timeout}s:\n{self.tail()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        HS_CACHE.mkdir(exist_ok=True)
        for pattern in CACHE_GLOBS:
            for compiled in self.db.glob(pattern):
                shutil.copy2(compiled, HS_CACHE / compiled.name)

    def tail(self) -> str:
        text = "".join(p.read_text(errors="replace") for p in (self.base / "stdout.log", self.log) if p.exists())
        return "\n".join(text.splitlines()[-30:])


@pytest.fixture(scope="module")
def rspamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    server = Rspamd(tmp_path_factory.mktemp("rspamd"))
    try:
        print(f"rspamd ready in {server.start():.1f}s")
        yield server
    finally:
        server.stop()


def message(subject: str, body: str = "Hello Alice, the minutes of today's meeting are below.") -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "carol@example.org", "alice@example.test", subject
    mail["Message-ID"] = f"<{time.monotonic_ns()}@example.org>"
    mail["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    mail.set_content(body)
    return mail.as_bytes()


def send(port: int, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("carol@example.org")
        assert client.rcpt("alice@example.test")[0] == 250
        return client.data(raw)


def test_gtube_through_rspamd_is_reject(rspamd_server: Rspamd) -> None:
    async def check() -> rspamd.RspamdVerdict:
        client = rspamd.RspamdClient(rspamd_server.url)
        try:
            return await client.check(message("offer", f"buy\r\n{GTUBE.decode()}\r\n"),
                                      [("IP", "127.0.0.1"), ("From", "carol@example.org"),
                                       ("Rcpt", "alice@example.test"), ("Helo", "client.example.org")])
        finally:
            await client.close()

    verdict = asyncio.run(check())
    assert verdict.action == "reject" and "GTUBE" in verdict.symbols
    assert rspamd.reply_for(verdict) is not None and rspamd.reply_for(verdict).startswith("550 5.7.1")  # type: ignore[union-attr]


@pytest.mark.parametrize(("action", "code", "enhanced"), [
    ("reject", 550, b"5.7.1"),
    ("soft reject", 451, b"4.7.1"),
    ("greylist", 451, b"4.7.1"),
])
def test_refusing_actions_map_onto_replies(rspamd_server: Rspamd, start_edge: EdgeFactory, fake_router: FakeMail,
                                           action: str, code: int, enhanced: bytes) -> None:
    edge = start_edge(rspamd=rspamd_server.url)
    got, text = send(edge.mx_port, message(f"[rspamd-action:{action}] hello"))
    assert (got, text.split(b" ")[0]) == (code, enhanced), text
    assert fake_router.delivered == []


@pytest.mark.parametrize("action", ["add header", "rewrite subject"])
def test_spam_actions_deliver_with_the_rspamd_rule(rspamd_server: Rspamd, start_edge: EdgeFactory,
                                                   fake_router: FakeMail, action: str) -> None:
    edge = start_edge(rspamd=rspamd_server.url)
    got, text = send(edge.mx_port, message(f"[rspamd-action:{action}] hello"))
    assert got == 250, text
    [delivered] = fake_router.delivered
    [rule] = [r for r in delivered.screening.rules if r.name == rspamd.SPAM_RULE]
    assert 5.0 <= rule.score < 10.0 and action in rule.detail


def test_no_action_delivers_without_a_rule(rspamd_server: Rspamd, start_edge: EdgeFactory,
                                           fake_router: FakeMail) -> None:
    edge = start_edge(rspamd=rspamd_server.url)
    got, text = send(edge.mx_port, message("[rspamd-action:no action] minutes"))
    assert got == 250, text
    [delivered] = fake_router.delivered
    assert rspamd.SPAM_RULE not in [r.name for r in delivered.screening.rules]


def test_rspamd_down_is_451_4_7_0(start_edge: EdgeFactory, fake_router: FakeMail) -> None:
    edge = start_edge(rspamd=f"http://127.0.0.1:{free_port()}")
    got, text = send(edge.mx_port, message("minutes"))
    assert (got, text.split(b" ")[0]) == (451, b"4.7.0"), text
    assert fake_router.delivered == []


def test_learn_spam_and_ham(rspamd_server: Rspamd) -> None:
    spam = message("cheap watches", "Cheap watches, best prices, click here now to buy cheap watches today.")
    ham = message("minutes", "The minutes of the meeting: budget approved, next meeting on Monday at ten.")
    controller = rspamd_server.controller

    async def train() -> None:
        client = rspamd.RspamdClient(rspamd_server.url, controller=controller)
        try:
            await client.learn(spam, spam=True)
            await client.learn(ham, spam=False)
            await client.learn(spam, spam=True)    # already learnt: 208, not an error
        finally:
            await client.close()
        await rspamd.learn(ham, False, url=None)  # no rspamd configured, none in the environment: a no-op

    asyncio.run(train())
    # rspamd keeps what it learnt: the same message again is refused as already learned
    again = httpx.post(f"{controller}/learnspam", content=spam, timeout=10)
    assert "already learned as spam" in again.text, again.text
    again = httpx.post(f"{controller}/learnham", content=ham, timeout=10)
    assert "already learned as ham" in again.text, again.text
