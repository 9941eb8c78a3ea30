#define _XOPEN_SOURCE 700
#include "state_test_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *sw_test_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/sw-%s-XXXXXX", base != NULL ? base : "/tmp", tag);
    if (mkdtemp(tmpl) == NULL) {
        return NULL;
    }
    return strdup(tmpl);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

void sw_test_rmdir(const char *path)
{
    if (path != NULL && strstr(path, "/sw-") != NULL) {
        nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
}
