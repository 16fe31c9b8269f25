"""POP3 (RFC 1939 with RFC 2449 CAPA, UIDL, TOP, SASL PLAIN per RFC 5034) over the Inbox,
beside IMAP in the same edge process: the maildrop (maildrop.py), the session (session.py)."""
