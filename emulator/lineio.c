#include "lineio.h"

emu_line_status emu_read_line(FILE *fp, char *buf, size_t size, size_t *len)
{
    size_t n = 0;
    bool too_long = false;
    int c = getc(fp);
    if (c == EOF) {
        return EMU_LINE_EOF;
    }
    while (c != EOF && c != '\n') {
        if (n + 1 < size) {
            buf[n++] = (char)c;
        } else {
            too_long = true;
        }
        c = getc(fp);
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    *len = n;
    return too_long ? EMU_LINE_TOO_LONG : EMU_LINE_OK;
}
