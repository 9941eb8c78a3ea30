# Fuzz targets of issue 9 (docs/fuzzing.md). Each target is one
# LLVMFuzzerTestOneInput in tests/fuzz/fuzz_<name>.c with a corpus in
# tests/fuzz/corpus/<name>:
#   - always: fuzz_<name>_replay (the target + fuzz/fuzz_main.c) replays the
#     corpus as the unit test fuzz_<name>_corpus, in every build (no clang needed);
#   - with -DSW_FUZZ=ON (clang; the root CMakeLists.txt then instruments every
#     library for coverage with ASan+UBSan): the libFuzzer binary fuzz_<name>.
# The older targets (fuzz_decode, fuzz_notify, fuzz_amqp, fuzz_emulator) are
# declared in decode.cmake, notify.cmake, amqp.cmake and emulator.cmake.

# sw_add_fuzz(NAME SOURCES extra.c... LIBS libs...)
function(sw_add_fuzz name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  set(corpus ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
  set(srcs fuzz/fuzz_${name}.c ${F_SOURCES})
  add_executable(fuzz_${name}_replay ${srcs} fuzz/fuzz_main.c)
  target_include_directories(fuzz_${name}_replay PRIVATE ${PROJECT_SOURCE_DIR}/consumer)
  target_link_libraries(fuzz_${name}_replay PRIVATE ${F_LIBS} sw_common)
  add_test(NAME fuzz_${name}_corpus COMMAND fuzz_${name}_replay ${corpus})
  set_tests_properties(fuzz_${name}_corpus PROPERTIES LABELS unit)
  if(SW_FUZZ)
    add_executable(fuzz_${name} ${srcs})
    target_include_directories(fuzz_${name} PRIVATE ${PROJECT_SOURCE_DIR}/consumer)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${name} PRIVATE ${F_LIBS} sw_common)
  endif()
endfunction()

# The decoder's fast JSON parser against cJSON (differential: same tree or gives up).
sw_add_fuzz(json SOURCES ${PROJECT_SOURCE_DIR}/consumer/json.c LIBS PkgConfig::CJSON)
# ... also over the decoder's corpus and the real Defender samples.
add_test(NAME fuzz_json_decode_inputs COMMAND fuzz_json_replay
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/decode ${CMAKE_CURRENT_SOURCE_DIR}/data/samples)
set_tests_properties(fuzz_json_decode_inputs PROPERTIES LABELS unit)

# The configuration file (YAML) and the validation of every setting's consumer.
sw_add_fuzz(config LIBS sw_notify sw_amqp sw_state sw_consumer PkgConfig::CJSON)
# The route matcher: routes JSON + a diff record, matched, filtered, rendered.
sw_add_fuzz(route LIBS sw_notify PkgConfig::CJSON)
# Token endpoint responses (Entra ID, managed identity) and Graph error bodies.
sw_add_fuzz(graph LIBS sw_notify PkgConfig::CJSON)
# The AMQP event path: message decode -> annotations -> pipeline -> state engine.
sw_add_fuzz(amqp_event
  SOURCES ${PROJECT_SOURCE_DIR}/consumer/pipeline.c ${PROJECT_SOURCE_DIR}/consumer/route.c
  LIBS sw_amqp sw_state sw_consumer PkgConfig::CJSON)
target_include_directories(fuzz_amqp_event_replay PRIVATE ${PROJECT_SOURCE_DIR}/amqp)
if(SW_FUZZ)
  target_include_directories(fuzz_amqp_event PRIVATE ${PROJECT_SOURCE_DIR}/amqp)
endif()
