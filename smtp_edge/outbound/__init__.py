"""Outgoing mail: the delivery worker, run as its own process (`python -m smtp_edge.outbound`).

It runs apart from the SMTP edge so that deliveries (long SMTP conversations with slow far
ends, DNS lookups, retries) never compete with the edge's inbound sessions for its event
loop, and so the number of workers scales apart from the number of edges: each worker
leases its share of the router's outgoing queue (`tidings.v1.Queue`).

Modules, one concept each (after Stalwart's crates/smtp/src/outbound and queue):

| module | owns |
|---|---|
| `mx` | MX, then A/AAAA (RFC 5321 section 5, null MX RFC 7505), resolvers from `TIDINGS_DNS` |
| `delivery` | one SMTP transaction per destination domain (aiosmtplib): TLS, extensions, timeouts, host limits |
| `reply` | an attempt's answer per recipient, its verdict and RFC 3463 status |
| `retry` | the retry schedule, the queue lifetime, a recipient's next state |
| `dsn` | the RFC 3464 bounce and its deterministic entry id |
| `dkim` | signing with the From domain's keys (rsa-sha256 and ed25519-sha256) |
| `queue_api` | the router's Queue service and Mail.Deliver; gRPC errors mapped once |
| `worker` | the lease, deliver, bounce, report loop |
| `settings`, `metrics`, `__main__` | the process |
"""
