"""What a synced write costs the other threads of a storage node: one thread writes 2 KB
batches with the WAL synced, as the group committer does, while the main thread (as the
node's event loop) sleeps 0.2 ms at a time and records how late it wakes.

Baseline in the same run: rocksdict's own synced write (`WriteOptions.sync`), which holds
the GIL through the fsync. Ours: `RdictStore.write` (an unsynced write, then
`flush_wal(sync=True)`, which lets the GIL go). Both write at the disk's sync rate; the
figure is the main thread's wake lag, p50 and p99.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from storage_node.rdict_store import RdictStore

NAP = 0.0002


def stalls(write: Callable[[int], None], seconds: float) -> tuple[float, list[float]]:
    """(writes a second, the main thread's wake lags in seconds, sorted) while `write` runs in a thread."""
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        while not stop.is_set():
            write(writes)
            writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    lags = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        before = time.perf_counter()
        time.sleep(NAP)
        lags.append(time.perf_counter() - before - NAP)
    stop.set()
    thread.join()
    return writes / seconds, sorted(lags)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    value = b"v" * 2048
    with tempfile.TemporaryDirectory(dir=".") as raw_dir, tempfile.TemporaryDirectory(dir=".") as ours_dir:
        raw = Rdict(raw_dir, Options(raw_mode=True))
        synced = WriteOptions()
        synced.sync = True

        def raw_write(i: int) -> None:
            batch = WriteBatch(raw_mode=True)
            batch.put(b"k%d" % i, value)
            raw.write(batch, synced)

        store = RdictStore(ours_dir, ["messages"], sync=True)

        def our_write(i: int) -> None:
            batch = WriteBatch(raw_mode=True)
            batch.put(b"k%d" % i, value, store.handle("messages"))
            store.write(batch)

        print(f"synced 2 KB writes in a thread; the main thread naps {NAP * 1000:.1f} ms at a time ({args.seconds:.0f} s each)")
        print(f"{'write':<34} {'writes/s':>9} {'lag p50 ms':>11} {'lag p99 ms':>11}")
        results = {}
        for name, write in (("rocksdict sync=True (baseline)", raw_write), ("RdictStore: write + flush_wal", our_write)):
            rate, lags = stalls(write, args.seconds)
            results[name] = lags[len(lags) // 2]
            print(f"{name:<34} {rate:>9.0f} {lags[len(lags) // 2] * 1000:>11.3f} {lags[int(len(lags) * 0.99)] * 1000:>11.3f}")
        raw.close()
        store.close()
        baseline, ours = results.values()
        print(f"main thread's p50 wake lag: ours / baseline = {ours / baseline:.3f}x")


if __name__ == "__main__":
    main()
