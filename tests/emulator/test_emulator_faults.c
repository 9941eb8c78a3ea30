/*
 * Integration test of scanwatch-emulator's fault injection and error
 * conditions, driven the way C tests of other modules drive it: spawn the
 * binary, read "ready port=N control-port=M" from its stdout, send control
 * commands on the control port, and watch a bare proton client.
 *   test_emulator_faults PATH-TO-scanwatch-emulator
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/proactor.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the emulator process ---- */

typedef struct {
    pid_t pid;
    int port;
    int control_port;
    FILE *cmd_in;  /* the emulator's stdin, when started with stdin control */
    FILE *cmd_out; /* its stdout after the ready line */
} emulator;

static bool emulator_start2(emulator *e, const char *path, const char *const *extra,
                            bool stdin_control)
{
    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0) {
        return false;
    }
    const char *argv[32] = {path, "--port", "0", "--control-port", "0", "--hub", "f:2:cg1"};
    int n = 7;
    if (!stdin_control) {
        argv[n++] = "--no-control-stdin";
    }
    for (int i = 0; extra[i] != NULL && n < 30; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    e->pid = fork();
    if (e->pid == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        close(out[0]);
        close(out[1]);
        close(in[0]);
        close(in[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    FILE *fp = fdopen(out[0], "r");
    char line[256];
    if (fp == NULL || fgets(line, sizeof line, fp) == NULL) {
        fprintf(stderr, "emulator did not print its ready line\n");
        return false;
    }
    if (stdin_control) {
        e->cmd_out = fp;
        e->cmd_in = fdopen(in[1], "w");
    } else {
        fclose(fp);
        close(in[1]);
    }
    char *p = strstr(line, "port=");
    char *c = strstr(line, "control-port=");
    if (p == NULL || c == NULL) {
        fprintf(stderr, "unexpected ready line: %s", line);
        return false;
    }
    e->port = (int)strtol(p + 5, NULL, 10);
    e->control_port = (int)strtol(c + 13, NULL, 10);
    return true;
}

static bool emulator_start(emulator *e, const char *path, const char *const *extra)
{
    return emulator_start2(e, path, extra, false);
}

static void emulator_stop(emulator *e)
{
    if (e->cmd_in != NULL) {
        fclose(e->cmd_in);
        fclose(e->cmd_out);
        e->cmd_in = e->cmd_out = NULL;
    }
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        int status = 0;
        waitpid(e->pid, &status, 0);
        /* SIGTERM is a clean stop; under ASan a leak would make this non-zero. */
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "emulator exit status 0x%x", status);
        e->pid = 0;
    }
}

/* Sends one control command and returns its reply line (without newline). */
static void control(const emulator *e, const char *cmd, char *reply, size_t size)
{
    reply[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->control_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(reply, size, "error connect: %s", strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (write(fd, line, (size_t)n) != n) {
        snprintf(reply, size, "error write");
    }
    size_t got = 0;
    while (got + 1 < size) {
        ssize_t r = read(fd, reply + got, 1);
        if (r <= 0 || reply[got] == '\n') {
            break;
        }
        got++;
    }
    reply[got] = '\0';
    close(fd);
}

static void control_ok(const emulator *e, const char *cmd)
{
    char reply[512];
    control(e, cmd, reply, sizeof reply);
    CHECK(strncmp(reply, "ok", 2) == 0, "command '%s' -> '%s'", cmd, reply);
}

/* ---- a bare proton client ---- */

typedef struct {
    pn_link_t *link;
    bool opened;
    bool closed;
    char cond[128];
    char desc[256];
    int received;
    int64_t last_seq;
    char last_body[128];
    int64_t last_arrival_ms;
    int status_code;  /* application property status-code of the last message */
    uint64_t outcome; /* sender links: remote outcome of the last delivery */
    char outcome_cond[128];
} rlink;

typedef struct {
    pn_proactor_t *proactor;
    pn_connection_t *conn;
    pn_session_t *session;
    bool transport_closed;
    bool remote_close_frame;
} client;

static void on_delivery(rlink *r, pn_delivery_t *d)
{
    pn_link_t *l = pn_delivery_link(d);
    char buf[4096];
    if (!pn_delivery_readable(d) || pn_delivery_partial(d)) {
        return;
    }
    ssize_t n = pn_link_recv(l, buf, sizeof buf);
    pn_link_advance(l);
    pn_message_t *m = pn_message();
    if (n > 0 && pn_message_decode(m, buf, (size_t)n) == 0) {
        pn_data_t *props = pn_message_properties(m);
        pn_data_rewind(props);
        if (pn_data_next(props) && pn_data_type(props) == PN_MAP) {
            pn_data_enter(props);
            while (pn_data_next(props)) {
                pn_bytes_t k = pn_data_get_string(props);
                pn_data_next(props);
                if (k.size == 11 && memcmp(k.start, "status-code", 11) == 0) {
                    r->status_code = pn_data_get_int(props);
                }
            }
            pn_data_exit(props);
        }
        pn_data_t *a = pn_message_annotations(m);
        pn_data_rewind(a);
        if (pn_data_next(a)) {
            pn_data_enter(a);
            while (pn_data_next(a)) {
                pn_bytes_t k = pn_data_get_symbol(a);
                pn_data_next(a);
                if (k.size == 21 && memcmp(k.start, "x-opt-sequence-number", 21) == 0) {
                    r->last_seq = pn_data_get_long(a);
                }
            }
        }
        pn_data_t *b = pn_message_body(m);
        pn_data_rewind(b);
        if (pn_data_next(b) && pn_data_type(b) == PN_BINARY) {
            pn_bytes_t v = pn_data_get_binary(b);
            snprintf(r->last_body, sizeof r->last_body, "%.*s", (int)v.size, v.start);
        }
    }
    pn_message_free(m);
    r->received++;
    r->last_arrival_ms = mono_ms();
    pn_delivery_update(d, PN_ACCEPTED);
    pn_delivery_settle(d);
    pn_link_flow(l, 1);
}

static void handle(client *c, pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_LINK_REMOTE_OPEN: {
        rlink *r = pn_link_get_context(pn_event_link(e));
        if (r != NULL) {
            r->opened = true;
        }
        break;
    }
    case PN_LINK_REMOTE_CLOSE: {
        pn_link_t *l = pn_event_link(e);
        rlink *r = pn_link_get_context(l);
        if (r != NULL) {
            r->closed = true;
            pn_condition_t *cond = pn_link_remote_condition(l);
            snprintf(r->cond, sizeof r->cond, "%s",
                     pn_condition_get_name(cond) ? pn_condition_get_name(cond) : "");
            snprintf(r->desc, sizeof r->desc, "%s",
                     pn_condition_get_description(cond) ? pn_condition_get_description(cond) : "");
        }
        pn_link_close(l);
        break;
    }
    case PN_DELIVERY: {
        pn_delivery_t *d = pn_event_delivery(e);
        rlink *r = pn_link_get_context(pn_delivery_link(d));
        if (r != NULL && pn_link_is_sender(pn_delivery_link(d))) {
            if (pn_delivery_updated(d) && pn_delivery_remote_state(d) != 0) {
                r->outcome = pn_delivery_remote_state(d);
                pn_condition_t *cond = pn_disposition_condition(pn_delivery_remote(d));
                snprintf(r->outcome_cond, sizeof r->outcome_cond, "%s",
                         pn_condition_get_name(cond) ? pn_condition_get_name(cond) : "");
                pn_delivery_settle(d);
            }
        } else if (r != NULL) {
            on_delivery(r, d);
        }
        break;
    }
    case PN_CONNECTION_REMOTE_CLOSE:
        c->remote_close_frame = true;
        pn_connection_close(pn_event_connection(e));
        break;
    case PN_TRANSPORT_CLOSED:
        c->transport_closed = true;
        break;
    default:
        break;
    }
}

typedef bool (*pred_fn)(const void *arg);

/* Runs the client's events until pred holds or timeout_ms passes. */
static bool run_until(client *c, pred_fn pred, const void *arg, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    pn_connection_wake(c->conn);
    while (!pred(arg)) {
        int64_t left = end - mono_ms();
        if (left <= 0) {
            return false;
        }
        pn_proactor_set_timeout(c->proactor, (pn_millis_t)(left < 50 ? left : 50));
        pn_event_batch_t *b = pn_proactor_wait(c->proactor);
        pn_event_t *e = pn_event_batch_next(b);
        while (e != NULL) {
            handle(c, e);
            e = pn_event_batch_next(b);
        }
        pn_proactor_done(c->proactor, b);
    }
    return true;
}

static bool link_closed(const void *arg)
{
    return ((const rlink *)arg)->closed;
}

static bool link_open(const void *arg)
{
    const rlink *r = arg;
    return r->opened || r->closed;
}

typedef struct {
    const rlink *r;
    int n;
} count_arg;

static bool received_n(const void *arg)
{
    const count_arg *a = arg;
    return a->r->received >= a->n || a->r->closed;
}

static bool transport_closed(const void *arg)
{
    return ((const client *)arg)->transport_closed;
}

static void client_open_sasl(client *c, int port, bool sasl)
{
    memset(c, 0, sizeof *c);
    c->proactor = pn_proactor();
    c->conn = pn_connection();
    pn_connection_set_container(c->conn, "fault-test");
    pn_connection_set_hostname(c->conn, "127.0.0.1");
    pn_transport_t *t = pn_transport();
    if (sasl) {
        pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    }
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pn_connection_open(c->conn);
    c->session = pn_session(c->conn);
    pn_session_open(c->session);
    pn_proactor_connect2(c->proactor, c->conn, t, addr);
}

static void client_open(client *c, int port)
{
    client_open_sasl(c, port, true);
}

static void client_close(client *c)
{
    if (!c->transport_closed) {
        pn_connection_close(c->conn);
        run_until(c, transport_closed, c, 2000);
    }
    pn_proactor_free(c->proactor);
}

/* .NET writes the filter descriptor as a symbol, the JS SDK as a ulong. */
static bool filter_descriptor_symbol;

/* Attaches a receiver; epoch < 0 means none. */
static void attach(client *c, rlink *r, const char *addr, const char *filter, int64_t epoch)
{
    static int seq;
    char name[64];
    snprintf(name, sizeof name, "r%d", seq++);
    memset(r, 0, sizeof *r);
    r->last_seq = -1;
    r->link = pn_receiver(c->session, name);
    pn_terminus_set_address(pn_link_source(r->link), addr);
    if (filter != NULL) {
        pn_data_t *f = pn_terminus_filter(pn_link_source(r->link));
        pn_data_put_map(f);
        pn_data_enter(f);
        pn_data_put_symbol(f, pn_bytes(33, "apache.org:selector-filter:string"));
        pn_data_put_described(f);
        pn_data_enter(f);
        if (filter_descriptor_symbol) {
            pn_data_put_symbol(f, pn_bytes(33, "apache.org:selector-filter:string"));
        } else {
            pn_data_put_ulong(f, 0x468C00000004ULL);
        }
        pn_data_put_string(f, pn_bytes(strlen(filter), filter));
        pn_data_exit(f);
        pn_data_exit(f);
    }
    if (epoch >= 0) {
        pn_data_t *p = pn_link_properties(r->link);
        pn_data_put_map(p);
        pn_data_enter(p);
        pn_data_put_symbol(p, pn_bytes(19, "com.microsoft:epoch"));
        pn_data_put_long(p, epoch);
        pn_data_exit(p);
    }
    pn_link_set_context(r->link, r);
    pn_link_open(r->link);
    pn_link_flow(r->link, 10);
}

static const char *START = "amqp.annotation.x-opt-offset > '-1'";

/* ---- scenarios ---- */

static void test_publish_delay_detach(const emulator *e)
{
    client c;
    client_open(&c, e->port);
    rlink r;
    attach(&c, &r, "f/ConsumerGroups/$Default/Partitions/0", START, -1);
    control_ok(e, "publish 0 hello-1");
    count_arg one = {&r, 1};
    CHECK(run_until(&c, received_n, &one, 5000) && r.received == 1,
          "published event delivered (received %d, cond %s)", r.received, r.cond);
    CHECK(strcmp(r.last_body, "hello-1") == 0, "body '%s'", r.last_body);
    CHECK(r.last_seq == 0, "sequence number %lld", (long long)r.last_seq);

    control_ok(e, "delay-ms 1000");
    int64_t t0 = mono_ms();
    control_ok(e, "publish 0 hello-2");
    count_arg two = {&r, 2};
    CHECK(run_until(&c, received_n, &two, 5000) && r.received == 2, "delayed event delivered");
    int64_t waited = r.last_arrival_ms - t0;
    CHECK(waited >= 950, "delay-ms 1000 delayed the delivery by %lld ms", (long long)waited);
    control_ok(e, "delay-ms 0");
    t0 = mono_ms();
    control_ok(e, "publish 0 hello-3");
    count_arg three = {&r, 3};
    CHECK(run_until(&c, received_n, &three, 5000) && r.received == 3, "undelayed event");
    CHECK(r.last_arrival_ms - t0 < 700, "delay cleared (%lld ms)",
          (long long)(r.last_arrival_ms - t0));

    control_ok(e, "detach 0 com.microsoft:server-busy The server is busy.");
    CHECK(run_until(&c, link_closed, &r, 5000), "detach command closes the receiver");
    CHECK(strcmp(r.cond, "com.microsoft:server-busy") == 0, "condition '%s'", r.cond);
    CHECK(strcmp(r.desc, "The server is busy.") == 0, "description '%s'", r.desc);

    /* A receiver on the other partition is not touched by "detach 0". */
    rlink r1, r2;
    attach(&c, &r1, "f/ConsumerGroups/$Default/Partitions/1", START, -1);
    attach(&c, &r2, "f/ConsumerGroups/$Default/Partitions/0", START, -1);
    CHECK(run_until(&c, link_open, &r2, 5000) && run_until(&c, link_open, &r1, 5000),
          "receivers attach");
    control_ok(e, "detach * amqp:link:detach-forced");
    CHECK(run_until(&c, link_closed, &r1, 5000) && run_until(&c, link_closed, &r2, 5000),
          "detach * closes all");
    CHECK(strcmp(r1.cond, "amqp:link:detach-forced") == 0, "condition '%s'", r1.cond);
    client_close(&c);
}

static void test_refuse_attach(const emulator *e)
{
    client c;
    client_open(&c, e->port);
    control_ok(e, "refuse-attach 2 amqp:link:detach-forced");
    rlink a, b, ok;
    attach(&c, &a, "f/ConsumerGroups/$Default/Partitions/1", START, -1);
    CHECK(run_until(&c, link_closed, &a, 5000), "first attach refused");
    CHECK(strcmp(a.cond, "amqp:link:detach-forced") == 0, "condition '%s'", a.cond);
    attach(&c, &b, "f/ConsumerGroups/$Default/Partitions/1", START, -1);
    CHECK(run_until(&c, link_closed, &b, 5000), "second attach refused");
    attach(&c, &ok, "f/ConsumerGroups/$Default/Partitions/1", START, -1);
    CHECK(run_until(&c, link_open, &ok, 5000) && !ok.closed, "third attach accepted (cond %s)",
          ok.cond);
    control_ok(e, "refuse-attach 1");
    rlink busy;
    attach(&c, &busy, "f/ConsumerGroups/$Default/Partitions/1", START, -1);
    CHECK(run_until(&c, link_closed, &busy, 5000) &&
              strcmp(busy.cond, "com.microsoft:server-busy") == 0,
          "default refusal condition is server-busy ('%s')", busy.cond);
    client_close(&c);
}

static void test_drop_connections(const emulator *e)
{
    client c;
    client_open(&c, e->port);
    rlink r;
    attach(&c, &r, "f/ConsumerGroups/$Default/Partitions/0", START, -1);
    CHECK(run_until(&c, link_open, &r, 5000), "attached before drop");
    control_ok(e, "drop-connections");
    CHECK(run_until(&c, transport_closed, &c, 5000), "connection dropped");
    CHECK(!c.remote_close_frame, "drop is abrupt (no AMQP close frame)");
    client_close(&c);

    client_open(&c, e->port);
    attach(&c, &r, "f/ConsumerGroups/$Default/Partitions/0", START, -1);
    CHECK(run_until(&c, link_open, &r, 5000), "attached before close");
    control_ok(e, "close-connections amqp:connection:forced going away");
    CHECK(run_until(&c, transport_closed, &c, 5000), "connection closed");
    CHECK(c.remote_close_frame, "close-connections sends a close frame");
    client_close(&c);
}

static void test_epochs(const emulator *e)
{
    client c;
    client_open(&c, e->port);
    const char *addr = "f/ConsumerGroups/cg1/Partitions/0";
    rlink low, high, lower, plain;
    attach(&c, &low, addr, START, 1);
    CHECK(run_until(&c, link_open, &low, 5000) && !low.closed, "epoch 1 attaches");
    attach(&c, &high, addr, START, 2);
    CHECK(run_until(&c, link_closed, &low, 5000), "epoch 1 receiver detached by epoch 2");
    CHECK(strcmp(low.cond, "amqp:link:stolen") == 0, "stolen condition '%s'", low.cond);
    CHECK(!high.closed, "epoch 2 stays attached (%s)", high.cond);
    attach(&c, &lower, addr, START, 1);
    CHECK(run_until(&c, link_closed, &lower, 5000) && strcmp(lower.cond, "amqp:link:stolen") == 0,
          "lower epoch refused ('%s')", lower.cond);
    attach(&c, &plain, addr, START, -1);
    CHECK(run_until(&c, link_closed, &plain, 5000), "non-epoch refused while an epoch holds it");
    rlink same;
    attach(&c, &same, addr, START, 2);
    CHECK(run_until(&c, link_closed, &high, 5000) && strcmp(high.cond, "amqp:link:stolen") == 0,
          "equal epoch takes the partition ('%s')", high.cond);
    CHECK(!same.closed, "equal-epoch receiver attached");

    /* Five non-epoch receivers per partition and group, the sixth is refused. */
    rlink five[6];
    for (int i = 0; i < 6; i++) {
        attach(&c, &five[i], "f/ConsumerGroups/$Default/Partitions/1", START, -1);
        run_until(&c, link_open, &five[i], 5000);
    }
    for (int i = 0; i < 5; i++) {
        CHECK(!five[i].closed, "non-epoch receiver %d attached (%s)", i, five[i].cond);
    }
    CHECK(five[5].closed && strcmp(five[5].cond, "amqp:resource-limit-exceeded") == 0,
          "sixth non-epoch receiver refused ('%s')", five[5].cond);
    client_close(&c);
}

static void test_errors(const emulator *e)
{
    client c;
    client_open(&c, e->port);
    static const struct {
        const char *addr, *filter, *cond;
    } v[] = {
        {"nohub/ConsumerGroups/$Default/Partitions/0", NULL, "amqp:not-found"},
        {"f/ConsumerGroups/nogroup/Partitions/0", NULL, "amqp:not-found"},
        {"f/ConsumerGroups/$Default/Partitions/7", NULL, "amqp:not-found"},
        {"f/ConsumerGroups/$Default/Partitions/0", "amqp.annotation.x-opt-offset > no offset",
         "com.microsoft:argument-error"},
        {"f/ConsumerGroups/$Default/Partitions/0", "amqp.annotation.x-opt-sequence-number > 900",
         "com.microsoft:argument-out-of-range"},
        {"f/ConsumerGroups/$Default/Partitions/0", "amqp.annotation.x-opt-offset > '99999999'",
         "com.microsoft:argument-out-of-range"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rlink r;
        attach(&c, &r, v[i].addr, v[i].filter, -1);
        CHECK(run_until(&c, link_closed, &r, 5000) && strcmp(r.cond, v[i].cond) == 0,
              "%s [%s]: condition '%s' want '%s'", v[i].addr, v[i].filter ? v[i].filter : "",
              r.cond, v[i].cond);
    }
    /* Accepted address forms: leading '/', full URI, any case of the group name. */
    static const char *forms[] = {
        "/f/ConsumerGroups/$Default/Partitions/0",
        "amqps://ns.servicebus.windows.net/f/ConsumerGroups/$default/Partitions/0",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        rlink r;
        attach(&c, &r, forms[i], "amqp.annotation.x-opt-sequence-number >= 0", -1);
        count_arg one = {&r, 1};
        CHECK(run_until(&c, received_n, &one, 5000) && !r.closed && r.received >= 1,
              "address form '%s' works (cond '%s')", forms[i], r.cond);
    }
    /* The symbol descriptor form positions the receiver the same way. */
    filter_descriptor_symbol = true;
    rlink sym;
    attach(&c, &sym, "f/ConsumerGroups/$Default/Partitions/0",
           "amqp.annotation.x-opt-sequence-number >= 1", -1);
    /* Partition 0 holds sequence numbers 0..2 (publish test); '>= 1' yields two. */
    count_arg three = {&sym, 3};
    run_until(&c, received_n, &three, 1000);
    CHECK(sym.received == 2 && !sym.closed && sym.last_seq == 2,
          "symbol descriptor filter: received %d, last %lld ('%s')", sym.received,
          (long long)sym.last_seq, sym.cond);
    filter_descriptor_symbol = false;
    client_close(&c);
}

static void test_unauthorized(const char *path)
{
    emulator e2 = {0};
    const char *extra[] = {NULL};
    if (!emulator_start(&e2, path, extra)) {
        CHECK(false, "second emulator started");
        return;
    }
    client c;
    client_open(&c, e2.port);
    rlink r;
    attach(&c, &r, "f/ConsumerGroups/$Default/Partitions/0", START, -1);
    CHECK(run_until(&c, link_closed, &r, 5000) && strcmp(r.cond, "amqp:unauthorized-access") == 0,
          "attach without put-token: '%s'", r.cond);
    client_close(&c);
    emulator_stop(&e2);
}

/* ---- CBS, senders, --load, stdin control, no-SASL clients ---- */

static const char *KEY_NAME = "test-policy";
static const char *KEY = "dGVzdC1rZXktbm90LWEtc2VjcmV0";
static const char *BEARER = "bearer-token-for-tests";

static void sas_token(char *out, size_t size, const char *uri, const char *key, long long se)
{
    char sr[256], text[320], sig[64], sig_enc[128];
    size_t o = 0;
    for (const char *p = uri; *p != '\0' && o + 4 < sizeof sr; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_') {
            sr[o++] = (char)c;
        } else {
            o += (size_t)snprintf(sr + o, sizeof sr - o, "%%%02X", c);
        }
    }
    sr[o] = '\0';
    snprintf(text, sizeof text, "%s\n%lld", sr, se);
    unsigned char mac[32];
    unsigned ml = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)text, strlen(text), mac, &ml);
    EVP_EncodeBlock((unsigned char *)sig, mac, 32);
    o = 0;
    for (const char *p = sig; *p != '\0'; p++) {
        if (*p == '+' || *p == '/' || *p == '=') {
            o += (size_t)snprintf(sig_enc + o, sizeof sig_enc - o, "%%%02X", *p);
        } else {
            sig_enc[o++] = *p;
        }
    }
    sig_enc[o] = '\0';
    snprintf(out, size, "SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=%s", sr, sig_enc, se,
             KEY_NAME);
}

typedef struct {
    rlink tx, rx;
    int seq;
} cbs;

static bool got_status(const void *arg)
{
    const rlink *r = arg;
    return r->status_code != 0 || r->closed;
}

static bool link_credit(const void *arg)
{
    const rlink *r = arg;
    return r->closed || (r->link != NULL && pn_link_credit(r->link) > 0);
}

static bool got_outcome(const void *arg)
{
    const rlink *r = arg;
    return r->outcome != 0 || r->closed;
}

static void sender_attach(client *c, rlink *r, const char *name, const char *addr)
{
    memset(r, 0, sizeof *r);
    r->link = pn_sender(c->session, name);
    pn_terminus_set_address(pn_link_target(r->link), addr);
    pn_link_set_context(r->link, r);
    pn_link_open(r->link);
}

static void cbs_open(client *c, cbs *k)
{
    memset(k, 0, sizeof *k);
    sender_attach(c, &k->tx, "cbs-tx", "$cbs");
    k->rx.link = pn_receiver(c->session, "cbs-rx");
    pn_terminus_set_address(pn_link_source(k->rx.link), "$cbs");
    pn_terminus_set_address(pn_link_target(k->rx.link), "cbs-reply");
    pn_link_set_context(k->rx.link, &k->rx);
    pn_link_open(k->rx.link);
    pn_link_flow(k->rx.link, 10);
}

/* Puts a token; returns the reply's status-code (0 = no reply). */
static int put_token(client *c, cbs *k, const char *type, const char *audience, const char *token)
{
    if (!run_until(c, link_credit, &k->tx, 5000)) {
        return 0;
    }
    pn_message_t *m = pn_message();
    char id[32];
    snprintf(id, sizeof id, "req-%d", k->seq++);
    pn_message_set_id(m, (pn_atom_t){.type = PN_STRING, .u.as_bytes = pn_bytes(strlen(id), id)});
    pn_message_set_reply_to(m, "cbs-reply");
    pn_data_t *p = pn_message_properties(m);
    pn_data_put_map(p);
    pn_data_enter(p);
    const char *kv[] = {"operation", "put-token", "type", type, "name", audience};
    for (int i = 0; i < 6; i++) {
        pn_data_put_string(p, pn_bytes(strlen(kv[i]), kv[i]));
    }
    pn_data_exit(p);
    pn_message_set_inferred(m, false);
    pn_data_put_string(pn_message_body(m), pn_bytes(strlen(token), token));
    uint64_t tag = (uint64_t)k->seq;
    pn_delivery(k->tx.link, pn_dtag((const char *)&tag, sizeof tag));
    pn_message_send(m, k->tx.link, NULL);
    pn_message_free(m);
    k->rx.status_code = 0;
    run_until(c, got_status, &k->rx, 5000);
    return k->rx.status_code;
}

/* Sends bytes on a sender link; returns the outcome (PN_ACCEPTED, PN_REJECTED, 0). */
static uint64_t send_bytes(client *c, rlink *s, const char *bytes, size_t len)
{
    if (!run_until(c, link_credit, s, 5000) || s->closed) {
        return 0;
    }
    s->outcome = 0;
    s->outcome_cond[0] = '\0';
    static uint64_t tag;
    tag++;
    pn_delivery(s->link, pn_dtag((const char *)&tag, sizeof tag));
    pn_link_send(s->link, bytes, len);
    pn_link_advance(s->link);
    run_until(c, got_outcome, s, 10000);
    return s->outcome;
}

static void test_auth_senders_load(const char *path)
{
    char load[] = "/tmp/emu-faults-load-XXXXXX";
    int fd = mkstemp(load);
    const char *lines = "{\"n\":0}\n{\"n\":1}\n\n{\"n\":2}\n";
    CHECK(fd >= 0 && write(fd, lines, strlen(lines)) == (ssize_t)strlen(lines), "load file");
    close(fd);
    char keyspec[128], bearer[128];
    snprintf(keyspec, sizeof keyspec, "%s=%s", KEY_NAME, KEY);
    snprintf(bearer, sizeof bearer, "%s", BEARER);
    const char *extra[] = {
        "--sas-key", keyspec, "--bearer-token", bearer, "--load", load, "--load-key", "k", NULL};
    emulator e = {0};
    bool started = emulator_start2(&e, path, extra, true);
    unlink(load);
    if (!started) {
        CHECK(false, "auth emulator started");
        return;
    }
    /* stdin control: the three keyed events are in one partition. */
    char reply[512] = "";
    fprintf(e.cmd_in, "info\n");
    fflush(e.cmd_in);
    CHECK(fgets(reply, sizeof reply, e.cmd_out) != NULL, "stdin control replies");
    CHECK(strncmp(reply, "ok hub=f ", 9) == 0 && strstr(reply, "=0..2/") != NULL,
          "--load --load-key put 3 events in one partition: '%s'", reply);
    fprintf(e.cmd_in, "nonsense\n");
    fflush(e.cmd_in);
    CHECK(fgets(reply, sizeof reply, e.cmd_out) != NULL && strncmp(reply, "error ", 6) == 0,
          "stdin error reply '%s'", reply);

    char base[64], aud[128], tok[512];
    snprintf(base, sizeof base, "sb://127.0.0.1:%d/", e.port);
    snprintf(aud, sizeof aud, "%sf", base);

    client c;
    client_open(&c, e.port);
    cbs k;
    cbs_open(&c, &k);
    sas_token(tok, sizeof tok, aud, "wrong-key", (long long)time(NULL) + 600);
    CHECK(put_token(&c, &k, "servicebus.windows.net:sastoken", aud, tok) == 401,
          "bad signature -> 401 (got %d)", k.rx.status_code);
    CHECK(put_token(&c, &k, "jwt", aud, "not-the-token") == 401, "bad jwt -> 401 (got %d)",
          k.rx.status_code);
    /* A token that expires in 2 s: the link it authorized is detached. */
    sas_token(tok, sizeof tok, aud, KEY, (long long)time(NULL) + 2);
    CHECK(put_token(&c, &k, "servicebus.windows.net:sastoken", aud, tok) == 202,
          "valid SAS -> 202 (got %d)", k.rx.status_code);
    rlink r;
    attach(&c, &r, "f/ConsumerGroups/$Default/Partitions/0", START, -1);
    CHECK(run_until(&c, link_open, &r, 5000) && !r.closed, "authorized attach ('%s')", r.cond);
    CHECK(run_until(&c, link_closed, &r, 6000) && strcmp(r.cond, "amqp:unauthorized-access") == 0,
          "expired token detaches its link ('%s')", r.cond);
    client_close(&c);

    /* A client without SASL, authorized by the bearer token, publishes. */
    client_open_sasl(&c, e.port, false);
    cbs_open(&c, &k);
    CHECK(put_token(&c, &k, "jwt", aud, BEARER) == 202, "jwt -> 202 (got %d)", k.rx.status_code);
    rlink s;
    sender_attach(&c, &s, "pub", "f");
    CHECK(run_until(&c, link_credit, &s, 5000) && !s.closed, "sender attached ('%s')", s.cond);
    CHECK(pn_link_remote_max_message_size(s.link) == 1048576, "max-message-size %llu",
          (unsigned long long)pn_link_remote_max_message_size(s.link));
    /* .NET style: one plain message with a partition key, not a batch. */
    pn_message_t *m = pn_message();
    pn_data_t *a = pn_message_annotations(m);
    pn_data_put_map(a);
    pn_data_enter(a);
    pn_data_put_symbol(a, pn_bytes(19, "x-opt-partition-key"));
    pn_data_put_string(a, pn_bytes(1, "k"));
    pn_data_exit(a);
    pn_data_put_binary(pn_message_body(m), pn_bytes(7, "{\"n\":3}"));
    static char buf[1200 * 1024];
    size_t n = sizeof buf;
    CHECK(pn_message_encode(m, buf, &n) == 0, "encode");
    pn_message_free(m);
    CHECK(send_bytes(&c, &s, buf, n) == PN_ACCEPTED, "single message accepted (%s)",
          s.outcome_cond);
    /* Oversized: rejected with the Event Hubs condition. */
    m = pn_message();
    static char big[1100 * 1024];
    memset(big, 'x', sizeof big);
    pn_data_put_binary(pn_message_body(m), pn_bytes(sizeof big, big));
    n = sizeof buf;
    CHECK(pn_message_encode(m, buf, &n) == 0, "encode big");
    pn_message_free(m);
    CHECK(send_bytes(&c, &s, buf, n) == PN_REJECTED &&
              strcmp(s.outcome_cond, "amqp:link:message-size-exceeded") == 0,
          "oversized message rejected (outcome %llu, '%s')", (unsigned long long)s.outcome,
          s.outcome_cond);
    rlink rx0, rx1;
    attach(&c, &rx0, "f/ConsumerGroups/$Default/Partitions/0", START, -1);
    attach(&c, &rx1, "f/ConsumerGroups/$Default/Partitions/1", START, -1);
    CHECK(run_until(&c, link_open, &rx0, 5000) && run_until(&c, link_open, &rx1, 5000),
          "receivers attached");
    count_arg four0 = {&rx0, 4}, four1 = {&rx1, 4};
    run_until(&c, received_n, rx0.received > 0 ? (const void *)&four0 : (const void *)&four1, 3000);
    run_until(&c, received_n, &four0, 300);
    run_until(&c, received_n, &four1, 300);
    CHECK(rx0.received + rx1.received == 4 && (rx0.received == 4 || rx1.received == 4),
          "keyed --load events and the keyed send share a partition (%d + %d)", rx0.received,
          rx1.received);
    CHECK((rx0.received == 4 ? rx0.last_seq : rx1.last_seq) == 3, "last sequence number 3");
    client_close(&c);
    emulator_stop(&e);
}

static bool check_bad_command(const emulator *e, const char *cmd)
{
    char reply[512];
    control(e, cmd, reply, sizeof reply);
    CHECK(strncmp(reply, "error ", 6) == 0, "bad command '%s' -> '%s'", cmd, reply);
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-scanwatch-emulator\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm(110); /* never hang ctest */
    emulator e = {0};
    const char *extra[] = {"--no-auth", NULL};
    if (!emulator_start(&e, argv[1], extra)) {
        return 1;
    }
    test_publish_delay_detach(&e);
    test_refuse_attach(&e);
    test_drop_connections(&e);
    test_epochs(&e);
    test_errors(&e);
    check_bad_command(&e, "frobnicate");
    check_bad_command(&e, "detach 9 amqp:link:detach-forced");
    check_bad_command(&e, "delay-ms -5");
    check_bad_command(&e, "publish nohub/0 x");
    emulator_stop(&e);
    test_unauthorized(argv[1]);
    test_auth_senders_load(argv[1]);
    if (failures > 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("emulator fault injection: all checks passed\n");
    return 0;
}
