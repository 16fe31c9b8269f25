"""The `tidings` command: admin calls (user, domain), and the local cluster launcher."""
