/*
 * floor_db: the RocksDB database of the benchmarks' write floor — one column
 * family with the same tuning as state/store.c (4 MiB memtables under a 12 MiB
 * budget, 16 MiB block cache, partitioned index and filters, LZ4), so that a
 * floor measures raw Puts under the options the engine itself runs with.
 *
 * Ownership: sw_bench_floor_open fills *f, which sw_bench_floor_close frees.
 * Single-threaded use only (benchmark drivers).
 */
#ifndef SW_BENCH_FLOOR_DB_H
#define SW_BENCH_FLOOR_DB_H

#include <rocksdb/c.h>
#include <stdbool.h>

typedef struct {
    rocksdb_t *db;
    rocksdb_options_t *o;
    rocksdb_block_based_table_options_t *t;
    rocksdb_cache_t *cache;
} sw_bench_floor;

/* Opens (creating) the floor database in dir; on failure returns false with
 * *rerr set (free with rocksdb_free) and nothing left to close. */
bool sw_bench_floor_open(sw_bench_floor *f, const char *dir, char **rerr);
void sw_bench_floor_close(sw_bench_floor *f);

#endif
