"""imap_edge: IMAP4rev1 / IMAP4rev2 for real mail clients (issue 20).

Modules, one concept each (docs/architecture.md, "IMAP server"):

- ``protocol/``  the client-command grammar, bytes to typed ``Command`` values,
                 incrementally (see ``protocol/__init__``).
- ``responses``  server responses from Python values to bytes: status lines with
                 response codes, untagged data, FETCH items, ENVELOPE, BODYSTRUCTURE.
- ``settings``   the edge's settings (flags > ``TIDINGS_*`` > defaults).
- ``server``     the listener: one ``Session`` task per connection.
- ``session``    the protocol state machine: states, which command when, answers, IDLE.
- ``selected``   the selected mailbox: UIDs and sequence numbers, session flags, the feed folded in.
- ``searching``  SEARCH keys over the selected mailbox, text keys through our search.
- ``message``    MIME on the raw bytes: sections, ENVELOPE, BODYSTRUCTURE.
- ``names``      folders as IMAP names, SPECIAL-USE, LIST patterns.
- ``backend``    the mailbox through the router's client only, as plain values.
- ``metrics``    Prometheus counters.

To come (issue 20): TLS (STARTTLS on 2143, implicit on 2993), COMPRESS, QRESYNC, THREAD, POP3.
"""
