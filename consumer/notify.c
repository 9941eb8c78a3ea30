/*
 * The notifier: outbox -> routes -> mail entries -> sender threads -> sink.
 *
 * Keys in the notify column family:
 *   m/<created µs:016x>/<outbox seq:016x>/<route:04x>/<part:04x>  a rendered mail (request JSON)
 *   d/<route name>\0<outbox seq:016x>   a digest accumulation: {"t": µs, "item": {...}}
 * Mail keys sort by creation time, so mails go out in the order they were made.
 */
#include "scanwatch/notify.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "notify_internal.h"
#include "scanwatch/entra.h"
#include "scanwatch/log.h"
#include "scanwatch/settings.h"

#define QUEUE_MAX 64
#define QUEUE_BYTES_MAX ((size_t)16 << 20) /* mail bodies held in memory, beyond the first */
#define DIGEST_FLUSH_MAX 5000              /* images per digest rendering; the rest follow */
#define INGEST_BATCH 64
#define MAX_THREADS 4
#define IDLE_WAIT_US 200000

struct job {
    char *key;
    size_t klen;
    char *body;
    size_t blen;
    int attempts;
    int64_t not_before; /* monotonic µs */
    bool in_flight;
    /* Delivered (or permanently failed) but its entry not yet deleted (or dead-lettered)
     * because the state store failed: never sent again, settled by the driver. */
    bool done;
    bool dead;
    char reason[600];
};

struct sender {
    sw_notifier *n;
    sw_sink *sink;
};

struct sw_notifier {
    sw_state *st;
    sw_routes routes;
    sw_render_opts ropts;
    bool digest;
    int64_t digest_interval;
    sw_sink_spec spec;
    sw_token_provider tokens;
    bool have_tokens;
    char *graph_base, *sender;
    int64_t timeout_us, spacing_us, backoff_min, backoff_max;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *jobs[QUEUE_MAX];
    size_t n_jobs;
    size_t queued_bytes;
    int64_t paused_until, next_start;
    bool stopping;
    pthread_t threads[MAX_THREADS];
    struct sender senders[MAX_THREADS];
    int n_threads;
    uint64_t next_seq;
    /* The last mail key loaded into jobs: keys up to it are queued or gone,
     * so loading resumes there instead of stepping over the tombstones of
     * every mail sent since the start (stepping thread only). */
    char cursor[80];
    size_t cursor_len;
    /* The last load stopped at the queue's bounds: rendered mails wait in the
     * store beyond it. Per-image diff records are then left in the outbox
     * and rendered only when the mails before them are nearly sent, so a
     * backlog (a first scan of every image, at mail_rate a minute) is held
     * once, as diff records, not also rendered and compacted as mails. */
    bool mails_beyond_queue;
    /* Per route, its digest accumulations (d/ entries) as counted since the
     * last read of them, so a step learns that no digest is due without
     * reading and parsing every entry (stepping thread only). */
    struct dig {
        bool known;    /* n and oldest are exact (else read the entries) */
        size_t n;      /* entries */
        double oldest; /* their oldest "t", µs */
        size_t staged; /* added by the batch being built */
    } *dig;
    uint64_t jitter; /* LCG state for backoff jitter */
    sw_notify_stats stats;
};

/* ---- sender threads --------------------------------------------------------- */

static const char *const failure_labels[SW_NOTIFY_FAILURE_KINDS] = {
    "400", "401", "403", "404",     "413",   "429",       "503",
    "504", "5xx", "4xx", "timeout", "token", "transport", "io"};

const char *sw_notify_failure_label(int i)
{
    return i >= 0 && i < SW_NOTIFY_FAILURE_KINDS ? failure_labels[i] : NULL;
}

static int failure_kind(const sw_send_result *r)
{
    char want[160];
    if (r->status == 0) {
        snprintf(want, sizeof want, "%.128s", r->code);
    } else if (r->status >= 500 && r->status != 503 && r->status != 504) {
        snprintf(want, sizeof want, "5xx");
    } else {
        snprintf(want, sizeof want, "%ld", r->status);
    }
    for (int i = 0; i < SW_NOTIFY_FAILURE_KINDS; i++) {
        if (strcmp(want, failure_labels[i]) == 0) {
            return i;
        }
    }
    return r->status == 0 ? 12 /* transport */ : 9 /* 4xx */;
}

static void job_free(struct job *j)
{
    if (j != NULL) {
        free(j->key);
        free(j->body);
        free(j);
    }
}

static void remove_job(sw_notifier *n, struct job *j)
{
    for (size_t i = 0; i < n->n_jobs; i++) {
        if (n->jobs[i] == j) {
            memmove(&n->jobs[i], &n->jobs[i + 1], (n->n_jobs - i - 1) * sizeof n->jobs[0]);
            n->n_jobs--;
            n->queued_bytes -= j->blen;
            break;
        }
    }
    job_free(j);
}

static int64_t backoff(sw_notifier *n, const struct job *j, int64_t retry_after)
{
    if (retry_after >= 0) {
        return retry_after < n->backoff_max ? retry_after : n->backoff_max;
    }
    int64_t d = n->backoff_min;
    for (int i = 1; i < j->attempts && d < n->backoff_max; i++) {
        d *= 2;
    }
    if (d > n->backoff_max) {
        d = n->backoff_max;
    }
    /* Up to +25% jitter so that replicas do not retry in lockstep. */
    n->jitter = n->jitter * 6364136223846793005ULL + 1442695040888963407ULL; /* under mu */
    return d + (int64_t)((double)d * 0.25 * (double)(n->jitter >> 11) / (double)(1ULL << 53));
}

static void timed_wait(sw_notifier *n, int64_t until_mono)
{
    int64_t wait = until_mono - sw_time_mono_us();
    if (wait <= 0) {
        return;
    }
    if (wait > IDLE_WAIT_US) {
        wait = IDLE_WAIT_US;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + wait * 1000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&n->cv, &n->mu, &ts);
}

/* Under mu: the next job allowed to start now, or NULL and *wake. */
static struct job *pick(sw_notifier *n, int64_t now, int64_t *wake)
{
    *wake = now + IDLE_WAIT_US;
    int64_t gate = n->paused_until > n->next_start ? n->paused_until : n->next_start;
    for (size_t i = 0; i < n->n_jobs; i++) {
        struct job *j = n->jobs[i];
        if (j->in_flight || j->done) {
            continue;
        }
        int64_t t = j->not_before > gate ? j->not_before : gate;
        if (t <= now) {
            return j;
        }
        if (t < *wake) {
            *wake = t;
        }
    }
    return NULL;
}

/*
 * Makes a delivered or permanently failed mail final: dead letter (when dead),
 * then delete its entry. Returns false when the store failed (the job stays,
 * done, and the driver tries again; it is never sent again by this process).
 */
static bool settle(sw_notifier *n, struct job *j)
{
    sw_err err;
    sw_err_clear(&err);
    if (j->dead) {
        sw_state_dead_letter dl = {.kind = "mail",
                                   .reason = j->reason,
                                   .partition = "",
                                   .offset = "",
                                   .bytes = j->body,
                                   .len = j->blen};
        if (!sw_state_dead_letter_put(n->st, &dl, &err)) {
            SW_LOG(SW_LOG_ERROR, "cannot dead-letter a mail; will try again",
                   SW_LF_STR("code", sw_code_name(err.code)), SW_LF_STR("error", err.msg));
            return false;
        }
        j->dead = false; /* written: do not write it twice */
    }
    if (!sw_state_kv_delete(n->st, j->key, j->klen, &err)) {
        SW_LOG(SW_LOG_ERROR, "cannot delete a delivered mail entry; will try again",
               SW_LF_STR("code", sw_code_name(err.code)), SW_LF_STR("error", err.msg));
        return false;
    }
    return true;
}

static void *sender_main(void *arg)
{
    struct sender *me = arg;
    sw_notifier *n = me->n;
    sw_sink *sink = me->sink;
    pthread_mutex_lock(&n->mu);
    while (!n->stopping) {
        int64_t now = sw_time_mono_us(), wake;
        struct job *j = pick(n, now, &wake);
        if (j == NULL) {
            timed_wait(n, wake);
            continue;
        }
        j->in_flight = true;
        n->next_start = now + n->spacing_us;
        pthread_mutex_unlock(&n->mu);

        sw_send_result r;
        sw_sink_send(sink, j->body, j->blen, &r);
        bool settled = false;
        if (r.outcome == SW_SEND_PERMANENT) {
            SW_LOG(SW_LOG_ERROR, "mail moved to the dead letter", SW_LF_INT("status", r.status),
                   SW_LF_STR("graph_code", r.code), SW_LF_STR("detail", r.detail));
            j->dead = true;
            snprintf(j->reason, sizeof j->reason, "sendMail failed permanently: %.560s", r.detail);
        }
        if (r.outcome != SW_SEND_RETRY) {
            settled = settle(n, j);
        }
        if (r.outcome == SW_SEND_OK) {
            /* Logged after the entry is deleted: a "mail sent" line means it will not be sent
             * again, so a crash resends only mails without one (the chaos test counts them). */
            SW_LOG(SW_LOG_INFO, "mail sent", SW_LF_STR("sink", n->stats.sink),
                   SW_LF_STR("detail", r.detail), SW_LF_BOOL("settled", settled));
        }

        pthread_mutex_lock(&n->mu);
        if (r.outcome != SW_SEND_OK) {
            n->stats.failures[failure_kind(&r)]++;
        }
        if (r.outcome != SW_SEND_RETRY) {
            if (r.outcome == SW_SEND_OK) {
                n->stats.mails_sent++;
            } else {
                n->stats.dead++;
            }
            if (settled) {
                remove_job(n, j);
            } else {
                j->done = true;
                j->in_flight = false;
            }
        } else {
            j->attempts++;
            int64_t d = backoff(n, j, r.retry_after_us);
            int64_t t = sw_time_mono_us() + d;
            j->not_before = t;
            j->in_flight = false;
            /* Throttling is per mailbox: hold every send, not just this one. */
            if (t > n->paused_until) {
                n->paused_until = t;
            }
            n->stats.retries++;
            SW_LOG(SW_LOG_WARN, "mail not accepted; will retry", SW_LF_INT("status", r.status),
                   SW_LF_STR("graph_code", r.code), SW_LF_STR("detail", r.detail),
                   SW_LF_INT("attempt", j->attempts), SW_LF_INT("retry_in_ms", d / 1000),
                   SW_LF_BOOL("retry_after", r.retry_after_us >= 0));
        }
        pthread_cond_broadcast(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- mail entries ------------------------------------------------------------ */

static void mail_key(char *out, size_t size, sw_time_us created, uint64_t seq, size_t route,
                     size_t part)
{
    snprintf(out, size, "m/%016llx/%016llx/%04zx/%04zx", (unsigned long long)created,
             (unsigned long long)seq, route, part);
}

static bool put_mails(sw_notifier *n, sw_state_batch *b, const sw_route *route, size_t ridx,
                      cJSON *const *items, size_t n_items, uint64_t seq, sw_err *err)
{
    sw_mail_list ml;
    n->ropts.now = sw_time_now();
    if (!sw_notify_render(&n->ropts, route, items, n_items, &ml, err)) {
        return false;
    }
    sw_time_us created = sw_time_now();
    for (size_t p = 0; p < ml.n; p++) {
        char key[80];
        mail_key(key, sizeof key, created, seq, ridx, p);
        size_t kl = strlen(key);
        if (n->cursor_len > 0 && memcmp(key, n->cursor, kl < n->cursor_len ? kl : n->cursor_len) < 0) {
            n->cursor_len = 0; /* the clock stepped back: load from the start again */
        }
        sw_state_batch_kv_put(b, key, kl, ml.bodies[p], ml.lens[p]);
    }
    pthread_mutex_lock(&n->mu); /* stats are read by sw_notify_stats_get on another thread */
    n->stats.mails_queued += ml.n;
    pthread_mutex_unlock(&n->mu);
    sw_mail_list_free(&ml);
    return true;
}

static void dead_letter(sw_notifier *n, const char *kind, const char *reason, const void *bytes,
                        size_t len)
{
    sw_err err;
    sw_state_dead_letter dl = {
        .kind = kind, .reason = reason, .partition = "", .offset = "", .bytes = bytes, .len = len};
    if (!sw_state_dead_letter_put(n->st, &dl, &err)) {
        SW_LOG(SW_LOG_ERROR, "cannot write the dead letter",
               SW_LF_STR("code", sw_code_name(err.code)), SW_LF_STR("error", err.msg),
               SW_LF_STR("kind", kind));
    }
    pthread_mutex_lock(&n->mu);
    n->stats.dead++;
    pthread_mutex_unlock(&n->mu);
}

static bool digest_key(sw_buf *k, const char *route, uint64_t seq)
{
    sw_buf_printf(k, "d/%s", route);
    sw_buf_append_char(k, '\0');
    sw_buf_printf(k, "%016llx", (unsigned long long)seq);
    return !k->failed;
}

/* The diff's new findings by severity, for the scanwatch_new_findings metric. */
static void count_new_by_severity(sw_notifier *n, const cJSON *diff)
{
    const cJSON *f;
    pthread_mutex_lock(&n->mu);
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(diff, "new"))
    {
        const cJSON *sev = cJSON_GetObjectItemCaseSensitive(f, "severity");
        sw_severity v = cJSON_IsString(sev)
                            ? sw_severity_parse(sev->valuestring, strlen(sev->valuestring))
                            : SW_SEV_UNKNOWN;
        n->stats.new_by_severity[v]++;
    }
    pthread_mutex_unlock(&n->mu);
}

/* One diff record -> mail entries or digest accumulations + its outbox delete, added to b.
 * *d_out keeps the parsed record (NULL if it was not JSON) for counting after the commit. */
static bool ingest_one(sw_notifier *n, sw_state_batch *b, uint64_t seq, const char *json,
                       size_t len, cJSON **d_out, sw_err *err)
{
    cJSON *d = cJSON_ParseWithLength(json, len);
    cJSON **items = calloc(n->routes.n ? n->routes.n : 1, sizeof *items);
    *d_out = d;
    if (items == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    sw_err rerr;
    sw_err_clear(&rerr);
    if (d == NULL || !sw_notify_route_diff(&n->routes, d, items, &rerr)) {
        char reason[600];
        snprintf(reason, sizeof reason, "diff record %llu cannot be notified: %s",
                 (unsigned long long)seq, d == NULL ? "not valid JSON" : rerr.msg);
        SW_LOG(SW_LOG_ERROR, "bad diff record", SW_LF_STR("reason", reason));
        dead_letter(n, "diff", reason, json, len);
    } else {
        for (size_t i = 0; i < n->routes.n; i++) {
            if (items[i] == NULL) {
                continue;
            }
            const sw_route *r = &n->routes.v[i];
            if (n->digest) {
                cJSON *acc = cJSON_CreateObject();
                cJSON_AddNumberToObject(acc, "t", (double)sw_time_now());
                cJSON_AddItemReferenceToObject(acc, "item", items[i]);
                char *v = cJSON_PrintUnformatted(acc);
                cJSON_Delete(acc);
                sw_buf k;
                sw_buf_init(&k, 4096);
                if (v == NULL || !digest_key(&k, r->name, seq)) {
                    free(v);
                    sw_buf_free(&k);
                    continue;
                }
                sw_state_batch_kv_put(b, k.data, k.len, v, strlen(v));
                n->dig[i].staged++;
                free(v);
                sw_buf_free(&k);
            } else if (!put_mails(n, b, r, i, &items[i], 1, seq, &rerr)) {
                char reason[700];
                snprintf(reason, sizeof reason, "route %s: rendering failed: %s", r->name,
                         rerr.msg);
                SW_LOG(SW_LOG_ERROR, "mail not rendered", SW_LF_STR("reason", reason));
                dead_letter(n, "mail", reason, json, len);
            }
        }
    }
    sw_state_batch_outbox_delete(b, seq);
    for (size_t i = 0; i < n->routes.n; i++) {
        cJSON_Delete(items[i]);
    }
    free(items);
    return true;
}

struct outbox_entry {
    uint64_t seq;
    char *json;
    size_t len;
};

struct outbox_collect {
    struct outbox_entry v[INGEST_BATCH];
    size_t n;
};

static bool collect_outbox(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct outbox_collect *c = ctx;
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return false;
    }
    memcpy(copy, json, len);
    copy[len] = '\0';
    c->v[c->n++] = (struct outbox_entry){seq, copy, len};
    return c->n < INGEST_BATCH;
}

/* Up to INGEST_BATCH diff records in one atomic (and, with state_sync, one synced) commit. */
static bool ingest(sw_notifier *n, size_t *count, sw_err *err)
{
    struct outbox_collect c = {.n = 0};
    cJSON *parsed[INGEST_BATCH] = {NULL};
    bool ok = sw_state_outbox_iter(n->st, n->next_seq, collect_outbox, &c, err);
    sw_state_batch *b = c.n > 0 ? sw_state_batch_new() : NULL;
    if (ok && c.n > 0 && b == NULL) {
        ok = sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; ok && i < c.n; i++) {
        ok = ingest_one(n, b, c.v[i].seq, c.v[i].json, c.v[i].len, &parsed[i], err);
    }
    if (ok && c.n > 0) {
        ok = sw_state_batch_commit(n->st, b, err);
    }
    for (size_t r = 0; n->digest && r < n->routes.n; r++) {
        struct dig *g = &n->dig[r];
        if (!ok) {
            g->known = false; /* read them again */
        } else if (g->staged > 0) {
            g->oldest = g->n == 0 ? (double)sw_time_now() : g->oldest;
            g->n += g->staged;
        }
        g->staged = 0;
    }
    for (size_t i = 0; i < c.n; i++) {
        if (ok) {
            n->next_seq = c.v[i].seq + 1;
            if (parsed[i] != NULL) {
                count_new_by_severity(n, parsed[i]);
            }
        }
        cJSON_Delete(parsed[i]);
        free(c.v[i].json);
    }
    sw_state_batch_free(b);
    if (ok) {
        pthread_mutex_lock(&n->mu);
        n->stats.diffs += c.n;
        pthread_mutex_unlock(&n->mu);
    }
    *count = ok ? c.n : 0;
    return ok;
}

/* ---- digests ------------------------------------------------------------------- */

struct digest_collect {
    cJSON **items;
    sw_buf *keys; /* each key followed by its length as size_t, packed */
    size_t n, cap;
    double oldest;
    uint64_t min_seq;
    bool oom;
    bool more; /* stopped at DIGEST_FLUSH_MAX: the rest is flushed by the next step */
};

static bool collect_digest(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct digest_collect *c = ctx;
    cJSON *acc = cJSON_ParseWithLength(val, vlen);
    cJSON *item = cJSON_DetachItemFromObjectCaseSensitive(acc, "item");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(acc, "t");
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        cJSON **ni = realloc(c->items, nc * sizeof *ni);
        if (ni == NULL) {
            c->oom = true;
            cJSON_Delete(acc);
            cJSON_Delete(item);
            return false;
        }
        c->items = ni;
        c->cap = nc;
    }
    if (cJSON_IsNumber(t) && (c->n == 0 || t->valuedouble < c->oldest)) {
        c->oldest = t->valuedouble;
    }
    cJSON_Delete(acc);
    c->items[c->n++] = item; /* NULL for a corrupt entry: skipped, still deleted */
    if (c->n == DIGEST_FLUSH_MAX) {
        c->more = true;
    }
    sw_buf_append(c->keys, &klen, sizeof klen);
    sw_buf_append(c->keys, key, klen);
    /* The key ends in the outbox sequence as 16 hex digits. */
    uint64_t seq = 0;
    bool hex = klen >= 16;
    for (size_t i = klen >= 16 ? klen - 16 : klen; hex && i < klen; i++) {
        char ch = ((const char *)key)[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        hex = v >= 0;
        seq = (seq << 4) | (uint64_t)(v & 15);
    }
    if (hex && (c->n == 1 || seq < c->min_seq)) {
        c->min_seq = seq;
    }
    return !c->keys->failed && !c->more;
}

static bool flush_route(sw_notifier *n, size_t ridx, bool force, sw_err *err)
{
    const sw_route *r = &n->routes.v[ridx];
    struct dig *g = &n->dig[ridx];
    if (!force && g->known &&
        (g->n == 0 || (double)sw_time_now() - g->oldest < (double)n->digest_interval)) {
        return true; /* nothing due: no need to read the entries */
    }
    sw_buf prefix, keys;
    sw_buf_init(&prefix, 4096);
    sw_buf_init(&keys, 0);
    sw_buf_printf(&prefix, "d/%s", r->name);
    sw_buf_append_char(&prefix, '\0');
    struct digest_collect c = {.keys = &keys};
    bool ok = sw_state_kv_iter_prefix(n->st, prefix.data, prefix.len, collect_digest, &c, err);
    if (ok && (c.oom || keys.failed)) {
        ok = sw_err_set(err, SW_E_NOMEM, "out of memory collecting a digest");
    }
    bool due = c.n > 0 && (force || (double)sw_time_now() - c.oldest >= (double)n->digest_interval);
    if (ok && due) {
        sw_state_batch *b = sw_state_batch_new();
        sw_err rerr;
        sw_err_clear(&rerr);
        if (b == NULL) {
            ok = sw_err_set(err, SW_E_NOMEM, "out of memory");
        } else {
            if (!put_mails(n, b, r, ridx, c.items, c.n, c.min_seq, &rerr)) {
                char reason[700];
                snprintf(reason, sizeof reason, "route %s: digest rendering failed: %s", r->name,
                         rerr.msg);
                dead_letter(n, "mail", reason, "", 0);
            }
            for (size_t off = 0; off < keys.len;) {
                size_t kl;
                memcpy(&kl, keys.data + off, sizeof kl);
                sw_state_batch_kv_delete(b, keys.data + off + sizeof kl, kl);
                off += sizeof kl + kl;
            }
            ok = sw_state_batch_commit(n->st, b, err);
            sw_state_batch_free(b);
            if (ok) {
                SW_LOG(SW_LOG_INFO, "digest rendered", SW_LF_STR("route", r->name),
                       SW_LF_UINT("images", c.n));
            }
        }
    }
    /* What was read is what is left (all of it unless it stopped at DIGEST_FLUSH_MAX,
     * whose oldest entries come first: keys end in the outbox sequence). */
    g->known = ok && (!due || !c.more);
    g->n = due ? 0 : c.n;
    g->oldest = c.oldest;
    for (size_t i = 0; i < c.n; i++) {
        cJSON_Delete(c.items[i]);
    }
    free(c.items);
    sw_buf_free(&prefix);
    sw_buf_free(&keys);
    return ok;
}

static bool any_digest_pending_fn(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)k;
    (void)kl;
    (void)v;
    (void)vl;
    *(bool *)ctx = true;
    return false;
}

/* ---- loading mail entries ---------------------------------------------------------- */

struct refill {
    sw_notifier *n;
    bool oom;
    bool full; /* stopped at the queue's bounds */
};

static bool refill_fn(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct refill *rf = ctx;
    sw_notifier *n = rf->n;
    for (size_t i = 0; i < n->n_jobs; i++) {
        if (n->jobs[i]->klen == klen && memcmp(n->jobs[i]->key, key, klen) == 0) {
            return true; /* queued or in flight already */
        }
    }
    if (n->n_jobs == QUEUE_MAX || (n->n_jobs > 0 && n->queued_bytes + vlen > QUEUE_BYTES_MAX)) {
        rf->full = true;
        return false;
    }
    struct job *j = calloc(1, sizeof *j);
    char *k = malloc(klen);
    char *b = malloc(vlen + 1);
    if (j == NULL || k == NULL || b == NULL) {
        free(j);
        free(k);
        free(b);
        rf->oom = true;
        return false;
    }
    memcpy(k, key, klen);
    memcpy(b, val, vlen);
    b[vlen] = '\0';
    *j = (struct job){.key = k, .klen = klen, .body = b, .blen = vlen};
    n->jobs[n->n_jobs++] = j;
    n->queued_bytes += vlen;
    if (klen <= sizeof n->cursor) {
        memcpy(n->cursor, key, klen);
        n->cursor_len = klen;
    }
    return true;
}

bool sw_notify_step(sw_notifier *n, bool flush_digests, bool *idle, sw_err *err)
{
    size_t ingested = 0;
    pthread_mutex_lock(&n->mu);
    bool render = n->digest || (!n->mails_beyond_queue && n->n_jobs <= QUEUE_MAX / 2);
    pthread_mutex_unlock(&n->mu);
    if (render && !ingest(n, &ingested, err)) {
        return false;
    }
    bool digests_left = false;
    if (n->digest) {
        for (size_t i = 0; i < n->routes.n; i++) {
            if (!flush_route(n, i, flush_digests, err)) {
                return false;
            }
        }
        bool counted = true;
        for (size_t i = 0; i < n->routes.n; i++) {
            counted = counted && n->dig[i].known;
            digests_left = digests_left || n->dig[i].n > 0;
        }
        if (!counted &&
            !sw_state_kv_iter_prefix(n->st, "d/", 2, any_digest_pending_fn, &digests_left, err)) {
            return false;
        }
    }
    /* Scanning under the lock: a sender deletes an entry before it drops the job,
     * so an entry seen here is either still queued or not yet loaded. */
    pthread_mutex_lock(&n->mu);
    /* Jobs the store failed to settle: only this thread touches done jobs. */
    for (size_t i = 0; i < n->n_jobs;) {
        struct job *j = n->jobs[i];
        if (j->done && settle(n, j)) {
            remove_job(n, j);
            continue;
        }
        i++;
    }
    struct refill rf = {.n = n};
    bool ok = n->n_jobs == QUEUE_MAX ||
              sw_state_kv_iter_from(n->st, "m/", 2, n->cursor, n->cursor_len, refill_fn, &rf, err);
    if (ok && rf.oom) {
        ok = sw_err_set(err, SW_E_NOMEM, "out of memory loading mails");
    }
    n->mails_beyond_queue = n->n_jobs == QUEUE_MAX || rf.full;
    size_t pending = n->n_jobs;
    n->stats.pending = pending;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    if (idle != NULL) {
        *idle = ok && render && ingested == 0 && pending == 0 && (!flush_digests || !digests_left);
    }
    return ok;
}

bool sw_notify_drain(sw_notifier *n, int64_t timeout_us, bool flush_digests, sw_err *err)
{
    int64_t deadline = sw_time_mono_us() + timeout_us;
    while (true) {
        bool idle = false;
        if (!sw_notify_step(n, flush_digests, &idle, err)) {
            return false;
        }
        if (idle) {
            return true;
        }
        if (sw_time_mono_us() >= deadline) {
            return sw_err_set(err, SW_E_TIMEOUT, "notifier not drained within %lld ms",
                              (long long)(timeout_us / 1000));
        }
        pthread_mutex_lock(&n->mu);
        timed_wait(n, sw_time_mono_us() + 20000);
        pthread_mutex_unlock(&n->mu);
    }
}

bool sw_notify_run(sw_notifier *n, const atomic_int *stop, sw_err *err)
{
    while (!atomic_load(stop)) {
        bool idle = false;
        if (!sw_notify_step(n, false, &idle, err)) {
            return false;
        }
        pthread_mutex_lock(&n->mu);
        timed_wait(n, sw_time_mono_us() + (idle ? IDLE_WAIT_US : 20000));
        pthread_mutex_unlock(&n->mu);
    }
    return true;
}

void sw_notify_stats_get(sw_notifier *n, sw_notify_stats *out)
{
    pthread_mutex_lock(&n->mu);
    *out = n->stats;
    pthread_mutex_unlock(&n->mu);
}

/* ---- construction -------------------------------------------------------------------- */

/* The mail sink the settings name (mail_sink, or graph / dir by what is configured). */
static bool sink_spec_from_config(const sw_config *cfg, const sw_entra_opts *eo, sw_sink_spec *spec,
                                  sw_err *err)
{
    const char *s = sw_cfg_str(cfg, SW_CFG_MAIL_SINK);
    if (s[0] == '\0') {
        s = sw_cfg_str(cfg, SW_CFG_MAIL_SENDER)[0] != '\0' && eo->method != SW_ENTRA_NONE
                ? "graph"
                : "dir:./scanwatch-mail";
    }
    return sw_sink_spec_parse(s, spec, err);
}

/* What the graph sink needs besides its token provider. */
static bool graph_sink_check(const sw_config *cfg, const sw_entra_opts *eo, sw_err *err)
{
    if (eo->method == SW_ENTRA_NONE) {
        return sw_err_set(err, SW_E_CONFIG,
                          "mail_sink graph needs Entra ID credentials: set auth_method and "
                          "tenant_id/client_id with client_secret or client_certificate, or "
                          "run with workload or managed identity");
    }
    if (sw_cfg_str(cfg, SW_CFG_MAIL_SENDER)[0] == '\0') {
        return sw_err_set(err, SW_E_CONFIG, "mail_sink graph needs mail_sender");
    }
    return true;
}

static bool choose_sink(sw_notifier *n, const sw_config *cfg, const sw_entra_opts *eo, sw_err *err)
{
    if (!sink_spec_from_config(cfg, eo, &n->spec, err)) {
        return false;
    }
    snprintf(n->stats.sink, sizeof n->stats.sink, "%s",
             n->spec.kind == SW_SINK_GRAPH ? "graph"
             : n->spec.kind == SW_SINK_DIR ? "dir"
                                           : "stdout");
    if (n->spec.kind == SW_SINK_GRAPH) {
        if (!graph_sink_check(cfg, eo, err) || !sw_entra_provider_new(eo, &n->tokens, err)) {
            return false;
        }
        n->have_tokens = true;
    }
    return true;
}

/* Records one problem (the first max are kept; all are counted). */
static void add_problem(sw_err *problems, size_t max, size_t *n, const sw_err *e)
{
    if (*n < max) {
        problems[*n] = *e;
    }
    (*n)++;
}

size_t sw_notify_check_config(const struct sw_config *cfg, sw_err *problems, size_t max)
{
    size_t n = 0;
    sw_err e;
    sw_err_clear(&e);
    sw_routes routes;
    memset(&routes, 0, sizeof routes);
    if (sw_notify_routes_parse(sw_cfg_str(cfg, SW_CFG_ROUTES), sw_cfg_str(cfg, SW_CFG_MAIL_TO),
                               &routes, &e)) {
        sw_notify_routes_free(&routes);
    } else {
        add_problem(problems, max, &n, &e);
    }
    sw_entra_opts eo;
    if (!sw_entra_opts_from_config(&eo, cfg, &e)) {
        add_problem(problems, max, &n, &e);
        return n;
    }
    sw_sink_spec spec;
    if (!sink_spec_from_config(cfg, &eo, &spec, &e)) {
        add_problem(problems, max, &n, &e);
        return n;
    }
    if (spec.kind != SW_SINK_GRAPH) {
        return n;
    }
    /* Each checked on its own so that one run names every problem. */
    if (!sw_http_url_check_secure("graph_base_url", sw_cfg_str(cfg, SW_CFG_GRAPH_BASE_URL), &e)) {
        add_problem(problems, max, &n, &e);
    }
    if (!graph_sink_check(cfg, &eo, &e)) {
        add_problem(problems, max, &n, &e);
        return n;
    }
    sw_token_provider tp;
    /* built to validate (authority_host, certificate), then dropped */
    if (sw_entra_provider_new(&eo, &tp, &e)) {
        sw_token_provider_destroy(&tp);
    } else {
        add_problem(problems, max, &n, &e);
    }
    return n;
}

sw_notifier *sw_notify_new(const sw_config *cfg, sw_state *st, sw_err *err)
{
    sw_notifier *n = calloc(1, sizeof *n);
    if (n == NULL) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    n->st = st;
    n->mails_beyond_queue = true; /* until the first load looks */
    n->jitter = (uint64_t)sw_time_mono_us() ^ (uint64_t)(uintptr_t)n;
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    n->digest = strcmp(sw_cfg_str(cfg, SW_CFG_MAIL_MODE), "digest") == 0;
    n->digest_interval = sw_cfg_int(cfg, SW_CFG_DIGEST_INTERVAL);
    n->ropts.save_to_sent_items = sw_cfg_bool(cfg, SW_CFG_SAVE_TO_SENT_ITEMS);
    n->ropts.max_request = (size_t)sw_cfg_int(cfg, SW_CFG_MAIL_MAX_REQUEST);
    n->ropts.digest = n->digest;
    n->timeout_us = sw_cfg_int(cfg, SW_CFG_HTTP_TIMEOUT);
    n->spacing_us = 60 * SW_US_PER_SEC / sw_cfg_int(cfg, SW_CFG_MAIL_RATE);
    n->backoff_min = sw_cfg_int(cfg, SW_CFG_MAIL_BACKOFF_MIN);
    n->backoff_max = sw_cfg_int(cfg, SW_CFG_MAIL_BACKOFF_MAX);
    n->graph_base = strdup(sw_cfg_str(cfg, SW_CFG_GRAPH_BASE_URL));
    n->sender = strdup(sw_cfg_str(cfg, SW_CFG_MAIL_SENDER));
    sw_entra_opts eo;
    bool ok = n->graph_base != NULL && n->sender != NULL;
    if (!ok) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    ok = ok &&
         sw_notify_routes_parse(sw_cfg_str(cfg, SW_CFG_ROUTES), sw_cfg_str(cfg, SW_CFG_MAIL_TO),
                                &n->routes, err) &&
         sw_entra_opts_from_config(&eo, cfg, err) && choose_sink(n, cfg, &eo, err);
    n->dig = ok ? calloc(n->routes.n ? n->routes.n : 1, sizeof *n->dig) : NULL;
    if (ok && n->dig == NULL) {
        ok = sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    if (ok && n->routes.n == 0) {
        SW_LOG(SW_LOG_WARN, "no notification routes: diff records leave the outbox unmailed",
               SW_LF_STR("hint", "set routes or mail_to"));
    }
    int want = (int)sw_cfg_int(cfg, SW_CFG_MAIL_CONCURRENCY);
    for (int i = 0; ok && i < want && i < MAX_THREADS; i++) {
        n->senders[i].n = n;
        n->senders[i].sink = sw_sink_new(&n->spec, n->graph_base, n->sender,
                                         n->have_tokens ? &n->tokens : NULL, n->timeout_us, err);
        if (n->senders[i].sink == NULL) {
            ok = false;
            break;
        }
        if (pthread_create(&n->threads[i], NULL, sender_main, &n->senders[i]) != 0) {
            sw_sink_free(n->senders[i].sink);
            n->senders[i].sink = NULL;
            ok = sw_err_set(err, SW_E_INTERNAL, "cannot start a mail sender thread");
            break;
        }
        n->n_threads++;
    }
    if (!ok) {
        sw_notify_free(n);
        return NULL;
    }
    SW_LOG(SW_LOG_INFO, "notifier started", SW_LF_STR("sink", n->stats.sink),
           SW_LF_STR("mode", n->digest ? "digest" : "per_image"), SW_LF_UINT("routes", n->routes.n),
           SW_LF_INT("concurrency", n->n_threads));
    return n;
}

void sw_notify_free(sw_notifier *n)
{
    if (n == NULL) {
        return;
    }
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    for (int i = 0; i < n->n_threads; i++) {
        pthread_join(n->threads[i], NULL);
        sw_sink_free(n->senders[i].sink);
    }
    for (size_t i = 0; i < n->n_jobs; i++) {
        job_free(n->jobs[i]);
    }
    if (n->have_tokens) {
        sw_token_provider_destroy(&n->tokens);
    }
    sw_notify_routes_free(&n->routes);
    free(n->dig);
    free(n->graph_base);
    free(n->sender);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
