# Decoder tests (issue 2): samples, hand-made variants, the generator, the
# `scanwatch decode` CLI, the demo, and the fuzz corpus as a regression test.
add_subdirectory(gen)

sw_add_unit_test(test_decode SOURCES unit/test_decode.c
  LIBS sw_consumer sw_gen PkgConfig::CJSON)
