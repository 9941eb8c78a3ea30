/*
 * Emulator delivery benchmark: how many events per second scanwatch-emulator
 * delivers to one fast receiver. A bare proton receiver (no decoding beyond
 * the last event's sequence number) counts and settles; the emulator is
 * preloaded with --load so that only delivery is measured.
 *
 *   emu_bench --emulator PATH [--events N] [--body-bytes B] [--rounds R]
 *             [--credit C] [--unsettled] [--workdir DIR]
 *
 * Each round attaches a new receiver from the start of the partition
 * (offset -1) and reads all N events. Prints one JSON line per round and a
 * summary line. Results: docs/benchmarks.md, section "emulator".
 */
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

typedef struct {
    const char *emulator;
    long events;
    long body_bytes;
    int rounds;
    int credit;
    bool unsettled;
    const char *workdir;
} bench_opts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_opts(int argc, char **argv, bench_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(f, "--unsettled") == 0) {
            o->unsettled = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "emu_bench: %s needs a value\n", f);
            return false;
        }
        i++;
        if (strcmp(f, "--emulator") == 0) {
            o->emulator = v;
        } else if (strcmp(f, "--workdir") == 0) {
            o->workdir = v;
        } else if (strcmp(f, "--events") == 0 && parse_long(v, 1, 10000000, &n)) {
            o->events = n;
        } else if (strcmp(f, "--body-bytes") == 0 && parse_long(v, 1, 1000000, &n)) {
            o->body_bytes = n;
        } else if (strcmp(f, "--rounds") == 0 && parse_long(v, 1, 100, &n)) {
            o->rounds = (int)n;
        } else if (strcmp(f, "--credit") == 0 && parse_long(v, 1, 1000000, &n)) {
            o->credit = (int)n;
        } else {
            fprintf(stderr, "emu_bench: bad option %s %s\n", f, v);
            return false;
        }
    }
    if (o->emulator == NULL) {
        fprintf(stderr, "emu_bench: --emulator PATH is required\n");
        return false;
    }
    return true;
}

/* N JSON lines of about body_bytes each. */
static bool write_load_file(const char *path, long events, long body_bytes)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        fprintf(stderr, "emu_bench: %s: %s\n", path, strerror(errno));
        return false;
    }
    char *pad = malloc((size_t)body_bytes + 1);
    if (pad == NULL) {
        fclose(fp);
        return false;
    }
    long fixed = 40; /* {"n":1234567,"pad":""} */
    long pl = body_bytes > fixed ? body_bytes - fixed : 1;
    memset(pad, 'x', (size_t)pl);
    pad[pl] = '\0';
    for (long i = 0; i < events; i++) {
        fprintf(fp, "{\"n\":%ld,\"pad\":\"%s\"}\n", i, pad);
    }
    free(pad);
    bool ok = ferror(fp) == 0;
    return fclose(fp) == 0 && ok;
}

typedef struct {
    pid_t pid;
    int port;
} emu_proc;

static bool emu_start(emu_proc *e, const bench_opts *o, const char *load)
{
    int out[2];
    if (pipe(out) != 0) {
        return false;
    }
    e->pid = fork();
    if (e->pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execl(o->emulator, o->emulator, "--port", "0", "--hub", "bench:1", "--no-auth",
              "--no-control-stdin", "--retain-count", "0", "--retain-bytes", "0", "--load", load,
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *fp = fdopen(out[0], "r");
    char line[128];
    bool ok = fp != NULL && fgets(line, sizeof line, fp) != NULL;
    if (fp != NULL) {
        fclose(fp);
    }
    char *p = ok ? strstr(line, "port=") : NULL;
    if (p == NULL) {
        fprintf(stderr, "emu_bench: emulator did not become ready\n");
        return false;
    }
    long port;
    char *end = p + 5;
    while (*end >= '0' && *end <= '9') {
        end++;
    }
    *end = '\0';
    if (!parse_long(p + 5, 1, 65535, &port)) {
        return false;
    }
    e->port = (int)port;
    return true;
}

typedef struct {
    pn_proactor_t *proactor;
    pn_connection_t *conn;
    pn_link_t *link;
    long target;
    long received;
    int64_t last_seq;
    double first_at;
    bool failed;
    int credit;
    char buf[1 << 16];
} receiver;

static void last_seq(receiver *r, const char *bytes, size_t n)
{
    pn_message_t *m = pn_message();
    if (pn_message_decode(m, bytes, n) == 0) {
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
    }
    pn_message_free(m);
}

static void on_delivery(receiver *r, pn_delivery_t *d)
{
    if (!pn_delivery_readable(d) || pn_delivery_partial(d)) {
        return;
    }
    pn_link_t *l = pn_delivery_link(d);
    ssize_t n = pn_link_recv(l, r->buf, sizeof r->buf);
    pn_link_advance(l);
    if (r->received == 0) {
        r->first_at = now_s();
    }
    r->received++;
    if (r->received == r->target && n > 0) {
        last_seq(r, r->buf, (size_t)n);
    }
    if (!pn_delivery_settled(d)) {
        pn_delivery_update(d, PN_ACCEPTED);
    }
    pn_delivery_settle(d);
    if (pn_link_credit(l) < r->credit / 2) {
        pn_link_flow(l, r->credit - pn_link_credit(l));
    }
}

static void handle(receiver *r, pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_DELIVERY:
        on_delivery(r, pn_event_delivery(e));
        break;
    case PN_LINK_REMOTE_CLOSE: {
        pn_condition_t *c = pn_link_remote_condition(pn_event_link(e));
        fprintf(stderr, "emu_bench: link closed: %s %s\n", pn_condition_get_name(c),
                pn_condition_get_description(c));
        r->failed = true;
        break;
    }
    case PN_TRANSPORT_CLOSED:
        if (r->received < r->target) {
            fprintf(stderr, "emu_bench: connection closed\n");
            r->failed = true;
        }
        break;
    default:
        break;
    }
}

static bool run_round(const bench_opts *o, int port, receiver *r, double *secs)
{
    memset(r, 0, offsetof(receiver, buf));
    r->target = o->events;
    r->credit = o->credit;
    r->last_seq = -1;
    r->proactor = pn_proactor();
    r->conn = pn_connection();
    pn_transport_t *t = pn_transport();
    pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    pn_connection_open(r->conn);
    pn_session_t *s = pn_session(r->conn);
    pn_session_set_incoming_capacity(s, 64u * 1024u * 1024u);
    pn_session_open(s);
    r->link = pn_receiver(s, "bench");
    pn_terminus_set_address(pn_link_source(r->link), "bench/ConsumerGroups/$Default/Partitions/0");
    pn_data_t *f = pn_terminus_filter(pn_link_source(r->link));
    const char *expr = "amqp.annotation.x-opt-offset > '-1'";
    pn_data_put_map(f);
    pn_data_enter(f);
    pn_data_put_symbol(f, pn_bytes(33, "apache.org:selector-filter:string"));
    pn_data_put_described(f);
    pn_data_enter(f);
    pn_data_put_ulong(f, 0x468C00000004ULL);
    pn_data_put_string(f, pn_bytes(strlen(expr), expr));
    pn_data_exit(f);
    pn_data_exit(f);
    /* What .NET asks for; --unsettled measures the JS SDK's mode (client settles). */
    pn_link_set_snd_settle_mode(r->link, o->unsettled ? PN_SND_UNSETTLED : PN_SND_SETTLED);
    pn_link_open(r->link);
    pn_link_flow(r->link, o->credit);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    double start = now_s();
    pn_proactor_connect2(r->proactor, r->conn, t, addr);
    pn_proactor_set_timeout(r->proactor, 120000);
    while (r->received < r->target && !r->failed) {
        pn_event_batch_t *b = pn_proactor_wait(r->proactor);
        pn_event_t *e = pn_event_batch_next(b);
        while (e != NULL) {
            if (pn_event_type(e) == PN_PROACTOR_TIMEOUT) {
                fprintf(stderr, "emu_bench: timed out after %ld events\n", r->received);
                r->failed = true;
            }
            handle(r, e);
            e = pn_event_batch_next(b);
        }
        pn_proactor_done(r->proactor, b);
    }
    double end = now_s();
    *secs = end - start;
    pn_proactor_free(r->proactor);
    if (!r->failed && r->last_seq != o->events - 1) {
        fprintf(stderr, "emu_bench: last event had sequence number %lld, want %ld\n",
                (long long)r->last_seq, o->events - 1);
        r->failed = true;
    }
    return !r->failed;
}

static double child_cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return -1;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* Fields after the ")" of the command name: state is 3rd, utime 14th, stime 15th. */
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    int field = 2;
    unsigned long long ut = 0, st = 0;
    for (char *q = p + 1; *q != '\0'; q++) {
        if (*q == ' ') {
            field++;
            if (field == 14) {
                ut = strtoull(q + 1, NULL, 10);
            } else if (field == 15) {
                st = strtoull(q + 1, NULL, 10);
                break;
            }
        }
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    bench_opts o = {
        .events = 100000, .body_bytes = 1024, .rounds = 3, .credit = 1000, .workdir = "."};
    if (!parse_opts(argc, argv, &o)) {
        return 2;
    }
    char load[512];
    snprintf(load, sizeof load, "%s/emu_bench_load.ndjson", o.workdir);
    if (!write_load_file(load, o.events, o.body_bytes)) {
        return 1;
    }
    emu_proc e = {0};
    double t0 = now_s();
    if (!emu_start(&e, &o, load)) {
        return 1;
    }
    double load_s = now_s() - t0;
    unlink(load);
    receiver *r = malloc(sizeof *r);
    int rc = 0;
    double best = 0, total_events = 0, total_s = 0;
    double cpu_before = child_cpu_s(e.pid);
    for (int i = 0; r != NULL && i < o.rounds; i++) {
        double secs;
        if (!run_round(&o, e.port, r, &secs)) {
            rc = 1;
            break;
        }
        double rate = (double)o.events / secs;
        best = rate > best ? rate : best;
        total_events += (double)o.events;
        total_s += secs;
        printf("{\"round\":%d,\"events\":%ld,\"body_bytes\":%ld,\"seconds\":%.3f,"
               "\"events_per_s\":%.0f,\"MiB_per_s\":%.1f}\n",
               i + 1, o.events, o.body_bytes, secs, rate,
               rate * (double)o.body_bytes / (1024.0 * 1024.0));
        fflush(stdout);
    }
    double cpu = child_cpu_s(e.pid) - cpu_before;
    if (rc == 0 && total_s > 0) {
        printf("{\"summary\":\"emulator delivery to one receiver\",\"settle\":\"%s\","
               "\"credit\":%d,\"events\":%.0f,\"seconds\":%.3f,\"events_per_s\":%.0f,"
               "\"best_round_events_per_s\":%.0f,\"emulator_cpu_s\":%.2f,"
               "\"emulator_us_per_event\":%.2f,\"emulator_events_per_cpu_s\":%.0f,"
               "\"preload_s\":%.2f}\n",
               o.unsettled ? "client (unsettled)" : "pre-settled", o.credit, total_events, total_s,
               total_events / total_s, best, cpu, cpu * 1e6 / total_events,
               cpu > 0 ? total_events / cpu : 0.0, load_s);
    }
    free(r);
    kill(e.pid, SIGTERM);
    waitpid(e.pid, NULL, 0);
    return rc;
}
