# Decoder tests (issue 2): samples, hand-made variants, the generator, the
# `scanwatch decode` CLI (decode_cli), the demo stream, and the fuzz corpus as
# a regression test. (The demo itself is the service's now: tests/service.cmake.)
add_subdirectory(gen)

sw_add_unit_test(test_decode SOURCES unit/test_decode.c
  LIBS sw_consumer sw_gen PkgConfig::CJSON)

add_test(NAME decode_cli
  COMMAND ${CMAKE_COMMAND} -DSCANWATCH=$<TARGET_FILE:scanwatch>
          -DCOMPACT=$<TARGET_FILE:sw-compact-json> -DGEN=$<TARGET_FILE:sw-gen>
          -DSAMPLES=${PROJECT_SOURCE_DIR}/tests/data/samples
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/decode_cli.work
          -P ${CMAKE_CURRENT_SOURCE_DIR}/decode_cli.cmake)
set_tests_properties(decode_cli PROPERTIES LABELS unit)

# Fuzzing the decoder. With -DSW_FUZZ=ON (and CC=clang): the libFuzzer target
# fuzz_decode, the decoder compiled into it with coverage instrumentation:
#   CC=clang cmake -S . -B build-fuzz -DSW_FUZZ=ON && cmake --build build-fuzz --target fuzz_decode
#   build-fuzz/tests/fuzz_decode -dict=tests/fuzz/decode.dict -max_len=16384 \
#     -max_total_time=600 NEW_CORPUS_DIR tests/fuzz/corpus/decode
# Always: fuzz_decode_replay feeds every corpus file through the same target.
set(SW_DECODE_CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/decode)
if(SW_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SW_FUZZ=ON needs clang (libFuzzer): configure with CC=clang")
  endif()
  add_executable(fuzz_decode fuzz/fuzz_decode.c
    ${PROJECT_SOURCE_DIR}/consumer/decode.c ${PROJECT_SOURCE_DIR}/consumer/json.c
    ${PROJECT_SOURCE_DIR}/consumer/finding.c)
  target_include_directories(fuzz_decode PRIVATE ${PROJECT_SOURCE_DIR}/include
    ${PROJECT_SOURCE_DIR}/consumer)
  target_compile_options(fuzz_decode PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_decode PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_decode PRIVATE sw_common PkgConfig::CJSON m)
endif()
add_executable(fuzz_decode_replay fuzz/fuzz_decode.c fuzz/fuzz_main.c)
target_link_libraries(fuzz_decode_replay PRIVATE sw_consumer sw_common PkgConfig::CJSON)
add_test(NAME fuzz_decode_corpus COMMAND fuzz_decode_replay ${SW_DECODE_CORPUS})
set_tests_properties(fuzz_decode_corpus PROPERTIES LABELS unit)

# The demo's bundled stream is sw-gen output; fail when the generator drifts from it.
set(SW_DEMO_STREAM_ARGS --seed 1 --images 8 --findings 10 --rescans 2 --churn 0.3 --mix 1,1,1
  --clean 0.15 --other 0.1 --bad 0.02 --snapshot-every 3)
string(REPLACE ";" " " _demo_args "${SW_DEMO_STREAM_ARGS}")
add_test(NAME demo_stream_drift
  COMMAND ${CMAKE_COMMAND} -DGEN=$<TARGET_FILE:sw-gen> "-DARGS=${SW_DEMO_STREAM_ARGS}"
          -DSTREAM=${PROJECT_SOURCE_DIR}/tests/data/demo-stream.ndjson
          -DOUT=${CMAKE_CURRENT_BINARY_DIR}/demo-stream.regenerated.ndjson
          "-DHOWTO=build/tests/gen/sw-gen ${_demo_args} --out tests/data/demo-stream.ndjson"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/demo_stream_drift.cmake)
set_tests_properties(demo_stream_drift PROPERTIES LABELS unit)
