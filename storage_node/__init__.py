"""Tidings storage node: one replica's durable state in RocksDB, served over gRPC.

Modules: keys (every key byte) · model (stored shapes) · codec (value formats) ·
mime (raw mail to fields) · batch (Txn over a WriteBatch) · engine (the data model's
rules, LWW, the replica merge rule) · commit (group commit) · blobs (object store) ·
ranges (token ranges as key bounds) · replication (digests, entries, item batches,
apply, drop) · hints (hint store and replay) · peers (channels to other nodes) ·
ring_map (the versioned ring map) · gc (tombstone and hint collection) · hlc (version
to ms) · settings (env tunables) · tasks (periodic background work) · service (gRPC
servicer) · server (process
entry) · errors.
"""
