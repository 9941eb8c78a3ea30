# Tests of state/: the store API, the rescan engine's rules, a property test
# against a reference model, and (integration) the SIGKILL crash test of
# `scanwatch process`.
sw_add_unit_test(test_state_store SOURCES unit/test_state_store.c unit/state_test_util.c
  LIBS sw_state)
sw_add_unit_test(test_state_engine SOURCES unit/test_state_engine.c unit/state_test_util.c
  LIBS sw_state PkgConfig::CJSON)
sw_add_unit_test(test_state_property SOURCES unit/test_state_property.c unit/state_test_util.c
  LIBS sw_state PkgConfig::CJSON)

# SIGKILL at 24 random points of a large input (integration: starts processes).
add_test(NAME state_crash
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/state_crash.sh $<TARGET_FILE:scanwatch>
          $<TARGET_FILE:sw-gen> ${CMAKE_CURRENT_BINARY_DIR}/state_crash.work 24)
set_tests_properties(state_crash PROPERTIES LABELS integration TIMEOUT 600)

# `scanwatch process` / `scanwatch state` on the samples and generated streams.
add_test(NAME state_cli
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/state_cli.sh $<TARGET_FILE:scanwatch> $<TARGET_FILE:sw-gen>
          $<TARGET_FILE:sw-compact-json> ${PROJECT_SOURCE_DIR}/tests/data/samples
          ${CMAKE_CURRENT_BINARY_DIR}/state_cli.work)
set_tests_properties(state_cli PROPERTIES LABELS unit TIMEOUT 300)
set_tests_properties(test_state_property PROPERTIES TIMEOUT 900)

# Hand-written streams with hand-written expected diff records (tests/data/streams/);
# node (scripts/install-deps) compares the records.
find_program(SW_NODE node)
add_test(NAME state_streams
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/state_streams.sh $<TARGET_FILE:scanwatch>
          ${PROJECT_SOURCE_DIR}/tests/data/streams ${CMAKE_CURRENT_SOURCE_DIR}/state_streams_compare.mjs
          "${SW_NODE}"
          ${CMAKE_CURRENT_BINARY_DIR}/state_streams.work)
set_tests_properties(state_streams PROPERTIES LABELS unit TIMEOUT 300)
