#include "lineio.h"

#include <string.h>

emu_line_status emu_read_line(FILE *fp, char *buf, size_t size, size_t *len)
{
    /* fgets finds the newline with stdio's buffered scan, much faster than getc. */
    if (size < 2 || fgets(buf, (int)(size > (size_t)0x7fffffff ? 0x7fffffff : size), fp) == NULL) {
        return EMU_LINE_EOF;
    }
    size_t n = strlen(buf);
    bool too_long = false;
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    } else if (!feof(fp)) {
        /* No newline in size-1 bytes: skip the rest of this line. */
        too_long = true;
        char skip[4096];
        while (fgets(skip, sizeof skip, fp) != NULL) {
            size_t k = strlen(skip);
            if (k > 0 && skip[k - 1] == '\n') {
                break;
            }
        }
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    *len = n;
    return too_long ? EMU_LINE_TOO_LONG : EMU_LINE_OK;
}
