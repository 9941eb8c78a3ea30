/*
 * The rescan engine: windows, the diff, and the one WriteBatch per processed
 * batch of events (see state_engine.h).
 *
 * In RAM: one small struct per open window (times, flags, tags, positions,
 * the image record read when it opened) plus copies of its records (all of
 * them while they fit in window_cache_bytes, else those since the last
 * commit). Records of earlier batches live in the windows column family, so
 * memory is bounded by the open windows, the cache and the batch size, not
 * by the stream.
 * All writes of a batch go to one plain WriteBatch; the keys read back
 * within a batch (image records, tag pointers, tag-basis finding JSON) are
 * also kept in an overlay, so a window applied twice in one batch (or a
 * tag-basis diff) reads its own writes.
 */
#include "store_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "scanwatch/log.h"
#include "scanwatch/state_engine.h"
#include "window.h"

/* One pending record in RAM: one allocation holding the struct, the JSON
 * and the key. */
struct prec {
    struct prec *next;
    sw_time_us scan_time;
    bool resolved, snapshot, clean;
    char *key; /* NULL for a clean marker */
    char *json;
    size_t json_len;
    uint64_t hash; /* content hash of the JSON (sw_finding_content_hash) */
    bool omitted;  /* JSON not kept: resolved, clean marker, or same as in S */
};

/*
 * The image's set S as of the window's opening (S changes only when this
 * window applies): finding keys with their content hashes, sorted by key,
 * pointing into the image record's bytes. A record whose finding is in S
 * with the same content needs no JSON: it cannot be new, and S already holds
 * that JSON.
 */
struct ssum {
    char *rec; /* the image record (rocksdb-allocated), or NULL; the apply
                * reuses it: only this window's apply changes it */
    size_t rec_len;
    sw_set_ent *ent;
    size_t n;
};

static void ssum_free(struct ssum *s)
{
    rocksdb_free(s->rec);
    free(s->ent);
    memset(s, 0, sizeof *s);
}

struct win {
    char *image;
    char *repository;
    sw_time_us min_scan, max_scan, last_event, last_wall, T;
    uint64_t n_records, n_committed;
    uint64_t n_chunks;        /* durable record chunks (one per commit that added records) */
    uint64_t n_chunks_staged; /* n_chunks once the batch being built commits */
    /* RAM copy of the records: all of them while `retain` (so applying
     * needs no read of the windows column family), else only those not yet
     * committed (index n_committed on). */
    bool retain;
    bool all_snapshot, has_clean, capped, meta_committed;
    size_t n_tags, tags_cap;
    char **tags; /* up to SW_WIN_MAX_TAGS, grown as they come: most windows have one or two */
    char *first_partition, *first_offset, *last_partition, *last_offset;
    struct prec *ph, *pt;
    struct ssum sum;
    bool dirty;
    struct win *dirty_prev, *dirty_next;
    size_t heap_idx;
    struct win *lru_prev, *lru_next;
    struct win *hnext;
    uint64_t hash;
};

struct part {
    char *id;
    sw_state_checkpoint cp;
    bool dirty;
};

struct sw_state_engine {
    sw_state *st;
    sw_state_engine_opts o;
    rocksdb_writebatch_t *wb;
    /* This batch's writes to the keys the engine reads back (image records,
     * tag pointers, and with diff_basis = tag the finding JSON): a plain
     * WriteBatch has no index, so reads consult this overlay first. */
    struct ov **ov;
    size_t ov_cap, ov_n;
    struct win **tab;
    size_t tab_cap, n_win;
    struct win **heap;
    size_t heap_n, heap_cap;
    struct win *lru_head, *lru_tail;
    struct win *dirty_head;
    struct part *parts;
    size_t n_parts, cap_parts;
    sw_time_us max_event;
    size_t pending_events;
    bool more_due; /* closing stopped at batch_bytes_max (sw_state_engine_more_due) */
    size_t ram_bytes; /* record copies held in RAM (bounded by window_cache_bytes) */
    bool outbox_dirty;
    uint64_t outbox_next;
    uint64_t outbox_staged; /* outbox entries in the batch being built */
    /* diff_log */
    FILE *log;
    bool log_is_file;
    sw_buf log_pending;
    uint64_t log_pending_next; /* outbox seq after the last pending line */
    uint64_t log_next;         /* seqs below this are in the file */
    bool log_progress_dirty;
    sw_buf k, v; /* scratch */
    bool ov_failed;
    sw_state_engine_stats stats;
};

/* ---- small helpers ---- */

static char *dupstr(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

/* ---- the batch and its read-back overlay ---- */

struct ov {
    struct ov *next;
    uint64_t h;
    sw_cf cf;
    bool deleted;
    size_t kl, vl;
    char *v; /* points after the key in the same allocation */
    char k[];
};

static uint64_t ov_hash(sw_cf cf, const void *k, size_t kl)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)cf;
    for (size_t i = 0; i < kl; i++) {
        h = (h ^ ((const unsigned char *)k)[i]) * 1099511628211ULL;
    }
    return h;
}

static bool ov_wanted(const sw_state_engine *e, sw_cf cf)
{
    return cf == SW_CF_IMAGES || cf == SW_CF_TAGS ||
           (cf == SW_CF_SETS && e->o.diff_basis == SW_DIFF_BASIS_TAG);
}

static struct ov **ov_slot(sw_state_engine *e, sw_cf cf, const void *k, size_t kl, uint64_t h)
{
    struct ov **pp = &e->ov[h & (e->ov_cap - 1)];
    while (*pp != NULL &&
           ((*pp)->h != h || (*pp)->cf != cf || (*pp)->kl != kl || memcmp((*pp)->k, k, kl) != 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

static void ov_clear(sw_state_engine *e)
{
    for (size_t i = 0; i < e->ov_cap && e->ov_n > 0; i++) {
        struct ov *o = e->ov[i];
        while (o != NULL) {
            struct ov *next = o->next;
            free(o);
            e->ov_n--;
            o = next;
        }
        e->ov[i] = NULL;
    }
}

/* Records a write for read-back; false on allocation failure. */
static bool ov_set(sw_state_engine *e, sw_cf cf, const void *k, size_t kl, const void *v, size_t vl,
                   bool deleted)
{
    if (e->ov_n + 1 > e->ov_cap) {
        size_t cap = e->ov_cap ? e->ov_cap * 2 : 256;
        struct ov **tab = calloc(cap, sizeof *tab);
        if (tab == NULL) {
            return false;
        }
        for (size_t i = 0; i < e->ov_cap; i++) {
            struct ov *o = e->ov[i];
            while (o != NULL) {
                struct ov *next = o->next;
                o->next = tab[o->h & (cap - 1)];
                tab[o->h & (cap - 1)] = o;
                o = next;
            }
        }
        free(e->ov);
        e->ov = tab;
        e->ov_cap = cap;
    }
    uint64_t h = ov_hash(cf, k, kl);
    struct ov **pp = ov_slot(e, cf, k, kl, h);
    struct ov *o = malloc(sizeof *o + kl + vl + 1);
    if (o == NULL) {
        return false;
    }
    o->h = h;
    o->cf = cf;
    o->deleted = deleted;
    o->kl = kl;
    o->vl = deleted ? 0 : vl;
    memcpy(o->k, k, kl);
    o->v = o->k + kl;
    if (o->vl > 0) {
        memcpy(o->v, v, vl);
    }
    o->v[o->vl] = '\0';
    if (*pp != NULL) { /* replace */
        o->next = (*pp)->next;
        free(*pp);
        *pp = o;
    } else {
        o->next = NULL;
        *pp = o;
        e->ov_n++;
    }
    return true;
}

/* An allocation failure of the overlay would make a later read of this
 * batch miss its own write: the engine stops with an error at commit. */
static void put(sw_state_engine *e, sw_cf cf, const void *k, size_t kl, const void *v, size_t vl)
{
    rocksdb_writebatch_put_cf(e->wb, e->st->cf[cf], k, kl, v, vl);
    if (ov_wanted(e, cf) && !ov_set(e, cf, k, kl, v, vl, false)) {
        e->ov_failed = true;
    }
}

static void del(sw_state_engine *e, sw_cf cf, const void *k, size_t kl)
{
    rocksdb_writebatch_delete_cf(e->wb, e->st->cf[cf], k, kl);
    if (ov_wanted(e, cf) && !ov_set(e, cf, k, kl, NULL, 0, true)) {
        e->ov_failed = true;
    }
}

/* Reads through the batch: this batch's writes win over the database. The
 * result is freed with rocksdb_free (free). */
static char *get_wb(sw_state_engine *e, sw_cf cf, const void *k, size_t kl, size_t *vl, sw_err *err)
{
    if (e->ov_n > 0 && ov_wanted(e, cf)) {
        struct ov *o = *ov_slot(e, cf, k, kl, ov_hash(cf, k, kl));
        if (o != NULL) {
            *vl = 0;
            if (o->deleted) {
                return NULL;
            }
            char *v = malloc(o->vl + 1);
            if (v == NULL) {
                sw_err_set(err, SW_E_NOMEM, "read");
                return NULL;
            }
            memcpy(v, o->v, o->vl + 1);
            *vl = o->vl;
            return v;
        }
    }
    char *rerr = NULL;
    char *v = rocksdb_get_cf(e->st->db, e->st->ro, e->st->cf[cf], k, kl, vl, &rerr);
    if (!sw_state_rerr(rerr, err, "read")) {
        return NULL;
    }
    return v;
}

/* ---- window table, heap (rule b) and LRU list (rule c) ---- */

static bool tab_grow(sw_state_engine *e)
{
    size_t cap = e->tab_cap ? e->tab_cap * 2 : 1024;
    struct win **tab = calloc(cap, sizeof *tab);
    if (tab == NULL) {
        return false;
    }
    for (size_t i = 0; i < e->tab_cap; i++) {
        struct win *w = e->tab[i];
        while (w != NULL) {
            struct win *next = w->hnext;
            w->hnext = tab[w->hash & (cap - 1)];
            tab[w->hash & (cap - 1)] = w;
            w = next;
        }
    }
    free(e->tab);
    e->tab = tab;
    e->tab_cap = cap;
    return true;
}

static struct win *tab_find(sw_state_engine *e, const char *image, uint64_t h)
{
    if (e->tab_cap == 0) {
        return NULL;
    }
    for (struct win *w = e->tab[h & (e->tab_cap - 1)]; w != NULL; w = w->hnext) {
        if (w->hash == h && strcmp(w->image, image) == 0) {
            return w;
        }
    }
    return NULL;
}

static void tab_remove(sw_state_engine *e, struct win *w)
{
    struct win **pp = &e->tab[w->hash & (e->tab_cap - 1)];
    while (*pp != w) {
        pp = &(*pp)->hnext;
    }
    *pp = w->hnext;
    e->n_win--;
}

/* A window without an event time (no enqueued time given) never closes by
 * rule (b): it sorts last. */
static sw_time_us heap_key(const struct win *w)
{
    return w->last_event == SW_TIME_UNSET ? INT64_MAX : w->last_event;
}

/* Ties break on the image key so that windows due together close in the
 * same order in a live run and in a run restarted from the store. */
static bool heap_less(const struct win *a, const struct win *b)
{
    sw_time_us ka = heap_key(a), kb = heap_key(b);
    if (ka != kb) {
        return ka < kb;
    }
    return strcmp(a->image, b->image) < 0;
}

static void heap_swap(sw_state_engine *e, size_t i, size_t j)
{
    struct win *t = e->heap[i];
    e->heap[i] = e->heap[j];
    e->heap[j] = t;
    e->heap[i]->heap_idx = i;
    e->heap[j]->heap_idx = j;
}

static void heap_up(sw_state_engine *e, size_t i)
{
    while (i > 0 && heap_less(e->heap[i], e->heap[(i - 1) / 2])) {
        heap_swap(e, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(sw_state_engine *e, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->heap_n && heap_less(e->heap[l], e->heap[m])) {
            m = l;
        }
        if (r < e->heap_n && heap_less(e->heap[r], e->heap[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(e, i, m);
        i = m;
    }
}

static bool heap_push(sw_state_engine *e, struct win *w)
{
    if (e->heap_n == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 1024;
        struct win **h = realloc(e->heap, cap * sizeof *h);
        if (h == NULL) {
            return false;
        }
        e->heap = h;
        e->heap_cap = cap;
    }
    w->heap_idx = e->heap_n;
    e->heap[e->heap_n++] = w;
    heap_up(e, w->heap_idx);
    return true;
}

static void heap_remove(sw_state_engine *e, struct win *w)
{
    size_t i = w->heap_idx;
    e->heap_n--;
    if (i != e->heap_n) {
        heap_swap(e, i, e->heap_n);
        heap_up(e, i);
        heap_down(e, e->heap[i]->heap_idx);
    }
}

static void lru_unlink(sw_state_engine *e, struct win *w)
{
    if (w->lru_prev != NULL) {
        w->lru_prev->lru_next = w->lru_next;
    } else {
        e->lru_head = w->lru_next;
    }
    if (w->lru_next != NULL) {
        w->lru_next->lru_prev = w->lru_prev;
    } else {
        e->lru_tail = w->lru_prev;
    }
    w->lru_prev = w->lru_next = NULL;
}

static void lru_append(sw_state_engine *e, struct win *w)
{
    w->lru_prev = e->lru_tail;
    w->lru_next = NULL;
    if (e->lru_tail != NULL) {
        e->lru_tail->lru_next = w;
    } else {
        e->lru_head = w;
    }
    e->lru_tail = w;
}

static void mark_dirty(sw_state_engine *e, struct win *w)
{
    if (w->dirty) {
        return;
    }
    w->dirty = true;
    w->dirty_prev = NULL;
    w->dirty_next = e->dirty_head;
    if (e->dirty_head != NULL) {
        e->dirty_head->dirty_prev = w;
    }
    e->dirty_head = w;
}

static void dirty_unlink(sw_state_engine *e, struct win *w)
{
    if (!w->dirty) {
        return;
    }
    if (w->dirty_prev != NULL) {
        w->dirty_prev->dirty_next = w->dirty_next;
    } else {
        e->dirty_head = w->dirty_next;
    }
    if (w->dirty_next != NULL) {
        w->dirty_next->dirty_prev = w->dirty_prev;
    }
    w->dirty = false;
    w->dirty_prev = w->dirty_next = NULL;
}

static size_t prec_size(const struct prec *p)
{
    return sizeof *p + p->json_len + 1 + (p->key != NULL ? strlen(p->key) + 1 : 0);
}

static void free_precs(struct win *w, size_t *ram_bytes)
{
    struct prec *p = w->ph;
    while (p != NULL) {
        struct prec *next = p->next;
        *ram_bytes -= prec_size(p);
        free(p);
        p = next;
    }
    w->ph = w->pt = NULL;
}

static void win_free(struct win *w, size_t *ram_bytes)
{
    if (w == NULL) {
        return;
    }
    free_precs(w, ram_bytes);
    ssum_free(&w->sum);
    free(w->image);
    free(w->repository);
    for (size_t i = 0; i < w->n_tags; i++) {
        free(w->tags[i]);
    }
    free(w->tags);
    free(w->first_partition);
    free(w->first_offset);
    free(w->last_partition);
    free(w->last_offset);
    free(w);
}

/* Registers a new window in the table, heap and LRU list. */
static bool win_insert(sw_state_engine *e, struct win *w)
{
    if ((e->n_win + 1) * 2 > e->tab_cap && !tab_grow(e)) {
        return false;
    }
    if (!heap_push(e, w)) {
        return false;
    }
    w->hash = hash_str(w->image);
    w->hnext = e->tab[w->hash & (e->tab_cap - 1)];
    e->tab[w->hash & (e->tab_cap - 1)] = w;
    e->n_win++;
    lru_append(e, w);
    return true;
}

static void win_drop(sw_state_engine *e, struct win *w)
{
    tab_remove(e, w);
    heap_remove(e, w);
    lru_unlink(e, w);
    dirty_unlink(e, w);
    win_free(w, &e->ram_bytes);
}

static void win_add_tags(struct win *w, const char *const *tags, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool have = false;
        for (size_t j = 0; j < w->n_tags && !have; j++) {
            have = strcmp(w->tags[j], tags[i]) == 0;
        }
        if (!have && w->n_tags < SW_WIN_MAX_TAGS && tags[i] != NULL) {
            if (w->n_tags == w->tags_cap) {
                size_t cap = w->tags_cap == 0 ? 2 : w->tags_cap * 2;
                char **grown = realloc(w->tags, cap * sizeof *grown);
                if (grown == NULL) {
                    return; /* a tag fewer in the mail, as past SW_WIN_MAX_TAGS */
                }
                w->tags = grown;
                w->tags_cap = cap;
            }
            char *t = strdup(tags[i]);
            if (t != NULL) {
                w->tags[w->n_tags++] = t;
            }
        }
    }
}

/* ---- partitions and checkpoints ---- */

static struct part *part_get(sw_state_engine *e, const char *id)
{
    for (size_t i = 0; i < e->n_parts; i++) {
        if (strcmp(e->parts[i].id, id) == 0) {
            return &e->parts[i];
        }
    }
    if (e->n_parts == e->cap_parts) {
        size_t cap = e->cap_parts ? e->cap_parts * 2 : 8;
        struct part *p = realloc(e->parts, cap * sizeof *p);
        if (p == NULL) {
            return NULL;
        }
        e->parts = p;
        e->cap_parts = cap;
    }
    struct part *p = &e->parts[e->n_parts];
    memset(p, 0, sizeof *p);
    p->id = strdup(id);
    if (p->id == NULL) {
        return NULL;
    }
    p->cp.max_event_time = SW_TIME_UNSET;
    p->cp.enqueued = SW_TIME_UNSET;
    e->n_parts++;
    return p;
}

static bool load_cp_cb(void *ctx, const char *partition, const sw_state_checkpoint *cp)
{
    sw_state_engine *e = ctx;
    struct part *p = part_get(e, partition);
    if (p != NULL) {
        p->cp = *cp;
        if (cp->max_event_time != SW_TIME_UNSET && cp->max_event_time > e->max_event) {
            e->max_event = cp->max_event_time;
        }
    }
    return true;
}

/* ---- image records ---- */

/* T of image (SW_TIME_UNSET when never applied), read through the batch;
 * with sum, also the summary of S (sum->rec NULL when there is no record). */
static bool load_T(sw_state_engine *e, const char *image, sw_time_us *T, struct ssum *sum,
                   sw_err *err)
{
    size_t vl = 0;
    sw_err_clear(err);
    char *v = get_wb(e, SW_CF_IMAGES, image, strlen(image), &vl, err);
    *T = SW_TIME_UNSET;
    if (!sw_err_ok(err)) {
        return false;
    }
    if (v == NULL) {
        return true;
    }
    sw_state_image_rec r;
    if (!sw_state_image_rec_decode(v, vl, &r)) {
        rocksdb_free(v);
        return true;
    }
    *T = r.last_scan;
    if (sum == NULL) {
        rocksdb_free(v);
        return true;
    }
    sum->rec = v;
    sum->rec_len = vl;
    if (r.findings == 0) {
        return true;
    }
    sum->ent = malloc(r.findings * sizeof *sum->ent);
    if (sum->ent == NULL) {
        ssum_free(sum);
        return sw_err_set(err, SW_E_NOMEM, "set summary of %s", image);
    }
    const unsigned char *p = r.entries, *end = (const unsigned char *)r.entries + r.entries_len;
    while (sum->n < r.findings && sw_set_ent_next(&p, end, &sum->ent[sum->n])) {
        sum->n++;
    }
    return true;
}

/* The content hash of key in S, or false when key is not in S. */
static bool ssum_find(const struct ssum *s, const char *key, uint64_t *hash)
{
    size_t lo = 0, hi = s->n, kl = strlen(key);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sw_set_ent *x = &s->ent[mid];
        int c = memcmp(x->key, key, x->key_len < kl ? x->key_len : kl);
        if (c == 0) {
            c = x->key_len < kl ? -1 : (x->key_len > kl ? 1 : 0);
        }
        if (c == 0) {
            *hash = x->hash;
            return true;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

/* ---- apply ---- */

/* One record of a closing window. key/json point into RAM records, or
 * (in_arena) at offsets of the gather arena for records read back. */
struct dec {
    size_t key_off, json_off, json_len;
    const char *key;
    const char *json;
    sw_time_us scan;
    uint64_t idx, hash;
    bool resolved, omitted, in_arena;
};

struct gather {
    sw_buf arena;
    struct dec *d;
    size_t n, cap;
    bool oom;
};

static struct dec *gather_slot(struct gather *g)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        struct dec *d = realloc(g->d, cap * sizeof *d);
        if (d == NULL) {
            g->oom = true;
            return NULL;
        }
        g->d = d;
        g->cap = cap;
    }
    struct dec *d = &g->d[g->n++];
    memset(d, 0, sizeof *d);
    return d;
}

/* A record read from the windows CF: copied (the iterator's bytes move on). */
static void gather_copy(struct gather *g, const sw_win_rec *r, uint64_t idx)
{
    struct dec *d = gather_slot(g);
    if (d == NULL) {
        return;
    }
    d->in_arena = true;
    d->key_off = g->arena.len;
    sw_buf_append(&g->arena, r->key, strlen(r->key) + 1);
    d->json_off = g->arena.len;
    d->json_len = r->json_len;
    sw_buf_append(&g->arena, r->json != NULL ? r->json : "", r->json_len);
    sw_buf_append_char(&g->arena, '\0');
    d->scan = r->scan_time;
    d->idx = idx;
    d->hash = r->hash;
    d->resolved = r->resolved;
    d->omitted = r->omitted;
}

/* A record in RAM: borrowed (the window outlives the gather). */
static void gather_ram(struct gather *g, const struct prec *p, uint64_t idx)
{
    struct dec *d = gather_slot(g);
    if (d == NULL) {
        return;
    }
    d->key = p->key;
    d->json = p->json;
    d->json_len = p->json_len;
    d->scan = p->scan_time;
    d->idx = idx;
    d->hash = p->hash;
    d->resolved = p->resolved;
    d->omitted = p->omitted;
}

static int dec_cmp(const void *a, const void *b)
{
    const struct dec *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0) {
        return c;
    }
    if (x->scan != y->scan) {
        return x->scan < y->scan ? -1 : 1;
    }
    return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

/* Collects the window's records (durable chunks are deleted in the batch)
 * and leaves one decider per key, sorted by key. */
static bool gather_window(sw_state_engine *e, struct win *w, struct gather *g, sw_err *err)
{
    if (w->retain) {
        /* Every record is in RAM: delete the durable chunks blindly. */
        for (uint64_t i = 0; i < w->n_chunks; i++) {
            sw_win_rec_key(&e->k, w->image, i);
            del(e, SW_CF_WINDOWS, e->k.data, e->k.len);
        }
    } else if (w->n_chunks > 0) {
        sw_win_rec_prefix(&e->k, w->image);
        size_t plen = e->k.len;
        sw_state_piter pi;
        if (!sw_state_prefix_iter(e->st, SW_CF_WINDOWS, NULL, e->k.data, plen, &pi)) {
            return sw_err_set(err, SW_E_NOMEM, "window scan");
        }
        uint64_t idx = 0;
        for (; rocksdb_iter_valid(pi.it); rocksdb_iter_next(pi.it)) {
            size_t kl, vl;
            const char *k = rocksdb_iter_key(pi.it, &kl);
            if (kl != plen + 8 || memcmp(k, e->k.data, plen) != 0) {
                break;
            }
            const unsigned char *v = (const unsigned char *)rocksdb_iter_value(pi.it, &vl);
            const unsigned char *end = v + vl;
            sw_win_rec r;
            while (sw_win_rec_next(&v, end, &r)) {
                if (r.key != NULL) {
                    gather_copy(g, &r, idx);
                }
                idx++;
            }
            del(e, SW_CF_WINDOWS, k, kl);
        }
        if (!sw_state_prefix_iter_free(&pi, err)) {
            return false;
        }
    }
    uint64_t idx = w->retain ? 0 : w->n_committed;
    for (struct prec *p = w->ph; p != NULL; p = p->next, idx++) {
        if (p->key != NULL) {
            gather_ram(g, p, idx);
        }
    }
    if (g->oom || g->arena.failed) {
        return sw_err_set(err, SW_E_NOMEM, "window of %s", w->image);
    }
    for (size_t i = 0; i < g->n; i++) {
        if (g->d[i].in_arena) {
            g->d[i].key = g->arena.data + g->d[i].key_off;
            g->d[i].json = g->arena.data + g->d[i].json_off;
        }
    }
    if (g->n > 1) {
        qsort(g->d, g->n, sizeof *g->d, dec_cmp);
    }
    size_t out = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (i + 1 < g->n && strcmp(g->d[i].key, g->d[i + 1].key) == 0) {
            continue; /* a later record (greater scan time, or later arrival) decides */
        }
        g->d[out++] = g->d[i];
    }
    g->n = out;
    return true;
}

struct diff {
    sw_buf new_json; /* comma-separated finding objects */
    sw_buf resolved; /* comma-separated JSON strings */
    uint64_t n_new, n_resolved, n_base, n_after;
};

static void set_key(sw_buf *k, const char *image, const char *key, size_t klen)
{
    sw_key_set_prefix(k, image);
    sw_buf_append(k, key, klen);
}

static void put_json(sw_state_engine *e, const char *image, const char *key, size_t klen,
                     const char *json, size_t jl)
{
    set_key(&e->k, image, key, klen);
    put(e, SW_CF_SETS, e->k.data, e->k.len, json, jl);
}

static void del_json(sw_state_engine *e, const char *image, const char *key, size_t klen)
{
    set_key(&e->k, image, key, klen);
    del(e, SW_CF_SETS, e->k.data, e->k.len);
}

static void note_new(struct diff *d, const struct dec *x)
{
    if (d->n_new++ > 0) {
        sw_buf_append_char(&d->new_json, ',');
    }
    sw_buf_append(&d->new_json, x->json, x->json_len);
}

static void note_resolved(struct diff *d, const char *key, size_t klen)
{
    if (d->n_resolved++ > 0) {
        sw_buf_append_char(&d->resolved, ',');
    }
    sw_buf_append_json_str(&d->resolved, key, klen);
}

static int ent_cmp(const sw_set_ent *s, const char *key)
{
    size_t gl = strlen(key);
    int c = memcmp(s->key, key, s->key_len < gl ? s->key_len : gl);
    if (c == 0) {
        c = s->key_len < gl ? -1 : (s->key_len > gl ? 1 : 0);
    }
    return c;
}

/* diff_basis = tag: the base's finding JSON, copied to the new digest. */
static bool copy_json(sw_state_engine *e, const char *base, const char *target, const sw_set_ent *s,
                      sw_err *err)
{
    set_key(&e->k, base, s->key, s->key_len);
    size_t vl = 0;
    sw_err_clear(err);
    char *v = get_wb(e, SW_CF_SETS, e->k.data, e->k.len, &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    put_json(e, target, s->key, s->key_len, v != NULL ? v : "", v != NULL ? vl : 0);
    rocksdb_free(v);
    return true;
}

/*
 * Merges the base set S (the entries of the base image's record, sorted by
 * key) with the window's deciders (sorted) into the target's new entries
 * (out), and writes the finding JSON of entries that are new or whose
 * content changed; an unchanged finding only gets a new last-seen time in
 * out. base != target only for diff_basis = tag, where the new digest
 * inherits the base's entries.
 */
static bool merge_sets(sw_state_engine *e, const char *base, const char *target,
                       const void *base_ents, size_t base_len, const struct gather *g, bool full,
                       sw_time_us now_scan, struct diff *d, sw_buf *out, sw_err *err)
{
    bool copy_all = strcmp(base, target) != 0;
    const unsigned char *bp = base_ents, *bend = (const unsigned char *)base_ents + base_len;
    sw_set_ent s;
    bool have_s = sw_set_ent_next(&bp, bend, &s);
    size_t gi = 0;
    while (have_s || gi < g->n) {
        int c = !have_s ? 1 : (gi >= g->n ? -1 : ent_cmp(&s, g->d[gi].key));
        if (c < 0) { /* in S, not in the window */
            d->n_base++;
            if (full) {
                note_resolved(d, s.key, s.key_len);
                if (!copy_all) {
                    del_json(e, target, s.key, s.key_len);
                }
            } else {
                d->n_after++;
                sw_set_ent n = s;
                if (copy_all) {
                    n.last = now_scan;
                    if (!copy_json(e, base, target, &s, err)) {
                        return false;
                    }
                }
                sw_set_ent_encode(out, &n);
            }
            have_s = sw_set_ent_next(&bp, bend, &s);
            continue;
        }
        const struct dec *x = &g->d[gi];
        if (c == 0) { /* in S and decided in the window */
            d->n_base++;
            if (x->resolved) {
                note_resolved(d, s.key, s.key_len);
                if (!copy_all) {
                    del_json(e, target, s.key, s.key_len);
                }
            } else {
                d->n_after++;
                sw_set_ent n = s;
                n.last = x->scan;
                n.hash = x->hash;
                /* An omitted JSON is S's own (same hash): nothing to write. */
                if (copy_all || n.hash != s.hash) {
                    put_json(e, target, s.key, s.key_len, x->json, x->json_len);
                }
                sw_set_ent_encode(out, &n);
            }
            have_s = sw_set_ent_next(&bp, bend, &s);
            gi++;
            continue;
        }
        if (!x->resolved) { /* new */
            if (x->omitted) {
                /* Only a finding of S has its JSON omitted, and S changes
                 * only when this window applies: a broken invariant. */
                return sw_err_set(err, SW_E_STATE, "window of %s lost the JSON of new finding %s",
                                  target, x->key);
            }
            note_new(d, x);
            d->n_after++;
            sw_set_ent n = {x->key, strlen(x->key), x->scan, x->scan, x->hash};
            put_json(e, target, n.key, n.key_len, x->json, x->json_len);
            sw_set_ent_encode(out, &n);
        }
        gi++;
    }
    if (bp != bend && base_len > 0) {
        SW_LOG(SW_LOG_WARN, "image record with a malformed finding set; the rest is dropped",
               SW_LF_STR("image", base));
    }
    if (d->new_json.failed || d->resolved.failed || out->failed) {
        return sw_err_set(err, SW_E_NOMEM, "diff of %s", target);
    }
    return true;
}

/* diff_basis = tag: the latest other digest of one of the window's tags. */
static bool tag_base(sw_state_engine *e, const struct win *w, char **base, sw_err *err)
{
    *base = NULL;
    if (w->repository == NULL) {
        return true;
    }
    for (size_t i = 0; i < w->n_tags && *base == NULL; i++) {
        sw_buf_reset(&e->k);
        sw_buf_printf(&e->k, "%s:%s", w->repository, w->tags[i]);
        size_t vl = 0;
        sw_err_clear(err);
        char *v = get_wb(e, SW_CF_TAGS, e->k.data, e->k.len, &vl, err);
        if (!sw_err_ok(err)) {
            return false;
        }
        if (v != NULL) {
            if (vl != strlen(w->image) || memcmp(v, w->image, vl) != 0) {
                *base = strndup(v, vl);
            }
            rocksdb_free(v);
        }
    }
    return true;
}

static void diff_record_json(sw_state_engine *e, const struct win *w, const char *base,
                             const struct diff *d, sw_buf *out)
{
    char ts[SW_TIME_BUF];
    sw_time_format(w->max_scan, ts, sizeof ts);
    sw_buf_append_str(out, "{\"image\":");
    sw_buf_append_json_cstr(out, w->image);
    sw_buf_append_str(out, ",\"tags\":[");
    for (size_t i = 0; i < w->n_tags; i++) {
        if (i > 0) {
            sw_buf_append_char(out, ',');
        }
        sw_buf_append_json_cstr(out, w->tags[i]);
    }
    sw_buf_printf(out, "],\"scan_time\":\"%s\",\"new\":[", ts);
    sw_buf_append(out, d->new_json.data, d->new_json.len);
    sw_buf_append_str(out, "],\"resolved\":[");
    sw_buf_append(out, d->resolved.data, d->resolved.len);
    sw_buf_printf(out, "],\"unchanged\":%llu,\"partition\":",
                  (unsigned long long)(d->n_base - d->n_resolved));
    sw_buf_append_json_cstr(out, w->first_partition);
    sw_buf_append_str(out, ",\"first_offset\":");
    sw_buf_append_json_cstr(out, w->first_offset);
    sw_buf_append_str(out, ",\"last_offset\":");
    sw_buf_append_json_cstr(out, w->last_offset);
    if (base != NULL) {
        sw_buf_append_str(out, ",\"base_image\":");
        sw_buf_append_json_cstr(out, base);
    }
    sw_buf_append_char(out, '}');
}

static bool window_full(const sw_state_engine *e, const struct win *w)
{
    if (w->capped) {
        return false; /* a cut window did not see the whole scan */
    }
    if (w->T != SW_TIME_UNSET && w->min_scan <= w->T + e->o.scan_quiet_us) {
        return false; /* continuation: late records of an applied scan */
    }
    switch (e->o.semantics) {
    case SW_RESCAN_FULL:
        return true;
    case SW_RESCAN_DELTA:
        return false;
    case SW_RESCAN_AUTO:
    default:
        return w->all_snapshot || w->has_clean;
    }
}

/* The image record: T, apply time, |S|, tags (a rescan whose records carry
 * no tags, e.g. Qualys, keeps the known ones from old), and the entries. */
static bool write_image(sw_state_engine *e, const struct win *w, const struct diff *d,
                        const sw_state_image_rec *old, const sw_buf *ents, sw_err *err)
{
    sw_state_image_rec r;
    memset(&r, 0, sizeof r);
    r.last_scan = w->T == SW_TIME_UNSET || w->max_scan > w->T ? w->max_scan : w->T;
    r.last_apply = sw_time_now();
    r.findings = d->n_after;
    for (size_t i = 0; i < w->n_tags && i < SW_STATE_MAX_TAGS; i++) {
        r.tags[r.n_tags++] = w->tags[i];
    }
    if (w->n_tags == 0 && old != NULL) {
        for (size_t i = 0; i < old->n_tags; i++) {
            r.tags[r.n_tags++] = old->tags[i];
        }
    }
    sw_buf_reset(&e->v);
    sw_state_image_rec_encode(&r, ents->data, ents->len, &e->v);
    if (!sw_buf_check(&e->v, err)) {
        return false;
    }
    put(e, SW_CF_IMAGES, w->image, strlen(w->image), e->v.data, e->v.len);
    if (e->o.diff_basis == SW_DIFF_BASIS_TAG && w->repository != NULL) {
        for (size_t i = 0; i < w->n_tags; i++) {
            sw_buf_reset(&e->k);
            sw_buf_printf(&e->k, "%s:%s", w->repository, w->tags[i]);
            put(e, SW_CF_TAGS, e->k.data, e->k.len, w->image, strlen(w->image));
        }
    }
    return true;
}

/* Reads an image record through the batch; *v is NULL when there is none. */
static bool read_image(sw_state_engine *e, const char *image, char **v, sw_state_image_rec *r,
                       sw_err *err)
{
    size_t vl = 0;
    sw_err_clear(err);
    *v = get_wb(e, SW_CF_IMAGES, image, strlen(image), &vl, err);
    if (!sw_err_ok(err)) {
        return false;
    }
    memset(r, 0, sizeof *r);
    if (*v != NULL && !sw_state_image_rec_decode(*v, vl, r)) {
        SW_LOG(SW_LOG_WARN, "corrupt image record; its finding set is treated as empty",
               SW_LF_STR("image", image));
        memset(r, 0, sizeof *r);
    }
    return true;
}

static bool emit_record(sw_state_engine *e, const struct win *w, const char *base,
                        const struct diff *d, sw_err *err)
{
    sw_buf rec = SW_BUF_INIT;
    sw_buf_init(&rec, 0);
    diff_record_json(e, w, base, d, &rec);
    if (!sw_buf_check(&rec, err)) {
        sw_buf_free(&rec);
        return false;
    }
    uint64_t seq = sw_state_reserve_outbox(e->st, 1);
    unsigned char k[8];
    sw_enc_be64(k, seq);
    put(e, SW_CF_OUTBOX, k, 8, rec.data, rec.len);
    e->outbox_staged++;
    e->outbox_next = seq + 1;
    e->outbox_dirty = true;
    if (e->log != NULL) {
        sw_buf_append(&e->log_pending, rec.data, rec.len);
        sw_buf_append_char(&e->log_pending, '\n');
        e->log_pending_next = seq + 1;
    }
    e->stats.diff_records++;
    sw_buf_free(&rec);
    return true;
}

/* Closes w: the diff, the set update, the outbox record; frees w. */
static bool apply_window(sw_state_engine *e, struct win *w, sw_err *err)
{
    struct gather g;
    memset(&g, 0, sizeof g);
    sw_buf_init(&g.arena, 0);
    struct diff d;
    memset(&d, 0, sizeof d);
    sw_buf_init(&d.new_json, 0);
    sw_buf_init(&d.resolved, 0);
    sw_buf ents;
    sw_buf_init(&ents, 0);
    char *base = NULL, *old_v = NULL, *base_v = NULL;
    sw_state_image_rec old, base_rec;
    memset(&old, 0, sizeof old);
    memset(&base_rec, 0, sizeof base_rec);
    bool ok = gather_window(e, w, &g, err);
    /* Never applied: no record to read (T is unset exactly when it has
     * none). Else the record read when the window opened is still current. */
    bool have_old = false;
    if (ok && w->T != SW_TIME_UNSET) {
        if (w->sum.rec != NULL && sw_state_image_rec_decode(w->sum.rec, w->sum.rec_len, &old)) {
            have_old = true;
        } else {
            ok = read_image(e, w->image, &old_v, &old, err);
            have_old = old_v != NULL;
        }
    }
    if (ok && w->T == SW_TIME_UNSET && e->o.diff_basis == SW_DIFF_BASIS_TAG) {
        ok = tag_base(e, w, &base, err);
        if (ok && base != NULL) {
            ok = read_image(e, base, &base_v, &base_rec, err);
        }
    }
    bool full = window_full(e, w);
    if (ok) {
        const sw_state_image_rec *b = base != NULL ? &base_rec : &old;
        ok = merge_sets(e, base != NULL ? base : w->image, w->image, b->entries, b->entries_len, &g,
                        full, w->max_scan, &d, &ents, err);
    }
    if (ok) {
        ok = write_image(e, w, &d, have_old ? &old : NULL, &ents, err);
    }
    bool first = w->T == SW_TIME_UNSET && base == NULL;
    bool silent = (first && e->o.first_scan == SW_FIRST_SCAN_BASELINE) ||
                  (e->o.baseline_until != SW_TIME_UNSET && w->last_event < e->o.baseline_until);
    if (ok && (d.n_new > 0 || d.n_resolved > 0)) {
        if (silent) {
            e->stats.silent_applies++;
        } else {
            ok = emit_record(e, w, base, &d, err);
            e->stats.new_findings += d.n_new;
            e->stats.resolved_findings += d.n_resolved;
        }
    }
    if (ok && w->meta_committed) {
        sw_win_meta_key(&e->k, w->image);
        del(e, SW_CF_WINDOWS, e->k.data, e->k.len);
    }
    free(base);
    rocksdb_free(old_v);
    rocksdb_free(base_v);
    free(g.d);
    sw_buf_free(&g.arena);
    sw_buf_free(&d.new_json);
    sw_buf_free(&d.resolved);
    sw_buf_free(&ents);
    if (!ok) {
        return false;
    }
    e->stats.windows_applied++;
    if (w->capped) {
        e->stats.windows_capped++;
    }
    win_drop(e, w);
    return true;
}

/* ---- records ---- */

static struct win *open_window(sw_state_engine *e, const sw_state_record *r, sw_time_us T)
{
    struct win *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->image = strdup(r->image);
    w->repository = dupstr(r->repository);
    w->T = T;
    w->min_scan = w->max_scan = r->scan_time;
    w->last_event = SW_TIME_UNSET;
    w->all_snapshot = true;
    w->retain = true;
    if (w->image == NULL || (r->repository != NULL && w->repository == NULL) || !win_insert(e, w)) {
        win_free(w, &e->ram_bytes);
        return NULL;
    }
    e->stats.windows_opened++;
    return w;
}

/* Replaces *dst with src, reusing the allocation when it fits: positions
 * change on every record, and offsets rarely grow. */
static bool set_str(char **dst, const char *src)
{
    const char *v = src != NULL ? src : "";
    size_t n = strlen(v);
    if (*dst != NULL && strlen(*dst) >= n) {
        memcpy(*dst, v, n + 1);
        return true;
    }
    char *s = strdup(v);
    if (s == NULL) {
        return false;
    }
    free(*dst);
    *dst = s;
    return true;
}

static bool join_window(sw_state_engine *e, struct win *w, const sw_state_pos *pos,
                        const sw_state_record *r)
{
    /* Only a finding that may be new or changed needs its JSON kept. */
    uint64_t hash = 0, in_s = 0;
    bool omit = r->resolved || r->key == NULL;
    if (!omit) {
        hash = sw_finding_content_hash(r->finding_json, r->finding_len);
        omit = ssum_find(&w->sum, r->key, &in_s) && in_s == hash;
    }
    size_t jl = omit ? 0 : r->finding_len;
    size_t klen = r->key != NULL ? strlen(r->key) + 1 : 0;
    struct prec *p = malloc(sizeof *p + jl + 1 + klen);
    if (p == NULL) {
        return false;
    }
    memset(p, 0, sizeof *p);
    p->scan_time = r->scan_time;
    p->resolved = r->resolved;
    p->snapshot = r->snapshot;
    p->clean = r->clean_marker;
    p->hash = hash;
    p->omitted = omit;
    p->json_len = jl;
    p->json = (char *)(p + 1);
    if (jl > 0) {
        memcpy(p->json, r->finding_json, jl);
    }
    p->json[jl] = '\0';
    if (klen > 0) {
        p->key = p->json + jl + 1;
        memcpy(p->key, r->key, klen);
    }
    e->ram_bytes += prec_size(p);
    if (w->pt != NULL) {
        w->pt->next = p;
    } else {
        w->ph = p;
    }
    w->pt = p;
    w->n_records++;
    if (r->scan_time < w->min_scan) {
        w->min_scan = r->scan_time;
    }
    if (r->scan_time > w->max_scan) {
        w->max_scan = r->scan_time;
    }
    w->all_snapshot = w->all_snapshot && r->snapshot;
    w->has_clean = w->has_clean || r->clean_marker;
    win_add_tags(w, r->tags, r->n_tags);
    if (w->first_partition == NULL && (!set_str(&w->first_partition, pos->partition) ||
                                       !set_str(&w->first_offset, pos->offset))) {
        return false;
    }
    if (!set_str(&w->last_partition, pos->partition) || !set_str(&w->last_offset, pos->offset)) {
        return false;
    }
    if (pos->enqueued != SW_TIME_UNSET &&
        (w->last_event == SW_TIME_UNSET || pos->enqueued > w->last_event)) {
        w->last_event = pos->enqueued;
        /* The key may move either way (from "unset" = last, or up). */
        heap_up(e, w->heap_idx);
        heap_down(e, w->heap_idx);
    }
    w->last_wall = sw_time_now();
    lru_unlink(e, w);
    lru_append(e, w);
    mark_dirty(e, w);
    return true;
}

/* Rule (b)'s next window: its last record's event time is more than
 * scan_quiet behind the highest event time seen. */
static struct win *due_by_event_time(const sw_state_engine *e, sw_time_us now)
{
    (void)now;
    bool due = e->max_event != SW_TIME_UNSET && e->heap_n > 0 &&
               e->heap[0]->last_event != SW_TIME_UNSET &&
               e->max_event - e->heap[0]->last_event > e->o.scan_quiet_us;
    return due ? e->heap[0] : NULL;
}

/* Rule (c)'s next window: no record for scan_quiet of wall time. */
static struct win *due_by_wall_time(const sw_state_engine *e, sw_time_us now)
{
    bool due = e->lru_head != NULL && now - e->lru_head->last_wall > e->o.scan_quiet_us;
    return due ? e->lru_head : NULL;
}

static bool batch_full(const sw_state_engine *e)
{
    size_t n = 0;
    rocksdb_writebatch_data(e->wb, &n);
    return n >= e->o.batch_bytes_max;
}

/* Applies the windows a rule finds due, in its order. bounded: stops once
 * the batch is full while windows are still due (more_due); at least one
 * window is applied per call. */
static bool close_due(sw_state_engine *e, struct win *(*due)(const sw_state_engine *, sw_time_us),
                      sw_time_us now, bool bounded, sw_err *err)
{
    struct win *w;
    while ((w = due(e, now)) != NULL) {
        if (!apply_window(e, w, err)) {
            return false;
        }
        if (bounded && due(e, now) != NULL && batch_full(e)) {
            e->more_due = true;
            return true;
        }
    }
    return true;
}

bool sw_state_engine_add(sw_state_engine *e, const sw_state_pos *pos, const sw_state_record *r,
                         sw_err *err)
{
    if (r->image == NULL || r->image[0] == '\0' || (r->key == NULL && !r->clean_marker)) {
        return sw_err_set(err, SW_E_INVALID_ARG, "record without image or finding key");
    }
    if (r->scan_time == SW_TIME_UNSET) {
        return sw_err_set(err, SW_E_INVALID_ARG, "record of %s without scan time", r->image);
    }
    /* Windows left due by a bounded close (or by a restart between its
     * commits) close before a record could join one of them. */
    if (!close_due(e, due_by_event_time, 0, false, err)) {
        return false;
    }
    struct win *w = tab_find(e, r->image, hash_str(r->image));
    sw_time_us T = SW_TIME_UNSET;
    struct ssum sum = {NULL, 0, NULL, 0};
    if (w != NULL) {
        T = w->T;
    } else if (!load_T(e, r->image, &T, &sum, err)) {
        return false;
    }
    int64_t q = e->o.scan_quiet_us;
    if (T != SW_TIME_UNSET && r->scan_time < T - q) {
        ssum_free(&sum);
        e->stats.stale++;
        return true;
    }
    if (w != NULL && (r->scan_time > w->max_scan + q || w->n_records >= e->o.max_window_records)) {
        if (w->n_records >= e->o.max_window_records) {
            w->capped = true;
            SW_LOG(SW_LOG_WARN, "window reached max_window_records; applied early as a delta",
                   SW_LF_STR("image", w->image), SW_LF_UINT("records", w->n_records));
        }
        if (!apply_window(e, w, err)) {
            return false;
        }
        w = NULL;
        if (!load_T(e, r->image, &T, &sum, err)) {
            return false;
        }
    }
    if (w == NULL) {
        w = open_window(e, r, T);
        if (w == NULL) {
            ssum_free(&sum);
            return sw_err_set(err, SW_E_NOMEM, "window for %s", r->image);
        }
        w->sum = sum;
    }
    if (!join_window(e, w, pos, r)) {
        return sw_err_set(err, SW_E_NOMEM, "record for %s", r->image);
    }
    e->stats.records++;
    return true;
}

bool sw_state_engine_dead_letter(sw_state_engine *e, const sw_state_pos *pos, const char *kind,
                                 const char *reason, const void *bytes, size_t len, sw_err *err)
{
    sw_state_dead_letter dl = {0};
    dl.kind = kind;
    dl.reason = reason;
    dl.partition = pos != NULL ? pos->partition : "";
    dl.offset = pos != NULL ? pos->offset : "";
    dl.bytes = bytes;
    dl.len = len;
    sw_buf_reset(&e->v);
    sw_state_encode_dead_letter(e->st, &dl, sw_time_now(), &e->v);
    if (!sw_buf_check(&e->v, err)) {
        return false;
    }
    unsigned char k[8];
    sw_enc_be64(k, sw_state_reserve_dead_letter(e->st));
    put(e, SW_CF_DEAD_LETTER, k, 8, e->v.data, e->v.len);
    e->stats.dead_letters++;
    return true;
}

bool sw_state_engine_event_done(sw_state_engine *e, const sw_state_pos *pos, sw_err *err)
{
    struct part *p = part_get(e, pos->partition);
    if (p == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "partition table");
    }
    size_t ol = strlen(pos->offset != NULL ? pos->offset : "");
    if (ol >= sizeof p->cp.offset) {
        return sw_err_set(err, SW_E_INVALID_ARG, "offset of partition %s is too long",
                          pos->partition);
    }
    memcpy(p->cp.offset, pos->offset != NULL ? pos->offset : "", ol + 1);
    p->cp.sequence = pos->sequence;
    p->cp.enqueued = pos->enqueued;
    if (pos->enqueued != SW_TIME_UNSET &&
        (p->cp.max_event_time == SW_TIME_UNSET || pos->enqueued > p->cp.max_event_time)) {
        p->cp.max_event_time = pos->enqueued;
    }
    p->dirty = true;
    if (pos->enqueued != SW_TIME_UNSET &&
        (e->max_event == SW_TIME_UNSET || pos->enqueued > e->max_event)) {
        e->max_event = pos->enqueued;
    }
    e->pending_events++;
    e->more_due = false;
    return close_due(e, due_by_event_time, 0, true, err);
}

bool sw_state_engine_tick(sw_state_engine *e, sw_time_us now, sw_time_us max_event_time,
                          bool caught_up, sw_err *err)
{
    if (max_event_time != SW_TIME_UNSET &&
        (e->max_event == SW_TIME_UNSET || max_event_time > e->max_event)) {
        e->max_event = max_event_time;
    }
    e->more_due = false;
    if (!close_due(e, due_by_event_time, now, true, err)) {
        return false;
    }
    if (e->more_due || !caught_up) {
        return true; /* rule (c) goes on after what rule (b) left is committed */
    }
    return close_due(e, due_by_wall_time, now, true, err);
}

bool sw_state_engine_close_all(sw_state_engine *e, sw_err *err)
{
    while (e->heap_n > 0) {
        if (!apply_window(e, e->heap[0], err)) {
            return false;
        }
    }
    return true;
}

bool sw_state_engine_more_due(const sw_state_engine *e)
{
    return e->more_due;
}

size_t sw_state_engine_pending_events(const sw_state_engine *e)
{
    return e->pending_events;
}

void sw_state_engine_get_stats(const sw_state_engine *e, sw_state_engine_stats *out)
{
    *out = e->stats;
    out->open_windows = e->n_win;
}

/* ---- commit ---- */

static bool stage_window(sw_state_engine *e, struct win *w, sw_err *err)
{
    /* The records that joined since the last commit, as one chunk. */
    uint64_t idx = w->retain ? 0 : w->n_committed;
    size_t n = 0;
    sw_buf_reset(&e->v);
    for (struct prec *p = w->ph; p != NULL; p = p->next, idx++) {
        if (idx < w->n_committed) {
            continue; /* durable since an earlier commit */
        }
        sw_win_rec r = {p->scan_time, p->resolved, p->snapshot, p->clean,  p->key,
                        p->json,      p->json_len, p->hash,     p->omitted};
        sw_win_rec_encode(&r, &e->v);
        n++;
    }
    w->n_chunks_staged = w->n_chunks;
    if (n > 0) {
        sw_win_rec_key(&e->k, w->image, w->n_chunks);
        if (!sw_buf_check(&e->k, err) || !sw_buf_check(&e->v, err)) {
            return false;
        }
        put(e, SW_CF_WINDOWS, e->k.data, e->k.len, e->v.data, e->v.len);
        w->n_chunks_staged = w->n_chunks + 1;
    }
    sw_win_meta m;
    memset(&m, 0, sizeof m);
    m.image = w->image;
    m.repository = w->repository;
    m.min_scan = w->min_scan;
    m.max_scan = w->max_scan;
    m.last_event = w->last_event;
    m.n_records = w->n_records;
    m.n_chunks = w->n_chunks_staged;
    m.all_snapshot = w->all_snapshot;
    m.has_clean = w->has_clean;
    m.capped = w->capped;
    m.n_tags = w->n_tags;
    for (size_t i = 0; i < w->n_tags; i++) {
        m.tags[i] = w->tags[i];
    }
    m.first_partition = w->first_partition;
    m.first_offset = w->first_offset;
    m.last_partition = w->last_partition;
    m.last_offset = w->last_offset;
    sw_win_meta_key(&e->k, w->image);
    sw_buf_reset(&e->v);
    sw_win_meta_encode(&m, &e->v);
    if (!sw_buf_check(&e->k, err) || !sw_buf_check(&e->v, err)) {
        return false;
    }
    put(e, SW_CF_WINDOWS, e->k.data, e->k.len, e->v.data, e->v.len);
    return true;
}

static void stage_log_progress(sw_state_engine *e)
{
    unsigned char v[16];
    long size = ftell(e->log);
    sw_enc_be64(v, e->log_next);
    sw_enc_be64(v + 8, size > 0 ? (uint64_t)size : 0);
    put(e, SW_CF_META, SW_META_DIFFLOG, strlen(SW_META_DIFFLOG), v, 16);
}

bool sw_state_engine_commit(sw_state_engine *e, sw_err *err)
{
    for (struct win *w = e->dirty_head; w != NULL; w = w->dirty_next) {
        if (!stage_window(e, w, err)) {
            return false;
        }
    }
    bool checkpoint = false;
    for (size_t i = 0; i < e->n_parts; i++) {
        struct part *p = &e->parts[i];
        if (!p->dirty) {
            continue;
        }
        sw_buf_reset(&e->v);
        sw_state_checkpoint_encode(&p->cp, &e->v);
        if (!sw_buf_check(&e->v, err)) {
            return false;
        }
        put(e, SW_CF_CHECKPOINTS, p->id, strlen(p->id), e->v.data, e->v.len);
        checkpoint = true;
    }
    if (e->outbox_dirty) {
        unsigned char v[8];
        sw_enc_be64(v, e->outbox_next);
        put(e, SW_CF_META, SW_META_OUTBOX_NEXT, strlen(SW_META_OUTBOX_NEXT), v, 8);
    }
    if (e->log_is_file && e->log_progress_dirty) {
        stage_log_progress(e);
    }
    if (e->ov_failed) {
        return sw_err_set(err, SW_E_NOMEM, "batch overlay");
    }
    char *rerr = NULL;
    rocksdb_write(e->st->db, checkpoint ? e->st->wo : e->st->wo_fast, e->wb, &rerr);
    if (!sw_state_rerr(rerr, err, "commit")) {
        return false;
    }
    rocksdb_writebatch_clear(e->wb);
    ov_clear(e);
    sw_state_outbox_added(e->st, e->outbox_staged);
    e->outbox_staged = 0;
    e->stats.commits++;
    /* The batch is durable: only now may its effects be forgotten in RAM. */
    while (e->dirty_head != NULL) {
        struct win *w = e->dirty_head;
        if (!w->retain || e->ram_bytes > e->o.window_cache_bytes) {
            free_precs(w, &e->ram_bytes);
            w->retain = false;
        }
        w->n_committed = w->n_records;
        w->n_chunks = w->n_chunks_staged;
        w->meta_committed = true;
        dirty_unlink(e, w);
    }
    for (size_t i = 0; i < e->n_parts; i++) {
        e->parts[i].dirty = false;
    }
    e->outbox_dirty = false;
    e->pending_events = 0;
    e->log_progress_dirty = false;
    if (e->log != NULL && e->log_pending.len > 0) {
        if (fwrite(e->log_pending.data, 1, e->log_pending.len, e->log) != e->log_pending.len ||
            fflush(e->log) != 0) {
            SW_LOG(SW_LOG_ERROR, "diff_log write failed", SW_LF_STR("diff_log", e->o.diff_log));
        }
        e->log_next = e->log_pending_next;
        e->log_progress_dirty = true;
        sw_buf_reset(&e->log_pending);
    }
    return true;
}

/* ---- start-up ---- */

static bool load_window_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    sw_state_engine *e = ctx;
    sw_win_meta m;
    if (!sw_win_meta_decode(v, vl, &m)) {
        SW_LOG(SW_LOG_WARN, "skipping a corrupt open window record");
        return true;
    }
    struct win *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return false;
    }
    w->image = strdup(m.image);
    w->repository = dupstr(m.repository);
    w->min_scan = m.min_scan;
    w->max_scan = m.max_scan;
    w->last_event = m.last_event;
    w->last_wall = sw_time_now();
    w->n_records = w->n_committed = m.n_records;
    w->n_chunks = w->n_chunks_staged = m.n_chunks;
    w->all_snapshot = m.all_snapshot;
    w->has_clean = m.has_clean;
    w->capped = m.capped;
    w->meta_committed = true;
    w->first_partition = dupstr(m.first_partition);
    w->first_offset = dupstr(m.first_offset);
    w->last_partition = dupstr(m.last_partition);
    w->last_offset = dupstr(m.last_offset);
    win_add_tags(w, m.tags, m.n_tags);
    if (w->image == NULL || !win_insert(e, w)) {
        win_free(w, &e->ram_bytes);
        return false;
    }
    return true;
}

struct relog {
    sw_state_engine *e;
    size_t skip;
    uint64_t next;
};

static bool relog_cb(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct relog *rl = ctx;
    if (rl->skip > 0) {
        rl->skip--;
    } else {
        fwrite(json, 1, len, rl->e->log);
        fputc('\n', rl->e->log);
    }
    rl->next = seq + 1;
    return true;
}

/*
 * diff_log exactly once: the meta key holds (first outbox seq not yet in
 * the file, file size) as of the last commit. Lines after that size were
 * written after a later commit; re-write only the outbox entries they miss.
 */
static bool open_diff_log(sw_state_engine *e, sw_err *err)
{
    const char *path = e->o.diff_log;
    if (path == NULL || path[0] == '\0') {
        return true;
    }
    if (strcmp(path, "-") == 0) {
        e->log = stdout;
        return true;
    }
    e->log = fopen(path, "a+");
    if (e->log == NULL) {
        return sw_err_set(err, SW_E_IO, "cannot open diff_log '%s'", path);
    }
    e->log_is_file = true;
    fseek(e->log, 0, SEEK_END);
    long size = ftell(e->log);
    size_t vl = 0;
    sw_err_clear(err);
    char *rerr = NULL;
    char *v = rocksdb_get_cf(e->st->db, e->st->ro, e->st->cf[SW_CF_META], SW_META_DIFFLOG,
                             strlen(SW_META_DIFFLOG), &vl, &rerr);
    if (!sw_state_rerr(rerr, err, "read diff_log progress")) {
        return false;
    }
    uint64_t next = 0, at = 0;
    bool known = v != NULL && vl == 16;
    if (known) {
        next = sw_dec_be64((const unsigned char *)v);
        at = sw_dec_be64((const unsigned char *)v + 8);
    }
    rocksdb_free(v);
    if (!known || size < 0 || (uint64_t)size < at) {
        /* A new or replaced file: everything committed so far counts as logged. */
        e->log_next = sw_state_reserve_outbox(e->st, 0);
        e->log_progress_dirty = true;
        return true;
    }
    /* Count complete lines written after `at`; drop a torn last line. */
    size_t lines = 0;
    long last_nl = (long)at;
    fseek(e->log, (long)at, SEEK_SET);
    for (long pos = (long)at; pos < size; pos++) {
        int c = fgetc(e->log);
        if (c == EOF) {
            break;
        }
        if (c == '\n') {
            lines++;
            last_nl = pos + 1;
        }
    }
    if (last_nl < size && ftruncate(fileno(e->log), last_nl) != 0) {
        return sw_err_set(err, SW_E_IO, "cannot repair diff_log '%s'", path);
    }
    fseek(e->log, 0, SEEK_END);
    struct relog rl = {e, lines, next};
    if (!sw_state_outbox_iter(e->st, next, relog_cb, &rl, err)) {
        return false;
    }
    fflush(e->log);
    e->log_next = rl.next;
    e->log_progress_dirty = true;
    return true;
}

sw_state_engine *sw_state_engine_new(sw_state *st, const sw_state_engine_opts *opts, sw_err *err)
{
    sw_state_engine *e = calloc(1, sizeof *e);
    if (e == NULL) {
        sw_err_set(err, SW_E_NOMEM, "engine");
        return NULL;
    }
    e->st = st;
    e->o = *opts;
    e->o.diff_log = NULL;
    if (e->o.max_window_records == 0) {
        e->o.max_window_records = 100000;
    }
    if (e->o.batch_bytes_max == 0) {
        e->o.batch_bytes_max = (size_t)4 << 20;
    }

    e->max_event = SW_TIME_UNSET;
    sw_buf_init(&e->k, 0);
    sw_buf_init(&e->v, 0);
    sw_buf_init(&e->log_pending, 0);
    e->wb = rocksdb_writebatch_create();
    if (st->read_only) {
        sw_err_set(err, SW_E_STATE, "the state is open read-only");
        goto fail;
    }
    if (opts->diff_log != NULL && opts->diff_log[0] != '\0') {
        e->o.diff_log = strdup(opts->diff_log);
        if (e->o.diff_log == NULL) {
            sw_err_set(err, SW_E_NOMEM, "engine");
            goto fail;
        }
    }
    sw_buf_reset(&e->k);
    sw_buf_append_char(&e->k, SW_WIN_META);
    if (!sw_state_scan(st, SW_CF_WINDOWS, e->k.data, e->k.len, load_window_cb, e, err) ||
        !sw_state_checkpoint_iter(st, load_cp_cb, e, err)) {
        goto fail;
    }
    for (size_t i = 0; i < e->heap_n; i++) {
        if (!load_T(e, e->heap[i]->image, &e->heap[i]->T, &e->heap[i]->sum, err)) {
            goto fail;
        }
    }
    if (!open_diff_log(e, err)) {
        goto fail;
    }
    return e;
fail:
    sw_state_engine_free(e);
    return NULL;
}

void sw_state_engine_free(sw_state_engine *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->heap_n; i++) {
        win_free(e->heap[i], &e->ram_bytes);
    }
    free(e->heap);
    free(e->tab);
    for (size_t i = 0; i < e->n_parts; i++) {
        free(e->parts[i].id);
    }
    free(e->parts);
    if (e->wb != NULL) {
        rocksdb_writebatch_destroy(e->wb);
    }
    ov_clear(e);
    free(e->ov);
    if (e->log != NULL && e->log != stdout) {
        fclose(e->log);
    } else if (e->log == stdout) {
        fflush(stdout);
    }
    free((char *)e->o.diff_log);
    sw_buf_free(&e->k);
    sw_buf_free(&e->v);
    sw_buf_free(&e->log_pending);
    free(e);
}

/* ---- image_ttl ---- */

struct sweep {
    sw_state_engine *e;
    sw_time_us cutoff;
    rocksdb_writebatch_t *wb;
    char **dropped;
    size_t n, cap;
    bool oom;
};

static bool sweep_image_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sweep *s = ctx;
    sw_state_image_rec r;
    if (!sw_state_image_rec_decode(v, vl, &r) || r.last_apply >= s->cutoff) {
        return true;
    }
    char *image = strndup(k, kl);
    if (image == NULL) {
        s->oom = true;
        return false;
    }
    if (tab_find(s->e, image, hash_str(image)) != NULL) {
        free(image); /* being rescanned right now */
        return true;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **d = realloc(s->dropped, cap * sizeof *d);
        if (d == NULL) {
            free(image);
            s->oom = true;
            return false;
        }
        s->dropped = d;
        s->cap = cap;
    }
    s->dropped[s->n++] = image;
    return true;
}

static bool sweep_set_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sweep *s = ctx;
    rocksdb_writebatch_delete_cf(s->wb, s->e->st->cf[SW_CF_SETS], k, kl);
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool sweep_tag_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sweep *s = ctx;
    char *image = strndup(v, vl);
    if (image == NULL) {
        s->oom = true;
        return false;
    }
    if (bsearch(&image, s->dropped, s->n, sizeof *s->dropped, cmp_str) != NULL) {
        rocksdb_writebatch_delete_cf(s->wb, s->e->st->cf[SW_CF_TAGS], k, kl);
    }
    free(image);
    return true;
}

bool sw_state_engine_sweep(sw_state_engine *e, sw_time_us now, int64_t ttl_us, uint64_t *dropped,
                           sw_err *err)
{
    *dropped = 0;
    if (!sw_state_engine_commit(e, err)) {
        return false;
    }
    struct sweep s;
    memset(&s, 0, sizeof s);
    s.e = e;
    s.cutoff = now - ttl_us;
    s.wb = rocksdb_writebatch_create();
    bool ok = sw_state_scan(e->st, SW_CF_IMAGES, NULL, 0, sweep_image_cb, &s, err) && !s.oom;
    if (s.n > 1) {
        qsort(s.dropped, s.n, sizeof *s.dropped, cmp_str);
    }
    for (size_t i = 0; ok && i < s.n; i++) {
        rocksdb_writebatch_delete_cf(s.wb, e->st->cf[SW_CF_IMAGES], s.dropped[i],
                                     strlen(s.dropped[i]));
        sw_key_set_prefix(&e->k, s.dropped[i]);
        ok = sw_state_scan(e->st, SW_CF_SETS, e->k.data, e->k.len, sweep_set_cb, &s, err);
    }
    if (ok && s.n > 0) {
        ok = sw_state_scan(e->st, SW_CF_TAGS, NULL, 0, sweep_tag_cb, &s, err) && !s.oom;
    }
    if (ok && s.n > 0) {
        char *rerr = NULL;
        rocksdb_write(e->st->db, e->st->wo, s.wb, &rerr);
        ok = sw_state_rerr(rerr, err, "sweep");
    }
    if (!ok && sw_err_ok(err)) {
        sw_err_set(err, SW_E_NOMEM, "sweep");
    }
    if (ok) {
        *dropped = s.n;
    }
    for (size_t i = 0; i < s.n; i++) {
        free(s.dropped[i]);
    }
    free(s.dropped);
    rocksdb_writebatch_destroy(s.wb);
    return ok;
}
