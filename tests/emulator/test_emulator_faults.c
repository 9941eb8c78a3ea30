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
#include <proton/event.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/proactor.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

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
} emulator;

static bool emulator_start(emulator *e, const char *path, const char *const *extra)
{
    int out[2];
    if (pipe(out) != 0) {
        return false;
    }
    const char *argv[32] = {path,    "--port", "0", "--control-port", "0", "--no-control-stdin",
                            "--hub", "f:2:cg1"};
    int n = 8;
    for (int i = 0; extra[i] != NULL && n < 30; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    e->pid = fork();
    if (e->pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    FILE *fp = fdopen(out[0], "r");
    char line[256];
    if (fp == NULL || fgets(line, sizeof line, fp) == NULL) {
        fprintf(stderr, "emulator did not print its ready line\n");
        return false;
    }
    fclose(fp);
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

static void emulator_stop(emulator *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
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
        rlink *r = pn_link_get_context(pn_delivery_link(pn_event_delivery(e)));
        if (r != NULL) {
            on_delivery(r, pn_event_delivery(e));
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

static void client_open(client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->proactor = pn_proactor();
    c->conn = pn_connection();
    pn_connection_set_container(c->conn, "fault-test");
    pn_connection_set_hostname(c->conn, "127.0.0.1");
    pn_transport_t *t = pn_transport();
    pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    pn_connection_open(c->conn);
    c->session = pn_session(c->conn);
    pn_session_open(c->session);
    pn_proactor_connect2(c->proactor, c->conn, t, addr);
}

static void client_close(client *c)
{
    if (!c->transport_closed) {
        pn_connection_close(c->conn);
        run_until(c, transport_closed, c, 2000);
    }
    pn_proactor_free(c->proactor);
}

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
        pn_data_put_ulong(f, 0x468C00000004ULL);
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

    control_ok(e, "delay-ms 400");
    int64_t t0 = mono_ms();
    control_ok(e, "publish 0 hello-2");
    count_arg two = {&r, 2};
    CHECK(run_until(&c, received_n, &two, 5000) && r.received == 2, "delayed event delivered");
    int64_t waited = r.last_arrival_ms - t0;
    CHECK(waited >= 350, "delay-ms 400 delayed the delivery by %lld ms", (long long)waited);
    control_ok(e, "delay-ms 0");
    t0 = mono_ms();
    control_ok(e, "publish 0 hello-3");
    count_arg three = {&r, 3};
    CHECK(run_until(&c, received_n, &three, 5000) && r.received == 3, "undelayed event");
    CHECK(r.last_arrival_ms - t0 < 300, "delay cleared (%lld ms)",
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
    if (failures > 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("emulator fault injection: all checks passed\n");
    return 0;
}
