# Resilience tests (issue 9): tests/chaos/*.mjs run `scanwatch run` against the emulator and the
# fake Graph (Node built-ins only; events go through the emulator's control channel).
#   chaos_reduced   8 SIGKILLs with emulator and Graph faults; diff records and mails compared
#                   with an undisturbed run (the full run: scripts/chaos, report in docs/chaos.md)
#   outage_graph    Graph down for a compressed "hour": outbox holds, RSS flat, all delivered once
#   outage_hub      hub unreachable at start and mid-run: backoff, /readyz reason, recovery
#   outage_reconnect  after a connection loss, lag info read before it must not let one
#                   partition's events close windows whose records wait on the others
find_program(SW_NODE node)
if(SW_NODE AND TARGET scanwatch-emulator)
  set(SW_CHAOS_ARGS --scanwatch $<TARGET_FILE:scanwatch> --emulator $<TARGET_FILE:scanwatch-emulator>
      --gen $<TARGET_FILE:sw-gen> --fake-graph ${PROJECT_SOURCE_DIR}/tests/fake-graph/fake-graph.js)
  add_test(NAME chaos_reduced
    COMMAND ${SW_NODE} ${PROJECT_SOURCE_DIR}/tests/chaos/chaos.mjs ${SW_CHAOS_ARGS}
            --work ${CMAKE_CURRENT_BINARY_DIR}/chaos-reduced --seed 1 --kills 8 --images 12 --rescans 2
            --drain-timeout 90 --report ${CMAKE_CURRENT_BINARY_DIR}/chaos-reduced.json)
  set_tests_properties(chaos_reduced PROPERTIES LABELS integration TIMEOUT 300)
  foreach(scenario graph hub reconnect)
    add_test(NAME outage_${scenario}
      COMMAND ${SW_NODE} ${PROJECT_SOURCE_DIR}/tests/chaos/outage.mjs ${SW_CHAOS_ARGS}
              --work ${CMAKE_CURRENT_BINARY_DIR}/outage-${scenario} --scenario ${scenario}
              --report ${CMAKE_CURRENT_BINARY_DIR}/outage-${scenario}.json)
    set_tests_properties(outage_${scenario} PROPERTIES LABELS integration TIMEOUT 300)
  endforeach()
else()
  message(WARNING "node or the emulator missing: the chaos and outage tests are not built")
endif()
