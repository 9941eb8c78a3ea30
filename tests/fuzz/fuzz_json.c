/*
 * Differential target for the decoder's fast JSON parser (consumer/json.c):
 * whenever it takes an input, cJSON must take it too, end at the same byte
 * and build the same tree (types, keys, strings, numbers bit for bit, links).
 * Where the fast parser gives up, the decoder asks cJSON, so any input gets
 * cJSON's answer. Aborts on the first difference.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct bump {
    unsigned char *mem;
    size_t used, cap;
} bump;

static void *bump_alloc(void *ctx, size_t n)
{
    bump *b = ctx;
    n = (n + 15) / 16 * 16;
    if (b->cap - b->used < n) {
        return NULL;
    }
    void *p = b->mem + b->used;
    b->used += n;
    return p;
}

static void differ(const char *what)
{
    fprintf(stderr, "fast JSON parser differs from cJSON: %s\n", what);
    abort();
}

static void same_tree(const cJSON *a, const cJSON *b)
{
    if ((a->type & 0xFF) != (b->type & 0xFF)) {
        differ("type");
    }
    if ((a->string == NULL) != (b->string == NULL) ||
        (a->string != NULL && strcmp(a->string, b->string) != 0)) {
        differ("key");
    }
    if ((a->valuestring == NULL) != (b->valuestring == NULL) ||
        (a->valuestring != NULL && strcmp(a->valuestring, b->valuestring) != 0)) {
        differ("string value");
    }
    if (memcmp(&a->valuedouble, &b->valuedouble, sizeof a->valuedouble) != 0 ||
        a->valueint != b->valueint) {
        differ("number value");
    }
    const cJSON *ca = a->child, *cb = b->child, *la = NULL, *lb = NULL;
    for (; ca != NULL && cb != NULL; la = ca, lb = cb, ca = ca->next, cb = cb->next) {
        same_tree(ca, cb);
        if ((ca->prev == NULL) != (cb->prev == NULL)) {
            differ("prev link");
        }
    }
    if (ca != NULL || cb != NULL) {
        differ("number of children");
    }
    if (a->child != NULL && (a->child->prev != la || b->child->prev != lb)) {
        differ("first child's prev (the last child)");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char mem[1 << 22];
    bump b = {mem, 0, sizeof mem};
    size_t fast_end = 0;
    cJSON *fast = sw_json_parse_fast((const char *)data, size, &fast_end, bump_alloc, &b);
    const char *end = NULL;
    cJSON *ref = cJSON_ParseWithLengthOpts((const char *)data, size, &end, 0);
    if (fast != NULL) {
        if (ref == NULL) {
            differ("taken by the fast parser, refused by cJSON");
        }
        if ((size_t)(end - (const char *)data) != fast_end) {
            differ("end offset");
        }
        same_tree(fast, ref);
    }
    cJSON_Delete(ref);
    return 0;
}
