/*
 * The fault-injection / control channel: one command per line, on stdin
 * and/or a loopback TCP port, each answered by one line ("ok ..." or
 * "error ..."). Commands run on the event thread (emu_server_submit); the
 * reader threads only move lines. Syntax: docs/emulator.md.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <proton/condition.h>
#include <proton/transport.h>

#include "lineio.h"
#include "scanwatch/log.h"
#include "server_int.h"

/* Longest command line: a publish of the largest event plus the command. */
#define EMU_LINE_MAX (EMU_MAX_MESSAGE_SIZE + 1024)
#define EMU_REPLY_MAX 1024

typedef struct {
    const char *p;
    size_t n;
} word;

/* Next space-separated word of *line; advances *line. */
static word next_word(const char **line)
{
    const char *p = *line;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    const char *start = p;
    while (*p != '\0' && *p != ' ' && *p != '\t') {
        p++;
    }
    *line = p;
    return (word){start, (size_t)(p - start)};
}

static const char *rest_of(const char *line)
{
    while (*line == ' ' || *line == '\t') {
        line++;
    }
    return line;
}

static bool word_is(word w, const char *s)
{
    return w.n == strlen(s) && memcmp(w.p, s, w.n) == 0;
}

static bool parse_count(word w, long max, long *out)
{
    char buf[24];
    if (w.n == 0 || w.n >= sizeof buf) {
        return false;
    }
    memcpy(buf, w.p, w.n);
    buf[w.n] = '\0';
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* "[hub/]rest": the hub (first hub when omitted) and the part after the slash. */
static emu_hub *target_hub(emu_server *s, word w, word *rest)
{
    const char *slash = memchr(w.p, '/', w.n);
    if (slash == NULL) {
        *rest = w;
        return emu_store_hub_at(s->store, 0);
    }
    *rest = (word){slash + 1, w.n - (size_t)(slash + 1 - w.p)};
    return emu_store_hub(s->store, w.p, (size_t)(slash - w.p));
}

static void cmd_publish(emu_server *s, const char *args, char *reply, size_t size)
{
    word t = next_word(&args);
    const char *body = rest_of(args);
    word rest;
    emu_hub *h = t.n > 0 ? target_hub(s, t, &rest) : NULL;
    if (h == NULL) {
        snprintf(reply, size, "error publish: usage: publish <[hub/]partition|-|key=K> <body>");
        return;
    }
    const char *key = NULL;
    size_t key_len = 0;
    emu_partition *p;
    if (word_is(rest, "-")) {
        p = emu_hub_route(h, NULL, 0);
    } else if (rest.n > 4 && memcmp(rest.p, "key=", 4) == 0) {
        key = rest.p + 4;
        key_len = rest.n - 4;
        p = emu_hub_route(h, key, key_len);
    } else {
        p = emu_hub_partition(h, rest.p, rest.n);
    }
    if (p == NULL) {
        snprintf(reply, size, "error publish: no partition '%.*s' in hub %s", (int)rest.n, rest.p,
                 h->name);
        return;
    }
    sw_err err;
    sw_err_clear(&err);
    if (!emu_partition_append_body(s->store, p, body, strlen(body), key, key_len, emu_now_ms(),
                                   &err)) {
        snprintf(reply, size, "error publish: %s", err.msg);
        return;
    }
    emu_notify_partition(p);
    snprintf(reply, size, "ok partition=%s seq=%lld offset=%lld", p->id,
             (long long)(p->next_seq - 1), (long long)p->last_offset);
}

static int for_entity_links(emu_server *s, emu_hub *h, emu_partition *p, const char *cond,
                            const char *desc)
{
    int n = 0;
    for (emu_conn *ec = s->conns; ec != NULL; ec = ec->next) {
        for (pn_link_t *l = pn_link_head(ec->conn, 0); l != NULL; l = pn_link_next(l, 0)) {
            emu_link *el = pn_link_get_context(l);
            if (el == NULL || el->closing ||
                (el->kind != EMU_LINK_SENDER && el->kind != EMU_LINK_RECEIVER)) {
                continue;
            }
            if ((h != NULL && el->hub != h) || (p != NULL && el->part != p)) {
                continue;
            }
            emu_link_request_close(el, cond, desc);
            n++;
        }
    }
    return n;
}

static void cmd_detach(emu_server *s, const char *args, char *reply, size_t size)
{
    word t = next_word(&args);
    word c = next_word(&args);
    const char *desc = rest_of(args);
    if (t.n == 0 || c.n == 0 || c.n >= EMU_COND_MAX) {
        snprintf(reply, size,
                 "error detach: usage: detach <*|[hub/]partition> <condition> "
                 "[description]");
        return;
    }
    char cond[EMU_COND_MAX];
    memcpy(cond, c.p, c.n);
    cond[c.n] = '\0';
    if (desc[0] == '\0') {
        desc = "detached by scanwatch-emulator fault injection";
    }
    emu_hub *h = NULL;
    emu_partition *p = NULL;
    if (!word_is(t, "*")) {
        word rest;
        h = target_hub(s, t, &rest);
        p = h != NULL ? emu_hub_partition(h, rest.p, rest.n) : NULL;
        if (p == NULL) {
            snprintf(reply, size, "error detach: no partition '%.*s'", (int)t.n, t.p);
            return;
        }
    }
    snprintf(reply, size, "ok links=%d", for_entity_links(s, h, p, cond, desc));
}

static void cmd_refuse(emu_server *s, const char *args, char *reply, size_t size)
{
    word n = next_word(&args);
    word c = next_word(&args);
    const char *desc = rest_of(args);
    long count;
    if (!parse_count(n, 1000000, &count) || c.n >= EMU_COND_MAX) {
        snprintf(reply, size,
                 "error refuse-attach: usage: refuse-attach <N> [condition "
                 "[description]]");
        return;
    }
    s->refuse_attach = (int)count;
    if (c.n == 0) {
        snprintf(s->refuse_cond, sizeof s->refuse_cond, "com.microsoft:server-busy");
    } else {
        snprintf(s->refuse_cond, sizeof s->refuse_cond, "%.*s", (int)c.n, c.p);
    }
    snprintf(s->refuse_desc, sizeof s->refuse_desc, "%s",
             desc[0] != '\0' ? desc : "attach refused by scanwatch-emulator fault injection");
    snprintf(reply, size, "ok refuse-attach=%ld", count);
}

static void cmd_close_connections(emu_server *s, const char *args, bool abrupt, char *reply,
                                  size_t size)
{
    word c = next_word(&args);
    const char *desc = rest_of(args);
    int n = 0;
    for (emu_conn *ec = s->conns; ec != NULL; ec = ec->next) {
        if (abrupt) {
            ec->drop_requested = true;
        } else {
            ec->close_requested = true;
            if (c.n > 0) {
                snprintf(ec->close_cond, sizeof ec->close_cond, "%.*s", (int)c.n, c.p);
            } else {
                snprintf(ec->close_cond, sizeof ec->close_cond, "amqp:connection:forced");
            }
            snprintf(ec->close_desc, sizeof ec->close_desc, "%s",
                     desc[0] != '\0' ? desc : "closed by scanwatch-emulator fault injection");
        }
        pn_connection_wake(ec->conn);
        n++;
    }
    snprintf(reply, size, "ok connections=%d", n);
}

static void cmd_info(emu_server *s, const char *args, char *reply, size_t size)
{
    word t = next_word(&args);
    emu_hub *h = t.n > 0 ? emu_store_hub(s->store, t.p, t.n) : emu_store_hub_at(s->store, 0);
    if (h == NULL) {
        snprintf(reply, size, "error info: no hub '%.*s'", (int)t.n, t.p);
        return;
    }
    size_t at = (size_t)snprintf(reply, size, "ok hub=%s", h->name);
    for (int i = 0; i < h->partition_count && at < size; i++) {
        const emu_partition *p = &h->partitions[i];
        int receivers = 0;
        for (const emu_link *r = p->receivers; r != NULL; r = r->pnext) {
            receivers++;
        }
        int w = snprintf(reply + at, size - at, " p%d=%lld..%lld/r%d", i, (long long)p->begin_seq,
                         (long long)(p->next_seq - 1), receivers);
        if (w < 0) {
            break;
        }
        at += (size_t)w;
    }
    if (at < size) {
        snprintf(reply + at, size - at, " queued_max=%d", s->queued_max);
    }
}

void emu_execute_command(emu_server *s, const char *line, char *reply, size_t size)
{
    const char *args = line;
    word cmd = next_word(&args);
    if (word_is(cmd, "ping")) {
        snprintf(reply, size, "ok pong");
    } else if (word_is(cmd, "publish")) {
        cmd_publish(s, args, reply, size);
    } else if (word_is(cmd, "detach")) {
        cmd_detach(s, args, reply, size);
    } else if (word_is(cmd, "refuse-attach")) {
        cmd_refuse(s, args, reply, size);
    } else if (word_is(cmd, "delay-ms")) {
        long ms;
        if (!parse_count(next_word(&args), 600000, &ms)) {
            snprintf(reply, size, "error delay-ms: usage: delay-ms <0..600000>");
            return;
        }
        s->delay_ms = ms;
        pn_proactor_set_timeout(s->proactor, ms > 0 ? 10 : 1000);
        snprintf(reply, size, "ok delay-ms=%ld", ms);
    } else if (word_is(cmd, "drop-connections")) {
        cmd_close_connections(s, args, true, reply, size);
    } else if (word_is(cmd, "close-connections")) {
        cmd_close_connections(s, args, false, reply, size);
    } else if (word_is(cmd, "info")) {
        cmd_info(s, args, reply, size);
    } else if (word_is(cmd, "quit")) {
        s->stop = true;
        snprintf(reply, size, "ok bye");
    } else if (cmd.n == 0) {
        snprintf(reply, size, "error empty command");
    } else {
        snprintf(reply, size,
                 "error unknown command '%.*s' (ping publish detach refuse-attach "
                 "delay-ms drop-connections close-connections info quit)",
                 (int)(cmd.n > 40 ? 40 : cmd.n), cmd.p);
    }
    SW_LOG(SW_LOG_INFO, "control command", SW_LF_STR("command", cmd.n < 40 ? line : "(long)"),
           SW_LF_STR("reply", reply));
}

/* ---- reader threads ---- */

typedef struct {
    emu_server *s;
    int listen_fd;
} control_ctx;

/* Reads lines from in, answers on out; returns when in ends. */
static void serve_lines(emu_server *s, FILE *in, FILE *out)
{
    char *line = malloc(EMU_LINE_MAX + 1);
    char reply[EMU_REPLY_MAX];
    if (line == NULL) {
        return;
    }
    for (;;) {
        size_t n;
        emu_line_status st = emu_read_line(in, line, EMU_LINE_MAX + 1, &n);
        if (st == EMU_LINE_EOF) {
            break;
        }
        if (st == EMU_LINE_TOO_LONG) {
            snprintf(reply, sizeof reply, "error line longer than %d bytes", EMU_LINE_MAX);
        } else if (n == 0) {
            continue;
        } else {
            emu_server_submit(s, line, reply, sizeof reply);
        }
        fprintf(out, "%s\n", reply);
        fflush(out);
        if (strcmp(reply, "ok bye") == 0) {
            break;
        }
    }
    free(line);
}

static void *stdin_thread(void *arg)
{
    emu_server *s = arg;
    serve_lines(s, stdin, stdout);
    return NULL;
}

static void *tcp_thread(void *arg)
{
    control_ctx *c = arg;
    for (;;) {
        int fd = accept(c->listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        int fd2 = dup(fd);
        FILE *in = fdopen(fd, "r");
        FILE *out = fd2 >= 0 ? fdopen(fd2, "w") : NULL;
        if (in != NULL && out != NULL) {
            serve_lines(c->s, in, out);
        }
        if (in != NULL) {
            fclose(in);
        } else {
            close(fd);
        }
        if (out != NULL) {
            fclose(out);
        } else if (fd2 >= 0) {
            close(fd2);
        }
    }
    free(c);
    return NULL;
}

/* Listens on host:port (IPv4 or IPv6, as the AMQP listener); returns the fd or -1. */
static int control_listen(const char *host, int port, int *bound_port, sw_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || res == NULL) {
        sw_err_set(err, SW_E_CONFIG, "control port: cannot resolve '%s': %s", host,
                   gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        sw_err_set(err, SW_E_IO, "control port %s:%d: %s", host, port, strerror(e));
        return -1;
    }
    freeaddrinfo(res);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Keeps the server reachable for the control threads until the process exits. */
static emu_server *control_server;

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    if (sigwait(set, &sig) == 0) {
        char reply[64];
        emu_server_submit(control_server, "quit", reply, sizeof reply);
    }
    return NULL;
}

bool emu_control_start(emu_server *s, const emu_options *opt, int *control_port, sw_err *err)
{
    pthread_t th;
    *control_port = -1;
    control_server = s;
    s->threads_started = true;
    /* SIGTERM / SIGINT become a "quit" command: the emulator exits cleanly. */
    static sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) != 0 ||
        pthread_create(&th, NULL, signal_thread, &stop_signals) != 0) {
        return sw_err_set(err, SW_E_INTERNAL, "cannot start the signal thread");
    }
    pthread_detach(th);
    if (opt->control_port >= 0) {
        int port = -1;
        int fd = control_listen(opt->host, opt->control_port, &port, err);
        if (fd < 0) {
            return false;
        }
        control_ctx *c = malloc(sizeof *c);
        if (c == NULL) {
            close(fd);
            return sw_err_set(err, SW_E_NOMEM, "control");
        }
        c->s = s;
        c->listen_fd = fd;
        if (pthread_create(&th, NULL, tcp_thread, c) != 0) {
            free(c);
            close(fd);
            return sw_err_set(err, SW_E_INTERNAL, "cannot start the control thread");
        }
        pthread_detach(th);
        *control_port = port;
        s->control_port = port;
    }
    if (opt->control_stdin) {
        if (pthread_create(&th, NULL, stdin_thread, s) != 0) {
            return sw_err_set(err, SW_E_INTERNAL, "cannot start the stdin control thread");
        }
        pthread_detach(th);
    }
    return true;
}
