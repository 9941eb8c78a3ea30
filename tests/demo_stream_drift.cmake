# Regenerates the demo stream with sw-gen and compares it with the committed file.
execute_process(COMMAND ${GEN} ${ARGS} --out ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "sw-gen failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT} ${STREAM} RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "tests/data/demo-stream.ndjson differs from sw-gen's output; if the "
    "generator change is intended, regenerate it:\n  ${HOWTO}")
endif()
file(REMOVE ${OUT})
