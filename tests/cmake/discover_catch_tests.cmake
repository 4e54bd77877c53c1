# Run after each build of a component test binary (ppe_add_component_tests):
# lists the binary's Catch2 cases group by group and writes the ctest script
# OUT that adds "<prefix><case>" with the group's labels.
#   cmake -D EXE=... -D GROUPS_FILE=... -D OUT=... -D WORKDIR=... -P discover_catch_tests.cmake
include("${GROUPS_FILE}")
set(script "")
foreach(g RANGE 1 ${groups})
  execute_process(COMMAND "${EXE}" "${spec_${g}}" --list-test-names-only
    OUTPUT_VARIABLE output RESULT_VARIABLE result WORKING_DIRECTORY "${WORKDIR}")
  if(result LESS 0 OR NOT result MATCHES "^[0-9]+$")
    message(FATAL_ERROR "${EXE} --list-test-names-only failed: ${result}\n${output}")
  endif()
  # Keep ';' inside names: CMake lists would split at it.
  string(REPLACE ";" "<semicolon>" output "${output}")
  string(REPLACE "\n" ";" lines "${output}")
  foreach(name IN LISTS lines)
    string(STRIP "${name}" name)
    if(name STREQUAL "")
      continue()
    endif()
    string(REPLACE "<semicolon>" ";" name "${name}")
    # On the command line, ',', '[' and ']' are Catch2 test-spec syntax.
    set(arg "${name}")
    foreach(char , [ ])
      string(REPLACE "${char}" "\\${char}" arg "${arg}")
    endforeach()
    string(APPEND script
      "add_test([==[${prefix}${name}]==] [==[${EXE}]==] [==[${arg}]==])\n"
      "set_tests_properties([==[${prefix}${name}]==] PROPERTIES WORKING_DIRECTORY [==[${WORKDIR}]==] "
      "LABELS [==[${labels_${g}}]==])\n")
  endforeach()
endforeach()
file(WRITE "${OUT}" "${script}")
