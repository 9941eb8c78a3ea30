/* Helpers for the state tests: temporary directories. */
#ifndef SW_STATE_TEST_UTIL_H
#define SW_STATE_TEST_UTIL_H

#include <stddef.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *sw_test_tmpdir(const char *tag);
/* rm -rf path (only paths made by sw_test_tmpdir). */
void sw_test_rmdir(const char *path);

#endif
