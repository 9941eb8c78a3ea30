# The product runs no shell and no other program (run with cmake -P; SOURCE =
# the repository). Searched: every C source outside tests/ and bench/ (the
# benchmark harnesses start the emulator; they are not shipped).
#   - never: system, popen, wordexp, the exec family, fork/vfork/clone;
#   - posix_spawn only in the allow list below: `scanwatch demo` starts the
#     bundled emulator binary found next to itself, with a fixed argv and no
#     shell.
cmake_minimum_required(VERSION 3.20)
set(banned "system|popen|wordexp|execl|execlp|execle|execv|execvp|execvpe|fexecve|fork|vfork|clone")
set(spawn "posix_spawn|posix_spawnp")
set(spawn_allowed consumer/cmd_demo.c)
set(found "")
set(n 0)
foreach(dir common amqp state consumer emulator include)
  file(GLOB_RECURSE files RELATIVE ${SOURCE} ${SOURCE}/${dir}/*.c ${SOURCE}/${dir}/*.h
       ${SOURCE}/${dir}/*.cc ${SOURCE}/${dir}/*.cpp)
  foreach(f IN LISTS files)
    math(EXPR n "${n} + 1")
    set(re "${banned}")
    if(NOT f IN_LIST spawn_allowed)
      set(re "${banned}|${spawn}")
    endif()
    file(STRINGS ${SOURCE}/${f} lines REGEX "(^|[^A-Za-z0-9_.>])(${re})[ \t]*\\(")
    foreach(line IN LISTS lines)
      # A call, not a mention in a comment.
      if(NOT line MATCHES "^[ \t]*(/?\\*|//)")
        string(APPEND found "\n  ${f}: ${line}")
      endif()
    endforeach()
  endforeach()
endforeach()
if(n LESS 20)
  message(FATAL_ERROR "FAILED: only ${n} source files found under ${SOURCE}")
endif()
if(NOT found STREQUAL "")
  message(FATAL_ERROR "FAILED: the product must not start a shell or other programs; found:${found}")
endif()
message(STATUS "no shell-outs in ${n} source files")
