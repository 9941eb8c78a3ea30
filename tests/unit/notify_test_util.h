/*
 * Helpers for the notification tests: the fake Graph process
 * (tests/fake-graph/fake-graph.js) and diff records in a real outbox,
 * written through the state engine exactly as the service writes them.
 */
#ifndef SW_NOTIFY_TEST_UTIL_H
#define SW_NOTIFY_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/types.h>

#include "scanwatch/buf.h"
#include "scanwatch/finding.h"
#include "scanwatch/state.h"

typedef struct nt_fake {
    pid_t pid;
    int port;
    int stdin_fd;  /* closing it makes the fake exit */
    char base[64]; /* http://127.0.0.1:<port> */
} nt_fake;

/* Starts the fake with extra arguments (NULL-terminated); aborts the test on failure. */
void nt_fake_start(nt_fake *f, const char *const *args);
void nt_fake_stop(nt_fake *f);
/* GET /_control/<path> -> parsed JSON (caller deletes). */
cJSON *nt_fake_get(const nt_fake *f, const char *path);
/* POST JSON text to /_control/<path>. */
void nt_fake_post(const nt_fake *f, const char *path, const char *json);

/* One finding as `scanwatch decode` prints it. */
void nt_finding_json(sw_buf *out, const char *registry, const char *repo, const char *digest, int i,
                     const char *title, sw_severity sev, bool fixable);

/*
 * Writes one diff record per image to the outbox of st through the engine:
 * image i (0..n_images-1) = <registry>/<repo_prefix><i>@sha256:<i>, with
 * n_findings new findings each, titled "<title_base> <finding number>".
 * Severities cycle Critical, High, Medium, Low, Unknown; even findings fixable.
 */
void nt_fill_outbox(sw_state *st, const char *registry, const char *repo_prefix, int n_images,
                    int n_findings, const char *title_base);

/* Number of outbox entries / notify KV entries with a prefix. */
unsigned long nt_outbox_count(sw_state *st);
unsigned long nt_kv_count(sw_state *st, const char *prefix);

#endif
