"""What several parts of Tidings share and none owns: gRPC serving, periodic tasks,
settings, ids, the hybrid logical clock, cursors, addresses.

Every other package may import this one; it imports none of them, only the client
distribution's wire contract (the generated stubs and the entry-id format).
"""
