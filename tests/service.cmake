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
