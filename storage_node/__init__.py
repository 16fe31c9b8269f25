"""Tidings storage node: one replica's durable state in RocksDB, served over gRPC.

Modules: keys (every key byte) · model (stored shapes) · codec (value formats) ·
mime (raw mail to fields) · batch (Txn over a WriteBatch) · engine (the data model's
rules, LWW) · commit (group commit) · blobs (object store) · service (gRPC servicer) ·
grpc_runtime (health, reflection, metrics, signals) · server (process entry) · errors.
"""
