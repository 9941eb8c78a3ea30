# Fails when docs/configuration.md differs from what the settings table generates.
execute_process(COMMAND ${SCANWATCH} check-config --markdown
  OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scanwatch check-config --markdown failed (${rc})")
endif()
file(READ ${DOC} committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "docs/configuration.md is out of date: regenerate it with\n"
    "  build/scanwatch check-config --markdown > docs/configuration.md")
endif()
