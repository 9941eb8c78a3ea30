# Tests of amqp/ (the Event Hubs client).
sw_add_unit_test(test_amqp_unit SOURCES unit/test_amqp_unit.c LIBS sw_amqp PkgConfig::PROTON)

# Integration tests: each test starts scanwatch-emulator on ephemeral loopback ports.
if(TARGET scanwatch-emulator)
  add_executable(test_amqp_emulator amqp/test_amqp_emulator.c amqp/emu_harness.c)
  target_link_libraries(test_amqp_emulator PRIVATE sw_amqp sw_common PkgConfig::CMOCKA)
  add_dependencies(test_amqp_emulator scanwatch-emulator)
  add_test(NAME test_amqp_emulator COMMAND test_amqp_emulator)
  # TLS material comes from the emulator's fixture (tests/emulator.cmake).
  set_tests_properties(test_amqp_emulator PROPERTIES LABELS integration TIMEOUT 300
    FIXTURES_REQUIRED emulator_certs
    ENVIRONMENT "SW_SOURCE_DIR=${PROJECT_SOURCE_DIR};SW_BUILD_DIR=${PROJECT_BINARY_DIR};SW_EMU_CERTS=${PROJECT_BINARY_DIR}/tests/emulator-certs")
  # The frames on the wire, from proton's own trace.
  add_test(NAME test_amqp_wire COMMAND test_amqp_emulator --wire)
  set_tests_properties(test_amqp_wire PROPERTIES LABELS integration TIMEOUT 60
    ENVIRONMENT "PN_TRACE_FRM=1;SW_BUILD_DIR=${PROJECT_BINARY_DIR}")
endif()

# Interop with Microsoft's @azure/event-hubs (node + `npm ci` in tests/sdk, as for the
# emulator's SDK tests): JS-published events must arrive byte-exact.
if(TARGET scanwatch-emulator)
  add_executable(test_amqp_interop amqp/test_amqp_interop.c amqp/emu_harness.c)
  target_link_libraries(test_amqp_interop PRIVATE sw_amqp sw_common PkgConfig::CJSON
    PkgConfig::CMOCKA)
  add_dependencies(test_amqp_interop scanwatch-emulator)
  add_test(NAME test_amqp_interop COMMAND test_amqp_interop)
  set_tests_properties(test_amqp_interop PROPERTIES LABELS integration TIMEOUT 120 RUN_SERIAL TRUE
    ENVIRONMENT "SW_SOURCE_DIR=${PROJECT_SOURCE_DIR};SW_BUILD_DIR=${PROJECT_BINARY_DIR}")
endif()

# Parsers of amqp/ under fuzzing: a libFuzzer target with -DSW_FUZZ=ON (clang), and the
# corpus replayed as a unit test in every build.
add_executable(fuzz_amqp_regress amqp/fuzz_amqp.c amqp/fuzz_regress_main.c)
target_link_libraries(fuzz_amqp_regress PRIVATE sw_amqp sw_common)
add_test(NAME fuzz_amqp_corpus
  COMMAND fuzz_amqp_regress ${CMAKE_CURRENT_SOURCE_DIR}/amqp/corpus)
set_tests_properties(fuzz_amqp_corpus PROPERTIES LABELS unit)
if(SW_FUZZ)
  add_executable(fuzz_amqp amqp/fuzz_amqp.c)
  target_compile_options(fuzz_amqp PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_amqp PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz_amqp PRIVATE sw_amqp sw_common)
endif()

# The sender (sw_amqp_send) against the emulator: other hub, own hub, size limit, server-busy
# detach mid-send, concurrent callers; prints the send throughput figure (docs/benchmarks.md).
if(TARGET scanwatch-emulator)
  add_executable(test_amqp_sender amqp/test_amqp_sender.c amqp/emu_harness.c)
  target_link_libraries(test_amqp_sender PRIVATE sw_amqp sw_common PkgConfig::CMOCKA Threads::Threads)
  add_dependencies(test_amqp_sender scanwatch-emulator)
  add_test(NAME test_amqp_sender COMMAND test_amqp_sender)
  set_tests_properties(test_amqp_sender PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "SW_SOURCE_DIR=${PROJECT_SOURCE_DIR};SW_BUILD_DIR=${PROJECT_BINARY_DIR}")
endif()

# Sender interop: Microsoft's @azure/event-hubs consumer (node + `npm ci` in tests/sdk) reads
# what sw_amqp_send wrote, byte-exact.
if(TARGET scanwatch-emulator)
  add_executable(test_amqp_sender_interop amqp/test_amqp_sender_interop.c amqp/emu_harness.c)
  target_link_libraries(test_amqp_sender_interop PRIVATE sw_amqp sw_common PkgConfig::CJSON
    PkgConfig::CMOCKA)
  add_dependencies(test_amqp_sender_interop scanwatch-emulator)
  add_test(NAME test_amqp_sender_interop COMMAND test_amqp_sender_interop)
  set_tests_properties(test_amqp_sender_interop PROPERTIES LABELS integration TIMEOUT 120
    RUN_SERIAL TRUE ENVIRONMENT "SW_SOURCE_DIR=${PROJECT_SOURCE_DIR};SW_BUILD_DIR=${PROJECT_BINARY_DIR}")
endif()
