# The service: the demo end to end (emulator + run + dir: mail sink), and the
# service end-to-end tests.

# The README's first command runs this: 262 events over 4 partitions, the
# diff records must equal offline processing of the same stream (21), and one
# mail per diff record for the default route.
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/demo)
add_test(NAME demo_end_to_end COMMAND scanwatch demo)
set_tests_properties(demo_end_to_end PROPERTIES LABELS integration TIMEOUT 120
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/demo
  PASS_REGULAR_EXPRESSION "read 262 events \\(234 findings, 4 bad events dead-lettered\\).*diff records: 21.*mails written: 21")

# End-to-end: emulator + `scanwatch run` + dir: sink, events published by
# Microsoft's @azure/event-hubs producer (tests/sdk, pinned by its lockfile).
foreach(scenario exact sigterm sigkill replay rebuild replicas)
  add_test(NAME service_e2e_${scenario}
    COMMAND node ${PROJECT_SOURCE_DIR}/tests/sdk/service-e2e.mjs
            --scanwatch $<TARGET_FILE:scanwatch> --emulator $<TARGET_FILE:scanwatch-emulator>
            --gen $<TARGET_FILE:sw-gen> --work ${CMAKE_CURRENT_BINARY_DIR}/e2e-${scenario}
            --scenario ${scenario})
  set_tests_properties(service_e2e_${scenario} PROPERTIES LABELS integration TIMEOUT 300)
endforeach()

# The same exact scenario with one processing thread decoding and applying
# (decode_ahead = false: the path of `scanwatch process` and forwarded partitions).
add_test(NAME service_e2e_exact_inline
  COMMAND node ${PROJECT_SOURCE_DIR}/tests/sdk/service-e2e.mjs
          --scanwatch $<TARGET_FILE:scanwatch> --emulator $<TARGET_FILE:scanwatch-emulator>
          --gen $<TARGET_FILE:sw-gen> --work ${CMAKE_CURRENT_BINARY_DIR}/e2e-exact-inline
          --scenario exact --service-args "--decode-ahead false")
set_tests_properties(service_e2e_exact_inline PROPERTIES LABELS integration TIMEOUT 300)

# Chaos (SIGKILLs under emulator and Graph faults) and long-outage tests: tests/chaos.cmake.
include(${CMAKE_CURRENT_SOURCE_DIR}/chaos.cmake)
