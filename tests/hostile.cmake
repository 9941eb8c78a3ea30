# Hostile and bad input (issue 9, item 6) through decode, process + notify and
# the service end to end (emulator -> run -> state -> dir: mail sink):
# bodies at and above max_message_size, 10,000-deep JSON, HTML and control
# characters in every text field, 60,000 tags, invalid UTF-8, unknown
# assessedResourceTypes, 100,500 findings in one scan. Node built-ins only.
find_program(SW_NODE_HOSTILE node)
if(SW_NODE_HOSTILE)
  add_test(NAME hostile_input
    COMMAND ${SW_NODE_HOSTILE} ${CMAKE_CURRENT_SOURCE_DIR}/hostile/hostile.mjs
            --scanwatch $<TARGET_FILE:scanwatch> --emulator $<TARGET_FILE:scanwatch-emulator>
            --gen $<TARGET_FILE:sw-gen> --work ${CMAKE_CURRENT_BINARY_DIR}/hostile.work)
  set_tests_properties(hostile_input PROPERTIES LABELS integration TIMEOUT 180)
endif()
