# Tests of the Event Hubs emulator (emulator/).
sw_add_unit_test(test_emulator_store SOURCES unit/test_emulator_store.c LIBS sw_emulator)
sw_add_unit_test(test_emulator_auth SOURCES unit/test_emulator_auth.c LIBS sw_emulator)
sw_add_unit_test(test_emulator_load SOURCES unit/test_emulator_load.c LIBS sw_emulator)

# Throw-away TLS material for the TLS tests, generated in the build tree.
set(SW_EMU_CERTS ${PROJECT_BINARY_DIR}/tests/emulator-certs)
add_test(NAME emulator_test_certs
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/emulator/make-test-certs.sh ${SW_EMU_CERTS})
set_tests_properties(emulator_test_certs PROPERTIES
  LABELS integration FIXTURES_SETUP emulator_certs)

# Fault injection through the control channel, with a bare proton client.
add_executable(test_emulator_faults emulator/test_emulator_faults.c)
target_link_libraries(test_emulator_faults PRIVATE sw_common PkgConfig::PROTON PkgConfig::OPENSSL)
add_test(NAME emulator_faults
  COMMAND test_emulator_faults $<TARGET_FILE:scanwatch-emulator>)
set_tests_properties(emulator_faults PROPERTIES LABELS integration TIMEOUT 120)

# Faithfulness: Microsoft's @azure/event-hubs (pinned by tests/sdk/package-lock.json)
# against the emulator, plain and TLS. Needs `npm ci` in tests/sdk (scripts/test
# does it); the script fails with that instruction when node_modules is missing.
find_program(SW_NODE node)
set(SW_SDK_DIR ${CMAKE_CURRENT_SOURCE_DIR}/sdk)
if(SW_NODE)
  add_test(NAME emulator_sdk_plain
    COMMAND ${SW_NODE} ${SW_SDK_DIR}/emulator-faithfulness.mjs
            --emulator $<TARGET_FILE:scanwatch-emulator>
    WORKING_DIRECTORY ${SW_SDK_DIR})
  add_test(NAME emulator_sdk_tls
    COMMAND ${SW_NODE} ${SW_SDK_DIR}/emulator-faithfulness.mjs
            --emulator $<TARGET_FILE:scanwatch-emulator> --tls ${SW_EMU_CERTS}
    WORKING_DIRECTORY ${SW_SDK_DIR})
  set_tests_properties(emulator_sdk_tls PROPERTIES
    FIXTURES_REQUIRED emulator_certs
    ENVIRONMENT "NODE_EXTRA_CA_CERTS=${SW_EMU_CERTS}/ca.pem;NODE_NO_WARNINGS=1")
else()
  foreach(t emulator_sdk_plain emulator_sdk_tls)
    add_test(NAME ${t} COMMAND sh -c
      "echo 'FAIL: node not found; install nodejs 20 (scripts/install-deps) and run npm ci in tests/sdk' >&2; exit 1")
  endforeach()
endif()
set_tests_properties(emulator_sdk_plain emulator_sdk_tls PROPERTIES
  LABELS integration TIMEOUT 180 RUN_SERIAL TRUE)

# Fuzzing the emulator's parsers of untrusted input (deliveries, filters, SAS
# tokens, addresses). With -DSW_FUZZ=ON (CC=clang): the libFuzzer target
# fuzz_emulator. Always: the corpus replayed as a unit test.
set(SW_EMU_CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/emulator/corpus)
set(SW_EMU_PARSERS ${PROJECT_SOURCE_DIR}/emulator/amqpbin.c ${PROJECT_SOURCE_DIR}/emulator/auth.c
  ${PROJECT_SOURCE_DIR}/emulator/filter.c ${PROJECT_SOURCE_DIR}/emulator/store.c)
if(SW_FUZZ)
  add_executable(fuzz_emulator emulator/fuzz_emulator.c ${SW_EMU_PARSERS})
  target_include_directories(fuzz_emulator PRIVATE ${PROJECT_SOURCE_DIR}/emulator)
  target_compile_options(fuzz_emulator PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_emulator PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_emulator PRIVATE sw_common PkgConfig::OPENSSL)
endif()
add_executable(fuzz_emulator_replay emulator/fuzz_emulator.c emulator/fuzz_main.c)
target_link_libraries(fuzz_emulator_replay PRIVATE sw_emulator)
add_test(NAME fuzz_emulator_corpus COMMAND fuzz_emulator_replay ${SW_EMU_CORPUS})
set_tests_properties(fuzz_emulator_corpus PROPERTIES LABELS unit)

# --load --load-format timed with sw-gen --emit-enqueued, through the pinned SDK:
# bodies, enqueued times, seq/offsets, an enqueued-time start, bad files.
if(SW_NODE)
  add_test(NAME emulator_sdk_timed_load
    COMMAND ${SW_NODE} ${SW_SDK_DIR}/emulator-timed-load.mjs
            --emulator $<TARGET_FILE:scanwatch-emulator> --gen $<TARGET_FILE:sw-gen>
    WORKING_DIRECTORY ${SW_SDK_DIR})
  set_tests_properties(emulator_sdk_timed_load PROPERTIES LABELS integration TIMEOUT 180)
  add_test(NAME emulator_sdk_flow
    COMMAND ${SW_NODE} ${SW_SDK_DIR}/emulator-flow.mjs
            --emulator $<TARGET_FILE:scanwatch-emulator> --gen $<TARGET_FILE:sw-gen>
    WORKING_DIRECTORY ${SW_SDK_DIR})
  set_tests_properties(emulator_sdk_flow PROPERTIES LABELS integration TIMEOUT 180)
endif()

# --load files: the line reader, the timed format, file-backed events read back.
# With -DSW_FUZZ=ON (CC=clang): the libFuzzer target fuzz_emulator_load.
add_executable(fuzz_emulator_load_replay emulator/fuzz_emulator_load.c emulator/fuzz_main.c)
target_link_libraries(fuzz_emulator_load_replay PRIVATE sw_emulator)
add_test(NAME fuzz_emulator_load_corpus COMMAND fuzz_emulator_load_replay
  ${CMAKE_CURRENT_SOURCE_DIR}/emulator/corpus-load)
set_tests_properties(fuzz_emulator_load_corpus PROPERTIES LABELS unit)
if(SW_FUZZ)
  add_executable(fuzz_emulator_load emulator/fuzz_emulator_load.c ${SW_EMU_PARSERS}
    ${PROJECT_SOURCE_DIR}/emulator/load.c)
  target_include_directories(fuzz_emulator_load PRIVATE ${PROJECT_SOURCE_DIR}/emulator)
  target_compile_options(fuzz_emulator_load PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_emulator_load PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_emulator_load PRIVATE sw_common PkgConfig::OPENSSL)
endif()
