#!/usr/bin/env python3
"""Times pyarrow's Parquet writer on the exact batches the Rust benches write.

    cargo bench --bench writers -- --ipc /tmp/batches.arrow
    python3 scripts/pyarrow_baseline.py /tmp/batches.arrow [--repeat 3] [--bss] [--fsync]

Same codec (zstd level 1), no dictionary, one thread, one row group per 131,072 rows (the
sink's default). Prints min, median and max rows/s and the file size. With `--fsync` the file is
synced before the clock stops (as the pipeline syncs every part it seals; `benches/writers.rs`
passes it).
"""
import argparse
import os
import statistics
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ipc")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bss", action="store_true", help="BYTE_STREAM_SPLIT for the floats")
    parser.add_argument("--fsync", action="store_true", help="sync the file before the clock stops")
    args = parser.parse_args()
    with pa.memory_map(args.ipc) as source:
        table = pa.ipc.open_file(source).read_all()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    rates = []
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pyarrow.parquet")
        floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
        for _ in range(args.repeat):
            start = time.perf_counter()
            pq.write_table(
                table,
                path,
                compression="zstd",
                compression_level=1,
                use_dictionary=False,
                row_group_size=131072,
                use_byte_stream_split=floats if args.bss else False,
            )
            if args.fsync:
                fd = os.open(path, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            rates.append(table.num_rows / (time.perf_counter() - start))
            size = os.path.getsize(path)
    rates.sort()
    print(f"pyarrow {pa.__version__} rows={table.num_rows} codec=zstd-1 dictionary=off "
          f"bss={'floats' if args.bss else 'off'} fsync={'on' if args.fsync else 'off'}")
    print(f"pyarrow/write_table  min {rates[0]:.0f}  median {statistics.median(rates):.0f}  "
          f"max {rates[-1]:.0f} rows/s  bytes {size}")


if __name__ == "__main__":
    main()
