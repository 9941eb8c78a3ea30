/*
 * Receive benchmark, one receiver per run (bench/receive/run, docs/benchmarks.md "receive"):
 *
 *   sw-bench-receive --mode c|bare --port P --events N [--partitions K] [--prefetch C]
 *
 * c:    scanwatch's client (sw_amqp) receives N events over K partitions from the start,
 *       settling each one as durable from its callback, as the service does.
 * bare: a bare proton receiver on the same emulator: K links, credit C each, every
 *       delivery read, accepted and settled, nothing decoded. The emulator's limit.
 *
 * Prints one JSON line: {"mode":..,"events":..,"seconds":..,"events_per_s":..}.
 */
#include <errno.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/proactor.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "scanwatch/amqp.h"
#include "scanwatch/log.h"

typedef struct args {
    const char *mode;
    int port;
    long events;
    int partitions;
    int prefetch;
} args;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) used by this process so far. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
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

/* ---------------------------------------------------------------- c mode */

typedef struct cstate {
    sw_amqp_client *client;
    atomic_long n;
    long want;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool failed;
} cstate;

static void c_on_event(void *vc, const sw_amqp_event *ev)
{
    cstate *s = vc;
    sw_amqp_settle(s->client, ev->partition, ev->sequence_number);
    long n = atomic_load_explicit(&s->n, memory_order_relaxed) + 1; /* one writer */
    atomic_store_explicit(&s->n, n, memory_order_relaxed);
    if (n == s->want) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

static void c_on_error(void *vc, const char *partition, const sw_err *err, bool fatal)
{
    cstate *s = vc;
    fprintf(stderr, "sw-bench-receive: %s%s%s\n", fatal ? "fatal: " : "", err->msg,
            partition != NULL ? " (partition)" : "");
    if (fatal) {
        pthread_mutex_lock(&s->mu);
        s->failed = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

static int run_c(const args *a, double *secs)
{
    cstate s = {.want = a->events};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    char cs[256];
    snprintf(cs, sizeof cs,
             "Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;EntityPath=eh1",
             a->port);
    sw_amqp_options o;
    sw_amqp_options_default(&o);
    o.connection_string = cs;
    if (a->prefetch > 0) {
        o.prefetch = (uint32_t)a->prefetch;
    }
    o.cb.ctx = &s;
    o.cb.on_event = c_on_event;
    o.cb.on_error = c_on_error;
    double t0 = now_s();
    sw_err err;
    s.client = sw_amqp_client_new(&o, &err);
    if (s.client == NULL) {
        fprintf(stderr, "sw-bench-receive: %s\n", err.msg);
        return 1;
    }
    for (int p = 0; p < a->partitions; p++) {
        char id[16];
        snprintf(id, sizeof id, "%d", p);
        if (!sw_amqp_add_partition(s.client, id, NULL, &err)) {
            fprintf(stderr, "sw-bench-receive: %s\n", err.msg);
            return 1;
        }
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 300;
    pthread_mutex_lock(&s.mu);
    while (atomic_load(&s.n) < s.want && !s.failed) {
        if (pthread_cond_timedwait(&s.cv, &s.mu, &until) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&s.mu);
    *secs = now_s() - t0;
    long got = atomic_load(&s.n);
    sw_amqp_stats st;
    sw_amqp_get_stats(s.client, &st);
    sw_amqp_client_free(s.client);
    if (got < s.want) {
        fprintf(stderr, "sw-bench-receive: received %ld of %ld events\n", got, s.want);
        return 1;
    }
    fprintf(stderr, "sw-bench-receive: settled %llu\n", (unsigned long long)st.settled);
    return 0;
}

/* ---------------------------------------------------------------- bare mode */

typedef struct bare {
    long n, want;
    int credit;
    char buf[1 << 20];
    bool failed;
} bare;

static void bare_delivery(bare *b, pn_delivery_t *d)
{
    if (!pn_delivery_readable(d) || pn_delivery_partial(d)) {
        return;
    }
    pn_link_t *l = pn_delivery_link(d);
    pn_link_recv(l, b->buf, sizeof b->buf);
    pn_link_advance(l);
    pn_delivery_update(d, PN_ACCEPTED);
    pn_delivery_settle(d);
    b->n++;
    if (pn_link_credit(l) < b->credit / 2) {
        pn_link_flow(l, b->credit - pn_link_credit(l));
    }
}

static int run_bare(const args *a, double *secs)
{
    static bare b;
    b.want = a->events;
    b.credit = a->prefetch > 0 ? a->prefetch : 300;
    pn_proactor_t *p = pn_proactor();
    pn_connection_t *c = pn_connection();
    pn_transport_t *t = pn_transport();
    pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    pn_connection_set_container(c, "bare-bench");
    pn_connection_open(c);
    pn_session_t *s = pn_session(c);
    pn_session_set_incoming_capacity(s, 64u * 1024u * 1024u);
    pn_session_open(s);
    for (int i = 0; i < a->partitions; i++) {
        char name[32], addr[96];
        snprintf(name, sizeof name, "bare-%d", i);
        snprintf(addr, sizeof addr, "eh1/ConsumerGroups/$Default/Partitions/%d", i);
        pn_link_t *l = pn_receiver(s, name);
        pn_terminus_set_address(pn_link_source(l), addr);
        pn_data_t *f = pn_terminus_filter(pn_link_source(l));
        const char *key = "apache.org:selector-filter:string";
        const char *expr = "amqp.annotation.x-opt-offset > '-1'";
        pn_data_put_map(f);
        pn_data_enter(f);
        pn_data_put_symbol(f, pn_bytes(strlen(key), key));
        pn_data_put_described(f);
        pn_data_enter(f);
        pn_data_put_ulong(f, 0x468C00000004ULL);
        pn_data_put_string(f, pn_bytes(strlen(expr), expr));
        pn_data_exit(f);
        pn_data_exit(f);
        pn_link_open(l);
        pn_link_flow(l, b.credit);
    }
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", a->port);
    double t0 = now_s();
    pn_proactor_connect2(p, c, t, addr);
    pn_proactor_set_timeout(p, 300000);
    bool done = false;
    while (!done) {
        pn_event_batch_t *batch = pn_proactor_wait(p);
        for (pn_event_t *e = pn_event_batch_next(batch); e != NULL;
             e = pn_event_batch_next(batch)) {
            switch (pn_event_type(e)) {
            case PN_DELIVERY:
                bare_delivery(&b, pn_event_delivery(e));
                if (b.n == b.want) {
                    *secs = now_s() - t0;
                    pn_connection_close(c);
                }
                break;
            case PN_LINK_REMOTE_CLOSE: {
                pn_condition_t *cond = pn_link_remote_condition(pn_event_link(e));
                fprintf(stderr, "sw-bench-receive: link closed: %s %s\n",
                        pn_condition_get_name(cond), pn_condition_get_description(cond));
                b.failed = true;
                pn_connection_close(c);
                break;
            }
            case PN_PROACTOR_TIMEOUT:
                b.failed = true;
                pn_connection_close(c);
                break;
            case PN_TRANSPORT_CLOSED:
            case PN_PROACTOR_INACTIVE:
                done = true;
                break;
            default:
                break;
            }
        }
        pn_proactor_done(p, batch);
    }
    pn_proactor_free(p);
    if (b.failed || b.n < b.want) {
        fprintf(stderr, "sw-bench-receive: bare received %ld of %ld events\n", b.n, b.want);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    args a = {.mode = "c", .events = 100000, .partitions = 4};
    for (int i = 1; i + 1 < argc; i += 2) {
        long v;
        if (strcmp(argv[i], "--mode") == 0) {
            a.mode = argv[i + 1];
        } else if (strcmp(argv[i], "--port") == 0 && parse_long(argv[i + 1], 1, 65535, &v)) {
            a.port = (int)v;
        } else if (strcmp(argv[i], "--events") == 0 && parse_long(argv[i + 1], 1, 1000000000, &v)) {
            a.events = v;
        } else if (strcmp(argv[i], "--partitions") == 0 && parse_long(argv[i + 1], 1, 1024, &v)) {
            a.partitions = (int)v;
        } else if (strcmp(argv[i], "--prefetch") == 0 && parse_long(argv[i + 1], 1, 100000, &v)) {
            a.prefetch = (int)v;
        } else {
            fprintf(stderr, "usage: sw-bench-receive --mode c|bare --port P --events N "
                            "[--partitions K] [--prefetch C]\n");
            return 2;
        }
    }
    if (a.port == 0) {
        fprintf(stderr, "sw-bench-receive: --port is required\n");
        return 2;
    }
    sw_log_set_level(SW_LOG_WARN);
    double secs = 0;
    double cpu0 = cpu_s();
    int rc = strcmp(a.mode, "bare") == 0 ? run_bare(&a, &secs) : run_c(&a, &secs);
    if (rc != 0) {
        return rc;
    }
    double cpu = cpu_s() - cpu0;
    printf("{\"mode\":\"%s\",\"events\":%ld,\"seconds\":%.4f,\"events_per_s\":%.0f,"
           "\"cpu_us_per_event\":%.3f}\n",
           a.mode, a.events, secs, (double)a.events / secs, cpu * 1e6 / (double)a.events);
    return 0;
}
