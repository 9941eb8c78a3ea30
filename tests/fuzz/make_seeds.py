#!/usr/bin/env python3
"""Writes the hand-made seed files of the fuzz corpora config, route, graph and
amqp_event (tests/fuzz/corpus/<target>/seed-*). Run from anywhere:

    python3 tests/fuzz/make_seeds.py

Minimized inputs the fuzzer found are committed next to the seeds (as
fuzz-<sha1>); this script only (re)writes the seed-* files. The AMQP messages
are encoded here by hand (AMQP 1.0 type system, the sections a hub sends) from
the sample Defender events in tests/data/samples, so that no proton is needed.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- config (YAML) ------------------------------------------------------------
CONFIGS = {
    "k8s": open(os.path.join(ROOT, "docker/k8s/configmap.yaml")).read().split("config.yaml: |\n", 1)[1]
    .split("\n---", 1)[0].replace("\n    ", "\n").lstrip(),
    "minimal": "connection_string: Endpoint=sb://ns.servicebus.windows.net/;"
    "SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath=exports\nstate_dir: /var/lib/x\n",
    "emulator": "connection_string: \"Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=a;"
    "SharedAccessKey=b;UseDevelopmentEmulator=true\"\neventhub: exports\nstart_position: earliest\n"
    "tls: off\n",
    "types": "max_message_size: 1MiB\nscan_quiet: 90s\nbaseline_until: 2026-01-01T00:00:00Z\n"
    "state_sync: true\nprefetch: 300\nmail_rate: 2.5\nowner_level: -1\nmetrics_port: 9090\n"
    "start_position: \"@2026-01-02T03:04:05Z\"\nreconnect_backoff_min: 1s\n"
    "reconnect_backoff_max: 500ms\n",
    "routes-json": "routes: '[{\"name\":\"a\",\"to\":\"a@example.com\",\"registry\":\"*\"}]'\n"
    "mail_to: x@example.com, y@example.com\n",
    "routes-flow": "routes: [{name: a, to: [a@b.c], min_severity: Critical, fixable_only: true},"
    " {name: d, default: true, to: d@e.f}]\n",
    "auth": "auth_method: client_secret\ntenant_id: t\nclient_id: c\nclient_secret: s3cr3t\n"
    "mail_sink: \"dir:/tmp/mails\"\n",
    "auth-mi": "auth_method: managed_identity\nimds_endpoint: http://127.0.0.1:1\n",
    "bad-type": "prefetch: many\n",
    "bad-key": "no_such_setting: 1\n",
    "not-mapping": "- a\n- b\n",
    "anchors": "base: &b {name: a, to: a@b.c}\nroutes: [*b, *b]\n",
    "deep": "routes: " + "[" * 40 + "]" * 40 + "\n",
    "empty": "",
}

# ---- route (routes JSON \0 diff record) ------------------------------------------
ROUTES = [
    [{"name": "team-a", "registry": "*.azurecr.io", "repository": "team-a/*",
      "min_severity": "High", "to": ["team-a@contoso.com"], "cc": ["sec@contoso.com"],
      "subject_prefix": "[team-a]"},
     {"name": "fix", "min_severity": "Critical", "fixable_only": True, "to": "oncall@contoso.com"},
     {"name": "rest", "default": True, "include_resolved": True, "to": "sec@contoso.com"}],
    [{"name": "case", "registry": "MYREG.AZURECR.IO", "repository": "[a-z]*/?pi", "to": "a@b.c"}],
    [{"name": "d", "default": True, "to": "a@b.c"}, {"name": "d2", "default": True, "to": "c@d.e"}],
    [],
]


def finding(i, sev, fixable, reg="myreg.azurecr.io", repo="team-a/api"):
    return {"key": "k%d" % i, "vuln_id": "CVE-2024-%04d" % i, "severity": sev, "fixable": fixable,
            "registry": reg, "repository": repo, "title": "<b>t&amp;%d</b>" % i,
            "package": "openssl", "installed_version": "1.0", "fixed_version": "1.1"}


DIFFS = [
    {"image": "myreg.azurecr.io/team-a/api@sha256:00", "tags": ["v1"],
     "new": [finding(1, "High", True), finding(2, "Low", False), finding(3, "Critical", True)],
     "resolved": [finding(4, "Medium", True)], "scan_time": "2026-01-01T00:00:00Z"},
    {"image": "other.io/x@sha256:11", "new": [finding(5, "Critical", False, "other.io", "x")],
     "resolved": []},
    {"image": "noslash@sha256:22", "new": [{"severity": "Unknown"}]},
    {"image": "a/b/c", "new": []},
]

# ---- graph (mode byte, status byte, body) -------------------------------------------
# status index: 0..3 = 200, 4 = 400, 5 = 401, 11 = 429, 12 = 500, 14 = 503
TOKENS = {
    "entra-ok": (0, 0, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                        "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.sig"}),
    "imds-ok": (0, 1, {"access_token": "eyJ0eXAi.e30.x", "client_id": "c", "expires_in": "86399",
                       "expires_on": "1767312000", "ext_expires_in": "86399",
                       "not_before": "1767225600", "resource": "https://graph.microsoft.com/",
                       "token_type": "Bearer"}),
    "entra-noexp": (0, 2, {"access_token": "t"}),
    # regressions: seconds that overflowed microseconds (UBSan) before the range check
    "entra-expires-huge": (0, 0, {"access_token": "t", "expires_on": 1e300, "expires_in": 9.2e18}),
    "imds-expires-huge": (0, 1, {"access_token": "t", "expires_on": "9223372036854775807"}),
    "entra-noaccess": (0, 3, {"token_type": "Bearer", "expires_in": 10}),
    "entra-400": (0, 4, {"error": "invalid_client",
                         "error_description": "AADSTS7000215: Invalid client secret provided.",
                         "error_codes": [7000215], "trace_id": "x", "correlation_id": "y"}),
    "entra-401": (0, 5, {"error": "unauthorized_client", "error_description": "AADSTS700016"}),
    "imds-429": (0, 11, {"error": "too_many_requests", "message": "slow down"}),
    "imds-500": (0, 12, "<html>Internal Server Error</html>"),
    "entra-503-empty": (0, 14, ""),
    "graph-400": (1, 4, {"error": {"code": "ErrorInvalidRecipients",
                                   "message": "At least one recipient is not valid."}}),
    "graph-429": (1, 11, {"error": {"code": "ApplicationThrottled",
                                    "message": "Application is over its MailboxConcurrency limit.",
                                    "innerError": {"request-id": "r", "date": "2026-01-01"}}}),
    "graph-413": (1, 10, {"error": {"code": "RequestEntityTooLarge", "message": "x" * 400}}),
    "graph-notjson": (1, 12, "upstream connect error or disconnect/reset before headers"),
    "graph-wrongtypes": (1, 4, {"error": {"code": 5, "message": ["a"]}}),
}

# ---- amqp_event (AMQP 1.0 messages) -------------------------------------------------


def sym(s):
    b = s.encode()
    return (b"\xa3" + bytes([len(b)]) + b) if len(b) < 256 else (b"\xb3" + struct.pack(">I", len(b)) + b)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return (b"\xa1" + bytes([len(b)]) + b) if len(b) < 256 else (b"\xb1" + struct.pack(">I", len(b)) + b)


def binary(b):
    return (b"\xa0" + bytes([len(b)]) + b) if len(b) < 256 else (b"\xb0" + struct.pack(">I", len(b)) + b)


def long_(v):
    return b"\x81" + struct.pack(">q", v)


def timestamp(ms):
    return b"\x83" + struct.pack(">q", ms)


def amap(pairs):
    body = b"".join(k + v for k, v in pairs)
    return b"\xd1" + struct.pack(">II", len(body) + 4, len(pairs) * 2) + body


def alist(items):
    body = b"".join(items)
    return b"\xd0" + struct.pack(">II", len(body) + 4, len(items)) + body


def section(code, value):
    return b"\x00\x53" + bytes([code]) + value


def annotations(seq, offset, enq_ms, pkey=None):
    pairs = [(sym("x-opt-sequence-number"), long_(seq)), (sym("x-opt-offset"), string(offset)),
             (sym("x-opt-enqueued-time"), timestamp(enq_ms))]
    if pkey is not None:
        pairs.append((sym("x-opt-partition-key"), string(pkey)))
    return section(0x72, amap(pairs))


HEADER = section(0x70, alist([b"\x41"]))  # durable = true
APP_PROPS = section(0x74, amap([(string("source"), string("defender")),
                                (string("n"), b"\x54\x07")]))


# `scanwatch decode` of the first demo event (the canonical finding JSON).
ROUTED_FINDING = {
    "image": "europe-west1-docker.pkg.dev/contoso-prod/platform/nginx-0@sha256:eadc98",
    "registry": "europe-west1-docker.pkg.dev", "repository": "contoso-prod/platform/nginx-0",
    "digest": "sha256:eadc98", "tags": ["1.4.25", "latest"], "key": "CVE-2019-10003:libssl3",
    "vuln_id": "CVE-2019-10003", "package": "libssl3", "version": "3.8.29",
    "fixed_version": "3.8.30", "fixable": True, "severity": "Low", "cvss": 2.6,
    "title": "t", "published": "2019-12-09T21:15:00Z", "links": ["https://nvd.nist.gov/x"],
    "status": "active", "snapshot": False, "scan_time": "2026-01-05T02:00:00.000000Z",
    "shape": "mdvm"}


def sample_bodies():
    d = os.path.join(ROOT, "tests/data/samples")
    out = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            b = f.read()
        if len(b) <= 12000:
            out.append((name.split("_")[0][:12] + "-" + str(len(out)), b))
    return out


def main():
    for k, v in CONFIGS.items():
        write("config", k, v)
    for i, r in enumerate(ROUTES):
        for j, d in enumerate(DIFFS):
            write("route", "r%d-d%d" % (i, j), json.dumps(r) + "\0" + json.dumps(d))
    write("route", "routes-only", json.dumps(ROUTES[0]))
    for k, (mode, st, body) in TOKENS.items():
        text = body if isinstance(body, str) else json.dumps(body)
        write("graph", k, bytes([mode, st]) + text.encode())
    enq = 1767225600000
    bodies = sample_bodies()
    for n, (name, body) in enumerate(bodies):
        data = section(0x75, binary(body))
        write("amqp_event", "data-" + name,
              HEADER + annotations(100 + n, str(4096 * n), enq + n * 1000, "img") + APP_PROPS + data)
    body = bodies[0][1]
    half = len(body) // 2
    write("amqp_event", "two-data",
          annotations(1, "0", enq) + section(0x75, binary(body[:half])) + section(0x75, binary(body[half:])))
    write("amqp_event", "value-string", annotations(2, "10", enq) + section(0x77, string(body)))
    write("amqp_event", "value-binary", annotations(3, "20", enq) + section(0x77, binary(body)))
    write("amqp_event", "sequence", annotations(4, "30", enq) + section(0x76, alist([string(body)])))
    write("amqp_event", "no-enqueued",
          section(0x72, amap([(sym("x-opt-sequence-number"), long_(5)),
                              (sym("x-opt-offset"), string("40"))])) + section(0x75, binary(body)))
    write("amqp_event", "enqueued-huge", annotations(6, "50", 2**62) + section(0x75, binary(body)))
    write("amqp_event", "enqueued-negative", annotations(7, "60", -5) + section(0x75, binary(body)))
    write("amqp_event", "no-offset",
          section(0x72, amap([(sym("x-opt-sequence-number"), long_(8))])) + section(0x75, binary(body)))
    write("amqp_event", "not-json", annotations(9, "70", enq) + section(0x75, binary(b"{\"a\":")))
    write("amqp_event", "truncated", (annotations(10, "80", enq) + section(0x75, binary(body)))[:200])
    # Route hub records (consumer/route.c sw_route_encode): the same path, partition route/0.
    for i, (sev, clean) in enumerate([("Low", False), ("Critical", False), (None, True)]):
        f = dict(ROUTED_FINDING)
        if clean:
            f = {k: v for k, v in f.items() if k in ("image", "registry", "repository", "digest",
                                                     "tags", "scan_time", "shape", "snapshot")}
            f["clean_marker"] = True
        else:
            f["severity"] = sev
        rec = {"scanwatch_routed": 1, "enqueued": "2026-01-05T02:00:0%dZ" % i,
               "clean_marker": clean, "finding": f}
        write("amqp_event", "routed-%d" % i, annotations(300 + i, str(9000 + i), enq + i) +
              section(0x75, binary(json.dumps(rec).encode())))
    demo = os.path.join(ROOT, "tests/data/demo-stream.ndjson")
    with open(demo, "rb") as f:
        lines = [ln for ln in f.read().split(b"\n") if ln][:6]
    for i, ln in enumerate(lines):
        write("amqp_event", "demo-%d" % i,
              HEADER + annotations(200 + i, str(8192 + i), enq + 60000 * i) + section(0x75, binary(ln)))


if __name__ == "__main__":
    main()
