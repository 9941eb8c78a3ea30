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
