# Tests of consumer/notify: routes, rendering, the digest split and sinks (unit), and
# against the fake Graph (tests/fake-graph, Node built-ins only): token providers,
# delivery rules, and a SIGKILL crash test of `scanwatch notify` (integration).
sw_add_unit_test(test_notify_render
  SOURCES unit/test_notify_render.c unit/notify_test_util.c unit/state_test_util.c
  LIBS sw_notify PkgConfig::CJSON PkgConfig::CURL)
target_include_directories(test_notify_render PRIVATE ${PROJECT_SOURCE_DIR}/consumer)

find_program(SW_NODE node)
if(SW_NODE)
  sw_add_unit_test(test_notify_graph
    SOURCES unit/test_notify_graph.c unit/notify_test_util.c unit/state_test_util.c
    LIBS sw_notify PkgConfig::CJSON PkgConfig::CURL Threads::Threads)
  target_include_directories(test_notify_graph PRIVATE ${PROJECT_SOURCE_DIR}/consumer)
  set_tests_properties(test_notify_graph PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "SW_SOURCE_DIR=${PROJECT_SOURCE_DIR};SW_BUILD_DIR=${PROJECT_BINARY_DIR};SW_SCANWATCH=$<TARGET_FILE:scanwatch>")
else()
  message(WARNING "node not found: the fake-Graph notification tests are not built")
endif()

# Fuzzing what the notifier parses (routes, outbox diff records -> rendering, Retry-After,
# mail_sink). With -DSW_FUZZ=ON (and CC=clang) the libFuzzer target fuzz_notify:
#   CC=clang cmake -S . -B build-fuzz -DSW_FUZZ=ON && cmake --build build-fuzz --target fuzz_notify
#   build-fuzz/tests/fuzz_notify -max_len=65536 -max_total_time=600 NEW_DIR tests/fuzz/corpus/notify
# Always: fuzz_notify_replay feeds every corpus file through the same target.
set(SW_NOTIFY_FUZZ_SOURCES fuzz/fuzz_notify.c
  ${PROJECT_SOURCE_DIR}/consumer/notify_route.c ${PROJECT_SOURCE_DIR}/consumer/notify_render.c
  ${PROJECT_SOURCE_DIR}/consumer/notify_sink.c ${PROJECT_SOURCE_DIR}/consumer/notify_graph.c
  ${PROJECT_SOURCE_DIR}/consumer/http_client.c ${PROJECT_SOURCE_DIR}/consumer/entra.c
  ${PROJECT_SOURCE_DIR}/consumer/finding.c)
if(SW_FUZZ)
  add_executable(fuzz_notify ${SW_NOTIFY_FUZZ_SOURCES})
  target_include_directories(fuzz_notify PRIVATE ${PROJECT_SOURCE_DIR}/include
    ${PROJECT_SOURCE_DIR}/consumer)
  target_compile_options(fuzz_notify PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_notify PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_notify PRIVATE sw_common PkgConfig::CJSON PkgConfig::CURL
    PkgConfig::OPENSSL Threads::Threads)
endif()
add_executable(fuzz_notify_replay fuzz/fuzz_notify.c fuzz/fuzz_main.c)
target_include_directories(fuzz_notify_replay PRIVATE ${PROJECT_SOURCE_DIR}/consumer)
target_link_libraries(fuzz_notify_replay PRIVATE sw_notify sw_common PkgConfig::CJSON)
add_test(NAME fuzz_notify_corpus COMMAND fuzz_notify_replay
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/notify)
set_tests_properties(fuzz_notify_corpus PROPERTIES LABELS unit)
