# Security (issue 9, item 7): secrets never leave the process (every output of
# check-config, run, send-test-mail, metrics, state dumps, diff log, at debug
# level, searched for distinctive secret values), TLS verification on by
# default (hub and Graph), and no shell-outs in the product's code.
find_program(SW_NODE_SEC node)
if(SW_NODE_SEC)
  add_test(NAME security_secrets_tls
    COMMAND ${SW_NODE_SEC} ${CMAKE_CURRENT_SOURCE_DIR}/security/secrets.mjs
            --scanwatch $<TARGET_FILE:scanwatch> --emulator $<TARGET_FILE:scanwatch-emulator>
            --gen $<TARGET_FILE:sw-gen> --source ${PROJECT_SOURCE_DIR}
            --work ${CMAKE_CURRENT_BINARY_DIR}/security.work)
  set_tests_properties(security_secrets_tls PROPERTIES LABELS integration TIMEOUT 120)
endif()

# No system()/popen()/exec*()/fork()/posix_spawn() in the product's code.
add_test(NAME security_no_shell_outs
  COMMAND ${CMAKE_COMMAND} -DSOURCE=${PROJECT_SOURCE_DIR}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/security/no_shell_outs.cmake)
set_tests_properties(security_no_shell_outs PROPERTIES LABELS unit)

# The container files say non-root, read-only root filesystem, no capabilities.
add_test(NAME security_container_hardening
  COMMAND ${CMAKE_COMMAND} -DSOURCE=${PROJECT_SOURCE_DIR}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/security/container_hardening.cmake)
set_tests_properties(security_container_hardening PROPERTIES LABELS unit)

# Which URLs may carry credentials (https, or http to loopback only).
sw_add_unit_test(test_security_unit SOURCES unit/test_security_unit.c
  LIBS sw_notify PkgConfig::CURL)
target_include_directories(test_security_unit PRIVATE ${PROJECT_SOURCE_DIR}/consumer)
