/*
 * Test harness: runs scanwatch-emulator on loopback ephemeral ports and talks
 * to its control channel (docs/emulator.md). One emulator per test; stopped
 * (SIGTERM, then SIGKILL) by emu_stop.
 */
#ifndef SW_TEST_EMU_HARNESS_H
#define SW_TEST_EMU_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct emu {
    pid_t pid;
    int port;
    int control_port;
    int ctl_fd;
    FILE *ctl_in;
} emu;

/* Starts the emulator with extra args (NULL-terminated list). */
bool emu_start(emu *e, const char *const *extra_args);
void emu_stop(emu *e);
/* Sends one control command; copies the reply line (without newline). Returns reply starts with
 * "ok". */
bool emu_cmd(emu *e, char *reply, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Path of the emulator binary (from SW_BUILD_DIR). */
const char *emu_binary(void);

#endif
