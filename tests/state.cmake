# Tests of state/: the store API, the rescan engine's rules, a property test
# against a reference model, and (integration) the SIGKILL crash test of
# `scanwatch process`.
sw_add_unit_test(test_state_store SOURCES unit/test_state_store.c unit/state_test_util.c
  LIBS sw_state)
sw_add_unit_test(test_state_engine SOURCES unit/test_state_engine.c unit/state_test_util.c
  LIBS sw_state PkgConfig::CJSON)
sw_add_unit_test(test_state_property SOURCES unit/test_state_property.c unit/state_test_util.c
  LIBS sw_state PkgConfig::CJSON)
