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

struct set_iter {
    size_t plen;
    sw_state_set_fn fn;
    void *ctx;
};

static bool set_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct set_iter *si = ctx;
    char *key = strndup(k + si->plen, kl - si->plen);
    if (key == NULL) {
        return false;
    }
    sw_dec d = sw_dec_init(v, vl);
    sw_state_set_entry e;
    e.key = key;
    e.first_seen = sw_dec_i64(&d);
    e.last_seen = sw_dec_i64(&d);
    e.finding_json = sw_dec_bytes(&d, &e.finding_len);
    bool more = d.bad || si->fn(si->ctx, &e);
    free(key);
    return more;
}

bool sw_state_set_iter(sw_state *st, const char *image, sw_state_set_fn fn, void *ctx, sw_err *err)
{
    sw_buf prefix;
    sw_buf_init(&prefix, 0);
    sw_key_set_prefix(&prefix, image);
    struct set_iter si = {prefix.len, fn, ctx};
    bool ok = sw_buf_check(&prefix, err) &&
              sw_state_scan(st, SW_CF_SETS, prefix.data, prefix.len, set_cb, &si, err);
    sw_buf_free(&prefix);
    return ok;
}

struct win_iter {
    sw_state_pending_fn fn;
    void *ctx;
};

static bool win_cb(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    struct win_iter *wi = ctx;
    sw_win_rec r;
    if (!sw_win_rec_decode(v, vl, &r)) {
        return true;
    }
    sw_state_pending p = {r.key, r.resolved, r.snapshot, r.clean_marker, r.scan_time};
    return wi->fn(wi->ctx, &p);
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
