"""Tidings storage node: one replica's durable state in RocksDB, served over gRPC.

Modules: keys (every key byte) · model (stored shapes) · codec (value formats) ·
batch (Txn over a WriteBatch) · engine (the data model's rules, LWW, the replica merge
rule) · commit (group commit) · blobs (object store) · ranges (token ranges as key
bounds) · replication (digests, entries, item batches, apply, drop) · hints (hint store
and replay) · ring_map (the versioned ring map) · gc (tombstone and hint collection) ·
indexing and index_maintenance (the embedded search index) · settings · service (gRPC
servicer) · server (process entry) · errors. Shared pieces (MIME parsing, channels to
peers, the HLC, periodic tasks, gRPC serving) come from tidings_runtime.
"""
