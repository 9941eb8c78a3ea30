/* Read-only views of images, sets and open windows for `scanwatch state`. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "window.h"

static bool window_exists(sw_state *st, const char *image)
{
    sw_buf k;
    sw_buf_init(&k, 0);
    sw_win_meta_key(&k, image);
    size_t vl = 0;
    char *rerr = NULL;
    char *v = rocksdb_get_cf(st->db, st->ro, st->cf[SW_CF_WINDOWS], k.data, k.len, &vl, &rerr);
    sw_buf_free(&k);
    bool found = v != NULL;
    rocksdb_free(v);
    rocksdb_free(rerr);
    return found;
}

struct img_iter {
    sw_state *st;
    sw_state_image_fn fn;
    void *ctx;
    char *last; /* last image reported, to merge windows of unknown images */
};

static bool report_image(sw_state *st, const char *image, const char *v, size_t vl,
                         sw_state_image_fn fn, void *ctx)
{
    sw_state_image_info info;
    memset(&info, 0, sizeof info);
    sw_state_image_rec r;
    memset(&r, 0, sizeof r);
    info.image = image;
    info.last_scan = SW_TIME_UNSET;
    info.last_apply = SW_TIME_UNSET;
    if (v != NULL && sw_state_image_rec_decode(v, vl, &r)) {
        info.last_scan = r.last_scan;
        info.last_apply = r.last_apply;
        info.findings = r.findings;
        info.tags = r.tags;
        info.n_tags = r.n_tags;
    }
    info.window_open = window_exists(st, image);
    return fn(ctx, &info);
}

static bool img_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct img_iter *ii = ctx;
    char *image = strndup(k, kl);
    if (image == NULL) {
        return false;
    }
    bool more = report_image(ii->st, image, v, vl, ii->fn, ii->ctx);
    free(image);
    return more;
}

/* Images whose first window is still open have no image record yet. */
static bool win_only_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct img_iter *ii = ctx;
    char *image = strndup(k + 1, kl - 1);
    if (image == NULL) {
        return false;
    }
    size_t il = 0;
    char *rerr = NULL;
    char *rec = rocksdb_get_cf(ii->st->db, ii->st->ro, ii->st->cf[SW_CF_IMAGES], image,
                               strlen(image), &il, &rerr);
    rocksdb_free(rerr);
    bool more = true;
    if (rec == NULL) {
        more = report_image(ii->st, image, NULL, 0, ii->fn, ii->ctx);
    }
    rocksdb_free(rec);
    free(image);
    return more;
}

bool sw_state_images_iter(sw_state *st, sw_state_image_fn fn, void *ctx, sw_err *err)
{
    struct img_iter ii = {st, fn, ctx, NULL};
    char m = SW_WIN_META;
    return sw_state_scan(st, SW_CF_IMAGES, NULL, 0, img_cb, &ii, err) &&
           sw_state_scan(st, SW_CF_WINDOWS, &m, 1, win_only_cb, &ii, err);
}

bool sw_state_image_get(sw_state *st, const char *image, sw_state_image_fn fn, void *ctx,
                        bool *found, sw_err *err)
{
    size_t vl = 0;
    char *rerr = NULL;
    char *v =
        rocksdb_get_cf(st->db, st->ro, st->cf[SW_CF_IMAGES], image, strlen(image), &vl, &rerr);
    if (!sw_state_rerr(rerr, err, "read image")) {
        return false;
    }
    *found = v != NULL || window_exists(st, image);
    if (*found && fn != NULL) {
        report_image(st, image, v, vl, fn, ctx);
    }
    rocksdb_free(v);
    return true;
}

/* S is the entry list of the image record; each entry's finding JSON is a
 * point read of the sets CF. */
bool sw_state_set_iter(sw_state *st, const char *image, sw_state_set_fn fn, void *ctx, sw_err *err)
{
    size_t vl = 0;
    char *rerr = NULL;
    char *v =
        rocksdb_get_cf(st->db, st->ro, st->cf[SW_CF_IMAGES], image, strlen(image), &vl, &rerr);
    if (!sw_state_rerr(rerr, err, "read image")) {
        return false;
    }
    sw_state_image_rec r;
    if (v == NULL || !sw_state_image_rec_decode(v, vl, &r)) {
        rocksdb_free(v);
        return true;
    }
    sw_buf k, key;
    sw_buf_init(&k, 0);
    sw_buf_init(&key, 0);
    const unsigned char *p = r.entries, *end = (const unsigned char *)r.entries + r.entries_len;
    sw_set_ent s;
    bool ok = true, more = true;
    while (ok && more && sw_set_ent_next(&p, end, &s)) {
        sw_key_set_prefix(&k, image);
        sw_buf_append(&k, s.key, s.key_len);
        sw_buf_reset(&key);
        sw_buf_append(&key, s.key, s.key_len);
        ok = sw_buf_check(&k, err) && sw_buf_check(&key, err);
        if (!ok) {
            break;
        }
        size_t jl = 0;
        char *j = rocksdb_get_cf(st->db, st->ro, st->cf[SW_CF_SETS], k.data, k.len, &jl, &rerr);
        ok = sw_state_rerr(rerr, err, "read finding");
        if (ok) {
            sw_state_set_entry e = {key.data, s.first, s.last, j, j != NULL ? jl : 0};
            more = fn(ctx, &e);
        }
        rocksdb_free(j);
    }
    sw_buf_free(&k);
    sw_buf_free(&key);
    rocksdb_free(v);
    return ok;
}

struct win_iter {
    sw_state_pending_fn fn;
    void *ctx;
};

static bool win_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct win_iter *wi = ctx;
    const unsigned char *p = (const unsigned char *)v, *end = p + vl;
    sw_win_rec r;
    while (sw_win_rec_next(&p, end, &r)) {
        sw_state_pending pe = {r.key, r.resolved, r.snapshot, r.clean_marker, r.scan_time};
        if (!wi->fn(wi->ctx, &pe)) {
            return false;
        }
    }
    return true;
}

bool sw_state_window_iter(sw_state *st, const char *image, sw_state_pending_fn fn, void *ctx,
                          sw_err *err)
{
    sw_buf k;
    sw_buf_init(&k, 0);
    sw_win_rec_prefix(&k, image);
    struct win_iter wi = {fn, ctx};
    bool ok =
        sw_buf_check(&k, err) && sw_state_scan(st, SW_CF_WINDOWS, k.data, k.len, win_cb, &wi, err);
    sw_buf_free(&k);
    return ok;
}
