# Decoder tests (issue 2): samples, hand-made variants, the generator, the
# `scanwatch decode` CLI, the demo, and the fuzz corpus as a regression test.
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
