/*
 * sw-compact-json FILE...: prints each file's JSON document on one line
 * (cJSON_PrintUnformatted), turning pretty-printed samples into NDJSON message
 * bodies. Exits 1 naming the first file that cannot be read or parsed.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) {
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t len = 0;
        char *text = slurp(argv[i], &len);
        if (text == NULL) {
            fprintf(stderr, "sw-compact-json: cannot read %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        cJSON *j = cJSON_ParseWithLength(text, len);
        free(text);
        char *line = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (line == NULL) {
            fprintf(stderr, "sw-compact-json: %s is not JSON\n", argv[i]);
            return 1;
        }
        puts(line);
        free(line);
    }
    return 0;
}
