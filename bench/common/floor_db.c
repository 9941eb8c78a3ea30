#include "floor_db.h"

#include <string.h>

bool sw_bench_floor_open(sw_bench_floor *f, const char *dir, char **rerr)
{
    memset(f, 0, sizeof *f);
    f->o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(f->o, 1);
    rocksdb_options_set_write_buffer_size(f->o, (size_t)4 << 20);
    rocksdb_options_set_max_write_buffer_number(f->o, 2);
    rocksdb_options_set_db_write_buffer_size(f->o, (size_t)12 << 20);
    rocksdb_options_set_max_total_wal_size(f->o, (size_t)16 << 20);
    rocksdb_options_set_max_background_jobs(f->o, 2);
    rocksdb_options_set_compression(f->o, rocksdb_lz4_compression);
    rocksdb_options_set_max_open_files(f->o, 256);
    f->cache = rocksdb_cache_create_lru((size_t)16 << 20);
    f->t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(f->t, f->cache);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(f->t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(f->t, 1);
    rocksdb_block_based_options_set_index_type(
        f->t, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(f->t, 1);
    rocksdb_block_based_options_set_metadata_block_size(f->t, 4096);
    rocksdb_block_based_options_set_filter_policy(f->t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(f->o, f->t);
    *rerr = NULL;
    f->db = rocksdb_open(f->o, dir, rerr);
    if (*rerr != NULL) {
        sw_bench_floor_close(f);
        return false;
    }
    return true;
}

void sw_bench_floor_close(sw_bench_floor *f)
{
    if (f->db != NULL) {
        rocksdb_close(f->db);
    }
    if (f->o != NULL) {
        rocksdb_options_destroy(f->o);
    }
    if (f->t != NULL) {
        rocksdb_block_based_options_destroy(f->t);
    }
    if (f->cache != NULL) {
        rocksdb_cache_destroy(f->cache);
    }
    memset(f, 0, sizeof *f);
}
