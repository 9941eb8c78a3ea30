# CLI tests of `scanwatch decode` (run with cmake -P). Variables: SCANWATCH,
# COMPACT (sw-compact-json), GEN (sw-gen), SAMPLES (sample dir), WORK (scratch dir).
cmake_minimum_required(VERSION 3.20)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(expect_eq got want msg)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "FAILED: ${msg}: got '${got}', expected '${want}'")
  endif()
endfunction()

function(expect_contains haystack needle what)
  string(FIND "${haystack}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "FAILED: ${what}: expected to find\n  ${needle}\nin\n${haystack}")
  endif()
endfunction()

function(count_matches haystack regex outvar)
  string(REGEX MATCHALL "${regex}" found "${haystack}")
  list(LENGTH found n)
  set(${outvar} ${n} PARENT_SCOPE)
endfunction()

# Every stdout line must be one JSON object with the SPEC §2 fields.
function(check_findings out expected_count)
  string(REGEX REPLACE "\n$" "" out "${out}")
  if(out STREQUAL "")
    set(lines "")
  else()
    string(REPLACE ";" "\\;" out "${out}")
    string(REPLACE "\n" ";" lines "${out}")
  endif()
  list(LENGTH lines n)
  if(NOT n EQUAL expected_count)
    message(FATAL_ERROR "FAILED: expected ${expected_count} finding lines, got ${n}:\n${out}")
  endif()
  foreach(line IN LISTS lines)
    foreach(field image registry repository digest tags key vuln_id package version
            fixed_version fixable severity cvss title published links status snapshot scan_time shape)
      string(JSON t ERROR_VARIABLE jerr TYPE "${line}" ${field})
      if(jerr)
        message(FATAL_ERROR "FAILED: output line lacks '${field}' or is not JSON (${jerr}):\n${line}")
      endif()
    endforeach()
  endforeach()
endfunction()

# 1. The samples, compacted to one body per line.
file(GLOB samples ${SAMPLES}/*.json)
list(SORT samples)
execute_process(COMMAND ${COMPACT} ${samples} OUTPUT_FILE ${WORK}/samples.ndjson RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "sw-compact-json failed")
execute_process(COMMAND ${SCANWATCH} decode ${WORK}/samples.ndjson
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "decode of the samples exited ${rc}: ${err}")
check_findings("${out}" 8)
expect_contains("${err}" "findings: 8 (qualys 7, mdvm 1, individual 0), clean markers: 3, bodies: 12, records: 18" "samples summary")
expect_contains("${err}" "skipped: 10 (assessment 4, regulatory_compliance 1, sub_assessment:GeneralVulnerability 1, unknown 4)" "samples skipped")
expect_contains("${err}" "bad: 0 ()" "samples bad")
expect_contains("${out}" "\"image\":\"ptebic.azurecr.io/public/azureml/aifx/stable-ubuntu2004-cu117-py39-torch200@sha256:4af8e6f002401a965bbe753a381af308b40d8947fad2b9e1f6a369aa81abee59\"" "MDVM image key")
expect_contains("${out}" "\"key\":\"CVE-2022-42969:py\"" "MDVM finding key")

# 2. The same through stdin ("-").
execute_process(COMMAND ${SCANWATCH} decode -
  INPUT_FILE ${WORK}/samples.ndjson OUTPUT_VARIABLE out2 ERROR_VARIABLE err2 RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "decode - exited ${rc}")
expect_eq("${out}" "${out2}" "stdin output differs from file output")

# 3. Bad lines are logged once each with their line number; the rest decodes; exit 0.
execute_process(COMMAND ${COMPACT}
  ${SAMPLES}/ms-docs_subassessment-rest-api_mdvm-azure-registry-subassessment_ARG-result.json
  OUTPUT_VARIABLE mdvm_line OUTPUT_STRIP_TRAILING_WHITESPACE)
file(WRITE ${WORK}/mixed.ndjson "${mdvm_line}\nnot json\n\n{\"type\":\"Microsoft.Security/assessments/subAssessments\",\"properties\":{\"id\":\"CVE-1\",\"status\":{\"code\":\"Unhealthy\"},\"additionalData\":{\"assessedResourceType\":\"AzureContainerRegistryVulnerability\"}}}\r\n[1]\n")
execute_process(COMMAND ${SCANWATCH} decode ${WORK}/mixed.ndjson
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "decode with bad lines exited ${rc}")
check_findings("${out}" 1)
expect_contains("${err}" "\"line\":2,\"reason\":\"not_json\"" "bad line 2 logged")
expect_contains("${err}" "\"line\":4,\"reason\":\"missing_image\"" "bad line 4 logged")
expect_contains("${err}" "\"line\":5,\"reason\":\"wrong_type\"" "bad line 5 logged")
count_matches("${err}" "\"msg\":\"bad event\"" nbad)
expect_eq("${nbad}" "3" "expected 3 bad-event log lines, got ${nbad}:\n${err}")
expect_contains("${err}" "bad: 3 (not_json 1, wrong_type 1, missing_image 1)" "bad summary")
expect_contains("${err}" "bodies: 4" "blank line is not an event")

# 4. A line longer than max_message_size is one too_large event; later lines still decode.
string(REPEAT "x" 5000 long)
execute_process(COMMAND ${COMPACT} # regulatory compliance, < 1 KiB
  ${SAMPLES}/elastic-integrations_test-alert-log_line1_regulatory-compliance-event.json
  OUTPUT_VARIABLE reg_line OUTPUT_STRIP_TRAILING_WHITESPACE)
file(WRITE ${WORK}/long.ndjson "${long}\n${reg_line}\n")
execute_process(COMMAND ${SCANWATCH} decode --max-message-size 1024 ${WORK}/long.ndjson
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "decode with a long line exited ${rc}")
expect_contains("${err}" "\"line\":1,\"reason\":\"too_large\"" "long line reported")
expect_contains("${err}" "skipped: 1 (regulatory_compliance 1)" "line after the long one decoded")

# 5. Unreadable input: exit 1 with a clear message; usage errors: exit 2.
execute_process(COMMAND ${SCANWATCH} decode ${WORK}/does-not-exist.ndjson
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "1" "missing file exited ${rc}")
expect_contains("${err}" "cannot open ${WORK}/does-not-exist.ndjson" "missing file message")
execute_process(COMMAND ${SCANWATCH} decode ${WORK}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "1" "directory exited ${rc}")
expect_contains("${err}" "cannot read ${WORK}" "directory message")
execute_process(COMMAND ${SCANWATCH} decode a b
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "2" "two files exited ${rc}")
expect_contains("${err}" "usage: scanwatch decode" "usage message")

# 6. A generated stream: every finding printed, counts agree.
execute_process(COMMAND ${GEN} --seed 7 --images 5 --findings 6 --rescans 1 --mix 1,1,1 --other 0.2 --out ${WORK}/gen.ndjson
  RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "sw-gen failed")
execute_process(COMMAND ${SCANWATCH} decode ${WORK}/gen.ndjson
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "decode of generated stream exited ${rc}")
string(REGEX MATCH "findings: ([0-9]+)" m "${err}")
check_findings("${out}" ${CMAKE_MATCH_1})
expect_contains("${err}" "bad: 0 ()" "generated stream has no bad events")

# 7. sw-gen: documented flags, deterministic output, usage errors.
execute_process(COMMAND ${GEN} --help OUTPUT_VARIABLE out RESULT_VARIABLE rc)
expect_eq("${rc}" "0" "sw-gen --help exited ${rc}")
foreach(flag --seed --images --findings --rescans --churn --mix --casing --mode --snapshot-every
        --clean --other --bad --batch --wrap --start --interval --spread --emit-enqueued --out)
  expect_contains("${out}" "  ${flag} " "sw-gen --help documents ${flag}")
endforeach()
execute_process(COMMAND ${GEN} --seed 7 --images 5 --findings 6 --rescans 1 --mix 1,1,1 --other 0.2
  OUTPUT_FILE ${WORK}/gen2.ndjson RESULT_VARIABLE rc)
file(SHA256 ${WORK}/gen.ndjson h1)
file(SHA256 ${WORK}/gen2.ndjson h2)
expect_eq("${h1}" "${h2}" "sw-gen is deterministic (--out and stdout, same flags)")
execute_process(COMMAND ${GEN} --churn 2 ERROR_VARIABLE err RESULT_VARIABLE rc)
expect_eq("${rc}" "2" "sw-gen --churn 2 exited ${rc}")
expect_contains("${err}" "--churn: '2' is not a number in [0, 1]" "sw-gen names the bad flag")

file(REMOVE_RECURSE ${WORK})
