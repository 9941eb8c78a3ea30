/*
 * The decoder's JSON parser: builds the same cJSON tree cJSON_ParseWithLengthOpts
 * would, in memory from the caller's allocator (the decoder's per-body arena),
 * at several times cJSON's speed on Defender bodies (one pass, no literal
 * probing with strncmp, no locale lookups per number, no malloc per node).
 *
 * It accepts a strict subset of what cJSON accepts and gives up (NULL) on
 * anything else — malformed input, but also legal rarities it leaves to cJSON:
 * \u0000, raw control characters, a byte-order mark, exponents and long
 * numbers, nesting deeper than SW_JSON_FAST_MAX_DEPTH. The caller then parses
 * with cJSON, which decides and says where an error is. So for every input the
 * result is cJSON's tree or cJSON's error (tests/unit/test_decode.c and the
 * fuzz target `json` check that the trees are identical).
 *
 * Ownership: nodes and strings come from alloc(ctx, n) and are never freed
 * one by one (drop them with the allocator's memory; never cJSON_Delete them).
 * Thread safety: reentrant.
 */
#ifndef SCANWATCH_JSON_H
#define SCANWATCH_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define SW_JSON_FAST_MAX_DEPTH 256

typedef void *(*sw_json_alloc_fn)(void *ctx, size_t n);

/*
 * Parses one JSON value at the start of p[0..len) (leading whitespace
 * skipped). On success returns the tree and sets *end to the offset just
 * after the value (what follows is the caller's to check); NULL when the fast
 * path does not take the input or alloc fails.
 */
cJSON *sw_json_parse_fast(const char *p, size_t len, size_t *end, sw_json_alloc_fn alloc,
                          void *ctx);

#endif
