"""imap_edge: IMAP4rev1 / IMAP4rev2 for real mail clients (issue 20).

So far only the protocol layer exists; it knows no socket, no session state and no
mailbox. Modules, one concept each:

- ``protocol/``  the client-command grammar, bytes to typed ``Command`` values,
                 incrementally (see ``protocol/__init__``).
- ``responses``  server responses from Python values to bytes: status lines with
                 response codes, untagged data, FETCH items, ENVELOPE, BODYSTRUCTURE.

To come (issue 20): ``session`` (the state machine: states, IDLE, STARTTLS,
COMPRESS, which command is allowed when), ``backend`` (the mailbox, talking to the
router through the client only), ``server`` (listeners on 2143 and 2993).
"""
