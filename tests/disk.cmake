# Disk faults (issue 9, item 3): `scanwatch process` on a full, read-only or
# damaged state directory, and on a state of a newer schema. Each gives one
# clear fatal error naming state_dir; a restart on a good disk ends exactly
# like an undisturbed run.
add_executable(sw-state-poke disk/sw_state_poke.c)
target_link_libraries(sw-state-poke PRIVATE PkgConfig::ROCKSDB)

foreach(mode full corrupt)
  add_test(NAME disk_faults_${mode}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/disk/disk_faults.sh ${mode} $<TARGET_FILE:scanwatch>
            $<TARGET_FILE:sw-gen> $<TARGET_FILE:sw-state-poke>
            ${CMAKE_CURRENT_BINARY_DIR}/disk_faults_${mode}.work $<TARGET_FILE:scanwatch-emulator>)
  # full mounts tmpfs file systems: it needs root and skips (77) without it.
  set_tests_properties(disk_faults_${mode} PROPERTIES LABELS integration TIMEOUT 120
    SKIP_RETURN_CODE 77)
endforeach()
