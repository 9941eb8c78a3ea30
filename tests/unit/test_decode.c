/*
 * Decoder tests: every sample in tests/data/samples (compacted to one line
 * first, as bodies arrive on the hub), hand-made variants of each shape, every
 * bad-event reason, and the generator's streams. Findings are checked through
 * their canonical JSON (sw_finding_to_json), i.e. what `scanwatch decode`
 * prints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "scanwatch/decode.h"

/* ------------------------------------------------------------ helpers -- */

#define MAX_COLLECT 4096

typedef struct coll {
    int n;
    cJSON *items[MAX_COLLECT];
    bool clean[MAX_COLLECT];
    int stop_after; /* 0 = never stop */
} coll;

static bool collect(void *ctx, const sw_finding *f)
{
    coll *c = ctx;
    sw_buf b;
    sw_buf_init(&b, 0);
    assert_true(sw_finding_to_json(f, &b));
    cJSON *j = cJSON_Parse(b.data);
    if (j == NULL) {
        fail_msg("sw_finding_to_json printed invalid JSON: %s", b.data);
    }
    sw_buf_free(&b);
    assert_true(c->n < MAX_COLLECT);
    c->clean[c->n] = f->clean_marker;
    c->items[c->n++] = j;
    return c->stop_after == 0 || c->n < c->stop_after;
}

static void coll_free(coll *c)
{
    for (int i = 0; i < c->n; i++) {
        cJSON_Delete(c->items[i]);
    }
    c->n = 0;
}

static sw_decoder *dec;

static bool decode_with(sw_decoder *d, const char *body, size_t len, coll *c, sw_decode_result *res,
                        sw_err *err)
{
    coll_free(c);
    /* An exact-size heap copy: ASan sees any read past the body. */
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);
    bool ok = sw_decode_body(d, copy, len, collect, c, res, err);
    free(copy);
    return ok;
}

static bool decode_str(const char *body, coll *c, sw_decode_result *res, sw_err *err)
{
    return decode_with(dec, body, strlen(body), c, res, err);
}

static const char *fstr(const cJSON *item, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, field);
    if (v == NULL) {
        fail_msg("finding has no field '%s'", field);
    }
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void expect_str(const cJSON *item, const char *field, const char *want)
{
    const char *got = fstr(item, field);
    if (want == NULL) {
        if (got != NULL) {
            fail_msg("%s: expected null, got \"%s\"", field, got);
        }
        return;
    }
    if (got == NULL) {
        fail_msg("%s: expected \"%s\", got null", field, want);
    }
    if (strcmp(got, want) != 0) {
        fail_msg("%s: expected \"%s\", got \"%s\"", field, want, got);
    }
}

static double fnum(const cJSON *item, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, field);
    assert_non_null(v);
    if (!cJSON_IsNumber(v)) {
        fail_msg("%s is not a number", field);
    }
    return v->valuedouble;
}

static bool fbool(const cJSON *item, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, field);
    assert_non_null(v);
    assert_true(cJSON_IsBool(v));
    return cJSON_IsTrue(v);
}

static int farr_len(const cJSON *item, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, field);
    assert_non_null(v);
    assert_true(cJSON_IsArray(v));
    return cJSON_GetArraySize(v);
}

static char *read_file(const char *rel, size_t *len)
{
    const char *root = getenv("SW_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root != NULL ? root : ".", rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The sample as one compact line, the way a message body arrives. */
static char *sample_line(const char *name)
{
    char rel[512];
    size_t len;
    snprintf(rel, sizeof rel, "tests/data/samples/%s", name);
    char *text = read_file(rel, &len);
    cJSON *j = cJSON_Parse(text);
    if (j == NULL) {
        fail_msg("sample %s is not JSON", name);
    }
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    free(text);
    return line;
}

static cJSON *sample_json(const char *name)
{
    char *line = sample_line(name);
    cJSON *j = cJSON_Parse(line);
    free(line);
    return j;
}

static void expect_skip(const char *body, const char *kind)
{
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    bool ok = decode_str(body, &c, &res, &err);
    if (!ok) {
        fail_msg("expected a skip (%s), got bad event %s: %s", kind, sw_decode_bad_name(res.bad),
                 err.msg);
    }
    assert_int_equal(res.findings, 0);
    assert_int_equal(res.skipped, 1);
    assert_string_equal(res.skipped_kind, kind);
    coll_free(&c);
}

static void expect_bad(const char *body, size_t len, sw_decode_bad reason, const char *msg_part)
{
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    bool ok = decode_with(dec, body, len, &c, &res, &err);
    if (ok) {
        fail_msg("expected bad event %s, decode succeeded (%zu findings)",
                 sw_decode_bad_name(reason), res.findings);
    }
    if (res.bad != reason) {
        fail_msg("expected reason %s, got %s (%s)", sw_decode_bad_name(reason),
                 sw_decode_bad_name(res.bad), err.msg);
    }
    assert_int_equal(c.n, 0); /* nothing of a bad body is emitted */
    assert_true(err.code != SW_OK);
    if (msg_part != NULL && strstr(err.msg, msg_part) == NULL) {
        fail_msg("error message \"%s\" does not mention \"%s\"", err.msg, msg_part);
    }
}

static void expect_bad_str(const char *body, sw_decode_bad reason, const char *msg_part)
{
    expect_bad(body, strlen(body), reason, msg_part);
}

static void recase(cJSON *j, int how);
static bool decode_json(const cJSON *j, coll *c, sw_decode_result *res, sw_err *err);

/* ------------------------------------------------------------ samples -- */

static void test_sample_qualys_with_healthy_markers(void **state)
{
    char *line = sample_line(
        "jercle-azgo_qualys-container-subassessments_incl-healthy_aggregateTagsAndAssessments-"
        "subAssessments.json");
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_str(line, &c, &res, &err));
    assert_int_equal(res.records, 7);
    assert_int_equal(res.findings, 7);
    assert_int_equal(res.by_shape[SW_SHAPE_QUALYS], 7);
    assert_int_equal(res.clean_markers, 3);
    /* Three "scanned clean" markers first, for three images. */
    const char *clean_repos[] = {"oel", "ahdb-test", "testing"};
    for (int i = 0; i < 3; i++) {
        assert_true(c.clean[i]);
        expect_str(c.items[i], "repository", clean_repos[i]);
        expect_str(c.items[i], "key", NULL);
        expect_str(c.items[i], "vuln_id", NULL);
        expect_str(c.items[i], "status", "resolved");
        expect_str(c.items[i], "severity", "Unknown");
        expect_str(c.items[i], "registry", "stkcatacr.azurecr.io");
    }
    expect_str(c.items[0], "image",
               "stkcatacr.azurecr.io/"
               "oel@sha256:22943ce7fd142622cdf9b460f96742ba693d648a243fd5ca15cc6988fbdba2ab");
    /* Then real findings (the SDK flattened properties and renamed id to idPropertiesId). */
    assert_false(c.clean[3]);
    expect_str(c.items[3], "image",
               "stkcatacr.azurecr.io/"
               "gm@sha256:d71bd432d72546e49071ed109068b1536b3bcd8c1fc5c99ffeac7b5ae80e5c87");
    expect_str(c.items[3], "vuln_id", "179168");
    expect_str(c.items[3], "key", "179168");
    expect_str(c.items[3], "package", NULL);
    expect_str(c.items[3], "severity", "High");
    expect_str(c.items[3], "status", "active");
    expect_str(c.items[3], "shape", "qualys");
    expect_str(c.items[3], "title", "Debian Security Update for zlib (DSA 5111-1)");
    expect_str(c.items[3], "published", "2022-04-06T13:29:52.000Z");
    expect_str(c.items[3], "scan_time", "2022-05-13T12:39:39.116000Z");
    assert_true(fbool(c.items[3], "fixable"));
    assert_true(fnum(c.items[3], "cvss") == 7.5);
    assert_int_equal(farr_len(c.items[3], "links"), 2);
    expect_str(c.items[4], "vuln_id", "179243");
    expect_str(c.items[5], "vuln_id", "179244");
    expect_str(c.items[6], "vuln_id", "353292");
    expect_str(c.items[6], "repository", "auchd");
    assert_int_equal(farr_len(c.items[6], "links"), 5); /* 4 CVEs + 1 vendor reference */
    coll_free(&c);
    free(line);
}

static void test_sample_qualys_sdk_flattened(void **state)
{
    const char *name =
        "jercle-azgo_qualys-container-subassessments_sdk-flattened_getsubAssessments-subset.json";
    /* The file is a tool's dump ({azgoSyncDate, subAssessments}), not an event. */
    char *line = sample_line(name);
    expect_skip(line, "unknown");
    free(line);
    /* Its subAssessments array as a body: five real Qualys findings on one image. */
    cJSON *j = sample_json(name);
    char *arr = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "subAssessments"));
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_str(arr, &c, &res, &err));
    assert_int_equal(res.findings, 5);
    const char *qids[] = {"198408", "198409", "198413", "198429", "198434"};
    const char *sev[] = {"Medium", "High", "Medium", "Medium", "Medium"};
    const double cvss[] = {7.5, 9.1, 9.8, 7.5, 6.1};
    for (int i = 0; i < 5; i++) {
        expect_str(c.items[i], "image",
                   "dmznonproddevacr01.azurecr.io/postfix-dmz-servicebaseline@sha256:"
                   "f51c53d0b7ff5fdb9d8ccd59f6c5d48db09b7b8773ebb8af68854455712da593");
        expect_str(c.items[i], "vuln_id", qids[i]);
        expect_str(c.items[i], "severity", sev[i]);
        assert_true(fnum(c.items[i], "cvss") == cvss[i]);
        expect_str(c.items[i], "status", "active");
        expect_str(c.items[i], "scan_time", "2022-05-31T19:48:10.135000Z");
    }
    coll_free(&c);
    free(arr);
    cJSON_Delete(j);
}

static void test_sample_qualys_rest_example(void **state)
{
    const char *name = "azure-rest-api-specs_2019-01-01-preview_ListSubscriptionSubAssessments_"
                       "example_qualys-style.json";
    /* A swagger example file is not an event. */
    char *line = sample_line(name);
    expect_skip(line, "unknown");
    free(line);
    /* Its one sub-assessment (ARM REST form, no registryHost): registry from the ARM id. */
    cJSON *j = sample_json(name);
    cJSON *v = cJSON_GetArrayItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "responses"), "200"),
                                "body"),
            "value"),
        0);
    assert_non_null(v);
    char *body = cJSON_PrintUnformatted(v);
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_str(body, &c, &res, &err));
    assert_int_equal(res.findings, 1);
    expect_str(c.items[0], "image",
               "myregistry.azurecr.io/myRepo@c186fc44-3154-4ce2-ba18-b719d895c3b0");
    expect_str(c.items[0], "registry", "myregistry.azurecr.io");
    expect_str(c.items[0], "vuln_id", "1001");
    expect_str(c.items[0], "title", "'Back Orifice' Backdoor");
    expect_str(c.items[0], "severity", "High");
    expect_str(c.items[0], "status", "active");
    expect_str(c.items[0], "published", "2018-01-01T00:00:00.0000000Z");
    expect_str(c.items[0], "scan_time", "2019-06-23T12:20:08.764480Z");
    assert_true(fnum(c.items[0], "cvss") == 10.0);
    assert_true(fbool(c.items[0], "fixable"));
    assert_int_equal(farr_len(c.items[0], "links"), 1); /* the same link twice, kept once */
    /* The Event Hub generation of this record: PascalCase keys and "$type" members. */
    cJSON *pascal = cJSON_Parse(body);
    recase(pascal, 1);
    assert_true(decode_json(pascal, &c, &res, &err));
    expect_str(c.items[0], "image",
               "myregistry.azurecr.io/myRepo@c186fc44-3154-4ce2-ba18-b719d895c3b0");
    expect_str(c.items[0], "key", "1001");
    cJSON_Delete(pascal);
    coll_free(&c);
    free(body);
    cJSON_Delete(j);
}

static void test_sample_mdvm_arg_row(void **state)
{
    char *line = sample_line(
        "ms-docs_subassessment-rest-api_mdvm-azure-registry-subassessment_ARG-result.json");
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_str(line, &c, &res, &err));
    assert_int_equal(res.findings, 1);
    assert_int_equal(res.by_shape[SW_SHAPE_MDVM], 1);
    const cJSON *f = c.items[0];
    expect_str(f, "image",
               "ptebic.azurecr.io/public/azureml/aifx/stable-ubuntu2004-cu117-py39-torch200@sha256:"
               "4af8e6f002401a965bbe753a381af308b40d8947fad2b9e1f6a369aa81abee59");
    expect_str(f, "registry", "ptebic.azurecr.io");
    expect_str(f, "repository", "public/azureml/aifx/stable-ubuntu2004-cu117-py39-torch200");
    expect_str(f, "vuln_id", "CVE-2022-42969");
    expect_str(f, "key", "CVE-2022-42969:py");
    expect_str(f, "package", "py");
    expect_str(f, "version", "1.11.0.0");
    expect_str(f, "fixed_version", NULL); /* "" in the sample */
    assert_true(fbool(f, "fixable"));     /* fixStatus FixAvailable */
    expect_str(f, "severity", "High");
    assert_true(fnum(f, "cvss") == 7.5);
    expect_str(f, "status", "resolved"); /* NotApplicable (Exempt) */
    expect_str(f, "published", "2022-10-16T06:15:00Z");
    expect_str(f, "scan_time", "2023-09-12T13:36:15.077279Z");
    expect_str(f, "shape", "mdvm");
    assert_int_equal(farr_len(f, "tags"), 1);
    assert_int_equal(farr_len(f, "links"), 4);
    coll_free(&c);
    free(line);
}

static void test_samples_skipped_by_kind(void **state)
{
    static const struct {
        const char *file;
        const char *kind;
    } cases[] = {
        {"elastic-integrations_test-alert-log_line1_regulatory-compliance-event.json",
         "regulatory_compliance"},
        {"elastic-integrations_test-alert-log_line2_assessment-event_camelCase.json", "assessment"},
        {"elastic-integrations_test-alert-log_line4_subassessment-event_PascalCase.json",
         "sub_assessment:GeneralVulnerability"},
        {"jercle-azgo_qualys-parent-assessment-dbd0cb49_first-element-of-assessments.json",
         "assessment"},
        {"mdc-repo_2019-README_sample-assessment-event_AssessmentEventDataEnrichment.json",
         "assessment"},
        {"sumologic-docs_defender-for-cloud_security-recommendation-event.json", "assessment"},
        {"mdc-repo_ContainerImageScanning_Notification_playbook_azuredeploy.json", "unknown"},
        {"mdc-repo_Recommendation.schema.json", "unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *line = sample_line(cases[i].file);
        expect_skip(line, cases[i].kind);
        free(line);
    }
}

/* ----------------------------------------------------------- variants -- */

/* A realistic camelCase MDVM event, the base of the variants below. */
static const char mdvm_base[] =
    "{\"subAssessmentEventDataEnrichment\":{\"action\":\"Insert\",\"apiVersion\":\"2020-01-01\","
    "\"isSnapshot\":false},\"securityEventDataEnrichment\":{\"action\":\"Insert\",\"apiVersion\":"
    "\"2020-01-01\",\"isSnapshot\":false},\"tenantId\":\"aa40685b-417d-4664-b4ec-8f7640719adb\","
    "\"type\":\"Microsoft.Security/assessments/subAssessments\",\"id\":\"/subscriptions/"
    "11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/"
    "Microsoft.ContainerRegistry/registries/ContosoACR/providers/Microsoft.Security/assessments/"
    "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5/subAssessments/3f069764-2777-3731-9698-c87f23569a1d\","
    "\"name\":\"3f069764-2777-3731-9698-c87f23569a1d\",\"properties\":{\"id\":\"CVE-2023-1234\","
    "\"displayName\":\"CVE-2023-1234\",\"status\":{\"code\":\"Unhealthy\",\"severity\":\"High\"},"
    "\"description\":\"A flaw in openssl.\",\"timeGenerated\":\"2026-01-05T02:00:01.1234567Z\","
    "\"resourceDetails\":{\"source\":\"Azure\",\"id\":\"/repositories/web/api/images/"
    "sha256:aaaa\"},\"additionalData\":{\"assessedResourceType\":"
    "\"AzureContainerRegistryVulnerability\",\"vulnerabilityDetails\":{\"severity\":\"Critical\","
    "\"cveId\":\"CVE-2023-1234\",\"publishedDate\":\"2023-03-01T00:00:00Z\",\"cvss\":{\"2.0\":null,"
    "\"3.0\":{\"base\":9.8}},\"references\":[{\"title\":\"CVE-2023-1234\",\"link\":\"https://"
    "nvd.nist.gov/vuln/detail/CVE-2023-1234\"}]},\"artifactDetails\":{\"registryHost\":"
    "\"ContosoACR.azurecr.io\",\"repositoryName\":\"web/api\",\"digest\":\"sha256:aaaa\","
    "\"tags\":[\"1.2.3\",\"latest\"]},\"softwareDetails\":{\"packageName\":\"openssl\","
    "\"version\":\"3.0.1\",\"fixedVersion\":\"3.0.9\",\"fixStatus\":\"FixAvailable\"},"
    "\"cvssV30Score\":9.8}}}";

static const char *const mdvm_image = "contosoacr.azurecr.io/web/api@sha256:aaaa";

static void expect_base_finding(const cJSON *f)
{
    expect_str(f, "image", mdvm_image);
    expect_str(f, "registry", "contosoacr.azurecr.io");
    expect_str(f, "repository", "web/api");
    expect_str(f, "digest", "sha256:aaaa");
    expect_str(f, "vuln_id", "CVE-2023-1234");
    expect_str(f, "key", "CVE-2023-1234:openssl");
    expect_str(f, "package", "openssl");
    expect_str(f, "version", "3.0.1");
    expect_str(f, "fixed_version", "3.0.9");
    expect_str(f, "severity", "Critical");
    expect_str(f, "title", "A flaw in openssl.");
    expect_str(f, "scan_time", "2026-01-05T02:00:01.123456Z");
    expect_str(f, "shape", "mdvm");
    assert_true(fnum(f, "cvss") == 9.8);
    assert_int_equal(farr_len(f, "tags"), 2);
}

static cJSON *base_json(void)
{
    cJSON *j = cJSON_Parse(mdvm_base);
    assert_non_null(j);
    return j;
}

/* Walks "a.b.c" (exact keys of mdvm_base). */
static cJSON *at(cJSON *j, const char *path)
{
    cJSON *node = j;
    const char *p = path;
    while (*p != '\0') {
        char key[64];
        size_t n = strcspn(p, ".");
        assert_true(n < sizeof key);
        memcpy(key, p, n);
        key[n] = '\0';
        node = cJSON_GetObjectItemCaseSensitive(node, key);
        if (node == NULL) {
            fail_msg("test bug: no %s in the base event", path);
        }
        p += n + (p[n] == '.' ? 1 : 0);
    }
    return node;
}

static void remove_at(cJSON *j, const char *parent, const char *key)
{
    cJSON_DeleteItemFromObjectCaseSensitive(parent[0] != '\0' ? at(j, parent) : j, key);
}

static void replace_at(cJSON *j, const char *parent, const char *key, cJSON *v)
{
    assert_true(
        cJSON_ReplaceItemInObjectCaseSensitive(parent[0] != '\0' ? at(j, parent) : j, key, v));
}

static bool decode_json(const cJSON *j, coll *c, sw_decode_result *res, sw_err *err)
{
    char *s = cJSON_PrintUnformatted(j);
    bool ok = decode_str(s, c, res, err);
    free(s);
    return ok;
}

static void expect_json_bad(cJSON *j, sw_decode_bad reason, const char *msg_part)
{
    char *s = cJSON_PrintUnformatted(j);
    expect_bad_str(s, reason, msg_part);
    free(s);
    cJSON_Delete(j);
}

static void test_mdvm_camel(void **state)
{
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_str(mdvm_base, &c, &res, &err));
    assert_int_equal(res.findings, 1);
    expect_base_finding(c.items[0]);
    expect_str(c.items[0], "status", "active");
    assert_false(fbool(c.items[0], "snapshot"));
    /* Every MDVM generation is the same shape; other sub-assessments are skipped by type. */
    static const char *const mdvm_types[] = {
        "AzureContainerRegistryVulnerability", "AzureContainerVulnerability",
        "AwsContainerRegistryVulnerability", "GcpContainerRegistryVulnerability",
        "azurecontainerregistryvulnerability"};
    for (size_t i = 0; i < sizeof mdvm_types / sizeof mdvm_types[0]; i++) {
        cJSON *j = base_json();
        replace_at(j, "properties.additionalData", "assessedResourceType",
                   cJSON_CreateString(mdvm_types[i]));
        assert_true(decode_json(j, &c, &res, &err));
        assert_int_equal(res.by_shape[SW_SHAPE_MDVM], 1);
        expect_base_finding(c.items[0]);
        cJSON_Delete(j);
    }
    cJSON *j = base_json();
    replace_at(j, "properties.additionalData", "assessedResourceType",
               cJSON_CreateString("SqlServerVulnerability"));
    char *sql = cJSON_PrintUnformatted(j);
    expect_skip(sql, "sub_assessment:SqlServerVulnerability");
    free(sql);
    cJSON_Delete(j);
    coll_free(&c);
}

/* Rewrites every key: PascalCase, UPPER CASE, plus .NET "$type" members. */
static void recase(cJSON *j, int how)
{
    for (cJSON *c = j->child; c != NULL; c = c->next) {
        if (c->string != NULL) {
            for (char *p = c->string; *p != '\0'; p++) {
                if (how == 1 && p == c->string) {
                    *p = (char)toupper((unsigned char)*p);
                } else if (how == 2) {
                    *p = (char)toupper((unsigned char)*p);
                }
            }
        }
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            recase(c, how);
        }
    }
    if (cJSON_IsObject(j)) {
        cJSON_AddStringToObject(j, "$type", "response/subAssessmentProperties");
    }
}

static void test_mdvm_pascal_and_upper_case(void **state)
{
    for (int how = 1; how <= 2; how++) {
        cJSON *j = base_json();
        recase(j, how);
        coll c = {0};
        sw_decode_result res;
        sw_err err;
        if (!decode_json(j, &c, &res, &err)) {
            fail_msg("recased (%d) event failed: %s", how, err.msg);
        }
        assert_int_equal(res.findings, 1);
        expect_base_finding(c.items[0]);
        coll_free(&c);
        cJSON_Delete(j);
    }
}

static void test_body_framings(void **state)
{
    static const char reg[] =
        "{\"securityEventDataEnrichment\":{\"action\":\"Write\"},\"type\":\"Microsoft.Security/"
        "regulatoryComplianceStandards/regulatoryComplianceControls/"
        "regulatoryComplianceAssessments\"}";
    char body[8192];
    coll c = {0};
    sw_decode_result res;
    sw_err err;

    snprintf(body, sizeof body, "[%s,%s]", mdvm_base, reg);
    assert_true(decode_str(body, &c, &res, &err));
    assert_int_equal(res.records, 2);
    assert_int_equal(res.findings, 1);
    assert_int_equal(res.skipped, 1);
    assert_string_equal(res.skipped_kind, "regulatory_compliance");
    expect_base_finding(c.items[0]);

    snprintf(body, sizeof body, " {\"records\": [%s, %s, %s]}\r\n", reg, mdvm_base, mdvm_base);
    assert_true(decode_str(body, &c, &res, &err));
    assert_int_equal(res.records, 3);
    assert_int_equal(res.findings, 2);
    assert_int_equal(res.skipped_kinds.len, 1);
    assert_int_equal(res.skipped_kinds.k[0].n, 1);

    assert_true(decode_str("[]", &c, &res, &err));
    assert_int_equal(res.records, 0);
    assert_true(decode_str("{\"records\":[]}", &c, &res, &err));
    assert_int_equal(res.findings, 0);

    /* One bad record spoils the whole body: nothing is emitted. */
    snprintf(body, sizeof body,
             "[%s,{\"type\":\"Microsoft.Security/assessments/subAssessments\","
             "\"properties\":{\"status\":{\"code\":7},\"additionalData\":{"
             "\"assessedResourceType\":\"ContainerRegistryVulnerability\"}}}]",
             mdvm_base);
    expect_bad_str(body, SW_DECODE_BAD_WRONG_TYPE, "record 1: properties.status.code");
    coll_free(&c);
}

static void test_envelope_and_status(void **state)
{
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    /* action Delete resolves; isSnapshot from any envelope generation. */
    cJSON *j = base_json();
    replace_at(j, "securityEventDataEnrichment", "action", cJSON_CreateString("Delete"));
    remove_at(j, "", "subAssessmentEventDataEnrichment");
    replace_at(j, "securityEventDataEnrichment", "isSnapshot", cJSON_CreateTrue());
    assert_true(decode_json(j, &c, &res, &err));
    expect_str(c.items[0], "status", "resolved");
    assert_true(fbool(c.items[0], "snapshot"));
    cJSON_Delete(j);

    const char *codes[] = {"Healthy", "NotApplicable", "Unhealthy"};
    const char *want[] = {"resolved", "resolved", "active"};
    for (int i = 0; i < 3; i++) {
        j = base_json();
        replace_at(j, "properties.status", "code", cJSON_CreateString(codes[i]));
        assert_true(decode_json(j, &c, &res, &err));
        expect_str(c.items[0], "status", want[i]);
        assert_false(c.clean[0]);
        cJSON_Delete(j);
    }
    /* Healthy with no vulnerability id: the image scanned clean. */
    j = base_json();
    replace_at(j, "properties.status", "code", cJSON_CreateString("healthy"));
    remove_at(j, "properties", "id");
    remove_at(j, "properties.additionalData.vulnerabilityDetails", "cveId");
    assert_true(decode_json(j, &c, &res, &err));
    assert_true(c.clean[0]);
    assert_int_equal(res.clean_markers, 1);
    expect_str(c.items[0], "key", NULL);
    expect_str(c.items[0], "image", mdvm_image);
    cJSON_Delete(j);
    coll_free(&c);
}

static void test_image_fallbacks(void **state)
{
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    /* No registryHost: the registry comes from the ARM id. */
    cJSON *j = base_json();
    remove_at(j, "properties.additionalData.artifactDetails", "registryHost");
    assert_true(decode_json(j, &c, &res, &err));
    expect_str(c.items[0], "image", mdvm_image);
    cJSON_Delete(j);
    /* No repository/digest in artifactDetails: from resourceDetails.id. */
    j = base_json();
    remove_at(j, "properties.additionalData.artifactDetails", "repositoryName");
    remove_at(j, "properties.additionalData.artifactDetails", "digest");
    assert_true(decode_json(j, &c, &res, &err));
    expect_str(c.items[0], "image", mdvm_image);
    cJSON_Delete(j);
    /* AWS form: everything from "<host>/<repo>@<digest>". */
    j = base_json();
    remove_at(j, "properties.additionalData", "artifactDetails");
    replace_at(
        j, "properties.resourceDetails", "id",
        cJSON_CreateString("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app@sha256:bb"));
    replace_at(j, "properties.additionalData", "assessedResourceType",
               cJSON_CreateString("AwsContainerRegistryVulnerability"));
    assert_true(decode_json(j, &c, &res, &err));
    expect_str(c.items[0], "image",
               "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app@sha256:bb");
    assert_int_equal(farr_len(c.items[0], "tags"), 0);
    cJSON_Delete(j);
    /* An ARM-style image id: repository and digest after "/repositories/", registry from the ARM
     * part. */
    j = base_json();
    remove_at(j, "properties.additionalData", "artifactDetails");
    replace_at(j, "properties.resourceDetails", "id",
               cJSON_CreateString("/subscriptions/s/resourceGroups/rg/providers/"
                                  "Microsoft.ContainerRegistry/registries/ContosoACR/repositories/"
                                  "web/api/images/sha256:aaaa"));
    assert_true(decode_json(j, &c, &res, &err));
    expect_str(c.items[0], "image", mdvm_image);
    cJSON_Delete(j);
    /* null parents are absent parents: CVSS 3.0 null falls back to 2.0. */
    j = base_json();
    remove_at(j, "properties.additionalData", "cvssV30Score");
    replace_at(j, "properties.additionalData.vulnerabilityDetails", "cvss",
               cJSON_Parse("{\"2.0\":{\"base\":5.1},\"3.0\":null}"));
    assert_true(decode_json(j, &c, &res, &err));
    assert_true(fnum(c.items[0], "cvss") == 5.1);
    cJSON_Delete(j);
    j = base_json();
    replace_at(j, "properties.additionalData", "artifactDetails", cJSON_CreateNull());
    assert_true(decode_json(j, &c, &res, &err));
    expect_str(c.items[0], "image", mdvm_image);
    cJSON_Delete(j);
    /* A QID as a JSON number. */
    j = base_json();
    replace_at(j, "properties", "id", cJSON_CreateNumber(198408));
    assert_true(decode_json(j, &c, &res, &err));
    expect_str(c.items[0], "vuln_id", "198408");
    cJSON_Delete(j);
    coll_free(&c);
}

static void test_missing_fields(void **state)
{
    cJSON *j;
    j = base_json(); /* no host anywhere */
    remove_at(j, "properties.additionalData.artifactDetails", "registryHost");
    replace_at(j, "", "id", cJSON_CreateString("/subscriptions/x/providers/Microsoft.Security/a"));
    expect_json_bad(j, SW_DECODE_BAD_MISSING_IMAGE, "registry host");
    j = base_json();
    remove_at(j, "properties.additionalData.artifactDetails", "repositoryName");
    remove_at(j, "properties", "resourceDetails");
    expect_json_bad(j, SW_DECODE_BAD_MISSING_IMAGE, "repository");
    j = base_json();
    remove_at(j, "properties.additionalData.artifactDetails", "digest");
    remove_at(j, "properties", "resourceDetails");
    expect_json_bad(j, SW_DECODE_BAD_MISSING_IMAGE, "digest");
    j = base_json();
    remove_at(j, "properties", "id");
    remove_at(j, "properties.additionalData.vulnerabilityDetails", "cveId");
    expect_json_bad(j, SW_DECODE_BAD_MISSING_VULN_ID, "vulnerability id");
    j = base_json(); /* an empty id is no id */
    replace_at(j, "properties", "id", cJSON_CreateString(""));
    remove_at(j, "properties.additionalData.vulnerabilityDetails", "cveId");
    expect_json_bad(j, SW_DECODE_BAD_MISSING_VULN_ID, NULL);
    j = base_json();
    remove_at(j, "properties", "timeGenerated");
    expect_json_bad(j, SW_DECODE_BAD_MISSING_SCAN_TIME, "timeGenerated");
    j = base_json();
    replace_at(j, "properties", "timeGenerated", cJSON_CreateString("yesterday"));
    expect_json_bad(j, SW_DECODE_BAD_BAD_SCAN_TIME, "yesterday");
}

static void test_wrong_types(void **state)
{
    cJSON *j;
    j = base_json();
    replace_at(j, "", "properties", cJSON_CreateString("x"));
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "properties is a string");
    j = base_json();
    replace_at(j, "properties.status", "code", cJSON_CreateNumber(42));
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "properties.status.code is a number");
    j = base_json();
    replace_at(j, "properties", "status", cJSON_CreateArray());
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "properties.status is an array");
    j = base_json();
    replace_at(j, "properties.additionalData.artifactDetails", "tags",
               cJSON_CreateString("latest"));
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "tags");
    j = base_json();
    replace_at(j, "properties.additionalData.artifactDetails", "digest", cJSON_CreateNumber(1));
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "digest is a number");
    j = base_json();
    replace_at(j, "properties", "additionalData", cJSON_CreateArray());
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "additionalData");
    j = base_json();
    replace_at(j, "properties.additionalData", "cvssV30Score", cJSON_CreateString("9.8"));
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "cvssV30Score is a string");
    j = base_json();
    replace_at(j, "securityEventDataEnrichment", "isSnapshot", cJSON_CreateString("yes"));
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "isSnapshot");
    j = base_json();
    replace_at(j, "", "type", cJSON_CreateNumber(3));
    expect_json_bad(j, SW_DECODE_BAD_WRONG_TYPE, "type");
    expect_bad_str("\"hello\"", SW_DECODE_BAD_WRONG_TYPE, "body is a string");
    expect_bad_str("42", SW_DECODE_BAD_WRONG_TYPE, "body is a number");
    expect_bad_str("[1]", SW_DECODE_BAD_WRONG_TYPE, "record 0 is a number");
    expect_bad_str("{\"records\":\"x\"}", SW_DECODE_BAD_WRONG_TYPE, "records");
}

static char *nested(int depth)
{
    /* {"a":{"a":...{}...}} with depth objects */
    size_t n = (size_t)depth * 6 + 8;
    char *s = malloc(n);
    assert_non_null(s);
    size_t at = 0;
    for (int i = 0; i < depth - 1; i++) {
        memcpy(s + at, "{\"a\":", 5);
        at += 5;
    }
    s[at++] = '{';
    for (int i = 0; i < depth; i++) {
        s[at++] = '}';
    }
    s[at] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    char *ok = nested(64);
    assert_true(decode_str(ok, &c, &res, &err));
    assert_string_equal(res.skipped_kind, "unknown");
    free(ok);
    char *deep = nested(65);
    expect_bad_str(deep, SW_DECODE_BAD_TOO_DEEP, "max_json_depth (64)");
    free(deep);
    deep = nested(100000); /* far beyond cJSON's own limit: still a clear reason */
    expect_bad_str(deep, SW_DECODE_BAD_TOO_DEEP, NULL);
    free(deep);
    /* Brackets inside strings do not count. */
    char body[512];
    snprintf(
        body, sizeof body, "{\"x\":\"%s\"}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    assert_true(decode_str(body, &c, &res, &err));
}

static char *with_description(size_t n, char fill)
{
    const char *marker = "A flaw in openssl.";
    const char *p = strstr(mdvm_base, marker);
    assert_non_null(p);
    size_t head = (size_t)(p - mdvm_base), tail = strlen(p + strlen(marker));
    char *s = malloc(head + n + tail + 1);
    assert_non_null(s);
    memcpy(s, mdvm_base, head);
    memset(s + head, fill, n);
    memcpy(s + head + n, p + strlen(marker), tail + 1);
    return s;
}

static void test_size_limit_and_big_string(void **state)
{
    char *big = with_description(1024 * 1024, 'x');
    expect_bad_str(big, SW_DECODE_BAD_TOO_LARGE, "max_message_size (1048576)");
    /* With a larger limit the same body decodes and keeps the whole string. */
    sw_decode_opts opts;
    sw_decode_opts_default(&opts);
    opts.max_message_size = 2 * 1024 * 1024;
    sw_err err;
    sw_decoder *d2 = sw_decoder_new(&opts, &err);
    assert_non_null(d2);
    coll c = {0};
    sw_decode_result res;
    assert_true(decode_with(d2, big, strlen(big), &c, &res, &err));
    assert_int_equal(strlen(fstr(c.items[0], "title")), 1024 * 1024);
    coll_free(&c);
    sw_decoder_free(d2);
    free(big);
}

static void test_utf8(void **state)
{
    static const char *const bad[] = {"\xff",     "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xe2\x82", "\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = with_description(4, 'y');
        char *p = strstr(s, "yyyy");
        memcpy(p, bad[i], strlen(bad[i])); /* keeps the length: pads with 'y' */
        expect_bad_str(s, SW_DECODE_BAD_BAD_UTF8, "invalid UTF-8 at byte 0 of the title");
        free(s);
    }
    /* Bytes the decoder never uses are not its business; a used tag is. */
    cJSON *j = base_json();
    cJSON_AddStringToObject(j, "unused", "\xff\xfe");
    coll c0 = {0};
    sw_decode_result r0;
    sw_err e0;
    assert_true(decode_json(j, &c0, &r0, &e0));
    coll_free(&c0);
    cJSON_AddItemToArray(at(j, "properties.additionalData.artifactDetails.tags"),
                         cJSON_CreateString("v\xc0\xaf"));
    expect_json_bad(j, SW_DECODE_BAD_BAD_UTF8, "tag 2");
    /* Valid multi-byte text passes through untouched. */
    char *s = with_description(7, 'z');
    memcpy(strstr(s, "zzzzzzz"), "\xc3\xa9\xf0\x9f\x94\x92z", 7);
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_str(s, &c, &res, &err));
    assert_string_equal(fstr(c.items[0], "title"), "\xc3\xa9\xf0\x9f\x94\x92z");
    coll_free(&c);
    free(s);
}

static void test_truncated_and_garbage(void **state)
{
    size_t n = strlen(mdvm_base);
    for (size_t len = 1; len < n; len++) {
        coll c = {0};
        sw_decode_result res;
        sw_err err;
        if (decode_with(dec, mdvm_base, len, &c, &res, &err)) {
            fail_msg("a %zu-byte prefix decoded", len);
        }
        assert_int_equal(res.bad, SW_DECODE_BAD_NOT_JSON);
    }
    expect_bad_str("not json at all", SW_DECODE_BAD_NOT_JSON, "not valid JSON");
    expect_bad_str("{\"a\":1} trailing", SW_DECODE_BAD_NOT_JSON, "after the value");
    expect_bad("{\"a\":\0}", 7, SW_DECODE_BAD_NOT_JSON, "NUL");
    /* A body cJSON rejects is diagnosed: bad UTF-8 anywhere, NUL, depth. */
    expect_bad_str("{\"a\":\"\xff\"", SW_DECODE_BAD_BAD_UTF8, "invalid UTF-8 at byte 6");
    expect_bad("", 0, SW_DECODE_BAD_EMPTY, "empty");
    expect_bad_str(" \r\n\t ", SW_DECODE_BAD_EMPTY, "empty");
}

static void test_individual_recommendation(void **state)
{
    static const char body[] =
        "{\"assessmentEventDataEnrichment\":{\"action\":\"Insert\",\"isSnapshot\":true},"
        "\"type\":\"Microsoft.Security/assessments\",\"id\":\"/subscriptions/x/resourceGroups/rg/"
        "providers/Microsoft.ContainerRegistry/registries/Reg1/providers/Microsoft.Security/"
        "assessments/9b0e3c3d\",\"properties\":{\"resourceDetails\":{\"Source\":\"Azure\","
        "\"ResourceType\":\".containerimage\",\"nativeResourceId\":\"reg1.azurecr.io/app@sha256:"
        "cc\"},\"displayName\":\"CVE-2024-1 in zlib should be remediated\",\"status\":{\"code\":"
        "\"Unhealthy\",\"statusChangeDate\":\"2026-02-01T10:00:00Z\"},\"additionalData\":{"
        "\"vulnerabilityDetails\":{\"cveId\":\"CVE-2024-1\"},\"softwareDetails\":{\"packageName\":"
        "\"zlib\",\"version\":\"1.2\",\"fixedVersion\":\"1.3\"}},\"metadata\":{"
        "\"recommendationCategory\":\"SoftwareUpdate\",\"severity\":\"Medium\"}}}";
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    if (!decode_str(body, &c, &res, &err)) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(res.by_shape[SW_SHAPE_INDIVIDUAL], 1);
    const cJSON *f = c.items[0];
    expect_str(f, "image", "reg1.azurecr.io/app@sha256:cc");
    expect_str(f, "key", "CVE-2024-1:zlib");
    expect_str(f, "severity", "Medium");
    expect_str(f, "shape", "individual");
    expect_str(f, "scan_time", "2026-02-01T10:00:00.000000Z");
    expect_str(f, "title", "CVE-2024-1 in zlib should be remediated");
    assert_true(fbool(f, "snapshot"));
    assert_true(fbool(f, "fixable"));
    /* Healthy with no CVE: that image scanned clean. */
    cJSON *j = cJSON_Parse(body);
    cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "properties"), "status");
    cJSON_ReplaceItemInObject(st, "code", cJSON_CreateString("Healthy"));
    cJSON_DeleteItemFromObject(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "properties"), "additionalData"),
        "vulnerabilityDetails");
    assert_true(decode_json(j, &c, &res, &err));
    assert_true(c.clean[0]);
    expect_str(c.items[0], "image", "reg1.azurecr.io/app@sha256:cc");
    cJSON_Delete(j);
    /* The same recommendation on a VM is not a container finding. */
    char *vm = strdup(body);
    memcpy(strstr(vm, ".containerimage"), "virtualMachines", 15);
    expect_skip(vm, "assessment");
    free(vm);
    coll_free(&c);
}

static void test_callback_stop(void **state)
{
    char body[8192];
    snprintf(body, sizeof body, "[%s,%s,%s]", mdvm_base, mdvm_base, mdvm_base);
    coll c = {.stop_after = 1};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_with(dec, body, strlen(body), &c, &res, &err));
    assert_true(res.stopped);
    assert_int_equal(c.n, 1);
    assert_int_equal(res.findings, 1);
    coll_free(&c);
}

static void test_kind_counter_bounded(void **state)
{
    sw_decode_kinds k;
    memset(&k, 0, sizeof k);
    for (int i = 0; i < SW_DECODE_KINDS_MAX + 5; i++) {
        char kind[32];
        snprintf(kind, sizeof kind, "sub_assessment:T%d", i);
        sw_decode_kinds_add(&k, kind, 2);
    }
    sw_decode_kinds_add(&k, "sub_assessment:T0", 1);
    assert_int_equal(k.len, SW_DECODE_KINDS_MAX);
    assert_int_equal(k.k[0].n, 3);
    assert_int_equal(k.other, 10);
    /* Kinds are metric labels: attacker-chosen text is cut and reduced to a safe alphabet. */
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    assert_true(decode_str("{\"type\":\"Microsoft.Security/assessments/subAssessments\","
                           "\"properties\":{\"additionalData\":{\"assessedResourceType\":"
                           "\"a\\\"b{c} d\\n0123456789012345678901234567890123456789012345\"}}}",
                           &c, &res, &err));
    assert_string_equal(res.skipped_kind,
                        "sub_assessment:a_b_c__d_012345678901234567890123456789012345678");
}

static void test_stats_summary(void **state)
{
    sw_decode_stats st;
    memset(&st, 0, sizeof st);
    coll c = {0};
    sw_decode_result res;
    sw_err err;
    bool ok = decode_str(mdvm_base, &c, &res, &err);
    sw_decode_stats_add(&st, &res, ok);
    ok = decode_str("{\"type\":\"Microsoft.Security/secureScores\"}", &c, &res, &err);
    sw_decode_stats_add(&st, &res, ok);
    ok = decode_str("nope", &c, &res, &err);
    sw_decode_stats_add(&st, &res, ok);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    sw_decode_stats_print(&st, f);
    fclose(f);
    assert_string_equal(out, "findings: 1 (qualys 0, mdvm 1, individual 0), clean markers: 0, "
                             "bodies: 3, records: 2\n"
                             "skipped: 1 (secure_score 1)\n"
                             "bad: 1 (not_json 1)\n");
    free(out);
    coll_free(&c);
}

/* ---------------------------------------------------------- generator -- */

typedef struct gen_check {
    sw_decode_stats st;
    coll c;
    uint64_t hash;
    size_t bytes;
    size_t bodies;
} gen_check;

static bool gen_body(void *ctx, const char *body, size_t len)
{
    gen_check *g = ctx;
    sw_decode_result res;
    sw_err err;
    for (size_t i = 0; i < len; i++) {
        g->hash = (g->hash ^ (unsigned char)body[i]) * 1099511628211ULL;
    }
    g->bytes += len;
    g->bodies++;
    assert_null(memchr(body, '\n', len)); /* NDJSON: one body per line */
    bool ok = sw_decode_body(dec, body, len, collect, &g->c, &res, &err);
    sw_decode_stats_add(&g->st, &res, ok);
    return true;
}

static void run_gen(const sw_gen_opts *o, gen_check *g, sw_gen_counts *counts)
{
    memset(g, 0, sizeof *g);
    g->hash = 1469598103934665603ULL;
    sw_err err;
    assert_true(sw_gen_run(o, gen_body, g, counts, &err));
}

static void test_generator_matches_decoder(void **state)
{
    sw_gen_opts o;
    sw_gen_opts_default(&o);
    o.images = 9;
    o.findings = 12;
    o.rescans = 3;
    o.churn = 0.25;
    o.mix[0] = o.mix[1] = o.mix[2] = 1;
    o.clean = 0.2;
    o.other = 0.1;
    o.bad = 0.05;
    o.snapshot_every = 3;
    gen_check *g = calloc(1, sizeof *g), *g2 = calloc(1, sizeof *g2);
    sw_gen_counts counts, counts2;
    run_gen(&o, g, &counts);
    assert_true(counts.bad > 0 && counts.other > 0 && counts.clean_markers > 0);
    assert_int_equal(g->st.findings, counts.findings + counts.clean_markers);
    assert_int_equal(g->st.clean_markers, counts.clean_markers);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(g->st.by_shape[s], counts.by_shape[s]);
    }
    assert_int_equal(g->st.skipped, counts.other);
    assert_int_equal(g->st.bad, counts.bad);
    uint64_t resolved = 0;
    for (int i = 0; i < g->c.n; i++) {
        resolved += !g->c.clean[i] && strcmp(fstr(g->c.items[i], "status"), "resolved") == 0;
    }
    assert_int_equal(resolved, counts.resolved);
    /* Same options, same bytes. */
    run_gen(&o, g2, &counts2);
    assert_int_equal(g->hash, g2->hash);
    assert_int_equal(g->bytes, g2->bytes);
    /* Batched into {"records": [...]}: the same findings. */
    o.batch = 4;
    o.wrap = SW_GEN_WRAP_RECORDS;
    o.bad = 0;
    coll_free(&g2->c);
    run_gen(&o, g2, &counts2);
    assert_true(g2->bodies < counts2.findings);
    assert_int_equal(g2->st.findings, counts2.findings + counts2.clean_markers);
    assert_int_equal(g2->st.bad, 0);
    coll_free(&g->c);
    coll_free(&g2->c);
    free(g);
    free(g2);
}

/*
 * Rescans in full mode: each scan re-sends the active set; consecutive scans
 * share all but churn*M keys (unchanged findings keep their key); scans are
 * about a day apart and the records of one scan lie within a few seconds.
 */
static void test_generator_rescans(void **state)
{
    sw_gen_opts o;
    sw_gen_opts_default(&o);
    o.images = 1;
    o.findings = 20;
    o.rescans = 3;
    o.churn = 0.25;
    o.mix[0] = 0;
    o.mix[1] = 1;
    o.mix[2] = 0;
    gen_check *g = calloc(1, sizeof *g);
    sw_gen_counts counts;
    run_gen(&o, g, &counts);
    /* 20 active per scan, plus 5 resolved records in each of the 3 rescans. */
    assert_int_equal(g->c.n, 20 * 4 + 5 * 3);
    char keys[4][25][64];
    int nk[4] = {0};
    sw_time_us lo[4], hi[4];
    int scan = 0;
    sw_time_us prev = 0;
    for (int i = 0; i < g->c.n; i++) {
        sw_time_us t;
        const char *ts = fstr(g->c.items[i], "scan_time");
        assert_true(sw_time_parse(ts, strlen(ts), &t));
        if (i > 0 && t - prev > 3600LL * SW_US_PER_SEC) {
            scan++;
            int64_t gap = t - hi[scan - 1];
            assert_true(gap > 20 * 3600LL * SW_US_PER_SEC && gap < 28 * 3600LL * SW_US_PER_SEC);
        }
        assert_true(t >= prev || i == 0);
        if (nk[scan] == 0) {
            lo[scan] = t;
        }
        hi[scan] = t;
        prev = t;
        if (strcmp(fstr(g->c.items[i], "status"), "active") == 0) {
            snprintf(keys[scan][nk[scan]++], 64, "%s", fstr(g->c.items[i], "key"));
        }
    }
    assert_int_equal(scan, 3);
    for (int s = 0; s < 4; s++) {
        assert_int_equal(nk[s], 20);
        assert_true(hi[s] - lo[s] <= 5 * SW_US_PER_SEC);
        if (s == 0) {
            continue;
        }
        int common = 0;
        for (int a = 0; a < 20; a++) {
            for (int b = 0; b < 20; b++) {
                common += strcmp(keys[s][a], keys[s - 1][b]) == 0;
            }
        }
        assert_int_equal(common, 15);
    }
    coll_free(&g->c);
    free(g);
}

static void test_generator_mdvm_size(void **state)
{
    sw_gen_opts o;
    sw_gen_opts_default(&o);
    o.images = 10;
    o.findings = 20;
    o.rescans = 0;
    o.mix[0] = 0;
    o.mix[1] = 1;
    o.mix[2] = 0;
    gen_check *g = calloc(1, sizeof *g);
    sw_gen_counts counts;
    run_gen(&o, g, &counts);
    size_t avg = g->bytes / g->bodies;
    if (avg < 2000 || avg > 3200) {
        fail_msg("MDVM bodies average %zu bytes, want about 2-3 KB", avg);
    }
    coll_free(&g->c);
    free(g);
}

static int setup(void **state)
{
    sw_err err;
    dec = sw_decoder_new(NULL, &err);
    return dec == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    sw_decoder_free(dec);
    return 0;
}

/* The canonical JSON's cvss is printf's "%.1f", whichever path formats it. */
static void test_finding_json_cvss(void **state)
{
    (void)state;
    const double odd[] = {0.0, -0.0, 7.25, 7.35, 0.05, 9.95, 10.0, 1e7, -3.1, 123456.75, 0.04999};
    sw_buf b;
    sw_buf_init(&b, 0);
    for (int i = 0; i < 1000 + (int)(sizeof odd / sizeof odd[0]); i++) {
        sw_finding f = {.image = "r/x@sha256:1", .key = "k", .has_cvss = true};
        f.cvss = i < 1000 ? i / 10.0 : odd[i - 1000];
        if (i % 3 == 1 && i < 1000) {
            f.cvss = (i / 10) + 0.1 * (i % 10); /* a value computed another way */
        }
        sw_buf_reset(&b);
        assert_true(sw_finding_to_json(&f, &b));
        char want[64];
        snprintf(want, sizeof want, "\"cvss\":%.1f,", f.cvss);
        assert_non_null(strstr(b.data, want));
    }
    sw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_qualys_with_healthy_markers),
        cmocka_unit_test(test_sample_qualys_sdk_flattened),
        cmocka_unit_test(test_sample_qualys_rest_example),
        cmocka_unit_test(test_sample_mdvm_arg_row),
        cmocka_unit_test(test_samples_skipped_by_kind),
        cmocka_unit_test(test_mdvm_camel),
        cmocka_unit_test(test_mdvm_pascal_and_upper_case),
        cmocka_unit_test(test_body_framings),
        cmocka_unit_test(test_envelope_and_status),
        cmocka_unit_test(test_image_fallbacks),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit_and_big_string),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_truncated_and_garbage),
        cmocka_unit_test(test_individual_recommendation),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_kind_counter_bounded),
        cmocka_unit_test(test_stats_summary),
        cmocka_unit_test(test_generator_matches_decoder),
        cmocka_unit_test(test_generator_rescans),
        cmocka_unit_test(test_generator_mdvm_size),
        cmocka_unit_test(test_finding_json_cvss),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
