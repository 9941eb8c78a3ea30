/*
 * sw-state-poke: test helper that edits a scanwatch state directory the way a
 * newer scanwatch would, so that tests can check how this build reacts.
 *
 *   sw-state-poke schema DIR VERSION   set meta/schema_version (and add a
 *                                      column family this build does not know)
 *
 * Test-only: it is built in tests/ and never installed.
 */
#include <rocksdb/c.h>
#include <stdio.h>
#include <string.h>

#define N_CF 10

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[1], "schema") != 0) {
        fprintf(stderr, "usage: sw-state-poke schema DIR VERSION\n");
        return 2;
    }
    const char *dir = argv[2];
    const char *version = argv[3];
    const char *names[N_CF] = {"default",     "meta",   "images",      "sets", "windows",
                               "checkpoints", "outbox", "dead_letter", "tags", "notify"};
    rocksdb_options_t *o = rocksdb_options_create();
    const rocksdb_options_t *cfo[N_CF];
    rocksdb_column_family_handle_t *h[N_CF];
    for (int i = 0; i < N_CF; i++) {
        cfo[i] = o;
    }
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, N_CF, names, cfo, h, &rerr);
    if (rerr != NULL) {
        fprintf(stderr, "sw-state-poke: %s: %s\n", dir, rerr);
        rocksdb_free(rerr);
        rocksdb_options_destroy(o);
        return 1;
    }
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_put_cf(db, wo, h[1], "schema_version", strlen("schema_version"), version,
                   strlen(version), &rerr);
    rocksdb_column_family_handle_t *extra = NULL;
    if (rerr == NULL) {
        extra = rocksdb_create_column_family(db, o, "from_the_future", &rerr);
    }
    int rc = 0;
    if (rerr != NULL) {
        fprintf(stderr, "sw-state-poke: %s: %s\n", dir, rerr);
        rocksdb_free(rerr);
        rc = 1;
    }
    if (extra != NULL) {
        rocksdb_column_family_handle_destroy(extra);
    }
    for (int i = 0; i < N_CF; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    return rc;
}
