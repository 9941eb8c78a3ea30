/*
 * The emulator's AMQP server: one proactor, one event thread, serving the
 * Event Hubs surface ($cbs, $management, senders, receivers) over the store.
 *
 * Ownership: the server borrows the store and the auth configuration (they
 * must outlive it). Thread safety: emu_server_run runs the event loop on the
 * calling thread; emu_server_submit may be called from any thread (it is how
 * the control channel injects faults).
 */
#ifndef SW_EMULATOR_SERVER_H
#define SW_EMULATOR_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "scanwatch/error.h"
#include "store.h"

typedef struct emu_options {
    const char *host;     /* listen host, loopback only ("127.0.0.1") */
    int port;             /* 0 = ephemeral */
    const char *tls_cert; /* PEM files; both or neither */
    const char *tls_key;
    bool no_auth;        /* CBS accepts any token; links need none */
    int control_port;    /* -1 = no control port, 0 = ephemeral */
    bool control_stdin;  /* read control commands on stdin */
    int idle_timeout_ms; /* advertised idle-time-out is half of this (proton) */
} emu_options;

typedef struct emu_server emu_server;

emu_server *emu_server_new(emu_store *store, emu_auth *auth, const emu_options *opt, sw_err *err);
void emu_server_free(emu_server *s);

/*
 * Listens, prints "ready port=N[ control-port=M]" on stdout, and serves until
 * a "quit" command (SIGTERM and SIGINT send one). Then closes every
 * connection. Returns false (with err) if listening fails.
 */
bool emu_server_run(emu_server *s, sw_err *err);

/*
 * Runs one control command line (see docs/emulator.md) on the event thread
 * and waits for it; writes the one-line reply ("ok ..." or "error ...") into
 * reply. Safe from any thread other than the event thread.
 */
void emu_server_submit(emu_server *s, const char *line, char *reply, size_t reply_size);

/*
 * Starts the control threads configured in the options and a thread that
 * turns SIGTERM / SIGINT into "quit" (blocks those signals in the caller,
 * which must not have started other threads). Afterwards the server struct
 * lives until the process exits (emu_server_free frees the rest).
 */
bool emu_control_start(emu_server *s, const emu_options *opt, int *control_port, sw_err *err);

#endif
