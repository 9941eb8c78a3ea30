# Hostile and bad input (issue 9, item 6) through decode, process + notify and
# the service end to end (emulator -> run -> state -> dir: mail sink):
# bodies at and above max_message_size, 10,000-deep JSON, HTML and control
# characters in every text field, 60,000 tags, invalid UTF-8, unknown
# assessedResourceTypes, a future scan time (hostile_input); 100,500 findings
# in one scan of one image (hostile_big_window). Node built-ins only.
find_program(SW_NODE_HOSTILE node)
if(SW_NODE_HOSTILE)
  foreach(t input:offline,service big_window:big)
    string(REPLACE ":" ";" t "${t}")
    list(GET t 0 name)
    list(GET t 1 parts)
    add_test(NAME hostile_${name}
      COMMAND ${SW_NODE_HOSTILE} ${CMAKE_CURRENT_SOURCE_DIR}/hostile/hostile.mjs
              --scanwatch $<TARGET_FILE:scanwatch> --emulator $<TARGET_FILE:scanwatch-emulator>
              --gen $<TARGET_FILE:sw-gen> --work ${CMAKE_CURRENT_BINARY_DIR}/hostile_${name}.work
              --parts ${parts})
    set_tests_properties(hostile_${name} PROPERTIES LABELS integration TIMEOUT 180)
  endforeach()
endif()
