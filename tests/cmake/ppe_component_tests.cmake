# ppe_add_component_tests: one Catch2 test binary per component.
#
#   ppe_add_component_tests(<component>
#     SOURCES <file>...            the component's *_test.cc files
#     [LINK <target>...]           the libraries under test (ppe_catch_main is added)
#     [LABELS <label>...]          ctest labels of the untagged cases (default: unit)
#     [TAG_LABELS <tag>=<label>[,<label>...]...]
#                                  cases carrying the Catch2 tag [<tag>] get these
#                                  labels instead (e.g. integration=integration for
#                                  the cases on libvirt's test:///default); a case
#                                  should carry at most one of these tags
#     [NO_SANITIZE])               for binaries that need root-only things
#
# It builds the executable <component>_tests and, after each build, lists its
# cases into ctest as "<component>: <case name>", labelled <component>, the
# case's labels and, unless NO_SANITIZE, "sanitize". Every sanitize binary is a
# dependency of the target `sanitize_tests`: tests/run.sh builds that target in
# the clang ASan/UBSan tree and runs `ctest -L sanitize` there, so a new
# component binary is covered by adding it here and nowhere else. Hidden cases
# (tag [.], e.g. [.][lxc], run by a wrapper script as root) are not listed.
#
# Example (tests/vm/CMakeLists.txt):
#   ppe_add_component_tests(vm
#     SOURCES address_pool_test.cc libvirt_hypervisor_test.cc
#     LINK ppe_hypervisor ppe_vm_manager
#     TAG_LABELS integration=integration)
#
# Own discovery rather than Catch2's catch_discover_tests: that one drops the
# space after the prefix ("unit:name"), splits a case name at ';' into two
# tests that match nothing, and sets only one label per test.
function(ppe_add_component_tests component)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "NO_SANITIZE" "" "SOURCES;LINK;LABELS;TAG_LABELS")
  set(target ${component}_tests)
  add_executable(${target} ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE ppe_catch_main ${ARG_LINK})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  set(sanitize "")
  if(NOT ARG_NO_SANITIZE)
    set(sanitize sanitize)
    add_dependencies(sanitize_tests ${target})
  endif()

  # One group per mapped tag, then the rest; each group is a Catch2 test spec
  # and its labels, written where the discovery script reads them.
  set(groups "")
  set(rest "~[.]")
  set(n 0)
  foreach(mapping IN LISTS ARG_TAG_LABELS)
    string(REGEX MATCH "^([^=]+)=(.+)$" ok "${mapping}")
    if(NOT ok)
      message(FATAL_ERROR "ppe_add_component_tests(${component}): TAG_LABELS wants tag=label,..., got '${mapping}'")
    endif()
    set(tag "${CMAKE_MATCH_1}")
    string(REPLACE "," ";" labels "${CMAKE_MATCH_2}")
    set(labels ${component} ${labels} ${sanitize})
    math(EXPR n "${n} + 1")
    string(APPEND groups "set(spec_${n} [==[[${tag}]~[.]]==])\n"
                         "set(labels_${n} [==[${labels}]==])\n")
    string(APPEND rest "~[${tag}]")
  endforeach()
  set(labels ${component} ${ARG_LABELS} ${sanitize})
  math(EXPR n "${n} + 1")
  string(APPEND groups "set(spec_${n} [==[${rest}]==])\n"
                       "set(labels_${n} [==[${labels}]==])\n"
                       "set(groups ${n})\n")
  set(args_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_groups.cmake")
  file(WRITE "${args_file}" "set(prefix [==[${component}: ]==])\n${groups}")

  set(tests_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_ctest.cmake")
  add_custom_command(TARGET ${target} POST_BUILD
    BYPRODUCTS "${tests_file}"
    COMMAND "${CMAKE_COMMAND}" -D "EXE=$<TARGET_FILE:${target}>" -D "GROUPS_FILE=${args_file}"
            -D "OUT=${tests_file}" -D "WORKDIR=${CMAKE_CURRENT_BINARY_DIR}"
            -P "${PPE_TESTS_CMAKE_DIR}/discover_catch_tests.cmake"
    VERBATIM)
  set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake")
  file(WRITE "${include_file}"
    "if(EXISTS \"${tests_file}\")\n"
    "  include(\"${tests_file}\")\n"
    "else()\n"
    "  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\n"
    "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()
