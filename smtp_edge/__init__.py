"""smtp_edge: SMTP in (MX role, port 2525) and submission (port 2587).

aiosmtpd owns the protocol (session, envelope, dispatch); this package only
answers its hooks and talks to the router's ``tidings.v1.Mail`` service.

Modules, one concept each:

- ``config``     typed settings from the command line and ``TIDINGS_*`` env.
- ``replies``    the catalogue: every reply line this edge sends.
- ``errors``     typed errors of this edge (temporary failure, bad credentials).
- ``model``      plain values: recipient status, authenticated account.
- ``addresses``  envelope address validation (``user@domain``).
- ``mail_api``   the router client: three calls, and the one place where gRPC
                 status codes become our errors.
- ``pipeline/``  checks that run on a received message before delivery
                 (size, header sanity, sender ownership; spam/virus later),
                 and the ``Received:`` trace header.
- ``handler``    aiosmtpd hooks: recipient checks, sender policy, AUTH,
                 durable delivery before ``250``.
- ``protocol``   aiosmtpd's ``SMTP`` with its built-in reply lines mapped
                 through the catalogue, and per-reply metrics.
- ``metrics``    Prometheus counters and histograms.
- ``server``     starts and stops both listeners and the router channel.
- ``__main__``   ``python -m smtp_edge``.

Outbound delivery (MX lookup, retries, DSN, DKIM) will live in ``outbound/``.
"""
