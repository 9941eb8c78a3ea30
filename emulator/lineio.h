/*
 * Bounded line reading for the emulator's text inputs (--load files and the
 * control channel): a line longer than the buffer is consumed and reported,
 * never accumulated in memory.
 *
 * Ownership: the caller owns fp and buf. Thread safety: one caller per FILE.
 */
#ifndef SW_EMULATOR_LINEIO_H
#define SW_EMULATOR_LINEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    EMU_LINE_OK,       /* buf holds the line without its "\n" / "\r\n", NUL-terminated */
    EMU_LINE_TOO_LONG, /* the line did not fit in size-1 bytes; it was skipped */
    EMU_LINE_EOF,      /* nothing more to read (or a read error: check ferror) */
} emu_line_status;

emu_line_status emu_read_line(FILE *fp, char *buf, size_t size, size_t *len);

#endif
